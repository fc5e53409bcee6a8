//! Column types as Hive, Spark and DataFusion scripts spell them, to Arrow and back.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, TimeUnit};
use sqlparser::ast::{ArrayElemTypeDef, DataType as SqlType, ExactNumberInfo, TimezoneInfo};

use crate::{Error, Result};

/// Spark's TIMESTAMP is an instant (stored in UTC); TIMESTAMP_NTZ is a wall-clock time.
const UTC: &str = "UTC";

/// The Arrow type of a declared column. Strings map to `Utf8View`, DataFusion's native string
/// type for Parquet; Hive partition columns keep `Utf8` (see `partition_type`).
///
/// # Errors
/// [`Error::Unsupported`] naming the type.
pub fn to_arrow(sql: &SqlType) -> Result<DataType> {
    let decimal = |info: &ExactNumberInfo| -> Result<DataType> {
        let (precision, scale) = match *info {
            // Spark and Hive read a bare DECIMAL as DECIMAL(10, 0).
            ExactNumberInfo::None => (10, 0),
            ExactNumberInfo::Precision(p) => (p, 0),
            ExactNumberInfo::PrecisionAndScale(p, s) => (p, s),
        };
        let (Ok(p), Ok(s)) = (u8::try_from(precision), i8::try_from(scale)) else {
            return Err(Error::Unsupported(format!("DECIMAL({precision}, {scale})")));
        };
        Ok(if p <= 38 { DataType::Decimal128(p, s) } else { DataType::Decimal256(p, s) })
    };
    Ok(match sql {
        SqlType::Boolean | SqlType::Bool => DataType::Boolean,
        SqlType::TinyInt(_) => DataType::Int8,
        SqlType::SmallInt(_) | SqlType::Int2(_) => DataType::Int16,
        SqlType::Int(_) | SqlType::Integer(_) | SqlType::Int4(_) => DataType::Int32,
        SqlType::BigInt(_) | SqlType::Int8(_) => DataType::Int64,
        SqlType::Float(_) | SqlType::Real | SqlType::Float4 => DataType::Float32,
        SqlType::Double(_) | SqlType::DoublePrecision | SqlType::Float8 => DataType::Float64,
        SqlType::Decimal(info) | SqlType::Numeric(info) | SqlType::Dec(info) => decimal(info)?,
        SqlType::String(_)
        | SqlType::Text
        | SqlType::Varchar(_)
        | SqlType::CharacterVarying(_)
        | SqlType::CharVarying(_)
        | SqlType::Char(_)
        | SqlType::Character(_) => DataType::Utf8View,
        SqlType::Binary(_) | SqlType::Varbinary(_) | SqlType::Bytea | SqlType::Blob(_) => DataType::BinaryView,
        SqlType::Date => DataType::Date32,
        SqlType::Timestamp(_, TimezoneInfo::WithoutTimeZone) | SqlType::TimestampNtz(_) | SqlType::Datetime(_) => {
            DataType::Timestamp(TimeUnit::Microsecond, None)
        }
        SqlType::Timestamp(_, _) => DataType::Timestamp(TimeUnit::Microsecond, Some(UTC.into())),
        SqlType::Array(
            ArrayElemTypeDef::AngleBracket(inner)
            | ArrayElemTypeDef::SquareBracket(inner, _)
            | ArrayElemTypeDef::Parenthesis(inner),
        ) => DataType::List(Arc::new(Field::new_list_field(to_arrow(inner)?, true))),
        SqlType::Map(key, value) => DataType::Map(
            Arc::new(Field::new(
                "entries",
                DataType::Struct(
                    vec![Field::new("key", to_arrow(key)?, false), Field::new("value", to_arrow(value)?, true)].into(),
                ),
                false,
            )),
            false,
        ),
        SqlType::Struct(fields, _) => DataType::Struct(
            fields
                .iter()
                .map(|f| {
                    let name = f.field_name.as_ref().map(|n| n.value.clone()).unwrap_or_default();
                    Ok(Field::new(name, to_arrow(&f.field_type)?, true))
                })
                .collect::<Result<Vec<_>>>()?
                .into(),
        ),
        SqlType::Custom(name, _) if name.to_string().eq_ignore_ascii_case("long") => DataType::Int64,
        SqlType::Custom(name, _) if name.to_string().eq_ignore_ascii_case("short") => DataType::Int16,
        SqlType::Custom(name, _) if name.to_string().eq_ignore_ascii_case("byte") => DataType::Int8,
        other => return Err(Error::Unsupported(format!("column type {other}"))),
    })
}

/// Partition values come from directory names: strings stay plain `Utf8`.
pub fn partition_type(sql: &SqlType) -> Result<DataType> {
    Ok(match to_arrow(sql)? {
        DataType::Utf8View => DataType::Utf8,
        other => other,
    })
}

/// The SQL spelling of an Arrow type, as `SHOW CREATE TABLE` prints it (readable back by
/// [`to_arrow`] for every type [`to_arrow`] produces).
pub fn to_sql(data_type: &DataType) -> String {
    match data_type {
        DataType::Boolean => "BOOLEAN".into(),
        DataType::Int8 => "TINYINT".into(),
        DataType::Int16 => "SMALLINT".into(),
        DataType::Int32 => "INT".into(),
        DataType::Int64 => "BIGINT".into(),
        DataType::UInt8 | DataType::UInt16 => "INT".into(),
        DataType::UInt32 | DataType::UInt64 => "BIGINT".into(),
        DataType::Float16 | DataType::Float32 => "FLOAT".into(),
        DataType::Float64 => "DOUBLE".into(),
        DataType::Decimal32(p, s)
        | DataType::Decimal64(p, s)
        | DataType::Decimal128(p, s)
        | DataType::Decimal256(p, s) => {
            format!("DECIMAL({p}, {s})")
        }
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "STRING".into(),
        DataType::Dictionary(_, value) => to_sql(value),
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView | DataType::FixedSizeBinary(_) => {
            "BINARY".into()
        }
        DataType::Date32 | DataType::Date64 => "DATE".into(),
        DataType::Timestamp(_, Some(_)) => "TIMESTAMP".into(),
        DataType::Timestamp(_, None) => "TIMESTAMP_NTZ".into(),
        DataType::List(f) | DataType::LargeList(f) | DataType::ListView(f) | DataType::FixedSizeList(f, _) => {
            format!("ARRAY<{}>", to_sql(f.data_type()))
        }
        DataType::Map(entries, _) => match entries.data_type() {
            DataType::Struct(kv) if kv.len() == 2 => {
                format!("MAP<{}, {}>", to_sql(kv[0].data_type()), to_sql(kv[1].data_type()))
            }
            other => to_sql(other),
        },
        DataType::Struct(fields) => {
            let fields: Vec<_> = fields.iter().map(|f| format!("{} {}", f.name(), to_sql(f.data_type()))).collect();
            format!("STRUCT<{}>", fields.join(", "))
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use sqlparser::dialect::GenericDialect;
    use sqlparser::parser::Parser;

    use super::*;

    fn parse(sql: &str) -> DataType {
        let ty =
            Parser::new(&GenericDialect {}).try_with_sql(sql).and_then(|mut p| p.parse_data_type()).expect("parses");
        to_arrow(&ty).expect("maps")
    }

    #[test]
    fn hive_and_spark_spellings_map_to_arrow() {
        assert_eq!(parse("STRING"), DataType::Utf8View);
        assert_eq!(parse("BIGINT"), DataType::Int64);
        assert_eq!(parse("INT"), DataType::Int32);
        assert_eq!(parse("TINYINT"), DataType::Int8);
        assert_eq!(parse("DOUBLE"), DataType::Float64);
        assert_eq!(parse("DECIMAL(10,2)"), DataType::Decimal128(10, 2));
        assert_eq!(parse("DECIMAL(50,2)"), DataType::Decimal256(50, 2));
        assert_eq!(parse("TIMESTAMP"), DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())));
        assert_eq!(parse("DATE"), DataType::Date32);
        assert_eq!(parse("ARRAY<STRING>"), DataType::new_list(DataType::Utf8View, true));
    }

    #[test]
    fn printed_types_parse_back_to_the_same_type() {
        for sql in [
            "BOOLEAN",
            "SMALLINT",
            "BIGINT",
            "FLOAT",
            "DOUBLE",
            "DECIMAL(18, 4)",
            "STRING",
            "DATE",
            "TIMESTAMP",
            "ARRAY<BIGINT>",
        ] {
            let arrow = parse(sql);
            assert_eq!(parse(&to_sql(&arrow)), arrow, "{sql}");
        }
    }
}
