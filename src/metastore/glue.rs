//! AWS Glue's Data Catalog, Hive's metastore as a managed service: the same tables (storage
//! descriptors, partition keys, parameters, views) through the AWS SDK for Rust.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_glue::Client;
use aws_sdk_glue::error::{BuildError, DisplayErrorContext};
use aws_sdk_glue::types::{Column, PartitionInput, SerDeInfo, StorageDescriptor, TableInput};
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
use tokio::sync::OnceCell;

use super::client::{HiveColumn, HivePartition, HiveTable, MetastoreClient, MetastoreError, Result};

/// Glue takes at most this many partitions in one `BatchCreatePartition`.
const PARTITIONS_PER_CALL: usize = 100;

#[derive(Debug)]
pub(crate) struct GlueClient {
    region: Option<String>,
    endpoint: Option<String>,
    /// Where errors say the catalog is: the endpoint, else the region.
    uri: String,
    /// Made at first use: the AWS SDK reads its credentials and region asynchronously.
    client: OnceCell<Client>,
}

impl GlueClient {
    /// # Errors
    /// An endpoint that is not an `http(s)://` URL.
    pub(crate) fn new(region: Option<String>, endpoint: Option<String>) -> std::result::Result<Self, String> {
        if let Some(endpoint) = &endpoint
            && !(endpoint.starts_with("http://") || endpoint.starts_with("https://"))
        {
            return Err(format!("Glue endpoint '{endpoint}' is not an http:// or https:// URL"));
        }
        let uri = match (&endpoint, &region) {
            (Some(endpoint), _) => endpoint.clone(),
            (None, Some(region)) => format!("in {region}"),
            (None, None) => "in the AWS SDK's default region".into(),
        };
        Ok(Self { region, endpoint, uri, client: OnceCell::new() })
    }

    async fn client(&self) -> &Client {
        self.client
            .get_or_init(|| async {
                let https = aws_smithy_http_client::Builder::new()
                    .tls_provider(Provider::Rustls(CryptoMode::Ring))
                    .build_https();
                let mut loader = aws_config::defaults(BehaviorVersion::latest()).http_client(https);
                if let Some(region) = &self.region {
                    loader = loader.region(Region::new(region.clone()));
                }
                if let Some(endpoint) = &self.endpoint {
                    loader = loader.endpoint_url(endpoint);
                }
                let config: SdkConfig = loader.load().await;
                Client::new(&config)
            })
            .await
    }

    /// An SDK error, with its causes, naming this catalog (never the credentials).
    fn failed(&self, error: impl std::error::Error) -> MetastoreError {
        MetastoreError::Glue { uri: self.uri.clone(), message: DisplayErrorContext(error).to_string() }
    }
}

fn columns(columns: &[Column]) -> Vec<HiveColumn> {
    columns
        .iter()
        .map(|c| HiveColumn { name: c.name().to_lowercase(), hive_type: c.r#type().unwrap_or_default().to_owned() })
        .collect()
}

fn ordered(map: Option<&HashMap<String, String>>) -> BTreeMap<String, String> {
    map.map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()).unwrap_or_default()
}

fn glue_columns(columns: &[HiveColumn]) -> std::result::Result<Vec<Column>, BuildError> {
    columns.iter().map(|c| Column::builder().name(&c.name).r#type(&c.hive_type).build()).collect()
}

/// The storage of `table`'s files at `location` (a partition's, or its own).
fn storage(table: &HiveTable, location: &str) -> std::result::Result<StorageDescriptor, BuildError> {
    let serde = SerDeInfo::builder()
        .serialization_library(&table.serde)
        .set_parameters(Some(table.serde_parameters.clone().into_iter().collect()))
        .build();
    Ok(StorageDescriptor::builder()
        .set_columns(Some(glue_columns(&table.columns)?))
        .location(location)
        .input_format(&table.input_format)
        .output_format(&table.output_format)
        .serde_info(serde)
        .build())
}

#[async_trait]
impl MetastoreClient for GlueClient {
    async fn databases(&self) -> Result<Vec<String>> {
        let pages = self.client().await.get_databases().into_paginator().send().try_collect().await;
        let pages = pages.map_err(|e| self.failed(e))?;
        Ok(pages.iter().flat_map(|p| p.database_list()).map(|d| d.name().to_owned()).collect())
    }

    async fn tables(&self, database: &str) -> Result<Vec<String>> {
        let request = self.client().await.get_tables().database_name(database);
        let pages = request.into_paginator().send().try_collect().await.map_err(|e| self.failed(e))?;
        Ok(pages.iter().flat_map(|p| p.table_list()).map(|t| t.name().to_lowercase()).collect())
    }

    async fn table(&self, database: &str, name: &str) -> Result<Option<HiveTable>> {
        let answer = self.client().await.get_table().database_name(database).name(name).send().await;
        let answer = match answer {
            Ok(answer) => answer,
            Err(e) if e.as_service_error().is_some_and(|e| e.is_entity_not_found_exception()) => return Ok(None),
            Err(e) => return Err(self.failed(e)),
        };
        let Some(table) = answer.table() else { return Ok(None) };
        let sd = table.storage_descriptor();
        let serde = sd.and_then(StorageDescriptor::serde_info);
        let view_text = [table.view_expanded_text(), table.view_original_text()]
            .into_iter()
            .flatten()
            .find(|t| !t.trim().is_empty());
        Ok(Some(HiveTable {
            database: table.database_name().unwrap_or(database).to_owned(),
            name: table.name().to_lowercase(),
            table_type: table.table_type().unwrap_or_default().to_owned(),
            location: sd.and_then(StorageDescriptor::location).unwrap_or_default().to_owned(),
            input_format: sd.and_then(StorageDescriptor::input_format).unwrap_or_default().to_owned(),
            output_format: sd.and_then(StorageDescriptor::output_format).unwrap_or_default().to_owned(),
            serde: serde.and_then(SerDeInfo::serialization_library).unwrap_or_default().to_owned(),
            serde_parameters: ordered(serde.and_then(SerDeInfo::parameters)),
            columns: columns(sd.map(StorageDescriptor::columns).unwrap_or_default()),
            partition_keys: columns(table.partition_keys()),
            parameters: ordered(table.parameters()),
            view_text: view_text.map(str::to_owned),
        }))
    }

    async fn partitions(&self, table: &HiveTable, filter: Option<&str>) -> Result<Vec<HivePartition>> {
        let request = self
            .client()
            .await
            .get_partitions()
            .database_name(&table.database)
            .table_name(&table.name)
            .set_expression(filter.map(str::to_owned));
        let pages = request.into_paginator().send().try_collect().await.map_err(|e| self.failed(e))?;
        Ok(pages
            .iter()
            .flat_map(|p| p.partitions())
            .map(|p| HivePartition {
                values: p.values().to_vec(),
                location: p.storage_descriptor().and_then(StorageDescriptor::location).unwrap_or_default().to_owned(),
            })
            .collect())
    }

    async fn add_partitions(&self, table: &HiveTable, partitions: &[HivePartition]) -> Result<()> {
        for chunk in partitions.chunks(PARTITIONS_PER_CALL) {
            let inputs = chunk
                .iter()
                .map(|p| {
                    let sd = storage(table, &p.location)?;
                    Ok(PartitionInput::builder().set_values(Some(p.values.clone())).storage_descriptor(sd).build())
                })
                .collect::<std::result::Result<Vec<_>, BuildError>>()
                .map_err(|e| self.failed(e))?;
            let answer = self
                .client()
                .await
                .batch_create_partition()
                .database_name(&table.database)
                .table_name(&table.name)
                .set_partition_input_list(Some(inputs))
                .send()
                .await
                .map_err(|e| self.failed(e))?;
            // A partition Glue has already is kept as it is, as Hive's `ifNotExists`.
            let refused = answer.errors().iter().find_map(|e| {
                let detail = e.error_detail()?;
                (detail.error_code() != Some("AlreadyExistsException")).then(|| {
                    format!(
                        "partition {:?}: {}",
                        e.partition_values(),
                        detail.error_message().unwrap_or(detail.error_code().unwrap_or_default())
                    )
                })
            });
            if let Some(message) = refused {
                return Err(MetastoreError::Glue { uri: self.uri.clone(), message });
            }
        }
        Ok(())
    }

    async fn database_location(&self, database: &str) -> Result<Option<String>> {
        let answer = self.client().await.get_database().name(database).send().await.map_err(|e| self.failed(e))?;
        Ok(answer.database().and_then(|d| d.location_uri()).filter(|l| !l.is_empty()).map(str::to_owned))
    }

    async fn create_table(&self, table: &HiveTable) -> Result<()> {
        let input = TableInput::builder()
            .name(&table.name)
            .table_type(&table.table_type)
            .storage_descriptor(storage(table, &table.location).map_err(|e| self.failed(e))?)
            .set_partition_keys(Some(glue_columns(&table.partition_keys).map_err(|e| self.failed(e))?))
            .set_parameters(Some(table.parameters.clone().into_iter().collect()))
            .build()
            .map_err(|e| self.failed(e))?;
        let request = self.client().await.create_table().database_name(&table.database).table_input(input);
        request.send().await.map_err(|e| self.failed(e))?;
        Ok(())
    }

    async fn drop_table(&self, database: &str, name: &str) -> Result<()> {
        let request = self.client().await.delete_table().database_name(database).name(name);
        request.send().await.map_err(|e| self.failed(e))?;
        Ok(())
    }

    /// Glue's expressions are SQL's: a quote in a string is written twice.
    fn filter_literal(&self, text: &str) -> Option<String> {
        Some(format!("'{}'", text.replace('\'', "''")))
    }
}
