//! The point-in-polygon index of one layer.
//!
//! Three levels, each answering what it can and handing the rest down:
//!
//! 1. A two-level grid. Tiles cover the layer's bounding box; a tile that no
//!    polygon edge touches is inside one feature (or none) as a whole, so its
//!    answer is stored in it. A tile that edges touch gets a finer sub-grid
//!    sized by its edge count, whose untouched cells store their answer too.
//!    Most points are answered here with two array reads.
//! 2. An `rstar` R-tree over the bounding boxes of polygon *parts* (every
//!    polygon of a MULTIPOLYGON is a part) finds the candidate parts of each
//!    cell that edges touch. The lists are computed once at build time and
//!    stored with the cell, in feature order, so a lookup stops at the first
//!    part that contains the point.
//! 3. An exact crossing-number test per candidate. Each part's edges are
//!    sorted into horizontal bands, so the test reads only the edges of the
//!    band the point's latitude falls in.
//!
//! The crossing test is half-open: an edge counts when it straddles the
//! point's latitude with its lower end included and its upper end excluded,
//! and when the point lies strictly west of it. A point exactly on an edge is
//! therefore inside the polygon to its east (for a horizontal edge: the
//! polygon to its north), so a point on a border shared by two polygons
//! belongs to exactly one of them. Edges are stored with their lower end
//! first whatever the ring's direction, so both polygons sharing an edge
//! evaluate the same arithmetic on it and agree even where rounding decides.
//! Holes are rings like any other: crossing one flips the parity back.
//! Where several features of a layer contain a point, the lowest feature
//! (first in the file) wins.

use std::ops::ControlFlow;

use geo::Contains;
use geo_types::{Coord, Point, Polygon};
use rstar::primitives::{GeomWithData, Rectangle};
use rstar::{AABB, RTree};

/// Cell or lookup value meaning "no feature here".
pub(crate) const NO_FEATURE: u32 = u32::MAX;
/// Largest number of features a layer may hold, so that feature numbers never
/// collide with the cell markers below.
pub(crate) const MAX_FEATURES: usize = 1 << 30;
/// Sub-grid cell values from here (below `SUB_BASE`) name a candidate list:
/// edges touch the cell, so its points need the exact test.
const CANDIDATES_BASE: u32 = 1 << 30;
/// Tile values from here (below `NO_FEATURE`) name a sub-grid.
const SUB_BASE: u32 = 1 << 31;

/// How to find the feature containing a point. All strategies give the same
/// answer off boundaries; they exist to measure what each level buys.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum LocateStrategy {
    /// Grid, then R-tree, then the banded crossing test (what the SQL
    /// functions use).
    #[default]
    Indexed,
    /// R-tree, then the banded crossing test, without the grid.
    RTreeBands,
    /// R-tree, then `geo`'s `Contains` on the candidate polygons, the usual
    /// baseline. Points on a boundary are outside under this strategy (OGC
    /// semantics), unlike the other two.
    RTreeGeo,
}

/// A non-horizontal polygon edge, lower end first.
#[derive(Debug, Clone, Copy)]
struct Edge {
    y0: f64,
    y1: f64,
    x0: f64,
    /// dx/dy, so the edge's longitude at latitude y is `x0 + (y - y0) * slope`.
    slope: f64,
}

impl Edge {
    fn new(a: Coord<f64>, b: Coord<f64>) -> Option<Self> {
        let (lo, hi) = match a.y.partial_cmp(&b.y)? {
            std::cmp::Ordering::Less => (a, b),
            std::cmp::Ordering::Greater => (b, a),
            std::cmp::Ordering::Equal => return None,
        };
        Some(Self { y0: lo.y, y1: hi.y, x0: lo.x, slope: (hi.x - lo.x) / (hi.y - lo.y) })
    }

    /// Whether a ray from (x, y) towards +x crosses this edge (half-open).
    #[inline(always)]
    fn crosses(&self, x: f64, y: f64) -> bool {
        y >= self.y0 && y < self.y1 && x < self.x0 + (y - self.y0) * self.slope
    }
}

#[derive(Debug)]
struct Part {
    feature: u32,
    y0: f64,
    band_scale: f64,
    bands: u32,
    /// Index into `band_offsets` of this part's first band.
    first_band: u32,
}

/// A rectangle divided into `nx * ny` equal cells.
#[derive(Debug, Clone, Copy)]
struct Frame {
    x0: f64,
    y0: f64,
    w: f64,
    h: f64,
    inv_w: f64,
    inv_h: f64,
    nx: usize,
    ny: usize,
}

impl Frame {
    fn new(x0: f64, y0: f64, x1: f64, y1: f64, nx: usize, ny: usize) -> Self {
        let (w, h) = ((x1 - x0) / nx as f64, (y1 - y0) / ny as f64);
        let inv = |s: f64| if s > 0.0 { 1.0 / s } else { 0.0 };
        Self { x0, y0, w, h, inv_w: inv(w), inv_h: inv(h), nx, ny }
    }

    /// Column of `x`, clamped to the frame (a negative or NaN product
    /// saturates to 0 in the cast).
    #[inline(always)]
    fn col(&self, x: f64) -> usize {
        (((x - self.x0) * self.inv_w) as usize).min(self.nx - 1)
    }

    #[inline(always)]
    fn row(&self, y: f64) -> usize {
        (((y - self.y0) * self.inv_h) as usize).min(self.ny - 1)
    }

    #[inline(always)]
    fn cell(&self, x: f64, y: f64) -> usize {
        self.row(y) * self.nx + self.col(x)
    }

    fn center(&self, c: usize, r: usize) -> (f64, f64) {
        (self.x0 + (c as f64 + 0.5) * self.w, self.y0 + (r as f64 + 0.5) * self.h)
    }

    /// Calls `mark(col, row)` for every cell the segment a-b touches,
    /// conservatively: cells it passes within a millionth of a cell of are
    /// marked too, so rounding in [`Frame::cell`] never puts a point on the
    /// segment into an unmarked cell.
    fn rasterize(&self, a: Coord<f64>, b: Coord<f64>, mut mark: impl FnMut(usize, usize)) {
        let (ex, ey) = (self.w * 1e-6, self.h * 1e-6);
        let (ymin, ymax) = (a.y.min(b.y), a.y.max(b.y));
        for r in self.row(ymin - ey)..=self.row(ymax + ey) {
            let lo = ymin.max(self.y0 + r as f64 * self.h - ey);
            let hi = ymax.min(self.y0 + (r + 1) as f64 * self.h + ey);
            let (xa, xb) = if a.y == b.y {
                (a.x, b.x)
            } else {
                let at = |y: f64| a.x + (y - a.y) / (b.y - a.y) * (b.x - a.x);
                (at(lo.min(hi)), at(hi.max(lo)))
            };
            for c in self.col(xa.min(xb) - ex)..=self.col(xa.max(xb) + ex) {
                mark(c, r);
            }
        }
    }
}

#[derive(Debug)]
struct Grid {
    x0: f64,
    y0: f64,
    x1: f64,
    y1: f64,
    frame: Frame,
    tiles: Vec<u32>,
    subs: Vec<(Frame, usize)>,
    sub_cells: Vec<u32>,
    /// Candidate list `i` is `candidates[candidate_offsets[i]..candidate_offsets[i + 1]]`.
    candidate_offsets: Vec<u32>,
    candidates: Vec<u32>,
}

impl Grid {
    /// A feature, [`NO_FEATURE`], or the candidate parts to test.
    #[inline(always)]
    fn lookup(&self, x: f64, y: f64) -> Result<u32, &[u32]> {
        // Half-open like the crossing test: the east and north edges of the
        // bounding box belong to no part. Also false for NaN.
        if !(x >= self.x0 && x < self.x1 && y >= self.y0 && y < self.y1) {
            return Ok(NO_FEATURE);
        }
        let tile = self.tiles[self.frame.cell(x, y)];
        if !(SUB_BASE..NO_FEATURE).contains(&tile) {
            return Ok(tile);
        }
        let (frame, offset) = &self.subs[(tile - SUB_BASE) as usize];
        let cell = self.sub_cells[offset + frame.cell(x, y)];
        if !(CANDIDATES_BASE..SUB_BASE).contains(&cell) {
            return Ok(cell);
        }
        let list = (cell - CANDIDATES_BASE) as usize;
        let (start, end) = (self.candidate_offsets[list], self.candidate_offsets[list + 1]);
        Err(&self.candidates[start as usize..end as usize])
    }

    fn empty() -> Self {
        Self {
            x0: 0.0,
            y0: 0.0,
            x1: 0.0,
            y1: 0.0,
            frame: Frame::new(0.0, 0.0, 1.0, 1.0, 1, 1),
            tiles: vec![NO_FEATURE],
            subs: Vec::new(),
            sub_cells: Vec::new(),
            candidate_offsets: vec![0],
            candidates: Vec::new(),
        }
    }
}

/// See the module documentation.
#[derive(Debug)]
pub(crate) struct PolygonIndex {
    parts: Vec<Part>,
    band_offsets: Vec<u32>,
    band_edges: Vec<Edge>,
    polygons: Vec<Polygon<f64>>,
    tree: RTree<GeomWithData<Rectangle<[f64; 2]>, u32>>,
    grid: Grid,
}

/// Edges per band the band count aims at.
const EDGES_PER_BAND: usize = 4;
/// Grid tiles per polygon part.
const TILES_PER_PART: usize = 4;
/// Sub-grid cells per edge in a tile.
const CELLS_PER_EDGE: usize = 16;

impl PolygonIndex {
    /// Builds the index over `features`, each a list of polygons; feature
    /// numbers are positions in `features`.
    pub(crate) fn build(features: &[Vec<Polygon<f64>>]) -> Self {
        let mut parts = Vec::new();
        let mut band_offsets = Vec::new();
        let mut band_edges = Vec::new();
        let mut polygons = Vec::new();
        let mut envelopes = Vec::new();
        for (feature, feature_polygons) in features.iter().enumerate() {
            for polygon in feature_polygons {
                let coords =
                    || std::iter::once(polygon.exterior()).chain(polygon.interiors()).flat_map(|ring| ring.0.iter());
                let (mut xmin, mut ymin, mut xmax, mut ymax) =
                    (f64::INFINITY, f64::INFINITY, f64::NEG_INFINITY, f64::NEG_INFINITY);
                for c in coords() {
                    (xmin, ymin) = (xmin.min(c.x), ymin.min(c.y));
                    (xmax, ymax) = (xmax.max(c.x), ymax.max(c.y));
                }
                if xmin > xmax {
                    continue;
                }
                let edges: Vec<Edge> = std::iter::once(polygon.exterior())
                    .chain(polygon.interiors())
                    .flat_map(|ring| ring.0.windows(2).filter_map(|w| Edge::new(w[0], w[1])))
                    .collect();
                let bands = (edges.len() / EDGES_PER_BAND).clamp(1, 1 << 16);
                let band_scale = if ymax > ymin { bands as f64 / (ymax - ymin) } else { 0.0 };
                let band_of = |y: f64| (((y - ymin) * band_scale) as usize).min(bands - 1);
                let mut counts = vec![0u32; bands];
                for e in &edges {
                    for count in &mut counts[band_of(e.y0)..=band_of(e.y1)] {
                        *count += 1;
                    }
                }
                let first_band = band_offsets.len() as u32;
                let base = band_edges.len();
                let mut start = base;
                let mut cursor = Vec::with_capacity(bands);
                for count in &counts {
                    band_offsets.push(start as u32);
                    cursor.push(start);
                    start += *count as usize;
                }
                band_offsets.push(start as u32);
                band_edges.resize(start, Edge { y0: 0.0, y1: 0.0, x0: 0.0, slope: 0.0 });
                for e in &edges {
                    for b in band_of(e.y0)..=band_of(e.y1) {
                        band_edges[cursor[b]] = *e;
                        cursor[b] += 1;
                    }
                }
                envelopes
                    .push(GeomWithData::new(Rectangle::from_corners([xmin, ymin], [xmax, ymax]), parts.len() as u32));
                parts.push(Part { feature: feature as u32, y0: ymin, band_scale, bands: bands as u32, first_band });
                polygons.push(polygon.clone());
            }
        }
        let mut index =
            Self { parts, band_offsets, band_edges, polygons, tree: RTree::bulk_load(envelopes), grid: Grid::empty() };
        index.grid = index.build_grid();
        index
    }

    fn build_grid(&self) -> Grid {
        let envelope = self.tree.root().envelope();
        let ([x0, y0], [x1, y1]) = (envelope.lower(), envelope.upper());
        if self.parts.is_empty() || !(x1 > x0 && y1 > y0) {
            return Grid::empty();
        }
        let target = (self.parts.len() * TILES_PER_PART).clamp(64, 1 << 18);
        let (nx, ny) = dims(target, x1 - x0, y1 - y0, 1 << 12);
        let frame = Frame::new(x0, y0, x1, y1, nx, ny);
        let mut tile_edges: Vec<Vec<(Coord<f64>, Coord<f64>)>> = vec![Vec::new(); nx * ny];
        for polygon in &self.polygons {
            for ring in std::iter::once(polygon.exterior()).chain(polygon.interiors()) {
                for w in ring.0.windows(2) {
                    frame.rasterize(w[0], w[1], |c, r| tile_edges[r * nx + c].push((w[0], w[1])));
                }
            }
        }
        let mut tiles = vec![NO_FEATURE; nx * ny];
        let mut subs = Vec::new();
        let mut sub_cells = Vec::new();
        let mut candidate_offsets = vec![0u32];
        let mut candidates = Vec::new();
        for r in 0..ny {
            for c in 0..nx {
                let edges = &tile_edges[r * nx + c];
                tiles[r * nx + c] = if edges.is_empty() {
                    resolve_run(&tiles, r * nx + c, c, &tile_edges, || {
                        let (x, y) = frame.center(c, r);
                        self.locate_tree(x, y)
                    })
                } else {
                    let tx0 = frame.x0 + c as f64 * frame.w;
                    let ty0 = frame.y0 + r as f64 * frame.h;
                    let target = (edges.len() * CELLS_PER_EDGE).clamp(4, 1 << 14);
                    let (sx, sy) = dims(target, frame.w, frame.h, 256);
                    let sub = Frame::new(tx0, ty0, tx0 + frame.w, ty0 + frame.h, sx, sy);
                    let mut marked = vec![false; sx * sy];
                    for (a, b) in edges {
                        sub.rasterize(*a, *b, |c, r| marked[r * sx + c] = true);
                    }
                    let offset = sub_cells.len();
                    let mut cells = vec![NO_FEATURE; sx * sy];
                    for sr in 0..sy {
                        for sc in 0..sx {
                            let i = sr * sx + sc;
                            cells[i] = if marked[i] {
                                let list = self.candidates_in(&sub, sc, sr);
                                if list.is_empty() {
                                    NO_FEATURE
                                } else {
                                    candidates.extend_from_slice(&list);
                                    candidate_offsets.push(candidates.len() as u32);
                                    CANDIDATES_BASE + (candidate_offsets.len() - 2) as u32
                                }
                            } else if sc > 0 && !marked[i - 1] {
                                cells[i - 1]
                            } else {
                                let (x, y) = sub.center(sc, sr);
                                self.locate_tree(x, y)
                            };
                        }
                    }
                    sub_cells.extend_from_slice(&cells);
                    subs.push((sub, offset));
                    SUB_BASE + (subs.len() - 1) as u32
                };
            }
        }
        Grid { x0, y0, x1, y1, frame, tiles, subs, sub_cells, candidate_offsets, candidates }
    }

    /// Parts whose bounding box meets cell (c, r) of `frame`, widened by a
    /// millionth of a cell as in [`Frame::rasterize`], in feature order.
    fn candidates_in(&self, frame: &Frame, c: usize, r: usize) -> Vec<u32> {
        let (ex, ey) = (frame.w * 1e-6, frame.h * 1e-6);
        let x0 = frame.x0 + c as f64 * frame.w;
        let y0 = frame.y0 + r as f64 * frame.h;
        let cell = AABB::from_corners([x0 - ex, y0 - ey], [x0 + frame.w + ex, y0 + frame.h + ey]);
        let mut list: Vec<u32> = self.tree.locate_in_envelope_intersecting(&cell).map(|p| p.data).collect();
        list.sort_unstable();
        list
    }

    /// The lowest feature containing (x, y), or [`NO_FEATURE`]. `x` must
    /// already be normalised to [-180, 180).
    #[inline]
    pub(crate) fn locate(&self, x: f64, y: f64) -> u32 {
        match self.grid.lookup(x, y) {
            Ok(found) => found,
            Err(candidates) => candidates
                .iter()
                .map(|p| &self.parts[*p as usize])
                .find(|part| self.part_contains(part, x, y))
                .map_or(NO_FEATURE, |part| part.feature),
        }
    }

    /// [`PolygonIndex::locate`] for many points at once, in passes: all
    /// tile reads, then all sub-grid reads, then the exact tests. The reads
    /// of one pass are independent, so the CPU overlaps their cache misses
    /// instead of waiting for each point in turn. NaN x gives [`NO_FEATURE`].
    pub(crate) fn locate_many(&self, xs: &[f64], ys: &[f64], out: &mut [u32]) {
        let g = &self.grid;
        for ((o, &x), &y) in out.iter_mut().zip(xs).zip(ys) {
            *o = if x >= g.x0 && x < g.x1 && y >= g.y0 && y < g.y1 { g.tiles[g.frame.cell(x, y)] } else { NO_FEATURE };
        }
        for ((o, &x), &y) in out.iter_mut().zip(xs).zip(ys) {
            if (SUB_BASE..NO_FEATURE).contains(o) {
                let (frame, offset) = &g.subs[(*o - SUB_BASE) as usize];
                *o = g.sub_cells[offset + frame.cell(x, y)];
            }
        }
        for ((o, &x), &y) in out.iter_mut().zip(xs).zip(ys) {
            if (CANDIDATES_BASE..SUB_BASE).contains(o) {
                let list = (*o - CANDIDATES_BASE) as usize;
                let (start, end) = (g.candidate_offsets[list], g.candidate_offsets[list + 1]);
                *o = g.candidates[start as usize..end as usize]
                    .iter()
                    .map(|p| &self.parts[*p as usize])
                    .find(|part| self.part_contains(part, x, y))
                    .map_or(NO_FEATURE, |part| part.feature);
            }
        }
    }

    pub(crate) fn locate_with(&self, x: f64, y: f64, strategy: LocateStrategy) -> u32 {
        match strategy {
            LocateStrategy::Indexed => self.locate(x, y),
            LocateStrategy::RTreeBands => self.locate_tree(x, y),
            LocateStrategy::RTreeGeo => {
                let mut best = NO_FEATURE;
                let point = Point::new(x, y);
                let _ = self.tree.locate_all_at_point_int(&[x, y], |candidate| {
                    let part = &self.parts[candidate.data as usize];
                    if part.feature < best && self.polygons[candidate.data as usize].contains(&point) {
                        best = part.feature;
                    }
                    ControlFlow::<()>::Continue(())
                });
                best
            }
        }
    }

    fn locate_tree(&self, x: f64, y: f64) -> u32 {
        let mut best = NO_FEATURE;
        let _ = self.tree.locate_all_at_point_int(&[x, y], |candidate| {
            let part = &self.parts[candidate.data as usize];
            if part.feature < best && self.part_contains(part, x, y) {
                best = part.feature;
            }
            ControlFlow::<()>::Continue(())
        });
        best
    }

    #[inline]
    fn part_contains(&self, part: &Part, x: f64, y: f64) -> bool {
        let band = (((y - part.y0) * part.band_scale) as usize).min(part.bands as usize - 1);
        let i = part.first_band as usize + band;
        let edges = &self.band_edges[self.band_offsets[i] as usize..self.band_offsets[i + 1] as usize];
        edges.iter().fold(false, |inside, e| inside ^ e.crosses(x, y))
    }

    /// Number of polygon parts indexed.
    pub(crate) fn parts(&self) -> usize {
        self.parts.len()
    }
}

/// An untouched cell right of another untouched cell has the same answer:
/// no edge separates them.
fn resolve_run(
    values: &[u32],
    i: usize,
    col: usize,
    edges: &[Vec<(Coord<f64>, Coord<f64>)>],
    locate: impl FnOnce() -> u32,
) -> u32 {
    if col > 0 && edges[i - 1].is_empty() { values[i - 1] } else { locate() }
}

/// Splits about `target` cells over a `w` x `h` rectangle into near-square
/// cells, at most `max` per side.
fn dims(target: usize, w: f64, h: f64, max: usize) -> (usize, usize) {
    let aspect = if h > 0.0 && w > 0.0 { w / h } else { 1.0 };
    let nx = ((target as f64 * aspect).sqrt().ceil() as usize).clamp(1, max);
    let ny = target.div_ceil(nx).clamp(1, max);
    (nx, ny)
}

#[cfg(test)]
mod tests {
    use super::*;
    use geo_types::{LineString, polygon};

    fn square(x0: f64, y0: f64, x1: f64, y1: f64) -> Polygon<f64> {
        polygon![(x: x0, y: y0), (x: x1, y: y0), (x: x1, y: y1), (x: x0, y: y1), (x: x0, y: y0)]
    }

    fn all(index: &PolygonIndex, x: f64, y: f64) -> [u32; 2] {
        [index.locate_with(x, y, LocateStrategy::Indexed), index.locate_with(x, y, LocateStrategy::RTreeBands)]
    }

    #[test]
    fn shared_edges_follow_the_east_then_north_rule() {
        // Two unit squares side by side, and one above the left one.
        let index = PolygonIndex::build(&[
            vec![square(0.0, 0.0, 1.0, 1.0)],
            vec![square(1.0, 0.0, 2.0, 1.0)],
            vec![square(0.0, 1.0, 1.0, 2.0)],
        ]);
        // On the shared vertical edge x = 1: the polygon to the east.
        assert_eq!(all(&index, 1.0, 0.5), [1, 1]);
        // On the shared horizontal edge y = 1: the polygon to the north.
        assert_eq!(all(&index, 0.5, 1.0), [2, 2]);
        // Outer west and south edges belong to the polygon, east and north do not.
        assert_eq!(all(&index, 0.0, 0.5), [0, 0]);
        assert_eq!(all(&index, 0.5, 0.0), [0, 0]);
        assert_eq!(all(&index, 2.0, 0.5), [NO_FEATURE; 2]);
        assert_eq!(all(&index, 0.5, 2.0), [NO_FEATURE; 2]);
        // The corner shared by all three goes to whatever lies just north-east
        // of it: nothing.
        assert_eq!(all(&index, 1.0, 1.0), [NO_FEATURE; 2]);
        // Their common south-west corner belongs to feature 0.
        assert_eq!(all(&index, 0.0, 0.0), [0, 0]);
    }

    #[test]
    fn slanted_shared_edge_goes_to_exactly_one_polygon() {
        let a = polygon![(x: 0.0, y: 0.0), (x: 0.3, y: 0.0), (x: 0.7, y: 1.0), (x: 0.0, y: 1.0), (x: 0.0, y: 0.0)];
        let b = polygon![(x: 0.3, y: 0.0), (x: 1.0, y: 0.0), (x: 1.0, y: 1.0), (x: 0.7, y: 1.0), (x: 0.3, y: 0.0)];
        let index = PolygonIndex::build(&[vec![a], vec![b]]);
        for i in 0..=1000 {
            let t = i as f64 / 1000.0;
            let (x, y) = (0.3 + 0.4 * t, t);
            if y >= 1.0 {
                continue;
            }
            let [f, g] = all(&index, x, y);
            assert_eq!(f, g);
            assert!(f == 0 || f == 1, "point ({x}, {y}) on the shared edge is in no polygon");
        }
    }

    #[test]
    fn holes_are_outside_and_islands_in_holes_inside() {
        let donut = Polygon::new(
            LineString::from(vec![(0.0, 0.0), (10.0, 0.0), (10.0, 10.0), (0.0, 10.0), (0.0, 0.0)]),
            vec![LineString::from(vec![(3.0, 3.0), (3.0, 7.0), (7.0, 7.0), (7.0, 3.0), (3.0, 3.0)])],
        );
        let island = square(4.0, 4.0, 6.0, 6.0);
        let index = PolygonIndex::build(&[vec![donut], vec![island]]);
        assert_eq!(all(&index, 1.0, 1.0), [0, 0]);
        assert_eq!(all(&index, 3.5, 5.0), [NO_FEATURE; 2]);
        assert_eq!(all(&index, 5.0, 5.0), [1, 1]);
        // A hole's west edge is the hole's, so the point is outside the donut;
        // its east edge is the donut's.
        assert_eq!(all(&index, 3.0, 5.0), [NO_FEATURE; 2]);
        assert_eq!(all(&index, 7.0, 5.0), [0, 0]);
    }

    #[test]
    fn overlapping_features_lowest_wins() {
        let index = PolygonIndex::build(&[vec![square(0.0, 0.0, 2.0, 2.0)], vec![square(1.0, 1.0, 3.0, 3.0)]]);
        assert_eq!(all(&index, 1.5, 1.5), [0, 0]);
        assert_eq!(all(&index, 2.5, 2.5), [1, 1]);
    }

    #[test]
    fn multipolygon_parts_are_indexed_separately() {
        let index = PolygonIndex::build(&[vec![square(0.0, 0.0, 1.0, 1.0), square(10.0, 10.0, 11.0, 11.0)]]);
        assert_eq!(index.parts(), 2);
        assert_eq!(all(&index, 10.5, 10.5), [0, 0]);
        assert_eq!(all(&index, 5.0, 5.0), [NO_FEATURE; 2]);
    }

    #[test]
    fn strategies_agree_on_a_dense_star() {
        // A many-edged star exercises bands, sub-grids and mixed cells.
        let n = 400;
        let ring: Vec<(f64, f64)> = (0..=n)
            .map(|i| {
                let a = (i % n) as f64 / n as f64 * std::f64::consts::TAU;
                let r = if i % 2 == 0 { 10.0 } else { 4.0 };
                (r * a.cos(), r * a.sin())
            })
            .collect();
        let star = Polygon::new(LineString::from(ring), vec![]);
        let index = PolygonIndex::build(&[vec![star]]);
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 11) as f64 / (1u64 << 53) as f64 * 24.0 - 12.0
        };
        let points: Vec<(f64, f64)> = (0..20_000).map(|_| (next(), next())).collect();
        let (xs, ys): (Vec<f64>, Vec<f64>) = points.iter().copied().unzip();
        let mut many = vec![0; points.len()];
        index.locate_many(&xs, &ys, &mut many);
        for (&(x, y), &m) in points.iter().zip(&many) {
            let expect = index.locate_with(x, y, LocateStrategy::RTreeGeo);
            assert_eq!(all(&index, x, y), [expect; 2], "({x}, {y})");
            assert_eq!(m, expect, "({x}, {y})");
        }
    }
}
