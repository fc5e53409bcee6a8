//! What differs between the databases that speak PostgreSQL's wire protocol. Each source on
//! the protocol describes its SQL flavour with one [`Dialect`]; the wire code (connections,
//! discovery, pushdown, decoding) reads it and names no other source.

/// The SQL flavour of a database on PostgreSQL's wire protocol.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Dialect {
    /// The database, in messages: `PostgreSQL`.
    pub name: &'static str,
    /// The source kind its tables are stored as.
    pub kind: &'static str,
    /// The URL schemes that name it (`postgres://...`), each also after a `jdbc:` prefix.
    pub schemes: &'static [&'static str],
    pub default_port: u16,
    /// Whether a read without bound values may stream `COPY (...) TO STDOUT (FORMAT binary)`;
    /// without it every read goes through a cursor.
    pub copy_out: bool,
    /// What a scan that reads no column (`count(*)`) selects per row.
    pub constant_column: &'static str,
    /// The types strings and binary values are cast to when read.
    pub text_type: &'static str,
    pub binary_type: &'static str,
    /// Whether (one-level) arrays can be read.
    pub arrays: bool,
}

/// PostgreSQL's own dialect (Aurora's too).
pub const POSTGRES: Dialect = Dialect {
    name: "PostgreSQL",
    kind: "postgres",
    schemes: &["postgres", "postgresql"],
    default_port: 5432,
    copy_out: true,
    constant_column: "1",
    text_type: "text",
    binary_type: "bytea",
    arrays: true,
};

impl Dialect {
    /// Whether a URL with `scheme` names this dialect.
    pub(crate) fn has_scheme(&self, scheme: &str) -> bool {
        self.schemes.contains(&scheme)
    }
}
