//! Parquet tables on local disk or S3: DataFusion's `ListingTable` with Hive partitions.
//!
//! Registration checks the location and stores the schema (declared, or read from the files),
//! so opening a table later lists no files until it is queried.

mod format;

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::DataType;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::TableReference;
use datafusion::datasource::listing::{ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl};
use datafusion::error::{DataFusionError, Result as DFResult};
use futures::TryStreamExt;
use lakegate_catalog::{Capabilities, ColumnSpec, Options, ParamSpec, SourceFactory, TableSpec, resolve_reference};
use url::Url;

use crate::storage::listing::{hive_directories, hive_partitions, listing_location};
use crate::storage::{ObjectStores, S3Config, is_s3};

const PARAMS: &[ParamSpec] = &[
    ParamSpec::new("s3.endpoint", "S3 endpoint URL, e.g. http://127.0.0.1:9000 for an S3-compatible server"),
    ParamSpec::new("s3.region", "S3 region"),
    ParamSpec::new("s3.access_key_id", "S3 access key id"),
    ParamSpec::new("s3.secret_access_key", "S3 secret key, as a reference such as ${env:AWS_SECRET_ACCESS_KEY}")
        .secret(),
    ParamSpec::new("s3.session_token", "S3 session token, as a reference").secret(),
    ParamSpec::new("s3.allow_http", "allow plain-http endpoints (true/false)").bool(),
    ParamSpec::new("s3.path_style", "path-style requests, needed by most S3-compatible servers (true/false)").bool(),
    ParamSpec::new("write.target_file_size", "INSERT rolls files over at this size, e.g. 256MB (the default)").size(),
];

/// The kind Parquet tables are stored as.
pub(crate) const KIND: &str = "parquet";

#[derive(Debug)]
pub struct ParquetSource {
    stores: Arc<ObjectStores>,
}

impl ParquetSource {
    pub fn new(stores: Arc<ObjectStores>) -> Self {
        Self { stores }
    }
}

/// The size INSERT rolls a table's files over at, when the table sets one.
///
/// # Errors
/// A `write.target_file_size` that is not a size such as `256MB`.
pub(crate) fn target_file_size(spec: &TableSpec) -> DFResult<Option<u64>> {
    Ok(Options::new(KIND, PARAMS, spec.options.clone()).size("write.target_file_size")?)
}

/// The URL a table is read and written through. A table whose OPTIONS set S3 settings is on
/// a store of its own ([`ObjectStores::own_s3_url`]), so they apply to this table only; the
/// location the user wrote stays in the spec, for SHOW CREATE TABLE and errors.
///
/// # Errors
/// A location that is neither local nor on S3, an unresolvable secret reference or an
/// invalid S3 setting.
pub(crate) fn table_url(stores: &ObjectStores, spec: &TableSpec) -> DFResult<ListingTableUrl> {
    let url = ListingTableUrl::parse(listing_location(&spec.location))?;
    let url = match url.scheme() {
        "file" => url,
        scheme if is_s3(scheme) => {
            let overrides = s3_overrides(&spec.options)?;
            if overrides == S3Config::default() {
                url
            } else {
                ListingTableUrl::try_new(stores.own_s3_url(url.as_ref(), &overrides)?, None)?
            }
        }
        // Only lakegate names a table's own store: a location cannot pick one.
        scheme => {
            return Err(DataFusionError::Plan(format!(
                "no storage for '{scheme}://' locations; lakegate reads local paths, file://, s3://, s3a:// and s3n://"
            )));
        }
    };
    // DataFusion caches listings by table and path within the store: without the store in
    // the table's name, two stores' listings of one path would be taken for each other.
    let name = TableReference::bare(url.as_str());
    Ok(url.with_table_ref(name))
}

fn listing_options(partitions: &[ColumnSpec]) -> DFResult<ListingOptions> {
    let partition_cols = partitions
        .iter()
        .map(|c| Ok((c.name.clone(), c.field()?.data_type().clone())))
        .collect::<lakegate_catalog::Result<Vec<_>>>()?;
    Ok(ListingOptions::new(Arc::new(format::NamedParquetFormat::default()))
        .with_file_extension(".parquet")
        .with_table_partition_cols(partition_cols))
}

/// The S3 settings of a table's OPTIONS, with secret references resolved: a label of the
/// values, not of the references, changes when a referenced secret does.
fn s3_overrides(options: &BTreeMap<String, String>) -> DFResult<S3Config> {
    let value = |key: &str| options.get(key).map(|v| resolve_reference(v)).transpose().map_err(DataFusionError::from);
    let flag = |key: &'static str| -> DFResult<Option<bool>> {
        Ok(value(key)?.map(|v| ParamSpec::new(key, "").bool().to_bool(&v)).transpose()?)
    };
    Ok(S3Config {
        endpoint: value("s3.endpoint")?,
        region: value("s3.region")?,
        access_key_id: value("s3.access_key_id")?,
        secret_access_key: value("s3.secret_access_key")?,
        session_token: value("s3.session_token")?,
        allow_http: flag("s3.allow_http")?,
        path_style: flag("s3.path_style")?,
    })
}

fn located(location: &str, e: DataFusionError) -> DataFusionError {
    e.context(format!("cannot read Parquet table location '{location}'"))
}

/// The Hive partitions (`dt=2018-03-05/...`) that hold files of a partitioned table, sorted.
///
/// # Errors
/// The location cannot be listed.
pub async fn partitions(session: &dyn Session, stores: &ObjectStores, spec: &TableSpec) -> DFResult<Vec<String>> {
    let url = table_url(stores, spec)?;
    let store = session.runtime_env().object_store(&url)?;
    let files: Vec<_> = url.list_all_files(session, store.as_ref(), ".parquet").await?.try_collect().await?;
    let names: Vec<&str> = spec.partition_columns.iter().map(|c| c.name.as_str()).collect();
    Ok(hive_partitions(&url, &files, &names))
}

#[async_trait]
impl SourceFactory for ParquetSource {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn name(&self) -> &'static str {
        "Parquet"
    }

    /// lakegate writes Parquet tables (INSERT, with Hive partitions and commit markers), lists
    /// and adds their partitions, and vacuums their abandoned files.
    fn capabilities(&self) -> Capabilities {
        Capabilities { writable: true, lists_partitions: true, vacuum: true }
    }

    fn aliases(&self) -> &'static [&'static str] {
        &["org.apache.spark.sql.parquet", "org.apache.spark.sql.execution.datasources.parquet"]
    }

    fn params(&self) -> &'static [ParamSpec] {
        PARAMS
    }

    async fn prepare(&self, session: &dyn Session, mut spec: TableSpec) -> DFResult<TableSpec> {
        if spec.location.is_empty() {
            return Err(DataFusionError::Plan(format!("Parquet table {} needs a LOCATION", spec.qualified_name())));
        }
        let url = table_url(&self.stores, &spec)?;
        let store = session.runtime_env().object_store(&url).map_err(|e| located(&spec.location, e))?;
        let options = listing_options(&spec.partition_columns)?;
        // Listing proves the location is reachable: endpoint, bucket and credentials.
        let files: Vec<_> = url
            .list_all_files(session, store.as_ref(), ".parquet")
            .await
            .map_err(|e| located(&spec.location, e))?
            .try_collect()
            .await
            .map_err(|e| located(&spec.location, e))?;
        if spec.columns.is_empty() {
            if files.is_empty() {
                return Err(DataFusionError::Plan(format!(
                    "no Parquet files at '{}' to read the schema from; check the location, or declare the columns",
                    spec.location
                )));
            }
            if spec.partition_columns.is_empty() {
                let names = hive_directories(&url, &files[0].location).into_iter().map(|(name, _)| name);
                spec.partition_columns = names.map(|n| ColumnSpec::new(n, &DataType::Utf8, true)).collect();
            }
            // The schema comes from the files already listed: no second listing of the location.
            let non_empty: Vec<_> = files.into_iter().filter(|f| f.size > 0).collect();
            let schema = options
                .format
                .infer_schema(session, &store, &non_empty)
                .await
                .map_err(|e| located(&spec.location, e))?;
            spec.columns = schema
                .fields()
                .iter()
                .filter(|f| !spec.partition_columns.iter().any(|p| &p.name == f.name()))
                .map(|f| ColumnSpec::new(f.name(), f.data_type(), f.is_nullable()))
                .collect();
        } else if let Some(url) = Url::parse(url.as_str()).ok().filter(|u| u.scheme() == "file") {
            // Declared tables may start empty, but their parent directory must exist.
            let dir = url.to_file_path().unwrap_or_default();
            if files.is_empty() && !dir.parent().is_some_and(std::path::Path::exists) {
                return Err(DataFusionError::Plan(format!(
                    "location '{}' does not exist (nor does its parent directory)",
                    spec.location
                )));
            }
        }
        Ok(spec)
    }

    async fn create(&self, spec: &TableSpec) -> DFResult<Arc<dyn TableProvider>> {
        let url = table_url(&self.stores, spec)?;
        let config = ListingTableConfig::new(url)
            .with_listing_options(listing_options(&spec.partition_columns)?)
            .with_schema(spec.data_schema()?);
        Ok(Arc::new(ListingTable::try_new(config)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(location: &str, options: &[(&str, &str)]) -> TableSpec {
        TableSpec {
            database: "default".into(),
            name: "t".into(),
            kind: "parquet".into(),
            location: location.into(),
            options: options.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
            columns: Vec::new(),
            partition_columns: Vec::new(),
            comment: None,
        }
    }

    #[test]
    fn only_tables_with_s3_settings_get_a_store_of_their_own() {
        let stores = ObjectStores::new(S3Config::default());
        let plain = table_url(&stores, &spec("s3://lake/t", &[])).expect("url");
        assert_eq!(plain.as_str(), "s3://lake/t/");
        let own = table_url(&stores, &spec("s3a://lake/t", &[("s3.endpoint", "http://127.0.0.1:9")])).expect("url");
        assert!(own.scheme().starts_with("s3-") && own.as_str().ends_with("://lake/t/"), "{own}");
        assert_eq!(own.prefix(), plain.prefix());
        // Listings are cached per URL, so the two are never taken for each other.
        assert_ne!(own.get_table_ref(), plain.get_table_ref());
        // Nobody reaches a table's own store by writing its URL as a location.
        let err = table_url(&stores, &spec(own.as_str(), &[])).expect_err("not a location");
        assert!(err.to_string().contains("no storage for"), "{err}");
    }

    #[test]
    fn s3_flags_must_be_booleans() {
        let options = BTreeMap::from([("s3.allow_http".to_owned(), "sure".to_owned())]);
        let err = s3_overrides(&options).unwrap_err().to_string();
        assert!(err.contains("s3.allow_http"), "{err}");
    }
}
