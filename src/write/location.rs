//! Which table locations lakegate may delete files in.
//!
//! An overwrite or a vacuum deletes the files a table no longer shows. That is only safe in a
//! directory that is the table's alone: a table registered at the data directory, the
//! warehouse root or a parent of another table's location would have its "replaced" files
//! include the catalog's neighbours or another table's data. Such tables can still be read
//! and appended to; only the statements that delete are refused.

use datafusion::datasource::listing::ListingTableUrl;
use lakegate_catalog::TableSpec;
use url::Url;

use super::Context;
use crate::storage::listing::listing_location;
use crate::{Error, Result};

/// `location` as a comparable directory URL ending in `/`: local paths absolute, with `..`
/// and symbolic links resolved where the path exists, so a second spelling of a directory
/// cannot slip past the checks; `s3a://` and `s3n://` as `s3://`, which name the same bucket.
fn directory_key(location: &str) -> Option<String> {
    let url = ListingTableUrl::parse(listing_location(location)).ok()?;
    // Parsing the text again removes `.` and `..` segments.
    let mut url = Url::parse(url.as_str()).ok()?;
    if url.scheme() == "file"
        && let Ok(path) = url.to_file_path()
        && let Ok(real) = std::fs::canonicalize(&path)
        && let Ok(real) = Url::from_directory_path(real)
    {
        url = real;
    }
    let mut text = url.to_string();
    for alias in ["s3a://", "s3n://"] {
        if let Some(rest) = text.strip_prefix(alias) {
            text = format!("s3://{rest}");
        }
    }
    if !text.ends_with('/') {
        text.push('/');
    }
    Some(text)
}

/// Why deleting files in `own` (a [`directory_key`]) could hit what is not the table's.
fn sharing_reason(
    own: &str,
    data_dir: Option<&str>,
    warehouse: Option<&str>,
    others: &[(String, String)],
) -> Option<String> {
    if data_dir.is_some_and(|dir| dir.starts_with(own)) {
        return Some(
            "it is lakegate's data directory or contains it (the catalog and every managed table live there)"
                .to_owned(),
        );
    }
    if warehouse == Some(own) {
        return Some("it is the warehouse root, which holds every managed table".to_owned());
    }
    others.iter().find(|(_, other)| other.len() > own.len() && other.starts_with(own)).map(|(name, other)| {
        format!(
            "it contains the location of table {name} ('{}'), whose files it would delete",
            other.trim_end_matches('/')
        )
    })
}

/// Refuses `statement` (which deletes files) on a table whose location is not its own.
///
/// # Errors
/// [`Error::Unsupported`] naming the reason, or the catalog cannot be read.
pub(super) fn refuse_shared(context: &Context<'_>, spec: &TableSpec, statement: &str) -> Result<()> {
    // A location that does not parse fails later, with the parser's message.
    let Some(own) = directory_key(&spec.location) else { return Ok(()) };
    let key_of_dir = |dir: &std::path::Path| directory_key(&dir.display().to_string());
    let data_dir = context.warehouse.parent().and_then(key_of_dir);
    let warehouse = key_of_dir(context.warehouse);
    let catalog = context.catalog;
    let mut others = Vec::new();
    for database in catalog.databases()? {
        for other in catalog.tables(&database)? {
            if other.location.is_empty() || other.qualified_name() == spec.qualified_name() {
                continue;
            }
            if let Some(key) = directory_key(&other.location) {
                others.push((other.qualified_name(), key));
            }
        }
    }
    match sharing_reason(&own, data_dir.as_deref(), warehouse.as_deref(), &others) {
        None => Ok(()),
        Some(reason) => Err(Error::Unsupported(format!(
            "{statement} {} is refused: it deletes files under the table's location '{}', but {reason}; \
             register the table at a directory of its own",
            spec.qualified_name(),
            spec.location
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_of_one_directory_compare_equal() {
        assert_eq!(directory_key("s3a://lake/events"), directory_key("s3://lake/events/"));
        assert_eq!(directory_key("/srv/lg/warehouse/../t"), directory_key("/srv/lg/t/"));
        assert_ne!(directory_key("/srv/lg/t"), directory_key("/srv/lg/t2"));
    }

    #[test]
    fn shared_locations_name_their_reason() {
        let data = directory_key("/srv/lg").expect("key");
        let warehouse = directory_key("/srv/lg/warehouse").expect("key");
        let others = vec![("lake.daily".to_owned(), directory_key("s3://lake/reports/daily").expect("key"))];
        let reason = |location: &str| {
            sharing_reason(&directory_key(location).expect("key"), Some(&data), Some(&warehouse), &others)
        };
        assert!(reason("/srv/lg").is_some_and(|r| r.contains("data directory")));
        assert!(reason("/srv").is_some_and(|r| r.contains("data directory")));
        assert!(reason("/srv/lg/warehouse").is_some_and(|r| r.contains("warehouse root")));
        assert!(reason("s3a://lake/reports").is_some_and(|r| r.contains("lake.daily")));
        // The other table's own location, a sibling with a common prefix, a child: all fine.
        assert_eq!(reason("s3://lake/reports/daily"), None);
        assert_eq!(reason("s3://lake/reports/dai"), None);
        assert_eq!(reason("/srv/lg/warehouse/db/t"), None);
    }
}
