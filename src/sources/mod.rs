//! The sources lakegate reads, one folder per kind, each implementing `SourceFactory`.

pub mod cassandra;
pub mod parquet;
pub mod postgres;
pub mod redshift;

use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::physical_expr::EquivalenceProperties;
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::{Partitioning, PlanProperties};
use lakegate_catalog::Sources;

use self::postgres::{Dialect, Pools, RemoteSource};
use crate::storage::ObjectStores;

/// The plan properties of a remote scan: `partitions` independent, bounded, unordered streams.
pub(crate) fn scan_properties(schema: &SchemaRef, partitions: usize) -> Arc<PlanProperties> {
    Arc::new(PlanProperties::new(
        EquivalenceProperties::new(Arc::clone(schema)),
        Partitioning::UnknownPartitioning(partitions),
        EmissionType::Incremental,
        Boundedness::Bounded,
    ))
}

/// Every source kind this build of lakegate can read.
pub fn all(stores: &Arc<ObjectStores>, cassandra: &cassandra::CassandraConfig) -> Sources {
    // PostgreSQL and Redshift tables on the same server share connections.
    let pools = Arc::new(Pools::default());
    Sources::new(vec![
        Arc::new(parquet::ParquetSource::new(Arc::clone(stores))),
        Arc::new(RemoteSource::new(Dialect::Postgres, Arc::clone(&pools), Arc::clone(stores))),
        Arc::new(RemoteSource::new(Dialect::Redshift, pools, Arc::clone(stores))),
        Arc::new(cassandra::CassandraSource::new(cassandra.clone())),
    ])
}
