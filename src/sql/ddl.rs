//! Parses lakegate's own statements: the DDL and catalog browsing of Hive, Spark and DataFusion
//! scripts. Anything else is left to DataFusion's parser, untouched.

use std::collections::BTreeMap;

use datafusion::arrow::datatypes::DataType;
use sqlparser::ast::{Ident, ObjectName, Value};
use sqlparser::dialect::GenericDialect;
use sqlparser::keywords::Keyword;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::Token;

use super::types;
use crate::{Error, Result};

/// A table name as written: `t`, `db.t` or `lakegate.db.t`.
#[derive(Debug, Clone, PartialEq)]
pub struct TableName {
    pub database: Option<String>,
    pub name: String,
}

#[derive(Debug, PartialEq)]
pub enum Command {
    CreateDatabase {
        name: String,
        if_not_exists: bool,
        comment: Option<String>,
        /// `STORED AS POSTGRES LOCATION '...' OPTIONS (...)`: every table of a remote schema.
        mount: Option<Mount>,
    },
    /// `REFRESH DATABASE db`: list a mounted database's remote tables again now.
    RefreshDatabase {
        name: String,
    },
    DropDatabase {
        name: String,
        if_exists: bool,
        cascade: bool,
    },
    CreateTable(CreateTable),
    DropTable {
        table: TableName,
        if_exists: bool,
    },
    /// `SHOW DATABASES [IN catalog]`: lakegate's own, or another catalog's (a metastore's).
    ShowDatabases {
        catalog: Option<String>,
        pattern: Option<String>,
    },
    ShowTables {
        database: Option<String>,
        pattern: Option<String>,
    },
    Describe {
        table: TableName,
    },
    ShowCreateTable {
        table: TableName,
    },
    /// Hive's `SHOW PARTITIONS t`.
    ShowPartitions {
        table: TableName,
    },
    /// Hive's `MSCK REPAIR TABLE t` and Spark's `REFRESH TABLE t`: forget cached file listings
    /// so files added by other writers are read at once, and report the partitions.
    RepairTable {
        table: TableName,
    },
    Use {
        database: String,
    },
    /// `VACUUM t [RETAIN n HOURS]`: delete files no reader can see (replaced by an overwrite
    /// at once; abandoned by a crashed write once older than the retention, default 1 hour).
    Vacuum {
        table: TableName,
        retain_hours: Option<f64>,
    },
    /// Hive's `ALTER TABLE t ADD [IF NOT EXISTS] PARTITION (dt='...')`: partitions are read from
    /// the table's directories, so this only checks the spec.
    AddPartitions {
        table: TableName,
        partitions: Vec<Vec<(String, String)>>,
    },
    /// `SET hive.exec.dynamic.partition.mode=nonstrict` and other Hive/Spark engine settings
    /// that scripts carry: lakegate's behaviour does not depend on them.
    /// `KILL QUERY 'id'`, or Trino's `CALL system.runtime.kill_query('id')`.
    KillQuery {
        id: String,
    },
    /// `SET statement_timeout = '30s'` (`'0'` for none): this session's limit on a statement.
    SetStatementTimeout {
        timeout: Option<std::time::Duration>,
    },
    IgnoredSetting {
        key: String,
    },
    /// `SHOW GRANTS`: the signed-in user's role and databases.
    ShowGrants,
    /// Spark's `CACHE [LAZY] TABLE t [OPTIONS (...)] [[AS] query]`: keep a copy of the table
    /// (or the query's rows, as table `t`) on local disk, shared by every session.
    CacheTable {
        table: TableName,
        lazy: bool,
        options: BTreeMap<String, String>,
        /// The query as written, byte for byte.
        query: Option<String>,
    },
    /// `UNCACHE TABLE [IF EXISTS] t`.
    UncacheTable {
        table: TableName,
        if_exists: bool,
    },
    /// `CLEAR CACHE`: every cache.
    ClearCache,
    /// `SHOW CACHED TABLES`.
    ShowCachedTables,
}

/// The remote schema or keyspace a database mounts, as written.
#[derive(Debug, PartialEq)]
pub struct Mount {
    pub kind: String,
    pub location: Option<String>,
    /// Keys lower-cased, values as written.
    pub options: BTreeMap<String, String>,
}

/// Prefixes of settings that belong to Hive, Spark or Hadoop rather than to lakegate.
const FOREIGN_SETTINGS: &[&str] = &["hive.", "spark.", "mapred.", "mapreduce.", "parquet.", "tez.", "hivevar:"];

/// `CREATE [TEMPORARY] [EXTERNAL] TABLE|VIEW ... USING|STORED AS ...`, in any spelling.
#[derive(Debug, PartialEq)]
pub struct CreateTable {
    pub table: TableName,
    pub temporary: bool,
    pub if_not_exists: bool,
    /// `USING x` / `STORED AS x`; `None` means Spark's default, Parquet.
    pub kind: Option<String>,
    pub location: Option<String>,
    /// Declared columns, as (name, type).
    pub columns: Vec<(String, DataType)>,
    /// `PARTITIONED BY` entries: a type when given there (Spark), else it refers to a declared
    /// column (Hive/DataFusion).
    pub partitioned_by: Vec<(String, Option<DataType>)>,
    /// Keys lower-cased, values as written.
    pub options: BTreeMap<String, String>,
    pub comment: Option<String>,
}

/// Parses `sql` when it is one of lakegate's statements; `Ok(None)` means "DataFusion's".
///
/// # Errors
/// [`Error::Syntax`] for a lakegate statement that is malformed, [`Error::Unsupported`] for
/// Hive/Spark clauses lakegate does not implement.
pub fn parse(sql: &str) -> Result<Option<Command>> {
    if let Some(key) = foreign_setting(sql) {
        return Ok(Some(Command::IgnoredSetting { key }));
    }
    let dialect = GenericDialect {};
    let mut p = Parser::new(&dialect).try_with_sql(sql)?;
    if let Some(command) = super::control::parse(&mut p)? {
        return finish(p, command).map(Some);
    }
    match super::cache::parse(&mut p, sql)? {
        Some(cached @ Command::CacheTable { .. }) => return Ok(Some(cached)),
        Some(command) => return finish(p, command).map(Some),
        None => {}
    }
    let command = match p.parse_one_of_keywords(&[
        Keyword::CREATE,
        Keyword::DROP,
        Keyword::SHOW,
        Keyword::DESCRIBE,
        Keyword::DESC,
        Keyword::USE,
        Keyword::MSCK,
        Keyword::REFRESH,
        Keyword::VACUUM,
        Keyword::ALTER,
    ]) {
        Some(Keyword::VACUUM) => {
            let _ = p.parse_keyword(Keyword::TABLE);
            let table = table_name(&p.parse_object_name(false)?)?;
            let retain_hours = if p.parse_keyword(Keyword::RETAIN) {
                let hours = p
                    .parse_number_value()?
                    .to_string()
                    .parse::<f64>()
                    .map_err(|e| Error::Syntax(format!("RETAIN: {e}")))?;
                p.expect_one_of_keywords(&[Keyword::HOURS, Keyword::HOUR])?;
                Some(hours)
            } else {
                None
            };
            Some(Command::Vacuum { table, retain_hours })
        }
        Some(Keyword::ALTER) => {
            if !p.parse_keyword(Keyword::TABLE) {
                return Ok(None);
            }
            let table = table_name(&p.parse_object_name(false)?)?;
            if !p.parse_keyword(Keyword::ADD) {
                return Ok(None);
            }
            let _ = p.parse_keywords(&[Keyword::IF, Keyword::NOT, Keyword::EXISTS]);
            let mut partitions = Vec::new();
            while p.parse_keyword(Keyword::PARTITION) {
                partitions.push(key_values(&mut p)?.into_iter().collect());
                if p.parse_keyword(Keyword::LOCATION) {
                    return Err(Error::Unsupported(
                        "ADD PARTITION ... LOCATION: partitions live under the table's location".into(),
                    ));
                }
            }
            if partitions.is_empty() {
                return Ok(None);
            }
            Some(Command::AddPartitions { table, partitions })
        }
        Some(Keyword::REFRESH) if p.parse_one_of_keywords(&[Keyword::DATABASE, Keyword::SCHEMA]).is_some() => {
            Some(Command::RefreshDatabase { name: ident(&p.parse_identifier()?) })
        }
        Some(Keyword::REFRESH) => {
            let _ = p.parse_keyword(Keyword::TABLE);
            Some(Command::RepairTable { table: table_name(&p.parse_object_name(false)?)? })
        }
        Some(Keyword::MSCK) => {
            p.expect_keyword_is(Keyword::REPAIR)?;
            p.expect_keyword_is(Keyword::TABLE)?;
            Some(Command::RepairTable { table: table_name(&p.parse_object_name(false)?)? })
        }
        Some(Keyword::CREATE) => create(&mut p)?,
        Some(Keyword::DROP) => drop(&mut p)?,
        Some(Keyword::SHOW) => show(&mut p)?,
        Some(Keyword::DESCRIBE | Keyword::DESC) => describe(&mut p)?,
        Some(Keyword::USE) => {
            let _ = p.parse_one_of_keywords(&[Keyword::DATABASE, Keyword::SCHEMA]);
            Some(Command::Use { database: ident(&p.parse_identifier()?) })
        }
        _ => None,
    };
    command.map(|command| finish(p, command)).transpose()
}

/// `command`, when nothing but semicolons follows it.
fn finish(mut p: Parser, command: Command) -> Result<Command> {
    while p.consume_token(&Token::SemiColon) {}
    let next = p.peek_token();
    if next.token != Token::EOF {
        return Err(Error::Syntax(format!("unexpected '{}' at {}", next.token, next.span.start)));
    }
    Ok(command)
}

/// The key of `SET key=value` when it is a Hive, Spark or Hadoop setting.
fn foreign_setting(sql: &str) -> Option<String> {
    let text = sql.trim_start();
    let set = text.get(..4).filter(|w| w.eq_ignore_ascii_case("set "))?;
    let key = text[set.len()..].trim_start().split(['=', ' ', ';']).next()?.to_lowercase();
    FOREIGN_SETTINGS.iter().any(|prefix| key.starts_with(prefix)).then_some(key)
}

/// Unquoted identifiers are case-insensitive, as in Hive and DataFusion: stored lower case.
fn ident(i: &Ident) -> String {
    if i.quote_style.is_some() { i.value.clone() } else { i.value.to_lowercase() }
}

/// A table name as a user gives it outside SQL (`lakegate catalog describe db.t`), with SQL's
/// rules for quotes and case.
///
/// # Errors
/// [`Error::Syntax`] when `text` is not one name.
pub fn parse_table_name(text: &str) -> Result<TableName> {
    let dialect = GenericDialect {};
    let mut p = Parser::new(&dialect).try_with_sql(text)?;
    let name = table_name(&p.parse_object_name(false)?)?;
    p.expect_token(&sqlparser::tokenizer::Token::EOF)
        .map_err(|_| Error::Syntax(format!("'{text}' is not one table name")))?;
    Ok(name)
}

/// A database name as a user gives it outside SQL, with SQL's rules for quotes and case.
///
/// # Errors
/// [`Error::Syntax`] when `text` is not one name.
pub fn parse_database_name(text: &str) -> Result<String> {
    match parse_table_name(text)? {
        TableName { database: None, name } => Ok(name),
        _ => Err(Error::Syntax(format!("'{text}' is not a database name"))),
    }
}

pub(crate) fn table_name(name: &ObjectName) -> Result<TableName> {
    let parts = name
        .0
        .iter()
        .map(|p| p.as_ident().map(ident).ok_or_else(|| Error::Syntax(format!("'{name}' is not a table name"))))
        .collect::<Result<Vec<_>>>()?;
    match parts.as_slice() {
        [table] => Ok(TableName { database: None, name: table.clone() }),
        [db, table] => Ok(TableName { database: Some(db.clone()), name: table.clone() }),
        [catalog, db, table] if catalog == super::CATALOG => {
            Ok(TableName { database: Some(db.clone()), name: table.clone() })
        }
        // Another catalog's (a metastore's) database goes by its qualified name, `hive.sales`.
        [catalog, db, table] => Ok(TableName { database: Some(format!("{catalog}.{db}")), name: table.clone() }),
        _ => Err(Error::Syntax(format!("'{name}' is not a table name: write table or database.table"))),
    }
}

fn create(p: &mut Parser) -> Result<Option<Command>> {
    let replace = p.parse_keywords(&[Keyword::OR, Keyword::REPLACE]);
    let _global = p.parse_keyword(Keyword::GLOBAL);
    let temporary = p.parse_one_of_keywords(&[Keyword::TEMPORARY, Keyword::TEMP]).is_some();
    let external = p.parse_keyword(Keyword::EXTERNAL);
    if !replace && !temporary && !external && p.parse_one_of_keywords(&[Keyword::DATABASE, Keyword::SCHEMA]).is_some() {
        return create_database(p).map(Some);
    }
    let is_view = match p.parse_one_of_keywords(&[Keyword::TABLE, Keyword::VIEW]) {
        Some(Keyword::TABLE) => false,
        Some(_) => true,
        None => return Ok(None),
    };
    let if_not_exists = p.parse_keywords(&[Keyword::IF, Keyword::NOT, Keyword::EXISTS]);
    let table = table_name(&p.parse_object_name(false)?)?;
    // Views are lakegate's only in Spark's `CREATE TEMPORARY VIEW v USING ...` form.
    if is_view && !(p.peek_keyword(Keyword::USING) || p.peek_keyword(Keyword::OPTIONS)) {
        return Ok(None);
    }
    let columns = if p.consume_token(&Token::LParen) { column_list(p)? } else { Vec::new() };
    let mut create = CreateTable {
        table,
        temporary: temporary || is_view,
        if_not_exists,
        kind: None,
        location: None,
        columns,
        partitioned_by: Vec::new(),
        options: BTreeMap::new(),
        comment: None,
    };
    let mut stored_explicitly = false;
    loop {
        if p.parse_keyword(Keyword::USING) {
            create.kind = Some(p.parse_object_name(false)?.to_string().to_lowercase());
            stored_explicitly = true;
        } else if p.parse_keywords(&[Keyword::STORED, Keyword::AS]) {
            create.kind = Some(ident(&p.parse_identifier()?));
            stored_explicitly = true;
        } else if p.parse_keyword(Keyword::OPTIONS) {
            create.options.extend(key_values(p)?);
        } else if p.parse_keyword(Keyword::TBLPROPERTIES) {
            let ignored = key_values(p)?;
            tracing::warn!(?ignored, "TBLPROPERTIES are not used by lakegate and are not stored");
        } else if p.parse_keywords(&[Keyword::PARTITIONED, Keyword::BY]) {
            p.expect_token(&Token::LParen)?;
            create.partitioned_by = p.parse_comma_separated(|p| {
                let name = ident(&p.parse_identifier()?);
                let typed = !matches!(p.peek_token().token, Token::Comma | Token::RParen);
                let data_type =
                    if typed { Some(types::partition_type(&p.parse_data_type()?).map_err(to_parser)?) } else { None };
                Ok((name, data_type))
            })?;
            p.expect_token(&Token::RParen)?;
        } else if p.parse_keyword(Keyword::LOCATION) {
            create.location = Some(p.parse_literal_string()?);
        } else if p.parse_keyword(Keyword::COMMENT) {
            let _ = p.consume_token(&Token::Eq);
            create.comment = Some(p.parse_literal_string()?);
        } else if p.parse_keyword(Keyword::AS) {
            if !stored_explicitly && create.location.is_none() {
                return Ok(None);
            }
            return Err(Error::Unsupported(
                "CREATE TABLE ... AS SELECT into an external table; create the table, then INSERT INTO it".into(),
            ));
        } else if let Some(k) = p.parse_one_of_keywords(&[Keyword::CLUSTERED, Keyword::ROW, Keyword::WITH]) {
            return Err(Error::Unsupported(format!("the {k:?} clause of CREATE TABLE")));
        } else {
            break;
        }
    }
    if let Some(path) = create.options.remove("path") {
        create.location.get_or_insert(path);
    }
    // `CREATE TABLE t (a INT)` is a managed Parquet table, as in Spark 4 (a Spark Thrift Server
    // user expects it to persist); temporary and replaced ones stay DataFusion's session tables.
    if !stored_explicitly && create.location.is_none() && (create.temporary || replace || create.columns.is_empty()) {
        return Ok(None);
    }
    if replace {
        return Err(Error::Unsupported("CREATE OR REPLACE of a table: DROP TABLE it, then CREATE it".into()));
    }
    Ok(Some(Command::CreateTable(create)))
}

fn to_parser(e: Error) -> sqlparser::parser::ParserError {
    sqlparser::parser::ParserError::ParserError(e.to_string())
}

fn column_list(p: &mut Parser) -> Result<Vec<(String, DataType)>> {
    if p.consume_token(&Token::RParen) {
        return Ok(Vec::new());
    }
    let columns = p.parse_comma_separated(|p| {
        let name = ident(&p.parse_identifier()?);
        let data_type = types::to_arrow(&p.parse_data_type()?)
            .map_err(|e| to_parser(Error::Syntax(format!("column {name}: {e}"))))?;
        // Column attributes lakegate has no use for, accepted so scripts run unchanged.
        loop {
            if p.parse_keywords(&[Keyword::NOT, Keyword::NULL]) || p.parse_keyword(Keyword::NULL) {
                continue;
            }
            if p.parse_keyword(Keyword::COMMENT) {
                p.parse_literal_string()?;
                continue;
            }
            break;
        }
        Ok((name, data_type))
    })?;
    p.expect_token(&Token::RParen)?;
    Ok(columns)
}

/// `(key value, 'key' = 'value', a.b 'v')`: keys lower-cased.
pub(super) fn key_values(p: &mut Parser) -> Result<BTreeMap<String, String>> {
    p.expect_token(&Token::LParen)?;
    if p.consume_token(&Token::RParen) {
        return Ok(BTreeMap::new());
    }
    let pairs = p.parse_comma_separated(|p| {
        let key = match p.peek_token().token {
            Token::SingleQuotedString(_) | Token::DoubleQuotedString(_) => p.parse_literal_string()?,
            _ => p
                .parse_object_name(false)?
                .0
                .iter()
                .filter_map(|part| part.as_ident())
                .map(|i| i.value.clone())
                .collect::<Vec<_>>()
                .join("."),
        };
        let _ = p.consume_token(&Token::Eq);
        let value = match p.parse_value()?.value {
            Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => s,
            Value::Number(n, _) => n.to_string(),
            Value::Boolean(b) => b.to_string(),
            other => other.to_string(),
        };
        Ok((key.to_lowercase(), value))
    })?;
    p.expect_token(&Token::RParen)?;
    Ok(pairs.into_iter().collect())
}

fn create_database(p: &mut Parser) -> Result<Command> {
    let if_not_exists = p.parse_keywords(&[Keyword::IF, Keyword::NOT, Keyword::EXISTS]);
    let name = ident(&p.parse_identifier()?);
    let mut comment = None;
    let (mut kind, mut location, mut options) = (None, None, BTreeMap::new());
    loop {
        if p.parse_keyword(Keyword::COMMENT) {
            comment = Some(p.parse_literal_string()?);
        } else if p.parse_keyword(Keyword::LOCATION) {
            // Hive's database location is ignored (tables here carry their own); a mounted
            // database's is where its tables are.
            location = Some(p.parse_literal_string()?);
        } else if p.parse_keywords(&[Keyword::STORED, Keyword::AS]) {
            kind = Some(ident(&p.parse_identifier()?));
        } else if p.parse_keyword(Keyword::USING) {
            kind = Some(p.parse_object_name(false)?.to_string().to_lowercase());
        } else if p.parse_keyword(Keyword::OPTIONS) {
            options.extend(key_values(p)?);
        } else if p.parse_keyword(Keyword::WITH) {
            // Hive's WITH DBPROPERTIES (...): lakegate keeps none.
            match p.next_token().token {
                Token::Word(w) if w.value.eq_ignore_ascii_case("DBPROPERTIES") => key_values(p)?,
                other => return Err(Error::Syntax(format!("expected DBPROPERTIES after WITH, found '{other}'"))),
            };
        } else {
            break;
        }
    }
    let mount = match kind {
        Some(kind) => Some(Mount { kind, location, options }),
        None if !options.is_empty() => {
            return Err(Error::Syntax("OPTIONS of CREATE DATABASE need STORED AS <source>".into()));
        }
        None => None,
    };
    Ok(Command::CreateDatabase { name, if_not_exists, comment, mount })
}

fn drop(p: &mut Parser) -> Result<Option<Command>> {
    match p.parse_one_of_keywords(&[Keyword::TABLE, Keyword::VIEW, Keyword::DATABASE, Keyword::SCHEMA]) {
        Some(Keyword::TABLE | Keyword::VIEW) => {
            let if_exists = p.parse_keywords(&[Keyword::IF, Keyword::EXISTS]);
            let table = table_name(&p.parse_object_name(false)?)?;
            let _ = p.parse_keyword(Keyword::PURGE);
            Ok(Some(Command::DropTable { table, if_exists }))
        }
        Some(_) => {
            let if_exists = p.parse_keywords(&[Keyword::IF, Keyword::EXISTS]);
            let name = ident(&p.parse_identifier()?);
            let cascade = p.parse_one_of_keywords(&[Keyword::CASCADE, Keyword::RESTRICT]) == Some(Keyword::CASCADE);
            Ok(Some(Command::DropDatabase { name, if_exists, cascade }))
        }
        None => Ok(None),
    }
}

fn like(p: &mut Parser) -> Result<Option<String>> {
    let _ = p.parse_keyword(Keyword::LIKE);
    match p.peek_token().token {
        Token::SingleQuotedString(_) | Token::DoubleQuotedString(_) => Ok(Some(p.parse_literal_string()?)),
        _ => Ok(None),
    }
}

fn show(p: &mut Parser) -> Result<Option<Command>> {
    if p.parse_one_of_keywords(&[Keyword::DATABASES, Keyword::SCHEMAS]).is_some() {
        let catalog = if p.parse_one_of_keywords(&[Keyword::IN, Keyword::FROM]).is_some() {
            Some(ident(&p.parse_identifier()?)).filter(|c| c != super::CATALOG)
        } else {
            None
        };
        return Ok(Some(Command::ShowDatabases { catalog, pattern: like(p)? }));
    }
    if p.parse_keyword(Keyword::TABLES) {
        let database = if p.parse_one_of_keywords(&[Keyword::IN, Keyword::FROM]).is_some() {
            // `db`, `lakegate.db`, or another catalog's `hive.sales`.
            let parts = p.parse_object_name(false)?.0;
            let parts: Vec<String> = parts.iter().filter_map(|part| part.as_ident().map(ident)).collect();
            match parts.as_slice() {
                [db] => Some(db.clone()),
                [catalog, db] if catalog == super::CATALOG => Some(db.clone()),
                [catalog, db] => Some(format!("{catalog}.{db}")),
                _ => return Err(Error::Syntax("SHOW TABLES IN database, or IN catalog.database".into())),
            }
        } else {
            None
        };
        return Ok(Some(Command::ShowTables { database, pattern: like(p)? }));
    }
    if p.parse_keyword(Keyword::PARTITIONS) {
        return Ok(Some(Command::ShowPartitions { table: table_name(&p.parse_object_name(false)?)? }));
    }
    if p.parse_keywords(&[Keyword::CREATE, Keyword::TABLE]) {
        return Ok(Some(Command::ShowCreateTable { table: table_name(&p.parse_object_name(false)?)? }));
    }
    if p.parse_keyword(Keyword::GRANTS) {
        return Ok(Some(Command::ShowGrants));
    }
    Ok(None)
}

fn describe(p: &mut Parser) -> Result<Option<Command>> {
    let _ = p.parse_keyword(Keyword::TABLE);
    let _ = p.parse_one_of_keywords(&[Keyword::EXTENDED, Keyword::FORMATTED]);
    // `DESCRIBE SELECT ...` describes a query: DataFusion's.
    let names_a_table = matches!(p.peek_token().token,
        Token::Word(ref w) if !matches!(w.keyword, Keyword::SELECT | Keyword::WITH | Keyword::VALUES) || w.quote_style.is_some());
    if !names_a_table {
        return Ok(None);
    }
    Ok(Some(Command::Describe { table: table_name(&p.parse_object_name(false)?)? }))
}

/// Hive's `SHOW TABLES LIKE` pattern: `*` (or `%`) is any text, `|` separates alternatives.
pub fn matches_pattern(pattern: &str, name: &str) -> bool {
    fn glob(pattern: &[u8], name: &[u8]) -> bool {
        match pattern.split_first() {
            None => name.is_empty(),
            Some((b'*' | b'%', rest)) => (0..=name.len()).any(|i| glob(rest, &name[i..])),
            Some((c, rest)) => name.first().is_some_and(|n| n.eq_ignore_ascii_case(c)) && glob(rest, &name[1..]),
        }
    }
    pattern.split('|').any(|alt| glob(alt.trim().as_bytes(), name.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn create_table(sql: &str) -> CreateTable {
        match parse(sql).expect("parses") {
            Some(Command::CreateTable(c)) => c,
            other => panic!("expected CREATE TABLE, got {other:?}"),
        }
    }

    #[test]
    fn spark_and_hive_spellings_give_the_same_table() {
        let spark = create_table(
            "CREATE TABLE IF NOT EXISTS Logs.Events (uid BIGINT, type STRING) USING PARQUET \
             PARTITIONED BY (dt STRING) LOCATION 's3a://bucket/logs/events'",
        );
        let hive = create_table(
            "CREATE EXTERNAL TABLE IF NOT EXISTS logs.events (uid BIGINT, type STRING, dt STRING) \
             STORED AS PARQUET PARTITIONED BY (dt) LOCATION 's3a://bucket/logs/events';",
        );
        assert_eq!(spark.table, TableName { database: Some("logs".into()), name: "events".into() });
        assert_eq!(spark.kind.as_deref(), Some("parquet"));
        assert_eq!(hive.kind.as_deref(), Some("parquet"));
        assert_eq!(spark.partitioned_by, vec![("dt".to_owned(), Some(DataType::Utf8))]);
        assert_eq!(hive.partitioned_by, vec![("dt".to_owned(), None)]);
        assert!(spark.if_not_exists && hive.if_not_exists);
        assert_eq!(spark.location, hive.location);
    }

    #[test]
    fn options_accept_every_spelling() {
        let c = create_table(
            "CREATE TEMPORARY VIEW v USING org.apache.spark.sql.parquet OPTIONS (path '/data/v', 's3.Region' = 'eu-west-1', s3.allow_http true)",
        );
        assert!(c.temporary);
        assert_eq!(c.kind.as_deref(), Some("org.apache.spark.sql.parquet"));
        assert_eq!(c.location.as_deref(), Some("/data/v"));
        assert_eq!(c.options.get("s3.region").map(String::as_str), Some("eu-west-1"));
        assert_eq!(c.options.get("s3.allow_http").map(String::as_str), Some("true"));
    }

    #[test]
    fn hive_and_spark_settings_are_ours_to_ignore_and_datafusion_settings_are_not() {
        let ignored = parse("SET  hive.exec.dynamic.partition.mode=nonstrict").expect("parses");
        assert_eq!(ignored, Some(Command::IgnoredSetting { key: "hive.exec.dynamic.partition.mode".into() }));
        assert_eq!(
            parse("set spark.sql.shuffle.partitions = 8").expect("parses"),
            Some(Command::IgnoredSetting { key: "spark.sql.shuffle.partitions".into() })
        );
        assert_eq!(parse("SET datafusion.execution.batch_size = 10").expect("parses"), None);
    }

    #[test]
    fn a_table_without_source_or_location_is_managed_parquet_as_in_spark() {
        let Some(Command::CreateTable(create)) = parse("CREATE TABLE t (a INT)").expect("parses") else {
            panic!("not ours")
        };
        assert_eq!((create.kind, create.location, create.temporary), (None, None, false));
    }

    #[test]
    fn datafusion_statements_are_left_alone() {
        for sql in [
            "SELECT 1",
            "CREATE TEMPORARY TABLE t (a INT)",
            "CREATE TABLE t AS SELECT 1",
            "CREATE VIEW v AS SELECT 1",
            "CREATE TEMPORARY VIEW v AS SELECT 1",
            "SHOW COLUMNS FROM t",
            "INSERT INTO t VALUES (1)",
        ] {
            assert_eq!(parse(sql).expect("parses"), None, "{sql}");
        }
    }

    #[test]
    fn browsing_statements() {
        assert_eq!(
            parse("SHOW TABLES IN demo LIKE 'ad*'").expect("parses"),
            Some(Command::ShowTables { database: Some("demo".into()), pattern: Some("ad*".into()) })
        );
        assert_eq!(
            parse("DESCRIBE EXTENDED demo.users").expect("parses"),
            Some(Command::Describe { table: TableName { database: Some("demo".into()), name: "users".into() } })
        );
        assert_eq!(
            parse("DROP DATABASE IF EXISTS x CASCADE").expect("parses"),
            Some(Command::DropDatabase { name: "x".into(), if_exists: true, cascade: true })
        );
    }

    #[test]
    fn trailing_garbage_is_a_syntax_error() {
        let err = parse("SHOW DATABASES LIKE 'a' extra").unwrap_err().to_string();
        assert!(err.contains("extra"), "{err}");
    }

    #[test]
    fn hive_patterns() {
        assert!(matches_pattern("ad*", "adserver_logs"));
        assert!(matches_pattern("users|prog*", "programs"));
        assert!(!matches_pattern("users", "users2"));
    }
}
