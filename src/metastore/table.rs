//! A metastore table read by lakegate: its format and schema from the metastore's definition
//! (Spark's own properties first), its partitions from the metastore at each scan.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Schema, SchemaRef};
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::ScalarValue;
use datafusion::datasource::TableType;
use datafusion::datasource::file_format::FileFormat;
use datafusion::datasource::listing::{ListingTableUrl, PartitionedFile};
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder};
use datafusion::datasource::table_schema::TableSchema;
use datafusion::error::{DataFusionError, Result as DFResult};
use datafusion::logical_expr::{BinaryExpr, Expr, Operator, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::physical_plan::union::UnionExec;
use futures::TryStreamExt;
use lakegate_catalog::{ColumnSpec, TableSpec};

use super::client::{HivePartition, HiveTable, MetastoreClient};
use super::types::{hive_type, spark_schema};
use crate::sources::{parquet, text};
use crate::storage::listing::listing_location_of;

/// Hive's name for the partition of NULL values.
const NULL_PARTITION: &str = "__HIVE_DEFAULT_PARTITION__";

#[derive(Debug)]
pub(crate) struct HiveTableProvider {
    client: Arc<dyn MetastoreClient>,
    /// The name of the catalog the table is read through, for its views' names.
    catalog: String,
    table: HiveTable,
    schema: SchemaRef,
    file_schema: SchemaRef,
    partition_fields: Vec<FieldRef>,
    /// The format to read the files with, or why lakegate cannot.
    format: Result<Arc<dyn FileFormat>, String>,
}

/// The format of a table's files, from Spark's provider property or Hive's input format and SerDe.
fn format(table: &HiveTable) -> Result<Arc<dyn FileFormat>, String> {
    let name = format!("{}.{}", table.database, table.name);
    if table.is_view() {
        return Err(format!("{name} is a view: lakegate reads it by planning its SQL, not its files"));
    }
    let options = |pairs: &BTreeMap<String, String>| {
        pairs.iter().map(|(k, v)| (k.to_lowercase(), v.clone())).collect::<BTreeMap<_, _>>()
    };
    let spark = table.parameters.get("spark.sql.sources.provider").map(|p| p.to_lowercase());
    let serde = table.serde.as_str();
    let read = match spark.as_deref() {
        Some("parquet" | "org.apache.spark.sql.parquet") => Ok((parquet::file_format(), String::new())),
        Some("csv") => text::file_format(text::Text::Csv, &options(&table.serde_parameters)),
        Some("json") => text::file_format(text::Text::Json, &options(&table.serde_parameters)),
        Some(other) if other != "hive" => {
            return Err(format!("{name} is stored as {other}, which lakegate cannot read"));
        }
        _ if table.input_format.contains("Parquet") => Ok((parquet::file_format(), String::new())),
        _ if serde.ends_with("OpenCSVSerde") => {
            let p = &table.serde_parameters;
            let mut csv = BTreeMap::from([
                ("sep".to_owned(), p.get("separatorChar").cloned().unwrap_or_else(|| ",".into())),
                ("quote".to_owned(), p.get("quoteChar").cloned().unwrap_or_else(|| "\"".into())),
                ("escape".to_owned(), p.get("escapeChar").cloned().unwrap_or_else(|| "\\".into())),
            ]);
            if table.parameters.get("skip.header.line.count").is_some_and(|n| n == "1") {
                csv.insert("header".into(), "true".into());
            }
            text::file_format(text::Text::Csv, &csv)
        }
        _ if serde.contains("JsonSerDe") => text::file_format(text::Text::Json, &BTreeMap::new()),
        _ => {
            let what = if table.input_format.is_empty() { serde } else { &table.input_format };
            return Err(format!("{name} is stored in a format lakegate cannot read ({what})"));
        }
    };
    read.map(|(format, _)| format).map_err(|e| format!("{name}: {e}"))
}

impl HiveTableProvider {
    /// # Errors
    /// None yet: a table lakegate cannot read is described, and says why when scanned.
    pub(crate) fn try_new(client: Arc<dyn MetastoreClient>, catalog: &str, table: HiveTable) -> DFResult<Self> {
        let mut format = format(&table);
        let keys: Vec<&str> = table.partition_keys.iter().map(|k| k.name.as_str()).collect();
        // Spark keeps its own schema when Hive's types cannot say it; it lists partition columns too.
        let mut data: Vec<Field> = match spark_schema(&table.parameters) {
            Some(fields) => fields.into_iter().filter(|f| !keys.contains(&f.name().to_lowercase().as_str())).collect(),
            None => table
                .columns
                .iter()
                .map(|c| {
                    let data_type = hive_type(&c.hive_type).unwrap_or_else(|| {
                        let why =
                            format!("column {} has Hive type {}, which lakegate cannot read", c.name, c.hive_type);
                        format = Err(why);
                        DataType::Utf8
                    });
                    Field::new(&c.name, data_type, true)
                })
                .collect(),
        };
        data.iter_mut().for_each(|f| *f = f.clone().with_name(f.name().to_lowercase()));
        let partition_fields: Vec<FieldRef> = table
            .partition_keys
            .iter()
            .map(|k| {
                // Partition values are typed as DataFusion's listing types them.
                let data_type = match hive_type(&k.hive_type) {
                    Some(DataType::Utf8View) | None => DataType::Utf8,
                    Some(other) => other,
                };
                Arc::new(Field::new(&k.name, data_type, true))
            })
            .collect();
        let file_schema = Arc::new(Schema::new(data));
        let mut all: Vec<FieldRef> = file_schema.fields().iter().cloned().collect();
        all.extend(partition_fields.iter().cloned());
        let catalog = catalog.to_owned();
        Ok(Self { client, catalog, table, schema: Arc::new(Schema::new(all)), file_schema, partition_fields, format })
    }

    /// For a view: its SQL, and the catalog and database its unqualified names are read in
    /// (Spark keeps the current database of the view's creation; Hive qualifies every name).
    pub(crate) fn view(&self) -> Option<(&str, &str, &str)> {
        let sql = self.table.view_text.as_deref().filter(|_| self.table.is_view())?;
        let parameters = &self.table.parameters;
        let namespace = match parameters.get("view.catalogAndNamespace.numParts").map(String::as_str) {
            Some("2") => parameters.get("view.catalogAndNamespace.part.1"),
            _ => None,
        };
        Some((sql, &self.catalog, namespace.map_or(self.table.database.as_str(), String::as_str)))
    }

    /// The table as lakegate's writer takes it: Parquet files under the table's location.
    ///
    /// # Errors
    /// The table is not stored as Parquet.
    pub(crate) fn write_spec(&self, catalog: &str) -> Result<TableSpec, String> {
        let parquet = self.format.as_ref().is_ok_and(|f| f.get_ext() == "parquet");
        if !parquet {
            return Err(format!(
                "INSERT into {catalog}.{}.{}: lakegate writes the metastore's Parquet tables only",
                self.table.database, self.table.name
            ));
        }
        let column = |f: &FieldRef| ColumnSpec::new(f.name(), f.data_type(), true);
        Ok(TableSpec {
            database: format!("{catalog}.{}", self.table.database),
            name: self.table.name.clone(),
            kind: parquet::KIND.to_owned(),
            location: self.table.location.clone(),
            options: BTreeMap::new(),
            columns: self.file_schema.fields().iter().map(column).collect(),
            partition_columns: self.partition_fields.iter().map(column).collect(),
            comment: None,
        })
    }

    /// Registers the partitions a write made (`dt=2024-01-05/region=eu`, escaped as Hive
    /// escapes them) that the metastore does not have yet, at their directories.
    pub(crate) async fn add_partitions(&self, dirs: &[String]) -> DFResult<()> {
        let root = self.table.location.trim_end_matches('/');
        let partitions: Vec<HivePartition> = dirs
            .iter()
            .filter(|d| !d.is_empty())
            .map(|dir| HivePartition {
                values: dir
                    .split('/')
                    .map(|part| {
                        let value = part.split_once('=').map_or(part, |(_, v)| v);
                        percent_encoding::percent_decode_str(value).decode_utf8_lossy().into_owned()
                    })
                    .collect(),
                location: format!("{root}/{dir}"),
            })
            .collect();
        if partitions.is_empty() {
            return Ok(());
        }
        self.client.add_partitions(&self.table, &partitions).await.map_err(|e| DataFusionError::External(Box::new(e)))
    }

    pub(crate) fn partition_columns(&self) -> Vec<String> {
        self.partition_fields.iter().map(|f| f.name().clone()).collect()
    }

    /// The metastore filter for the predicates on string partition keys, e.g.
    /// `dt = "2024-01-01" and (region = "eu" or region = "us")`; `None` for every partition.
    fn partition_filter(&self, filters: &[Expr]) -> Option<String> {
        let keys: Vec<&str> = self
            .partition_fields
            .iter()
            .filter(|f| f.data_type() == &DataType::Utf8)
            .map(|f| f.name().as_str())
            .filter(|k| k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
            .collect();
        let literal = |text: &str| self.client.filter_literal(text);
        let parts: Vec<String> = filters.iter().filter_map(|f| metastore_filter(f, &keys, &literal)).collect();
        (!parts.is_empty()).then(|| parts.join(" and "))
    }

    async fn partitions(&self, filters: &[Expr]) -> DFResult<Vec<HivePartition>> {
        if self.partition_fields.is_empty() {
            return Ok(vec![HivePartition { values: Vec::new(), location: self.table.location.clone() }]);
        }
        let filter = self.partition_filter(filters);
        tracing::debug!(table = %self.table.name, ?filter, "fetching partitions");
        self.client.partitions(&self.table, filter.as_deref()).await.map_err(|e| DataFusionError::External(Box::new(e)))
    }
}

/// `expr` in the metastore's filter language, with `quote` writing its string literals.
fn metastore_filter(expr: &Expr, keys: &[&str], quote: &dyn Fn(&str) -> Option<String>) -> Option<String> {
    let column = |e: &Expr| match e {
        Expr::Column(c) if keys.contains(&c.name.as_str()) => Some(c.name.clone()),
        _ => None,
    };
    let literal = |e: &Expr| match e {
        Expr::Literal(
            ScalarValue::Utf8(Some(s)) | ScalarValue::Utf8View(Some(s)) | ScalarValue::LargeUtf8(Some(s)),
            _,
        ) => quote(s),
        _ => None,
    };
    match expr {
        Expr::BinaryExpr(BinaryExpr { left, op: op @ (Operator::And | Operator::Or), right }) => {
            let word = if *op == Operator::And { "and" } else { "or" };
            Some(format!("({} {word} {})", metastore_filter(left, keys, quote)?, metastore_filter(right, keys, quote)?))
        }
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
            let (key, value, op) = match (column(left), literal(right)) {
                (Some(key), Some(value)) => (key, value, *op),
                _ => (column(right)?, literal(left)?, op.swap()?),
            };
            let op = match op {
                Operator::Eq => "=",
                Operator::NotEq => "<>",
                Operator::Lt => "<",
                Operator::LtEq => "<=",
                Operator::Gt => ">",
                Operator::GtEq => ">=",
                _ => return None,
            };
            Some(format!("{key} {op} {value}"))
        }
        Expr::InList(list) if !list.negated && !list.list.is_empty() => {
            let key = column(&list.expr)?;
            let values =
                list.list.iter().map(|v| Some(format!("{key} = {}", literal(v)?))).collect::<Option<Vec<_>>>()?;
            Some(format!("({})", values.join(" or ")))
        }
        _ => None,
    }
}

fn partition_value(text: &str, data_type: &DataType) -> DFResult<ScalarValue> {
    if text == NULL_PARTITION {
        return ScalarValue::try_from(data_type);
    }
    ScalarValue::try_from_string(text.to_owned(), data_type)
}

/// Hadoop's rule, which Hive and Spark follow: names starting with `_` or `.` are not data
/// (`_SUCCESS`, `_temporary/`, `.crc` files).
fn is_hidden(url: &ListingTableUrl, location: &object_store::path::Path) -> bool {
    url.strip_prefix(location).is_some_and(|mut parts| parts.any(|p| p.starts_with('_') || p.starts_with('.')))
}

#[async_trait]
impl TableProvider for HiveTableProvider {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        if self.table.is_view() { TableType::View } else { TableType::Base }
    }

    fn supports_filters_pushdown(&self, filters: &[&Expr]) -> DFResult<Vec<TableProviderFilterPushDown>> {
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        let format = self.format.as_ref().map_err(|why| DataFusionError::NotImplemented(why.clone()))?;
        let mut by_store: BTreeMap<String, (ListingTableUrl, Vec<PartitionedFile>)> = BTreeMap::new();
        for partition in self.partitions(filters).await? {
            let in_partition = |e: DataFusionError| e.context(format!("reading partition {}", partition.location));
            let url = ListingTableUrl::parse(listing_location_of(&partition.location, "")).map_err(in_partition)?;
            let store = state.runtime_env().object_store(&url).map_err(in_partition)?;
            let values = partition
                .values
                .iter()
                .zip(&self.partition_fields)
                .map(|(v, f)| partition_value(v, f.data_type()))
                .collect::<DFResult<Vec<_>>>()
                .map_err(in_partition)?;
            let files: Vec<_> = url
                .list_all_files(state, store.as_ref(), "")
                .await
                .map_err(in_partition)?
                .try_collect()
                .await
                .map_err(in_partition)?;
            let entry =
                by_store.entry(url.object_store().as_str().to_owned()).or_insert_with(|| (url.clone(), Vec::new()));
            for file in files.into_iter().filter(|f| f.size > 0 && !is_hidden(&url, &f.location)) {
                entry.1.push(PartitionedFile::from(file).with_partition_values(values.clone()));
            }
        }
        let projected = match projection {
            Some(p) => Arc::new(self.schema.project(p)?),
            None => Arc::clone(&self.schema),
        };
        let groups_wanted = state.config_options().execution.target_partitions.max(1);
        let mut plans = Vec::new();
        for (url, files) in by_store.into_values().filter(|(_, files)| !files.is_empty()) {
            let mut groups = vec![Vec::new(); groups_wanted.min(files.len())];
            let count = groups.len();
            for (i, file) in files.into_iter().enumerate() {
                groups[i % count].push(file);
            }
            let source = format.file_source(
                TableSchema::builder(Arc::clone(&self.file_schema))
                    .with_table_partition_cols(self.partition_fields.clone())
                    .build(),
            );
            let config = FileScanConfigBuilder::new(url.object_store(), source)
                .with_file_groups(groups.into_iter().map(FileGroup::new).collect())
                .with_projection_indices(projection.cloned())?
                .with_limit(limit)
                .build();
            plans.push(format.create_physical_plan(state, config).await?);
        }
        if plans.is_empty() {
            return Ok(Arc::new(EmptyExec::new(projected)));
        }
        UnionExec::try_new(plans)
    }
}

#[cfg(test)]
mod tests {
    use datafusion::logical_expr::{col, lit};

    use super::*;

    #[test]
    fn partition_predicates_become_metastore_filters_and_nothing_else_does() {
        let keys = ["dt", "region"];
        let hive = super::super::client::ThriftClient::new("thrift://metastore:9083").expect("a metastore URI");
        let quote = |text: &str| hive.filter_literal(text);
        let filter = |e: Expr| metastore_filter(&e, &keys, &quote);
        assert_eq!(filter(col("dt").eq(lit("2024-01-01"))).as_deref(), Some(r#"dt = "2024-01-01""#));
        assert_eq!(filter(lit("2024-01-01").lt(col("dt"))).as_deref(), Some(r#"dt > "2024-01-01""#));
        assert_eq!(
            filter(col("region").in_list(vec![lit("eu"), lit("it's")], false)).as_deref(),
            Some(r#"(region = "eu" or region = "it's")"#)
        );
        assert_eq!(
            filter(col("dt").gt_eq(lit("a")).or(col("region").eq(lit(r#"say "hi""#)))).as_deref(),
            Some(r#"(dt >= "a" or region = 'say "hi"')"#)
        );
        // Not expressible, or not only partition keys: every partition is fetched, then filtered.
        assert_eq!(filter(col("dt").eq(lit(r#"it's "x""#))), None);
        assert_eq!(filter(col("uid").eq(lit("1"))), None);
        assert_eq!(filter(col("dt").eq(lit("a")).or(col("uid").eq(lit("1")))), None);
        assert_eq!(filter(col("dt").like(lit("2024%"))), None);
    }
}
