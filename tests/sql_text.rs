//! SQL text keeps its meaning byte for byte: string literals through `lakegate sql`, and bound
//! values through the Flight SQL clients (ADBC and JDBC), for generated strings full of quotes,
//! backslashes, comment and placeholder markers, NULs and non-ASCII text.

use std::io::Write;

use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::TestRunner;

use crate::common::Lakegate;
use crate::flight::Server;

/// How many generated strings each path is checked with.
const CASES: usize = 1000;

/// Strings made of what breaks SQL splicing, with any other printable text between.
fn generated_strings() -> Vec<String> {
    let strategy = "(\\PC|['\\\\$;?\\-*/\"\n\t \u{0}]|\\$\\$|--|/\\*|\\*/|''){0,24}";
    let mut runner = TestRunner::deterministic();
    let strategy = proptest::string::string_regex(strategy).expect("regex");
    let mut values = vec![String::new(), "'".into(), "\\' OR 1=1 --".into(), "x' OR '1'='1".into(), "$$".into()];
    while values.len() < CASES {
        values.push(strategy.new_tree(&mut runner).expect("value").current());
    }
    values
}

fn hex_file(values: &[String]) -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().expect("temp file");
    for value in values {
        let hex: String = value.bytes().map(|b| format!("{b:02x}")).collect();
        writeln!(file, "{hex}").expect("write");
    }
    file
}

#[test]
fn string_literals_come_back_unchanged_through_lakegate_sql() {
    let values = generated_strings();
    let script: String = values.iter().map(|v| format!("SELECT '{}' AS v;\n", v.replace('\'', "''"))).collect();
    let lakegate = Lakegate::new();
    let path = lakegate.data_dir.path().join("literals.sql");
    std::fs::write(&path, script).expect("script");
    let run = lakegate.run(&["sql", "--format", "json", "-f", path.to_str().expect("utf-8")]).success();
    let got: Vec<String> = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("a JSON row")["v"].as_str().expect("v").to_owned())
        .collect();
    assert_eq!(got.len(), values.len());
    for (value, got) in values.iter().zip(&got) {
        assert_eq!(value, got);
    }
}

#[test]
fn bound_values_come_back_unchanged_through_adbc_and_jdbc() {
    let values = hex_file(&generated_strings());
    let path = values.path().to_str().expect("utf-8");
    let server = Server::start_without_users();
    server.run_client(&crate::flight::clients_dir().join("bound_values.py"), &["--values", path]);
    server.run_client(&crate::flight::clients_dir().join("jdbc/run.sh"), &["--values", path]);
}
