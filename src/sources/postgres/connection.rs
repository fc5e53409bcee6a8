//! Connections on PostgreSQL's wire protocol: where a table lives (its URL and options),
//! TLS, and the pools shared by every table and session that connect alike.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use url::Url;

use super::dialect::Dialect;
use super::{Error, describe};

/// Where a table lives and who connects: everything but the password identifies a pool.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Server {
    pub(crate) dialect: &'static Dialect,
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) database: String,
    pub(crate) user: String,
    pub(crate) tls: bool,
    pub(crate) root_cert: Option<String>,
}

impl std::fmt::Display for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} at {}:{} (database {})", self.dialect.name, self.host, self.port, self.database)
    }
}

/// A table's connection settings, read from its location and options.
#[derive(Debug, Clone)]
pub(crate) struct Connection {
    pub(crate) server: Server,
    pub(crate) password: Option<String>,
    /// `[schema.]table` as written.
    pub(crate) table: String,
}

/// The part of a location before `://`, without a `jdbc:` prefix.
pub(crate) fn scheme(location: &str) -> &str {
    location.strip_prefix("jdbc:").unwrap_or(location).split("://").next().unwrap_or_default()
}

impl Connection {
    /// Reads `location` (`postgres://user@host:5432/db`, `jdbc:postgresql://...`,
    /// `jdbc:<scheme>://...?user=..&password=..`) and the resolved options; options win.
    ///
    /// # Errors
    /// [`Error::Location`] for an unparseable URL, one of another dialect, or one without host
    /// or database.
    pub(crate) fn parse(
        location: &str,
        options: &BTreeMap<String, String>,
        dialect: &'static Dialect,
    ) -> Result<Self, Error> {
        let invalid = |reason: &str| Error::Location {
            dialect: dialect.name,
            location: mask_url(location),
            reason: reason.to_owned(),
        };
        let url =
            Url::parse(location.strip_prefix("jdbc:").unwrap_or(location)).map_err(|e| invalid(&e.to_string()))?;
        if !dialect.has_scheme(url.scheme()) {
            let schemes: Vec<String> = dialect.schemes.iter().map(|s| format!("{s}://")).collect();
            return Err(invalid(&format!("expected a {} URL (jdbc: prefix allowed)", schemes.join(" or "))));
        }
        let query: HashMap<String, String> =
            url.query_pairs().map(|(k, v)| (k.to_lowercase(), v.into_owned())).collect();
        let decoded = |s: &str| percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned();
        let host = url.host_str().filter(|h| !h.is_empty()).ok_or_else(|| invalid("no host"))?.to_owned();
        let database = decoded(url.path().trim_start_matches('/'));
        if database.is_empty() {
            return Err(invalid("no database: write postgres://host:5432/<database>"));
        }
        let user = options
            .get("user")
            .cloned()
            .or_else(|| (!url.username().is_empty()).then(|| decoded(url.username())))
            .or_else(|| query.get("user").cloned())
            .ok_or_else(|| invalid("no user: give OPTIONS (user '...') or postgres://<user>@host/db"))?;
        let password = options
            .get("password")
            .cloned()
            .or_else(|| url.password().map(decoded))
            .or_else(|| query.get("password").cloned());
        let sslmode = options
            .get("sslmode")
            .cloned()
            .or_else(|| query.get("sslmode").cloned())
            .or_else(|| query.get("ssl").filter(|v| *v == "true").map(|_| "require".to_owned()))
            .unwrap_or_else(|| "disable".to_owned());
        let tls = match sslmode.to_ascii_lowercase().as_str() {
            "disable" | "allow" | "prefer" => false,
            "require" | "verify-ca" | "verify-full" => true,
            other => {
                return Err(invalid(&format!(
                    "unknown sslmode '{other}' (disable, require, verify-ca or verify-full)"
                )));
            }
        };
        let table = options.get("table").or_else(|| options.get("dbtable")).cloned().unwrap_or_default();
        Ok(Self {
            server: Server {
                dialect,
                host,
                port: url.port().unwrap_or(dialect.default_port),
                database,
                user,
                tls,
                root_cert: options.get("sslrootcert").cloned(),
            },
            password,
            table,
        })
    }

    /// The location without credentials, as the catalog stores it.
    pub(crate) fn location(&self) -> String {
        let s = &self.server;
        let mut url = format!("{}://{}:{}/{}", s.dialect.kind, s.host, s.port, s.database);
        if s.tls {
            url.push_str("?sslmode=require");
        }
        url
    }

    /// `(schema, table)`, quoted names taken literally and plain ones folded to lower case
    /// as the database does.
    ///
    /// # Errors
    /// No table given, or something other than a `[schema.]table` name (e.g. a subquery).
    pub(crate) fn schema_and_table(&self) -> Result<(String, String), Error> {
        let invalid =
            |reason: String| Error::Location { dialect: self.server.dialect.name, location: self.location(), reason };
        if self.table.is_empty() {
            return Err(invalid("no table: give OPTIONS (table 'schema.name')".into()));
        }
        let name = Parser::new(&PostgreSqlDialect {})
            .try_with_sql(&self.table)
            .and_then(|mut p| p.parse_object_name(false))
            .map_err(|e| invalid(format!("table '{}' is not a [schema.]name ({e})", self.table)))?;
        let parts: Vec<String> = name
            .0
            .iter()
            .filter_map(|part| part.as_ident())
            .map(|i| if i.quote_style.is_some() { i.value.clone() } else { i.value.to_lowercase() })
            .collect();
        match parts.as_slice() {
            [table] => Ok(("public".to_owned(), table.clone())),
            [schema, table] => Ok((schema.clone(), table.clone())),
            _ => Err(invalid(format!("table '{}' is not a [schema.]name", self.table))),
        }
    }
}

/// `url` with any password replaced by `***`, for messages.
pub(crate) fn mask_url(url: &str) -> String {
    let (prefix, rest) = url.strip_prefix("jdbc:").map_or(("", url), |r| ("jdbc:", r));
    match Url::parse(rest) {
        Ok(mut parsed) => {
            if parsed.password().is_some() {
                let _ = parsed.set_password(Some("***"));
            }
            let pairs: Vec<(String, String)> = parsed.query_pairs().into_owned().collect();
            if pairs.iter().any(|(k, _)| k.eq_ignore_ascii_case("password")) {
                let mut query = parsed.query_pairs_mut();
                query.clear();
                for (k, v) in &pairs {
                    query.append_pair(k, if k.eq_ignore_ascii_case("password") { "***" } else { v });
                }
            }
            format!("{prefix}{parsed}")
        }
        Err(_) => "(unparseable URL)".to_owned(),
    }
}

/// What every source on PostgreSQL's wire protocol shares: the connection pools (one per
/// server and user, shared by every table and session), and the dialects a URL's scheme can
/// name, so that a JDBC URL of another dialect makes a table of that dialect.
#[derive(Debug)]
pub struct Wire {
    pools: Mutex<HashMap<(Server, Option<String>), Pool>>,
    dialects: Vec<&'static Dialect>,
}

impl Wire {
    pub fn new(dialects: Vec<&'static Dialect>) -> Self {
        Self { pools: Mutex::default(), dialects }
    }

    /// The dialect of `location`, named by its scheme; `default` for a location that is no URL,
    /// so that [`Connection::parse`] explains what is wrong with it.
    ///
    /// # Errors
    /// [`Error::Location`] listing the known schemes, for a URL of none of them.
    pub(crate) fn dialect_of(&self, location: &str, default: &'static Dialect) -> Result<&'static Dialect, Error> {
        let scheme = scheme(location);
        if let Some(dialect) = self.dialects.iter().find(|d| d.has_scheme(scheme)) {
            return Ok(dialect);
        }
        if Url::parse(location.strip_prefix("jdbc:").unwrap_or(location)).is_err() {
            return Ok(default);
        }
        Err(Error::Location {
            dialect: default.name,
            location: mask_url(location),
            reason: format!("expected a {} URL (jdbc: prefix allowed)", self.schemes()),
        })
    }

    /// The schemes of every known dialect, for messages: `postgres://, postgresql:// or ...`.
    fn schemes(&self) -> String {
        let schemes: Vec<String> = self.dialects.iter().flat_map(|d| d.schemes).map(|s| format!("{s}://")).collect();
        match schemes.split_last() {
            Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
            _ => schemes.join(""),
        }
    }

    /// The pool for `connection`, created on first use (no connection is opened until then).
    ///
    /// # Errors
    /// A TLS root certificate file that cannot be read.
    pub(crate) fn pool(&self, connection: &Connection) -> Result<Pool, Error> {
        let key = (connection.server.clone(), connection.password.clone());
        let mut pools = self.pools.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(pool) = pools.get(&key) {
            return Ok(pool.clone());
        }
        let server = &connection.server;
        let mut config = tokio_postgres::Config::new();
        config
            .host(&server.host)
            .port(server.port)
            .dbname(&server.database)
            .user(&server.user)
            .application_name("lakegate")
            .connect_timeout(Duration::from_secs(10));
        if let Some(password) = &connection.password {
            config.password(password);
        }
        let manager_config = ManagerConfig { recycling_method: RecyclingMethod::Fast };
        let manager = if server.tls {
            config.ssl_mode(tokio_postgres::config::SslMode::Require);
            Manager::from_config(config, tls_connector(server)?, manager_config)
        } else {
            Manager::from_config(config, tokio_postgres::NoTls, manager_config)
        };
        let pool = Pool::builder(manager)
            .max_size(16)
            .runtime(Runtime::Tokio1)
            .create_timeout(Some(Duration::from_secs(15)))
            .build()
            .map_err(|e| Error::Connect { server: server.to_string(), cause: e.to_string() })?;
        pools.insert(key, pool.clone());
        Ok(pool)
    }
}

fn tls_connector(server: &Server) -> Result<tokio_postgres_rustls::MakeRustlsConnect, Error> {
    let connect_error = |cause: String| Error::Connect { server: server.to_string(), cause };
    let mut roots = rustls::RootCertStore::empty();
    match &server.root_cert {
        Some(path) => {
            let pem =
                std::fs::read(path).map_err(|e| connect_error(format!("cannot read sslrootcert '{path}': {e}")))?;
            for cert in rustls::pki_types::pem::PemObject::pem_slice_iter(&pem) {
                let cert = cert.map_err(|e| connect_error(format!("sslrootcert '{path}': {e}")))?;
                roots.add(cert).map_err(|e| connect_error(format!("sslrootcert '{path}': {e}")))?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| connect_error(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

/// A pooled connection, with connection errors told apart from authentication failures.
pub(crate) async fn connect(pool: &Pool, server: &Server) -> Result<deadpool_postgres::Object, Error> {
    pool.get().await.map_err(|e| {
        let cause = match &e {
            deadpool_postgres::PoolError::Backend(pg) => {
                let auth = pg.code().is_some_and(|c| c.code().starts_with("28"));
                if auth {
                    return Error::Authentication {
                        user: server.user.clone(),
                        server: server.to_string(),
                        cause: describe(pg),
                    };
                }
                describe(pg)
            }
            other => other.to_string(),
        };
        Error::Connect { server: server.to_string(), cause }
    })
}

#[cfg(test)]
mod tests {
    use super::super::dialect::POSTGRES;
    use super::*;

    fn options(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn every_url_spelling_gives_one_server() {
        let plain = Connection::parse("postgres://app@db.internal/shop", &options(&[("table", "users")]), &POSTGRES)
            .expect("url");
        let jdbc = Connection::parse(
            "jdbc:postgresql://db.internal:5432/shop?user=app&password=secret",
            &options(&[("dbtable", "users")]),
            &POSTGRES,
        )
        .expect("jdbc url");
        assert_eq!(plain.server, jdbc.server);
        assert_eq!(jdbc.password.as_deref(), Some("secret"));
        assert_eq!(jdbc.location(), "postgres://db.internal:5432/shop");
    }

    #[test]
    fn bad_locations_are_explained_without_the_password() {
        let err = Connection::parse("postgres://app:hunter2@db.internal", &BTreeMap::new(), &POSTGRES)
            .unwrap_err()
            .to_string();
        assert!(err.contains("no database") && !err.contains("hunter2"), "{err}");
        let err = Connection::parse("mysql://db/x", &options(&[("user", "a")]), &POSTGRES).unwrap_err().to_string();
        assert!(err.contains("postgres://"), "{err}");
        assert_eq!(
            mask_url("jdbc:postgresql://h:5432/dev?user=etl&password=s3cret"),
            "jdbc:postgresql://h:5432/dev?user=etl&password=***"
        );
    }

    #[test]
    fn table_names_fold_like_postgres() {
        let with =
            |table: &str| Connection::parse("postgres://a@h/d", &options(&[("table", table)]), &POSTGRES).expect("url");
        assert_eq!(with("Users").schema_and_table().expect("name"), ("public".into(), "users".into()));
        assert_eq!(with(r#"crm."Users""#).schema_and_table().expect("name"), ("crm".into(), "Users".into()));
        assert!(with("(SELECT 1) t").schema_and_table().is_err());
    }
}
