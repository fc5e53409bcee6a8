//! Geodata layers: files of WKT polygons with attribute columns, loaded once
//! per process and shared by every session as an `Arc<LayerSet>`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, Float64Array, StringBuilder, UInt32Array};
use datafusion::arrow::buffer::{NullBuffer, ScalarBuffer};
use datafusion::arrow::datatypes::{DataType, Field, Fields};

use crate::error::{Error, Result};
use crate::geometry::{InvalidPolygons, LoadWarning, Origin, parse_feature};
use crate::index::{LocateStrategy, MAX_FEATURES, NO_FEATURE, PolygonIndex};
use crate::reader::read_table;

/// Where a layer comes from and which of its columns to use.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LayerSpec {
    /// Name used by `geo_lookup('name', lon, lat)`.
    pub name: String,
    /// A `.tsv`, `.csv` or `.parquet` file with a header.
    pub path: PathBuf,
    /// Column holding the POLYGON/MULTIPOLYGON WKT.
    pub wkt_column: String,
    /// Attribute columns, in output order; empty means every column except
    /// the WKT one, in file order.
    pub attributes: Vec<String>,
    /// What to do with polygons that are not OGC-valid.
    pub invalid_polygons: InvalidPolygons,
}

impl LayerSpec {
    /// A layer named `name` read from `path`, WKT in column `wkt`, every other
    /// column an attribute, invalid polygons kept with a warning.
    pub fn new(name: impl Into<String>, path: impl Into<PathBuf>) -> Self {
        Self {
            name: name.into(),
            path: path.into(),
            wkt_column: "wkt".to_string(),
            attributes: Vec::new(),
            invalid_polygons: InvalidPolygons::default(),
        }
    }

    /// Reads the WKT from `column` instead of `wkt`.
    pub fn with_wkt_column(mut self, column: impl Into<String>) -> Self {
        self.wkt_column = column.into();
        self
    }

    /// Keeps only these attribute columns, in this order.
    pub fn with_attributes<S: Into<String>>(mut self, columns: impl IntoIterator<Item = S>) -> Self {
        self.attributes = columns.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the policy for invalid polygons.
    pub fn with_invalid_polygons(mut self, policy: InvalidPolygons) -> Self {
        self.invalid_polygons = policy;
        self
    }
}

/// One loaded layer: its features' attributes and their polygon index.
#[derive(Debug)]
pub struct Layer {
    name: String,
    path: PathBuf,
    fields: Fields,
    /// One Utf8 array per attribute, one row per feature.
    values: Vec<ArrayRef>,
    features: usize,
    index: PolygonIndex,
}

impl Layer {
    /// Loads a layer.
    ///
    /// # Errors
    /// Any [`Error`] about the file: unreadable, unknown format, missing
    /// columns, ragged rows, invalid WKT or polygons (with file and line).
    pub fn load(spec: &LayerSpec) -> Result<Self> {
        let mut warnings = Vec::new();
        Self::load_collecting(spec, &mut warnings)
    }

    fn load_collecting(spec: &LayerSpec, warnings: &mut Vec<LoadWarning>) -> Result<Self> {
        if spec.name.is_empty() {
            return Err(Error::EmptyLayerName);
        }
        let path = spec.path.as_path();
        let table = read_table(path)?;
        let available = || table.header.join(", ");
        let wkt_at =
            table.header.iter().position(|h| *h == spec.wkt_column).ok_or_else(|| Error::MissingWktColumn {
                path: path.to_path_buf(),
                column: spec.wkt_column.clone(),
                available: available(),
            })?;
        let attributes: Vec<(String, usize)> = if spec.attributes.is_empty() {
            (0..table.header.len()).filter(|i| *i != wkt_at).map(|i| (table.header[i].clone(), i)).collect()
        } else {
            spec.attributes
                .iter()
                .map(|a| {
                    table.header.iter().position(|h| h == a).map(|i| (a.clone(), i)).ok_or_else(|| {
                        Error::MissingAttribute { path: path.to_path_buf(), column: a.clone(), available: available() }
                    })
                })
                .collect::<Result<_>>()?
        };
        if attributes.is_empty() {
            return Err(Error::NoAttributes { name: spec.name.clone() });
        }
        for (i, (a, _)) in attributes.iter().enumerate() {
            if attributes[..i].iter().any(|(b, _)| a == b) {
                return Err(Error::DuplicateAttribute {
                    column: a.clone(),
                    first: spec.name.clone(),
                    second: spec.name.clone(),
                });
            }
        }
        if table.rows.len() > MAX_FEATURES {
            return Err(Error::TooManyFeatures {
                path: path.to_path_buf(),
                count: table.rows.len(),
                max: MAX_FEATURES,
            });
        }

        let mut builders: Vec<StringBuilder> = attributes.iter().map(|_| StringBuilder::new()).collect();
        let mut features = Vec::with_capacity(table.rows.len());
        for row in &table.rows {
            let origin = Origin { path, line: row.line };
            let text = row.fields[wkt_at]
                .as_deref()
                .ok_or_else(|| Error::EmptyWkt { path: path.to_path_buf(), line: row.line })?;
            let polygons = parse_feature(text, &origin, spec.invalid_polygons, |message| {
                warnings.push(LoadWarning { layer: spec.name.clone(), line: row.line, message })
            })?;
            features.push(polygons);
            for ((_, i), builder) in attributes.iter().zip(&mut builders) {
                builder.append_option(row.fields[*i].as_deref());
            }
        }
        let fields: Fields = attributes.iter().map(|(a, _)| Field::new(a, DataType::Utf8, true)).collect();
        Ok(Self {
            name: spec.name.clone(),
            path: path.to_path_buf(),
            fields,
            values: builders.iter_mut().map(|b| Arc::new(b.finish()) as ArrayRef).collect(),
            features: features.len(),
            index: PolygonIndex::build(&features),
        })
    }

    /// The layer's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The file the layer was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The attribute fields, all nullable Utf8, in output order.
    pub fn fields(&self) -> &Fields {
        &self.fields
    }

    /// Number of features (rows of the layer file).
    pub fn len(&self) -> usize {
        self.features
    }

    /// Whether the layer has no features.
    pub fn is_empty(&self) -> bool {
        self.features == 0
    }

    /// Number of polygons indexed (every polygon of a MULTIPOLYGON counts).
    pub fn polygon_count(&self) -> usize {
        self.index.parts()
    }

    /// The attribute arrays, one Utf8 array per field with one row per
    /// feature; index them with the feature numbers [`Layer::locate`] returns.
    pub fn values(&self) -> &[ArrayRef] {
        &self.values
    }

    /// The feature (0-based row of the layer file) containing the point, by
    /// the rules in the crate documentation: `None` for a point outside every
    /// polygon, and for NaN, infinite or |lat| > 90 input. The longitude is
    /// normalised to [-180, 180) first.
    pub fn locate(&self, lon: f64, lat: f64) -> Option<usize> {
        self.locate_with(lon, lat, LocateStrategy::Indexed)
    }

    /// [`Layer::locate`] with an explicit strategy, for measuring.
    pub fn locate_with(&self, lon: f64, lat: f64, strategy: LocateStrategy) -> Option<usize> {
        let lon = normalize_longitude(lon)?;
        if !lat_ok(lat) {
            return None;
        }
        match self.index.locate_with(lon, lat, strategy) {
            NO_FEATURE => None,
            f => Some(f as usize),
        }
    }

    /// The feature of every point, NULL where [`Layer::locate`] gives `None`
    /// or an input is NULL. This is the vectorised kernel of `geodata`: no
    /// allocation per row.
    pub fn locate_batch(&self, lon: &Float64Array, lat: &Float64Array) -> UInt32Array {
        let points = Points::new(lon, lat);
        self.locate_points(&points)
    }

    pub(crate) fn locate_points(&self, points: &Points) -> UInt32Array {
        // Invalid points carry a NaN longitude, which finds no feature.
        let mut found = vec![NO_FEATURE; points.len()];
        self.index.locate_many(&points.lon, points.lat, &mut found);
        let nulls = NullBuffer::from_iter(found.iter().map(|f| *f != NO_FEATURE));
        UInt32Array::new(ScalarBuffer::from(found), Some(nulls))
    }
}

/// The longitude in [-180, 180), or `None` when not finite.
fn normalize_longitude(lon: f64) -> Option<f64> {
    if (-180.0..180.0).contains(&lon) {
        return Some(lon);
    }
    if !lon.is_finite() {
        return None;
    }
    let x = (lon + 180.0).rem_euclid(360.0) - 180.0;
    // rem_euclid can round up to exactly 360 for inputs just below a multiple.
    Some(if x >= 180.0 { x - 360.0 } else { x })
}

fn lat_ok(lat: f64) -> bool {
    (-90.0..=90.0).contains(&lat)
}

/// A batch of input points: normalised longitudes and which rows are valid
/// (non-NULL, finite, |lat| <= 90). Computed once per batch for all layers.
pub(crate) struct Points<'a> {
    lon: Vec<f64>,
    lat: &'a [f64],
    valid: NullBuffer,
}

impl<'a> Points<'a> {
    pub(crate) fn new(lon: &Float64Array, lat: &'a Float64Array) -> Self {
        let n = lon.len().min(lat.len());
        let lat_values = &lat.values()[..n];
        let mut valid = Vec::with_capacity(n);
        let lon = lon.values()[..n]
            .iter()
            .zip(lat_values)
            .enumerate()
            .map(|(i, (&x, &y))| {
                let x = if lon.is_null(i) || lat.is_null(i) || !lat_ok(y) { None } else { normalize_longitude(x) };
                valid.push(x.is_some());
                x.unwrap_or(f64::NAN)
            })
            .collect();
        Self { lon, lat: lat_values, valid: NullBuffer::from(valid) }
    }

    pub(crate) fn len(&self) -> usize {
        self.lon.len()
    }

    /// Rows whose point is valid; NULL rows of `geodata`'s result.
    pub(crate) fn validity(&self) -> &NullBuffer {
        &self.valid
    }
}

/// All layers of a process, in the order their attributes appear in
/// `geodata`'s result.
#[derive(Debug, Default)]
pub struct LayerSet {
    layers: Vec<Layer>,
    fields: Fields,
    warnings: Vec<LoadWarning>,
}

impl LayerSet {
    /// Loads every layer.
    ///
    /// # Errors
    /// The first layer that fails to load (see [`Layer::load`]), a duplicate
    /// or empty layer name, or an attribute name that two layers share
    /// (`geodata` returns one struct, so field names must be unique).
    pub fn load(specs: &[LayerSpec]) -> Result<Self> {
        let mut layers: Vec<Layer> = Vec::with_capacity(specs.len());
        let mut warnings = Vec::new();
        let mut owner: HashMap<String, String> = HashMap::new();
        for spec in specs {
            if layers.iter().any(|l| l.name == spec.name) {
                return Err(Error::DuplicateLayer { name: spec.name.clone() });
            }
            let layer = Layer::load_collecting(spec, &mut warnings)?;
            for field in layer.fields.iter() {
                if let Some(first) = owner.insert(field.name().clone(), layer.name.clone()) {
                    return Err(Error::DuplicateAttribute {
                        column: field.name().clone(),
                        first,
                        second: layer.name.clone(),
                    });
                }
            }
            layers.push(layer);
        }
        let fields = layers.iter().flat_map(|l| l.fields.iter().map(Arc::clone)).collect();
        Ok(Self { layers, fields, warnings })
    }

    /// A set with no layers: `geodata` then fails at planning with a message
    /// saying that no layers are configured.
    pub fn empty() -> Self {
        Self::default()
    }

    /// The layers, in load order.
    pub fn layers(&self) -> &[Layer] {
        &self.layers
    }

    /// The layer called `name`.
    pub fn layer(&self, name: &str) -> Option<&Layer> {
        self.layers.iter().find(|l| l.name == name)
    }

    /// The fields of `geodata`'s struct: every layer's attributes in layer
    /// order, all nullable Utf8.
    pub fn fields(&self) -> &Fields {
        &self.fields
    }

    /// Invalid polygons that were kept; log these at start-up.
    pub fn warnings(&self) -> &[LoadWarning] {
        &self.warnings
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longitudes_are_normalised_to_half_open_range() {
        assert_eq!(normalize_longitude(180.0), Some(-180.0));
        assert_eq!(normalize_longitude(-180.0), Some(-180.0));
        assert_eq!(normalize_longitude(181.5), Some(-178.5));
        assert_eq!(normalize_longitude(-541.0), Some(179.0));
        let la = normalize_longitude(241.76).expect("finite");
        assert!((la + 118.24).abs() < 1e-9, "{la}");
        assert_eq!(normalize_longitude(f64::NAN), None);
        assert_eq!(normalize_longitude(f64::INFINITY), None);
        let x = normalize_longitude(-1e-300 - 180.0).expect("finite");
        assert!((-180.0..180.0).contains(&x));
    }
}
