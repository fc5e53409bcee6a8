//! `lakegate serve`: an Arrow Flight SQL server over the catalog, for Superset
//! (flightsql-dbapi), Jupyter (ADBC), JDBC tools and the lakegate REPL.
//!
//! Built directly on `arrow-flight`'s `FlightSqlService`: results stream from DataFusion to
//! the wire batch by batch, in types every client reads, and lakegate keeps control of
//! sign-in, sessions and tickets.

mod auth;
mod client;
mod service;
mod wire;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arrow_flight::flight_service_server::FlightServiceServer;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Identity, Server, ServerTlsConfig};

pub use auth::hash_password;
pub use client::Remote;

use crate::{Error, Lakegate, Result};

/// Where `lakegate serve` listens unless told otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:50051";

/// Serves until SIGINT or SIGTERM, then stops taking calls and lets running ones finish.
///
/// # Errors
/// The address is taken or not allowed (remote without users), TLS files do not load.
pub async fn serve(lakegate: Arc<Lakegate>, listen: Option<&str>, insecure_allow_remote: bool) -> Result<()> {
    let config = lakegate.config().server.clone();
    let listen = listen.map(str::to_owned).or(config.listen.clone()).unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
    let address: SocketAddr = tokio::net::lookup_host(&listen)
        .await
        .map_err(|e| Error::Config(format!("cannot resolve listen address '{listen}': {e}")))?
        .next()
        .ok_or_else(|| Error::Config(format!("listen address '{listen}' resolves to nothing")))?;
    let idle = Duration::from_secs(60 * config.token_idle_minutes.unwrap_or(480));
    let auth = auth::Auth::new(&config.users, idle)?;
    if !auth.required() && !address.ip().is_loopback() && !insecure_allow_remote {
        return Err(Error::Config(format!(
            "no [[server.users]] are configured, so lakegate serves only on loopback; add users (see `lakegate hash-password`) \
             or pass --insecure-allow-remote to serve {address} to anyone"
        )));
    }
    let listener = tokio::net::TcpListener::bind(address).await.map_err(|e| Error::io(address, e))?;
    let bound = listener.local_addr().map_err(|e| Error::io(address, e))?;
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
                .map_err(|e| Error::Config(format!("TLS certificate or key: {e}")))?;
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
        .serve_with_incoming_shutdown(TcpIncoming::from(listener), shutdown_signal())
        .await
        .map_err(|e| Error::Config(format!("Flight SQL server: {e}")))?;
    tracing::info!("stopped");
    Ok(())
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
