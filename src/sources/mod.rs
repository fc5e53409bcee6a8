//! The sources lakegate reads, one folder per kind, each implementing `SourceFactory`.
//!
//! Every source has the same shape (see "Adding a source" in the README): `mod.rs` holds its
//! factory (kind, aliases, typed options, capabilities) and table provider, `connection.rs`
//! how it connects, `schema.rs` its type mapping, `pushdown.rs` the remote query, `exec.rs`
//! the scan. [`all`] is the one place that lists them.

pub mod cassandra;
mod files;
pub mod parquet;
pub mod postgres;
pub mod redshift;
pub mod rewrite;
pub mod text;

use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::error::{DataFusionError, Result as DFResult};
use datafusion::physical_expr::EquivalenceProperties;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::{Partitioning, PlanProperties};
use lakegate_catalog::{Sources, TableSpec};

use self::cassandra::CassandraConfig;
use crate::storage::ObjectStores;

/// The kind of a table created without `STORED AS` / `USING`, as in Spark.
pub const DEFAULT_KIND: &str = parquet::KIND;

/// The plan properties of a remote scan: `partitions` independent, bounded, unordered streams.
pub(crate) fn scan_properties(schema: &SchemaRef, partitions: usize) -> Arc<PlanProperties> {
    Arc::new(PlanProperties::new(
        EquivalenceProperties::new(Arc::clone(schema)),
        Partitioning::UnknownPartitioning(partitions),
        EmissionType::Incremental,
        Boundedness::Bounded,
    ))
}

/// Every source kind this build of lakegate can read, each given its own part of the
/// configuration: the object stores, the `[cassandra]` section.
pub fn all(stores: &Arc<ObjectStores>, cassandra: &CassandraConfig) -> Sources {
    // Tables on PostgreSQL's wire protocol share connections, and a JDBC URL's scheme picks
    // the dialect among these.
    let wire = Arc::new(postgres::Wire::new(vec![&postgres::POSTGRES, &redshift::DIALECT]));
    Sources::new(vec![
        Arc::new(parquet::ParquetSource::new(Arc::clone(stores))),
        Arc::new(text::TextSource::new(text::Text::Csv, Arc::clone(stores))),
        Arc::new(text::TextSource::new(text::Text::Json, Arc::clone(stores))),
        Arc::new(postgres::PostgresSource::new(Arc::clone(&wire))),
        Arc::new(redshift::RedshiftSource::new(wire, Arc::clone(stores))),
        Arc::new(cassandra::CassandraSource::new(cassandra.clone())),
    ])
}

/// True when a scan of `spec` can run on a cluster's executors: its source says so, and the
/// table uses the S3 settings every node has (a table's own settings stay in this process).
pub fn runs_on_cluster(sources: &Sources, spec: &TableSpec) -> bool {
    sources.capabilities(&spec.kind).runs_on_cluster && !files::has_own_store(spec)
}

/// What a scan of a lakegate source travels as: its table's spec (secrets as references) and
/// what the scan reads, from which each node rebuilds it over its own connections.
#[derive(serde::Serialize, serde::Deserialize)]
enum ScanRecipe {
    Postgres(postgres::ScanRecipe),
    Cassandra(cassandra::ScanRecipe),
    Unload(redshift::UnloadRecipe),
}

/// True for the scans [`encode_scan`] encodes: each output partition reads a split of the
/// table (a query, a group of token ranges) independently of the others.
pub fn reads_splits(plan: &dyn ExecutionPlan) -> bool {
    plan.is::<postgres::PostgresScanExec>() || plan.is::<cassandra::CassandraScanExec>()
}

/// A scan's bytes for another node of a cluster, when its source's scans travel there.
///
/// # Errors
/// The scan's schema or filters do not encode.
pub fn encode_scan(plan: &dyn ExecutionPlan) -> Option<DFResult<Vec<u8>>> {
    let recipe = if let Some(scan) = plan.downcast_ref::<postgres::PostgresScanExec>() {
        scan.recipe().map(ScanRecipe::Postgres)
    } else if let Some(scan) = plan.downcast_ref::<redshift::UnloadExec>() {
        scan.recipe().map(ScanRecipe::Unload)
    } else {
        Ok(ScanRecipe::Cassandra(plan.downcast_ref::<cassandra::CassandraScanExec>()?.recipe()))
    };
    Some(recipe.and_then(|recipe| serde_json::to_vec(&recipe).map_err(|e| DataFusionError::External(Box::new(e)))))
}

/// The scan that [`encode_scan`] made `bytes` of, over its table rebuilt by `sources` (so with
/// this process's connections and environment).
///
/// # Errors
/// Bytes that are no scan, or the table cannot be rebuilt (its server is unreachable).
pub async fn decode_scan(sources: &Sources, bytes: &[u8]) -> DFResult<Arc<dyn ExecutionPlan>> {
    let recipe: ScanRecipe = serde_json::from_slice(bytes)
        .map_err(|e| DataFusionError::Internal(format!("a scan sent by the cluster does not parse: {e}")))?;
    let spec = match &recipe {
        ScanRecipe::Postgres(recipe) => &recipe.spec,
        ScanRecipe::Cassandra(recipe) => &recipe.spec,
        ScanRecipe::Unload(recipe) => &recipe.spec,
    };
    let table = sources.get(&spec.kind).map_err(DataFusionError::from)?.create(spec).await?;
    let wrong_table = format!("{} is not read by its scan", spec.qualified_name());
    let wrong_table = || DataFusionError::Internal(wrong_table);
    match recipe {
        ScanRecipe::Postgres(recipe) => {
            let remote = match table.downcast_ref::<postgres::RemoteTable>() {
                Some(remote) => remote,
                None => table
                    .downcast_ref::<redshift::RedshiftTable>()
                    .map(redshift::RedshiftTable::remote)
                    .ok_or_else(wrong_table)?,
            };
            Ok(Arc::new(postgres::PostgresScanExec::from_recipe(remote, recipe)?))
        }
        ScanRecipe::Cassandra(recipe) => {
            table.downcast_ref::<cassandra::CassandraTable>().ok_or_else(wrong_table)?.scan_from(recipe)
        }
        ScanRecipe::Unload(recipe) => {
            table.downcast_ref::<redshift::RedshiftTable>().ok_or_else(wrong_table)?.unload_from(recipe)
        }
    }
}

/// A scan's result schema as bytes for its recipe (DataFusion's protobuf form).
///
/// # Errors
/// A type protobuf cannot carry.
pub(crate) fn schema_bytes(schema: &SchemaRef) -> DFResult<Vec<u8>> {
    use prost::Message;
    Ok(datafusion_proto::protobuf::Schema::try_from(schema.as_ref())?.encode_to_vec())
}

/// The schema [`schema_bytes`] made `bytes` of; `scan` names the scan in the error.
///
/// # Errors
/// Bytes that are no schema.
pub(crate) fn schema_from_bytes(bytes: &[u8], scan: &str) -> DFResult<SchemaRef> {
    use prost::Message;
    let schema = datafusion_proto::protobuf::Schema::decode(bytes)
        .map_err(|e| DataFusionError::Internal(format!("the schema of a scan of {scan}: {e}")))?;
    Ok(Arc::new((&schema).try_into()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every default a source declares is a valid value of its option.
    #[test]
    fn declared_defaults_are_valid_values() {
        let sources = all(&Arc::new(ObjectStores::new(Default::default())), &CassandraConfig::default());
        for kind in sources.kinds() {
            let factory = sources.get(kind).expect("listed");
            for param in factory.params() {
                if let Some(default) = param.default {
                    assert!(param.check(default).is_ok(), "{kind}: {} = {default}", param.name);
                }
            }
        }
        assert!(sources.capabilities(DEFAULT_KIND).writable);
    }
}
