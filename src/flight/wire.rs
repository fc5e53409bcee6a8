//! What goes on the wire: types every Flight SQL client reads, and self-contained tickets and
//! statement handles, so a client may fetch from any lakegate server over the same catalog.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Schema, SchemaRef};
use datafusion::arrow::ipc::reader::StreamReader;
use datafusion::arrow::ipc::writer::StreamWriter;
use datafusion::common::{ParamValues, ScalarValue};
use serde::{Deserialize, Serialize};
use tonic::Status;

/// The type a client receives for `data_type`: view and dictionary types are sent as their
/// plain forms, which older readers (Superset's driver among them) understand. Time zones
/// stay as they are.
pub(crate) fn wire_type(data_type: &DataType) -> DataType {
    match data_type {
        DataType::Utf8View => DataType::Utf8,
        DataType::BinaryView => DataType::Binary,
        DataType::Dictionary(_, values) => wire_type(values),
        DataType::List(f) | DataType::ListView(f) => DataType::List(wire_field(f)),
        DataType::LargeList(f) | DataType::LargeListView(f) => DataType::LargeList(wire_field(f)),
        DataType::FixedSizeList(f, n) => DataType::FixedSizeList(wire_field(f), *n),
        DataType::Struct(fields) => DataType::Struct(fields.iter().map(wire_field).collect()),
        DataType::Map(f, sorted) => DataType::Map(wire_field(f), *sorted),
        other => other.clone(),
    }
}

fn wire_field(field: &FieldRef) -> FieldRef {
    Arc::new(field.as_ref().clone().with_data_type(wire_type(field.data_type())))
}

pub(crate) fn wire_schema(schema: &Schema) -> SchemaRef {
    Arc::new(Schema::new_with_metadata(
        schema.fields().iter().map(wire_field).collect::<Vec<_>>(),
        schema.metadata().clone(),
    ))
}

/// `batch` with its columns cast to `schema` (a [`wire_schema`]).
pub(crate) fn to_wire(batch: &RecordBatch, schema: &SchemaRef) -> datafusion::error::Result<RecordBatch> {
    let columns = batch
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(column, field)| {
            if column.data_type() == field.data_type() {
                Ok(Arc::clone(column))
            } else {
                cast(column, field.data_type())
            }
        })
        .collect::<Result<Vec<ArrayRef>, _>>()?;
    Ok(RecordBatch::try_new(Arc::clone(schema), columns)?)
}

/// A ticket or statement handle: the SQL and its bound parameters, or the rows of a statement
/// that already ran (DDL, writes, SHOW ...), all in the bytes themselves.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Handle {
    /// `id` names a running query for cancellation; `params` are the values bound to its
    /// placeholders ([`encode_parameters`]), if any.
    Query {
        id: String,
        sql: String,
        params: Option<String>,
    },
    Rows {
        ipc: String,
    },
}

impl Handle {
    pub(crate) fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, Status> {
        serde_json::from_slice(bytes)
            .map_err(|_| Status::invalid_argument("unknown ticket or statement handle: it was not made by lakegate"))
    }
}

/// Batches as hex of an IPC stream (small results only: the rows of commands, parameters).
pub(crate) fn batches_to_hex(schema: &SchemaRef, batches: &[RecordBatch]) -> datafusion::error::Result<String> {
    let mut bytes = Vec::new();
    let mut writer = StreamWriter::try_new(&mut bytes, schema)?;
    for batch in batches {
        writer.write(batch)?;
    }
    writer.finish()?;
    drop(writer);
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

pub(crate) fn batches_from_hex(hex: &str) -> Result<(SchemaRef, Vec<RecordBatch>), Status> {
    let bad = || Status::invalid_argument("corrupt ticket");
    let bytes = (0..hex.len())
        .step_by(2)
        .map(|i| hex.get(i..i + 2).and_then(|b| u8::from_str_radix(b, 16).ok()).ok_or_else(bad))
        .collect::<Result<Vec<u8>, _>>()?;
    let reader = StreamReader::try_new(std::io::Cursor::new(bytes), None).map_err(|_| bad())?;
    let schema = reader.schema();
    let batches = reader.collect::<Result<Vec<_>, _>>().map_err(|_| bad())?;
    Ok((schema, batches))
}

/// The values of row `row` of a bound parameter batch, for the placeholders `$1`, `$2`... in
/// column order. They are bound into the plan as typed values, never written into SQL text.
/// Union columns (as some drivers send) are unwrapped to the value they hold.
///
/// # Errors
/// A value arrow cannot read as a scalar.
pub(crate) fn parameter_values(batch: &RecordBatch, row: usize) -> crate::Result<ParamValues> {
    let values = batch
        .columns()
        .iter()
        .map(|column| match column.data_type() {
            DataType::Union(_, _) => ScalarValue::try_from_array(column.as_union().value(row).as_ref(), 0),
            _ => ScalarValue::try_from_array(column.as_ref(), row),
        })
        .collect::<datafusion::error::Result<Vec<_>>>()?;
    Ok(ParamValues::from(values))
}

/// One row of parameters as it travels in a handle (the hex of a one-row IPC stream).
pub(crate) fn encode_parameters(batch: &RecordBatch, row: usize) -> crate::Result<String> {
    let one = batch.slice(row, 1);
    Ok(batches_to_hex(&one.schema(), std::slice::from_ref(&one))?)
}

/// The values of [`encode_parameters`]' output.
pub(crate) fn decode_parameters(hex: &str) -> Result<ParamValues, Status> {
    let (_, batches) = batches_from_hex(hex)?;
    let batch =
        batches.first().ok_or_else(|| Status::invalid_argument("corrupt statement handle: no parameter row"))?;
    parameter_values(batch, 0).map_err(|e| Status::invalid_argument(format!("corrupt statement handle: {e}")))
}

/// The parameter schema of a statement: `$1`, `$2`... in order, with the types DataFusion
/// infers (text when it cannot tell, so drivers can still bind a value).
pub(crate) fn parameter_schema(types: &std::collections::HashMap<String, Option<DataType>>) -> Schema {
    let mut names: Vec<&String> = types.keys().collect();
    names.sort_by_key(|n| n.trim_start_matches('$').parse::<usize>().unwrap_or(usize::MAX));
    Schema::new(
        names
            .into_iter()
            .map(|n| Field::new(n, types[n].as_ref().map(wire_type).unwrap_or(DataType::Utf8), true))
            .collect::<Vec<_>>(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{DictionaryArray, Int32Array, StringViewArray};
    use datafusion::arrow::datatypes::Int16Type;

    #[test]
    fn views_and_dictionaries_go_out_plain_and_time_zones_stay() {
        let schema = Schema::new(vec![
            Field::new("s", DataType::Utf8View, true),
            Field::new("d", DataType::Dictionary(Box::new(DataType::Int16), Box::new(DataType::Utf8)), true),
            Field::new("l", DataType::List(Arc::new(Field::new("item", DataType::Utf8View, true))), true),
            Field::new(
                "t",
                DataType::Timestamp(datafusion::arrow::datatypes::TimeUnit::Microsecond, Some("UTC".into())),
                true,
            ),
        ]);
        let wire = wire_schema(&schema);
        assert_eq!(wire.field(0).data_type(), &DataType::Utf8);
        assert_eq!(wire.field(1).data_type(), &DataType::Utf8);
        assert_eq!(wire.field(2).data_type(), &DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))));
        assert_eq!(wire.field(3).data_type(), schema.field(3).data_type());
    }

    #[test]
    fn batches_round_trip_through_a_ticket() {
        let schema = Arc::new(Schema::new(vec![Field::new("a", DataType::Int32, false)]));
        let batch =
            RecordBatch::try_new(Arc::clone(&schema), vec![Arc::new(Int32Array::from(vec![1, 2]))]).expect("batch");
        let hex = batches_to_hex(&schema, std::slice::from_ref(&batch)).expect("encode");
        let (decoded_schema, batches) = batches_from_hex(&hex).expect("decode");
        assert_eq!(decoded_schema, schema);
        assert_eq!(batches, vec![batch]);
        assert!(batches_from_hex("zz").is_err());
    }

    #[test]
    fn parameters_travel_as_typed_values() {
        let schema =
            Arc::new(Schema::new(vec![Field::new("a", DataType::Int32, true), Field::new("b", DataType::Utf8, true)]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int32Array::from(vec![Some(7), None])),
                Arc::new(datafusion::arrow::array::StringArray::from(vec!["it's", "\\' OR 1=1 --"])),
            ],
        )
        .expect("batch");
        let values = decode_parameters(&encode_parameters(&batch, 1).expect("encode")).expect("decode");
        let ParamValues::List(values) = values else { panic!("positional values") };
        let values: Vec<ScalarValue> = values.into_iter().map(|v| v.value).collect();
        assert_eq!(values, [ScalarValue::Int32(None), ScalarValue::Utf8(Some("\\' OR 1=1 --".into()))]);
    }

    #[test]
    fn wire_batches_cast_their_columns() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("s", DataType::Utf8View, true),
            Field::new("d", DataType::Dictionary(Box::new(DataType::Int16), Box::new(DataType::Utf8)), true),
        ]));
        let dict: DictionaryArray<Int16Type> = vec!["x", "y"].into_iter().collect();
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![Arc::new(StringViewArray::from(vec!["a", "b"])), Arc::new(dict)],
        )
        .expect("batch");
        let wire = wire_schema(&schema);
        let out = to_wire(&batch, &wire).expect("cast");
        assert_eq!(out.column(1).as_string::<i32>().value(1), "y");
    }
}
