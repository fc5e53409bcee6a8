//! `lakegate serve`: an Arrow Flight SQL server over the catalog, for Superset
//! (flightsql-dbapi), Jupyter (ADBC), JDBC tools and the lakegate REPL.
//!
//! Built directly on `arrow-flight`'s `FlightSqlService`: results stream from DataFusion to
//! the wire batch by batch, in types every client reads, and lakegate keeps control of
//! sign-in, sessions and tickets.

mod admin;
mod auth;
mod client;
mod metadata;
mod service;
mod status;
mod stream;
mod wire;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arrow_flight::flight_service_server::FlightServiceServer;
use serde::Deserialize;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Identity, Server, ServerTlsConfig};

pub use auth::hash_password;
pub use client::Remote;

use crate::access::{Principal, Role};
use crate::{Error, Lakegate, Result};

/// `lakegate serve`: where it listens, TLS, and who may connect.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address to listen on (default `127.0.0.1:50051`).
    pub listen: Option<String>,
    /// The admin HTTP endpoint (`/metrics`, `/healthz`, `/readyz`): default
    /// `127.0.0.1:9090`; `"off"` serves none.
    pub admin_listen: Option<String>,
    /// PEM certificate chain and private key: with both, clients connect with `grpc+tls://`.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Users allowed to connect; without any, the server accepts everyone and listens only on
    /// loopback (unless started with `--insecure-allow-remote`).
    pub users: Vec<UserConfig>,
    /// How long a session token stays valid without use, in minutes (default 480).
    pub token_idle_minutes: Option<u64>,
    /// How many statements run at once; the others wait their turn, `queued` in
    /// `system.queries` (default: no limit). Applies to every front end of the process.
    pub max_concurrent_queries: Option<usize>,
    /// How many statements of one user run at once, so one user's batch cannot take every
    /// slot (default: no limit of its own).
    pub max_queries_per_user: Option<usize>,
    /// Where admins may point a table's LOCATION: prefixes such as `s3://lake/` or `/data/`.
    /// Empty (the default) allows any location.
    pub allowed_locations: Vec<String>,
}

/// One `[[server.users]]` entry. The password is stored as an Argon2 hash
/// (`lakegate hash-password` makes one), never in clear.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    pub name: String,
    pub password_hash: String,
    /// `admin`, `writer` or `reader` (the default).
    #[serde(default)]
    pub role: Role,
    /// The databases this user may read (and, as a writer, INSERT into); `"*"` for all.
    /// Admins need none.
    #[serde(default)]
    pub databases: Vec<String>,
}

impl UserConfig {
    pub fn principal(&self) -> Principal {
        Principal {
            user: self.name.clone(),
            role: self.role,
            databases: self.databases.iter().map(|d| d.to_lowercase()).collect(),
        }
    }
}

/// The safety checks `lakegate serve` is told to skip.
#[derive(Debug, Clone, Copy, Default)]
pub struct Insecure {
    /// Serve a non-loopback address without configured users.
    pub allow_remote: bool,
    /// Serve a non-loopback address with users but without TLS.
    pub allow_plaintext: bool,
}

/// Where `lakegate serve` listens unless told otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:50051";

/// Where the admin endpoint listens unless told otherwise.
pub const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:9090";

/// Resolves `listen` to one address.
async fn resolve(listen: &str) -> Result<SocketAddr> {
    tokio::net::lookup_host(listen)
        .await
        .map_err(|e| Error::Listen(format!("cannot resolve listen address '{listen}': {e}")))?
        .next()
        .ok_or_else(|| Error::Listen(format!("listen address '{listen}' resolves to nothing")))
}

/// Serves until SIGINT or SIGTERM, then stops taking calls and lets running ones finish.
///
/// # Errors
/// The address is taken or not allowed (remote without users, or remote passwords without
/// TLS), TLS files do not load.
pub async fn serve(
    lakegate: Arc<Lakegate>,
    config: &ServerConfig,
    listen: Option<&str>,
    admin_listen: Option<&str>,
    insecure: Insecure,
) -> Result<()> {
    let listen = listen.map(str::to_owned).or(config.listen.clone()).unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
    let address = resolve(&listen).await?;
    let idle = Duration::from_secs(60 * config.token_idle_minutes.unwrap_or(480));
    let auth = Arc::new(auth::Auth::new(&config.users, idle)?);
    let tls = config.tls_cert.is_some() || config.tls_key.is_some();
    if auth.required() && !tls && !address.ip().is_loopback() && !insecure.allow_plaintext {
        return Err(Error::Config(format!(
            "users are configured, so passwords and tokens would cross the network in clear text on {address}: set [server] tls_cert \
             and tls_key, or pass --insecure-allow-plaintext (e.g. behind a TLS-terminating proxy)"
        )));
    }
    if !auth.required() && !address.ip().is_loopback() && !insecure.allow_remote {
        return Err(Error::Config(format!(
            "no [[server.users]] are configured, so lakegate serves only on loopback; add users (see `lakegate hash-password`) \
             or pass --insecure-allow-remote to serve {address} to anyone"
        )));
    }
    let listener = tokio::net::TcpListener::bind(address).await.map_err(|e| Error::io(address, e))?;
    let bound = listener.local_addr().map_err(|e| Error::io(address, e))?;
    let admin = match admin_listen.map(str::to_owned).or(config.admin_listen.clone()) {
        Some(off) if off == "off" => None,
        Some(chosen) => Some(start_admin(&lakegate, &auth, &chosen, insecure).await?),
        // The default port may be taken by another server on the machine: serve without it.
        None => match start_admin(&lakegate, &auth, DEFAULT_ADMIN_LISTEN, insecure).await {
            Ok(task) => Some(task),
            Err(e) => {
                tracing::warn!(error = %e, "admin endpoint not started; set [server] admin_listen");
                eprintln!("warning: admin endpoint not started: {e}");
                None
            }
        },
    };
    let _admin = admin.map(AbortOnDrop);
    let _refresher = AbortOnDrop(tokio::spawn(Arc::clone(&lakegate).refresh_caches()));
    let service = FlightServiceServer::new(service::FlightSqlServer::new(Arc::clone(&lakegate), auth)?)
        .max_decoding_message_size(64 << 20)
        .max_encoding_message_size(64 << 20);
    let mut server = Server::builder();
    let scheme = match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => {
            let cert = std::fs::read(cert).map_err(|e| Error::io(cert.display(), e))?;
            let key = std::fs::read(key).map_err(|e| Error::io(key.display(), e))?;
            server = server
                .tls_config(ServerTlsConfig::new().identity(Identity::from_pem(cert, key)))
                .map_err(|e| Error::Listen(format!("TLS certificate or key: {e}")))?;
            "grpc+tls"
        }
        (None, None) => "grpc",
        _ => return Err(Error::Config("[server] needs both tls_cert and tls_key, or neither".into())),
    };
    // Tests and scripts read this line to find the port (`--listen 127.0.0.1:0`).
    println!("lakegate Flight SQL listening on {scheme}://{bound}");
    tracing::info!(%bound, scheme, users = config.users.len(), "serving");
    server
        .add_service(service)
        // Small replies (one batch, a schema) must leave at once: with Nagle's algorithm on, each
        // waits for the client's delayed ACK, ~40-90 ms per call. The builder's own
        // `tcp_nodelay` does not apply to a listener handed in.
        .serve_with_incoming_shutdown(TcpIncoming::from(listener).with_nodelay(Some(true)), shutdown_signal())
        .await
        .map_err(|e| Error::Listen(format!("Flight SQL server: {e}")))?;
    tracing::info!("stopped");
    Ok(())
}

/// Stops a task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Starts the admin endpoint on `listen`, under the Flight port's rules for remote addresses.
async fn start_admin(
    lakegate: &Arc<Lakegate>,
    auth: &Arc<auth::Auth>,
    listen: &str,
    insecure: Insecure,
) -> Result<tokio::task::JoinHandle<()>> {
    let address = resolve(listen).await?;
    let remote = !address.ip().is_loopback();
    if remote && !auth.required() && !insecure.allow_remote {
        return Err(Error::Config(format!(
            "no [[server.users]] are configured, so the admin endpoint serves only on loopback; add users or pass \
             --insecure-allow-remote to serve {address} to anyone"
        )));
    }
    if remote && auth.required() && !insecure.allow_plaintext {
        return Err(Error::Config(format!(
            "the admin endpoint is plain HTTP, so an admin's password would cross the network in clear text on {address}: \
             listen on loopback, or pass --insecure-allow-plaintext (e.g. behind a TLS-terminating proxy)"
        )));
    }
    let listener = tokio::net::TcpListener::bind(address).await.map_err(|e| Error::io(address, e))?;
    let bound = listener.local_addr().map_err(|e| Error::io(address, e))?;
    // Tests and scripts read this line to find the port (`--admin-listen 127.0.0.1:0`).
    println!("lakegate admin endpoint on http://{bound} (/metrics, /healthz, /readyz)");
    let guarded = remote && auth.required();
    Ok(tokio::spawn(admin::serve(listener, Arc::clone(lakegate), Arc::clone(auth), guarded)))
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => {}
        _ = terminate => {}
    }
    eprintln!("shutting down: finishing running calls");
}
