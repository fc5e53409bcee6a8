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
use datafusion::physical_expr::EquivalenceProperties;
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
