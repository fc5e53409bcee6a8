//! Parses a layer's WKT into polygons and enforces the load-time rules:
//! rings must be closed (never closed silently), coordinates must be WGS 84
//! longitude/latitude, no polygon may cross the antimeridian, and invalid
//! polygons are either rejected or kept with a warning.

use std::path::Path;
use std::str::FromStr;

use geo::Validation;
use geo_types::{Coord, LineString, Polygon};
use wkt::Wkt;

use crate::error::{Error, Result};

/// What to do with a polygon that parses but is not valid in the OGC sense
/// (self-intersecting ring, hole outside its shell, rings crossing).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum InvalidPolygons {
    /// Keep the polygon and evaluate it with the even-odd rule (a point is
    /// inside when a ray from it crosses the polygon's rings an odd number of
    /// times), the same area a `make_valid` repair with the odd-even rule
    /// yields. Each such polygon is reported in [`crate::LayerSet::warnings`].
    #[default]
    Keep,
    /// Fail the load with [`Error::InvalidPolygon`].
    Reject,
}

/// A polygon that was kept although invalid; see [`InvalidPolygons::Keep`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadWarning {
    /// Layer the polygon belongs to.
    pub layer: String,
    /// Line of the feature in the layer file (the header is line 1).
    pub line: usize,
    /// What is wrong with it.
    pub message: String,
}

impl std::fmt::Display for LoadWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "layer `{}` line {}: {} (kept, evaluated with the even-odd rule)",
            self.layer, self.line, self.message
        )
    }
}

/// Where a WKT value came from, for error messages.
pub(crate) struct Origin<'a> {
    pub(crate) path: &'a Path,
    pub(crate) line: usize,
}

/// Parses one feature's WKT into its polygons. Invalid polygons are returned
/// with their reason when `policy` is `Keep`.
pub(crate) fn parse_feature(
    text: &str,
    origin: &Origin<'_>,
    policy: InvalidPolygons,
    mut on_invalid: impl FnMut(String),
) -> Result<Vec<Polygon<f64>>> {
    let path = || origin.path.to_path_buf();
    let line = origin.line;
    let wkt = Wkt::<f64>::from_str(text.trim()).map_err(|message| Error::InvalidWkt {
        path: path(),
        line,
        message: message.to_string(),
    })?;
    let polygons: Vec<&wkt::types::Polygon<f64>> = match &wkt {
        Wkt::Polygon(p) => vec![p],
        Wkt::MultiPolygon(mp) => mp.polygons().iter().collect(),
        other => {
            return Err(Error::NotAPolygon {
                path: path(),
                line,
                found: match other {
                    Wkt::Point(_) => "POINT",
                    Wkt::LineString(_) => "LINESTRING",
                    Wkt::MultiPoint(_) => "MULTIPOINT",
                    Wkt::MultiLineString(_) => "MULTILINESTRING",
                    _ => "GEOMETRYCOLLECTION",
                },
            });
        }
    };
    let mut out = Vec::with_capacity(polygons.len());
    for (pi, polygon) in polygons.iter().enumerate() {
        let mut rings = Vec::with_capacity(polygon.rings().len());
        for (ri, ring) in polygon.rings().iter().enumerate() {
            rings.push(ring_to_geo(ring.coords(), origin, pi + 1, ri + 1)?);
        }
        if rings.is_empty() {
            // `POLYGON EMPTY` and empty members of a MULTIPOLYGON cover nothing.
            continue;
        }
        let exterior = rings.remove(0);
        let polygon = Polygon::new(exterior, rings);
        if let Err(reason) = polygon.check_validation() {
            match policy {
                InvalidPolygons::Reject => {
                    return Err(Error::InvalidPolygon {
                        path: path(),
                        line,
                        polygon: pi + 1,
                        reason: reason.to_string(),
                    });
                }
                InvalidPolygons::Keep => on_invalid(format!("polygon {}: {reason}", pi + 1)),
            }
        }
        out.push(polygon);
    }
    Ok(out)
}

fn ring_to_geo(
    coords: &[wkt::types::Coord<f64>],
    origin: &Origin<'_>,
    polygon: usize,
    ring: usize,
) -> Result<LineString<f64>> {
    let path = || origin.path.to_path_buf();
    let line = origin.line;
    if coords.len() < 4 {
        return Err(Error::TooFewPoints { path: path(), line, polygon, ring, points: coords.len() });
    }
    for c in coords {
        if !(c.x.is_finite() && c.y.is_finite() && c.x.abs() <= 180.0 && c.y.abs() <= 90.0) {
            return Err(Error::CoordinateOutOfRange { path: path(), line, x: c.x, y: c.y });
        }
    }
    let (first, last) = (coords[0], coords[coords.len() - 1]);
    if first.x != last.x || first.y != last.y {
        return Err(Error::UnclosedRing {
            path: path(),
            line,
            polygon,
            ring,
            first_x: first.x,
            first_y: first.y,
            last_x: last.x,
            last_y: last.y,
        });
    }
    for w in coords.windows(2) {
        // An edge longer than half the globe is the short way round across
        // ±180°, unless it runs along a pole, where longitude is meaningless.
        let along_pole = w[0].y == w[1].y && w[0].y.abs() == 90.0;
        if (w[1].x - w[0].x).abs() > 180.0 && !along_pole {
            return Err(Error::CrossesAntimeridian { path: path(), line, polygon, from: w[0].x, to: w[1].x });
        }
    }
    Ok(LineString::new(coords.iter().map(|c| Coord { x: c.x, y: c.y }).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<Polygon<f64>>> {
        let origin = Origin { path: Path::new("layer.tsv"), line: 7 };
        parse_feature(text, &origin, InvalidPolygons::Reject, |_| {})
    }

    #[test]
    fn multipolygon_parts_and_holes() {
        let p = parse(
            "MULTIPOLYGON (((0 0, 10 0, 10 10, 0 10, 0 0), (2 2, 2 4, 4 4, 4 2, 2 2)), ((20 0, 21 0, 21 1, 20 0)))",
        )
        .expect("valid");
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].interiors().len(), 1);
    }

    #[test]
    fn unclosed_ring_is_an_error_not_closed_silently() {
        let err = parse("POLYGON ((0 0, 1 0, 1 1, 0 1))").expect_err("unclosed");
        assert!(matches!(err, Error::UnclosedRing { line: 7, ring: 1, .. }), "{err}");
        assert!(err.to_string().starts_with("layer.tsv:7: ring 1 of polygon 1 is not closed"));
    }

    #[test]
    fn invalid_wkt_names_file_and_line() {
        let err = parse("POLYGON ((0 0, 1 0, 1 1, 0 0)").expect_err("bad wkt");
        assert!(err.to_string().starts_with("layer.tsv:7: invalid WKT"), "{err}");
        let err = parse("POINT (1 2)").expect_err("not a polygon");
        assert!(matches!(err, Error::NotAPolygon { found: "POINT", .. }), "{err}");
    }

    #[test]
    fn latitude_longitude_swapped_files_are_rejected() {
        let err = parse("POLYGON ((34 -118, 35 -118, 35 -117, 34 -118))").expect_err("lat/lon swapped");
        assert!(matches!(err, Error::CoordinateOutOfRange { .. }), "{err}");
    }

    #[test]
    fn antimeridian_crossing_is_rejected_but_pole_edges_are_not() {
        let err = parse("POLYGON ((179 0, -179 0, -179 1, 179 1, 179 0))").expect_err("crosses");
        assert!(matches!(err, Error::CrossesAntimeridian { .. }), "{err}");
        parse("POLYGON ((-180 -80, 0 -70, 180 -80, 180 -90, -180 -90, -180 -80))").expect("pole edge");
    }

    #[test]
    fn self_intersection_rejected_or_kept_with_warning() {
        let bowtie = "POLYGON ((0 0, 10 10, 10 0, 0 10, 0 0))";
        let err = parse(bowtie).expect_err("bowtie");
        assert!(matches!(err, Error::InvalidPolygon { .. }), "{err}");
        let origin = Origin { path: Path::new("layer.tsv"), line: 3 };
        let mut warnings = Vec::new();
        let p = parse_feature(bowtie, &origin, InvalidPolygons::Keep, |w| warnings.push(w)).expect("kept");
        assert_eq!(p.len(), 1);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
    }
}
