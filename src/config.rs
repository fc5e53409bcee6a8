//! Configuration: `lakegate.toml`, then `LAKEGATE_*` environment variables, then flags.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::sources::cassandra::CassandraConfig;
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
}

/// `lakegate serve`: where it listens, TLS, and who may connect.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address to listen on (default `127.0.0.1:50051`).
    pub listen: Option<String>,
    /// PEM certificate chain and private key: with both, clients connect with `grpc+tls://`.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Users allowed to connect; without any, the server accepts everyone and listens only on
    /// loopback (unless started with `--insecure-allow-remote`).
    pub users: Vec<UserConfig>,
    /// How long a session token stays valid without use, in minutes (default 480).
    pub token_idle_minutes: Option<u64>,
    /// Where admins may point a table's LOCATION: prefixes such as `s3://lake/` or `/data/`.
    /// Empty (the default) allows any location.
    pub allowed_locations: Vec<String>,
}

/// One `[[server.users]]` entry. The password is stored as an Argon2 hash
/// (`lakegate hash-password` makes one), never in clear.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    pub name: String,
    pub password_hash: String,
    /// `admin`, `writer` or `reader` (the default).
    #[serde(default)]
    pub role: crate::access::Role,
    /// The databases this user may read (and, as a writer, INSERT into); `"*"` for all.
    /// Admins need none.
    #[serde(default)]
    pub databases: Vec<String>,
}

impl UserConfig {
    pub fn principal(&self) -> crate::access::Principal {
        crate::access::Principal {
            user: self.name.clone(),
            role: self.role,
            databases: self.databases.iter().map(|d| d.to_lowercase()).collect(),
        }
    }
}

/// Polygon layers for `geodata(lon, lat)` and `geo_lookup('layer', lon, lat)`, loaded once
/// per process when it starts.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GeodataConfig {
    pub layers: Vec<LayerConfig>,
}

/// One `[[geodata.layers]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LayerConfig {
    /// The name `geo_lookup` takes.
    pub name: String,
    /// A `.tsv`, `.csv` or `.parquet` file with a header; relative to the working directory.
    pub path: PathBuf,
    /// The column of POLYGON/MULTIPOLYGON WKT (default `wkt`).
    #[serde(default)]
    pub wkt_column: Option<String>,
    /// Attribute columns in output order (default: every other column).
    #[serde(default)]
    pub attributes: Vec<String>,
    /// Fail the load on an invalid (self-intersecting) polygon instead of keeping it with a
    /// warning.
    #[serde(default)]
    pub reject_invalid: bool,
}

/// S3 access, used for every `s3://`, `s3a://` and `s3n://` location unless a table's OPTIONS
/// override it. Unset fields fall back to the standard `AWS_*` variables.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct S3Config {
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    /// A literal or a `${env:NAME}` reference.
    pub secret_access_key: Option<String>,
    pub session_token: Option<String>,
    pub allow_http: Option<bool>,
    /// Path-style requests (`endpoint/bucket/key`), needed by most S3-compatible servers.
    pub path_style: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExecutionConfig {
    /// Parallelism of a query; default: the number of cores.
    pub target_partitions: Option<usize>,
    pub batch_size: Option<usize>,
    /// Memory a process may use for query execution, in MiB; queries that need more spill
    /// or fail instead of taking the machine down. Default: unlimited.
    pub memory_limit_mb: Option<usize>,
    /// How long a listing of a table's files is reused, in seconds (default 10): files that
    /// other writers add appear within this time, or at once after `MSCK REPAIR TABLE` or
    /// `REFRESH TABLE`.
    pub listing_cache_seconds: Option<u64>,
}

impl S3Config {
    /// `self`, with every field that `other` sets taken from `other`.
    pub fn overlaid_with(&self, other: &S3Config) -> S3Config {
        S3Config {
            endpoint: other.endpoint.clone().or_else(|| self.endpoint.clone()),
            region: other.region.clone().or_else(|| self.region.clone()),
            access_key_id: other.access_key_id.clone().or_else(|| self.access_key_id.clone()),
            secret_access_key: other.secret_access_key.clone().or_else(|| self.secret_access_key.clone()),
            session_token: other.session_token.clone().or_else(|| self.session_token.clone()),
            allow_http: other.allow_http.or(self.allow_http),
            path_style: other.path_style.or(self.path_style),
        }
    }

    fn from_env(get: &impl Fn(&str) -> Option<String>) -> Result<S3Config> {
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
        if let Some(dir) = get("LAKEGATE_DATA_DIR") {
            self.data_dir = Some(dir.into());
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
        self.s3 = self.s3.overlaid_with(&S3Config::from_env(&get)?);
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
