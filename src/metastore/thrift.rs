//! Thrift's binary protocol, as a Hive Metastore speaks it by default (strict messages over a
//! plain socket, no framing, no SASL), for the few calls lakegate makes.
//!
//! Values are decoded generically ([`Value`]) and read by field id, so a newer metastore's
//! extra fields are skipped rather than breaking the reader, and no generated code is needed.

use std::collections::BTreeMap;

use bytes::{Buf, BufMut, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A Thrift error: the transport, or a reply that is not Thrift.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ThriftError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("not a Thrift reply: {0}")]
    Protocol(String),
    #[error("the reply ends early")]
    Incomplete,
    /// The server could not run the call (`TApplicationException`), e.g. an unknown method.
    #[error("{0}")]
    Application(String),
}

type Result<T> = std::result::Result<T, ThriftError>;

const VERSION_1: u32 = 0x8001_0000;
const CALL: u8 = 1;
const REPLY: u8 = 2;
const EXCEPTION: u8 = 3;

/// A Thrift value, as the wire types have it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Bool(bool),
    Byte(i8),
    Double(f64),
    I16(i16),
    I32(i32),
    I64(i64),
    /// A `string` or `binary`.
    Bytes(Vec<u8>),
    Struct(Struct),
    Map(u8, u8, Vec<(Value, Value)>),
    /// A `list` or `set` of values of one wire type.
    List(u8, Vec<Value>),
}

/// A struct's fields by id.
pub(crate) type Struct = BTreeMap<i16, Value>;

impl Value {
    pub(crate) fn string(text: &str) -> Self {
        Self::Bytes(text.as_bytes().to_vec())
    }

    fn wire_type(&self) -> u8 {
        match self {
            Self::Bool(_) => 2,
            Self::Byte(_) => 3,
            Self::Double(_) => 4,
            Self::I16(_) => 6,
            Self::I32(_) => 8,
            Self::I64(_) => 10,
            Self::Bytes(_) => 11,
            Self::Struct(_) => 12,
            Self::Map(..) => 13,
            Self::List(..) => 15,
        }
    }

    pub(crate) fn as_str(&self) -> Option<&str> {
        match self {
            Self::Bytes(b) => std::str::from_utf8(b).ok(),
            _ => None,
        }
    }

    pub(crate) fn as_struct(&self) -> Option<&Struct> {
        match self {
            Self::Struct(s) => Some(s),
            _ => None,
        }
    }

    pub(crate) fn as_list(&self) -> &[Value] {
        match self {
            Self::List(_, items) => items,
            _ => &[],
        }
    }

    /// A `map<string,string>`; other entries are skipped.
    pub(crate) fn as_string_map(&self) -> BTreeMap<String, String> {
        match self {
            Self::Map(_, _, pairs) => {
                pairs.iter().filter_map(|(k, v)| Some((k.as_str()?.to_owned(), v.as_str()?.to_owned()))).collect()
            }
            _ => BTreeMap::new(),
        }
    }
}

fn write_value(out: &mut BytesMut, value: &Value) {
    match value {
        Value::Bool(b) => out.put_u8(u8::from(*b)),
        Value::Byte(b) => out.put_i8(*b),
        Value::Double(d) => out.put_f64(*d),
        Value::I16(i) => out.put_i16(*i),
        Value::I32(i) => out.put_i32(*i),
        Value::I64(i) => out.put_i64(*i),
        Value::Bytes(b) => {
            out.put_i32(i32::try_from(b.len()).unwrap_or(i32::MAX));
            out.put_slice(b);
        }
        Value::Struct(fields) => write_struct(out, fields),
        Value::Map(key, value, pairs) => {
            out.put_u8(*key);
            out.put_u8(*value);
            out.put_i32(i32::try_from(pairs.len()).unwrap_or(i32::MAX));
            for (k, v) in pairs {
                write_value(out, k);
                write_value(out, v);
            }
        }
        Value::List(element, items) => {
            out.put_u8(*element);
            out.put_i32(i32::try_from(items.len()).unwrap_or(i32::MAX));
            for item in items {
                write_value(out, item);
            }
        }
    }
}

fn write_struct(out: &mut BytesMut, fields: &Struct) {
    for (id, value) in fields {
        out.put_u8(value.wire_type());
        out.put_i16(*id);
        write_value(out, value);
    }
    out.put_u8(0);
}

/// Reads from a complete reply in memory; running short is a protocol error.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn need(&self, n: usize) -> Result<()> {
        if self.0.remaining() < n { Err(ThriftError::Incomplete) } else { Ok(()) }
    }

    fn u8(&mut self) -> Result<u8> {
        self.need(1)?;
        Ok(self.0.get_u8())
    }

    fn i16(&mut self) -> Result<i16> {
        self.need(2)?;
        Ok(self.0.get_i16())
    }

    fn i32(&mut self) -> Result<i32> {
        self.need(4)?;
        Ok(self.0.get_i32())
    }

    fn size(&mut self) -> Result<usize> {
        let n = self.i32()?;
        let n = usize::try_from(n).map_err(|_| ThriftError::Protocol(format!("negative size {n}")))?;
        // Every element takes at least a byte: a larger size is a corrupt reply, not an allocation.
        self.need(n)?;
        Ok(n)
    }

    fn bytes(&mut self) -> Result<Vec<u8>> {
        let n = self.size()?;
        let bytes = self.0[..n].to_vec();
        self.0.advance(n);
        Ok(bytes)
    }

    fn value(&mut self, wire_type: u8, depth: usize) -> Result<Value> {
        if depth > 64 {
            return Err(ThriftError::Protocol("values nested too deep".into()));
        }
        Ok(match wire_type {
            2 => Value::Bool(self.u8()? != 0),
            3 => Value::Byte(self.u8()? as i8),
            4 => {
                self.need(8)?;
                Value::Double(self.0.get_f64())
            }
            6 => Value::I16(self.i16()?),
            8 => Value::I32(self.i32()?),
            10 => {
                self.need(8)?;
                Value::I64(self.0.get_i64())
            }
            11 => Value::Bytes(self.bytes()?),
            12 => Value::Struct(self.fields(depth + 1)?),
            13 => {
                let (key, value) = (self.u8()?, self.u8()?);
                let n = self.size()?;
                let mut pairs = Vec::with_capacity(n);
                for _ in 0..n {
                    pairs.push((self.value(key, depth + 1)?, self.value(value, depth + 1)?));
                }
                Value::Map(key, value, pairs)
            }
            14 | 15 => {
                let element = self.u8()?;
                let n = self.size()?;
                let items = (0..n).map(|_| self.value(element, depth + 1)).collect::<Result<_>>()?;
                Value::List(element, items)
            }
            other => return Err(ThriftError::Protocol(format!("unknown type {other}"))),
        })
    }

    fn fields(&mut self, depth: usize) -> Result<Struct> {
        let mut fields = Struct::new();
        loop {
            let wire_type = self.u8()?;
            if wire_type == 0 {
                return Ok(fields);
            }
            let id = self.i16()?;
            fields.insert(id, self.value(wire_type, depth)?);
        }
    }
}

/// The reply to one call: the result struct (field 0 the return value, others the declared
/// exceptions).
///
/// # Errors
/// The connection fails, the reply is not Thrift, or the server raised an application error.
pub(crate) async fn call(stream: &mut TcpStream, method: &str, args: Struct) -> Result<Struct> {
    let mut out = BytesMut::new();
    out.put_u32(VERSION_1 | u32::from(CALL));
    write_value(&mut out, &Value::string(method));
    out.put_i32(1);
    write_struct(&mut out, &args);
    stream.write_all(&out).await?;
    // A reply is as long as its content: read until one whole message decodes. What has
    // arrived is drained before each try, so a long reply is decoded a few times, not once
    // per read.
    let mut reply = Vec::new();
    let mut chunk = vec![0; 64 * 1024];
    loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(ThriftError::Protocol(format!("the metastore closed the connection during {method}")));
        }
        reply.extend_from_slice(&chunk[..n]);
        while let Ok(n @ 1..) = stream.try_read(&mut chunk) {
            reply.extend_from_slice(&chunk[..n]);
        }
        match decode_reply(&reply) {
            Err(ThriftError::Incomplete) => continue,
            decoded => return decoded,
        }
    }
}

fn decode_reply(reply: &[u8]) -> Result<Struct> {
    let mut r = Reader(reply);
    let header = r.i32()? as u32;
    if header & 0xffff_0000 != VERSION_1 {
        return Err(ThriftError::Protocol(format!("message header {header:#x}")));
    }
    let _name = r.bytes()?;
    let _seq = r.i32()?;
    let result = r.fields(0)?;
    match (header & 0xff) as u8 {
        REPLY => Ok(result),
        EXCEPTION => {
            let message = result.get(&1).and_then(Value::as_str).unwrap_or("unknown error");
            Err(ThriftError::Application(message.to_owned()))
        }
        other => Err(ThriftError::Protocol(format!("message type {other}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(value: &Value) -> Value {
        let mut out = BytesMut::new();
        write_value(&mut out, value);
        Reader(&out).value(value.wire_type(), 0).expect("decodes")
    }

    #[test]
    fn values_round_trip() {
        let nested = Value::Struct(Struct::from([
            (1, Value::string("events")),
            (2, Value::I32(-7)),
            (3, Value::List(11, vec![Value::string("a"), Value::string("ü")])),
            (4, Value::Map(11, 11, vec![(Value::string("k"), Value::string("v"))])),
            (5, Value::Struct(Struct::from([(9, Value::Bool(true)), (10, Value::I64(i64::MIN))]))),
            (6, Value::Double(0.5)),
            (7, Value::I16(3)),
            (8, Value::Byte(-1)),
        ]));
        assert_eq!(round_trip(&nested), nested);
    }

    #[test]
    fn truncated_and_hostile_replies_are_errors_not_panics() {
        let mut out = BytesMut::new();
        write_value(&mut out, &Value::List(11, vec![Value::string("abc"), Value::string("def")]));
        for end in 0..out.len() {
            assert!(Reader(&out[..end]).value(15, 0).is_err(), "{end}");
        }
        // A list claiming two billion elements in a few bytes.
        let hostile = [11u8, 0x7f, 0xff, 0xff, 0xff];
        assert!(Reader(&hostile).value(15, 0).is_err());
    }
}
