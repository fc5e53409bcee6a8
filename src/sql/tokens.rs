//! The user's SQL text cut at token boundaries. Statements are split and placeholders renamed
//! by slicing the original text at each token's byte offsets, never by printing tokens back:
//! a printed token loses its escaping (`'it''s'` would come back as `'it's'`).

use std::ops::Range;

use sqlparser::dialect::GenericDialect;
use sqlparser::tokenizer::{Token, Tokenizer};

use crate::Result;

/// One token of a text and the bytes of the text it came from.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Located {
    pub(crate) token: Token,
    pub(crate) bytes: Range<usize>,
    /// 1-based line of the token's first character.
    pub(crate) line: u64,
}

/// The tokens of `sql` (whitespace and comments included), each with its byte range. The
/// ranges tile the text: each starts where the one before ended.
///
/// # Errors
/// [`crate::Error::Syntax`] for an unterminated string or comment, with its line.
pub(crate) fn tokenize(sql: &str) -> Result<Vec<Located>> {
    let tokens = Tokenizer::new(&GenericDialect {}, sql).tokenize_with_location()?;
    // The tokenizer gives (line, column in characters); walk the text once to turn each
    // start into a byte offset.
    let mut starts = Vec::with_capacity(tokens.len());
    let mut chars = sql.char_indices().peekable();
    let (mut line, mut column) = (1u64, 1u64);
    for token in &tokens {
        let (want_line, want_column) = (token.span.start.line, token.span.start.column);
        while (line, column) < (want_line, want_column) {
            let Some((_, c)) = chars.next() else { break };
            if c == '\n' {
                line += 1;
                column = 1;
            } else {
                column += 1;
            }
        }
        starts.push(chars.peek().map_or(sql.len(), |(offset, _)| *offset));
    }
    let ends = starts.iter().skip(1).copied().chain(std::iter::once(sql.len()));
    Ok(tokens
        .into_iter()
        .zip(starts.iter().copied().zip(ends))
        .map(|(token, (start, end))| Located { line: token.span.start.line, token: token.token, bytes: start..end })
        .collect())
}

/// The byte offset in `sql` of a tokenizer location (1-based line, column in characters).
pub(crate) fn byte_offset(sql: &str, location: sqlparser::tokenizer::Location) -> usize {
    let (mut line, mut column) = (1, 1);
    for (offset, c) in sql.char_indices() {
        if (line, column) >= (location.line, location.column) {
            return offset;
        }
        if c == '\n' {
            line += 1;
            column = 1;
        } else {
            column += 1;
        }
    }
    sql.len()
}

/// `sql` with each `?` placeholder numbered (`$1`, `$2`...), everything else byte for byte:
/// DataFusion gives every `?` the same name, so two of different types would not plan.
///
/// # Errors
/// `sql` does not tokenize.
pub fn number_placeholders(sql: &str) -> Result<String> {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut copied = 0;
    let mut next = 0;
    for located in tokenize(sql)? {
        if located.token == Token::Placeholder("?".into()) {
            next += 1;
            out.push_str(&sql[copied..located.bytes.start]);
            out.push_str(&format!("${next}"));
            copied = located.bytes.end;
        }
    }
    out.push_str(&sql[copied..]);
    Ok(out)
}

/// `sql` for logs and `system.queries`: string literals that hold secrets become `'***'`
/// (the value of an option whose name says password, secret, token or key, and the password
/// of a URL), everything else byte for byte. Text that does not tokenize is replaced whole,
/// since it cannot be told apart.
pub fn redact(sql: &str) -> String {
    let Ok(tokens) = tokenize(sql) else { return "<statement not shown: it does not tokenize>".to_owned() };
    let mut out = String::with_capacity(sql.len());
    let mut copied = 0;
    // The last word or string before this token, skipping blanks, `=` and `,`.
    let mut key: Option<String> = None;
    for located in &tokens {
        let masked = match &located.token {
            Token::SingleQuotedString(value) | Token::DoubleQuotedString(value) => {
                let secret_key = key.as_deref().is_some_and(names_a_secret) && !lakegate_catalog::is_reference(value);
                if secret_key {
                    Some("'***'".to_owned())
                } else {
                    url_without_password(value).map(|v| format!("'{}'", v.replace('\'', "''")))
                }
            }
            _ => None,
        };
        if let Some(masked) = masked {
            out.push_str(&sql[copied..located.bytes.start]);
            out.push_str(&masked);
            copied = located.bytes.end;
        }
        match &located.token {
            Token::Whitespace(_) | Token::Eq | Token::Comma => {}
            Token::SingleQuotedString(v) | Token::DoubleQuotedString(v) => key = Some(v.to_lowercase()),
            Token::Word(w) => key = Some(w.value.to_lowercase()),
            _ => key = None,
        }
    }
    out.push_str(&sql[copied..]);
    out
}

fn names_a_secret(key: &str) -> bool {
    ["password", "secret", "token", "key", "credential"].iter().any(|word| key.contains(word))
}

/// `value` with a URL's password (`scheme://user:PASSWORD@host`, `?password=...`) masked, when
/// it has one.
fn url_without_password(value: &str) -> Option<String> {
    let mut url = url::Url::parse(value).ok()?;
    let mut changed = false;
    if url.password().is_some() {
        url.set_password(Some("***")).ok()?;
        changed = true;
    }
    let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    if pairs.iter().any(|(k, _)| names_a_secret(&k.to_lowercase())) {
        let masked = pairs
            .iter()
            .map(|(k, v)| (k.clone(), if names_a_secret(&k.to_lowercase()) { "***".to_owned() } else { v.clone() }));
        url.query_pairs_mut().clear().extend_pairs(masked);
        changed = true;
    }
    changed.then(|| url.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ranges_tile_the_text_and_name_each_token() {
        let sql = "SELECT 'it''s', \"a\"\"b\" -- ünï\n\t/* x */ FROM t WHERE x = 'é';";
        let tokens = tokenize(sql).expect("tokens");
        assert_eq!(tokens.first().map(|t| t.bytes.start), Some(0));
        assert_eq!(tokens.last().map(|t| t.bytes.end), Some(sql.len()));
        for pair in tokens.windows(2) {
            assert_eq!(pair[0].bytes.end, pair[1].bytes.start);
        }
        let texts: Vec<&str> = tokens.iter().map(|t| &sql[t.bytes.clone()]).collect();
        assert!(texts.contains(&"'it''s'"), "{texts:?}");
        assert!(texts.contains(&"\"a\"\"b\""), "{texts:?}");
        assert!(texts.contains(&"'é'"), "{texts:?}");
        assert_eq!(tokens.iter().find(|t| t.token == Token::make_keyword("FROM")).map(|t| t.line), Some(2));
    }

    #[test]
    fn placeholders_are_numbered_and_strings_kept() {
        assert_eq!(number_placeholders("SELECT '?', ? + ?").expect("sql"), "SELECT '?', $1 + $2");
        assert_eq!(number_placeholders("SELECT 'it''s' = ?").expect("sql"), "SELECT 'it''s' = $1");
        assert_eq!(number_placeholders("SELECT $1").expect("sql"), "SELECT $1");
    }

    #[test]
    fn secrets_are_masked_and_the_rest_kept() {
        let sql = "CREATE TEMPORARY VIEW u USING org.apache.spark.sql.jdbc OPTIONS (url 'jdbc:postgresql://h/db?user=a&password=hunter2', \
                   dbtable 'it''s', password 'hunter2', 's3.secret_access_key' = 'abc', user '${env:U}', token '${env:T}')";
        let shown = redact(sql);
        assert!(!shown.contains("hunter2") && !shown.contains("'abc'"), "{shown}");
        assert!(
            shown.contains("dbtable 'it''s'") && shown.contains("'${env:T}'") && shown.contains("password '***'"),
            "{shown}"
        );
        let url = redact("CREATE EXTERNAL TABLE t STORED AS POSTGRES LOCATION 'postgres://bob:pw1@db:5432/x'");
        assert!(!url.contains("pw1") && url.contains("postgres://bob:***@db:5432/x"), "{url}");
        assert_eq!(redact("SELECT 'key' AS k, 1"), "SELECT 'key' AS k, 1");
    }

    /// A string literal in SQL's own escaping: quotes doubled, nothing else touched.
    fn literal(value: &str) -> String {
        format!("'{}'", value.replace('\'', "''"))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Any string, written as a literal among other tokens, comes back from the token
        /// ranges byte for byte, and placeholder numbering never touches it.
        #[test]
        fn literals_survive_tokenizing(value in "(\\PC|['\\\\$;?\\-*/\"\n\t ]){0,40}") {
            let comment = value.replace('\n', " ");
            let sql = format!("SELECT {} AS v, ? -- {comment}\n", literal(&value));
            let tokens = tokenize(&sql).expect("tokens");
            let string = tokens.iter().find(|t| matches!(t.token, Token::SingleQuotedString(_))).expect("a string token");
            prop_assert_eq!(&sql[string.bytes.clone()], literal(&value));
            prop_assert_eq!(&string.token, &Token::SingleQuotedString(value.clone()));
            let numbered = number_placeholders(&sql).expect("numbered");
            prop_assert_eq!(numbered, format!("SELECT {} AS v, $1 -- {comment}\n", literal(&value)));
        }
    }
}
