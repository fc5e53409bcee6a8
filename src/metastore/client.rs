//! What lakegate asks of a metastore, typed ([`MetastoreClient`]), and its Hive Thrift client.
//! The calls exist alike in Hive 2.3, 3.1 and 4.0 metastores (`get_table_req` falls back to
//! Hive 2's `get_table`); AWS Glue answers the same questions (`super::glue`).

use std::collections::BTreeMap;

use async_trait::async_trait;
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
    #[error("AWS Glue {uri}: {message}")]
    Glue { uri: String, message: String },
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
    pub(crate) output_format: String,
    pub(crate) serde: String,
    pub(crate) serde_parameters: BTreeMap<String, String>,
    pub(crate) columns: Vec<HiveColumn>,
    pub(crate) partition_keys: Vec<HiveColumn>,
    pub(crate) parameters: BTreeMap<String, String>,
    /// A view's SQL: Hive's expanded text (names qualified), else the text as written (Spark).
    pub(crate) view_text: Option<String>,
}

impl HiveTable {
    /// An external Parquet table as Hive's `STORED AS PARQUET` makes it, which Spark reads
    /// with its own Parquet reader.
    pub(crate) fn parquet(database: &str, name: &str, location: &str) -> Self {
        Self {
            database: database.to_owned(),
            name: name.to_owned(),
            table_type: "EXTERNAL_TABLE".into(),
            location: location.to_owned(),
            input_format: "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat".into(),
            output_format: "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat".into(),
            serde: "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe".into(),
            serde_parameters: BTreeMap::from([("serialization.format".into(), "1".into())]),
            columns: Vec::new(),
            partition_keys: Vec::new(),
            parameters: BTreeMap::from([("EXTERNAL".into(), "TRUE".into())]),
            view_text: None,
        }
    }

    pub(crate) fn is_view(&self) -> bool {
        self.table_type == "VIRTUAL_VIEW"
    }
}

/// A partition: its key values, in the table's key order, and where its files are.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct HivePartition {
    pub(crate) values: Vec<String>,
    pub(crate) location: String,
}

/// The calls lakegate makes of a metastore, answered alike by Hive's and by AWS Glue.
#[async_trait]
pub(crate) trait MetastoreClient: std::fmt::Debug + Send + Sync {
    async fn databases(&self) -> Result<Vec<String>>;
    async fn tables(&self, database: &str) -> Result<Vec<String>>;
    /// The table, or `None` when the metastore has no such table (or database).
    async fn table(&self, database: &str, name: &str) -> Result<Option<HiveTable>>;
    /// The table's partitions that `filter` (the metastore's filter language; `None`: all) keeps.
    async fn partitions(&self, table: &HiveTable, filter: Option<&str>) -> Result<Vec<HivePartition>>;
    /// Adds `partitions` to the table (those it has already are left as they are), each
    /// stored as the table is, at its own location, as Hive and Spark add them.
    async fn add_partitions(&self, table: &HiveTable, partitions: &[HivePartition]) -> Result<()>;
    /// Where a new table of `database` goes when no location is given, if the database says.
    async fn database_location(&self, database: &str) -> Result<Option<String>>;
    async fn create_table(&self, table: &HiveTable) -> Result<()>;
    /// Removes the table's definition; its files are left where they are.
    async fn drop_table(&self, database: &str, name: &str) -> Result<()>;
    /// `text` as a string literal of this metastore's partition filters, if it can be written.
    fn filter_literal(&self, text: &str) -> Option<String>;
}

/// A client of one Hive metastore, keeping idle connections for the next call.
#[derive(Debug)]
pub(crate) struct ThriftClient {
    uri: String,
    address: String,
    idle: Mutex<Vec<TcpStream>>,
}

fn text(fields: &Struct, id: i16) -> String {
    fields.get(&id).and_then(Value::as_str).unwrap_or_default().to_owned()
}

fn field_schemas(columns: &[HiveColumn]) -> Value {
    let field = |c: &HiveColumn| {
        Value::Struct(Struct::from([
            (1, Value::string(&c.name)),
            (2, Value::string(&c.hive_type)),
            (3, Value::string("")),
        ]))
    };
    Value::List(12, columns.iter().map(field).collect())
}

fn string_map(map: &BTreeMap<String, String>) -> Value {
    Value::Map(11, 11, map.iter().map(|(k, v)| (Value::string(k), Value::string(v))).collect())
}

/// A Thrift `StorageDescriptor` for `table`'s files at `location` (a partition's, or its own).
fn storage_descriptor(table: &HiveTable, location: &str) -> Value {
    let serde = Struct::from([
        (1, Value::string("")),
        (2, Value::string(&table.serde)),
        (3, string_map(&table.serde_parameters)),
    ]);
    Value::Struct(Struct::from([
        (1, field_schemas(&table.columns)),
        (2, Value::string(location)),
        (3, Value::string(&table.input_format)),
        (4, Value::string(&table.output_format)),
        (5, Value::Bool(false)),
        (6, Value::I32(-1)),
        (7, Value::Struct(serde)),
        (8, Value::List(11, Vec::new())),
        (9, Value::List(12, Vec::new())),
        (10, Value::Map(11, 11, Vec::new())),
    ]))
}

fn now() -> i32 {
    i32::try_from(chrono::Utc::now().timestamp()).unwrap_or(i32::MAX)
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

impl ThriftClient {
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
}

#[async_trait]
impl MetastoreClient for ThriftClient {
    async fn databases(&self) -> Result<Vec<String>> {
        Ok(Self::strings(self.call("get_all_databases", Struct::new()).await?))
    }

    async fn tables(&self, database: &str) -> Result<Vec<String>> {
        Ok(Self::strings(self.call("get_all_tables", Struct::from([(1, Value::string(database))])).await?))
    }

    async fn table(&self, database: &str, name: &str) -> Result<Option<HiveTable>> {
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
        let view_text = [text(table, 11), text(table, 10)].into_iter().find(|t| !t.trim().is_empty());
        Ok(Some(HiveTable {
            database: text(table, 2),
            name: text(table, 1),
            table_type: text(table, 12),
            location: text(&sd, 2),
            input_format: text(&sd, 3),
            output_format: text(&sd, 4),
            serde: text(&serde, 2),
            serde_parameters: serde.get(&3).map(Value::as_string_map).unwrap_or_default(),
            columns: columns(sd.get(&1)),
            partition_keys: columns(table.get(&8)),
            parameters: table.get(&9).map(Value::as_string_map).unwrap_or_default(),
            view_text,
        }))
    }

    async fn add_partitions(&self, table: &HiveTable, partitions: &[HivePartition]) -> Result<()> {
        let now = now();
        let parts = partitions
            .iter()
            .map(|p| {
                Value::Struct(Struct::from([
                    (1, Value::List(11, p.values.iter().map(|v| Value::string(v)).collect())),
                    (2, Value::string(&table.database)),
                    (3, Value::string(&table.name)),
                    (4, Value::I32(now)),
                    (5, Value::I32(0)),
                    (6, storage_descriptor(table, &p.location)),
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

    async fn partitions(&self, table: &HiveTable, filter: Option<&str>) -> Result<Vec<HivePartition>> {
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

    async fn database_location(&self, database: &str) -> Result<Option<String>> {
        let database = self.call("get_database", Struct::from([(1, Value::string(database))])).await?;
        Ok(database.as_ref().and_then(Value::as_struct).map(|d| text(d, 3)).filter(|l| !l.is_empty()))
    }

    async fn create_table(&self, table: &HiveTable) -> Result<()> {
        let definition = Struct::from([
            (1, Value::string(&table.name)),
            (2, Value::string(&table.database)),
            (3, Value::string("lakegate")),
            (4, Value::I32(now())),
            (5, Value::I32(0)),
            (6, Value::I32(0)),
            (7, storage_descriptor(table, &table.location)),
            (8, field_schemas(&table.partition_keys)),
            (9, string_map(&table.parameters)),
            (10, Value::string("")),
            (11, Value::string("")),
            (12, Value::string(&table.table_type)),
        ]);
        self.call("create_table", Struct::from([(1, Value::Struct(definition))])).await?;
        Ok(())
    }

    async fn drop_table(&self, database: &str, name: &str) -> Result<()> {
        let args = Struct::from([(1, Value::string(database)), (2, Value::string(name)), (3, Value::Bool(false))]);
        self.call("drop_table", args).await?;
        Ok(())
    }

    /// The filter language has no escapes: a text is quoted with whichever quote it does not
    /// hold, else it cannot be written.
    fn filter_literal(&self, text: &str) -> Option<String> {
        if !text.contains('"') {
            Some(format!("\"{text}\""))
        } else if !text.contains('\'') {
            Some(format!("'{text}'"))
        } else {
            None
        }
    }
}
