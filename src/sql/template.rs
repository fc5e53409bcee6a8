//! Script variables in the forms Airflow and Hive scripts use: `{{ ds }}`, `${var}`,
//! `${hivevar:var}`. `${env:NAME}` is left alone: it is a secret reference, resolved only when
//! a table is opened.

use std::collections::BTreeMap;

use crate::{Error, Result};

/// Airflow's date variables derived from `ds` (YYYY-MM-DD) unless given.
pub fn with_airflow_defaults(mut vars: BTreeMap<String, String>) -> BTreeMap<String, String> {
    if let Some(ds) = vars.get("ds").cloned() {
        let ds_nodash = ds.replace('-', "");
        vars.entry("ts".into()).or_insert_with(|| format!("{ds}T00:00:00+00:00"));
        vars.entry("ts_nodash".into()).or_insert_with(|| format!("{ds_nodash}T000000"));
        vars.entry("ds_nodash".into()).or_insert(ds_nodash);
    }
    vars
}

/// Replaces every variable in `script`.
///
/// # Errors
/// [`Error::Syntax`] naming the line of an unknown or unterminated variable.
pub fn render(script: &str, vars: &BTreeMap<String, String>) -> Result<String> {
    let mut out = String::with_capacity(script.len());
    let mut rest = script;
    while let Some(start) = [rest.find("{{"), rest.find("${")].into_iter().flatten().min() {
        out.push_str(&rest[..start]);
        let line = script[..script.len() - rest.len() + start].matches('\n').count() + 1;
        let (close, open_len) = if rest[start..].starts_with("{{") { ("}}", 2) } else { ("}", 2) };
        let Some(len) = rest[start + open_len..].find(close) else {
            return Err(Error::Syntax(format!("line {line}: unterminated variable '{}'", &rest[start..])));
        };
        let whole = &rest[start..start + open_len + len + close.len()];
        let name = rest[start + open_len..start + open_len + len].trim();
        let name = name.strip_prefix("hivevar:").unwrap_or(name);
        if close == "}" && name.starts_with("env:") {
            out.push_str(whole);
        } else {
            let value = vars.get(name).ok_or_else(|| {
                let known = vars.keys().cloned().collect::<Vec<_>>().join(", ");
                Error::Syntax(format!(
                    "line {line}: unknown variable '{name}' in {whole}; defined: {known} (pass --var {name}=...)"
                ))
            })?;
            out.push_str(value);
        }
        rest = &rest[start + whole.len()..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> BTreeMap<String, String> {
        with_airflow_defaults(BTreeMap::from([("ds".into(), "2018-03-05".into()), ("lookback".into(), "7".into())]))
    }

    #[test]
    fn airflow_and_hive_forms() {
        let sql =
            "WHERE dt = '{{ ds }}' AND dt > date_sub('{{ds}}', ${lookback}) -- ${hivevar:lookback} {{ ts_nodash }}";
        assert_eq!(
            render(sql, &vars()).expect("renders"),
            "WHERE dt = '2018-03-05' AND dt > date_sub('2018-03-05', 7) -- 7 20180305T000000"
        );
    }

    #[test]
    fn secret_references_stay() {
        let sql = "OPTIONS ('password' '${env:PG_PASSWORD}')";
        assert_eq!(render(sql, &vars()).expect("renders"), sql);
    }

    #[test]
    fn unknown_variables_name_their_line() {
        let err = render("SELECT 1;\nSELECT '{{ yesterday }}'", &vars()).unwrap_err().to_string();
        assert!(err.contains("line 2") && err.contains("yesterday") && err.contains("--var yesterday="), "{err}");
        let err = render("SELECT '${oops", &vars()).unwrap_err().to_string();
        assert!(err.contains("unterminated"), "{err}");
    }
}
