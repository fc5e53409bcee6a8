//! The geodata layers of `geodata(lon, lat)` and `geo_lookup`: the `[geodata]` section, loaded
//! once per process and reloaded when a local layer file changes.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use datafusion::execution::object_store::ObjectStoreRegistry;
use lakegate_udfs::{InvalidPolygons, LayerSet, LayerSpec};
use object_store::ObjectStoreExt;
use serde::Deserialize;

use crate::storage::ObjectStores;
use crate::{Error, Result};

/// Polygon layers for `geodata(lon, lat)` and `geo_lookup('layer', lon, lat)`, loaded once
/// per process when it starts.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GeodataConfig {
    pub layers: Vec<LayerConfig>,
}

/// One `[[geodata.layers]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LayerConfig {
    /// The name `geo_lookup` takes.
    pub name: String,
    /// A `.tsv`, `.csv` or `.parquet` file with a header; relative to the working directory.
    pub path: PathBuf,
    /// The column of POLYGON/MULTIPOLYGON WKT (default `wkt`).
    #[serde(default)]
    pub wkt_column: Option<String>,
    /// Attribute columns in output order (default: every other column).
    #[serde(default)]
    pub attributes: Vec<String>,
    /// Fail the load on an invalid (self-intersecting) polygon instead of keeping it with a
    /// warning.
    #[serde(default)]
    pub reject_invalid: bool,
}

/// The geodata layers of the configuration, reloaded when one of their files changes (checked
/// as each session starts, so a running query keeps the layers it started with).
#[derive(Debug)]
pub(super) struct Layers {
    config: GeodataConfig,
    /// The files' modification times when `set` was loaded, and the set.
    loaded: Mutex<(Vec<Option<SystemTime>>, Arc<LayerSet>)>,
}

impl Layers {
    pub(super) fn load(config: &GeodataConfig) -> Result<Self> {
        let stamps = Self::stamps(config);
        let set = Arc::new(load_layers(config)?);
        Ok(Self { config: config.clone(), loaded: Mutex::new((stamps, set)) })
    }

    fn stamps(config: &GeodataConfig) -> Vec<Option<SystemTime>> {
        config.layers.iter().map(|l| std::fs::metadata(&l.path).and_then(|m| m.modified()).ok()).collect()
    }

    pub(super) fn current(&self) -> Arc<LayerSet> {
        let stamps = Self::stamps(&self.config);
        let mut loaded = self.loaded.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if loaded.0 != stamps {
            match load_layers(&self.config) {
                Ok(set) => {
                    tracing::info!(layers = set.layers().len(), "geodata layers reloaded");
                    loaded.1 = Arc::new(set);
                }
                // A broken edit must not take the working layers away.
                Err(e) => {
                    tracing::error!(error = %e, "geodata layers changed but do not load; keeping the loaded ones")
                }
            }
            loaded.0 = stamps;
        }
        Arc::clone(&loaded.1)
    }
}

/// Loads the configured geodata layers, reporting polygons kept despite being invalid.
fn load_layers(config: &GeodataConfig) -> Result<LayerSet> {
    let specs: Vec<LayerSpec> = config
        .layers
        .iter()
        .map(|l| {
            let mut spec = LayerSpec::new(&l.name, &l.path).with_attributes(l.attributes.clone());
            if let Some(column) = &l.wkt_column {
                spec = spec.with_wkt_column(column);
            }
            if l.reject_invalid {
                spec = spec.with_invalid_polygons(InvalidPolygons::Reject);
            }
            spec
        })
        .collect();
    let layers = LayerSet::load(&specs).map_err(|e| Error::Geodata(format!("geodata layers: {e}")))?;
    for warning in layers.warnings() {
        tracing::warn!(%warning, "geodata polygon kept although invalid");
    }
    Ok(layers)
}

/// Layers on S3 (`s3://`, `s3a://`, `s3n://`) are copied under `cache` when the process starts,
/// since the loader reads local files; the returned configuration names the copies. A copy is
/// not refreshed while the process runs (local layer files are).
pub(super) async fn fetch_remote_layers(
    config: &GeodataConfig,
    stores: &ObjectStores,
    cache: &std::path::Path,
) -> Result<GeodataConfig> {
    let mut local = config.clone();
    for layer in &mut local.layers {
        let location = layer.path.display().to_string();
        let Some(url) = url::Url::parse(&location).ok().filter(|u| crate::storage::is_s3(u.scheme())) else { continue };
        let fetch_error = |e: &dyn std::fmt::Display| {
            Error::Geodata(format!("geodata layer '{}': cannot read {location}: {e}", layer.name))
        };
        let store = stores.get_store(&url).map_err(|e| fetch_error(&e))?;
        let key = object_store::path::Path::from_url_path(url.path()).map_err(|e| fetch_error(&e))?;
        let bytes = store.get(&key).await.map_err(|e| fetch_error(&e))?.bytes().await.map_err(|e| fetch_error(&e))?;
        std::fs::create_dir_all(cache).map_err(|e| Error::io(cache.display(), e))?;
        let file_name = key.filename().unwrap_or("layer");
        let copy = cache.join(format!("{}-{file_name}", layer.name));
        std::fs::write(&copy, &bytes).map_err(|e| Error::io(copy.display(), e))?;
        layer.path = copy;
    }
    Ok(local)
}
