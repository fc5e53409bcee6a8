//! lakegate: a federated SQL gateway. S3 Parquet, PostgreSQL, Redshift and Cassandra tables
//! behind one persistent catalog and one SQL dialect (DataFusion's, plus the Hive and Spark
//! spellings that existing scripts use), run by Apache DataFusion.

pub mod access;
pub mod cluster;
pub mod config;
pub mod demo;
mod error;
pub mod flight;
pub mod history;
pub mod metastore;
pub mod metrics;
pub mod output;
pub mod repl;
pub mod session;
pub mod sources;
pub mod sql;
pub mod storage;
pub mod telemetry;
pub mod write;

pub use config::Config;
pub use error::{Error, Result, Stopped};
pub use session::{Lakegate, Session};
