//! Spark's cache statements: `CACHE [LAZY] TABLE t [OPTIONS (...)] [[AS] SELECT ...]`,
//! `UNCACHE TABLE [IF EXISTS] t`, `CLEAR CACHE`, and `SHOW CACHED TABLES`.

use std::collections::BTreeMap;

use sqlparser::keywords::Keyword;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::Token;

use super::ddl::{Command, key_values, table_name};
use crate::Result;

/// One of the cache statements, or `Ok(None)` with the parser where it was. A cached query is
/// taken from `sql` as written, from its first token to the end.
pub(super) fn parse(p: &mut Parser, sql: &str) -> Result<Option<Command>> {
    let words = p.peek_tokens::<3>().map(|t| t.to_string().to_lowercase());
    let command = match [words[0].as_str(), words[1].as_str(), words[2].as_str()] {
        ["cache", ..] => {
            p.next_token();
            let lazy = words[1] == "lazy";
            if lazy {
                p.next_token();
            }
            p.expect_keyword_is(Keyword::TABLE)?;
            let table = table_name(&p.parse_object_name(false)?)?;
            let options = if p.parse_keyword(Keyword::OPTIONS) { key_values(p)? } else { BTreeMap::new() };
            let _ = p.parse_keyword(Keyword::AS);
            let query = match p.peek_token() {
                next if matches!(next.token, Token::EOF | Token::SemiColon) => None,
                next => {
                    let start = super::tokens::byte_offset(sql, next.span.start);
                    Some(sql[start..].trim_end().trim_end_matches(';').trim_end().to_owned())
                }
            };
            return Ok(Some(Command::CacheTable { table, lazy, options, query }));
        }
        ["uncache", ..] => {
            p.next_token();
            p.expect_keyword_is(Keyword::TABLE)?;
            let if_exists = p.parse_keywords(&[Keyword::IF, Keyword::EXISTS]);
            Command::UncacheTable { table: table_name(&p.parse_object_name(false)?)?, if_exists }
        }
        ["clear", "cache", _] => {
            p.next_token();
            p.next_token();
            Command::ClearCache
        }
        ["show", "cached", "tables"] => {
            p.next_token();
            p.next_token();
            p.next_token();
            Command::ShowCachedTables
        }
        _ => return Ok(None),
    };
    Ok(Some(command))
}

#[cfg(test)]
mod tests {
    use crate::sql::ddl::{Command, TableName, parse};

    #[test]
    fn spark_cache_statements() {
        let users = TableName { database: None, name: "users".into() };
        assert_eq!(
            parse("CACHE TABLE users").expect("parses"),
            Some(Command::CacheTable { table: users.clone(), lazy: false, options: Default::default(), query: None })
        );
        let Some(Command::CacheTable { table, lazy, options, query }) =
            parse("cache lazy table crm.u OPTIONS ('refresh_interval' '5m', refresh_column 'updated_at');")
                .expect("parses")
        else {
            panic!("not a cache statement")
        };
        assert_eq!((table.database.as_deref(), table.name.as_str(), lazy, query), (Some("crm"), "u", true, None));
        assert_eq!(options.get("refresh_interval").map(String::as_str), Some("5m"));
        assert_eq!(options.get("refresh_column").map(String::as_str), Some("updated_at"));
        assert_eq!(
            parse("UNCACHE TABLE IF EXISTS users").expect("parses"),
            Some(Command::UncacheTable { table: users.clone(), if_exists: true })
        );
        assert_eq!(parse("CLEAR CACHE").expect("parses"), Some(Command::ClearCache));
        assert_eq!(parse("SHOW CACHED TABLES;").expect("parses"), Some(Command::ShowCachedTables));
    }

    #[test]
    fn a_cached_query_is_kept_byte_for_byte() {
        let sql = "CACHE TABLE named AS\n  SELECT 'it''s', \"Odd Name\" FROM t -- note\n ;  ";
        let Some(Command::CacheTable { query, .. }) = parse(sql).expect("parses") else { panic!("not a cache") };
        assert_eq!(query.as_deref(), Some("SELECT 'it''s', \"Odd Name\" FROM t -- note"));
        let Some(Command::CacheTable { query, .. }) =
            parse("CACHE TABLE é WITH x AS (SELECT 1) SELECT * FROM x").expect("parses")
        else {
            panic!("not a cache")
        };
        assert_eq!(query.as_deref(), Some("WITH x AS (SELECT 1) SELECT * FROM x"));
    }
}
