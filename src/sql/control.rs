//! Statements that control queries rather than data: `KILL QUERY`, Trino's
//! `CALL system.runtime.kill_query`, and `SET statement_timeout`.

use sqlparser::keywords::Keyword;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::Token;

use super::ddl::Command;
use crate::{Error, Result};

/// `KILL [QUERY] 'id'`, `CALL system.runtime.kill_query('id')` (also `query_id => 'id'`) and
/// `SET statement_timeout = '30s'`; anything else is left to the other parsers (`Ok(None)`,
/// with the parser where it was).
pub(super) fn parse(p: &mut Parser) -> Result<Option<Command>> {
    let words = p.peek_tokens::<6>().map(|t| t.to_string().to_lowercase());
    let command = match words[0].as_str() {
        "kill" => {
            p.next_token();
            let _ = p.parse_keyword(Keyword::QUERY);
            Command::KillQuery { id: p.parse_literal_string()? }
        }
        "call" if words[1..] == ["system", ".", "runtime", ".", "kill_query"] => {
            let _ = p.parse_keyword(Keyword::CALL);
            let _ = p.parse_object_name(false)?;
            p.expect_token(&Token::LParen)?;
            if p.peek_nth_token(1).token == Token::RArrow {
                let _ = p.parse_identifier()?;
                p.expect_token(&Token::RArrow)?;
            }
            let id = p.parse_literal_string()?;
            p.expect_token(&Token::RParen)?;
            Command::KillQuery { id }
        }
        "set" if words[1] == "statement_timeout" => {
            p.next_token();
            p.next_token();
            if !p.consume_token(&Token::Eq) {
                p.expect_keyword_is(Keyword::TO)?;
            }
            let text = match p.next_token().token {
                Token::SingleQuotedString(s) | Token::Number(s, _) => s,
                other => {
                    return Err(Error::Syntax(format!(
                        "statement_timeout: expected a duration such as '30s', found {other}"
                    )));
                }
            };
            Command::SetStatementTimeout { timeout: parse_duration(&text)? }
        }
        _ => return Ok(None),
    };
    Ok(Some(command))
}

/// `30s`, `500ms`, `5m`, `1h`, or a number of seconds; zero means none.
///
/// # Errors
/// [`Error::Syntax`] naming the text.
pub fn parse_duration(text: &str) -> Result<Option<std::time::Duration>> {
    let text = text.trim();
    let digits = text.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    let scale = match unit.trim().to_ascii_lowercase().as_str() {
        "ms" => 0.001,
        "" | "s" | "sec" | "seconds" => 1.0,
        "m" | "min" | "minutes" => 60.0,
        "h" | "hours" => 3600.0,
        _ => 0.0,
    };
    match number.parse::<f64>() {
        Ok(n) if scale > 0.0 && n.is_finite() && n >= 0.0 => {
            Ok((n > 0.0).then(|| std::time::Duration::from_secs_f64(n * scale)))
        }
        _ => Err(Error::Syntax(format!("'{text}' is not a duration: write e.g. '30s', '500ms', '5m' or '1h'"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::ddl::parse;

    #[test]
    fn query_control_statements() {
        let kill = |sql: &str| parse(sql).expect("parses");
        let id = || Some(Command::KillQuery { id: "q-1".into() });
        assert_eq!(kill("KILL QUERY 'q-1'"), id());
        assert_eq!(kill("kill 'q-1';"), id());
        assert_eq!(kill("CALL system.runtime.kill_query('q-1')"), id());
        assert_eq!(kill("CALL system.runtime.kill_query(query_id => 'q-1')"), id());
        assert_eq!(kill("CALL other.procedure('q-1')"), None);
        let timeout = |sql: &str| match parse(sql).expect("parses") {
            Some(Command::SetStatementTimeout { timeout }) => timeout,
            other => panic!("{other:?}"),
        };
        assert_eq!(timeout("SET statement_timeout = '30s'"), Some(std::time::Duration::from_secs(30)));
        assert_eq!(timeout("set STATEMENT_TIMEOUT to '500ms'"), Some(std::time::Duration::from_millis(500)));
        assert_eq!(timeout("SET statement_timeout = 0"), None);
        assert_eq!(timeout("SET statement_timeout = '2m'"), Some(std::time::Duration::from_secs(120)));
        assert!(parse("SET statement_timeout = 'soon'").is_err());
        assert_eq!(parse("SET datafusion.execution.batch_size = 1024").expect("parses"), None);
    }
}
