//! lakegate's errors: one variant per cause, messages that say what to fix.

use datafusion::error::DataFusionError;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("configuration: {0}")]
    Config(String),
    #[error(transparent)]
    Catalog(lakegate_catalog::Error),
    #[error("{}", strip_noise(.0))]
    DataFusion(#[from] DataFusionError),
    #[error("SQL syntax error: {0}")]
    Syntax(String),
    /// A statement that parses but asks for something impossible: a column count or type that
    /// does not fit the table, a PARTITION spec that does not match it.
    #[error("{0}")]
    Invalid(String),
    #[error("not supported: {0}")]
    Unsupported(String),
    #[error("permission denied for user '{user}': {privilege}")]
    PermissionDenied { user: String, privilege: String },
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    /// Command-line flags that do not go together.
    #[error("{0}")]
    Usage(String),
    /// The server cannot listen, or its TLS files do not load.
    #[error("cannot serve: {0}")]
    Listen(String),
    /// A lakegate server cannot be reached or signed in to.
    #[error("cannot connect: {0}")]
    Connect(String),
    /// A geodata layer does not load.
    #[error("{0}")]
    Geodata(String),
    /// A scheduler or executor of a cluster did not start or stopped.
    #[error("cluster {0}")]
    Cluster(String),
    /// A remote system (the demo's PostgreSQL) refused or failed.
    #[error("{0}")]
    Remote(String),
    /// The terminal of the REPL failed.
    #[error("terminal: {0}")]
    Terminal(String),
    /// A statement stopped before its end: killed, or over its time limit.
    #[error("{0}")]
    Stopped(Stopped),
    /// A response lakegate builds could not be built: a bug, not the caller's mistake.
    #[error("internal error: {0}")]
    Internal(String),
    #[error("{location}: {source}")]
    Statement { location: String, source: Box<Error> },
}

/// Why a statement stopped before its end; inside DataFusion's streams it travels as an
/// external error, so a front end can tell it from a failure.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{reason}")]
pub struct Stopped {
    pub reason: String,
    /// Stopped by its time limit rather than by KILL QUERY or a client's cancel.
    pub timed_out: bool,
}

impl Stopped {
    /// The `Stopped` at the root of `error`, if that is why it failed.
    pub fn find(error: &DataFusionError) -> Option<&Stopped> {
        match error.find_root() {
            DataFusionError::External(inner) => inner.downcast_ref::<Stopped>(),
            _ => None,
        }
    }

    /// Whether `error` is a stop (a KILL, a time limit), not a failure.
    pub fn in_error(error: &Error) -> bool {
        match error {
            Error::Stopped(_) => true,
            Error::DataFusion(e) => Self::find(e).is_some(),
            Error::Statement { source, .. } => Self::in_error(source),
            _ => false,
        }
    }
}

impl From<lakegate_catalog::Error> for Error {
    fn from(e: lakegate_catalog::Error) -> Self {
        match e {
            // A source's own error reads best with DataFusion's noise stripped.
            lakegate_catalog::Error::Source(e) => Error::DataFusion(e),
            other => Error::Catalog(other),
        }
    }
}

impl From<sqlparser::parser::ParserError> for Error {
    fn from(e: sqlparser::parser::ParserError) -> Self {
        let text = e.to_string();
        Error::Syntax(text.strip_prefix("sql parser error: ").unwrap_or(&text).to_owned())
    }
}

impl From<sqlparser::tokenizer::TokenizerError> for Error {
    fn from(e: sqlparser::tokenizer::TokenizerError) -> Self {
        Error::Syntax(e.to_string())
    }
}

impl Error {
    pub fn io(path: impl std::fmt::Display, source: std::io::Error) -> Self {
        Error::Io { path: path.to_string(), source }
    }
}

/// DataFusion prefixes external errors with "External error: "; users need the cause, and
/// the causes beneath it ("connection refused") that drivers keep out of their own message.
fn strip_noise(e: &DataFusionError) -> String {
    let mut text = match e {
        DataFusionError::External(inner) => inner.to_string(),
        DataFusionError::Context(context, inner) => return format!("{context}: {}", strip_noise(inner)),
        other => other.to_string(),
    };
    let mut source = std::error::Error::source(e.find_root());
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text = format!("{text}: {cause_text}");
        }
        source = cause.source();
    }
    text
}

impl From<datafusion::parquet::errors::ParquetError> for Error {
    fn from(e: datafusion::parquet::errors::ParquetError) -> Self {
        Error::DataFusion(e.into())
    }
}

impl From<datafusion::arrow::error::ArrowError> for Error {
    fn from(e: datafusion::arrow::error::ArrowError) -> Self {
        Error::DataFusion(e.into())
    }
}
