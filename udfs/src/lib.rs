//! lakegate's geospatial SQL functions over *layers*: files of WKT polygons
//! with attribute columns, loaded once per process ([`LayerSet::load`]) and
//! shared by every session as an `Arc<LayerSet>`.
//!
//! * `geodata(longitude, latitude)` returns a struct with one nullable Utf8
//!   field per attribute of every layer, in layer order. Each layer is
//!   looked up independently: a point outside every polygon of a layer gets
//!   NULLs for that layer's fields, and a point outside all layers gets a
//!   struct of NULLs (the struct itself is not NULL). NULL, NaN or infinite
//!   input, or a latitude outside [-90, 90], gives a NULL struct. Longitudes
//!   are normalised to [-180, 180) first, so 241.76 is -118.24.
//! * `geo_lookup('layer', longitude, latitude)` returns one layer's struct.
//! * `st_contains(wkt, x, y)` tests one WKT geometry, with OGC semantics.
//!
//! **Boundaries.** A point exactly on an edge belongs to the polygon east of
//! the edge; on a horizontal edge, to the polygon north of it (the half-open
//! crossing rule; equivalently, the point belongs to whatever contains it
//! after an infinitesimal move east and a smaller one north). So a point on
//! a border shared by two polygons belongs to exactly one of them, a point
//! on a polygon's west or south edge is inside it, and on its east or north
//! edge outside. A point in a hole is outside. Where features of one layer
//! overlap, the first in the file wins.
//!
//! **Layer files** are TSV, CSV (RFC 4180 quoting) or Parquet with a header.
//! One column holds POLYGON or MULTIPOLYGON WKT in WGS 84 longitude/latitude;
//! the others are attributes, read as text (an empty field is NULL). Loading
//! fails, naming the file and line, on invalid WKT, on a ring that is not
//! closed (rings are never closed silently), on a coordinate outside
//! [-180, 180] x [-90, 90] (usually latitude and longitude swapped), and on a
//! polygon that crosses the antimeridian (an edge spanning more than 180° of
//! longitude, except along a pole): split such polygons at ±180°.
//! Self-intersecting or otherwise OGC-invalid polygons are kept and evaluated
//! with the even-odd rule, the area a `make_valid` repair with the odd-even
//! rule yields, and each is listed in [`LayerSet::warnings`]; with
//! [`InvalidPolygons::Reject`] they fail the load instead.
//!
//! The index is described in the `index` module: a two-level grid answers
//! most points from one cell, an `rstar` R-tree over polygon parts finds
//! candidates for the rest, and an exact crossing test reads only the edges
//! of one latitude band of each candidate.

mod error;
mod functions;
mod geometry;
mod index;
mod layer;
mod reader;

pub use error::{Error, Result};
pub use functions::{geo_lookup_udf, geodata_udf, geodata_udfs, register_all, st_contains_udf};
pub use geometry::{InvalidPolygons, LoadWarning};
pub use index::LocateStrategy;
pub use layer::{Layer, LayerSet, LayerSpec};
