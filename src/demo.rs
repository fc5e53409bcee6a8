//! `lakegate demo`: realistic sample data for the canonical cross-source question, so a
//! newcomer gets an answer in a minute. Deterministic: the same rows on every machine.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use datafusion::arrow::array::{
    ArrayRef, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::file::properties::WriterProperties;
use indicatif::{ProgressBar, ProgressStyle};

use crate::output::{self, Format};
use crate::session::Lakegate;
use crate::{Error, Result};

/// The question the demo answers, across the three tables.
pub const NCIS_QUERY: &str = "SELECT COUNT(*) AS impressions FROM adserver_logs A
  JOIN users U ON A.uid = U.uid
  JOIN programs P ON A.pid = P.id
WHERE A.type = 'impression' AND U.age BETWEEN 25 AND 49 AND U.gender = 'F' AND P.name = 'NCIS'";

const DAYS: u32 = 7;
const USERS: i64 = 200_000;
const PROGRAMS: &[(&str, &str, &str)] = &[
    ("NCIS", "drama", "CBS"),
    ("NCIS: Los Angeles", "drama", "CBS"),
    ("The Big Bang Theory", "comedy", "CBS"),
    ("Grey's Anatomy", "drama", "ABC"),
    ("The Voice", "reality", "NBC"),
    ("Saturday Night Live", "comedy", "NBC"),
    ("60 Minutes", "news", "CBS"),
    ("The Simpsons", "animation", "FOX"),
    ("Monday Night Football", "sports", "ESPN"),
    ("Jeopardy!", "game show", "ABC"),
];
const BATCH: usize = 64 * 1024;

/// SplitMix64: small, fast and the same everywhere, which is all sample data needs.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Generates the sample tables (once), registers them in the default database, and prints
/// the answer to [`NCIS_QUERY`]. With `postgres` (a `postgres://user@host:port/db` URL),
/// `users` is loaded into that database and read from there.
///
/// # Errors
/// The data directory is not writable, PostgreSQL cannot be loaded, or the query fails.
pub async fn run(lakegate: &Lakegate, rows: usize, postgres: Option<&str>) -> Result<()> {
    let root = lakegate.warehouse_dir().join("demo");
    let marker = root.join(format!("_complete_{rows}"));
    if !marker.exists() {
        if root.exists() {
            std::fs::remove_dir_all(&root).map_err(|e| Error::io(root.display(), e))?;
        }
        generate(&root, rows)?;
        std::fs::write(&marker, b"").map_err(|e| Error::io(marker.display(), e))?;
    }
    let session = lakegate.session();
    let contact_points = &lakegate.config().cassandra.contact_points;
    let in_cassandra = !contact_points.is_empty()
        && match programs_in_cassandra(contact_points).await {
            Ok(()) => true,
            Err(e) => {
                eprintln!("programs stays in Parquet: {e}");
                false
            }
        };
    if let Some(url) = postgres {
        load_users_into_postgres(url, &root.join("users/part-00000.parquet")).await?;
        let location = url.replace('\'', "''");
        let _ = session.execute("DROP TABLE IF EXISTS users").await?;
        let statement = format!(
            "CREATE EXTERNAL TABLE users STORED AS POSTGRES LOCATION '{location}' OPTIONS ('table' 'public.users', 'password' '${{env:PGPASSWORD}}')"
        );
        let _ = session.execute(&statement).await?;
        println!("users are in PostgreSQL ({url}).");
    }
    for table in ["adserver_logs", "users", "programs"] {
        let statement = if table == "programs" && in_cassandra {
            format!(
                "CREATE EXTERNAL TABLE IF NOT EXISTS programs STORED AS CASSANDRA LOCATION 'cassandra:///{DEMO_KEYSPACE}/programs'"
            )
        } else if table == "users" && postgres.is_some() {
            continue;
        } else {
            let location = root.join(table).display().to_string().replace('\'', "''");
            format!("CREATE EXTERNAL TABLE IF NOT EXISTS {table} STORED AS PARQUET LOCATION '{location}'")
        };
        let _ = session.execute(&statement).await?;
    }
    let programs_at =
        if in_cassandra { format!("programs (in Cassandra, {DEMO_KEYSPACE}.programs)") } else { "programs".to_owned() };
    println!("Tables adserver_logs ({rows} rows, partitioned by dt), users and {programs_at} are registered.\n");
    println!("{NCIS_QUERY};\n");
    let started = Instant::now();
    let result = session.execute(NCIS_QUERY).await?;
    output::write(result, Format::Table, &mut std::io::stdout(), None).await?;
    println!("answered in {:.3} s. Explore with: lakegate repl", started.elapsed().as_secs_f64());
    Ok(())
}

/// Replaces table `public.users` of the PostgreSQL database at `url` with the sample users,
/// streamed in with `COPY ... FROM STDIN`.
async fn load_users_into_postgres(url: &str, users: &Path) -> Result<()> {
    use futures::SinkExt;

    let failed =
        |what: &str, e: &dyn std::fmt::Display| Error::Remote(format!("demo users into PostgreSQL {url}: {what}: {e}"));
    let mut config: tokio_postgres::Config = url.parse().map_err(|e| failed("not a postgres:// URL", &e))?;
    if config.get_password().is_none()
        && let Ok(password) = std::env::var("PGPASSWORD")
    {
        config.password(password);
    }
    let (mut client, connection) =
        config.connect(tokio_postgres::NoTls).await.map_err(|e| failed("cannot connect", &e))?;
    let connection = tokio::spawn(connection);
    let transaction = client.transaction().await.map_err(|e| failed("begin", &e))?;
    transaction
        .batch_execute("DROP TABLE IF EXISTS public.users; CREATE TABLE public.users (uid int8 PRIMARY KEY, age int4 NOT NULL, gender text NOT NULL, country text NOT NULL)")
        .await
        .map_err(|e| failed("create table users", &e))?;
    let sink =
        transaction.copy_in("COPY public.users FROM STDIN (FORMAT csv)").await.map_err(|e| failed("copy", &e))?;
    futures::pin_mut!(sink);
    let file = std::fs::File::open(users).map_err(|e| Error::io(users.display(), e))?;
    let reader = datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .and_then(|b| b.build())
        .map_err(|e| Error::DataFusion(datafusion::error::DataFusionError::ParquetError(Box::new(e))))?;
    for batch in reader {
        let batch = batch.map_err(|e| Error::DataFusion(e.into()))?;
        let mut csv = Vec::new();
        datafusion::arrow::csv::WriterBuilder::new()
            .with_header(false)
            .build(&mut csv)
            .write(&batch)
            .map_err(|e| Error::DataFusion(e.into()))?;
        sink.send(bytes::Bytes::from(csv)).await.map_err(|e| failed("copy", &e))?;
    }
    sink.as_mut().finish().await.map_err(|e| failed("copy", &e))?;
    transaction.commit().await.map_err(|e| failed("commit", &e))?;
    drop(client);
    let _ = connection.await;
    Ok(())
}

/// The keyspace `lakegate demo` writes `programs` to when a Cassandra is configured.
const DEMO_KEYSPACE: &str = "lakegate_demo";

/// Creates `lakegate_demo.programs` in the configured Cassandra and writes the programs to it.
async fn programs_in_cassandra(contact_points: &[String]) -> Result<()> {
    use crate::sources::cassandra::Error as CassandraError;
    let failed = |e: Box<dyn std::error::Error + Send + Sync>| {
        Error::from(datafusion::error::DataFusionError::from(CassandraError::Query {
            table: format!("{DEMO_KEYSPACE}.programs"),
            contact_points: contact_points.join(","),
            source: e,
        }))
    };
    let session = scylla::client::session_builder::SessionBuilder::new()
        .known_nodes(contact_points)
        .build()
        .await
        .map_err(|e| failed(Box::new(e)))?;
    let statements = [
        format!(
            "CREATE KEYSPACE IF NOT EXISTS {DEMO_KEYSPACE} WITH replication = {{'class': 'SimpleStrategy', 'replication_factor': 1}}"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {DEMO_KEYSPACE}.programs (id bigint PRIMARY KEY, name text, genre text, network text)"
        ),
    ];
    for statement in statements {
        session.query_unpaged(statement, &[]).await.map_err(|e| failed(Box::new(e)))?;
    }
    let insert = format!("INSERT INTO {DEMO_KEYSPACE}.programs (id, name, genre, network) VALUES (?, ?, ?, ?)");
    let insert = session.prepare(insert).await.map_err(|e| failed(Box::new(e)))?;
    for (id, (name, genre, network)) in (1_i64..).zip(PROGRAMS) {
        session.execute_unpaged(&insert, (id, *name, *genre, *network)).await.map_err(|e| failed(Box::new(e)))?;
    }
    Ok(())
}

fn write_parquet(
    path: &Path,
    batches: impl IntoIterator<Item = Result<RecordBatch>>,
    schema: Arc<Schema>,
) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir.display(), e))?;
    }
    let file = std::fs::File::create(path).map_err(|e| Error::io(path.display(), e))?;
    let props = WriterProperties::builder().set_compression(Compression::ZSTD(ZstdLevel::default())).build();
    let parquet = |e| Error::DataFusion(datafusion::error::DataFusionError::ParquetError(Box::new(e)));
    let mut writer = ArrowWriter::try_new(file, schema, Some(props)).map_err(parquet)?;
    for batch in batches {
        writer.write(&batch?).map_err(parquet)?;
    }
    writer.close().map_err(parquet)?;
    Ok(())
}

fn generate(root: &Path, rows: usize) -> Result<()> {
    let progress = ProgressBar::new(rows as u64).with_style(
        ProgressStyle::with_template("generating sample data {bar:40} {pos}/{len} rows ({eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut rng = Rng(20_180_305);
    let users_schema = Arc::new(Schema::new(vec![
        Field::new("uid", DataType::Int64, false),
        Field::new("age", DataType::Int32, false),
        Field::new("gender", DataType::Utf8, false),
        Field::new("country", DataType::Utf8, false),
    ]));
    let uids: Vec<i64> = (1..=USERS).collect();
    let ages: Vec<i32> = uids.iter().map(|_| 13 + rng.below(68) as i32).collect();
    let genders: Vec<&str> = uids.iter().map(|_| if rng.below(100) < 51 { "F" } else { "M" }).collect();
    let countries: Vec<&str> =
        uids.iter().map(|_| ["US", "US", "US", "CA", "MX", "ES"][rng.below(6) as usize]).collect();
    let users = RecordBatch::try_new(
        Arc::clone(&users_schema),
        vec![
            Arc::new(Int64Array::from(uids)) as ArrayRef,
            Arc::new(Int32Array::from(ages)),
            Arc::new(StringArray::from(genders)),
            Arc::new(StringArray::from(countries)),
        ],
    )?;
    write_parquet(&root.join("users/part-00000.parquet"), [Ok(users)], users_schema)?;

    let programs_schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, false),
        Field::new("genre", DataType::Utf8, false),
        Field::new("network", DataType::Utf8, false),
    ]));
    let programs = RecordBatch::try_new(
        Arc::clone(&programs_schema),
        vec![
            Arc::new(Int64Array::from_iter_values(1..=PROGRAMS.len() as i64)) as ArrayRef,
            Arc::new(StringArray::from_iter_values(PROGRAMS.iter().map(|p| p.0))),
            Arc::new(StringArray::from_iter_values(PROGRAMS.iter().map(|p| p.1))),
            Arc::new(StringArray::from_iter_values(PROGRAMS.iter().map(|p| p.2))),
        ],
    )?;
    write_parquet(&root.join("programs/part-00000.parquet"), [Ok(programs)], programs_schema)?;

    let logs_schema = Arc::new(Schema::new(vec![
        Field::new("ts", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), false),
        Field::new("uid", DataType::Int64, false),
        Field::new("pid", DataType::Int64, false),
        Field::new("type", DataType::Utf8, false),
        Field::new("campaign_id", DataType::Int32, false),
        Field::new("longitude", DataType::Float64, false),
        Field::new("latitude", DataType::Float64, false),
    ]));
    // 2018-03-01T00:00:00Z
    let first_day_us: i64 = 1_519_862_400_000_000;
    let day_us: i64 = 86_400_000_000;
    for day in 0..DAYS {
        let day_rows = rows / DAYS as usize + usize::from((day as usize) < rows % DAYS as usize);
        let dt = format!("2018-03-{:02}", day + 1);
        let batches = (0..day_rows).step_by(BATCH).map(|start| {
            let n = BATCH.min(day_rows - start);
            let mut ts = Vec::with_capacity(n);
            let mut uid = Vec::with_capacity(n);
            let mut pid = Vec::with_capacity(n);
            let mut kind = Vec::with_capacity(n);
            let mut campaign = Vec::with_capacity(n);
            let mut lon = Vec::with_capacity(n);
            let mut lat = Vec::with_capacity(n);
            for _ in 0..n {
                ts.push(first_day_us + i64::from(day) * day_us + rng.below(day_us as u64) as i64);
                uid.push(1 + rng.below(USERS as u64) as i64);
                // Popular shows get most of the traffic.
                let r = rng.unit();
                pid.push(1 + ((r * r) * PROGRAMS.len() as f64) as i64);
                kind.push(match rng.below(100) {
                    0..80 => "impression",
                    80..95 => "click",
                    _ => "conversion",
                });
                campaign.push(1 + rng.below(250) as i32);
                lon.push(-124.7 + rng.unit() * 57.8);
                lat.push(24.5 + rng.unit() * 24.9);
            }
            progress.inc(n as u64);
            Ok(RecordBatch::try_new(
                Arc::clone(&logs_schema),
                vec![
                    Arc::new(TimestampMicrosecondArray::from(ts).with_timezone("UTC")) as ArrayRef,
                    Arc::new(Int64Array::from(uid)),
                    Arc::new(Int64Array::from(pid)),
                    Arc::new(StringArray::from(kind)),
                    Arc::new(Int32Array::from(campaign)),
                    Arc::new(Float64Array::from(lon)),
                    Arc::new(Float64Array::from(lat)),
                ],
            )?)
        });
        let path = root.join(format!("adserver_logs/dt={dt}/part-00000.parquet"));
        write_parquet(&path, batches, Arc::clone(&logs_schema))?;
    }
    progress.finish_and_clear();
    Ok(())
}
