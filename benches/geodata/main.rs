//! geodata point-lookup benchmark, single-threaded.
//!
//! `cargo bench -p lakegate-udfs --bench geodata -- --layer FILE --points FILE [--out FILE]`
//!
//! * `--layer`: a layer file (TSV/CSV/Parquet with a `wkt` column).
//! * `--points`: little-endian f64 pairs (longitude, latitude).
//! * `--out`: writes the feature found for each point as a little-endian
//!   i32 (-1 for none), for comparison with other engines.
//!
//! Without arguments it runs on the committed US states layer and 1M
//! random points in the continental US box. `benches/geodata/run.py` drives
//! it against shapely and SedonaDB. Prints one JSON object.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::arrow::array::{Array, Float64Array, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::datasource::MemTable;
use datafusion::prelude::{SessionConfig, SessionContext};
use lakegate_udfs::{LayerSet, LayerSpec, LocateStrategy, register_all};

const BATCH: usize = 8192;
const REPEATS: usize = 3;

struct Args {
    layer: PathBuf,
    points: Option<PathBuf>,
    out: Option<PathBuf>,
}

fn parse_args() -> Args {
    let mut args = Args {
        layer: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/data/geo/states.tsv"),
        points: None,
        out: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--layer" => args.layer = it.next().expect("--layer FILE").into(),
            "--points" => args.points = Some(it.next().expect("--points FILE").into()),
            "--out" => args.out = Some(it.next().expect("--out FILE").into()),
            // `cargo bench` passes --bench; ignore it and anything unknown.
            _ => {}
        }
    }
    args
}

fn random_points(n: usize) -> Vec<(f64, f64)> {
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    (0..n).map(|_| (-125.0 + next() * 58.0, 24.0 + next() * 26.0)).collect()
}

fn read_points(path: &PathBuf) -> Vec<(f64, f64)> {
    let bytes = std::fs::read(path).expect("read points file");
    bytes
        .chunks_exact(16)
        .map(|c| {
            let f = |b: &[u8]| f64::from_le_bytes(b.try_into().expect("8 bytes"));
            (f(&c[..8]), f(&c[8..]))
        })
        .collect()
}

fn best_of<T>(mut f: impl FnMut() -> T) -> (Duration, T) {
    let mut best = Duration::MAX;
    let mut last = None;
    for _ in 0..REPEATS {
        let t = Instant::now();
        let r = f();
        best = best.min(t.elapsed());
        last = Some(r);
    }
    (best, last.expect("at least one run"))
}

fn main() {
    let args = parse_args();
    let points = match &args.points {
        Some(p) => read_points(p),
        None => random_points(1_000_000),
    };
    let n = points.len();
    let lon: Vec<Float64Array> =
        points.chunks(BATCH).map(|c| Float64Array::from_iter_values(c.iter().map(|p| p.0))).collect();
    let lat: Vec<Float64Array> =
        points.chunks(BATCH).map(|c| Float64Array::from_iter_values(c.iter().map(|p| p.1))).collect();

    let t = Instant::now();
    let layers = Arc::new(LayerSet::load(&[LayerSpec::new("bench", &args.layer)]).expect("load layer"));
    let load = t.elapsed();
    let layer = &layers.layers()[0];

    // The vectorised kernel geodata() runs per batch.
    let (indexed, found) = best_of(|| {
        let mut found = Vec::with_capacity(n);
        for (x, y) in lon.iter().zip(&lat) {
            let f = layer.locate_batch(x, y);
            found.extend((0..f.len()).map(|i| if f.is_valid(i) { f.value(i) as i32 } else { -1 }));
        }
        found
    });
    let per_point =
        |strategy| best_of(|| points.iter().filter(|(x, y)| layer.locate_with(*x, *y, strategy).is_some()).count()).0;
    let rtree_bands = per_point(LocateStrategy::RTreeBands);
    let rtree_geo = per_point(LocateStrategy::RTreeGeo);

    // End to end through SQL on one partition: scan, geodata(), struct field.
    let sql = {
        let schema = Arc::new(Schema::new(vec![
            Field::new("lon", DataType::Float64, false),
            Field::new("lat", DataType::Float64, false),
        ]));
        let batches: Vec<RecordBatch> = lon
            .iter()
            .zip(&lat)
            .map(|(x, y)| {
                RecordBatch::try_new(Arc::clone(&schema), vec![Arc::new(x.clone()), Arc::new(y.clone())])
                    .expect("batch")
            })
            .collect();
        let ctx =
            SessionContext::new_with_config(SessionConfig::new().with_target_partitions(1).with_batch_size(BATCH));
        register_all(&ctx, Arc::clone(&layers));
        let table = MemTable::try_new(schema, vec![batches]).expect("mem table");
        ctx.register_table("points", Arc::new(table)).expect("register");
        let field = layer.fields()[0].name();
        let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        best_of(|| {
            runtime.block_on(async {
                let df =
                    ctx.sql(&format!("SELECT count(geodata(lon, lat)['{field}']) FROM points")).await.expect("plan");
                df.collect().await.expect("run")
            })
        })
        .0
    };

    if let Some(out) = &args.out {
        let bytes: Vec<u8> = found.iter().flat_map(|f| f.to_le_bytes()).collect();
        std::fs::write(out, bytes).expect("write --out");
    }
    let rate = |d: Duration| n as f64 / d.as_secs_f64();
    println!(
        "{{\"points\": {n}, \"features\": {}, \"polygons\": {}, \"matched\": {}, \
         \"load_s\": {:.4}, \"indexed_pps\": {:.0}, \"rtree_bands_pps\": {:.0}, \
         \"rtree_geo_pps\": {:.0}, \"sql_pps\": {:.0}}}",
        layer.len(),
        layer.polygon_count(),
        found.iter().filter(|f| **f >= 0).count(),
        load.as_secs_f64(),
        rate(indexed),
        rate(rtree_bands),
        rate(rtree_geo),
        rate(sql),
    );
}
