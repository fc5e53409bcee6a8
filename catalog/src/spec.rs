//! What the catalog stores about a table.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// A registered table: where it lives, which source reads it, and its schema.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableSpec {
    pub database: String,
    pub name: String,
    /// The source kind, e.g. `parquet`; resolved through [`crate::Sources`].
    pub kind: String,
    pub location: String,
    /// Source options as written; secrets only as `${env:NAME}` references.
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    /// Data columns, declared or discovered at registration.
    #[serde(default)]
    pub columns: Vec<ColumnSpec>,
    /// Hive partition columns (directory levels), after the data columns in the table schema.
    #[serde(default)]
    pub partition_columns: Vec<ColumnSpec>,
    #[serde(default)]
    pub comment: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnSpec {
    pub name: String,
    /// Arrow's type name (`Int64`, `Utf8`, `Timestamp(µs, "UTC")`, ...).
    pub data_type: String,
    #[serde(default = "yes")]
    pub nullable: bool,
}

fn yes() -> bool {
    true
}

impl ColumnSpec {
    pub fn new(name: impl Into<String>, data_type: &DataType, nullable: bool) -> Self {
        Self { name: name.into(), data_type: data_type.to_string(), nullable }
    }

    /// # Errors
    /// [`Error::BadType`] when the stored type name is not an Arrow type.
    pub fn field(&self) -> Result<Field> {
        let data_type = DataType::from_str(&self.data_type).map_err(|source| Error::BadType {
            column: self.name.clone(),
            data_type: self.data_type.clone(),
            source,
        })?;
        Ok(Field::new(&self.name, data_type, self.nullable))
    }
}

impl TableSpec {
    /// `database.name`, as users write it.
    pub fn qualified_name(&self) -> String {
        format!("{}.{}", self.database, self.name)
    }

    /// The table schema: data columns, then partition columns.
    ///
    /// # Errors
    /// [`Error::BadType`] when a stored type name is not an Arrow type.
    pub fn schema(&self) -> Result<SchemaRef> {
        let fields =
            self.columns.iter().chain(&self.partition_columns).map(ColumnSpec::field).collect::<Result<Vec<_>>>()?;
        Ok(Arc::new(Schema::new(fields)))
    }

    /// Only the data columns (what the files or the remote table hold).
    ///
    /// # Errors
    /// [`Error::BadType`] when a stored type name is not an Arrow type.
    pub fn data_schema(&self) -> Result<SchemaRef> {
        let fields = self.columns.iter().map(ColumnSpec::field).collect::<Result<Vec<_>>>()?;
        Ok(Arc::new(Schema::new(fields)))
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::datatypes::TimeUnit;

    use super::*;

    #[test]
    fn column_types_round_trip_through_their_names() {
        let types = [
            DataType::Int64,
            DataType::Utf8,
            DataType::Decimal128(18, 4),
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            DataType::Date32,
            DataType::new_list(DataType::Utf8, true),
        ];
        for t in types {
            let column = ColumnSpec::new("c", &t, true);
            assert_eq!(column.field().expect("parses back").data_type(), &t, "{}", column.data_type);
        }
    }

    #[test]
    fn unknown_type_names_are_errors_naming_the_column() {
        let column = ColumnSpec { name: "amount".into(), data_type: "Money".into(), nullable: true };
        let err = column.field().unwrap_err().to_string();
        assert!(err.contains("amount") && err.contains("Money"), "{err}");
    }
}
