//! The error type of the geodata layers: every variant names the file (and
//! line, where there is one) and says what to change.

use std::path::PathBuf;

use datafusion::arrow::datatypes::DataType;
use datafusion::error::DataFusionError;
use datafusion::parquet::errors::ParquetError;

/// Result of loading geodata layers.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a layer could not be loaded.
///
/// `line` is the 1-based line of the feature in a TSV/CSV file (the header is
/// line 1), or the 1-based row number plus one in a Parquet file, so that the
/// same feature has the same number in every format.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("cannot read layer file {}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },

    #[error(
        "layer file {} has an unknown format: name it *.tsv, *.csv or *.parquet",
        path.display()
    )]
    UnknownFormat { path: PathBuf },

    #[error(
        "layer file {} is empty: it needs a header row naming its columns",
        path.display()
    )]
    MissingHeader { path: PathBuf },

    #[error(
        "layer file {}: no column `{column}` for the WKT geometry (columns: {available}); \
         set the layer's wkt_column",
        path.display()
    )]
    MissingWktColumn { path: PathBuf, column: String, available: String },

    #[error(
        "layer file {}: attribute column `{column}` does not exist (columns: {available})",
        path.display()
    )]
    MissingAttribute { path: PathBuf, column: String, available: String },

    #[error(
        "layer file {}: column `{column}` has type {data_type}, which cannot be read as text",
        path.display()
    )]
    UnsupportedColumnType { path: PathBuf, column: String, data_type: DataType },

    #[error("{}:{line}: expected {expected} fields as in the header, found {found}", path.display())]
    FieldCount { path: PathBuf, line: usize, expected: usize, found: usize },

    #[error("{}:{line}: a quoted field is never closed: add the closing '\"'", path.display())]
    UnterminatedQuote { path: PathBuf, line: usize },

    #[error("{}:{line}: the WKT field is empty: every feature needs a polygon", path.display())]
    EmptyWkt { path: PathBuf, line: usize },

    #[error("{}:{line}: invalid WKT: {message}", path.display())]
    InvalidWkt { path: PathBuf, line: usize, message: String },

    #[error(
        "{}:{line}: geometry is a {found}; layers hold only POLYGON and MULTIPOLYGON",
        path.display()
    )]
    NotAPolygon { path: PathBuf, line: usize, found: &'static str },

    #[error(
        "{}:{line}: ring {ring} of polygon {polygon} is not closed: its last point ({last_x} {last_y}) \
         differs from its first ({first_x} {first_y}); repeat the first point at the end",
        path.display()
    )]
    UnclosedRing {
        path: PathBuf,
        line: usize,
        polygon: usize,
        ring: usize,
        first_x: f64,
        first_y: f64,
        last_x: f64,
        last_y: f64,
    },

    #[error(
        "{}:{line}: ring {ring} of polygon {polygon} has {points} points; a ring needs at least 4 \
         (3 corners and the closing point)",
        path.display()
    )]
    TooFewPoints { path: PathBuf, line: usize, polygon: usize, ring: usize, points: usize },

    #[error(
        "{}:{line}: coordinate ({x} {y}) is not a longitude in [-180, 180] and a latitude in \
         [-90, 90]; layer files must be in WGS 84 longitude/latitude order",
        path.display()
    )]
    CoordinateOutOfRange { path: PathBuf, line: usize, x: f64, y: f64 },

    #[error(
        "{}:{line}: polygon {polygon} crosses the antimeridian (an edge from longitude {from} to \
         {to}); split it at ±180° into a MULTIPOLYGON (e.g. `ogr2ogr -wrapdateline`)",
        path.display()
    )]
    CrossesAntimeridian { path: PathBuf, line: usize, polygon: usize, from: f64, to: f64 },

    #[error(
        "{}:{line}: polygon {polygon} is invalid: {reason}; fix the geometry, or load the layer \
         with InvalidPolygons::Keep to evaluate it with the even-odd rule",
        path.display()
    )]
    InvalidPolygon { path: PathBuf, line: usize, polygon: usize, reason: String },

    #[error("cannot read Parquet layer file {}: {source}", path.display())]
    Parquet { path: PathBuf, source: ParquetError },

    #[error("layer file {}: {source}", path.display())]
    Arrow { path: PathBuf, source: datafusion::arrow::error::ArrowError },

    #[error("layer file {} has {count} features; at most {max} are supported", path.display())]
    TooManyFeatures { path: PathBuf, count: usize, max: usize },

    #[error("a layer has an empty name; give every layer a name to call it by in geo_lookup")]
    EmptyLayerName,

    #[error("layer `{name}` is defined twice; layer names must be unique")]
    DuplicateLayer { name: String },

    #[error("layer `{name}` has no attribute columns besides the WKT; add at least one")]
    NoAttributes { name: String },

    #[error(
        "attribute `{column}` comes from both layer `{first}` and layer `{second}`; geodata() \
         returns one struct, so list distinct attributes for one of them"
    )]
    DuplicateAttribute { column: String, first: String, second: String },
}

impl From<Error> for DataFusionError {
    fn from(e: Error) -> Self {
        DataFusionError::External(Box::new(e))
    }
}
