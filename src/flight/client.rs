//! lakegate as a Flight SQL client: `lakegate repl --connect grpc://host:port` runs statements
//! on a remote server.

use std::sync::Arc;

use arrow_flight::sql::client::FlightSqlServiceClient;
use datafusion::arrow::datatypes::Schema;
use datafusion::error::DataFusionError;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::{StreamExt, TryStreamExt};
use tonic::transport::{Certificate, Channel, ClientTlsConfig};

use crate::output::Output;
use crate::{Error, Result};

/// A signed-in connection to a lakegate (or any Flight SQL) server.
#[derive(Debug)]
pub struct Remote {
    url: String,
    client: tokio::sync::Mutex<FlightSqlServiceClient<Channel>>,
}

fn remote_error(url: &str, e: impl std::fmt::Display) -> Error {
    Error::Connect(format!("{url}: {e}"))
}

impl Remote {
    /// Connects to `grpc://host:port` or `grpc+tls://host:port` (trusting `ca_cert`, a PEM
    /// file, for TLS) and signs in when a user is given.
    ///
    /// # Errors
    /// The server cannot be reached, TLS fails, or the sign-in is refused.
    pub async fn connect(
        url: &str,
        user: Option<&str>,
        password: Option<&str>,
        ca_cert: Option<&std::path::Path>,
    ) -> Result<Self> {
        let (address, tls) = match url.split_once("://") {
            Some(("grpc" | "grpc+tcp", rest)) => (format!("http://{rest}"), false),
            Some(("grpc+tls", rest)) => (format!("https://{rest}"), true),
            _ => {
                return Err(Error::Connect(format!(
                    "'{url}' is not a Flight SQL address: write grpc://host:port or grpc+tls://host:port"
                )));
            }
        };
        let mut endpoint = Channel::from_shared(address)
            .map_err(|e| remote_error(url, e))?
            // The server lists its statements as the REPL's in `system.queries`.
            .user_agent("lakegate-repl")
            .map_err(|e| remote_error(url, e))?;
        if tls {
            let mut config = ClientTlsConfig::new();
            if let Some(path) = ca_cert {
                let pem = std::fs::read(path).map_err(|e| Error::io(path.display(), e))?;
                config = config.ca_certificate(Certificate::from_pem(pem));
            }
            endpoint = endpoint.tls_config(config).map_err(|e| remote_error(url, e))?;
        }
        let channel = endpoint.connect().await.map_err(|e| remote_error(url, format!("cannot connect: {e}")))?;
        let mut client = FlightSqlServiceClient::new(channel);
        if let Some(user) = user {
            client.handshake(user, password.unwrap_or_default()).await.map_err(|e| remote_error(url, e))?;
        }
        Ok(Self { url: url.to_owned(), client: tokio::sync::Mutex::new(client) })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Runs one statement on the server; rows stream from every endpoint in turn.
    ///
    /// # Errors
    /// What the server reports (bad SQL, unknown tables...).
    pub async fn execute(&self, sql: &str) -> Result<Output> {
        let mut client = self.client.lock().await;
        let info = client.execute(sql.to_owned(), None).await.map_err(|e| remote_error(&self.url, e))?;
        let schema: Arc<Schema> = Arc::new(info.clone().try_decode_schema().map_err(|e| remote_error(&self.url, e))?);
        let mut streams = Vec::new();
        for endpoint in info.endpoint {
            let ticket = endpoint.ticket.ok_or_else(|| remote_error(&self.url, "an endpoint without a ticket"))?;
            streams.push(client.do_get(ticket).await.map_err(|e| remote_error(&self.url, e))?);
        }
        let batches = futures::stream::iter(streams).flatten().map_err(|e| DataFusionError::External(Box::new(e)));
        Ok(Output::Rows(Box::pin(RecordBatchStreamAdapter::new(schema, batches))))
    }
}
