//! How a write becomes visible at once, on local disk and on S3 alike (S3 has no atomic rename).
//!
//! Layout of a table written by lakegate, with plain Hive directories that other tools read:
//!
//! ```text
//! <table>/dt=2018-03-05/part-<commit>-<writer>-<n>.parquet   data files, named by their commit
//! <table>/dt=2018-03-05/_lakegate/<commit>.overwrite         commit markers, one per partition
//! <table>/dt=2018-03-06/_lakegate/<commit>.append
//! <table>/_lakegate/staging/<commit>/dt=.../part-...         files of a write in progress
//! ```
//!
//! A write puts its files under `staging`, moves them into their partition directories (still
//! invisible: their commit has no marker there yet), then writes one empty marker object per
//! partition. Putting that object is atomic on every store, so it is the moment the partition
//! changes. The rule, in every directory, whether it has markers or not (a new partition, one
//! last written by Spark): a data file named by a commit is visible only when that commit has
//! a marker in the file's own directory that is not older than the directory's newest
//! `.overwrite` marker; a file not written by lakegate is visible when it is newer than that
//! marker, or when there is none. Commit ids start with the time, so "older" is string order.
//! A job killed at any point leaves each partition wholly old or wholly new; what it leaves
//! behind is invisible and removed by [`collect_garbage`], which deletes only Parquet data files
//! and lakegate's own objects, never anything else a directory holds.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt};

/// The directory name lakegate keeps its own objects under; readers never see inside it.
pub(crate) const SYSTEM_DIR: &str = "_lakegate";
const STAGING_DIR: &str = "staging";
const OVERWRITE: &str = "overwrite";
const APPEND: &str = "append";

/// A new commit id: milliseconds since the epoch, zero-padded, then 8 random hex digits, so
/// ids sort by start time.
pub(crate) fn new_commit_id() -> String {
    let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let random = std::collections::hash_map::RandomState::new().hash_one((now, std::process::id())) as u32;
    format!("{:013}{random:08x}", now.as_millis())
}

fn is_commit_id(text: &str) -> bool {
    text.len() == 21 && text.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The commit of a data file written by lakegate (`part-<commit>-...parquet`). Other tools'
/// names do not match: Spark's `part-00000-<uuid>-c000...` has 5 digits where the id has 21.
fn commit_of_file(name: &str) -> Option<&str> {
    let id = name.strip_prefix("part-")?.split('-').next()?;
    is_commit_id(id).then_some(id)
}

/// The name of data file `sequence` of `writer` (any text without `/`) in `commit`.
pub(crate) fn data_file_name(commit: &str, writer: &str, sequence: usize) -> String {
    format!("part-{commit}-{writer}-{sequence:05}.parquet")
}

/// Whether `name` is a data file of `commit`.
pub(crate) fn is_file_of(name: &str, commit: &str) -> bool {
    commit_of_file(name) == Some(commit) && is_data_file(name)
}

/// Where the files of `commit` wait before they are moved into place.
pub(crate) fn staging_dir(table: &Path, commit: &str) -> Path {
    table.clone().join(SYSTEM_DIR).join(STAGING_DIR).join(commit)
}

/// `dir` joined with a relative path of `/`-separated parts (a partition directory).
pub(crate) fn child(dir: &Path, relative: &str) -> Path {
    relative.split('/').filter(|p| !p.is_empty()).fold(dir.clone(), |path, part| path.join(part))
}

/// Whether the write replaces what a partition held, or adds to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Overwrite,
    Append,
}

/// Makes `commit` visible in `partition_dir`: one atomic put of an empty object.
pub(crate) async fn publish(
    store: &dyn ObjectStore,
    partition_dir: &Path,
    commit: &str,
    mode: Mode,
) -> object_store::Result<()> {
    let suffix = if mode == Mode::Overwrite { OVERWRITE } else { APPEND };
    let marker = partition_dir.clone().join(SYSTEM_DIR).join(format!("{commit}.{suffix}"));
    store.put(&marker, object_store::PutPayload::new()).await.map(|_| ())
}

/// Whether `name` is a file the table's readers read (the extension the listing asks for); only
/// such files are ever deleted as replaced or abandoned.
fn is_data_file(name: &str) -> bool {
    name.ends_with(".parquet")
}

/// The commit markers of one directory; empty (the default) for a directory without any.
#[derive(Debug, Default)]
struct Markers {
    /// Commit ids with a marker, and whether it is an overwrite.
    commits: HashMap<String, bool>,
    /// The newest overwrite: its id and when it was written.
    base: Option<(String, DateTime<Utc>)>,
}

impl Markers {
    fn add(&mut self, id: &str, overwrite: bool, written: DateTime<Utc>) {
        self.commits.insert(id.to_owned(), overwrite);
        if overwrite && self.base.as_ref().is_none_or(|(base, _)| id > base.as_str()) {
            self.base = Some((id.to_owned(), written));
        }
    }

    fn is_current(&self, id: &str) -> bool {
        self.commits.contains_key(id) && self.base.as_ref().is_none_or(|(base, _)| id >= base.as_str())
    }

    /// Whether a file in this directory is part of the table now.
    fn shows(&self, file: &ObjectMeta) -> bool {
        match file.location.filename().and_then(commit_of_file) {
            Some(id) => self.is_current(id),
            None => self.base.as_ref().is_none_or(|(_, written)| file.last_modified > *written),
        }
    }

    /// Whether a hidden file will never be visible again (it was replaced), as opposed to
    /// belonging to a write that has not published (yet, or ever).
    fn replaced(&self, file: &ObjectMeta) -> bool {
        let Some((base, _)) = &self.base else { return false };
        match file.location.filename().and_then(commit_of_file) {
            Some(id) => id < base.as_str(),
            None => !self.shows(file),
        }
    }
}

/// What a listing holds, sorted out: markers by directory, and everything else.
#[derive(Debug, Default)]
struct Listing {
    markers: HashMap<Path, Markers>,
    /// Objects outside `_lakegate` directories.
    files: Vec<ObjectMeta>,
    /// Objects under `_lakegate/staging`.
    staged: Vec<ObjectMeta>,
    /// Marker objects, with their directory and commit id.
    marker_objects: Vec<(Path, String, ObjectMeta)>,
    /// What a directory without markers has.
    no_markers: Markers,
}

impl Listing {
    fn sort(objects: Vec<ObjectMeta>) -> Self {
        let mut listing = Listing::default();
        for object in objects {
            let parts: Vec<_> = object.location.parts().collect();
            let Some(system) = parts.iter().position(|p| p.as_ref() == SYSTEM_DIR) else {
                listing.files.push(object);
                continue;
            };
            let dir = Path::from_iter(parts[..system].iter().cloned());
            match &parts[system + 1..] {
                [name] => {
                    let marker = name.as_ref().rsplit_once('.').filter(|(id, _)| is_commit_id(id));
                    if let Some((id, kind @ (OVERWRITE | APPEND))) = marker {
                        listing.markers.entry(dir.clone()).or_default().add(
                            id,
                            kind == OVERWRITE,
                            object.last_modified,
                        );
                        listing.marker_objects.push((dir, id.to_owned(), object));
                    }
                }
                [staging, ..] if staging.as_ref() == STAGING_DIR => listing.staged.push(object),
                _ => {}
            }
        }
        listing
    }

    /// The markers of the directory holding `file`, empty when it has none: a directory
    /// without markers still hides the files of commits that never published there.
    fn markers_of(&self, file: &ObjectMeta) -> &Markers {
        let parts: Vec<_> = file.location.parts().collect();
        let dir = Path::from_iter(parts[..parts.len().saturating_sub(1)].iter().cloned());
        self.markers.get(&dir).unwrap_or(&self.no_markers)
    }

    /// The objects a reader of the table sees.
    fn visible(self) -> Vec<ObjectMeta> {
        self.files.iter().filter(|f| self.markers_of(f).shows(f)).cloned().collect()
    }
}

/// Filters a recursive listing down to what readers may see.
pub(crate) fn visible(objects: Vec<ObjectMeta>) -> Vec<ObjectMeta> {
    Listing::sort(objects).visible()
}

/// Filters the direct children of `dir` (a non-recursive listing) given the objects of its
/// `_lakegate` directory.
pub(crate) fn visible_children(dir: &Path, children: Vec<ObjectMeta>, system: Vec<ObjectMeta>) -> Vec<ObjectMeta> {
    let listing = Listing::sort(system);
    let markers = listing.markers.get(dir).unwrap_or(&listing.no_markers);
    children.into_iter().filter(|f| markers.shows(f)).collect()
}

/// What [`collect_garbage`] removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Collected {
    pub(crate) replaced_files: usize,
    pub(crate) abandoned_files: usize,
    pub(crate) markers: usize,
}

/// Deletes what no reader can see any more under `table`: files replaced by a newer overwrite
/// and the markers before it, then (when `abandoned_after` is given) files of writes that never
/// published (in directories with markers or without) and staging files, once older than that.
/// Only `dirs` are looked at when given. Outside `_lakegate`, only Parquet data files are
/// deleted: a table's directories may hold other files (notes, Spark's `.crc` and `_SUCCESS`)
/// that are none of lakegate's business.
///
/// # Errors
/// Listing or deleting fails; whatever was deleted before stays deleted, which is safe.
pub(crate) async fn collect_garbage(
    store: &dyn ObjectStore,
    table: &Path,
    dirs: Option<&[Path]>,
    abandoned_after: Option<Duration>,
) -> object_store::Result<Collected> {
    let objects: Vec<ObjectMeta> = match dirs {
        None => store.list(Some(table)).try_collect().await?,
        Some(dirs) => {
            // Each directory and its markers, without descending into other partitions.
            let mut objects = Vec::new();
            for dir in dirs {
                objects.extend(store.list_with_delimiter(Some(dir)).await?.objects);
                objects.extend(store.list_with_delimiter(Some(&dir.clone().join(SYSTEM_DIR))).await?.objects);
            }
            objects
        }
    };
    let listing = Listing::sort(objects);
    let cutoff =
        abandoned_after.map(|age| Utc::now() - chrono::Duration::from_std(age).unwrap_or(chrono::TimeDelta::MAX));
    let mut collected = Collected::default();
    let mut doomed = Vec::new();
    for file in &listing.files {
        let markers = listing.markers_of(file);
        if !file.location.filename().is_some_and(is_data_file) || markers.shows(file) {
            continue;
        }
        if markers.replaced(file) {
            collected.replaced_files += 1;
            doomed.push(file.location.clone());
        } else if cutoff.is_some_and(|cutoff| file.last_modified < cutoff) {
            collected.abandoned_files += 1;
            doomed.push(file.location.clone());
        }
    }
    for file in &listing.staged {
        if cutoff.is_some_and(|cutoff| file.last_modified < cutoff) {
            collected.abandoned_files += 1;
            doomed.push(file.location.clone());
        }
    }
    delete(store, doomed).await?;
    // Markers go after the files they stood for, so a crash in between hides nothing new.
    let old_markers: Vec<Path> = listing
        .marker_objects
        .iter()
        .filter(|(dir, id, _)| {
            listing.markers.get(dir).and_then(|m| m.base.as_ref()).is_some_and(|(base, _)| id < base)
        })
        .map(|(_, _, object)| object.location.clone())
        .collect();
    collected.markers = old_markers.len();
    delete(store, old_markers).await?;
    Ok(collected)
}

pub(crate) async fn delete(store: &dyn ObjectStore, paths: Vec<Path>) -> object_store::Result<()> {
    let locations = futures::stream::iter(paths.into_iter().map(Ok)).boxed();
    store
        .delete_stream(locations)
        .try_for_each(|_| async { Ok(()) })
        .await
        .or_else(|e| if matches!(e, object_store::Error::NotFound { .. }) { Ok(()) } else { Err(e) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(path: &str, seconds: i64) -> ObjectMeta {
        ObjectMeta {
            location: Path::from(path),
            last_modified: DateTime::from_timestamp(seconds, 0).expect("time"),
            size: 1,
            e_tag: None,
            version: None,
        }
    }

    const OLD: &str = "0000000000001aaaaaaaa";
    const NEW: &str = "0000000000002bbbbbbbb";
    const LATER: &str = "0000000000003cccccccc";

    fn names(objects: Vec<ObjectMeta>) -> Vec<String> {
        let mut names: Vec<String> = objects.into_iter().map(|o| o.location.to_string()).collect();
        names.sort();
        names
    }

    #[test]
    fn an_overwrite_shows_only_its_files_once_published() {
        let before = vec![
            object(&format!("t/dt=1/part-{OLD}-000-00000.parquet"), 10),
            object(&format!("t/dt=1/_lakegate/{OLD}.overwrite"), 10),
            object(&format!("t/dt=1/part-{NEW}-000-00000.parquet"), 20),
            object(&format!("t/_lakegate/staging/{NEW}/dt=2/part-{NEW}-000-00000.parquet"), 20),
            object("t/dt=2/legacy.parquet", 5),
        ];
        assert_eq!(
            names(visible(before.clone())),
            [format!("t/dt=1/part-{OLD}-000-00000.parquet"), "t/dt=2/legacy.parquet".into()]
        );
        let mut after = before;
        after.push(object(&format!("t/dt=1/_lakegate/{NEW}.overwrite"), 21));
        after.push(object(&format!("t/dt=2/_lakegate/{NEW}.overwrite"), 21));
        assert_eq!(names(visible(after)), [format!("t/dt=1/part-{NEW}-000-00000.parquet")]);
    }

    #[test]
    fn appends_add_to_the_last_overwrite_and_foreign_files_after_it_show() {
        let objects = vec![
            object(&format!("t/part-{OLD}-000-00000.parquet"), 10),
            object(&format!("t/part-{NEW}-000-00000.parquet"), 20),
            object(&format!("t/part-{LATER}-000-00000.parquet"), 30),
            object(&format!("t/_lakegate/{OLD}.append"), 10),
            object(&format!("t/_lakegate/{NEW}.overwrite"), 20),
            object(&format!("t/_lakegate/{LATER}.append"), 30),
            object("t/from-spark-before.parquet", 15),
            object("t/from-spark-after.parquet", 25),
        ];
        assert_eq!(
            names(visible(objects)),
            [
                "t/from-spark-after.parquet".to_owned(),
                format!("t/part-{NEW}-000-00000.parquet"),
                format!("t/part-{LATER}-000-00000.parquet")
            ]
        );
    }

    #[test]
    fn children_are_filtered_by_their_directory_markers() {
        let dir = Path::from("t/dt=1");
        let children = vec![
            object(&format!("t/dt=1/part-{OLD}-000-00000.parquet"), 10),
            object(&format!("t/dt=1/part-{NEW}-000-00000.parquet"), 20),
        ];
        let system = vec![object(&format!("t/dt=1/_lakegate/{NEW}.overwrite"), 21)];
        assert_eq!(names(visible_children(&dir, children, system)), [format!("t/dt=1/part-{NEW}-000-00000.parquet")]);
    }

    #[test]
    fn unpublished_files_stay_hidden_in_directories_without_markers() {
        let spark = "t/dt=2/part-00000-0f1e2d3c-aaaa-bbbb-cccc-000000000000-c000.snappy.parquet";
        let objects = vec![
            // A new partition: only the moved files of a write that never published.
            object(&format!("t/dt=1/part-{NEW}-000-00000.parquet"), 20),
            // A partition last written by Spark, with the moved files of a killed INSERT INTO.
            object(spark, 5),
            object(&format!("t/dt=2/part-{NEW}-000-00000.parquet"), 20),
            // A partition with markers, so the listing as a whole has some.
            object(&format!("t/dt=3/part-{OLD}-000-00000.parquet"), 10),
            object(&format!("t/dt=3/_lakegate/{OLD}.overwrite"), 10),
        ];
        assert_eq!(names(visible(objects.clone())), [spark.to_owned(), format!("t/dt=3/part-{OLD}-000-00000.parquet")]);
        // The same without any marker in the whole listing.
        let markerless: Vec<ObjectMeta> =
            objects.into_iter().filter(|o| !o.location.as_ref().starts_with("t/dt=3")).collect();
        assert_eq!(names(visible(markerless)), [spark.to_owned()]);
        // And as a directory listing, whose `_lakegate` directory may hold no markers at all.
        let dir = Path::from("t/dt=2");
        let children = vec![object(spark, 5), object(&format!("t/dt=2/part-{NEW}-000-00000.parquet"), 20)];
        assert_eq!(names(visible_children(&dir, children.clone(), Vec::new())), [spark.to_owned()]);
        let system = vec![object(&format!("t/dt=2/_lakegate/{NEW}.append"), 21)];
        assert_eq!(names(visible_children(&dir, children, system)).len(), 2);
    }

    async fn put(store: &dyn ObjectStore, path: &str) {
        store.put(&Path::from(path), object_store::PutPayload::from_static(b"x")).await.expect("put");
    }

    async fn listed(store: &dyn ObjectStore) -> Vec<String> {
        let objects: Vec<ObjectMeta> = store.list(None).try_collect().await.expect("list");
        names(objects)
    }

    #[tokio::test]
    async fn garbage_is_parquet_data_and_markers_only_and_orphans_go_after_the_retention() {
        let store = object_store::memory::InMemory::new();
        let spark = "t/dt=1/part-00000-0f1e2d3c-aaaa-bbbb-cccc-000000000000-c000.snappy.parquet";
        for path in [spark, "t/notes.txt", "t/dt=1/_SUCCESS", "t/dt=1/readme.csv", "t/dt=2/legacy.parquet"] {
            put(&store, path).await;
        }
        let orphan_new = format!("t/dt=3/part-{NEW}-000-00000.parquet");
        let orphan_spark = format!("t/dt=2/part-{NEW}-000-00000.parquet");
        put(&store, &orphan_new).await;
        put(&store, &orphan_spark).await;
        tokio::time::sleep(Duration::from_millis(5)).await;
        let published = format!("t/dt=1/part-{LATER}-000-00000.parquet");
        put(&store, &published).await;
        put(&store, &format!("t/dt=1/_lakegate/{LATER}.overwrite")).await;
        let table = Path::from("t");

        // A write's own collection: the replaced Spark file goes, nothing else.
        let collected = collect_garbage(&store, &table, Some(&[Path::from("t/dt=1")]), None).await.expect("collect");
        assert_eq!(collected, Collected { replaced_files: 1, abandoned_files: 0, markers: 0 });
        // VACUUM within the retention keeps the orphans: their write may still be publishing.
        let collected = collect_garbage(&store, &table, None, Some(Duration::from_secs(3600))).await.expect("collect");
        assert_eq!(collected, Collected::default());
        tokio::time::sleep(Duration::from_millis(5)).await;
        let collected = collect_garbage(&store, &table, None, Some(Duration::ZERO)).await.expect("collect");
        assert_eq!(collected, Collected { replaced_files: 0, abandoned_files: 2, markers: 0 });
        assert_eq!(
            listed(&store).await,
            [
                "t/dt=1/_SUCCESS".to_owned(),
                format!("t/dt=1/_lakegate/{LATER}.overwrite"),
                published,
                "t/dt=1/readme.csv".to_owned(),
                "t/dt=2/legacy.parquet".to_owned(),
                "t/notes.txt".to_owned(),
            ]
        );
    }

    #[test]
    fn commit_ids_sort_by_time_and_name_their_files() {
        let first = new_commit_id();
        std::thread::sleep(Duration::from_millis(2));
        let second = new_commit_id();
        assert!(first < second && is_commit_id(&first), "{first} {second}");
        assert_eq!(commit_of_file(&data_file_name(&first, "001", 2)), Some(first.as_str()));
        assert_eq!(commit_of_file("part-00000-c000.snappy.parquet"), None);
    }
}
