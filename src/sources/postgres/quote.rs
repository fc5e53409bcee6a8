//! Names as databases on PostgreSQL's wire protocol read them.
//!
//! sqlparser's `Ident` is not used to render remote names: its Display leaves an already
//! doubled quote (`a""b`) and a quote after a backslash (`a\"b`) alone, so such a name would
//! come out as a different name, or end the identifier early and let the rest of the name
//! be read as SQL. Every remote name is an untrusted string (a column may be called anything),
//! so each is written here, always delimited, with every embedded quote doubled.

/// `name` as a delimited identifier: `"` + the name with each `"` doubled + `"`. Inside a
/// delimited identifier PostgreSQL (and the databases on its protocol) give no other character a meaning
/// (a backslash is itself), so this is the whole escaping.
pub(crate) fn identifier(name: &str) -> String {
    let mut quoted = String::with_capacity(name.len() + 2);
    quoted.push('"');
    for c in name.chars() {
        if c == '"' {
            quoted.push('"');
        }
        quoted.push(c);
    }
    quoted.push('"');
    quoted
}

/// `"schema"."table"`.
pub(crate) fn table(schema: &str, table: &str) -> String {
    format!("{}.{}", identifier(schema), identifier(table))
}

#[cfg(test)]
mod tests {
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};
    use proptest::prelude::*;

    use super::*;

    /// The tokens of `sql` in PostgreSQL's dialect, whitespace dropped.
    fn tokens(sql: &str) -> Vec<Token> {
        let tokens = Tokenizer::new(&PostgreSqlDialect {}, sql).tokenize().unwrap_or_else(|e| panic!("{sql}: {e}"));
        tokens.into_iter().filter(|t| !matches!(t, Token::Whitespace(_))).collect()
    }

    /// The one delimited identifier `sql` consists of.
    fn parsed_identifier(sql: &str) -> Option<String> {
        match tokens(sql).as_slice() {
            [Token::Word(word)] if word.quote_style == Some('"') => Some(word.value.clone()),
            _ => None,
        }
    }

    #[test]
    fn names_that_fool_sqlparsers_rendering_are_quoted_exactly() {
        for (name, quoted) in [
            (r#"we"ird"#, r#""we""ird""#),
            (r#"a""b"#, r#""a""""b""#),
            ("it's", r#""it's""#),
            (r"back\slash", r#""back\slash""#),
            (r#"back\"quote"#, r#""back\""quote""#),
            ("with space", r#""with space""#),
            ("ünï", r#""ünï""#),
        ] {
            assert_eq!(identifier(name), quoted);
            assert_eq!(parsed_identifier(quoted).as_deref(), Some(name));
        }
        assert_eq!(table("public", r#"we"ird"#), r#""public"."we""ird""#);
    }

    proptest! {
        /// Any name (PostgreSQL names cannot hold NUL) reads back as itself, as one token.
        #[test]
        fn any_identifier_round_trips(name in "[^\u{0}]{1,40}") {
            prop_assert_eq!(parsed_identifier(&identifier(&name)), Some(name));
        }

        /// The same with the characters that matter over-represented.
        #[test]
        fn quote_heavy_identifiers_round_trip(name in r#"["'\\ .;a-z()ü-]{1,24}"#) {
            prop_assert_eq!(parsed_identifier(&identifier(&name)), Some(name));
        }
    }
}
