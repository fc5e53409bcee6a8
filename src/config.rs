//! Configuration: `lakegate.toml`, then `LAKEGATE_*` environment variables, then flags.
//!
//! Each part owns its section (`[s3]` storage, `[cassandra]` the Cassandra source, `[server]`
//! the Flight SQL server, `[execution]` and `[geodata]` the session); this file only composes
//! them and reads the environment.

use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use crate::cluster::ClusterConfig;
pub use crate::flight::{ServerConfig, UserConfig};
pub use crate::metastore::CatalogConfig;
pub use crate::session::{CacheConfig, EngineConfig, ExecutionConfig, GeodataConfig, LayerConfig};
pub use crate::sources::cassandra::CassandraConfig;
pub use crate::storage::S3Config;
pub use crate::telemetry::TelemetryConfig;
use crate::{Error, Result};

/// Everything a lakegate process needs to know before it opens the catalog.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where the embedded catalog and the default warehouse live (default `./.lakegate`).
    pub data_dir: Option<PathBuf>,
    pub s3: S3Config,
    pub execution: ExecutionConfig,
    pub geodata: GeodataConfig,
    pub server: ServerConfig,
    pub cassandra: CassandraConfig,
    pub telemetry: TelemetryConfig,
    pub cache: CacheConfig,
    /// `[[catalogs]]`: metastores whose databases appear beside lakegate's own.
    pub catalogs: Vec<CatalogConfig>,
    pub cluster: ClusterConfig,
}

/// `LAKEGATE_S3_*`: the `[s3]` settings from the environment.
fn s3_from_env(get: &impl Fn(&str) -> Option<String>) -> Result<S3Config> {
    Ok(S3Config {
        endpoint: get("LAKEGATE_S3_ENDPOINT"),
        region: get("LAKEGATE_S3_REGION"),
        access_key_id: get("LAKEGATE_S3_ACCESS_KEY_ID"),
        secret_access_key: get("LAKEGATE_S3_SECRET_ACCESS_KEY"),
        session_token: get("LAKEGATE_S3_SESSION_TOKEN"),
        allow_http: parse_bool("LAKEGATE_S3_ALLOW_HTTP", get("LAKEGATE_S3_ALLOW_HTTP"))?,
        path_style: parse_bool("LAKEGATE_S3_PATH_STYLE", get("LAKEGATE_S3_PATH_STYLE"))?,
    })
}

fn parse_bool(name: &str, value: Option<String>) -> Result<Option<bool>> {
    value
        .map(|v| match v.to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => Ok(true),
            "0" | "false" | "no" | "off" => Ok(false),
            _ => Err(Error::Config(format!("{name}={v} is not a boolean (use true or false)"))),
        })
        .transpose()
}

impl Config {
    /// Reads `path` if given (it must exist), else `./lakegate.toml` if present, then applies
    /// the `LAKEGATE_*` environment variables.
    ///
    /// # Errors
    /// [`Error::Config`] naming the file and the problem (unknown keys included).
    pub fn load(path: Option<&Path>) -> Result<Config> {
        let default = Path::new("lakegate.toml");
        let file = match path {
            Some(p) => Some(p),
            None if default.exists() => Some(default),
            None => None,
        };
        let mut config = match file {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .map_err(|e| Error::Config(format!("cannot read config file {}: {e}", p.display())))?;
                toml::from_str(&text).map_err(|e| Error::Config(format!("config file {}: {e}", p.display())))?
            }
            None => Config::default(),
        };
        config.apply_env(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))?;
        Ok(config)
    }

    fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<()> {
        if let Some(endpoint) = get("LAKEGATE_OTLP_ENDPOINT") {
            self.telemetry.otlp_endpoint = Some(endpoint);
        }
        if let Some(on) = parse_bool("LAKEGATE_QUERY_LOG", get("LAKEGATE_QUERY_LOG"))? {
            self.telemetry.query_log = on;
        }
        if let Some(dir) = get("LAKEGATE_DATA_DIR") {
            self.data_dir = Some(dir.into());
        }
        if let Some(scheduler) = get("LAKEGATE_CLUSTER_SCHEDULER") {
            self.cluster.scheduler = Some(scheduler);
        }
        if let Some(listen) = get("LAKEGATE_LISTEN") {
            self.server.listen = Some(listen);
        }
        if let Some(cert) = get("LAKEGATE_TLS_CERT") {
            self.server.tls_cert = Some(cert.into());
        }
        if let Some(key) = get("LAKEGATE_TLS_KEY") {
            self.server.tls_key = Some(key.into());
        }
        self.s3 = self.s3.overlaid_with(&s3_from_env(&get)?);
        if let Some(points) = get("LAKEGATE_CASSANDRA_CONTACT_POINTS") {
            self.cassandra.contact_points =
                points.split(',').map(|p| p.trim().to_owned()).filter(|p| !p.is_empty()).collect();
        }
        let number = |name: &str| -> Result<Option<usize>> {
            get(name).map(|v| v.parse().map_err(|_| Error::Config(format!("{name}={v} is not a number")))).transpose()
        };
        if let Some(n) = number("LAKEGATE_TARGET_PARTITIONS")? {
            self.execution.target_partitions = Some(n);
        }
        if let Some(n) = number("LAKEGATE_MEMORY_LIMIT_MB")? {
            self.execution.memory_limit_mb = Some(n);
        }
        Ok(())
    }

    pub fn data_dir(&self) -> PathBuf {
        self.data_dir.clone().unwrap_or_else(|| PathBuf::from(".lakegate"))
    }
}

impl From<Config> for EngineConfig {
    fn from(config: Config) -> Self {
        EngineConfig {
            data_dir: config.data_dir(),
            s3: config.s3,
            cassandra: config.cassandra,
            execution: config.execution,
            geodata: config.geodata,
            allowed_locations: config.server.allowed_locations,
            max_concurrent_queries: config.server.max_concurrent_queries,
            max_queries_per_user: config.server.max_queries_per_user,
            query_log_days: config.telemetry.query_log.then(|| config.telemetry.query_log_days.unwrap_or(30)),
            cache: config.cache,
            catalogs: config.catalogs,
            cluster: config.cluster,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn environment_overrides_the_file() {
        let mut config: Config =
            toml::from_str("data_dir = '/srv/lg'\n[s3]\nendpoint = 'http://a:1'\nregion = 'eu-west-1'\n")
                .expect("valid toml");
        let env = HashMap::from([("LAKEGATE_S3_ENDPOINT", "http://b:2"), ("LAKEGATE_S3_PATH_STYLE", "true")]);
        config.apply_env(|k| env.get(k).map(|v| v.to_string())).expect("valid env");
        assert_eq!(config.s3.endpoint.as_deref(), Some("http://b:2"));
        assert_eq!(config.s3.region.as_deref(), Some("eu-west-1"));
        assert_eq!(config.s3.path_style, Some(true));
        assert_eq!(config.data_dir(), PathBuf::from("/srv/lg"));
    }

    #[test]
    fn typos_in_the_file_are_errors() {
        let err = toml::from_str::<Config>("[s3]\nendpiont = 'x'\n").unwrap_err().to_string();
        assert!(err.contains("endpiont"), "{err}");
    }

    #[test]
    fn malformed_booleans_are_named() {
        let mut config = Config::default();
        let err = config.apply_env(|k| (k == "LAKEGATE_S3_ALLOW_HTTP").then(|| "maybe".to_owned())).unwrap_err();
        assert!(err.to_string().contains("LAKEGATE_S3_ALLOW_HTTP"), "{err}");
    }
}
