//! Splits a script into statements, keeping the line each starts on for error messages.

use sqlparser::dialect::GenericDialect;
use sqlparser::tokenizer::{Token, Tokenizer, Whitespace};

use crate::Result;

#[derive(Debug, Clone, PartialEq)]
pub struct ScriptStatement {
    /// 1-based line of the statement's first token.
    pub line: u64,
    pub text: String,
}

/// Splits `script` on top-level semicolons (not those inside strings or comments).
///
/// # Errors
/// [`crate::Error::Syntax`] for an unterminated string or comment, with its line.
pub fn split_statements(script: &str) -> Result<Vec<ScriptStatement>> {
    let tokens = Tokenizer::new(&GenericDialect {}, script).tokenize_with_location()?;
    let mut statements = Vec::new();
    let mut text = String::new();
    let mut line = None;
    for token in tokens {
        if token.token == Token::SemiColon {
            if let Some(line) = line.take() {
                statements.push(ScriptStatement { line, text: std::mem::take(&mut text).trim().to_owned() });
            }
            text.clear();
            continue;
        }
        let is_blank = matches!(token.token, Token::Whitespace(Whitespace::Space | Whitespace::Newline | Whitespace::Tab))
            || matches!(token.token, Token::Whitespace(Whitespace::SingleLineComment { .. } | Whitespace::MultiLineComment(_)));
        if !is_blank && line.is_none() {
            line = Some(token.span.start.line);
        }
        if line.is_some() {
            text.push_str(&token.token.to_string());
        }
    }
    if let Some(line) = line {
        statements.push(ScriptStatement { line, text: text.trim().to_owned() });
    }
    Ok(statements)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_on_semicolons_outside_strings_and_comments() {
        let script = "-- nightly job\nCREATE DATABASE x;\n\nSELECT ';' AS s -- not; a split\n  FROM t;\n/* done; */";
        let statements = split_statements(script).expect("splits");
        assert_eq!(statements.len(), 2);
        assert_eq!(statements[0], ScriptStatement { line: 2, text: "CREATE DATABASE x".into() });
        assert_eq!(statements[1].line, 4);
        assert!(statements[1].text.starts_with("SELECT ';' AS s"), "{}", statements[1].text);
        assert!(statements[1].text.ends_with("FROM t"), "{}", statements[1].text);
    }

    #[test]
    fn unterminated_strings_name_their_line() {
        let err = split_statements("SELECT 1;\nSELECT 'oops").unwrap_err().to_string();
        assert!(err.contains("Line: 2"), "{err}");
    }
}
