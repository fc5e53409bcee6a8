//! geodata layers as a running process sees them: loaded at start, reloaded when a file changes.

use datafusion::arrow::array::{Array, AsArray};
use futures::TryStreamExt;
use lakegate::config::{GeodataConfig, LayerConfig};
use lakegate::session::Output;
use lakegate::{Config, Lakegate};

const SQUARE: &str = "POLYGON ((0 0, 10 0, 10 10, 0 10, 0 0))";

fn write_layer(path: &std::path::Path, region: &str, wkt: &str) {
    std::fs::write(path, format!("region\twkt\n{region}\t{wkt}\n")).expect("layer written");
}

async fn region_at(lakegate: &Lakegate) -> Result<Option<String>, lakegate::Error> {
    let session = lakegate.session();
    let Output::Rows(stream) = session.execute("SELECT geodata(5.0, 5.0)['region'] AS r").await? else {
        panic!("a query returns rows");
    };
    let batches: Vec<_> = stream.try_collect().await?;
    let column = batches[0].column(0);
    let strings = column.as_string_view_opt().map(|a| (a.is_valid(0), a.value(0).to_owned()));
    let strings = strings.or_else(|| column.as_string_opt::<i32>().map(|a| (a.is_valid(0), a.value(0).to_owned())));
    Ok(strings.and_then(|(valid, v)| valid.then_some(v)))
}

#[tokio::test]
async fn layers_reload_when_their_file_changes_and_survive_a_broken_edit() {
    let dir = tempfile::tempdir().expect("temp dir");
    let layer = dir.path().join("regions.tsv");
    write_layer(&layer, "north", SQUARE);
    let config = Config {
        data_dir: Some(dir.path().join("data")),
        geodata: GeodataConfig {
            layers: vec![LayerConfig {
                name: "regions".into(),
                path: layer.clone(),
                wkt_column: None,
                attributes: vec![],
                reject_invalid: false,
            }],
        },
        ..Config::default()
    };
    let lakegate = Lakegate::open(config).await.expect("opens");
    assert_eq!(region_at(&lakegate).await.expect("query"), Some("north".to_owned()));

    // Renamed region: the next session sees it.
    write_layer(&layer, "south", SQUARE);
    bump_mtime(&layer, 1);
    assert_eq!(region_at(&lakegate).await.expect("query"), Some("south".to_owned()));

    // An unclosed ring does not load: the working layer stays.
    write_layer(&layer, "broken", "POLYGON ((0 0, 10 0, 10 10, 0 10))");
    bump_mtime(&layer, 2);
    assert_eq!(region_at(&lakegate).await.expect("query"), Some("south".to_owned()));
}

/// File systems with coarse timestamps could see two writes in one tick: set the time apart.
fn bump_mtime(path: &std::path::Path, seconds: u64) {
    let file = std::fs::File::options().write(true).open(path).expect("layer file");
    let time = std::time::SystemTime::now() + std::time::Duration::from_secs(seconds);
    file.set_modified(time).expect("mtime set");
}
