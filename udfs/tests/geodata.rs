//! geodata, geo_lookup and st_contains through SQL, over the real polygons in
//! tests/data/geo (US states, a few counties, DMA-style markets, countries).

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use datafusion::arrow::array::{Array, AsArray, RecordBatch, StructArray};
use datafusion::arrow::util::pretty::pretty_format_batches;
use datafusion::prelude::SessionContext;
use lakegate_udfs::{Error, InvalidPolygons, LayerSet, LayerSpec, register_all};

fn data(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/data/geo").join(file)
}

fn specs() -> Vec<LayerSpec> {
    vec![
        LayerSpec::new("dma", data("dma.tsv")),
        LayerSpec::new("counties", data("counties.tsv")),
        LayerSpec::new("states", data("states.tsv")).with_attributes(["state"]),
        LayerSpec::new("countries", data("countries.tsv")),
    ]
}

fn layers() -> Arc<LayerSet> {
    static LAYERS: OnceLock<Arc<LayerSet>> = OnceLock::new();
    Arc::clone(LAYERS.get_or_init(|| Arc::new(LayerSet::load(&specs()).expect("test layers load"))))
}

fn context() -> SessionContext {
    let ctx = SessionContext::new();
    register_all(&ctx, layers());
    ctx
}

async fn query(sql: &str) -> Vec<RecordBatch> {
    context()
        .sql(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .collect()
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

async fn table(sql: &str) -> String {
    pretty_format_batches(&query(sql).await).expect("printable").to_string()
}

/// The struct column of a one-row, one-column result.
async fn one_struct(sql: &str) -> StructArray {
    let batches = query(sql).await;
    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 1, "{sql}");
    batches[0].column(0).as_struct().clone()
}

fn field<'a>(s: &'a StructArray, name: &str) -> Option<&'a str> {
    let col = s.column_by_name(name).unwrap_or_else(|| panic!("no field {name}"));
    let col = col.as_string::<i32>();
    col.is_valid(0).then(|| col.value(0))
}

#[tokio::test]
async fn geodata_fields_are_all_layers_attributes_in_layer_order() {
    let names: Vec<String> = layers().fields().iter().map(|f| f.name().clone()).collect();
    assert_eq!(names, ["dma_name", "dma_number", "county_fips", "county", "state", "country"]);
}

#[tokio::test]
async fn los_angeles_and_argument_order() {
    let la = one_struct("SELECT geodata(-118.24, 34.05)").await;
    assert!(la.is_valid(0));
    assert_eq!(field(&la, "state"), Some("California"));
    assert_eq!(field(&la, "county"), Some("Los Angeles"));
    assert_eq!(field(&la, "county_fips"), Some("06037"));
    assert_eq!(field(&la, "dma_name"), Some("Los Angeles"));
    assert_eq!(field(&la, "dma_number"), Some("803"));
    assert_eq!(field(&la, "country"), Some("United States of America"));

    // Swapped arguments: latitude -118.24 is out of range, a NULL struct.
    let swapped = one_struct("SELECT geodata(34.05, -118.24)").await;
    assert!(swapped.is_null(0));
}

#[tokio::test]
async fn integers_and_field_access_work() {
    let out = table("SELECT geodata(-118, 34)['state'] AS s, geodata(-74, 40.75)['dma_name'] AS d").await;
    assert!(out.contains("| California | New York |"), "{out}");
}

#[tokio::test]
async fn each_layer_is_looked_up_independently() {
    // San Francisco: California, but none of the test counties or DMAs.
    let sf = one_struct("SELECT geodata(-122.42, 37.77)").await;
    assert_eq!(field(&sf, "state"), Some("California"));
    assert_eq!(field(&sf, "county"), None);
    assert_eq!(field(&sf, "dma_name"), None);
    assert_eq!(field(&sf, "country"), Some("United States of America"));
    // Paris: only the countries layer.
    let paris = one_struct("SELECT geodata(2.35, 48.85)").await;
    assert_eq!(field(&paris, "country"), Some("France"));
    assert_eq!(field(&paris, "state"), None);
}

#[tokio::test]
async fn outside_everything_is_a_struct_of_nulls() {
    let sea = one_struct("SELECT geodata(-140.0, 30.0)").await;
    assert!(sea.is_valid(0), "the struct itself is not NULL");
    for column in sea.columns() {
        assert!(column.is_null(0));
    }
}

#[tokio::test]
async fn null_nan_infinite_and_out_of_range_give_null_struct() {
    let batches = query(
        "SELECT geodata(lon, lat) FROM (VALUES \
           (CAST(NULL AS DOUBLE), 34.05), (-118.24, CAST(NULL AS DOUBLE)), \
           (CAST('NaN' AS DOUBLE), 34.05), (CAST('Infinity' AS DOUBLE), 34.05), \
           (-118.24, 90.5), (-118.24, -91.0), (-118.24, 34.05)) AS t(lon, lat)",
    )
    .await;
    let s = batches[0].column(0).as_struct();
    let nulls: Vec<bool> = (0..s.len()).map(|i| s.is_null(i)).collect();
    assert_eq!(nulls, [true, true, true, true, true, true, false]);
}

#[tokio::test]
async fn longitude_is_normalised() {
    let wrapped = one_struct("SELECT geodata(241.76, 34.05)").await;
    assert_eq!(field(&wrapped, "county"), Some("Los Angeles"));
    let wrapped = one_struct("SELECT geodata(-478.24, 34.05)").await;
    assert_eq!(field(&wrapped, "county"), Some("Los Angeles"));
}

#[tokio::test]
async fn point_in_a_hole_is_outside_the_polygon() {
    // Fairfax city (51600) is an enclave: a hole in Fairfax County (51059).
    let city = one_struct("SELECT geodata(-77.30, 38.85)").await;
    assert_eq!(field(&city, "county_fips"), Some("51600"));
    let county = one_struct("SELECT geodata(-77.35, 38.80)").await;
    assert_eq!(field(&county, "county_fips"), Some("51059"));
    // The DMA layer merged both: no hole there.
    assert_eq!(field(&city, "dma_number"), Some("511"));
}

#[tokio::test]
async fn antimeridian_pieces_are_found_on_both_sides() {
    let east = one_struct("SELECT geodata(179.9, 66.0)").await;
    assert_eq!(field(&east, "country"), Some("Russia"));
    let west = one_struct("SELECT geodata(-179.9, 66.0)").await;
    assert_eq!(field(&west, "country"), Some("Russia"));
    let fiji = one_struct("SELECT geodata(178.0, -17.8)").await;
    assert_eq!(field(&fiji, "country"), Some("Fiji"));
    let pole = one_struct("SELECT geodata(10.0, -89.0)").await;
    assert_eq!(field(&pole, "country"), Some("Antarctica"));
}

#[tokio::test]
async fn shared_border_point_belongs_to_exactly_one_state() {
    // Walk north along the Colorado/Utah border (x = -109.05): every point on
    // it is in exactly one of the two states, and by the rule the one east.
    let layers = layers();
    let states = layers.layer("states").expect("states layer");
    let names = states.values()[0].as_string::<i32>();
    let mut colorado = 0;
    for i in 0..100 {
        let lat = 37.1 + i as f64 * 0.03;
        let f = states.locate(-109.05, lat).map(|f| names.value(f).to_string());
        // The quantised border may sit a hair off -109.05: either side is a
        // state, never a gap.
        let name = f.expect("no gap on the border");
        assert!(name == "Colorado" || name == "Utah", "{name}");
        colorado += usize::from(name == "Colorado");
    }
    assert!(colorado > 0);
}

#[tokio::test]
async fn geo_lookup_returns_one_layers_struct() {
    let out = table("SELECT geo_lookup('dma', -87.63, 41.88) AS m").await;
    assert!(out.contains("{dma_name: Chicago, dma_number: 602}"), "{out}");
    let err = context().sql("SELECT geo_lookup('zip', 1.0, 2.0)").await.expect_err("unknown layer");
    assert!(err.to_string().contains("no layer named 'zip'; loaded layers: dma, counties, states, countries"), "{err}");
}

#[tokio::test]
async fn geodata_over_a_table_matches_row_by_row() {
    let out = table(
        "SELECT lon, lat, geodata(lon, lat)['state'] AS state FROM (VALUES \
           (-118.24, 34.05), (-73.99, 40.73), (-87.63, 41.88), (0.0, 0.0)) AS t(lon, lat) ORDER BY lon",
    )
    .await;
    let expected = "\
+---------+-------+------------+
| lon     | lat   | state      |
+---------+-------+------------+
| -118.24 | 34.05 | California |
| -87.63  | 41.88 | Illinois   |
| -73.99  | 40.73 | New York   |
| 0.0     | 0.0   |            |
+---------+-------+------------+";
    assert_eq!(out, expected);
}

#[tokio::test]
async fn st_contains_uses_ogc_boundary_semantics() {
    let out = table(
        "SELECT st_contains('POLYGON ((0 0, 2 0, 2 2, 0 2, 0 0), (0.5 0.5, 1 0.5, 1 1, 0.5 0.5))', x, y) AS c \
         FROM (VALUES (1.5, 1.5), (0.0, 1.0), (0.8, 0.6), (3.0, 3.0), (CAST(NULL AS DOUBLE), 1.0)) AS t(x, y)",
    )
    .await;
    let expected = "\
+-------+
| c     |
+-------+
| true  |
| false |
| false |
| false |
|       |
+-------+";
    assert_eq!(out, expected);
    let err = context()
        .sql("SELECT st_contains('POLYGON ((0 0, 1 0', 0.5, 0.5)")
        .await
        .expect("plans")
        .collect()
        .await
        .expect_err("bad wkt");
    assert!(err.to_string().contains("st_contains: invalid WKT"), "{err}");
}

#[test]
fn csv_and_tsv_layers_agree() {
    let tsv = LayerSet::load(&[LayerSpec::new("dma", data("dma.tsv"))]).expect("tsv");
    let csv = LayerSet::load(&[LayerSpec::new("dma", data("dma.csv"))]).expect("csv");
    let (tsv, csv) = (&tsv.layers()[0], &csv.layers()[0]);
    assert_eq!(tsv.fields(), csv.fields());
    assert_eq!(tsv.values(), csv.values());
    for (lon, lat) in [(-118.24, 34.05), (-74.0, 40.7), (-87.6, 41.9), (-100.0, 40.0)] {
        assert_eq!(tsv.locate(lon, lat), csv.locate(lon, lat));
    }
}

fn temp_layer(name: &str, contents: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("lakegate-udfs-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join(name);
    std::fs::write(&path, contents).expect("write temp layer");
    path
}

#[test]
fn load_errors_name_file_line_and_fix() {
    let path =
        temp_layer("bad_wkt.tsv", "name\twkt\na\tPOLYGON ((0 0, 1 0, 1 1, 0 0))\nb\tPOLYGON ((0 0, 1 0, 1 1, 0 0)\n");
    let err = LayerSet::load(&[LayerSpec::new("l", &path)]).expect_err("bad wkt");
    assert!(matches!(err, Error::InvalidWkt { line: 3, .. }), "{err}");
    assert!(err.to_string().contains("bad_wkt.tsv:3: invalid WKT"), "{err}");

    let path = temp_layer("unclosed.csv", "name,wkt\na,\"POLYGON ((0 0, 1 0, 1 1, 0 1))\"\n");
    let err = LayerSet::load(&[LayerSpec::new("l", &path)]).expect_err("unclosed");
    assert!(matches!(err, Error::UnclosedRing { line: 2, .. }), "{err}");

    let path = temp_layer("no_wkt.tsv", "name\tgeom\na\tPOLYGON ((0 0, 1 0, 1 1, 0 0))\n");
    let err = LayerSet::load(&[LayerSpec::new("l", &path)]).expect_err("no wkt column");
    assert!(err.to_string().contains("no column `wkt`"), "{err}");
    LayerSet::load(&[LayerSpec::new("l", &path).with_wkt_column("geom")]).expect("geom column");

    let err = LayerSet::load(&[LayerSpec::new("a", data("states.tsv")), LayerSpec::new("b", data("states.tsv"))])
        .expect_err("duplicate attributes");
    assert!(matches!(err, Error::DuplicateAttribute { .. }), "{err}");

    let err = LayerSet::load(&[LayerSpec::new("l", "/nonexistent/layer.tsv")]).expect_err("missing");
    assert!(matches!(err, Error::Io { .. }), "{err}");
}

#[test]
fn invalid_polygons_warn_or_reject() {
    let path = temp_layer("bowtie.tsv", "name\twkt\nbow\tPOLYGON ((0 0, 10 10, 10 0, 0 10, 0 0))\n");
    let kept = LayerSet::load(&[LayerSpec::new("l", &path)]).expect("kept");
    assert_eq!(kept.warnings().len(), 1);
    assert!(kept.warnings()[0].to_string().contains("line 2"), "{}", kept.warnings()[0]);
    // Even-odd: the two triangles of the bowtie are inside.
    assert_eq!(kept.layers()[0].locate(8.0, 5.0), Some(0));
    assert_eq!(kept.layers()[0].locate(2.0, 5.0), Some(0));
    assert_eq!(kept.layers()[0].locate(5.0, 2.0), None);
    let err = LayerSet::load(&[LayerSpec::new("l", &path).with_invalid_polygons(InvalidPolygons::Reject)])
        .expect_err("rejected");
    assert!(matches!(err, Error::InvalidPolygon { line: 2, .. }), "{err}");
}

fn one_point(layers: &LayerSet, layer: &str, lon: f64, lat: f64) -> Option<String> {
    let layer = layers.layer(layer).expect("layer");
    let names = layer.values()[0].as_string::<i32>();
    layer.locate(lon, lat).map(|f| names.value(f).to_string())
}

#[test]
fn committed_layers_are_valid() {
    let layers = layers();
    // world-atlas's 110m Sudan has a self-touching ring: kept, with a warning.
    let warned: Vec<(&str, usize)> = layers.warnings().iter().map(|w| (w.layer.as_str(), w.line)).collect();
    assert_eq!(warned, [("countries", 16)], "{:?}", layers.warnings());
    let sudan = one_point(&layers, "countries", 30.0, 15.0);
    assert_eq!(sudan.as_deref(), Some("Sudan"));
    assert_eq!(layers.layer("states").map(|l| l.len()), Some(56));
}

#[test]
fn parquet_layers_load_like_tsv() {
    use datafusion::arrow::array::{Int64Array, StringArray};
    use datafusion::parquet::arrow::ArrowWriter;

    let text = std::fs::read_to_string(data("dma.tsv")).expect("dma.tsv");
    let rows: Vec<Vec<&str>> = text.lines().skip(1).map(|l| l.split('\t').collect()).collect();
    let column = |i: usize| Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r[i])));
    let numbers = Int64Array::from_iter_values(rows.iter().map(|r| r[1].parse::<i64>().expect("number")));
    let batch = RecordBatch::try_from_iter([
        ("dma_name", column(0) as _),
        ("dma_number", Arc::new(numbers) as _),
        ("geometry", column(2) as _),
    ])
    .expect("batch");
    let path = temp_layer("dma.parquet", "");
    let file = std::fs::File::create(&path).expect("create parquet");
    let mut writer = ArrowWriter::try_new(file, batch.schema(), None).expect("writer");
    writer.write(&batch).expect("write");
    writer.close().expect("close");

    let parquet = LayerSet::load(&[LayerSpec::new("dma", &path).with_wkt_column("geometry")]).expect("parquet layer");
    let tsv = LayerSet::load(&[LayerSpec::new("dma", data("dma.tsv"))]).expect("tsv");
    // Non-text columns are read as text: the Int64 dma_number becomes "803".
    assert_eq!(parquet.layers()[0].values(), tsv.layers()[0].values());
    assert_eq!(parquet.layers()[0].locate(-118.24, 34.05), Some(0));
}
