//! Object stores for table locations: local files and S3 (`s3://`, `s3a://`, `s3n://` alike).
//!
//! A registry that builds an S3 client per bucket on first use from the process-wide S3
//! settings, so any S3 location works without prior registration. A table whose OPTIONS set
//! S3 settings gets a store of its own, keyed by its bucket and a label of its settings
//! ([`ObjectStores::own_s3_url`]): the bucket's shared store is never replaced, so one table's
//! (or one session's view's) settings cannot redirect the reads and writes of any other.
//!
//! Every store DataFusion gets is wrapped in [`CommittedView`], so table scans list only the
//! files of published commits (see [`commit`]).

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, RwLock};

use datafusion::error::{DataFusionError, Result as DFResult};
use datafusion::execution::object_store::ObjectStoreRegistry;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use lakegate_catalog::resolve_reference;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore, PutMultipartOptions,
    PutOptions, PutPayload, PutResult,
};
use serde::Deserialize;
use url::Url;

pub mod commit;
pub mod listing;

/// S3 access, used for every `s3://`, `s3a://` and `s3n://` location unless a table's OPTIONS
/// override it. Unset fields fall back to the standard `AWS_*` variables.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct S3Config {
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    /// A literal or a `${env:NAME}` reference.
    pub secret_access_key: Option<String>,
    pub session_token: Option<String>,
    pub allow_http: Option<bool>,
    /// Path-style requests (`endpoint/bucket/key`), needed by most S3-compatible servers.
    pub path_style: Option<bool>,
}

impl S3Config {
    /// `self`, with every field that `other` sets taken from `other`.
    pub fn overlaid_with(&self, other: &S3Config) -> S3Config {
        S3Config {
            endpoint: other.endpoint.clone().or_else(|| self.endpoint.clone()),
            region: other.region.clone().or_else(|| self.region.clone()),
            access_key_id: other.access_key_id.clone().or_else(|| self.access_key_id.clone()),
            secret_access_key: other.secret_access_key.clone().or_else(|| self.secret_access_key.clone()),
            session_token: other.session_token.clone().or_else(|| self.session_token.clone()),
            allow_http: other.allow_http.or(self.allow_http),
            path_style: other.path_style.or(self.path_style),
        }
    }
}

/// The scheme of a table's own S3 store is this prefix and the label of its settings.
const OWN_S3_SCHEME: &str = "s3-";

#[derive(Debug)]
pub struct ObjectStores {
    s3_defaults: S3Config,
    /// Keys for the labels of tables' S3 settings, new in every process: a label says nothing
    /// about the secrets it is derived from, and nobody can compute another table's label to
    /// reach its store.
    label_keys: [RandomState; 2],
    /// By `scheme://bucket`: `s3://bucket` for the process settings, `s3-<label>://bucket`
    /// for a table's own.
    stores: RwLock<HashMap<String, Arc<dyn ObjectStore>>>,
}

/// `s3a` and `s3n` are Hadoop's names for the same S3.
pub fn is_s3(scheme: &str) -> bool {
    matches!(scheme, "s3" | "s3a" | "s3n")
}

fn store_key(url: &Url) -> String {
    let scheme = if is_s3(url.scheme()) { "s3" } else { url.scheme() };
    format!("{scheme}://{}", url.host_str().unwrap_or_default())
}

impl ObjectStores {
    pub fn new(s3_defaults: S3Config) -> Self {
        Self { s3_defaults, label_keys: [RandomState::new(), RandomState::new()], stores: RwLock::default() }
    }

    /// Builds an S3 client for `bucket` from the process settings overlaid with `overrides`.
    ///
    /// # Errors
    /// An unresolvable secret reference or an invalid setting, naming the bucket.
    pub fn s3(&self, bucket: &str, overrides: &S3Config) -> DFResult<Arc<dyn ObjectStore>> {
        let s3 = self.s3_defaults.overlaid_with(overrides);
        let resolve = |v: &Option<String>| v.as_deref().map(resolve_reference).transpose();
        let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
        if let Some(endpoint) = resolve(&s3.endpoint).map_err(DataFusionError::from)? {
            // A plain-http endpoint is an explicit choice of the user: allow it.
            builder = builder.with_allow_http(endpoint.starts_with("http://")).with_endpoint(endpoint);
        }
        if let Some(region) = resolve(&s3.region).map_err(DataFusionError::from)? {
            builder = builder.with_region(region);
        }
        if let Some(key) = resolve(&s3.access_key_id).map_err(DataFusionError::from)? {
            builder = builder.with_access_key_id(key);
        }
        if let Some(secret) = resolve(&s3.secret_access_key).map_err(DataFusionError::from)? {
            builder = builder.with_secret_access_key(secret);
        }
        if let Some(token) = resolve(&s3.session_token).map_err(DataFusionError::from)? {
            builder = builder.with_token(token);
        }
        if let Some(allow) = s3.allow_http {
            builder = builder.with_allow_http(allow);
        }
        if let Some(path_style) = s3.path_style {
            builder = builder.with_virtual_hosted_style_request(!path_style);
        }
        let store = builder
            .build()
            .map_err(|e| DataFusionError::Configuration(format!("S3 settings for bucket '{bucket}': {e}")))?;
        Ok(Arc::new(store))
    }

    /// `url` (an S3 location) as `s3-<label>://bucket/path`, on a store built with
    /// `overrides` (a table's OPTIONS) over the process settings. Tables with the same bucket
    /// and settings share the store; the bucket's `s3://` store is left alone. The label is a
    /// 128-bit keyed hash of the settings, so no secret appears in the URL.
    ///
    /// # Errors
    /// See [`ObjectStores::s3`].
    pub fn own_s3_url(&self, url: &Url, overrides: &S3Config) -> DFResult<Url> {
        let settings = self.s3_defaults.overlaid_with(overrides);
        let [first, second] = &self.label_keys;
        let label = format!("{:016x}{:016x}", first.hash_one(&settings), second.hash_one(&settings));
        let mut own = url.clone();
        own.set_scheme(&format!("{OWN_S3_SCHEME}{label}")).map_err(|()| {
            DataFusionError::Internal(format!(
                "no store label for the location of bucket '{}'",
                url.host_str().unwrap_or_default()
            ))
        })?;
        let key = store_key(&own);
        if !self.read().contains_key(&key) {
            let store = self.s3(url.host_str().unwrap_or_default(), overrides)?;
            self.write().entry(key).or_insert(store);
        }
        Ok(own)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Arc<dyn ObjectStore>>> {
        self.stores.read().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Arc<dyn ObjectStore>>> {
        self.stores.write().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl ObjectStoreRegistry for ObjectStores {
    fn register_store(&self, url: &Url, store: Arc<dyn ObjectStore>) -> Option<Arc<dyn ObjectStore>> {
        self.write().insert(store_key(url), store)
    }

    fn deregister_store(&self, url: &Url) -> DFResult<Arc<dyn ObjectStore>> {
        self.write()
            .remove(&store_key(url))
            .ok_or_else(|| DataFusionError::Execution(format!("no object store registered for {url}")))
    }

    fn get_store(&self, url: &Url) -> DFResult<Arc<dyn ObjectStore>> {
        Ok(Arc::new(CommittedView { inner: self.raw_store(url)? }))
    }
}

impl ObjectStores {
    /// The store of `url` as it is, unfiltered: for writing and collecting garbage.
    ///
    /// # Errors
    /// An unsupported scheme, or S3 settings that do not build a client.
    pub fn raw_store(&self, url: &Url) -> DFResult<Arc<dyn ObjectStore>> {
        let key = store_key(url);
        if let Some(store) = self.read().get(&key) {
            return Ok(Arc::clone(store));
        }
        let store: Arc<dyn ObjectStore> = match url.scheme() {
            "file" => Arc::new(LocalFileSystem::new()),
            scheme if is_s3(scheme) => self.s3(url.host_str().unwrap_or_default(), &S3Config::default())?,
            scheme => {
                return Err(DataFusionError::Configuration(format!(
                    "no storage for '{scheme}://' locations; lakegate reads local paths, file://, s3://, s3a:// and s3n://"
                )));
            }
        };
        Ok(Arc::clone(self.write().entry(key).or_insert(store)))
    }
}

/// A store whose listings hide unpublished and replaced files and lakegate's own objects;
/// everything else passes through.
#[derive(Debug)]
pub struct CommittedView {
    inner: Arc<dyn ObjectStore>,
}

impl std::fmt::Display for CommittedView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CommittedView({})", self.inner)
    }
}

#[async_trait::async_trait]
impl ObjectStore for CommittedView {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> object_store::Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[std::ops::Range<u64>],
    ) -> object_store::Result<Vec<bytes::Bytes>> {
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.inner.delete_stream(locations)
    }

    /// The whole listing is needed before filtering: a directory's markers may come last.
    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        let listing = self.inner.list(prefix);
        futures::stream::once(async move { listing.try_collect::<Vec<_>>().await })
            .map_ok(|objects| futures::stream::iter(commit::visible(objects).into_iter().map(Ok)))
            .try_flatten()
            .boxed()
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        let mut result = self.inner.list_with_delimiter(prefix).await?;
        // A directory without markers still hides lakegate files whose commit never published.
        let markers = match result.common_prefixes.iter().position(|p| p.filename() == Some(commit::SYSTEM_DIR)) {
            Some(system) => {
                let system = result.common_prefixes.remove(system);
                self.inner.list_with_delimiter(Some(&system)).await?.objects
            }
            None => Vec::new(),
        };
        let dir = prefix.cloned().unwrap_or_default();
        result.objects = commit::visible_children(&dir, std::mem::take(&mut result.objects), markers);
        Ok(result)
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(
        &self,
        from: &Path,
        to: &Path,
        options: object_store::RenameOptions,
    ) -> object_store::Result<()> {
        self.inner.rename_opts(from, to, options).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(url: &str) -> S3Config {
        S3Config {
            endpoint: Some(url.to_owned()),
            access_key_id: Some("id".to_owned()),
            secret_access_key: Some("hush-hush".to_owned()),
            ..S3Config::default()
        }
    }

    #[test]
    fn tables_own_stores_are_keyed_by_bucket_and_settings() {
        let stores = ObjectStores::new(endpoint("http://127.0.0.1:1"));
        let location = Url::parse("s3://lake/db/t/").expect("url");
        let shared = stores.raw_store(&location).expect("the bucket's store");

        let one = stores.own_s3_url(&location, &endpoint("http://127.0.0.1:2")).expect("own store");
        let other = stores.own_s3_url(&location, &endpoint("http://127.0.0.1:3")).expect("own store");
        let again = stores
            .own_s3_url(&Url::parse("s3a://lake/db/u/").expect("url"), &endpoint("http://127.0.0.1:2"))
            .expect("own store");
        let elsewhere = stores
            .own_s3_url(&Url::parse("s3://pond/db/t/").expect("url"), &endpoint("http://127.0.0.1:2"))
            .expect("own store");

        assert_ne!(store_key(&one), store_key(&other), "different endpoints, different stores");
        assert_eq!(store_key(&one), store_key(&again), "same bucket and settings share a store");
        assert_ne!(store_key(&one), store_key(&elsewhere), "another bucket is another store");
        assert!(store_key(&one).starts_with(OWN_S3_SCHEME) && store_key(&one).ends_with("://lake"), "{one}");
        assert_eq!((one.host_str(), one.path()), (Some("lake"), "/db/t/"));
        assert!(Arc::ptr_eq(&stores.raw_store(&one).expect("own"), &stores.raw_store(&again).expect("own")));
        assert!(!Arc::ptr_eq(&stores.raw_store(&one).expect("own"), &stores.raw_store(&other).expect("own")));
        // The bucket's shared store is the one it was before any table had settings of its own.
        assert!(Arc::ptr_eq(&shared, &stores.raw_store(&location).expect("the bucket's store")));
        assert!(Arc::ptr_eq(
            &shared,
            &stores.raw_store(&Url::parse("s3n://lake/x").expect("url")).expect("the bucket's store")
        ));
        for url in [&one, &other, &again, &elsewhere] {
            assert!(!url.as_str().contains("hush") && !url.as_str().contains("127.0.0.1"), "settings leak into {url}");
        }
    }

    #[test]
    fn labels_differ_between_processes() {
        let location = Url::parse("s3://lake/t/").expect("url");
        let settings = endpoint("http://127.0.0.1:2");
        let first = ObjectStores::new(S3Config::default()).own_s3_url(&location, &settings).expect("own store");
        let second = ObjectStores::new(S3Config::default()).own_s3_url(&location, &settings).expect("own store");
        assert_ne!(first, second, "a label must not be computable from the settings alone");
    }
}
