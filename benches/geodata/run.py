#!/usr/bin/env python3
"""geodata benchmark: lakegate's point-in-polygon index against shapely 2 and
SedonaDB on the same 1M points over every US county, all single-threaded.

    python3 -m venv .venv && .venv/bin/pip install shapely sedonadb pyarrow geoarrow-pyarrow numpy
    .venv/bin/python benches/geodata/run.py [--points 1000000] [--seed 42]

The counties layer is generated into benches/geodata/work/ (git-ignored) by
scripts/geodata/convert.mjs, which needs `npm install` in scripts/geodata.
The script checks that the three engines assign every point to the same
county, except points on a polygon boundary, where the rules differ.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
WORK = HERE / "work"
SCRIPTS = ROOT / "scripts" / "geodata"
# The continental US box.
LON = (-125.0, -66.0)
LAT = (24.0, 50.0)


def counties_layer() -> Path:
    out = WORK / "counties_all.tsv"
    if out.exists():
        return out
    if not (SCRIPTS / "node_modules").exists():
        subprocess.run(["npm", "install", "--no-audit", "--no-fund"], cwd=SCRIPTS, check=True)
    subprocess.run(["node", "convert.mjs", "--all-counties", str(out)], cwd=SCRIPTS, check=True)
    return out


def read_layer(path: Path) -> tuple[list[str], list[str]]:
    csv.field_size_limit(sys.maxsize)
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    return [r["county_fips"] for r in rows], [r["wkt"] for r in rows]


def run_lakegate(layer: Path, points: Path, out: Path) -> dict:
    env = dict(os.environ)
    env.setdefault("CARGO_TARGET_DIR", str(Path.home() / ".cache" / "lakegate" / "target"))
    cmd = [
        "cargo", "bench", "-q", "-p", "lakegate-udfs", "--bench", "geodata", "--",
        "--layer", str(layer), "--points", str(points), "--out", str(out),
    ]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, check=True, capture_output=True, text=True)
    line = [l for l in proc.stdout.splitlines() if l.startswith("{")][-1]
    return json.loads(line)


def best_of(fn, repeats=3):
    best, result = float("inf"), None
    for _ in range(repeats):
        t = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t)
    return best, result


def lowest(n: int, point_idx: np.ndarray, feature_idx: np.ndarray) -> np.ndarray:
    """Per point, the lowest feature found (lakegate's rule), -1 for none."""
    out = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(out, point_idx, feature_idx)
    out[out == np.iinfo(np.int64).max] = -1
    return out


def run_shapely(wkts: list[str], x: np.ndarray, y: np.ndarray) -> tuple[float, float, np.ndarray]:
    import shapely

    t = time.perf_counter()
    polys = shapely.from_wkt(wkts)
    shapely.prepare(polys)
    tree = shapely.STRtree(polys)
    build = time.perf_counter() - t

    def query():
        pts = shapely.points(x, y)
        pi, fi = tree.query(pts)
        hit = shapely.contains_xy(polys[fi], x[pi], y[pi])
        return lowest(len(x), pi[hit], fi[hit])

    seconds, found = best_of(query)
    return build, seconds, found


def run_sedonadb(wkts: list[str], x: np.ndarray, y: np.ndarray) -> tuple[float, float, np.ndarray]:
    import pyarrow as pa
    import sedonadb

    sd = sedonadb.connect()
    sd.sql("SET datafusion.execution.target_partitions = 1").execute()
    sd.create_data_frame(pa.table({"id": np.arange(len(x)), "lon": x, "lat": y})).to_view("points")
    sd.create_data_frame(pa.table({"idx": np.arange(len(wkts)), "wkt": wkts})).to_view("counties_wkt")
    t = time.perf_counter()
    sd.sql("SELECT idx, ST_GeomFromWKT(wkt) AS geom FROM counties_wkt").to_memtable().to_view("counties")
    build = time.perf_counter() - t
    sql = (
        "SELECT p.id, c.idx FROM points p JOIN counties c "
        "ON ST_Contains(c.geom, ST_Point(p.lon, p.lat))"
    )

    def query():
        table = sd.sql(sql).to_arrow_table()
        return lowest(len(x), table["id"].to_numpy(), table["idx"].to_numpy())

    seconds, found = best_of(query)
    return build, seconds, found


def on_boundary(wkts: list[str], x: float, y: float, features: set[int]) -> bool:
    import shapely

    p = shapely.Point(x, y)
    return any(shapely.from_wkt(wkts[f]).boundary.distance(p) < 1e-9 for f in features if f >= 0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--points", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=42)
    args = ap.parse_args()
    warnings.filterwarnings("ignore")

    WORK.mkdir(exist_ok=True)
    layer = counties_layer()
    fips, wkts = read_layer(layer)

    rng = np.random.default_rng(args.seed)
    x = rng.uniform(*LON, args.points)
    y = rng.uniform(*LAT, args.points)
    points_file = WORK / "points.bin"
    np.column_stack([x, y]).astype("<f8").tofile(points_file)

    out_file = WORK / "lakegate.bin"
    lg = run_lakegate(layer, points_file, out_file)
    lg_found = np.fromfile(out_file, dtype="<i4").astype(np.int64)
    sh_build, sh_s, sh_found = run_shapely(wkts, x, y)
    sd_build, sd_s, sd_found = run_sedonadb(wkts, x, y)

    n = args.points
    disagree = np.flatnonzero((lg_found != sh_found) | (lg_found != sd_found))
    unexplained = [
        int(i) for i in disagree
        if not on_boundary(wkts, x[i], y[i], {int(lg_found[i]), int(sh_found[i]), int(sd_found[i])})
    ]

    lg_pps = lg["indexed_pps"]
    rows = [
        ("lakegate geodata kernel (grid + R-tree + bands)", lg_pps),
        ("lakegate through SQL, 1 partition", lg["sql_pps"]),
        ("lakegate R-tree + banded edges, no grid", lg["rtree_bands_pps"]),
        ("lakegate R-tree + geo::Contains", lg["rtree_geo_pps"]),
        ("shapely 2 STRtree + prepared contains_xy", n / sh_s),
        ("SedonaDB ST_Contains join, 1 partition", n / sd_s),
    ]
    print(f"{n} points in the continental US box (seed {args.seed}), {lg['features']} counties, "
          f"{lg['polygons']} polygons; {lg['matched']} points in a county")
    print(f"{'engine':52} {'points/s':>14}")
    for name, pps in rows:
        print(f"{name:52} {pps:14,.0f}")
    print(f"lakegate / shapely:  {lg_pps / (n / sh_s):6.1f}x  (target >= 10x)")
    print(f"lakegate / SedonaDB: {lg_pps / (n / sd_s):6.1f}x  (target >= 8x)")
    print(f"lakegate SQL / shapely: {lg['sql_pps'] / (n / sh_s):6.1f}x, "
          f"lakegate SQL / SedonaDB: {lg['sql_pps'] / (n / sd_s):6.1f}x")
    print(f"build: lakegate load (read + parse + index) {lg['load_s'] * 1000:.0f} ms, "
          f"shapely (from_wkt + prepare + STRtree) {sh_build * 1000:.0f} ms, "
          f"SedonaDB (ST_GeomFromWKT) {sd_build * 1000:.0f} ms")
    print(f"agreement: {n - len(disagree)} of {n} points identical in all three; "
          f"{len(disagree) - len(unexplained)} differ on a boundary; {len(unexplained)} unexplained")
    if unexplained:
        for i in unexplained[:10]:
            print(f"  point {i} ({x[i]!r}, {y[i]!r}): lakegate {lg_found[i]}, "
                  f"shapely {sh_found[i]}, SedonaDB {sd_found[i]}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
