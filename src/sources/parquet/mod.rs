//! Parquet tables on local disk or S3: DataFusion's `ListingTable` with Hive partitions.
//!
//! Registration checks the location and stores the schema (declared, or read from the files),
//! so opening a table later lists no files until it is queried.

mod format;

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::datasource::file_format::FileFormat;
use datafusion::datasource::listing::{ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl};
use datafusion::error::Result as DFResult;
use futures::TryStreamExt;
use lakegate_catalog::{Capabilities, Options, ParamSpec, SourceFactory, TableSpec};

use super::files;
use crate::storage::ObjectStores;
use crate::storage::listing::hive_partitions;

const PARAMS: &[ParamSpec] = &files::with_s3_params::<1, 8>([ParamSpec::new(
    "write.target_file_size",
    "INSERT rolls files over at this size, e.g. 256MB (the default)",
)
.size()]);

/// The extension of the data files of Parquet tables.
const EXTENSION: &str = ".parquet";

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

/// The URL a Parquet table is read and written through ([`files::table_url`]).
///
/// # Errors
/// As [`files::table_url`].
pub(crate) fn table_url(stores: &ObjectStores, spec: &TableSpec) -> DFResult<ListingTableUrl> {
    files::table_url(stores, spec, EXTENSION)
}

/// DataFusion's Parquet format, with errors that name their file.
pub(crate) fn file_format() -> Arc<dyn FileFormat> {
    Arc::new(format::NamedParquetFormat::default())
}

fn listing_options(spec: &TableSpec) -> DFResult<ListingOptions> {
    files::listing_options(file_format(), EXTENSION, spec)
}

/// The Hive partitions (`dt=2018-03-05/...`) that hold files of a partitioned table, sorted.
///
/// # Errors
/// The location cannot be listed.
pub async fn partitions(session: &dyn Session, stores: &ObjectStores, spec: &TableSpec) -> DFResult<Vec<String>> {
    let url = table_url(stores, spec)?;
    let store = session.runtime_env().object_store(&url)?;
    let files: Vec<_> = url.list_all_files(session, store.as_ref(), EXTENSION).await?.try_collect().await?;
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
    /// and adds their partitions, vacuums their abandoned files, and reads them on a cluster.
    fn capabilities(&self) -> Capabilities {
        Capabilities { writable: true, lists_partitions: true, vacuum: true, runs_on_cluster: true }
    }

    fn aliases(&self) -> &'static [&'static str] {
        &["org.apache.spark.sql.parquet", "org.apache.spark.sql.execution.datasources.parquet"]
    }

    fn params(&self) -> &'static [ParamSpec] {
        PARAMS
    }

    async fn prepare(&self, session: &dyn Session, spec: TableSpec) -> DFResult<TableSpec> {
        let url = table_url(&self.stores, &spec)?;
        files::prepare(session, &url, &listing_options(&spec)?, "Parquet", spec, Ok).await
    }

    async fn create(&self, spec: &TableSpec) -> DFResult<Arc<dyn TableProvider>> {
        let url = table_url(&self.stores, spec)?;
        let config =
            ListingTableConfig::new(url).with_listing_options(listing_options(spec)?).with_schema(spec.data_schema()?);
        Ok(Arc::new(ListingTable::try_new(config)?))
    }
}
