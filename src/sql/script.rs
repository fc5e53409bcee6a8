//! Splits a script into statements, keeping the line each starts on for error messages.

use sqlparser::tokenizer::Token;

use super::tokens::tokenize;
use crate::Result;

#[derive(Debug, Clone, PartialEq)]
pub struct ScriptStatement {
    /// 1-based line of the statement's first token.
    pub line: u64,
    /// The statement exactly as written, from its first token to the last before its `;`
    /// (comments inside kept, surrounding whitespace dropped).
    pub text: String,
}

/// Splits `script` on top-level semicolons (not those inside strings or comments).
///
/// # Errors
/// [`crate::Error::Syntax`] for an unterminated string or comment, with its line.
pub fn split_statements(script: &str) -> Result<Vec<ScriptStatement>> {
    let mut statements = Vec::new();
    // The first non-blank token of the statement being read: its line and byte offset.
    let mut start: Option<(u64, usize)> = None;
    let mut push = |start: Option<(u64, usize)>, end: usize| {
        if let Some((line, from)) = start {
            statements.push(ScriptStatement { line, text: script[from..end].trim_end().to_owned() });
        }
    };
    for located in tokenize(script)? {
        if located.token == Token::SemiColon {
            push(start.take(), located.bytes.start);
        } else if start.is_none() && !matches!(located.token, Token::Whitespace(_)) {
            start = Some((located.line, located.bytes.start));
        }
    }
    push(start, script.len());
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
    fn statements_keep_their_text_byte_for_byte() {
        let script = "SELECT 'it''s';\nSELECT 'x'' OR ''1''=''1' /* ; */ AS v ;SELECT \"a\"\"b\", 'ünï'";
        let texts: Vec<String> = split_statements(script).expect("splits").into_iter().map(|s| s.text).collect();
        assert_eq!(texts, ["SELECT 'it''s'", "SELECT 'x'' OR ''1''=''1' /* ; */ AS v", "SELECT \"a\"\"b\", 'ünï'"]);
    }

    #[test]
    fn unterminated_strings_name_their_line() {
        let err = split_statements("SELECT 1;\nSELECT 'oops").unwrap_err().to_string();
        assert!(err.contains("Line: 2"), "{err}");
    }
}
