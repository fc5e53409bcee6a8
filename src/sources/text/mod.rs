//! CSV and JSON tables on local disk or S3, read by DataFusion's readers, with Spark's options
//! and Spark's schema rules, so scripts that stage CSV or JSON drops run unchanged:
//! `USING csv OPTIONS (header 'true', delimiter ';')` or Hive's `STORED AS CSV|JSON`.
//!
//! What Spark decides, lakegate decides the same way: a CSV file's columns are all strings
//! unless `inferSchema 'true'`; headerless CSV columns are named `_c0`, `_c1`, ...; JSON
//! objects' keys become columns in alphabetical order. Tables are read-only, and a malformed
//! row fails the query (Spark's `FAILFAST`), naming the problem.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::Field;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::GetExt;
use datafusion::datasource::file_format::FileFormat;
use datafusion::datasource::file_format::csv::CsvFormat;
use datafusion::datasource::file_format::file_compression_type::FileCompressionType;
use datafusion::datasource::file_format::json::JsonFormat;
use datafusion::datasource::listing::{ListingOptions, ListingTable, ListingTableConfig};
use datafusion::error::{DataFusionError, Result as DFResult};
use lakegate_catalog::{Options, ParamSpec, SourceFactory, TableSpec};

use super::files;
use crate::storage::ObjectStores;

const COMPRESSIONS: &[&str] = &["none", "uncompressed", "gzip", "bzip2", "xz", "zstd"];

const CSV_PARAMS: &[ParamSpec] = &files::with_s3_params::<12, 19>([
    ParamSpec::new("header", "the first line of each file names the columns (true/false)").bool().default("false"),
    ParamSpec::new("delimiter", "the character between values, e.g. ';' or '\\t' (the default is ',')"),
    ParamSpec::new("sep", "Spark's other name for delimiter"),
    ParamSpec::new("quote", "the character values with delimiters are quoted in").default("\""),
    ParamSpec::new("escape", "the character that escapes a quote inside a quoted value").default("\\"),
    ParamSpec::new("comment", "lines starting with this character are skipped"),
    ParamSpec::new("nullvalue", "the text that stands for NULL: only the default, an empty value, for now"),
    ParamSpec::new("inferschema", "read the columns' types from the data; else every column is a string (true/false)")
        .bool()
        .default("false"),
    ParamSpec::new("multiline", "quoted values may span lines (true/false)").bool().default("false"),
    ParamSpec::new("compression", "how the files are compressed").one_of(COMPRESSIONS).default("none"),
    ParamSpec::new("mode", "what to do with a malformed row: lakegate always fails the query, naming it").one_of(&[
        "PERMISSIVE",
        "DROPMALFORMED",
        "FAILFAST",
    ]),
    ParamSpec::new("extension", "only files ending so are read (the default: .csv, plus the compression's)"),
]);

const JSON_PARAMS: &[ParamSpec] = &files::with_s3_params::<3, 10>([
    ParamSpec::new("multiline", "each file is one JSON document or array, not one object per line (true/false)")
        .bool()
        .default("false"),
    ParamSpec::new("compression", "how the files are compressed").one_of(COMPRESSIONS).default("none"),
    ParamSpec::new("extension", "only files ending so are read (the default: .json, plus the compression's)"),
]);

/// Which of the two formats a [`TextSource`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Text {
    Csv,
    Json,
}

/// A source of CSV or JSON tables.
#[derive(Debug)]
pub struct TextSource {
    text: Text,
    stores: Arc<ObjectStores>,
}

impl TextSource {
    pub fn new(text: Text, stores: Arc<ObjectStores>) -> Self {
        Self { text, stores }
    }

    fn options(&self, spec: &TableSpec) -> DFResult<Options> {
        Ok(self.resolve_options(spec)?)
    }

    fn listing(&self, spec: &TableSpec) -> DFResult<(ListingOptions, String)> {
        let (format, extension) = format(self.text, &self.options(spec)?)?;
        Ok((files::listing_options(format, &extension, spec)?, extension))
    }

    /// Spark's names and order for the columns read from the files of a table.
    fn spark_schema(&self, header: bool, mut fields: Vec<Field>) -> Vec<Field> {
        match self.text {
            Text::Csv if !header => {
                fields = fields.into_iter().enumerate().map(|(i, f)| f.with_name(format!("_c{i}"))).collect();
            }
            Text::Csv => {}
            Text::Json => fields.sort_by(|a, b| a.name().cmp(b.name())),
        }
        fields
    }
}

/// The format of `text` files with Spark's `options` (keys lower case; others ignored;
/// Spark's defaults for the rest), and
/// the extension its files end in: for tables defined elsewhere, such as in a metastore.
///
/// # Errors
/// An option of the wrong kind, or one lakegate cannot honour.
pub(crate) fn file_format(
    text: Text,
    options: &std::collections::BTreeMap<String, String>,
) -> DFResult<(Arc<dyn FileFormat>, String)> {
    let (kind, params) = match text {
        Text::Csv => ("csv", CSV_PARAMS),
        Text::Json => ("json", JSON_PARAMS),
    };
    let mut known = std::collections::BTreeMap::new();
    for param in params {
        if let Some(value) = options.get(param.name).map(String::as_str).or(param.default) {
            param.check(value)?;
            known.insert(param.name.to_owned(), value.to_owned());
        }
    }
    format(text, &Options::new(kind, params, known))
}

/// The format of `text` files with a table's `options`, and the extension its files end in.
fn format(text: Text, options: &Options) -> DFResult<(Arc<dyn FileFormat>, String)> {
    let compression = match options.choice("compression")? {
        Some("gzip") => FileCompressionType::GZIP,
        Some("bzip2") => FileCompressionType::BZIP2,
        Some("xz") => FileCompressionType::XZ,
        Some("zstd") => FileCompressionType::ZSTD,
        _ => FileCompressionType::UNCOMPRESSED,
    };
    let multiline = options.bool("multiline")?.unwrap_or(false);
    let format: Arc<dyn FileFormat> = match text {
        Text::Csv => {
            let delimiter = match (options.text("delimiter"), options.text("sep")) {
                (Some(_), Some(_)) => {
                    return Err(DataFusionError::Plan("give delimiter or sep, not both".into()));
                }
                (Some(d), None) => character("delimiter", d)?,
                (None, Some(d)) => character("sep", d)?,
                (None, None) => b',',
            };
            let quote = character("quote", options.text("quote").unwrap_or("\""))?;
            let escape = options.text("escape").map(|e| character("escape", e)).transpose()?;
            let comment = options.text("comment").map(|c| character("comment", c)).transpose()?;
            let infer_types = options.bool("inferschema")?.unwrap_or(false);
            // DataFusion 55's CSV scan reads only empty values as NULL: it drops the
            // reader's null pattern, so another one would be taken as data.
            if let Some(null) = options.text("nullvalue").filter(|v| !v.is_empty()) {
                return Err(DataFusionError::NotImplemented(format!(
                    "nullValue '{null}': lakegate reads only empty CSV values as NULL; read the column as STRING and use NULLIF({{column}}, '{null}')"
                )));
            }
            let mut csv = CsvFormat::default()
                .with_has_header(options.bool("header")?.unwrap_or(false))
                .with_delimiter(delimiter)
                .with_quote(quote)
                .with_escape(escape)
                .with_comment(comment)
                .with_newlines_in_values(multiline)
                .with_file_compression_type(compression);
            // Spark reads every column as a string unless asked to infer; so does DataFusion
            // when it may look at no rows.
            if !infer_types {
                csv = csv.with_schema_infer_max_rec(0);
            }
            Arc::new(csv)
        }
        Text::Json => {
            Arc::new(JsonFormat::default().with_newline_delimited(!multiline).with_file_compression_type(compression))
        }
    };
    let extension = match options.text("extension") {
        Some(extension) => format!("{extension}{}", compression.get_ext()),
        None => format!(".{}", format.get_ext_with_compression(&compression)?.trim_start_matches('.')),
    };
    Ok((format, extension))
}

/// One character written in an option, where Spark also takes `\t` and the like.
fn character(option: &str, text: &str) -> DFResult<u8> {
    let c = match text {
        "\\t" | "tab" => b'\t',
        "\\n" => b'\n',
        "\\r" => b'\r',
        "\\0" => 0,
        "\\\\" => b'\\',
        _ if text.len() == 1 && text.is_ascii() => text.as_bytes()[0],
        _ => {
            return Err(DataFusionError::Plan(format!(
                "option '{option}' must be one ASCII character (or \\t), not '{text}'"
            )));
        }
    };
    Ok(c)
}

#[async_trait]
impl SourceFactory for TextSource {
    fn kind(&self) -> &'static str {
        match self.text {
            Text::Csv => "csv",
            Text::Json => "json",
        }
    }

    fn name(&self) -> &'static str {
        match self.text {
            Text::Csv => "CSV",
            Text::Json => "JSON",
        }
    }

    fn aliases(&self) -> &'static [&'static str] {
        match self.text {
            Text::Csv => &[
                "org.apache.spark.sql.csv",
                "org.apache.spark.sql.execution.datasources.csv.csvfileformat",
                "com.databricks.spark.csv",
            ],
            Text::Json => &[
                "jsonfile",
                "org.apache.spark.sql.json",
                "org.apache.spark.sql.execution.datasources.json.jsonfileformat",
            ],
        }
    }

    fn params(&self) -> &'static [ParamSpec] {
        match self.text {
            Text::Csv => CSV_PARAMS,
            Text::Json => JSON_PARAMS,
        }
    }

    async fn prepare(&self, session: &dyn Session, spec: TableSpec) -> DFResult<TableSpec> {
        let (options, extension) = self.listing(&spec)?;
        let url = files::table_url(&self.stores, &spec, &extension)?;
        let header = self.options(&spec)?.bool("header")?.unwrap_or(false);
        let spark_schema = |fields| Ok(self.spark_schema(header, fields));
        files::prepare(session, &url, &options, self.name(), spec, spark_schema).await
    }

    async fn create(&self, spec: &TableSpec) -> DFResult<Arc<dyn TableProvider>> {
        let (options, extension) = self.listing(spec)?;
        let url = files::table_url(&self.stores, spec, &extension)?;
        let config = ListingTableConfig::new(url).with_listing_options(options).with_schema(spec.data_schema()?);
        Ok(Arc::new(ListingTable::try_new(config)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_name_single_characters_as_spark_does() {
        assert_eq!(character("sep", "\\t").expect("tab"), b'\t');
        assert_eq!(character("sep", ";").expect("semicolon"), b';');
        let err = character("sep", "::").unwrap_err().to_string();
        assert!(err.contains("'sep'") && err.contains("'::'"), "{err}");
    }
}
