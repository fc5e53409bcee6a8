//! Builds the DataFusion sessions: one process-wide runtime and catalog, a context per session.
//!
//! Everything a session needs is set on its `SessionConfig`/`RuntimeEnv`, so the same
//! configuration can be handed to a distributed engine (Ballista) unchanged.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use datafusion::execution::SessionStateBuilder;
use datafusion::execution::memory_pool::FairSpillPool;
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::prelude::{SessionConfig, SessionContext};
use lakegate_catalog::{Catalog, SessionCatalog};
use lakegate_udfs::{InvalidPolygons, LayerSet, LayerSpec};

use crate::config::{Config, GeodataConfig};
use crate::sources;
use datafusion::execution::object_store::ObjectStoreRegistry;
use object_store::ObjectStoreExt;

use crate::access::Principal;
use crate::storage::ObjectStores;
use crate::{Error, Result};

/// The catalog name under which all databases appear.
pub const CATALOG: &str = "lakegate";

/// One lakegate process: its configuration, catalog and execution runtime.
#[derive(Debug)]
pub struct Lakegate {
    config: Config,
    catalog: Arc<Catalog>,
    runtime: Arc<RuntimeEnv>,
    stores: Arc<ObjectStores>,
    layers: Layers,
    history: Arc<crate::history::QueryHistory>,
}

/// The geodata layers of the configuration, reloaded when one of their files changes (checked
/// as each session starts, so a running query keeps the layers it started with).
#[derive(Debug)]
struct Layers {
    config: GeodataConfig,
    /// The files' modification times when `set` was loaded, and the set.
    loaded: Mutex<(Vec<Option<SystemTime>>, Arc<LayerSet>)>,
}

impl Layers {
    fn load(config: &GeodataConfig) -> Result<Self> {
        let stamps = Self::stamps(config);
        let set = Arc::new(load_layers(config)?);
        Ok(Self { config: config.clone(), loaded: Mutex::new((stamps, set)) })
    }

    fn stamps(config: &GeodataConfig) -> Vec<Option<SystemTime>> {
        config.layers.iter().map(|l| std::fs::metadata(&l.path).and_then(|m| m.modified()).ok()).collect()
    }

    fn current(&self) -> Arc<LayerSet> {
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
    let layers = LayerSet::load(&specs).map_err(|e| Error::Config(format!("geodata layers: {e}")))?;
    for warning in layers.warnings() {
        tracing::warn!(%warning, "geodata polygon kept although invalid");
    }
    Ok(layers)
}

/// Layers on S3 (`s3://`, `s3a://`, `s3n://`) are copied under `cache` when the process starts,
/// since the loader reads local files; the returned configuration names the copies. A copy is
/// not refreshed while the process runs (local layer files are).
async fn fetch_remote_layers(
    config: &GeodataConfig,
    stores: &ObjectStores,
    cache: &std::path::Path,
) -> Result<GeodataConfig> {
    let mut local = config.clone();
    for layer in &mut local.layers {
        let location = layer.path.display().to_string();
        let Some(url) = url::Url::parse(&location).ok().filter(|u| crate::storage::is_s3(u.scheme())) else { continue };
        let fetch_error = |e: &dyn std::fmt::Display| {
            Error::Config(format!("geodata layer '{}': cannot read {location}: {e}", layer.name))
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

impl Lakegate {
    /// Opens the data directory (creating it), its catalog and the object stores, and loads
    /// the geodata layers.
    ///
    /// # Errors
    /// The data directory cannot be created, the catalog cannot be opened, or a layer does
    /// not load.
    pub async fn open(config: Config) -> Result<Self> {
        let data_dir = config.data_dir();
        std::fs::create_dir_all(&data_dir).map_err(|e| Error::io(data_dir.display(), e))?;
        let stores = Arc::new(ObjectStores::new(config.s3.clone()));
        // DataFusion keeps file listings forever by default; a gateway must see new partitions.
        let listing_ttl = std::time::Duration::from_secs(config.execution.listing_cache_seconds.unwrap_or(10));
        let mut runtime = RuntimeEnvBuilder::new()
            .with_object_store_registry(Arc::clone(&stores) as _)
            .with_object_list_cache_ttl(Some(listing_ttl));
        if let Some(mb) = config.execution.memory_limit_mb {
            runtime = runtime.with_memory_pool(Arc::new(FairSpillPool::new(mb * 1024 * 1024)));
        }
        let runtime = runtime.build_arc()?;
        let catalog = Catalog::open(&data_dir.join("catalog.db"), sources::all(&stores, &config.cassandra))?;
        let geodata = fetch_remote_layers(&config.geodata, &stores, &data_dir.join("geodata")).await?;
        let layers = Layers::load(&geodata)?;
        Ok(Self { config, catalog, runtime, stores, layers, history: Arc::default() })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn catalog(&self) -> &Arc<Catalog> {
        &self.catalog
    }

    /// Statements served by this process, newest last (`system.queries`).
    pub fn history(&self) -> &crate::history::QueryHistory {
        &self.history
    }

    /// Where managed tables (created without LOCATION) are stored.
    pub fn warehouse_dir(&self) -> PathBuf {
        self.config.data_dir().join("warehouse")
    }

    /// A new session of this process's own user (the CLI, the REPL, a server without
    /// configured users): an admin.
    pub fn session(&self) -> Session {
        self.session_as(Principal::local(crate::access::ANONYMOUS))
    }

    /// A new session of `principal`: its own settings and temporary tables over the shared
    /// catalog, and only what its role allows.
    pub fn session_as(&self, principal: Principal) -> Session {
        let mut config = SessionConfig::new()
            .with_information_schema(true)
            .with_create_default_catalog_and_schema(false)
            .with_default_catalog_and_schema(CATALOG, Catalog::default_database());
        if let Some(n) = self.config.execution.target_partitions {
            config = config.with_target_partitions(n);
        }
        if let Some(n) = self.config.execution.batch_size {
            config = config.with_batch_size(n);
        }
        let state = SessionStateBuilder::new()
            .with_config(config)
            .with_runtime_env(Arc::clone(&self.runtime))
            .with_default_features()
            .build();
        // `SELECT * FROM 's3://bucket/file.parquet'` reads files without registering them: any
        // file the server can reach, so for admins only.
        let ctx = SessionContext::new_with_state(state);
        let ctx = if principal.is_admin() { ctx.enable_url_table() } else { ctx };
        let viewer = (!principal.is_admin()).then(|| principal.user.clone());
        let catalog = self.catalog.session(vec![("system".to_owned(), self.history.system_database(viewer))]);
        ctx.register_catalog(CATALOG, Arc::clone(&catalog) as _);
        lakegate_udfs::register_all(&ctx, self.layers.current());
        Session {
            ctx,
            catalog,
            warehouse: self.warehouse_dir(),
            stores: Arc::clone(&self.stores),
            progress: Arc::default(),
            principal: Arc::new(principal),
            allowed_locations: self.config.server.allowed_locations.clone().into(),
        }
    }
}

/// One user's session: a DataFusion context over the shared catalog.
#[derive(Clone)]
pub struct Session {
    pub(crate) ctx: SessionContext,
    pub(crate) catalog: Arc<SessionCatalog>,
    pub(crate) warehouse: PathBuf,
    pub(crate) stores: Arc<ObjectStores>,
    pub(crate) progress: Arc<crate::write::Progress>,
    /// Who runs this session's statements.
    pub(crate) principal: Arc<Principal>,
    /// `[server] allowed_locations`: where tables may be located (anywhere when empty).
    pub(crate) allowed_locations: Arc<[String]>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").field("id", &self.ctx.session_id()).finish_non_exhaustive()
    }
}

impl Session {
    pub fn context(&self) -> &SessionContext {
        &self.ctx
    }

    /// Rows and bytes this session's writes have written so far.
    pub fn write_progress(&self) -> Arc<crate::write::Progress> {
        Arc::clone(&self.progress)
    }

    pub fn principal(&self) -> &Principal {
        &self.principal
    }

    /// The database unqualified names resolve to.
    pub fn current_database(&self) -> String {
        self.ctx.state().config().options().catalog.default_schema.clone()
    }
}
