//! What every table of files shares, whatever their format: where the files live (local disk
//! or S3, with a table's own S3 settings), and how registration lists them and reads the
//! schema and the Hive partitions from them.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field};
use datafusion::catalog::Session;
use datafusion::common::TableReference;
use datafusion::datasource::listing::{ListingOptions, ListingTableUrl};
use datafusion::error::{DataFusionError, Result as DFResult};
use futures::TryStreamExt;
use lakegate_catalog::{ColumnSpec, ParamSpec, TableSpec, resolve_reference};
use url::Url;

use crate::storage::listing::{hive_directories, listing_location_of};
use crate::storage::{ObjectStores, S3Config, is_s3};

/// The options of every file table that say where its S3 store is, and how to sign in.
pub(crate) const S3_PARAMS: [ParamSpec; 7] = [
    ParamSpec::new("s3.endpoint", "S3 endpoint URL, e.g. http://127.0.0.1:9000 for an S3-compatible server"),
    ParamSpec::new("s3.region", "S3 region"),
    ParamSpec::new("s3.access_key_id", "S3 access key id"),
    ParamSpec::new("s3.secret_access_key", "S3 secret key, as a reference such as ${env:AWS_SECRET_ACCESS_KEY}")
        .secret(),
    ParamSpec::new("s3.session_token", "S3 session token, as a reference").secret(),
    ParamSpec::new("s3.allow_http", "allow plain-http endpoints (true/false)").bool(),
    ParamSpec::new("s3.path_style", "path-style requests, needed by most S3-compatible servers (true/false)").bool(),
];

/// [`S3_PARAMS`] followed by a format's own options, as one list (`N` is their sum).
pub(crate) const fn with_s3_params<const OWN: usize, const N: usize>(own: [ParamSpec; OWN]) -> [ParamSpec; N] {
    assert!(N == S3_PARAMS.len() + OWN, "N must count the S3 options and the format's own");
    let mut all = [S3_PARAMS[0]; N];
    let mut i = 0;
    while i < N {
        all[i] = if i < S3_PARAMS.len() { S3_PARAMS[i] } else { own[i - S3_PARAMS.len()] };
        i += 1;
    }
    all
}

/// True when a table's OPTIONS set S3 settings of its own: its store is named for this
/// process alone ([`ObjectStores::own_s3_url`]), so no other node can read through it.
pub(crate) fn has_own_store(spec: &TableSpec) -> bool {
    spec.options.keys().any(|key| key.starts_with("s3."))
}

/// The URL a table's files are read (and written) through. A table whose OPTIONS set S3
/// settings is on a store of its own ([`ObjectStores::own_s3_url`]), so they apply to this
/// table only; the location the user wrote stays in the spec, for SHOW CREATE TABLE and errors.
/// A location that ends in `extension` is one file, any other a directory.
///
/// # Errors
/// A location that is neither local nor on S3, an unresolvable secret reference or an
/// invalid S3 setting.
pub(crate) fn table_url(stores: &ObjectStores, spec: &TableSpec, extension: &str) -> DFResult<ListingTableUrl> {
    let url = ListingTableUrl::parse(listing_location_of(&spec.location, extension))?;
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

/// Checks a new table of `format` files (named so in messages) and completes its spec:
/// listing the location proves it reachable (endpoint, bucket, credentials); a table without
/// declared columns gets the schema `infer` makes of the files' own (Hive partition columns
/// from the directory names), and a declared one needs its directory's parent to exist
/// when local, so a typo is caught while the table may still start empty.
///
/// # Errors
/// The location cannot be listed, has no files to read a schema from, or a file's schema
/// cannot be read.
pub(crate) async fn prepare(
    session: &dyn Session,
    url: &ListingTableUrl,
    options: &ListingOptions,
    format: &str,
    mut spec: TableSpec,
    infer: impl FnOnce(Vec<Field>) -> DFResult<Vec<Field>>,
) -> DFResult<TableSpec> {
    if spec.location.is_empty() {
        return Err(DataFusionError::Plan(format!("{format} table {} needs a LOCATION", spec.qualified_name())));
    }
    let location = spec.location.clone();
    let located = |e: DataFusionError| e.context(format!("cannot read {format} table location '{location}'"));
    let store = session.runtime_env().object_store(url).map_err(located)?;
    let files: Vec<_> = url
        .list_all_files(session, store.as_ref(), &options.file_extension)
        .await
        .map_err(located)?
        .try_collect()
        .await
        .map_err(located)?;
    if spec.columns.is_empty() {
        if files.is_empty() {
            return Err(DataFusionError::Plan(format!(
                "no {format} files at '{}' to read the schema from (files ending in '{}' are read); check the location, or declare the columns",
                spec.location, options.file_extension
            )));
        }
        if spec.partition_columns.is_empty() {
            let names = hive_directories(url, &files[0].location).into_iter().map(|(name, _)| name);
            spec.partition_columns = names.map(|n| ColumnSpec::new(n, &DataType::Utf8, true)).collect();
        }
        // The schema comes from the files already listed: no second listing of the location.
        let non_empty: Vec<_> = files.into_iter().filter(|f| f.size > 0).collect();
        let schema = options.format.infer_schema(session, &store, &non_empty).await.map_err(located)?;
        let data = schema.fields().iter().filter(|f| !spec.partition_columns.iter().any(|p| &p.name == f.name()));
        spec.columns = infer(data.map(|f| f.as_ref().clone()).collect())?
            .iter()
            .map(|f| ColumnSpec::new(f.name(), f.data_type(), f.is_nullable()))
            .collect();
    } else if let Some(url) = Url::parse(url.as_str()).ok().filter(|u| u.scheme() == "file") {
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

/// The listing options of a table of `format` files with `spec`'s partition columns.
///
/// # Errors
/// A partition column's stored type is not an Arrow type.
pub(crate) fn listing_options(
    format: Arc<dyn datafusion::datasource::file_format::FileFormat>,
    extension: &str,
    spec: &TableSpec,
) -> DFResult<ListingOptions> {
    let partition_cols = spec
        .partition_columns
        .iter()
        .map(|c| Ok((c.name.clone(), c.field()?.data_type().clone())))
        .collect::<lakegate_catalog::Result<Vec<_>>>()?;
    Ok(ListingOptions::new(format).with_file_extension(extension).with_table_partition_cols(partition_cols))
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
        let plain = table_url(&stores, &spec("s3://lake/t", &[]), ".parquet").expect("url");
        assert_eq!(plain.as_str(), "s3://lake/t/");
        let own = table_url(&stores, &spec("s3a://lake/t", &[("s3.endpoint", "http://127.0.0.1:9")]), ".parquet")
            .expect("url");
        assert!(own.scheme().starts_with("s3-") && own.as_str().ends_with("://lake/t/"), "{own}");
        assert_eq!(own.prefix(), plain.prefix());
        // Listings are cached per URL, so the two are never taken for each other.
        assert_ne!(own.get_table_ref(), plain.get_table_ref());
        // Nobody reaches a table's own store by writing its URL as a location.
        let err = table_url(&stores, &spec(own.as_str(), &[]), ".parquet").expect_err("not a location");
        assert!(err.to_string().contains("no storage for"), "{err}");
    }

    #[test]
    fn s3_flags_must_be_booleans() {
        let options = BTreeMap::from([("s3.allow_http".to_owned(), "sure".to_owned())]);
        let err = s3_overrides(&options).unwrap_err().to_string();
        assert!(err.contains("s3.allow_http"), "{err}");
    }

    #[test]
    fn a_format_s_options_follow_the_s3_ones() {
        let all: [ParamSpec; 8] = with_s3_params([ParamSpec::new("header", "")]);
        assert_eq!(
            all.map(|p| p.name)[..],
            [
                "s3.endpoint",
                "s3.region",
                "s3.access_key_id",
                "s3.secret_access_key",
                "s3.session_token",
                "s3.allow_http",
                "s3.path_style",
                "header"
            ]
        );
    }
}
