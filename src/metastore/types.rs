//! Column types as a metastore stores them: Hive's type names (`bigint`, `decimal(10,2)`,
//! `array<struct<a:int>>`) and, for tables Spark wrote, Spark's JSON schema in the table's
//! `spark.sql.sources.schema` properties.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Fields, TimeUnit};
use serde_json::Value;

/// The Arrow type of a Hive type name, or `None` for a type lakegate cannot read.
pub(crate) fn hive_type(text: &str) -> Option<DataType> {
    let mut parser = HiveTypes { text: text.trim().as_bytes(), at: 0 };
    let data_type = parser.parse()?;
    parser.skip_spaces();
    (parser.at == parser.text.len()).then_some(data_type)
}

/// The Hive type name of an Arrow type, as lakegate writes it into Parquet; `None` for a type
/// Hive has no name for (unsigned integers, intervals, ...).
pub(crate) fn hive_name(data_type: &DataType) -> Option<String> {
    Some(match data_type {
        DataType::Int8 => "tinyint".into(),
        DataType::Int16 => "smallint".into(),
        DataType::Int32 => "int".into(),
        DataType::Int64 => "bigint".into(),
        DataType::Float32 => "float".into(),
        DataType::Float64 => "double".into(),
        DataType::Boolean => "boolean".into(),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "string".into(),
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => "binary".into(),
        DataType::Date32 => "date".into(),
        DataType::Timestamp(..) => "timestamp".into(),
        DataType::Decimal128(precision, scale) if *scale >= 0 => format!("decimal({precision},{scale})"),
        DataType::List(item) | DataType::LargeList(item) => format!("array<{}>", hive_name(item.data_type())?),
        DataType::Map(entries, _) => match entries.data_type() {
            DataType::Struct(kv) if kv.len() == 2 => {
                format!("map<{},{}>", hive_name(kv[0].data_type())?, hive_name(kv[1].data_type())?)
            }
            _ => return None,
        },
        DataType::Struct(fields) => {
            let field = |f: &Arc<Field>| {
                let name = Some(f.name()).filter(|n| !n.contains('`'))?;
                Some(format!("`{name}`:{}", hive_name(f.data_type())?))
            };
            format!("struct<{}>", fields.iter().map(field).collect::<Option<Vec<_>>>()?.join(","))
        }
        _ => return None,
    })
}

struct HiveTypes<'a> {
    text: &'a [u8],
    at: usize,
}

impl HiveTypes<'_> {
    fn skip_spaces(&mut self) {
        while self.text.get(self.at).is_some_and(u8::is_ascii_whitespace) {
            self.at += 1;
        }
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        self.skip_spaces();
        (self.text.get(self.at) == Some(&c)).then(|| self.at += 1)
    }

    /// A name: letters, digits and `_` (struct field names may be back-quoted).
    fn word(&mut self) -> Option<String> {
        self.skip_spaces();
        if self.eat(b'`').is_some() {
            let end = self.text[self.at..].iter().position(|c| *c == b'`')? + self.at;
            let word = String::from_utf8(self.text[self.at..end].to_vec()).ok()?;
            self.at = end + 1;
            return Some(word);
        }
        let start = self.at;
        while self.text.get(self.at).is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_') {
            self.at += 1;
        }
        (self.at > start).then(|| String::from_utf8_lossy(&self.text[start..self.at]).into_owned())
    }

    fn number(&mut self) -> Option<u8> {
        self.word()?.parse().ok()
    }

    fn field(&mut self, name: &str) -> Option<Arc<Field>> {
        Some(Arc::new(Field::new(name, self.parse()?, true)))
    }

    fn parse(&mut self) -> Option<DataType> {
        let name = self.word()?.to_ascii_lowercase();
        Some(match name.as_str() {
            "tinyint" => DataType::Int8,
            "smallint" => DataType::Int16,
            "int" | "integer" => DataType::Int32,
            "bigint" => DataType::Int64,
            "float" => DataType::Float32,
            "double" => DataType::Float64,
            "boolean" => DataType::Boolean,
            "string" => DataType::Utf8View,
            "varchar" | "char" => {
                self.eat(b'(')?;
                self.number()?;
                self.eat(b')')?;
                DataType::Utf8View
            }
            "binary" => DataType::BinaryView,
            "date" => DataType::Date32,
            "timestamp" => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            "decimal" => {
                // Hive's bare DECIMAL is DECIMAL(10,0).
                let (precision, scale) = if self.eat(b'(').is_some() {
                    let precision = self.number()?;
                    let scale = if self.eat(b',').is_some() { self.number()? } else { 0 };
                    self.eat(b')')?;
                    (precision, scale)
                } else {
                    (10, 0)
                };
                DataType::Decimal128(precision, i8::try_from(scale).ok()?)
            }
            "array" => {
                self.eat(b'<')?;
                let item = self.field("element")?;
                self.eat(b'>')?;
                DataType::List(item)
            }
            "map" => {
                self.eat(b'<')?;
                let key = Field::new("key", self.parse()?, false);
                self.eat(b',')?;
                let value = self.field("value")?;
                self.eat(b'>')?;
                let entries = Field::new("entries", DataType::Struct(Fields::from(vec![Arc::new(key), value])), false);
                DataType::Map(Arc::new(entries), false)
            }
            "struct" => {
                self.eat(b'<')?;
                let mut fields = Vec::new();
                loop {
                    let name = self.word()?;
                    self.eat(b':')?;
                    fields.push(self.field(&name)?);
                    if self.eat(b',').is_none() {
                        break;
                    }
                }
                self.eat(b'>')?;
                DataType::Struct(Fields::from(fields))
            }
            _ => return None,
        })
    }
}

/// The columns of Spark's JSON schema (`spark.sql.sources.schema`, or its numbered parts),
/// when the table has one and lakegate can read every column's type.
pub(crate) fn spark_schema(parameters: &std::collections::BTreeMap<String, String>) -> Option<Vec<Field>> {
    let json = match parameters.get("spark.sql.sources.schema") {
        Some(whole) => whole.clone(),
        None => {
            let parts: usize = parameters.get("spark.sql.sources.schema.numParts")?.parse().ok()?;
            (0..parts)
                .map(|i| parameters.get(&format!("spark.sql.sources.schema.part.{i}")).cloned())
                .collect::<Option<String>>()?
        }
    };
    let schema: Value = serde_json::from_str(&json).ok()?;
    match spark_type(&schema)? {
        DataType::Struct(fields) => Some(fields.iter().map(|f| f.as_ref().clone()).collect()),
        _ => None,
    }
}

fn spark_type(value: &Value) -> Option<DataType> {
    if let Some(name) = value.as_str() {
        return match name {
            "byte" => Some(DataType::Int8),
            "short" => Some(DataType::Int16),
            "integer" => Some(DataType::Int32),
            "long" => Some(DataType::Int64),
            "float" => Some(DataType::Float32),
            "double" => Some(DataType::Float64),
            "boolean" => Some(DataType::Boolean),
            "string" => Some(DataType::Utf8View),
            "binary" => Some(DataType::BinaryView),
            "date" => Some(DataType::Date32),
            "timestamp" => Some(DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))),
            "timestamp_ntz" => Some(DataType::Timestamp(TimeUnit::Microsecond, None)),
            decimal if decimal.starts_with("decimal") => hive_type(decimal),
            varchar if varchar.starts_with("varchar") || varchar.starts_with("char") => Some(DataType::Utf8View),
            _ => None,
        };
    }
    match value.get("type")?.as_str()? {
        "struct" => {
            let fields = value.get("fields")?.as_array()?.iter().map(|f| {
                let name = f.get("name")?.as_str()?;
                let nullable = f.get("nullable").and_then(Value::as_bool).unwrap_or(true);
                Some(Arc::new(Field::new(name, spark_type(f.get("type")?)?, nullable)))
            });
            Some(DataType::Struct(fields.collect::<Option<Fields>>()?))
        }
        "array" => {
            let nullable = value.get("containsNull").and_then(Value::as_bool).unwrap_or(true);
            Some(DataType::List(Arc::new(Field::new("element", spark_type(value.get("elementType")?)?, nullable))))
        }
        "map" => {
            let key = Field::new("key", spark_type(value.get("keyType")?)?, false);
            let nullable = value.get("valueContainsNull").and_then(Value::as_bool).unwrap_or(true);
            let value = Field::new("value", spark_type(value.get("valueType")?)?, nullable);
            let entries = Field::new("entries", DataType::Struct(Fields::from(vec![key, value])), false);
            Some(DataType::Map(Arc::new(entries), false))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hive_type_names_read_as_arrow_types() {
        assert_eq!(hive_type("bigint"), Some(DataType::Int64));
        assert_eq!(hive_type(" VARCHAR(20) "), Some(DataType::Utf8View));
        assert_eq!(hive_type("decimal"), Some(DataType::Decimal128(10, 0)));
        assert_eq!(hive_type("decimal(38,6)"), Some(DataType::Decimal128(38, 6)));
        let nested = hive_type("array<struct<a:int,`b c`:map<string,double>>>").expect("nested");
        assert_eq!(
            nested.to_string(),
            r#"List(Struct("a": Int32, "b c": Map("entries": non-null Struct("key": non-null Utf8View, "value": Float64), unsorted)), field: 'element')"#
        );
        for unreadable in ["uniontype<int,string>", "array<int", "int,", "interval_day_time"] {
            assert_eq!(hive_type(unreadable), None, "{unreadable}");
        }
    }

    #[test]
    fn hive_names_read_back_as_the_same_types() {
        let names = [
            "tinyint",
            "bigint",
            "double",
            "string",
            "binary",
            "date",
            "timestamp",
            "decimal(38,6)",
            "array<struct<`a`:int,`b c`:map<string,double>>>",
        ];
        for name in names {
            let data_type = hive_type(name).expect("readable");
            assert_eq!(hive_name(&data_type).as_deref(), Some(name));
        }
        assert_eq!(hive_name(&DataType::UInt64), None);
        assert_eq!(hive_name(&DataType::Struct(Fields::from(vec![Field::new("a`b", DataType::Int8, true)]))), None);
    }

    #[test]
    fn spark_schemas_split_in_parts_read_as_one() {
        let json = r#"{"type":"struct","fields":[{"name":"uid","type":"long","nullable":true,"metadata":{}},{"name":"tags","type":{"type":"array","elementType":"string","containsNull":true},"nullable":true,"metadata":{}},{"name":"dt","type":"string","nullable":true,"metadata":{}}]}"#;
        let (a, b) = json.split_at(40);
        let parameters = [
            ("spark.sql.sources.schema.numParts", "2"),
            ("spark.sql.sources.schema.part.0", a),
            ("spark.sql.sources.schema.part.1", b),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let fields = spark_schema(&parameters).expect("schema");
        let names: Vec<_> = fields.iter().map(|f| (f.name().as_str(), f.data_type().to_string())).collect();
        assert_eq!(
            names,
            [
                ("uid", "Int64".to_owned()),
                ("tags", "List(Utf8View, field: 'element')".to_owned()),
                ("dt", "Utf8View".to_owned())
            ]
        );
    }
}
