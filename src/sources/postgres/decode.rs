//! PostgreSQL's binary wire format, decoded straight into Arrow builders.
//!
//! Values arrive either as rows of a `COPY ... TO STDOUT (FORMAT binary)` stream or as the
//! fields of binary-format result rows; both carry each field as its binary send format,
//! which [`Decoder::push`] appends to the column's builder.

use std::sync::Arc;

use bytes::{Buf, BytesMut};
use datafusion::arrow::array::builder::NullBufferBuilder;
use datafusion::arrow::array::{
    ArrayRef, BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder, Decimal256Builder, Float32Builder,
    Float64Builder, Int16Builder, Int32Builder, Int64Builder, IntervalMonthDayNanoBuilder, ListArray, StringBuilder,
    Time64MicrosecondBuilder, TimestampMicrosecondBuilder,
};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::datatypes::{DataType, FieldRef, IntervalMonthDayNano, IntervalUnit, TimeUnit, i256};
use datafusion::error::{DataFusionError, Result as DFResult};

/// Days and microseconds from 1970-01-01 (Arrow's epoch) to 2000-01-01 (PostgreSQL's).
const EPOCH_DAYS: i32 = 10_957;
const EPOCH_MICROS: i64 = 946_684_800_000_000;

fn bad(what: &str) -> DataFusionError {
    DataFusionError::Execution(format!("malformed {what} value from the database"))
}

/// A `±infinity` date or time stamp, which no Arrow value stands for.
fn infinite(what: &str, sign: &str) -> DataFusionError {
    DataFusionError::Execution(format!(
        "{sign}infinity is not a {what} lakegate can represent; filter it out, or read a view that maps it to NULL"
    ))
}

fn exact<const N: usize>(raw: &[u8], what: &str) -> DFResult<[u8; N]> {
    raw.try_into().map_err(|_| bad(what))
}

/// One column's builder, for the Arrow type the column is read as.
#[derive(Debug)]
pub(crate) enum Decoder {
    Int16(Int16Builder),
    Int32(Int32Builder),
    Int64(Int64Builder),
    Float32(Float32Builder),
    Float64(Float64Builder),
    Boolean(BooleanBuilder),
    Decimal128(Decimal128Builder, i8),
    Decimal256(Decimal256Builder, i8),
    Utf8(StringBuilder),
    Binary(BinaryBuilder),
    Date32(Date32Builder),
    Time64(Time64MicrosecondBuilder),
    Timestamp(TimestampMicrosecondBuilder),
    Interval(IntervalMonthDayNanoBuilder),
    List { field: FieldRef, offsets: Vec<i32>, nulls: NullBufferBuilder, values: Box<Decoder> },
}

impl Decoder {
    /// # Errors
    /// A type [`super::schema::wire_type`] would not read (checked there first).
    pub(crate) fn new(data_type: &DataType, capacity: usize) -> DFResult<Self> {
        Ok(match data_type {
            DataType::Int16 => Self::Int16(Int16Builder::with_capacity(capacity)),
            DataType::Int32 => Self::Int32(Int32Builder::with_capacity(capacity)),
            DataType::Int64 => Self::Int64(Int64Builder::with_capacity(capacity)),
            DataType::Float32 => Self::Float32(Float32Builder::with_capacity(capacity)),
            DataType::Float64 => Self::Float64(Float64Builder::with_capacity(capacity)),
            DataType::Boolean => Self::Boolean(BooleanBuilder::with_capacity(capacity)),
            DataType::Decimal128(p, s) => {
                Self::Decimal128(Decimal128Builder::with_capacity(capacity).with_precision_and_scale(*p, *s)?, *s)
            }
            DataType::Decimal256(p, s) => {
                Self::Decimal256(Decimal256Builder::with_capacity(capacity).with_precision_and_scale(*p, *s)?, *s)
            }
            DataType::Utf8 => Self::Utf8(StringBuilder::with_capacity(capacity, capacity * 16)),
            DataType::Binary => Self::Binary(BinaryBuilder::with_capacity(capacity, capacity * 16)),
            DataType::Date32 => Self::Date32(Date32Builder::with_capacity(capacity)),
            DataType::Time64(TimeUnit::Microsecond) => Self::Time64(Time64MicrosecondBuilder::with_capacity(capacity)),
            DataType::Timestamp(TimeUnit::Microsecond, tz) => {
                Self::Timestamp(TimestampMicrosecondBuilder::with_capacity(capacity).with_timezone_opt(tz.clone()))
            }
            DataType::Interval(IntervalUnit::MonthDayNano) => {
                Self::Interval(IntervalMonthDayNanoBuilder::with_capacity(capacity))
            }
            DataType::List(field) => Self::List {
                field: Arc::clone(field),
                offsets: {
                    let mut offsets = Vec::with_capacity(capacity + 1);
                    offsets.push(0);
                    offsets
                },
                nulls: NullBufferBuilder::new(capacity),
                values: Box::new(Self::new(field.data_type(), capacity)?),
            },
            other => return Err(DataFusionError::NotImplemented(format!("reading {other} from PostgreSQL"))),
        })
    }

    /// Appends one value in PostgreSQL's binary send format (`None` is NULL).
    ///
    /// # Errors
    /// A value whose bytes do not fit the type, a non-UTF-8 string, or a NaN/infinite value
    /// that Arrow cannot hold.
    pub(crate) fn push(&mut self, raw: Option<&[u8]>) -> DFResult<()> {
        let Some(raw) = raw else {
            self.push_null();
            return Ok(());
        };
        match self {
            Self::Int16(b) => b.append_value(i16::from_be_bytes(exact(raw, "int2")?)),
            Self::Int32(b) => b.append_value(i32::from_be_bytes(exact(raw, "int4")?)),
            Self::Int64(b) => b.append_value(i64::from_be_bytes(exact(raw, "int8")?)),
            Self::Float32(b) => b.append_value(f32::from_be_bytes(exact(raw, "float4")?)),
            Self::Float64(b) => b.append_value(f64::from_be_bytes(exact(raw, "float8")?)),
            Self::Boolean(b) => b.append_value(exact::<1>(raw, "bool")?[0] != 0),
            Self::Decimal128(b, scale) => {
                let value =
                    numeric(raw, *scale)?.to_i128().ok_or_else(|| bad("numeric (too large for DECIMAL(38))"))?;
                b.append_value(value);
            }
            Self::Decimal256(b, scale) => b.append_value(numeric(raw, *scale)?),
            Self::Utf8(b) => b.append_value(std::str::from_utf8(raw).map_err(|_| bad("text (not UTF-8)"))?),
            Self::Binary(b) => b.append_value(raw),
            Self::Date32(b) => {
                let days = i32::from_be_bytes(exact(raw, "date")?);
                // PostgreSQL sends ±infinity as the extreme values; -infinity would otherwise
                // pass as a real (if ancient) date.
                let days = match days {
                    i32::MAX => return Err(infinite("date", "")),
                    i32::MIN => return Err(infinite("date", "-")),
                    days => days.checked_add(EPOCH_DAYS).ok_or_else(|| bad("date"))?,
                };
                b.append_value(days);
            }
            Self::Time64(b) => b.append_value(i64::from_be_bytes(exact(raw, "time")?)),
            Self::Timestamp(b) => {
                let micros = i64::from_be_bytes(exact(raw, "timestamp")?);
                let micros = match micros {
                    i64::MAX => return Err(infinite("timestamp", "")),
                    i64::MIN => return Err(infinite("timestamp", "-")),
                    micros => micros.checked_add(EPOCH_MICROS).ok_or_else(|| bad("timestamp"))?,
                };
                b.append_value(micros);
            }
            Self::Interval(b) => {
                let raw: [u8; 16] = exact(raw, "interval")?;
                let micros = i64::from_be_bytes(raw[..8].try_into().map_err(|_| bad("interval"))?);
                let days = i32::from_be_bytes(raw[8..12].try_into().map_err(|_| bad("interval"))?);
                let months = i32::from_be_bytes(raw[12..].try_into().map_err(|_| bad("interval"))?);
                b.append_value(IntervalMonthDayNano::new(months, days, micros.saturating_mul(1000)));
            }
            Self::List { offsets, nulls, values, .. } => {
                let count = array_elements(raw, values)?;
                let last = offsets.last().copied().unwrap_or(0);
                offsets.push(last + i32::try_from(count).map_err(|_| bad("array (too long)"))?);
                nulls.append_non_null();
            }
        }
        Ok(())
    }

    fn push_null(&mut self) {
        match self {
            Self::Int16(b) => b.append_null(),
            Self::Int32(b) => b.append_null(),
            Self::Int64(b) => b.append_null(),
            Self::Float32(b) => b.append_null(),
            Self::Float64(b) => b.append_null(),
            Self::Boolean(b) => b.append_null(),
            Self::Decimal128(b, _) => b.append_null(),
            Self::Decimal256(b, _) => b.append_null(),
            Self::Utf8(b) => b.append_null(),
            Self::Binary(b) => b.append_null(),
            Self::Date32(b) => b.append_null(),
            Self::Time64(b) => b.append_null(),
            Self::Timestamp(b) => b.append_null(),
            Self::Interval(b) => b.append_null(),
            Self::List { offsets, nulls, .. } => {
                offsets.push(offsets.last().copied().unwrap_or(0));
                nulls.append_null();
            }
        }
    }

    /// The values appended since the last call, as one array; the builder starts over.
    pub(crate) fn finish(&mut self) -> ArrayRef {
        match self {
            Self::Int16(b) => Arc::new(b.finish()),
            Self::Int32(b) => Arc::new(b.finish()),
            Self::Int64(b) => Arc::new(b.finish()),
            Self::Float32(b) => Arc::new(b.finish()),
            Self::Float64(b) => Arc::new(b.finish()),
            Self::Boolean(b) => Arc::new(b.finish()),
            Self::Decimal128(b, _) => Arc::new(b.finish()),
            Self::Decimal256(b, _) => Arc::new(b.finish()),
            Self::Utf8(b) => Arc::new(b.finish()),
            Self::Binary(b) => Arc::new(b.finish()),
            Self::Date32(b) => Arc::new(b.finish()),
            Self::Time64(b) => Arc::new(b.finish()),
            Self::Timestamp(b) => Arc::new(b.finish()),
            Self::Interval(b) => Arc::new(b.finish()),
            Self::List { field, offsets, nulls, values } => {
                let offsets = OffsetBuffer::new(std::mem::replace(offsets, vec![0]).into());
                Arc::new(ListArray::new(Arc::clone(field), offsets, values.finish(), nulls.finish()))
            }
        }
    }
}

/// Appends the elements of a binary array value to `values`; returns how many there were.
/// Multi-dimensional arrays are read in row-major order as one flat list.
fn array_elements(raw: &[u8], values: &mut Decoder) -> DFResult<usize> {
    let mut raw = raw;
    if raw.len() < 12 {
        return Err(bad("array"));
    }
    let dimensions = raw.get_i32();
    let _has_nulls = raw.get_i32();
    let _element_type = raw.get_u32();
    let mut count: usize = if dimensions == 0 { 0 } else { 1 };
    for _ in 0..dimensions {
        if raw.len() < 8 {
            return Err(bad("array"));
        }
        let length = usize::try_from(raw.get_i32()).map_err(|_| bad("array"))?;
        let _lower_bound = raw.get_i32();
        count = count.checked_mul(length).ok_or_else(|| bad("array"))?;
    }
    for _ in 0..count {
        let (value, rest) = field(raw)?;
        values.push(value)?;
        raw = rest;
    }
    Ok(count)
}

/// One length-prefixed field (`-1` is NULL) and what follows it.
fn field(raw: &[u8]) -> DFResult<(Option<&[u8]>, &[u8])> {
    let (length, rest) = raw.split_first_chunk::<4>().ok_or_else(|| bad("field"))?;
    match i32::from_be_bytes(*length) {
        -1 => Ok((None, rest)),
        n => {
            let n = usize::try_from(n).map_err(|_| bad("field"))?;
            if rest.len() < n {
                return Err(bad("field"));
            }
            Ok((Some(&rest[..n]), &rest[n..]))
        }
    }
}

/// A binary `numeric` as an unscaled integer at `scale` (the database has already rounded it
/// to that scale, since columns are read through a cast).
fn numeric(raw: &[u8], scale: i8) -> DFResult<i256> {
    let mut header = raw.get(..8).ok_or_else(|| bad("numeric"))?;
    let digits = usize::try_from(header.get_i16()).map_err(|_| bad("numeric"))?;
    let weight = i32::from(header.get_i16());
    let sign = header.get_u16();
    match sign {
        0x0000 | 0x4000 => {}
        0xC000 => return Err(DataFusionError::Execution("a numeric column holds NaN, which a DECIMAL cannot".into())),
        _ => {
            return Err(DataFusionError::Execution(
                "a numeric column holds an infinity, which a DECIMAL cannot".into(),
            ));
        }
    }
    let mut body = raw.get(8..8 + 2 * digits).ok_or_else(|| bad("numeric"))?;
    let base = i256::from_i128(10_000);
    let mut value = i256::ZERO;
    for _ in 0..digits {
        let digit = i256::from_i128(i128::from(body.get_i16()));
        value = value.checked_mul(base).and_then(|v| v.checked_add(digit)).ok_or_else(|| bad("numeric (too large)"))?;
    }
    // `value` counts units of 10000^(weight + 1 - digits); rescale to 10^-scale.
    let shift = i32::from(scale) + 4 * (weight + 1 - digits as i32);
    let ten = i256::from_i128(10);
    let factor = ten.checked_pow(shift.unsigned_abs()).ok_or_else(|| bad("numeric (too large)"))?;
    value = if shift >= 0 { value.checked_mul(factor) } else { value.checked_div(factor) }
        .ok_or_else(|| bad("numeric (too large)"))?;
    Ok(if sign == 0x4000 { value.checked_neg().ok_or_else(|| bad("numeric"))? } else { value })
}

/// Reassembles `COPY ... (FORMAT binary)` output, which arrives in chunks of any size, into rows.
#[derive(Debug, Default)]
pub(crate) struct CopyReader {
    buffer: BytesMut,
    header_read: bool,
    finished: bool,
}

/// `PGCOPY\n\377\r\n\0`, then flags and the header extension length.
const COPY_SIGNATURE: &[u8] = b"PGCOPY\n\xff\r\n\0";

impl CopyReader {
    pub(crate) fn feed(&mut self, chunk: &[u8]) {
        self.buffer.extend_from_slice(chunk);
    }

    /// Decodes the next complete row into `columns`; false when more input is needed or the
    /// trailer was reached. A value's error goes through `in_column` with its column's
    /// position, so that it can name the column.
    ///
    /// # Errors
    /// A malformed stream or value.
    pub(crate) fn next_row(
        &mut self,
        columns: &mut [Decoder],
        in_column: impl Fn(usize, DataFusionError) -> DataFusionError,
    ) -> DFResult<bool> {
        if self.finished {
            return Ok(false);
        }
        if !self.header_read {
            if self.buffer.len() < COPY_SIGNATURE.len() + 8 {
                return Ok(false);
            }
            if !self.buffer.starts_with(COPY_SIGNATURE) {
                return Err(bad("COPY stream"));
            }
            let extension = u32::from_be_bytes(exact(&self.buffer[15..19], "COPY header")?) as usize;
            if self.buffer.len() < 19 + extension {
                return Ok(false);
            }
            self.buffer.advance(19 + extension);
            self.header_read = true;
        }
        let Some(count) = self.buffer.get(..2).map(|b| i16::from_be_bytes([b[0], b[1]])) else { return Ok(false) };
        if count == -1 {
            self.finished = true;
            return Ok(false);
        }
        if usize::try_from(count).ok() != Some(columns.len()) {
            return Err(DataFusionError::Execution(format!(
                "the database sent rows of {count} fields, expected {}",
                columns.len()
            )));
        }
        // Find the row's end before decoding anything, so a partial row is left for later.
        let mut end = 2;
        for _ in 0..count {
            let Some(length) = self.buffer.get(end..end + 4) else { return Ok(false) };
            end += 4 + usize::try_from(i32::from_be_bytes(exact(length, "field")?)).unwrap_or(0);
            if end > self.buffer.len() {
                return Ok(false);
            }
        }
        let mut rest = &self.buffer[2..end];
        for (i, column) in columns.iter_mut().enumerate() {
            let (value, tail) = field(rest)?;
            column.push(value).map_err(|e| in_column(i, e))?;
            rest = tail;
        }
        self.buffer.advance(end);
        Ok(true)
    }

    /// Whether the trailer was read (a stream that ends without it was cut off).
    pub(crate) fn finished(&self) -> bool {
        self.finished
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{Array, AsArray};
    use datafusion::arrow::datatypes::Decimal128Type;

    use super::*;

    /// `numeric` send format: digit count, weight, sign, display scale, base-10000 digits.
    fn numeric_bytes(weight: i16, negative: bool, digits: &[i16]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend((digits.len() as i16).to_be_bytes());
        out.extend(weight.to_be_bytes());
        out.extend(if negative { 0x4000u16 } else { 0 }.to_be_bytes());
        out.extend(4u16.to_be_bytes());
        for d in digits {
            out.extend(d.to_be_bytes());
        }
        out
    }

    #[test]
    fn numerics_rescale_exactly() {
        // 12345.6789 = [1, 2345, 6789] with weight 1.
        assert_eq!(numeric(&numeric_bytes(1, false, &[1, 2345, 6789]), 4).expect("fits"), i256::from_i128(123_456_789));
        // -0.5 = [5000] with weight -1, at scale 2 → -50.
        assert_eq!(numeric(&numeric_bytes(-1, true, &[5000]), 2).expect("fits"), i256::from_i128(-50));
        // 20000 = [2] with weight 1, at scale 0.
        assert_eq!(numeric(&numeric_bytes(1, false, &[2]), 0).expect("fits"), i256::from_i128(20_000));
        let nan = [0, 0, 0, 0, 0xC0, 0, 0, 0];
        assert!(numeric(&nan, 2).unwrap_err().to_string().contains("NaN"));
    }

    #[test]
    fn infinite_dates_and_time_stamps_are_errors_either_way() {
        let mut date = Decoder::new(&DataType::Date32, 1).expect("date");
        let mut ts = Decoder::new(&DataType::Timestamp(TimeUnit::Microsecond, None), 1).expect("timestamp");
        for (is_date, raw, sign) in [
            (true, i32::MAX.to_be_bytes().to_vec(), ""),
            (true, i32::MIN.to_be_bytes().to_vec(), "-"),
            (false, i64::MAX.to_be_bytes().to_vec(), ""),
            (false, i64::MIN.to_be_bytes().to_vec(), "-"),
        ] {
            let decoder = if is_date { &mut date } else { &mut ts };
            let err = decoder.push(Some(&raw)).expect_err("infinity has no Arrow value").to_string();
            assert!(err.contains(&format!(" {sign}infinity is not a ")), "{err}");
        }
        date.push(Some(&(-1i32).to_be_bytes())).expect("1999-12-31");
        assert_eq!(date.finish().as_primitive::<datafusion::arrow::datatypes::Date32Type>().value(0), EPOCH_DAYS - 1);
    }

    #[test]
    fn copy_rows_may_arrive_split_anywhere() {
        let mut stream = COPY_SIGNATURE.to_vec();
        stream.extend([0, 0, 0, 0, 0, 0, 0, 0]);
        for (id, amount) in [(Some(7i32), numeric_bytes(0, false, &[12])), (None, numeric_bytes(0, true, &[3]))] {
            stream.extend(2i16.to_be_bytes());
            match id {
                Some(id) => {
                    stream.extend(4i32.to_be_bytes());
                    stream.extend(id.to_be_bytes());
                }
                None => stream.extend((-1i32).to_be_bytes()),
            }
            stream.extend((amount.len() as i32).to_be_bytes());
            stream.extend(amount);
        }
        stream.extend((-1i16).to_be_bytes());
        let mut columns = vec![
            Decoder::new(&DataType::Int32, 2).expect("int"),
            Decoder::new(&DataType::Decimal128(10, 2), 2).expect("dec"),
        ];
        let mut reader = CopyReader::default();
        let mut rows = 0;
        for byte in stream.chunks(3) {
            reader.feed(byte);
            while reader.next_row(&mut columns, |_, e| e).expect("well formed") {
                rows += 1;
            }
        }
        assert!(reader.finished());
        assert_eq!(rows, 2);
        let ids = columns[0].finish();
        assert_eq!((ids.len(), ids.null_count()), (2, 1));
        let amounts = columns[1].finish();
        assert_eq!(amounts.as_primitive::<Decimal128Type>().values().to_vec(), vec![1200, -300]);
    }
}
