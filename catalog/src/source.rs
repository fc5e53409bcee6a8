//! The contract every source implements, and the set of sources a catalog can build.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::error::Result as DFResult;

use crate::secret::{is_reference, resolve_reference};
use crate::{Error, Result, TableSpec};

/// What a source can do beyond reading its tables. Callers ask the source (through
/// [`SourceFactory::capabilities`]) instead of checking its kind by name; everything is off
/// unless the source says otherwise.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// lakegate's writer may INSERT into its tables (files under the table's location), and a
    /// table created without a LOCATION gets one in lakegate's warehouse.
    pub writable: bool,
    /// Its tables have Hive partitions that lakegate lists and adds: SHOW PARTITIONS,
    /// MSCK REPAIR TABLE, ALTER TABLE ADD PARTITION.
    pub lists_partitions: bool,
    /// VACUUM removes files that no committed write references.
    pub vacuum: bool,
    /// Its scans run on a cluster's executors: every node rebuilds its tables from their specs
    /// and its own configuration.
    pub runs_on_cluster: bool,
}

/// The type of an option's value. Values are checked once, at registration (a `${env:NAME}`
/// reference only when it is resolved), and read through the typed getters of [`Options`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamKind {
    /// Any text.
    String,
    /// `true` or `false`, in any case.
    Bool,
    /// A whole number from `min` to `max`.
    Integer { min: i64, max: i64 },
    /// A number of bytes: `268435456`, `256MB`, `256 MiB`, `1g`.
    Size,
    /// One of these values, in any case; read back as written here.
    Enum(&'static [&'static str]),
}

impl ParamKind {
    /// What a value must be, for messages: "must be {expected}".
    fn expected(self) -> String {
        match self {
            Self::String => "text".to_owned(),
            Self::Bool => "true or false".to_owned(),
            Self::Integer { min: i64::MIN, max: i64::MAX } => "a whole number".to_owned(),
            Self::Integer { min, max: i64::MAX } => format!("a whole number of {min} or more"),
            Self::Integer { min, max } => format!("a whole number from {min} to {max}"),
            Self::Size => "a size such as 256MB".to_owned(),
            Self::Enum(values) => format!("one of {}", values.join(", ")),
        }
    }
}

/// One option a source accepts in `OPTIONS (...)`.
#[derive(Debug, Clone, Copy)]
pub struct ParamSpec {
    pub name: &'static str,
    /// Secrets are stored only as references and masked when shown.
    pub secret: bool,
    pub default: Option<&'static str>,
    pub help: &'static str,
    pub kind: ParamKind,
}

impl ParamSpec {
    pub const fn new(name: &'static str, help: &'static str) -> Self {
        Self { name, secret: false, default: None, help, kind: ParamKind::String }
    }

    pub const fn secret(mut self) -> Self {
        self.secret = true;
        self
    }

    pub const fn default(mut self, value: &'static str) -> Self {
        self.default = Some(value);
        self
    }

    pub const fn bool(mut self) -> Self {
        self.kind = ParamKind::Bool;
        self
    }

    /// A whole number from `min` to `max` (`i64::MIN`/`i64::MAX` for no bound).
    pub const fn integer(mut self, min: i64, max: i64) -> Self {
        self.kind = ParamKind::Integer { min, max };
        self
    }

    pub const fn size(mut self) -> Self {
        self.kind = ParamKind::Size;
        self
    }

    pub const fn one_of(mut self, values: &'static [&'static str]) -> Self {
        self.kind = ParamKind::Enum(values);
        self
    }

    /// Checks `value` against the option's kind.
    ///
    /// # Errors
    /// [`Error::BadOption`] naming the option and what it must be.
    pub fn check(&self, value: &str) -> Result<()> {
        match self.kind {
            ParamKind::String => Ok(()),
            ParamKind::Bool => self.to_bool(value).map(drop),
            ParamKind::Integer { .. } => self.to_integer(value).map(drop),
            ParamKind::Size => self.to_size(value).map(drop),
            ParamKind::Enum(_) => self.to_choice(value).map(drop),
        }
    }

    fn invalid(&self, value: &str) -> Error {
        Error::BadOption { key: self.name, expected: self.kind.expected(), value: value.to_owned() }
    }

    /// # Errors
    /// [`Error::BadOption`] for anything but `true` or `false`.
    pub fn to_bool(&self, value: &str) -> Result<bool> {
        match value.trim().to_ascii_lowercase().as_str() {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err(self.invalid(value)),
        }
    }

    /// # Errors
    /// [`Error::BadOption`] for a value that is not a whole number in the option's range.
    pub fn to_integer(&self, value: &str) -> Result<i64> {
        let (min, max) = match self.kind {
            ParamKind::Integer { min, max } => (min, max),
            _ => (i64::MIN, i64::MAX),
        };
        value.trim().parse::<i64>().ok().filter(|n| (min..=max).contains(n)).ok_or_else(|| self.invalid(value))
    }

    /// # Errors
    /// [`Error::BadOption`] for a value that is not a positive size such as `256MB`.
    pub fn to_size(&self, value: &str) -> Result<u64> {
        let text = value.trim();
        let digits = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
        let (number, unit) = text.split_at(digits);
        let scale: u64 = match unit.trim().to_ascii_lowercase().trim_end_matches("ib").trim_end_matches('b') {
            "" => 1,
            "k" => 1 << 10,
            "m" => 1 << 20,
            "g" => 1 << 30,
            _ => 0,
        };
        match number.parse::<u64>().ok().and_then(|n| n.checked_mul(scale)) {
            Some(bytes) if bytes > 0 => Ok(bytes),
            _ => Err(self.invalid(value)),
        }
    }

    /// The allowed value `value` names, as the option's list spells it.
    ///
    /// # Errors
    /// [`Error::BadOption`] listing the allowed values.
    pub fn to_choice(&self, value: &str) -> Result<&'static str> {
        let ParamKind::Enum(values) = self.kind else { return Err(self.invalid(value)) };
        values.iter().find(|v| v.eq_ignore_ascii_case(value.trim())).copied().ok_or_else(|| self.invalid(value))
    }
}

/// A table's options with defaults filled in and references resolved, read as the source's
/// [`ParamSpec`]s type them.
#[derive(Debug, Clone, Default)]
pub struct Options {
    kind: &'static str,
    params: &'static [ParamSpec],
    values: BTreeMap<String, String>,
}

impl std::ops::Deref for Options {
    type Target = BTreeMap<String, String>;

    fn deref(&self) -> &Self::Target {
        &self.values
    }
}

impl Options {
    /// `values` of a `kind` table, read by `params`.
    pub fn new(kind: &'static str, params: &'static [ParamSpec], values: BTreeMap<String, String>) -> Self {
        Self { kind, params, values }
    }

    /// The option as text.
    pub fn text(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }

    fn typed<T>(&self, key: &str, read: impl Fn(&ParamSpec, &str) -> Result<T>) -> Result<Option<T>> {
        let Some(value) = self.values.get(key) else { return Ok(None) };
        let Some(param) = self.params.iter().find(|p| p.name == key) else {
            let valid = self.params.iter().map(|p| p.name).collect::<Vec<_>>().join(", ");
            return Err(Error::UnknownOption { key: key.to_owned(), kind: self.kind.to_owned(), valid });
        };
        read(param, value).map(Some)
    }

    /// # Errors
    /// [`Error::BadOption`] for anything but `true` or `false`.
    pub fn bool(&self, key: &str) -> Result<Option<bool>> {
        self.typed(key, ParamSpec::to_bool)
    }

    /// The option as a whole number of type `T`.
    ///
    /// # Errors
    /// [`Error::BadOption`] for a value that is not a whole number in range (of the option and of `T`).
    pub fn integer<T: TryFrom<i64>>(&self, key: &str) -> Result<Option<T>> {
        self.typed(key, |param, value| T::try_from(param.to_integer(value)?).map_err(|_| param.invalid(value)))
    }

    /// The option as a number of bytes.
    ///
    /// # Errors
    /// [`Error::BadOption`] for a value that is not a size such as `256MB`.
    pub fn size(&self, key: &str) -> Result<Option<u64>> {
        self.typed(key, ParamSpec::to_size)
    }

    /// The option as one of its allowed values, spelled as the option's list does.
    ///
    /// # Errors
    /// [`Error::BadOption`] listing the allowed values.
    pub fn choice(&self, key: &str) -> Result<Option<&'static str>> {
        self.typed(key, ParamSpec::to_choice)
    }
}

/// A kind of source (`parquet`, `postgres`, ...): checks new tables and builds their providers.
#[async_trait]
pub trait SourceFactory: Debug + Send + Sync {
    /// The name used in `STORED AS <kind>` / `USING <kind>`, lower case.
    fn kind(&self) -> &'static str;

    /// Other spellings of the kind, such as Spark's data-source class names.
    fn aliases(&self) -> &'static [&'static str] {
        &[]
    }

    /// The source's name in messages, e.g. `PostgreSQL` (by default its kind).
    fn name(&self) -> &'static str {
        self.kind()
    }

    /// The options this source accepts; any other key is rejected, and values are checked
    /// against each option's [`ParamKind`].
    fn params(&self) -> &'static [ParamSpec];

    /// What the source can do beyond reading; nothing by default.
    fn capabilities(&self) -> Capabilities {
        Capabilities::default()
    }

    /// Checks a new table against the source (location reachable, credentials valid) and
    /// completes its spec, e.g. with the discovered schema. Runs once, at registration:
    /// an error here registers nothing.
    async fn prepare(&self, session: &dyn Session, spec: TableSpec) -> DFResult<TableSpec>;

    /// Builds the provider of a registered table. Runs lazily, on first use in a process.
    async fn create(&self, spec: &TableSpec) -> DFResult<Arc<dyn TableProvider>>;

    /// The tables of the remote schema or keyspace `mount` names (a spec without a table):
    /// what `CREATE DATABASE ... STORED AS <kind>` shows. Sources that cannot list say so.
    async fn list_tables(&self, mount: &TableSpec) -> DFResult<Vec<String>> {
        Err(datafusion::error::DataFusionError::NotImplemented(format!(
            "{} databases cannot be mounted: register each table with CREATE EXTERNAL TABLE (database {})",
            self.name(),
            mount.database
        )))
    }

    /// The spec of table `name` of a mounted database: `mount` naming that table.
    fn mounted_table(&self, mount: &TableSpec, name: &str) -> TableSpec {
        let mut spec = mount.clone();
        spec.name = name.to_owned();
        spec.options.insert("table".into(), name.to_owned());
        spec
    }

    /// The table's options with defaults filled in and references resolved, for use only.
    ///
    /// # Errors
    /// [`Error::MissingEnv`] or [`Error::BadReference`] for a reference that does not resolve,
    /// [`Error::BadOption`] for a resolved value of the wrong kind.
    fn resolve_options(&self, spec: &TableSpec) -> Result<Options> {
        let mut resolved = BTreeMap::new();
        for param in self.params() {
            if let Some(written) = spec.options.get(param.name).map(String::as_str).or(param.default) {
                let value = resolve_reference(written)?;
                // Values written out were checked at registration; a reference only now.
                if is_reference(written) {
                    param.check(&value)?;
                }
                resolved.insert(param.name.to_owned(), value);
            }
        }
        Ok(Options::new(self.kind(), self.params(), resolved))
    }
}

/// The sources a catalog can build, found by kind or alias (case-insensitive).
#[derive(Debug, Clone, Default)]
pub struct Sources(Vec<Arc<dyn SourceFactory>>);

impl Sources {
    pub fn new(factories: Vec<Arc<dyn SourceFactory>>) -> Self {
        Self(factories)
    }

    /// # Errors
    /// [`Error::UnknownSource`] listing the kinds that exist.
    pub fn get(&self, kind: &str) -> Result<Arc<dyn SourceFactory>> {
        let wanted = kind.to_ascii_lowercase();
        self.0
            .iter()
            .find(|f| f.kind() == wanted || f.aliases().iter().any(|a| a.eq_ignore_ascii_case(&wanted)))
            .map(Arc::clone)
            .ok_or_else(|| Error::UnknownSource { kind: kind.to_owned(), available: self.kinds().join(", ") })
    }

    pub fn kinds(&self) -> Vec<&'static str> {
        self.0.iter().map(|f| f.kind()).collect()
    }

    /// Rejects unknown option keys, values of the wrong kind and, for persistent tables,
    /// secrets written in clear. References are checked when they are resolved.
    ///
    /// # Errors
    /// [`Error::UnknownOption`] listing the valid keys, [`Error::BadOption`],
    /// [`Error::ClearSecret`].
    pub(crate) fn check_options(&self, spec: &TableSpec, persistent: bool) -> Result<()> {
        let factory = self.get(&spec.kind)?;
        let params = factory.params();
        for (key, value) in &spec.options {
            let Some(param) = params.iter().find(|p| p.name == key) else {
                let valid = params.iter().map(|p| p.name).collect::<Vec<_>>().join(", ");
                return Err(Error::UnknownOption { key: key.clone(), kind: factory.kind().to_owned(), valid });
            };
            if persistent && param.secret && !is_reference(value) {
                return Err(Error::ClearSecret { key: key.clone() });
            }
            if !is_reference(value) {
                param.check(value)?;
            }
        }
        Ok(())
    }

    /// What `kind` can do; nothing for a kind this build does not know.
    pub fn capabilities(&self, kind: &str) -> Capabilities {
        self.get(kind).map(|f| f.capabilities()).unwrap_or_default()
    }

    /// The names of the sources that can do something, for messages: "Parquet".
    pub fn names_that(&self, can: impl Fn(&Capabilities) -> bool) -> Vec<&'static str> {
        self.0.iter().filter(|f| can(&f.capabilities())).map(|f| f.name()).collect()
    }

    /// Whether option `key` of `kind` holds a secret (unknown kinds: every option is treated as one).
    pub fn is_secret(&self, kind: &str, key: &str) -> bool {
        self.get(kind).map(|f| f.params().iter().any(|p| p.name == key && p.secret)).unwrap_or(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PARAMS: &[ParamSpec] = &[
        ParamSpec::new("flag", "").bool(),
        ParamSpec::new("rows", "").integer(1, i32::MAX as i64),
        ParamSpec::new("bound", "").integer(i64::MIN, i64::MAX),
        ParamSpec::new("file_size", "").size(),
        ParamSpec::new("level", "").one_of(&["ONE", "LOCAL_QUORUM"]),
        ParamSpec::new("name", ""),
    ];

    fn options(pairs: &[(&str, &str)]) -> Options {
        Options::new("test", PARAMS, pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect())
    }

    #[test]
    fn typed_options_read_their_values() {
        let read = options(&[
            ("flag", "TRUE"),
            ("rows", " 700"),
            ("bound", "-5"),
            ("file_size", "256MB"),
            ("level", "local_quorum"),
            ("name", "x"),
        ]);
        assert_eq!(read.bool("flag").expect("bool"), Some(true));
        assert_eq!(read.integer::<i32>("rows").expect("integer"), Some(700));
        assert_eq!(read.integer::<i64>("bound").expect("integer"), Some(-5));
        assert_eq!(read.size("file_size").expect("size"), Some(256 << 20));
        assert_eq!(read.choice("level").expect("choice"), Some("LOCAL_QUORUM"));
        assert_eq!((read.text("name"), read.bool("missing").expect("absent")), (Some("x"), None));
    }

    #[test]
    fn sizes_take_units() {
        let size = ParamSpec::new("s", "").size();
        assert_eq!(size.to_size("1 GiB").expect("size"), 1 << 30);
        assert_eq!(size.to_size("4096").expect("size"), 4096);
        assert_eq!(size.to_size("1k").expect("size"), 1024);
        for bad in ["lots", "0", "12TB", ""] {
            assert!(size.to_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bad_values_name_the_option_and_what_it_must_be() {
        let message = |key: &str, value: &str| {
            PARAMS.iter().find(|p| p.name == key).expect("declared").check(value).unwrap_err().to_string()
        };
        assert_eq!(message("flag", "sure"), "option 'flag' must be true or false, not 'sure'");
        assert_eq!(message("rows", "0"), "option 'rows' must be a whole number from 1 to 2147483647, not '0'");
        assert_eq!(message("bound", "x"), "option 'bound' must be a whole number, not 'x'");
        assert_eq!(message("file_size", "lots"), "option 'file_size' must be a size such as 256MB, not 'lots'");
        assert_eq!(message("level", "QUORAM"), "option 'level' must be one of ONE, LOCAL_QUORUM, not 'QUORAM'");
        assert!(PARAMS[5].check("anything").is_ok());
        let err = options(&[("rows", "99999999999")]).integer::<i32>("rows").unwrap_err().to_string();
        assert!(err.contains("'rows'"), "{err}");
    }
}
