//! The sources lakegate reads, one folder per kind, each implementing `SourceFactory`.

pub mod cassandra;
pub mod parquet;

use std::sync::Arc;

use lakegate_catalog::Sources;

use crate::config::Config;
use crate::storage::ObjectStores;

/// Every source kind this build of lakegate can read.
pub fn all(stores: &Arc<ObjectStores>, config: &Config) -> Sources {
    Sources::new(vec![
        Arc::new(parquet::ParquetSource::new(Arc::clone(stores))),
        Arc::new(cassandra::CassandraSource::new(config.cassandra.clone())),
    ])
}
