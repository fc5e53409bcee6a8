//! The Hive Metastore calls lakegate makes, typed: databases, tables, and partitions by filter.
//! They exist alike in Hive 2.3, 3.1 and 4.0 metastores (`get_table_req` falls back to Hive
//! 2's `get_table`).

use std::collections::BTreeMap;

use tokio::net::TcpStream;
use tokio::sync::Mutex;

use super::thrift::{self, Struct, ThriftError, Value};

/// A metastore error, naming the metastore.
#[derive(Debug, thiserror::Error)]
pub(crate) enum MetastoreError {
    #[error("Hive metastore {uri}: {source}")]
    Call {
        uri: String,
        #[source]
        source: ThriftError,
    },
    /// The metastore answered with one of its declared exceptions.
    #[error("Hive metastore {uri}: {message}")]
    Refused { uri: String, message: String },
    #[error("Hive metastore {uri} has no {what}")]
    NotFound { uri: String, what: String },
}

pub(crate) type Result<T> = std::result::Result<T, MetastoreError>;

/// A column as the metastore stores it: its Hive type as text.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct HiveColumn {
    pub(crate) name: String,
    pub(crate) hive_type: String,
}

/// What lakegate needs of a metastore table.
#[derive(Debug, Clone)]
pub(crate) struct HiveTable {
    pub(crate) database: String,
    pub(crate) name: String,
    /// `MANAGED_TABLE`, `EXTERNAL_TABLE`, `VIRTUAL_VIEW`, ...
    pub(crate) table_type: String,
    pub(crate) location: String,
    pub(crate) input_format: String,
    pub(crate) serde: String,
    pub(crate) serde_parameters: BTreeMap<String, String>,
    pub(crate) columns: Vec<HiveColumn>,
    pub(crate) partition_keys: Vec<HiveColumn>,
    pub(crate) parameters: BTreeMap<String, String>,
    /// The storage descriptor as the metastore sent it: new partitions copy it.
    pub(crate) storage: Struct,
}

/// A partition: its key values, in the table's key order, and where its files are.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct HivePartition {
    pub(crate) values: Vec<String>,
    pub(crate) location: String,
}

/// A client of one metastore, keeping idle connections for the next call.
#[derive(Debug)]
pub(crate) struct MetastoreClient {
    uri: String,
    address: String,
    idle: Mutex<Vec<TcpStream>>,
}

fn text(fields: &Struct, id: i16) -> String {
    fields.get(&id).and_then(Value::as_str).unwrap_or_default().to_owned()
}

fn columns(value: Option<&Value>) -> Vec<HiveColumn> {
    let Some(value) = value else { return Vec::new() };
    value
        .as_list()
        .iter()
        .filter_map(Value::as_struct)
        .map(|f| HiveColumn { name: text(f, 1).to_lowercase(), hive_type: text(f, 2) })
        .collect()
}

impl MetastoreClient {
    /// A client of the metastore at `uri` (`thrift://host:port`); connects on first use.
    ///
    /// # Errors
    /// The URI is not `thrift://host:port`.
    pub(crate) fn new(uri: &str) -> std::result::Result<Self, String> {
        let address = uri
            .strip_prefix("thrift://")
            .filter(|a| a.rsplit_once(':').is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok()))
            .ok_or_else(|| format!("'{uri}' is not a metastore URI: write thrift://host:port"))?;
        Ok(Self { uri: uri.to_owned(), address: address.to_owned(), idle: Mutex::new(Vec::new()) })
    }

    /// Calls `method`, returning its return value (field 0 of the result).
    async fn call(&self, method: &str, args: Struct) -> Result<Option<Value>> {
        let failed = |source| MetastoreError::Call { uri: self.uri.clone(), source };
        let idle = self.idle.lock().await.pop();
        let mut stream = match idle {
            Some(stream) => stream,
            None => TcpStream::connect(&self.address).await.map_err(|e| failed(e.into()))?,
        };
        let _ = stream.set_nodelay(true);
        let mut result = thrift::call(&mut stream, method, args).await.map_err(failed)?;
        // Only a connection that finished its call cleanly is reused.
        self.idle.lock().await.push(stream);
        if let Some(exception) = result.iter().find(|(id, _)| **id > 0).map(|(_, v)| v) {
            let message = exception.as_struct().map(|e| text(e, 1)).unwrap_or_default();
            return Err(MetastoreError::Refused { uri: self.uri.clone(), message });
        }
        Ok(result.remove(&0))
    }

    fn not_found(&self, what: String) -> MetastoreError {
        MetastoreError::NotFound { uri: self.uri.clone(), what }
    }

    fn strings(value: Option<Value>) -> Vec<String> {
        value.map(|v| v.as_list().iter().filter_map(Value::as_str).map(str::to_owned).collect()).unwrap_or_default()
    }

    pub(crate) async fn databases(&self) -> Result<Vec<String>> {
        Ok(Self::strings(self.call("get_all_databases", Struct::new()).await?))
    }

    pub(crate) async fn tables(&self, database: &str) -> Result<Vec<String>> {
        Ok(Self::strings(self.call("get_all_tables", Struct::from([(1, Value::string(database))])).await?))
    }

    /// The table, or `None` when the metastore has no such table (or database).
    pub(crate) async fn table(&self, database: &str, name: &str) -> Result<Option<HiveTable>> {
        let request = Struct::from([(1, Value::string(database)), (2, Value::string(name))]);
        let answer = match self.call("get_table_req", Struct::from([(1, Value::Struct(request))])).await {
            Ok(result) => result.as_ref().and_then(Value::as_struct).and_then(|r| r.get(&1)).cloned(),
            // A Hive 2 metastore has only the older call.
            Err(MetastoreError::Call { source: ThriftError::Application(_), .. }) => {
                let args = Struct::from([(1, Value::string(database)), (2, Value::string(name))]);
                self.call("get_table", args).await?
            }
            Err(MetastoreError::Refused { message, .. }) if message.contains("not found") || message.is_empty() => None,
            Err(MetastoreError::Refused { message, .. }) if message.contains("does not exist") => None,
            Err(e) => return Err(e),
        };
        let Some(table) = answer.as_ref().and_then(Value::as_struct) else { return Ok(None) };
        let sd = table.get(&7).and_then(Value::as_struct).cloned().unwrap_or_default();
        let serde = sd.get(&7).and_then(Value::as_struct).cloned().unwrap_or_default();
        let sd = sd.clone();
        Ok(Some(HiveTable {
            database: text(table, 2),
            name: text(table, 1),
            table_type: text(table, 12),
            location: text(&sd, 2),
            input_format: text(&sd, 3),
            serde: text(&serde, 2),
            serde_parameters: serde.get(&3).map(Value::as_string_map).unwrap_or_default(),
            columns: columns(sd.get(&1)),
            partition_keys: columns(table.get(&8)),
            parameters: table.get(&9).map(Value::as_string_map).unwrap_or_default(),
            storage: sd,
        }))
    }

    /// Adds `partitions` to the table (those it has already are left as they are), each a
    /// copy of the table's storage descriptor at its own location, as Hive and Spark add them.
    pub(crate) async fn add_partitions(&self, table: &HiveTable, partitions: &[HivePartition]) -> Result<()> {
        let now = i32::try_from(chrono::Utc::now().timestamp()).unwrap_or(i32::MAX);
        let parts = partitions
            .iter()
            .map(|p| {
                let mut sd = table.storage.clone();
                sd.insert(2, Value::string(&p.location));
                Value::Struct(Struct::from([
                    (1, Value::List(11, p.values.iter().map(|v| Value::string(v)).collect())),
                    (2, Value::string(&table.database)),
                    (3, Value::string(&table.name)),
                    (4, Value::I32(now)),
                    (5, Value::I32(0)),
                    (6, Value::Struct(sd)),
                    (7, Value::Map(11, 11, Vec::new())),
                ]))
            })
            .collect();
        let request = Struct::from([
            (1, Value::string(&table.database)),
            (2, Value::string(&table.name)),
            (3, Value::List(12, parts)),
            (4, Value::Bool(true)),
            (5, Value::Bool(false)),
        ]);
        self.call("add_partitions_req", Struct::from([(1, Value::Struct(request))])).await?;
        Ok(())
    }

    /// The table's partitions that `filter` (the metastore's filter language; `None`: all) keeps.
    pub(crate) async fn partitions(&self, table: &HiveTable, filter: Option<&str>) -> Result<Vec<HivePartition>> {
        let mut args = Struct::from([(1, Value::string(&table.database)), (2, Value::string(&table.name))]);
        let method = match filter {
            Some(filter) => {
                args.insert(3, Value::string(filter));
                args.insert(4, Value::I16(-1));
                "get_partitions_by_filter"
            }
            None => {
                args.insert(3, Value::I16(-1));
                "get_partitions"
            }
        };
        let Some(partitions) = self.call(method, args).await? else {
            return Err(self.not_found(format!("partitions of {}.{}", table.database, table.name)));
        };
        Ok(partitions
            .as_list()
            .iter()
            .filter_map(Value::as_struct)
            .map(|p| {
                let sd = p.get(&6).and_then(Value::as_struct).cloned().unwrap_or_default();
                HivePartition {
                    values: p.get(&1).map(|v| Self::strings(Some(v.clone()))).unwrap_or_default(),
                    location: text(&sd, 2),
                }
            })
            .collect())
    }
}
