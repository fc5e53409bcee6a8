//! CQL types to Arrow types, table schemas from cluster metadata, and CQL values to Arrow arrays.
//!
//! The type map (documented in the README):
//!
//! | CQL                                  | Arrow                                          |
//! |--------------------------------------|------------------------------------------------|
//! | ascii, text, varchar                 | Utf8                                           |
//! | tinyint, smallint, int, bigint       | Int8, Int16, Int32, Int64                      |
//! | counter                              | Int64                                          |
//! | varint, decimal                      | Utf8, the exact decimal text (no fixed scale in CQL) |
//! | float, double                        | Float32, Float64                               |
//! | boolean                              | Boolean                                        |
//! | blob                                 | Binary                                         |
//! | uuid, timeuuid                       | Utf8, canonical lower-case hyphenated form     |
//! | inet                                 | Utf8                                           |
//! | timestamp                            | Timestamp(ms, "UTC")                           |
//! | date                                 | Date32                                         |
//! | time                                 | Time64(ns)                                     |
//! | duration                             | Interval(MonthDayNano)                         |
//! | list<T>, set<T> (frozen or not)      | List(T)                                        |
//! | map<K, V> (frozen or not)            | Map(K, V)                                      |
//! | tuple<A, B, ...>                     | Struct(_1 A, _2 B, ...), as Spark names them   |
//! | user-defined type                    | Struct of its fields                           |
//! | vector<T, n>                         | FixedSizeList(T, n)                            |

use std::net::IpAddr;
use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, BinaryBuilder, BooleanBuilder, Date32Builder, FixedSizeListArray, Float32Builder, Float64Builder,
    Int8Builder, Int16Builder, Int32Builder, Int64Builder, IntervalMonthDayNanoBuilder, ListArray, MapArray,
    StringBuilder, StructArray, Time64NanosecondBuilder, TimestampMillisecondBuilder, new_null_array,
};
use datafusion::arrow::buffer::{NullBuffer, OffsetBuffer};
use datafusion::arrow::datatypes::{DataType, Field, Fields, IntervalMonthDayNano, IntervalUnit, TimeUnit};
use scylla::cluster::metadata::{CollectionType, ColumnType, NativeType, Table};
use scylla::value::{CqlValue, CqlVarint};

use super::{Error, Result};

/// The Arrow type of a CQL type, per the table above.
///
/// # Errors
/// [`Error::UnsupportedType`] for a type this map does not cover (none today).
pub(crate) fn arrow_type(column: &str, typ: &ColumnType<'_>) -> Result<DataType> {
    Ok(match typ {
        ColumnType::Native(native) => match native {
            NativeType::Ascii | NativeType::Text => DataType::Utf8,
            NativeType::TinyInt => DataType::Int8,
            NativeType::SmallInt => DataType::Int16,
            NativeType::Int => DataType::Int32,
            NativeType::BigInt | NativeType::Counter => DataType::Int64,
            NativeType::Varint | NativeType::Decimal => DataType::Utf8,
            NativeType::Float => DataType::Float32,
            NativeType::Double => DataType::Float64,
            NativeType::Boolean => DataType::Boolean,
            NativeType::Blob => DataType::Binary,
            NativeType::Uuid | NativeType::Timeuuid | NativeType::Inet => DataType::Utf8,
            NativeType::Timestamp => DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            NativeType::Date => DataType::Date32,
            NativeType::Time => DataType::Time64(TimeUnit::Nanosecond),
            NativeType::Duration => DataType::Interval(IntervalUnit::MonthDayNano),
            other => return Err(Error::UnsupportedType { column: column.to_owned(), cql: format!("{other:?}") }),
        },
        ColumnType::Collection { typ, .. } => match typ {
            CollectionType::List(item) | CollectionType::Set(item) => {
                DataType::new_list(arrow_type(column, item)?, true)
            }
            CollectionType::Map(key, value) => map_type(arrow_type(column, key)?, arrow_type(column, value)?),
            other => return Err(Error::UnsupportedType { column: column.to_owned(), cql: format!("{other:?}") }),
        },
        ColumnType::Vector { typ, dimensions } => {
            DataType::new_fixed_size_list(arrow_type(column, typ)?, i32::from(*dimensions), true)
        }
        ColumnType::Tuple(items) => DataType::Struct(
            items
                .iter()
                .enumerate()
                .map(|(i, t)| Ok(Field::new(format!("_{}", i + 1), arrow_type(column, t)?, true)))
                .collect::<Result<Fields>>()?,
        ),
        ColumnType::UserDefinedType { definition, .. } => DataType::Struct(
            definition
                .field_types
                .iter()
                .map(|(name, t)| Ok(Field::new(name.as_ref(), arrow_type(column, t)?, true)))
                .collect::<Result<Fields>>()?,
        ),
        other => return Err(Error::UnsupportedType { column: column.to_owned(), cql: format!("{other:?}") }),
    })
}

fn map_type(key: DataType, value: DataType) -> DataType {
    let entries = Fields::from(vec![Field::new("key", key, false), Field::new("value", value, true)]);
    DataType::Map(Arc::new(Field::new("entries", DataType::Struct(entries), false)), false)
}

/// The table's columns in declared order: partition key, clustering key, then the other
/// columns by name, as `system_schema.columns` lists them (the driver's map is unordered).
pub(crate) fn ordered_columns(table: &Table) -> Vec<&str> {
    let keys: Vec<&str> = table.partition_key.iter().chain(&table.clustering_key).map(String::as_str).collect();
    let mut rest: Vec<&str> = table.columns.keys().map(String::as_str).filter(|c| !keys.contains(c)).collect();
    rest.sort_unstable();
    keys.into_iter().chain(rest).collect()
}

/// One column of a page, as an Arrow array of `data_type`.
///
/// # Errors
/// [`Error::Conversion`] when a value does not fit the column's type (a schema changed
/// under a registered table).
pub(crate) fn to_array(column: &str, values: &[Option<&CqlValue>], data_type: &DataType) -> Result<ArrayRef> {
    // An empty value of a non-text type means no value: NULL.
    let values: Vec<Option<&CqlValue>> = values.iter().map(|v| v.filter(|v| !matches!(v, CqlValue::Empty))).collect();
    let mismatch = |value: &CqlValue| Error::Conversion {
        column: column.to_owned(),
        value: value.to_string(),
        data_type: data_type.to_string(),
    };
    macro_rules! primitive {
        ($builder:expr, $($pattern:pat => $value:expr),+ $(,)?) => {{
            let mut builder = $builder;
            for value in &values {
                match value {
                    None => builder.append_null(),
                    $(Some($pattern) => builder.append_value($value),)+
                    Some(other) => return Err(mismatch(other)),
                }
            }
            Arc::new(builder.finish()) as ArrayRef
        }};
    }
    let array: ArrayRef = match data_type {
        DataType::Int8 => primitive!(Int8Builder::with_capacity(values.len()), CqlValue::TinyInt(v) => *v),
        DataType::Int16 => primitive!(Int16Builder::with_capacity(values.len()), CqlValue::SmallInt(v) => *v),
        DataType::Int32 => primitive!(Int32Builder::with_capacity(values.len()), CqlValue::Int(v) => *v),
        DataType::Int64 => {
            primitive!(Int64Builder::with_capacity(values.len()), CqlValue::BigInt(v) => *v, CqlValue::Counter(c) => c.0)
        }
        DataType::Float32 => primitive!(Float32Builder::with_capacity(values.len()), CqlValue::Float(v) => *v),
        DataType::Float64 => primitive!(Float64Builder::with_capacity(values.len()), CqlValue::Double(v) => *v),
        DataType::Boolean => primitive!(BooleanBuilder::with_capacity(values.len()), CqlValue::Boolean(v) => *v),
        DataType::Binary => primitive!(BinaryBuilder::new(), CqlValue::Blob(v) => v),
        DataType::Date32 => primitive!(Date32Builder::with_capacity(values.len()), CqlValue::Date(d) => date32(d.0)),
        DataType::Time64(TimeUnit::Nanosecond) => {
            primitive!(Time64NanosecondBuilder::with_capacity(values.len()), CqlValue::Time(t) => t.0)
        }
        DataType::Timestamp(TimeUnit::Millisecond, tz) => primitive!(
            TimestampMillisecondBuilder::with_capacity(values.len()).with_timezone_opt(tz.clone()),
            CqlValue::Timestamp(t) => t.0
        ),
        DataType::Interval(IntervalUnit::MonthDayNano) => primitive!(
            IntervalMonthDayNanoBuilder::with_capacity(values.len()),
            CqlValue::Duration(d) => IntervalMonthDayNano::new(d.months, d.days, d.nanoseconds)
        ),
        DataType::Utf8 => {
            let mut builder = StringBuilder::with_capacity(values.len(), values.len() * 16);
            for value in &values {
                match value {
                    None => builder.append_null(),
                    Some(CqlValue::Text(s) | CqlValue::Ascii(s)) => builder.append_value(s),
                    Some(CqlValue::Uuid(u)) => builder.append_value(u.hyphenated().to_string()),
                    Some(CqlValue::Timeuuid(u)) => builder.append_value(u.to_string()),
                    Some(CqlValue::Inet(ip)) => builder.append_value(inet(ip)),
                    Some(CqlValue::Varint(v)) => builder.append_value(varint(v.clone())),
                    Some(CqlValue::Decimal(d)) => {
                        let (digits, scale) = d.as_signed_be_bytes_slice_and_exponent();
                        builder.append_value(decimal(&varint(CqlVarint::from_signed_bytes_be_slice(digits)), scale));
                    }
                    Some(other) => return Err(mismatch(other)),
                }
            }
            Arc::new(builder.finish())
        }
        DataType::List(item) => {
            let (offsets, children, nulls) = flatten(column, &values, |v| match v {
                CqlValue::List(items) | CqlValue::Set(items) => Some(items.iter().map(Some).collect()),
                _ => None,
            })?;
            let child = to_array(column, &children, item.data_type())?;
            Arc::new(ListArray::try_new(Arc::clone(item), offsets, child, nulls)?)
        }
        DataType::FixedSizeList(item, size) => {
            let (_, children, nulls) = flatten(column, &values, |v| match v {
                CqlValue::Vector(items) | CqlValue::List(items) => Some(items.iter().map(Some).collect()),
                _ => None,
            })?;
            // A null vector still takes `size` slots in the child array.
            let width = usize::try_from(*size).unwrap_or_default();
            let mut padded = Vec::with_capacity(values.len() * width);
            let mut rest = children.into_iter();
            for value in &values {
                if value.is_some() {
                    padded.extend(rest.by_ref().take(width));
                } else {
                    padded.extend(std::iter::repeat_n(None, width));
                }
            }
            let child = to_array(column, &padded, item.data_type())?;
            Arc::new(FixedSizeListArray::try_new(Arc::clone(item), *size, child, nulls)?)
        }
        DataType::Map(entries, ordered) => {
            let mut keys = Vec::new();
            let (offsets, items, nulls) = flatten(column, &values, |v| match v {
                CqlValue::Map(pairs) => Some(
                    pairs
                        .iter()
                        .map(|(k, v)| {
                            keys.push(Some(k));
                            Some(v)
                        })
                        .collect(),
                ),
                _ => None,
            })?;
            let DataType::Struct(fields) = entries.data_type() else {
                return Err(Error::Conversion {
                    column: column.to_owned(),
                    value: "map".into(),
                    data_type: data_type.to_string(),
                });
            };
            let children =
                vec![to_array(column, &keys, fields[0].data_type())?, to_array(column, &items, fields[1].data_type())?];
            let struct_array = StructArray::try_new(fields.clone(), children, None)?;
            Arc::new(MapArray::try_new(Arc::clone(entries), offsets, struct_array, nulls, *ordered)?)
        }
        DataType::Struct(fields) => {
            let mut columns: Vec<Vec<Option<&CqlValue>>> = vec![Vec::with_capacity(values.len()); fields.len()];
            for value in &values {
                match value {
                    None => columns.iter_mut().for_each(|c| c.push(None)),
                    Some(CqlValue::Tuple(items)) => {
                        for (i, c) in columns.iter_mut().enumerate() {
                            c.push(items.get(i).and_then(Option::as_ref));
                        }
                    }
                    Some(CqlValue::UserDefinedType { fields: values, .. }) => {
                        for (field, c) in fields.iter().zip(&mut columns) {
                            c.push(values.iter().find(|(n, _)| n == field.name()).and_then(|(_, v)| v.as_ref()));
                        }
                    }
                    Some(other) => return Err(mismatch(other)),
                }
            }
            let children = fields
                .iter()
                .zip(&columns)
                .map(|(f, c)| to_array(column, c, f.data_type()))
                .collect::<Result<Vec<_>>>()?;
            let nulls = NullBuffer::from(values.iter().map(Option::is_some).collect::<Vec<_>>());
            if fields.is_empty() {
                return Ok(new_null_array(data_type, values.len()));
            }
            Arc::new(StructArray::try_new(fields.clone(), children, Some(nulls))?)
        }
        other => {
            return Err(Error::Conversion {
                column: column.to_owned(),
                value: "any value".into(),
                data_type: other.to_string(),
            });
        }
    };
    Ok(array)
}

type Flattened<'a> = (OffsetBuffer<i32>, Vec<Option<&'a CqlValue>>, Option<NullBuffer>);

/// The offsets, concatenated items and validity of a column of collections.
fn flatten<'a>(
    column: &str,
    values: &[Option<&'a CqlValue>],
    mut items: impl FnMut(&'a CqlValue) -> Option<Vec<Option<&'a CqlValue>>>,
) -> Result<Flattened<'a>> {
    let mut lengths = Vec::with_capacity(values.len());
    let mut children = Vec::new();
    for value in values {
        match value {
            None => lengths.push(0),
            Some(v) => {
                let Some(mut these) = items(v) else {
                    return Err(Error::Conversion {
                        column: column.to_owned(),
                        value: v.to_string(),
                        data_type: "a collection".into(),
                    });
                };
                lengths.push(these.len());
                children.append(&mut these);
            }
        }
    }
    let nulls = NullBuffer::from(values.iter().map(Option::is_some).collect::<Vec<_>>());
    Ok((OffsetBuffer::from_lengths(lengths), children, Some(nulls)))
}

/// CQL dates count days from 2^31 = 1970-01-01; every CQL date fits Arrow's Date32.
fn date32(days: u32) -> i32 {
    (i64::from(days) - (1_i64 << 31)) as i32
}

fn inet(ip: &IpAddr) -> String {
    ip.to_string()
}

fn varint(v: CqlVarint) -> String {
    num_bigint::BigInt::from(v).to_string()
}

/// `unscaled × 10^-scale` written out in full, e.g. ("-12345", 2) → "-123.45".
fn decimal(unscaled: &str, scale: i32) -> String {
    let (sign, digits) = unscaled.strip_prefix('-').map_or(("", unscaled), |d| ("-", d));
    if scale <= 0 {
        let zeros = if digits == "0" { 0 } else { scale.unsigned_abs() as usize };
        return format!("{sign}{digits}{}", "0".repeat(zeros));
    }
    let scale = scale as usize;
    let padded = if digits.len() <= scale {
        format!("{}{digits}", "0".repeat(scale - digits.len() + 1))
    } else {
        digits.to_owned()
    };
    let (whole, fraction) = padded.split_at(padded.len() - scale);
    format!("{sign}{whole}.{fraction}")
}

#[cfg(test)]
mod tests {
    use lakegate_catalog::ColumnSpec;
    use scylla::value::{CqlDate, CqlDecimal, CqlDuration, CqlTime, CqlTimestamp};

    use super::*;

    fn native(t: NativeType) -> ColumnType<'static> {
        ColumnType::Native(t)
    }

    #[test]
    fn every_mapped_type_survives_the_catalog() {
        let list =
            ColumnType::Collection { frozen: false, typ: CollectionType::List(Box::new(native(NativeType::Int))) };
        let map = ColumnType::Collection {
            frozen: true,
            typ: CollectionType::Map(Box::new(native(NativeType::Text)), Box::new(list.clone())),
        };
        let tuple = ColumnType::Tuple(vec![native(NativeType::Int), native(NativeType::Timestamp)]);
        let vector = ColumnType::Vector { typ: Box::new(native(NativeType::Float)), dimensions: 3 };
        let types = [
            native(NativeType::Text),
            native(NativeType::Duration),
            native(NativeType::Time),
            native(NativeType::Timestamp),
            list,
            map,
            tuple,
            vector,
        ];
        for t in types {
            let data_type = arrow_type("c", &t).expect("mapped");
            let column = ColumnSpec::new("c", &data_type, true);
            assert_eq!(column.field().expect("parses back").data_type(), &data_type, "{}", column.data_type);
        }
    }

    #[test]
    fn decimals_are_written_out_exactly() {
        assert_eq!(decimal("-12345", 2), "-123.45");
        assert_eq!(decimal("5", 3), "0.005");
        assert_eq!(decimal("-5", 1), "-0.5");
        assert_eq!(decimal("12", -3), "12000");
        assert_eq!(decimal("0", 0), "0");
        let d = CqlDecimal::from_signed_be_bytes_and_exponent(vec![0xff, 0x85], 1);
        let array = to_array("d", &[Some(&CqlValue::Decimal(d))], &DataType::Utf8).expect("converts");
        assert_eq!(datafusion::arrow::util::display::array_value_to_string(&array, 0).expect("shows"), "-12.3");
    }

    #[test]
    fn scalars_convert_and_nulls_stay_null() {
        let values = [
            (CqlValue::Date(CqlDate((1 << 31) + 1)), DataType::Date32, "1970-01-02"),
            (CqlValue::Time(CqlTime(3_600_000_000_000)), DataType::Time64(TimeUnit::Nanosecond), "01:00:00"),
            (
                CqlValue::Timestamp(CqlTimestamp(86_400_000)),
                DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
                "1970-01-02T00:00:00Z",
            ),
            (
                CqlValue::Duration(CqlDuration { months: 1, days: 2, nanoseconds: 3 }),
                DataType::Interval(IntervalUnit::MonthDayNano),
                "1 mons 2 days 0.000000003 secs",
            ),
            (CqlValue::Varint(CqlVarint::from_signed_bytes_be(vec![0x01, 0x00])), DataType::Utf8, "256"),
        ];
        for (value, data_type, shown) in values {
            let array = to_array("c", &[Some(&value), None], &data_type).expect("converts");
            assert_eq!(datafusion::arrow::util::display::array_value_to_string(&array, 0).expect("shows"), shown);
            assert!(array.is_null(1));
        }
    }

    #[test]
    fn collections_nest() {
        let list = CqlValue::List(vec![CqlValue::Int(1), CqlValue::Int(2)]);
        let map = CqlValue::Map(vec![(CqlValue::Text("a".into()), list.clone())]);
        let data_type = map_type(DataType::Utf8, DataType::new_list(DataType::Int32, true));
        let array = to_array("m", &[Some(&map), None], &data_type).expect("converts");
        assert_eq!(datafusion::arrow::util::display::array_value_to_string(&array, 0).expect("shows"), "{a: [1, 2]}");
        assert!(array.is_null(1));
        let wrong = to_array("m", &[Some(&CqlValue::Int(1))], &data_type).unwrap_err().to_string();
        assert!(wrong.contains('m'), "{wrong}");
    }
}
