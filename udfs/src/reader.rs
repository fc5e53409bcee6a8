//! Reads a layer file (TSV, CSV or Parquet) into text records, keeping the
//! line each record starts on so that load errors can point at it.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::error::{Error, Result};

/// A layer file as text: the header and one record per feature.
#[derive(Debug)]
pub(crate) struct Table {
    pub(crate) header: Vec<String>,
    pub(crate) rows: Vec<Record>,
}

/// One data record. An empty field is `None`, as is a Parquet NULL.
#[derive(Debug)]
pub(crate) struct Record {
    /// 1-based line in the file; the header is line 1.
    pub(crate) line: usize,
    pub(crate) fields: Vec<Option<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Tsv,
    Csv,
    Parquet,
}

fn format_of(path: &Path) -> Result<Format> {
    let ext = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
    match ext.as_deref() {
        Some("tsv" | "tab") => Ok(Format::Tsv),
        Some("csv") => Ok(Format::Csv),
        Some("parquet" | "parq") => Ok(Format::Parquet),
        _ => Err(Error::UnknownFormat { path: path.to_path_buf() }),
    }
}

pub(crate) fn read_table(path: &Path) -> Result<Table> {
    let format = format_of(path)?;
    if format == Format::Parquet {
        return read_parquet(path);
    }
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io { path: path.to_path_buf(), source })?;
    let mut records = match format {
        Format::Tsv => split_tsv(&text),
        _ => split_csv(path, &text)?,
    }
    .into_iter();
    let Some((_, header)) = records.next() else {
        return Err(Error::MissingHeader { path: path.to_path_buf() });
    };
    let header: Vec<String> = header.into_iter().map(|h| h.trim().to_string()).collect();
    let rows = records
        .map(|(line, fields)| {
            if fields.len() != header.len() {
                return Err(Error::FieldCount {
                    path: path.to_path_buf(),
                    line,
                    expected: header.len(),
                    found: fields.len(),
                });
            }
            let fields = fields.into_iter().map(|f| (!f.is_empty()).then_some(f)).collect();
            Ok(Record { line, fields })
        })
        .collect::<Result<_>>()?;
    Ok(Table { header, rows })
}

/// TSV as written by most tools: one record per line, fields split on tabs,
/// no quoting. Blank lines are skipped.
fn split_tsv(text: &str) -> Vec<(usize, Vec<String>)> {
    text.split('\n')
        .enumerate()
        .filter_map(|(i, line)| {
            let line = line.strip_suffix('\r').unwrap_or(line);
            (!line.is_empty()).then(|| (i + 1, line.split('\t').map(str::to_string).collect()))
        })
        .collect()
}

/// RFC 4180 CSV: fields may be quoted with `"` (doubled inside), and a
/// quoted field may span lines. Blank lines are skipped.
fn split_csv(path: &Path, text: &str) -> Result<Vec<(usize, Vec<String>)>> {
    let mut records = Vec::new();
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut in_quotes = false;
    let mut line = 1;
    let mut record_line = 1;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if in_quotes {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => in_quotes = false,
                '\n' => {
                    line += 1;
                    field.push(c);
                }
                _ => field.push(c),
            }
            continue;
        }
        match c {
            '"' if field.is_empty() => in_quotes = true,
            ',' => fields.push(std::mem::take(&mut field)),
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' => {
                fields.push(std::mem::take(&mut field));
                if fields.len() == 1 && fields[0].is_empty() {
                    fields.clear();
                } else {
                    records.push((record_line, std::mem::take(&mut fields)));
                }
                line += 1;
                record_line = line;
            }
            _ => field.push(c),
        }
    }
    if in_quotes {
        return Err(Error::UnterminatedQuote { path: path.to_path_buf(), line: record_line });
    }
    if !field.is_empty() || !fields.is_empty() {
        fields.push(field);
        records.push((record_line, fields));
    }
    Ok(records)
}

fn read_parquet(path: &Path) -> Result<Table> {
    let file = File::open(path).map_err(|source| Error::Io { path: path.to_path_buf(), source })?;
    let parquet_err = |source| Error::Parquet { path: path.to_path_buf(), source };
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(parquet_err)?;
    let schema = Arc::clone(builder.schema());
    let header: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
    let reader = builder.build().map_err(parquet_err)?;
    let mut rows = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|source| Error::Arrow { path: path.to_path_buf(), source })?;
        let columns = batch
            .columns()
            .iter()
            .zip(schema.fields())
            .map(|(col, field)| {
                cast(col, &DataType::Utf8).map_err(|_| Error::UnsupportedColumnType {
                    path: path.to_path_buf(),
                    column: field.name().clone(),
                    data_type: field.data_type().clone(),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        for row in 0..batch.num_rows() {
            let fields = columns
                .iter()
                .map(|c| {
                    let c = c.as_string::<i32>();
                    (c.is_valid(row) && !c.value(row).is_empty()).then(|| c.value(row).to_string())
                })
                .collect();
            rows.push(Record { line: rows.len() + 2, fields });
        }
    }
    Ok(Table { header, rows })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_and_multiline_fields() {
        let text = "a,wkt\r\nx,\"POLYGON ((0 0, 1 0, 1 1, 0 0))\"\n\n\"say \"\"hi\"\"\",\"two\nlines\"\nlast,";
        let records = split_csv(Path::new("t.csv"), text).expect("valid CSV");
        assert_eq!(records.len(), 4);
        assert_eq!(records[1], (2, vec!["x".into(), "POLYGON ((0 0, 1 0, 1 1, 0 0))".into()]));
        assert_eq!(records[2], (4, vec!["say \"hi\"".into(), "two\nlines".into()]));
        assert_eq!(records[3], (6, vec!["last".into(), String::new()]));
    }

    #[test]
    fn csv_unterminated_quote_names_line() {
        let err = split_csv(Path::new("t.csv"), "a,b\n1,2\n3,\"oops\n").expect_err("unterminated");
        assert!(matches!(err, Error::UnterminatedQuote { line: 3, .. }), "{err}");
    }

    #[test]
    fn tsv_lines_are_numbered_from_one() {
        let records = split_tsv("a\tb\n\n1\t2\r\n");
        assert_eq!(records, vec![(1, vec!["a".into(), "b".into()]), (3, vec!["1".into(), "2".into()])]);
    }
}
