//! The admin HTTP endpoint, on its own port beside Flight SQL: `/metrics` (Prometheus's text
//! format), `/healthz` (the process answers) and `/readyz` (the catalog can be read).
//!
//! On loopback anyone on the machine may read it. On another address, with users configured,
//! `/metrics` needs an admin's Basic credentials (its labels name users); the probes stay open
//! for load balancers, and say nothing but ready or not and why.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use super::auth::Auth;
use crate::Lakegate;

/// Answers on `listener` until the task is dropped.
pub(super) async fn serve(listener: TcpListener, lakegate: Arc<Lakegate>, auth: Arc<Auth>, guarded: bool) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "admin endpoint: accept failed");
                continue;
            }
        };
        let (lakegate, auth) = (Arc::clone(&lakegate), Arc::clone(&auth));
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let answer = answer(&request, &lakegate, &auth, guarded, peer);
                async move { Ok::<_, Infallible>(answer) }
            });
            if let Err(e) =
                hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await
            {
                tracing::debug!(error = %e, %peer, "admin endpoint: connection ended");
            }
        });
    }
}

fn answer(
    request: &Request<Incoming>,
    lakegate: &Lakegate,
    auth: &Auth,
    guarded: bool,
    peer: SocketAddr,
) -> Response<Full<Bytes>> {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "only GET\n".into());
    }
    match request.uri().path() {
        "/healthz" => text(StatusCode::OK, "ok\n".into()),
        "/readyz" => match lakegate.check_ready() {
            Ok(()) => text(StatusCode::OK, "ready\ncatalog: ok\n".into()),
            Err(e) => {
                tracing::warn!(error = %e, "not ready: the catalog cannot be read");
                text(StatusCode::SERVICE_UNAVAILABLE, format!("not ready\ncatalog: {e}\n"))
            }
        },
        "/metrics" => {
            if guarded && !auth.is_admin(request.headers()) {
                tracing::warn!(%peer, "admin endpoint: /metrics refused without an admin's credentials");
                let mut refused =
                    text(StatusCode::UNAUTHORIZED, "an admin's user name and password are needed\n".into());
                refused
                    .headers_mut()
                    .insert("www-authenticate", hyper::header::HeaderValue::from_static("Basic realm=\"lakegate\""));
                return refused;
            }
            let mut response = text(StatusCode::OK, lakegate.render_metrics());
            response.headers_mut().insert(
                "content-type",
                hyper::header::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            response
        }
        _ => text(StatusCode::NOT_FOUND, "not found: try /metrics, /healthz or /readyz\n".into()),
    }
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
}
