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

/// True when a scan of `spec` can run on a cluster's executors: its source says so, the
/// table uses the S3 settings every node has (a table's own settings stay in this process),
/// and a PostgreSQL table is read in one query. Split reads (`partitionColumn`) stay here:
/// on Ballista 55 the rows of a scan of more than two partitions came back more than once.
pub fn runs_on_cluster(sources: &Sources, spec: &TableSpec) -> bool {
    sources.capabilities(&spec.kind).runs_on_cluster && !files::has_own_store(spec) && !postgres::reads_in_splits(spec)
}

/// A scan's bytes for another node of a cluster, when its source's scans travel there: its
/// table's spec (secrets as references) and the scan's own queries.
///
/// # Errors
/// The scan's schema does not encode.
pub fn encode_scan(plan: &dyn ExecutionPlan) -> Option<DFResult<Vec<u8>>> {
    let scan = plan.downcast_ref::<postgres::PostgresScanExec>()?;
    if scan.properties().partitioning.partition_count() > 1 {
        // See [`runs_on_cluster`]: a wrong answer must never be the outcome.
        return Some(Err(DataFusionError::NotImplemented(
            "a PostgreSQL read split in several queries does not run on a cluster".to_owned(),
        )));
    }
    Some(
        scan.recipe()
            .and_then(|recipe| serde_json::to_vec(&recipe).map_err(|e| DataFusionError::External(Box::new(e)))),
    )
}

/// The scan that [`encode_scan`] made `bytes` of, over its table rebuilt by `sources` (so with
/// this process's connections and environment).
///
/// # Errors
/// Bytes that are no scan, or the table cannot be rebuilt (its server is unreachable).
pub async fn decode_scan(sources: &Sources, bytes: &[u8]) -> DFResult<Arc<dyn ExecutionPlan>> {
    let recipe: postgres::ScanRecipe = serde_json::from_slice(bytes)
        .map_err(|e| DataFusionError::Internal(format!("a scan sent by the cluster does not parse: {e}")))?;
    let table = sources.get(&recipe.spec.kind).map_err(DataFusionError::from)?.create(&recipe.spec).await?;
    let remote = match table.downcast_ref::<postgres::RemoteTable>() {
        Some(remote) => remote,
        None => {
            table.downcast_ref::<redshift::RedshiftTable>().map(redshift::RedshiftTable::remote).ok_or_else(|| {
                DataFusionError::Internal(format!("{} is not read by PostgreSQL scans", recipe.spec.qualified_name()))
            })?
        }
    };
    Ok(Arc::new(postgres::PostgresScanExec::from_recipe(remote, recipe)?))
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
