//! Column types of databases on PostgreSQL's wire protocol ⇄ Arrow types.
//!
//! Every column is read through a cast to the PostgreSQL type of its Arrow type
//! ([`wire_type`]), so the binary values that arrive are always one of a few layouts the
//! decoder knows, whatever the remote type is. Types without an Arrow counterpart (uuid,
//! json, inet, enums, ...) are read as their text form rather than dropped.

use datafusion::arrow::datatypes::{DataType, Field, IntervalUnit, TimeUnit};
use datafusion::error::{DataFusionError, Result as DFResult};
use tokio_postgres::Client;

use super::Dialect;

/// A column as the remote database describes it.
#[derive(Debug, Clone)]
pub(crate) struct RemoteColumn {
    pub(crate) name: String,
    /// `information_schema.columns.udt_name`: `int4`, `numeric`, `_text` (an array), an enum's name...
    pub(crate) udt: String,
    pub(crate) precision: Option<i32>,
    pub(crate) scale: Option<i32>,
    pub(crate) nullable: bool,
}

/// Unconstrained `numeric` has no fixed scale; it is read as DECIMAL(38, 10), rounded by the
/// database. Declare the column to choose another precision.
pub(crate) const UNCONSTRAINED_NUMERIC: DataType = DataType::Decimal128(38, 10);

/// The columns of `schema.table`, in their declared order; empty when there is no such table.
///
/// # Errors
/// The catalog query fails (connection lost, permissions).
pub(crate) async fn remote_columns(
    client: &Client,
    schema: &str,
    table: &str,
) -> Result<Vec<RemoteColumn>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT column_name::text, udt_name::text, numeric_precision::int4, numeric_scale::int4, is_nullable::text \
             FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2 ORDER BY ordinal_position",
            &[&schema, &table],
        )
        .await?;
    rows.iter()
        .map(|row| {
            Ok(RemoteColumn {
                name: row.try_get(0)?,
                udt: row.try_get(1)?,
                precision: row.try_get(2)?,
                scale: row.try_get(3)?,
                nullable: row.try_get::<_, String>(4)? == "YES",
            })
        })
        .collect()
}

impl RemoteColumn {
    /// The Arrow type this column is read as.
    pub(crate) fn arrow_type(&self) -> DataType {
        match self.udt.strip_prefix('_') {
            Some(element) => {
                let element = RemoteColumn { udt: element.to_owned(), precision: None, scale: None, ..self.clone() };
                DataType::new_list(element.arrow_type(), true)
            }
            None => scalar_type(&self.udt, self.precision, self.scale),
        }
    }

    /// Whether the database compares this column exactly as DataFusion compares its Arrow
    /// values, so that filters on it may be pushed down. Text-read types (uuid, json, enums,
    /// citext, char(n)) compare differently in PostgreSQL, so they are filtered by lakegate.
    pub(crate) fn compares_natively(&self, read_as: &DataType) -> bool {
        let native = matches!(
            self.udt.as_str(),
            "int2"
                | "int4"
                | "int8"
                | "float4"
                | "float8"
                | "numeric"
                | "bool"
                | "text"
                | "varchar"
                | "date"
                | "timestamp"
                | "timestamptz"
        );
        native && *read_as == self.arrow_type()
    }
}

fn scalar_type(udt: &str, precision: Option<i32>, scale: Option<i32>) -> DataType {
    match udt {
        "int2" => DataType::Int16,
        "int4" => DataType::Int32,
        "int8" | "oid" => DataType::Int64,
        "float4" => DataType::Float32,
        "float8" => DataType::Float64,
        "numeric" => match (precision, scale) {
            (Some(p @ 1..=38), Some(s @ 0..)) => DataType::Decimal128(p as u8, s as i8),
            (Some(p @ 39..=76), Some(s @ 0..)) => DataType::Decimal256(p as u8, s as i8),
            (None, _) => UNCONSTRAINED_NUMERIC,
            // Wider than Decimal256 holds: exact digits as text.
            _ => DataType::Utf8,
        },
        "bool" => DataType::Boolean,
        "bytea" | "varbyte" => DataType::Binary,
        "date" => DataType::Date32,
        "time" => DataType::Time64(TimeUnit::Microsecond),
        "timestamp" => DataType::Timestamp(TimeUnit::Microsecond, None),
        "timestamptz" => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        "interval" => DataType::Interval(IntervalUnit::MonthDayNano),
        // text, varchar, bpchar, name, citext, uuid, json, jsonb, inet, cidr, macaddr, xml,
        // money, timetz, enums, domains, ranges and anything else: their text form.
        _ => DataType::Utf8,
    }
}

/// The remote type a column of Arrow type `data_type` is cast to when read, or an error for
/// a declared type lakegate cannot read from PostgreSQL.
///
/// # Errors
/// A declared column of a type without a PostgreSQL counterpart (e.g. a struct).
pub(crate) fn wire_type(field: &Field, dialect: &Dialect) -> DFResult<String> {
    let name = match field.data_type() {
        DataType::Int16 => "int2".to_owned(),
        DataType::Int32 => "int4".to_owned(),
        DataType::Int64 => "int8".to_owned(),
        DataType::Float32 => "float4".to_owned(),
        DataType::Float64 => "float8".to_owned(),
        DataType::Decimal128(p, s) | DataType::Decimal256(p, s) => format!("numeric({p},{s})"),
        DataType::Boolean => "bool".to_owned(),
        DataType::Utf8 => dialect.text_type.to_owned(),
        DataType::Binary => dialect.binary_type.to_owned(),
        DataType::Date32 => "date".to_owned(),
        DataType::Time64(TimeUnit::Microsecond) => "time".to_owned(),
        DataType::Timestamp(TimeUnit::Microsecond, None) => "timestamp".to_owned(),
        DataType::Timestamp(TimeUnit::Microsecond, Some(_)) => "timestamptz".to_owned(),
        DataType::Interval(IntervalUnit::MonthDayNano) => "interval".to_owned(),
        DataType::List(element) if !matches!(element.data_type(), DataType::List(_)) && dialect.arrays => {
            format!("{}[]", wire_type(element, dialect)?)
        }
        other => {
            return Err(DataFusionError::Plan(format!(
                "column '{}' is declared as {other}, which lakegate cannot read from {}; declare it as a string, number, \
                 date/time, binary or array type, or leave the columns out to discover them",
                field.name(),
                dialect.name
            )));
        }
    };
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::super::POSTGRES;
    use super::*;

    fn column(udt: &str, precision: Option<i32>, scale: Option<i32>) -> RemoteColumn {
        RemoteColumn { name: "c".into(), udt: udt.into(), precision, scale, nullable: true }
    }

    #[test]
    fn numeric_precision_picks_the_decimal_width() {
        assert_eq!(column("numeric", Some(12), Some(2)).arrow_type(), DataType::Decimal128(12, 2));
        assert_eq!(column("numeric", Some(60), Some(4)).arrow_type(), DataType::Decimal256(60, 4));
        assert_eq!(column("numeric", None, None).arrow_type(), UNCONSTRAINED_NUMERIC);
        assert_eq!(column("numeric", Some(200), Some(0)).arrow_type(), DataType::Utf8);
    }

    #[test]
    fn arrays_become_lists_and_unknown_types_text() {
        assert_eq!(column("_int4", None, None).arrow_type(), DataType::new_list(DataType::Int32, true));
        assert_eq!(column("mood", None, None).arrow_type(), DataType::Utf8);
        assert!(!column("uuid", None, None).compares_natively(&DataType::Utf8));
        assert!(column("varchar", None, None).compares_natively(&DataType::Utf8));
    }

    #[test]
    fn every_read_type_has_a_cast_in_each_dialect() {
        for udt in [
            "int2",
            "int4",
            "int8",
            "float4",
            "float8",
            "bool",
            "text",
            "date",
            "time",
            "timestamp",
            "timestamptz",
            "interval",
        ] {
            let field = Field::new("c", column(udt, None, None).arrow_type(), true);
            assert!(wire_type(&field, &POSTGRES).is_ok(), "{udt}");
        }
        let nested = Field::new("c", DataType::new_list(DataType::Int64, true), true);
        assert_eq!(wire_type(&nested, &POSTGRES).expect("array"), "int8[]");
    }
}
