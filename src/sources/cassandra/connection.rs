//! Where a Cassandra table lives and how lakegate connects to its cluster: the `[cassandra]`
//! section of the configuration, a table's target (LOCATION, OPTIONS and that section), and
//! the driver sessions shared by every table that connects alike.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use datafusion::error::Result as DFResult;
use lakegate_catalog::{Options, TableSpec};
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::statement::Consistency;
use serde::Deserialize;

use super::{Error, Result};

/// `[cassandra]`: the cluster that Cassandra tables without contact points of their own read.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CassandraConfig {
    /// `host:port` of one or more nodes; the driver discovers the rest of the cluster.
    pub contact_points: Vec<String>,
    pub username: Option<String>,
    /// A `${env:NAME}` reference (or a literal).
    pub password: Option<String>,
}

/// The read consistency levels the `consistency` option accepts.
pub(crate) const CONSISTENCY_LEVELS: &[&str] = &[
    "ANY",
    "ONE",
    "TWO",
    "THREE",
    "QUORUM",
    "ALL",
    "LOCAL_QUORUM",
    "EACH_QUORUM",
    "LOCAL_ONE",
    "SERIAL",
    "LOCAL_SERIAL",
];

/// Where a table lives and how to read it, from its LOCATION, OPTIONS and the config.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Target {
    pub(crate) contact_points: Vec<String>,
    pub(crate) keyspace: String,
    pub(crate) table: String,
    username: Option<String>,
    password: Option<String>,
    pub(crate) consistency: Consistency,
    pub(crate) fetch_size: i32,
    pub(crate) splits: usize,
    pub(crate) allow_filtering: bool,
}

impl Target {
    /// The target of `spec`, whose options are `options`; what they leave out comes from
    /// `config`.
    ///
    /// # Errors
    /// A bad location, no contact points, no keyspace or table, an unresolvable password.
    pub(crate) fn new(spec: &TableSpec, options: &Options, config: &CassandraConfig) -> DFResult<Self> {
        let (hosts, keyspace, table) = parse_location(&spec.location)?;
        let from_options = options.text("contact_points").map(|c| c.split(',').map(|h| h.trim().to_owned()).collect());
        let contact_points: Vec<String> = from_options
            .or_else(|| (!hosts.is_empty()).then_some(hosts))
            .unwrap_or_else(|| config.contact_points.clone());
        if contact_points.is_empty() {
            return Err(Error::NoContactPoints { table: spec.qualified_name() }.into());
        }
        let keyspace = options.text("keyspace").map(str::to_owned).or(keyspace);
        let table = options.text("table").map(str::to_owned).or(table);
        let (Some(keyspace), Some(table)) = (keyspace, table) else {
            return Err(Error::NoKeyspaceOrTable { table: spec.qualified_name() }.into());
        };
        let username = options.text("username").map(str::to_owned).or_else(|| config.username.clone());
        let password = match options.text("password") {
            Some(p) => Some(p.to_owned()),
            None => config.password.as_deref().map(lakegate_catalog::resolve_reference).transpose()?,
        };
        // The options' defaults are declared with them, so each is there.
        Ok(Self {
            contact_points,
            keyspace,
            table,
            username,
            password,
            consistency: consistency(options.choice("consistency")?.unwrap_or_default()),
            fetch_size: options.integer("fetch_size")?.unwrap_or_default(),
            splits: options.integer("splits")?.unwrap_or_default(),
            allow_filtering: options.bool("allow_filtering")?.unwrap_or_default(),
        })
    }

    pub(crate) fn label(&self) -> String {
        format!("{}.{}", self.keyspace, self.table)
    }

    pub(crate) fn contact_points(&self) -> String {
        self.contact_points.join(",")
    }
}

/// `cassandra://h1:9042,h2:9042/ks/table` → (hosts, keyspace, table); every part optional.
fn parse_location(location: &str) -> Result<(Vec<String>, Option<String>, Option<String>)> {
    if location.is_empty() {
        return Ok((Vec::new(), None, None));
    }
    let bad = || Error::BadLocation { location: location.to_owned() };
    let rest = location.strip_prefix("cassandra://").ok_or_else(bad)?;
    let (hosts, path) = rest.split_once('/').unwrap_or((rest, ""));
    let hosts = hosts.split(',').filter(|h| !h.is_empty()).map(str::to_owned).collect();
    let mut parts = path.split('/').filter(|p| !p.is_empty()).map(str::to_owned);
    let (keyspace, table) = (parts.next(), parts.next());
    if parts.next().is_some() {
        return Err(bad());
    }
    Ok((hosts, keyspace, table))
}

/// The driver's consistency for one of [`CONSISTENCY_LEVELS`] (the option's spec refuses any
/// other value; LOCAL_ONE, the default, stands for none).
fn consistency(level: &str) -> Consistency {
    match level {
        "ANY" => Consistency::Any,
        "ONE" => Consistency::One,
        "TWO" => Consistency::Two,
        "THREE" => Consistency::Three,
        "QUORUM" => Consistency::Quorum,
        "ALL" => Consistency::All,
        "LOCAL_QUORUM" => Consistency::LocalQuorum,
        "EACH_QUORUM" => Consistency::EachQuorum,
        "SERIAL" => Consistency::Serial,
        "LOCAL_SERIAL" => Consistency::LocalSerial,
        _ => Consistency::LocalOne,
    }
}

/// One driver session per set of contact points and credentials, shared by every table with
/// the same ones: a table with the right user and a wrong password never rides on another
/// table's signed-in session. The password is kept only as a digest.
type SessionKey = (Vec<String>, Option<String>, Option<[u8; 32]>);

/// The driver sessions of one process, by contact points and credentials.
#[derive(Debug, Default)]
pub(crate) struct Sessions(tokio::sync::Mutex<HashMap<SessionKey, Arc<Session>>>);

impl Sessions {
    /// The shared session for `target`'s cluster, connecting on first use.
    ///
    /// # Errors
    /// [`Error::Connect`] when no contact point answers or the credentials are refused.
    pub(crate) async fn get(&self, target: &Target) -> Result<Arc<Session>> {
        let mut key_points = target.contact_points.clone();
        key_points.sort();
        let password = target.password.as_ref().map(|p| {
            use sha2::Digest;
            sha2::Sha256::digest(p.as_bytes()).into()
        });
        let key = (key_points, target.username.clone(), password);
        let mut sessions = self.0.lock().await;
        if let Some(session) = sessions.get(&key) {
            return Ok(Arc::clone(session));
        }
        let mut builder =
            SessionBuilder::new().known_nodes(&target.contact_points).connection_timeout(Duration::from_secs(10));
        if let Some(user) = &target.username {
            builder = builder.user(user, target.password.clone().unwrap_or_default());
        }
        let session = builder
            .build()
            .await
            .map_err(|e| Error::Connect { contact_points: target.contact_points(), source: Box::new(e) })?;
        let session = Arc::new(session);
        sessions.insert(key, Arc::clone(&session));
        Ok(session)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_name_hosts_keyspace_and_table() {
        let (hosts, ks, t) = parse_location("cassandra://a:9042,b:9043/shop/programs").expect("valid");
        assert_eq!(hosts, ["a:9042", "b:9043"]);
        assert_eq!((ks.as_deref(), t.as_deref()), (Some("shop"), Some("programs")));
        let (hosts, ks, t) = parse_location("cassandra:///shop/programs").expect("valid");
        assert!(hosts.is_empty());
        assert_eq!((ks.as_deref(), t.as_deref()), (Some("shop"), Some("programs")));
        assert!(parse_location("postgres://x/y").is_err());
        assert!(parse_location("cassandra://h/a/b/c").is_err());
    }

    #[test]
    fn every_consistency_level_has_its_driver_value() {
        for level in CONSISTENCY_LEVELS {
            assert_eq!(format!("{:?}", consistency(level)).to_ascii_uppercase(), level.replace('_', ""), "{level}");
        }
    }
}
