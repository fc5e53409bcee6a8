//! Secret references: options hold `${env:NAME}`, never the secret itself.

use std::collections::BTreeMap;

use crate::{Error, Result};

/// True when `value` is a reference such as `${env:PG_PASSWORD}`.
pub fn is_reference(value: &str) -> bool {
    value.starts_with("${") && value.ends_with('}')
}

/// Resolves a reference (`${env:NAME}`) to its value; any other string is returned as is.
///
/// # Errors
/// [`Error::MissingEnv`] when the variable is unset, [`Error::BadReference`] for an unknown form.
pub fn resolve_reference(value: &str) -> Result<String> {
    if !is_reference(value) {
        return Ok(value.to_owned());
    }
    let inner = &value[2..value.len() - 1];
    match inner.split_once(':') {
        Some(("env", var)) if !var.is_empty() => {
            std::env::var(var).map_err(|_| Error::MissingEnv { var: var.to_owned(), reference: value.to_owned() })
        }
        _ => Err(Error::BadReference(value.to_owned())),
    }
}

/// A copy of `options` where every secret that is not a reference reads `***`.
pub fn mask_secrets(options: &BTreeMap<String, String>, is_secret: impl Fn(&str) -> bool) -> BTreeMap<String, String> {
    options
        .iter()
        .map(|(k, v)| {
            let shown = if is_secret(k) && !is_reference(v) { "***".to_owned() } else { v.clone() };
            (k.clone(), shown)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_env_references_and_passes_literals() {
        // PATH is set in every test environment.
        let path = std::env::var("PATH").expect("PATH is set");
        assert_eq!(resolve_reference("${env:PATH}").expect("PATH resolves"), path);
        assert_eq!(resolve_reference("plain").expect("literal"), "plain");
        let missing = resolve_reference("${env:LAKEGATE_SURELY_UNSET_VAR}").unwrap_err();
        assert!(missing.to_string().contains("LAKEGATE_SURELY_UNSET_VAR"), "{missing}");
        assert!(matches!(resolve_reference("${vault:x}"), Err(Error::BadReference(_))));
    }

    #[test]
    fn masks_only_clear_secrets() {
        let options = BTreeMap::from([
            ("password".to_owned(), "hunter2".to_owned()),
            ("token".to_owned(), "${env:TOKEN}".to_owned()),
            ("region".to_owned(), "eu-west-1".to_owned()),
        ]);
        let masked = mask_secrets(&options, |k| k == "password" || k == "token");
        assert_eq!(masked["password"], "***");
        assert_eq!(masked["token"], "${env:TOKEN}");
        assert_eq!(masked["region"], "eu-west-1");
    }
}
