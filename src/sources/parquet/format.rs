//! DataFusion's Parquet format, with one change: every read error names its file.
//!
//! Parquet's own errors ("Corrupt footer") do not say which of a table's thousand files is
//! broken; the user needs that to fix or remove it.

use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::Session;
use datafusion::common::{GetExt, Statistics};
use datafusion::datasource::file_format::FileFormat;
use datafusion::datasource::file_format::file_compression_type::FileCompressionType;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::FileSinkConfig;
use datafusion::datasource::physical_plan::parquet::ParquetFileReaderFactory;
use datafusion::datasource::physical_plan::{FileScanConfig, FileScanConfigBuilder, FileSource, ParquetSource};
use datafusion::datasource::source::DataSourceExec;
use datafusion::datasource::table_schema::TableSchema;
use datafusion::error::{DataFusionError, Result};
use datafusion::parquet::arrow::arrow_reader::ArrowReaderOptions;
use datafusion::parquet::arrow::async_reader::AsyncFileReader;
use datafusion::parquet::errors::ParquetError;
use datafusion::parquet::file::metadata::ParquetMetaData;
use datafusion::physical_expr::{LexOrdering, LexRequirement};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::metrics::ExecutionPlanMetricsSet;
use futures::FutureExt;
use futures::future::BoxFuture;
use object_store::{ObjectMeta, ObjectStore};

#[derive(Debug, Default)]
pub(super) struct NamedParquetFormat(ParquetFormat);

fn in_file(location: &impl std::fmt::Display, e: DataFusionError) -> DataFusionError {
    e.context(format!("reading Parquet file {location}"))
}

#[async_trait]
impl FileFormat for NamedParquetFormat {
    fn get_ext(&self) -> String {
        self.0.get_ext()
    }

    fn get_ext_with_compression(&self, compression: &FileCompressionType) -> Result<String> {
        self.0.get_ext_with_compression(compression)
    }

    fn compression_type(&self) -> Option<FileCompressionType> {
        self.0.compression_type()
    }

    async fn infer_schema(
        &self,
        state: &dyn Session,
        store: &Arc<dyn ObjectStore>,
        objects: &[ObjectMeta],
    ) -> Result<SchemaRef> {
        match self.0.infer_schema(state, store, objects).await {
            Ok(schema) => Ok(schema),
            // Only on failure: find the file to blame, one footer at a time.
            Err(e) => {
                for object in objects {
                    if let Err(e) = self.0.infer_schema(state, store, std::slice::from_ref(object)).await {
                        return Err(in_file(&object.location, e));
                    }
                }
                Err(e)
            }
        }
    }

    async fn infer_stats(
        &self,
        state: &dyn Session,
        store: &Arc<dyn ObjectStore>,
        table_schema: SchemaRef,
        object: &ObjectMeta,
    ) -> Result<Statistics> {
        self.0.infer_stats(state, store, table_schema, object).await.map_err(|e| in_file(&object.location, e))
    }

    async fn infer_ordering(
        &self,
        state: &dyn Session,
        store: &Arc<dyn ObjectStore>,
        table_schema: SchemaRef,
        object: &ObjectMeta,
    ) -> Result<Option<LexOrdering>> {
        self.0.infer_ordering(state, store, table_schema, object).await.map_err(|e| in_file(&object.location, e))
    }

    async fn create_physical_plan(&self, state: &dyn Session, conf: FileScanConfig) -> Result<Arc<dyn ExecutionPlan>> {
        let plan = self.0.create_physical_plan(state, conf).await?;
        let Some(config) =
            plan.downcast_ref::<DataSourceExec>().and_then(|exec| exec.data_source().downcast_ref::<FileScanConfig>())
        else {
            return Ok(plan);
        };
        let Some(source) = config.file_source().downcast_ref::<ParquetSource>() else { return Ok(plan) };
        let Some(factory) = source.parquet_file_reader_factory() else { return Ok(plan) };
        let source =
            source.clone().with_parquet_file_reader_factory(Arc::new(NamingReaderFactory(Arc::clone(factory))));
        let config = FileScanConfigBuilder::from(config.clone()).with_source(Arc::new(source)).build();
        Ok(DataSourceExec::from_data_source(config))
    }

    async fn create_writer_physical_plan(
        &self,
        input: Arc<dyn ExecutionPlan>,
        state: &dyn Session,
        conf: FileSinkConfig,
        order_requirements: Option<LexRequirement>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        self.0.create_writer_physical_plan(input, state, conf, order_requirements).await
    }

    fn file_source(&self, table_schema: TableSchema) -> Arc<dyn FileSource> {
        self.0.file_source(table_schema)
    }
}

impl GetExt for NamedParquetFormat {
    fn get_ext(&self) -> String {
        self.0.get_ext()
    }
}

#[derive(Debug)]
struct NamingReaderFactory(Arc<dyn ParquetFileReaderFactory>);

impl ParquetFileReaderFactory for NamingReaderFactory {
    fn create_reader(
        &self,
        partition_index: usize,
        file: PartitionedFile,
        metadata_size_hint: Option<usize>,
        metrics: &ExecutionPlanMetricsSet,
    ) -> Result<Box<dyn AsyncFileReader + Send>> {
        let location = file.object_meta.location.to_string();
        let inner = self.0.create_reader(partition_index, file, metadata_size_hint, metrics)?;
        Ok(Box::new(NamingReader { inner, location }))
    }
}

struct NamingReader {
    inner: Box<dyn AsyncFileReader + Send>,
    location: String,
}

fn named(location: &str, e: ParquetError) -> ParquetError {
    ParquetError::General(format!("{location}: {e}"))
}

impl AsyncFileReader for NamingReader {
    fn get_bytes(&mut self, range: Range<u64>) -> BoxFuture<'_, datafusion::parquet::errors::Result<Bytes>> {
        let location = &self.location;
        self.inner.get_bytes(range).map(move |r| r.map_err(|e| named(location, e))).boxed()
    }

    fn get_byte_ranges(
        &mut self,
        ranges: Vec<Range<u64>>,
    ) -> BoxFuture<'_, datafusion::parquet::errors::Result<Vec<Bytes>>> {
        let location = &self.location;
        self.inner.get_byte_ranges(ranges).map(move |r| r.map_err(|e| named(location, e))).boxed()
    }

    fn get_metadata<'a>(
        &'a mut self,
        options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, datafusion::parquet::errors::Result<Arc<ParquetMetaData>>> {
        let location = &self.location;
        self.inner.get_metadata(options).map(move |r| r.map_err(|e| named(location, e))).boxed()
    }
}
