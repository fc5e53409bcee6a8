//! Object stores for table locations: local files and S3 (`s3://`, `s3a://`, `s3n://` alike).
//!
//! A registry that builds an S3 client per bucket on first use from the process-wide S3
//! settings, so any S3 location works without prior registration; a table whose OPTIONS set
//! S3 settings registers its bucket with them.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use datafusion::error::{DataFusionError, Result as DFResult};
use datafusion::execution::object_store::ObjectStoreRegistry;
use lakegate_catalog::resolve_reference;
use object_store::ObjectStore;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use url::Url;

use crate::config::S3Config;

#[derive(Debug)]
pub struct ObjectStores {
    s3_defaults: S3Config,
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
        Self { s3_defaults, stores: RwLock::default() }
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

    /// Registers the store of `url`'s bucket built with `overrides` (a table's OPTIONS).
    ///
    /// # Errors
    /// See [`ObjectStores::s3`].
    pub fn register_s3(&self, url: &Url, overrides: &S3Config) -> DFResult<()> {
        let store = self.s3(url.host_str().unwrap_or_default(), overrides)?;
        self.register_store(url, store);
        Ok(())
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
        let key = store_key(url);
        if let Some(store) = self.stores.read().unwrap_or_else(|poisoned| poisoned.into_inner()).get(&key) {
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
