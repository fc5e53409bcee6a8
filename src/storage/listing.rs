//! How a table location is listed: a directory or one file, and its Hive partitions.

use datafusion::datasource::listing::ListingTableUrl;
use object_store::ObjectMeta;
use object_store::path::Path;

/// A Parquet table's location is one file when it names a `.parquet` file, else a directory.
pub(crate) fn listing_location(location: &str) -> String {
    listing_location_of(location, ".parquet")
}

/// A location is one file when its name ends in the table's file `extension`, else a
/// directory (prefix).
pub(crate) fn listing_location_of(location: &str, extension: &str) -> String {
    let one_file = !extension.is_empty() && location.ends_with(extension);
    if one_file || location.ends_with('/') { location.to_owned() } else { format!("{location}/") }
}

/// The leading `key=value` directories of `file` under the table's location, as (key, value).
pub(crate) fn hive_directories(url: &ListingTableUrl, file: &Path) -> Vec<(String, String)> {
    let Some(parts) = url.strip_prefix(file) else { return Vec::new() };
    let parts: Vec<&str> = parts.collect();
    let directories = &parts[..parts.len().saturating_sub(1)];
    directories.iter().map_while(|part| part.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned()))).collect()
}

/// The Hive partitions (`dt=2018-03-05/...`, in the order of `names`) that hold `files`
/// of the table at `url`, sorted and without repeats.
pub(crate) fn hive_partitions(url: &ListingTableUrl, files: &[ObjectMeta], names: &[&str]) -> Vec<String> {
    let mut partitions: Vec<String> = files
        .iter()
        .filter_map(|file| {
            let directories = hive_directories(url, &file.location);
            let matches =
                directories.len() >= names.len() && directories.iter().zip(names).all(|((k, _), name)| k == name);
            matches.then(|| {
                directories[..names.len()].iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("/")
            })
        })
        .collect();
    partitions.sort();
    partitions.dedup();
    partitions
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directories_get_a_trailing_slash_and_files_do_not() {
        assert_eq!(listing_location("s3a://b/db/t"), "s3a://b/db/t/");
        assert_eq!(listing_location("/data/t/"), "/data/t/");
        assert_eq!(listing_location("/data/lineitem.parquet"), "/data/lineitem.parquet");
    }
}
