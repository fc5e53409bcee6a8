//! The SQL functions over geodata layers: `geodata(lon, lat)`,
//! `geo_lookup('layer', lon, lat)` and `st_contains(wkt, lon, lat)`, and
//! their registration on a session.

use std::hash::{Hash, Hasher};
use std::str::FromStr;
use std::sync::{Arc, OnceLock};

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanBuilder, StructArray};
use datafusion::arrow::compute::take;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Fields};
use datafusion::common::{ScalarValue, exec_err, internal_err, plan_err};
use datafusion::error::Result;
use datafusion::execution::context::SessionContext;
use datafusion::logical_expr::{
    ColumnarValue, DocSection, Documentation, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Volatility,
};
use geo::Contains;
use geo_types::{Geometry, Point};
use wkt::Wkt;

use crate::layer::{LayerSet, Points};

const DOC_SECTION_GEO: DocSection = DocSection {
    include: true,
    label: "Geospatial Functions",
    description: Some("Point lookups in lakegate's geodata layers and WKT predicates."),
};

/// `geodata(longitude, latitude)`: see the crate documentation.
pub fn geodata_udf(layers: Arc<LayerSet>) -> ScalarUDF {
    ScalarUDF::new_from_impl(GeodataUdf { layers, signature: Signature::user_defined(Volatility::Immutable) })
}

/// `geo_lookup('layer', longitude, latitude)`: the attributes of one layer.
pub fn geo_lookup_udf(layers: Arc<LayerSet>) -> ScalarUDF {
    ScalarUDF::new_from_impl(GeoLookupUdf { layers, signature: Signature::user_defined(Volatility::Immutable) })
}

/// `st_contains(wkt, longitude, latitude)`: whether the WKT geometry contains
/// the point, OGC semantics (a point on the boundary is not contained).
pub fn st_contains_udf() -> ScalarUDF {
    ScalarUDF::new_from_impl(StContainsUdf { signature: Signature::user_defined(Volatility::Immutable) })
}

/// All geodata functions over `layers`, for a `SessionStateBuilder` or a
/// distributed executor that registers functions itself.
pub fn geodata_udfs(layers: Arc<LayerSet>) -> Vec<ScalarUDF> {
    vec![geodata_udf(Arc::clone(&layers)), geo_lookup_udf(layers), st_contains_udf()]
}

/// Registers every geodata function on `ctx`.
pub fn register_all(ctx: &SessionContext, layers: Arc<LayerSet>) {
    for udf in geodata_udfs(layers) {
        ctx.register_udf(udf);
    }
}

/// Coerces arguments: `strings` leading string arguments, then two numbers
/// (longitude, latitude) as Float64.
fn coerce(name: &str, usage: &str, strings: usize, arg_types: &[DataType]) -> Result<Vec<DataType>> {
    if arg_types.len() != strings + 2 {
        return plan_err!("{name} takes {} arguments, {usage}; got {}", strings + 2, arg_types.len());
    }
    arg_types
        .iter()
        .enumerate()
        .map(|(i, t)| {
            if i < strings {
                match t {
                    DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Null => Ok(DataType::Utf8),
                    _ => plan_err!("{name}: argument {} must be a string, {usage}; got {t}", i + 1),
                }
            } else if t.is_numeric() || *t == DataType::Null {
                Ok(DataType::Float64)
            } else {
                plan_err!("{name}: argument {} must be a number, {usage}; got {t}", i + 1)
            }
        })
        .collect()
}

fn float_args<'a>(name: &str, args: &'a [ArrayRef]) -> Result<[&'a datafusion::arrow::array::Float64Array; 2]> {
    let get = |a: &'a ArrayRef| match a.data_type() {
        DataType::Float64 => Ok(a.as_primitive()),
        t => internal_err!("{name}: expected Float64 after coercion, got {t}"),
    };
    Ok([get(&args[0])?, get(&args[1])?])
}

/// The struct of `fields` for each point, one take per attribute array.
fn lookup_struct(layers: &[&crate::Layer], fields: &Fields, points: &Points<'_>) -> Result<ArrayRef> {
    let mut children = Vec::with_capacity(fields.len());
    for layer in layers {
        let features = layer.locate_points(points);
        for values in layer.values() {
            children.push(take(values.as_ref(), &features, None)?);
        }
    }
    Ok(Arc::new(StructArray::try_new(fields.clone(), children, Some(points.validity().clone()))?))
}

#[derive(Debug)]
struct GeodataUdf {
    layers: Arc<LayerSet>,
    signature: Signature,
}

impl PartialEq for GeodataUdf {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.layers, &other.layers)
    }
}
impl Eq for GeodataUdf {}
impl Hash for GeodataUdf {
    fn hash<H: Hasher>(&self, state: &mut H) {
        Arc::as_ptr(&self.layers).hash(state);
    }
}

const GEODATA_USAGE: &str = "geodata(longitude, latitude)";

impl ScalarUDFImpl for GeodataUdf {
    fn name(&self) -> &str {
        "geodata"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        coerce("geodata", GEODATA_USAGE, 0, arg_types)
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        if self.layers.fields().is_empty() {
            return plan_err!("geodata: no geodata layers are loaded; configure at least one layer file");
        }
        Ok(DataType::Struct(self.layers.fields().clone()))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = args.args.into_iter().map(|a| a.into_array(args.number_rows)).collect::<Result<Vec<_>>>()?;
        let [lon, lat] = float_args("geodata", &arrays)?;
        let points = Points::new(lon, lat);
        let layers: Vec<_> = self.layers.layers().iter().collect();
        Ok(ColumnarValue::Array(lookup_struct(&layers, self.layers.fields(), &points)?))
    }

    fn documentation(&self) -> Option<&Documentation> {
        static DOC: OnceLock<Documentation> = OnceLock::new();
        Some(DOC.get_or_init(|| {
            Documentation::builder(
                DOC_SECTION_GEO,
                "The attributes of the features containing the point, one field per attribute \
                 of every loaded layer (all strings). Fields of a layer with no feature at the \
                 point are NULL; NULL, NaN, infinite input or |latitude| > 90 gives a NULL struct.",
                "geodata(longitude, latitude)",
            )
            .with_argument("longitude", "Degrees east, any finite value (normalised to [-180, 180)).")
            .with_argument("latitude", "Degrees north, in [-90, 90].")
            .with_sql_example("SELECT geodata(-118.24, 34.05)['state'];")
            .build()
        }))
    }
}

#[derive(Debug)]
struct GeoLookupUdf {
    layers: Arc<LayerSet>,
    signature: Signature,
}

impl PartialEq for GeoLookupUdf {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.layers, &other.layers)
    }
}
impl Eq for GeoLookupUdf {}
impl Hash for GeoLookupUdf {
    fn hash<H: Hasher>(&self, state: &mut H) {
        Arc::as_ptr(&self.layers).hash(state);
    }
}

const GEO_LOOKUP_USAGE: &str = "geo_lookup('layer', longitude, latitude)";

impl GeoLookupUdf {
    fn layer(&self, name: Option<&ScalarValue>) -> Result<&crate::Layer> {
        let name = match name {
            Some(ScalarValue::Utf8(Some(s)) | ScalarValue::LargeUtf8(Some(s)) | ScalarValue::Utf8View(Some(s))) => s,
            _ => {
                return plan_err!("geo_lookup: the layer must be a string literal, {GEO_LOOKUP_USAGE}");
            }
        };
        match self.layers.layer(name) {
            Some(layer) => Ok(layer),
            None => {
                let known: Vec<&str> = self.layers.layers().iter().map(|l| l.name()).collect();
                plan_err!(
                    "geo_lookup: no layer named '{name}'; loaded layers: {}",
                    if known.is_empty() { "none".to_string() } else { known.join(", ") }
                )
            }
        }
    }
}

impl ScalarUDFImpl for GeoLookupUdf {
    fn name(&self) -> &str {
        "geo_lookup"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        coerce("geo_lookup", GEO_LOOKUP_USAGE, 1, arg_types)
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        internal_err!("geo_lookup: return_field_from_args is used instead")
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        let layer = self.layer(args.scalar_arguments.first().copied().flatten())?;
        Ok(Arc::new(Field::new("geo_lookup", DataType::Struct(layer.fields().clone()), true)))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let mut it = args.args.into_iter();
        let name = match it.next() {
            Some(ColumnarValue::Scalar(s)) => s,
            _ => return exec_err!("geo_lookup: the layer must be a string literal, {GEO_LOOKUP_USAGE}"),
        };
        let layer = self.layer(Some(&name))?;
        let arrays = it.map(|a| a.into_array(args.number_rows)).collect::<Result<Vec<_>>>()?;
        let [lon, lat] = float_args("geo_lookup", &arrays)?;
        let points = Points::new(lon, lat);
        Ok(ColumnarValue::Array(lookup_struct(&[layer], layer.fields(), &points)?))
    }

    fn documentation(&self) -> Option<&Documentation> {
        static DOC: OnceLock<Documentation> = OnceLock::new();
        Some(DOC.get_or_init(|| {
            Documentation::builder(
                DOC_SECTION_GEO,
                "The attributes of the feature of one layer containing the point, as a struct \
                 of strings; same rules as geodata().",
                "geo_lookup('layer', longitude, latitude)",
            )
            .with_argument("layer", "Name of a loaded layer, a string literal.")
            .with_argument("longitude", "Degrees east.")
            .with_argument("latitude", "Degrees north.")
            .with_sql_example("SELECT geo_lookup('states', -118.24, 34.05)['state'];")
            .build()
        }))
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct StContainsUdf {
    signature: Signature,
}

const ST_CONTAINS_USAGE: &str = "st_contains(wkt, longitude, latitude)";

fn parse_geometry(text: &str) -> std::result::Result<Geometry<f64>, String> {
    let wkt = Wkt::<f64>::from_str(text.trim()).map_err(|e| e.to_string())?;
    Geometry::try_from(wkt).map_err(|e| e.to_string())
}

impl ScalarUDFImpl for StContainsUdf {
    fn name(&self) -> &str {
        "st_contains"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        coerce("st_contains", ST_CONTAINS_USAGE, 1, arg_types)
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Boolean)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let n = args.number_rows;
        let mut it = args.args.into_iter();
        let (Some(shape), Some(lon), Some(lat)) = (it.next(), it.next(), it.next()) else {
            return internal_err!("st_contains: expected 3 arguments");
        };
        let coords = [lon.into_array(n)?, lat.into_array(n)?];
        let [lon, lat] = float_args("st_contains", &coords)?;
        let mut out = BooleanBuilder::with_capacity(n);
        match shape {
            ColumnarValue::Scalar(s) => {
                let geometry = match &s {
                    ScalarValue::Utf8(Some(t)) => match parse_geometry(t) {
                        Ok(g) => Some(g),
                        Err(e) => return exec_err!("st_contains: invalid WKT: {e}"),
                    },
                    _ => None,
                };
                for i in 0..n {
                    match &geometry {
                        Some(g) if lon.is_valid(i) && lat.is_valid(i) => {
                            out.append_value(g.contains(&Point::new(lon.value(i), lat.value(i))))
                        }
                        _ => out.append_null(),
                    }
                }
            }
            ColumnarValue::Array(shapes) => {
                let shapes = shapes.as_string::<i32>();
                // Rows often repeat the same polygon (a join, a CROSS JOIN
                // with a small table): parse once per run of equal values.
                let mut cached: Option<(usize, Geometry<f64>)> = None;
                for i in 0..n {
                    if shapes.is_null(i) || lon.is_null(i) || lat.is_null(i) {
                        out.append_null();
                        continue;
                    }
                    let text = shapes.value(i);
                    let hit = matches!(&cached, Some((j, _)) if shapes.value(*j) == text);
                    if !hit {
                        match parse_geometry(text) {
                            Ok(g) => cached = Some((i, g)),
                            Err(e) => return exec_err!("st_contains: invalid WKT in row {i}: {e}"),
                        }
                    }
                    let contains =
                        cached.as_ref().is_some_and(|(_, g)| g.contains(&Point::new(lon.value(i), lat.value(i))));
                    out.append_value(contains);
                }
            }
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }

    fn documentation(&self) -> Option<&Documentation> {
        static DOC: OnceLock<Documentation> = OnceLock::new();
        Some(DOC.get_or_init(|| {
            Documentation::builder(
                DOC_SECTION_GEO,
                "Whether the WKT geometry contains the point, in plane coordinates and with \
                 OGC semantics: a point on the boundary is not contained. NULL if any argument \
                 is NULL.",
                "st_contains(wkt, longitude, latitude)",
            )
            .with_argument("wkt", "A WKT geometry, usually a POLYGON or MULTIPOLYGON.")
            .with_argument("longitude", "x coordinate.")
            .with_argument("latitude", "y coordinate.")
            .with_sql_example("SELECT st_contains('POLYGON ((0 0, 2 0, 2 2, 0 2, 0 0))', 1, 1);")
            .build()
        }))
    }
}
