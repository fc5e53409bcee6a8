//! lakegate's persistent catalog.
//!
//! One catalog for every source: databases and tables (source kind, location, options, schema,
//! partition columns) stored transactionally in SQLite, exposed to DataFusion through its
//! `CatalogProvider`/`SchemaProvider` traits. The catalog knows no concrete source: each kind
//! implements [`SourceFactory`], and table providers are built lazily, on first use.

mod cache;
mod error;
mod provider;
mod secret;
mod source;
mod spec;
mod store;

pub use cache::{Cache, CacheDefinition, CacheState, cache_generation, count_cache_hit, parquet_bytes};
pub use error::{Error, Result};
pub use provider::{Catalog, SessionCatalog, check_name, wait_in_place};
pub use secret::{is_reference, mask_secrets, resolve_reference};
pub use source::{Capabilities, Options, ParamKind, ParamSpec, SourceFactory, Sources};
pub use spec::{ColumnSpec, TableSpec};
