//! Errors of the catalog, one variant per cause, each telling the user what to fix.

use datafusion::error::DataFusionError;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot open the catalog at {path}: {source}")]
    Open { path: String, source: rusqlite::Error },
    #[error("catalog storage error: {0}")]
    Storage(#[from] rusqlite::Error),
    #[error("the catalog entry of {table} is unreadable ({source}); drop and re-create the table")]
    Corrupt { table: String, source: serde_json::Error },
    #[error("database '{name}' does not exist{hint}")]
    UnknownDatabase { name: String, hint: String },
    #[error("database '{0}' already exists")]
    DatabaseExists(String),
    #[error(
        "database '{name}' is not empty ({tables} tables); drop its tables first or use DROP DATABASE {name} CASCADE"
    )]
    DatabaseNotEmpty { name: String, tables: usize },
    #[error("table '{name}' does not exist{hint}")]
    UnknownTable { name: String, hint: String },
    #[error("table '{0}' already exists (use IF NOT EXISTS to keep it)")]
    TableExists(String),
    #[error("unknown source '{kind}'; lakegate can read: {available}")]
    UnknownSource { kind: String, available: String },
    #[error("unknown option '{key}' for {kind} tables; valid options: {valid}")]
    UnknownOption { key: String, kind: String, valid: String },
    #[error("option '{key}' must be {expected}, not '{value}'")]
    BadOption { key: &'static str, expected: String, value: String },
    #[error(
        "option '{key}' is a secret and the catalog never stores secrets in clear: pass a reference such as '${{env:NAME}}' (resolved when the table is used), or use CREATE TEMPORARY VIEW for a session-only table"
    )]
    ClearSecret { key: String },
    #[error("environment variable '{var}' is not set (it is referenced by '{reference}')")]
    MissingEnv { var: String, reference: String },
    #[error("malformed reference '{0}': write '${{env:NAME}}'")]
    BadReference(String),
    #[error("invalid column type '{data_type}' of column '{column}': {source}")]
    BadType { column: String, data_type: String, source: datafusion::arrow::error::ArrowError },
    #[error(
        "invalid {what} name {name:?}: a name cannot be empty, '.' or '..', or contain '/', '\\' or NUL, since it becomes a directory name"
    )]
    InvalidName { what: &'static str, name: String },
    #[error("{0}")]
    Source(#[from] DataFusionError),
}

impl From<Error> for DataFusionError {
    fn from(error: Error) -> Self {
        match error {
            Error::Source(e) => e,
            other => DataFusionError::External(Box::new(other)),
        }
    }
}

/// `"; did you mean 'x'?"` when one of `candidates` is close to `name`, else `""`.
pub(crate) fn did_you_mean<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> String {
    use datafusion::common::utils::datafusion_strsim::levenshtein;
    let limit = (name.len() / 3).max(2);
    candidates
        .into_iter()
        .map(|c| (levenshtein(name, c), c))
        .filter(|(d, _)| *d <= limit)
        .min()
        .map(|(_, c)| format!("; did you mean '{c}'?"))
        .unwrap_or_default()
}
