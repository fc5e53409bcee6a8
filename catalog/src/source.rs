//! The contract every source implements, and the set of sources a catalog can build.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::error::Result as DFResult;

use crate::secret::{is_reference, resolve_reference};
use crate::{Error, Result, TableSpec};

/// One option a source accepts in `OPTIONS (...)`.
#[derive(Debug, Clone, Copy)]
pub struct ParamSpec {
    pub name: &'static str,
    /// Secrets are stored only as references and masked when shown.
    pub secret: bool,
    pub default: Option<&'static str>,
    pub help: &'static str,
}

impl ParamSpec {
    pub const fn new(name: &'static str, help: &'static str) -> Self {
        Self { name, secret: false, default: None, help }
    }

    pub const fn secret(mut self) -> Self {
        self.secret = true;
        self
    }

    pub const fn default(mut self, value: &'static str) -> Self {
        self.default = Some(value);
        self
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

    /// The options this source accepts; any other key is rejected.
    fn params(&self) -> &'static [ParamSpec];

    /// Checks a new table against the source (location reachable, credentials valid) and
    /// completes its spec, e.g. with the discovered schema. Runs once, at registration:
    /// an error here registers nothing.
    async fn prepare(&self, session: &dyn Session, spec: TableSpec) -> DFResult<TableSpec>;

    /// Builds the provider of a registered table. Runs lazily, on first use in a process.
    async fn create(&self, spec: &TableSpec) -> DFResult<Arc<dyn TableProvider>>;

    /// The table's options with defaults filled in and references resolved, for use only.
    ///
    /// # Errors
    /// [`Error::MissingEnv`] or [`Error::BadReference`] for a reference that does not resolve.
    fn resolve_options(&self, spec: &TableSpec) -> Result<BTreeMap<String, String>> {
        let mut resolved = BTreeMap::new();
        for param in self.params() {
            if let Some(value) = spec.options.get(param.name).map(String::as_str).or(param.default) {
                resolved.insert(param.name.to_owned(), resolve_reference(value)?);
            }
        }
        Ok(resolved)
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

    /// Rejects unknown option keys and, for persistent tables, secrets written in clear.
    ///
    /// # Errors
    /// [`Error::UnknownOption`] listing the valid keys, [`Error::ClearSecret`].
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
        }
        Ok(())
    }

    /// Whether option `key` of `kind` holds a secret (unknown kinds: every option is treated as one).
    pub fn is_secret(&self, kind: &str, key: &str) -> bool {
        self.get(kind).map(|f| f.params().iter().any(|p| p.name == key && p.secret)).unwrap_or(true)
    }
}
