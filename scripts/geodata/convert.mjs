// Converts the us-atlas and world-atlas TopoJSON files into lakegate layer
// files: one polygon feature per line, WKT in the `wkt` column, attributes in
// the other columns.
//
// Setup (node_modules is git-ignored):
//   cd scripts/geodata && npm install
//
// Usage:
//   node convert.mjs [--out DIR]            small test layers (default DIR: tests/data/geo)
//   node convert.mjs --all-counties FILE    every US county (benchmark layer, not committed)
//
// Coordinates are rounded to 6 decimals (~0.1 m). TopoJSON quantisation is
// far coarser than that, so rounding never merges two distinct vertices, and
// a vertex shared by two features rounds to the same value in both: shared
// borders stay exactly shared, which lakegate's boundary rule relies on.

import { createRequire } from "node:module";
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import * as topojson from "topojson-client";

const require = createRequire(import.meta.url);
const here = dirname(fileURLToPath(import.meta.url));
const repoRoot = resolve(here, "..", "..");

const fmt = (v) => {
  const r = Math.round(v * 1e6) / 1e6;
  return Object.is(r, -0) ? "0" : String(r);
};

function ringWkt(ring) {
  const pts = [];
  for (const [x, y] of ring) {
    const p = `${fmt(x)} ${fmt(y)}`;
    if (pts[pts.length - 1] !== p) pts.push(p);
  }
  if (pts[0] !== pts[pts.length - 1]) pts.push(pts[0]);
  return pts.length >= 4 ? "(" + pts.join(", ") + ")" : null;
}

function polygonBody(rings) {
  const [shell, ...holes] = rings.map(ringWkt);
  if (!shell) return null;
  return "(" + [shell, ...holes.filter(Boolean)].join(", ") + ")";
}

// world-atlas stitches polygons across the antimeridian (for spherical
// rendering); lakegate layers are planar in [-180, 180], so cut them at ±180°.
// A ring is unwrapped into continuous longitudes; a ring that winds around a
// pole (Antarctica) is closed along the pole; then each 360°-wide window is
// clipped out and shifted back into [-180, 180].
const crossesAntimeridian = (ring) =>
  ring.some((p, i) => i > 0 && Math.abs(p[0] - ring[i - 1][0]) > 180);

function unwrap(ring) {
  const out = [[ring[0][0], ring[0][1]]];
  let offset = 0;
  for (let i = 1; i < ring.length; i++) {
    const d = ring[i][0] - ring[i - 1][0];
    if (d > 180) offset -= 360;
    else if (d < -180) offset += 360;
    out.push([ring[i][0] + offset, ring[i][1]]);
  }
  const first = out[0];
  const last = out[out.length - 1];
  if (last[0] !== first[0]) {
    const mean = out.reduce((s, p) => s + p[1], 0) / out.length;
    const pole = mean < 0 ? -90 : 90;
    out.push([last[0], pole], [first[0], pole], [first[0], first[1]]);
  }
  return out;
}

function clipX(ring, keep, xc) {
  const pts = ring.slice(0, -1);
  const out = [];
  const cross = (a, b) => [xc, a[1] + ((xc - a[0]) * (b[1] - a[1])) / (b[0] - a[0])];
  for (let i = 0; i < pts.length; i++) {
    const cur = pts[i];
    const prev = pts[(i + pts.length - 1) % pts.length];
    if (keep(cur[0])) {
      if (!keep(prev[0])) out.push(cross(prev, cur));
      out.push(cur);
    } else if (keep(prev[0])) {
      out.push(cross(prev, cur));
    }
  }
  if (out.length) out.push(out[0]);
  return out;
}

function splitPolygon(rings) {
  if (!rings.some(crossesAntimeridian)) return [rings];
  const unwrapped = rings.map(unwrap);
  const xs = unwrapped.flat().map((p) => p[0]);
  const kMin = Math.floor((Math.min(...xs) + 180) / 360);
  const kMax = Math.floor((Math.max(...xs) + 180) / 360);
  const pieces = [];
  for (let k = kMin; k <= kMax; k++) {
    const lo = -180 + 360 * k;
    const hi = 180 + 360 * k;
    const clipped = unwrapped
      .map((r) => clipX(clipX(r, (x) => x >= lo, lo), (x) => x <= hi, hi))
      .map((r) => r.map(([x, y]) => [x - 360 * k, y]));
    if (clipped[0].length >= 4) pieces.push([clipped[0], ...clipped.slice(1).filter((r) => r.length >= 4)]);
  }
  return pieces;
}

function geometryWkt(geometry) {
  if (!geometry) return null;
  const polygons = geometry.type === "Polygon" ? [geometry.coordinates]
    : geometry.type === "MultiPolygon" ? geometry.coordinates
    : null;
  if (!polygons) throw new Error(`unsupported geometry type ${geometry.type}`);
  const bodies = polygons.flatMap(splitPolygon).map(polygonBody).filter(Boolean);
  if (bodies.length === 0) return null;
  if (geometry.type === "Polygon" && bodies.length === 1) return "POLYGON " + bodies[0];
  return "MULTIPOLYGON (" + bodies.join(", ") + ")";
}

function cell(value) {
  const s = String(value ?? "");
  if (/[\t\r\n]/.test(s)) throw new Error(`value ${JSON.stringify(s)} cannot be written to TSV`);
  return s;
}

function writeTsv(path, header, rows) {
  const lines = [header.join("\t"), ...rows.map((r) => r.map(cell).join("\t"))];
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, lines.join("\n") + "\n");
  console.log(`wrote ${rows.length} features to ${path}`);
}

function writeCsv(path, header, rows) {
  const quote = (v) => {
    const s = String(v ?? "");
    return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
  };
  const lines = [header.map(quote).join(","), ...rows.map((r) => r.map(quote).join(","))];
  writeFileSync(path, lines.join("\n") + "\n");
  console.log(`wrote ${rows.length} features to ${path}`);
}

const us = require("us-atlas/counties-10m.json");
const world = require("world-atlas/countries-110m.json");

const stateNames = new Map(us.objects.states.geometries.map((g) => [g.id, g.properties.name]));

function featureRows(topology, object, attrs) {
  const rows = [];
  for (const g of topology.objects[object].geometries) {
    const wkt = geometryWkt(topojson.feature(topology, g).geometry);
    if (wkt) rows.push([...attrs(g), wkt]);
  }
  return rows;
}

// A few real DMA-style markets, each the dissolved union of its counties.
const DMAS = [
  ["Los Angeles", "803", ["06037", "06059", "06065", "06071", "06111", "06027"]],
  ["New York", "501", ["36005", "36047", "36061", "36081", "36085", "36059", "36103", "36119", "34003", "34017", "34013"]],
  ["Chicago", "602", ["17031", "17043", "17089", "17097", "17111", "17197"]],
  ["Washington, DC (Hagrstwn)", "511", ["11001", "51059", "51600", "51013", "51510", "24031", "24033"]],
];

function testLayers(outDir) {
  writeTsv(join(outDir, "states.tsv"), ["state_fips", "state", "wkt"],
    featureRows(us, "states", (g) => [g.id, g.properties.name]));

  const wanted = new Set(DMAS.flatMap(([, , fips]) => fips));
  const counties = us.objects.counties.geometries.filter((g) => wanted.has(g.id));
  const countyRows = counties.map((g) => [g.id, g.properties.name,
    geometryWkt(topojson.feature(us, g).geometry)]);
  writeTsv(join(outDir, "counties.tsv"), ["county_fips", "county", "wkt"], countyRows);

  const byId = new Map(us.objects.counties.geometries.map((g) => [g.id, g]));
  const dmaRows = DMAS.map(([name, number, fips]) => {
    const merged = topojson.merge(us, fips.map((f) => {
      const g = byId.get(f);
      if (!g) throw new Error(`county ${f} not in us-atlas`);
      return g;
    }));
    return [name, number, geometryWkt(merged)];
  });
  writeTsv(join(outDir, "dma.tsv"), ["dma_name", "dma_number", "wkt"], dmaRows);
  writeCsv(join(outDir, "dma.csv"), ["dma_name", "dma_number", "wkt"], dmaRows);

  writeTsv(join(outDir, "countries.tsv"), ["country", "wkt"],
    featureRows(world, "countries", (g) => [g.properties.name]));
}

function allCounties(path) {
  writeTsv(path, ["county_fips", "county", "state", "wkt"],
    featureRows(us, "counties", (g) => [g.id, g.properties.name, stateNames.get(g.id.slice(0, 2)) ?? ""]));
}

const args = process.argv.slice(2);
const flag = (name) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
if (flag("--all-counties")) {
  allCounties(resolve(flag("--all-counties")));
} else {
  testLayers(resolve(flag("--out") ?? join(repoRoot, "tests", "data", "geo")));
}
