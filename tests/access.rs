//! Who may do what, through the real server and a real Flight SQL client: roles and grants,
//! refusals that name the user and the privilege, names that never become paths, allowed
//! locations, per-user `system.queries`, sessions, and TLS for remote passwords.

use arrow_flight::sql::client::FlightSqlServiceClient;
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use futures::TryStreamExt;
use tonic::transport::Channel;

use crate::common::Lakegate;
use crate::flight::{Server, password_hash};

const PASSWORD: &str = "pw-for-tests";

/// A server with an admin, a writer and a reader (both granted `reports`), and two databases
/// with a table each.
fn team_server(extra: &str) -> Server {
    let lakegate = Lakegate::new();
    let hash = password_hash(&lakegate, PASSWORD);
    let config = format!(
        "[server]\n{extra}\n\
         [[server.users]]\nname = \"root\"\npassword_hash = \"{hash}\"\nrole = \"admin\"\n\
         [[server.users]]\nname = \"wendy\"\npassword_hash = \"{hash}\"\nrole = \"writer\"\ndatabases = [\"reports\"]\n\
         [[server.users]]\nname = \"rita\"\npassword_hash = \"{hash}\"\nrole = \"reader\"\ndatabases = [\"reports\"]\n"
    );
    lakegate
        .sql(
            "CREATE DATABASE reports; CREATE DATABASE secret; \
             CREATE TABLE reports.sales (n BIGINT) USING PARQUET; INSERT INTO reports.sales VALUES (1), (2); \
             CREATE TABLE secret.salaries (n BIGINT) USING PARQUET; INSERT INTO secret.salaries VALUES (100)",
        )
        .success();
    Server::spawn(lakegate, &config, &["--listen", "127.0.0.1:0"]).expect("the server starts")
}

async fn query(client: &mut FlightSqlServiceClient<Channel>, sql: &str) -> Result<Vec<RecordBatch>, String> {
    let info = client.execute(sql.to_owned(), None).await.map_err(|e| e.to_string())?;
    let mut batches = Vec::new();
    for endpoint in info.endpoint {
        let ticket = endpoint.ticket.ok_or("no ticket")?;
        let stream = client.do_get(ticket).await.map_err(|e| e.to_string())?;
        batches.extend(stream.try_collect::<Vec<_>>().await.map_err(|e| e.to_string())?);
    }
    Ok(batches)
}

fn strings(batches: &[RecordBatch], column: usize) -> Vec<String> {
    batches
        .iter()
        .flat_map(|b| {
            let c = datafusion::arrow::compute::cast(b.column(column), &datafusion::arrow::datatypes::DataType::Utf8)
                .expect("cast");
            let c = c.as_string::<i32>().clone();
            (0..c.len()).map(move |i| c.value(i).to_owned()).collect::<Vec<_>>()
        })
        .collect()
}

#[track_caller]
fn denied(result: Result<Vec<RecordBatch>, String>, user: &str, privilege: &str) {
    let err = result.expect_err("refused");
    assert!(err.contains("PermissionDenied") || err.contains("permission denied"), "{err}");
    assert!(
        err.contains(&format!("'{user}'")) && err.contains(privilege),
        "expected '{user}' and '{privilege}' in: {err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reader_reads_its_databases_and_nothing_else() {
    let server = team_server("");
    let mut rita = server.sign_in("rita", PASSWORD).await.expect("signs in");

    let rows = query(&mut rita, "SELECT n FROM reports.sales ORDER BY n").await.expect("granted");
    assert_eq!(strings(&rows, 0), ["1", "2"]);
    denied(query(&mut rita, "SELECT * FROM secret.salaries").await, "rita", "database secret");
    denied(
        query(&mut rita, "SELECT * FROM reports.sales WHERE n IN (SELECT n FROM secret.salaries)").await,
        "rita",
        "database secret",
    );
    denied(query(&mut rita, "SELECT * FROM '/etc/passwd'").await, "rita", "admin");
    denied(query(&mut rita, "COPY (SELECT 1) TO '/tmp/lakegate-should-not-exist.csv'").await, "rita", "COPY");
    assert!(!std::path::Path::new("/tmp/lakegate-should-not-exist.csv").exists());
    denied(query(&mut rita, "CREATE TABLE reports.t2 (a INT) USING PARQUET").await, "rita", "CREATE TABLE");
    denied(
        query(&mut rita, "CREATE EXTERNAL TABLE reports.etc STORED AS PARQUET LOCATION '/etc'").await,
        "rita",
        "CREATE TABLE",
    );
    denied(query(&mut rita, "CREATE VIEW v AS SELECT 1").await, "rita", "CREATE VIEW");
    denied(query(&mut rita, "DROP TABLE reports.sales").await, "rita", "DROP TABLE");
    denied(query(&mut rita, "INSERT INTO reports.sales VALUES (3)").await, "rita", "writer");
    denied(query(&mut rita, "VACUUM reports.sales").await, "rita", "VACUUM");
    denied(query(&mut rita, "DESCRIBE secret.salaries").await, "rita", "database secret");
    // Caches fill the gateway's disk: not a reader's to make or drop.
    denied(query(&mut rita, "CACHE TABLE reports.sales").await, "rita", "writer");
    denied(query(&mut rita, "UNCACHE TABLE reports.sales").await, "rita", "writer");
    denied(query(&mut rita, "CLEAR CACHE").await, "rita", "CLEAR CACHE");

    let grants = query(&mut rita, "SHOW GRANTS").await.expect("own grants");
    assert_eq!(
        (strings(&grants, 0), strings(&grants, 1), strings(&grants, 2)),
        (vec!["rita".into()], vec!["reader".into()], vec!["reports".into()])
    );
    let databases = strings(&query(&mut rita, "SHOW DATABASES").await.expect("databases"), 0);
    assert!(databases.contains(&"reports".to_owned()) && !databases.contains(&"secret".to_owned()), "{databases:?}");

    // Flight SQL's catalog calls list what the reader may read: `system` too, never `secret`.
    let info = rita
        .get_tables(arrow_flight::sql::CommandGetTables {
            catalog: None,
            db_schema_filter_pattern: None,
            table_name_filter_pattern: None,
            table_types: vec![],
            include_schema: false,
        })
        .await
        .expect("GetTables");
    let ticket = info.endpoint[0].ticket.clone().expect("ticket");
    let tables: Vec<RecordBatch> = rita.do_get(ticket).await.expect("stream").try_collect().await.expect("tables");
    let listed: Vec<String> =
        strings(&tables, 1).into_iter().zip(strings(&tables, 2)).map(|(d, t)| format!("{d}.{t}")).collect();
    assert!(
        listed.contains(&"reports.sales".to_owned()) && listed.contains(&"system.queries".to_owned()),
        "{listed:?}"
    );
    assert!(!listed.iter().any(|t| t.starts_with("secret.")), "{listed:?}");

    // The data are untouched by every refused attempt.
    let lakegate = &server.lakegate;
    assert_eq!(lakegate.sql("SELECT count(*) FROM reports.sales").success().first_count(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_writer_inserts_into_its_databases_only() {
    let server = team_server("");
    let mut wendy = server.sign_in("wendy", PASSWORD).await.expect("signs in");
    query(&mut wendy, "INSERT INTO reports.sales VALUES (3)").await.expect("granted");
    let rows = query(&mut wendy, "SELECT count(*) FROM reports.sales").await.expect("read");
    assert_eq!(strings(&rows, 0), ["3"]);
    denied(query(&mut wendy, "INSERT INTO secret.salaries VALUES (1)").await, "wendy", "database secret");
    denied(query(&mut wendy, "INSERT OVERWRITE TABLE secret.salaries SELECT 1").await, "wendy", "database secret");
    // What an INSERT reads needs the grants a query of it needs.
    denied(
        query(&mut wendy, "INSERT INTO reports.sales SELECT n FROM secret.salaries").await,
        "wendy",
        "database secret",
    );
    denied(query(&mut wendy, "CREATE DATABASE mine").await, "wendy", "CREATE DATABASE");

    // A writer caches the tables of its databases, and a cached query reads with its grants.
    query(&mut wendy, "CACHE TABLE reports.sales").await.expect("granted");
    denied(
        query(&mut wendy, "CACHE TABLE reports.copied AS SELECT * FROM secret.salaries").await,
        "wendy",
        "database secret",
    );
    server.lakegate.sql("CACHE TABLE secret.salaries").success();
    let mut rita = server.sign_in("rita", PASSWORD).await.expect("signs in");
    let cached = query(&mut rita, "SHOW CACHED TABLES").await.expect("listed");
    assert_eq!(strings(&cached, 1), ["sales"], "only the caches of databases rita may read");
    let rows = query(&mut rita, "SELECT count(*) FROM reports.sales").await.expect("read");
    assert_eq!(strings(&rows, 0), ["3"]);

    // An answer kept for the admin is never given to a reader who may not run its query.
    let mut root = server.sign_in("root", PASSWORD).await.expect("signs in");
    let total = "SELECT sum(n) FROM secret.salaries";
    for _ in 0..2 {
        assert_eq!(strings(&query(&mut root, total).await.expect("read"), 0), ["100"]);
    }
    let (_, metrics) =
        crate::operate::http_get(server.admin.as_deref().expect("served"), "/metrics", Some(("root", PASSWORD)));
    assert!(metrics.contains("lakegate_answers_total{result=\"reused\"} 1"), "the answer was kept:\n{metrics}");
    denied(query(&mut rita, total).await, "rita", "database secret");
}

#[tokio::test(flavor = "multi_thread")]
async fn system_queries_shows_non_admins_only_their_own_and_no_secrets() {
    let server = team_server("");
    let mut root = server.sign_in("root", PASSWORD).await.expect("signs in");
    query(&mut root, "SELECT 'root was here' AS marker").await.expect("runs");
    let refused = query(
        &mut root,
        "CREATE TEMPORARY VIEW pg USING org.apache.spark.sql.jdbc OPTIONS (url 'jdbc:postgresql://127.0.0.1:1/x', dbtable 't', user 'u', password 'hunter2-secret')",
    )
    .await;
    assert!(refused.is_err(), "no PostgreSQL on port 1");

    let mut rita = server.sign_in("rita", PASSWORD).await.expect("signs in");
    query(&mut rita, "SELECT 'rita was here' AS marker").await.expect("runs");
    let seen = strings(&query(&mut rita, "SELECT \"user\", sql FROM system.queries").await.expect("own rows"), 1);
    assert!(seen.iter().any(|s| s.contains("rita was here")), "{seen:?}");
    assert!(!seen.iter().any(|s| s.contains("root was here")), "a reader sees another user's query: {seen:?}");

    // The cluster's hosts and ports are for admins: a reader has no system.executors.
    let executors = query(&mut rita, "SELECT host FROM system.executors").await;
    assert!(executors.is_err(), "a reader lists executors: {executors:?}");
    query(&mut root, "SELECT host FROM system.executors").await.expect("an admin lists them (none here)");

    let all = strings(&query(&mut root, "SELECT sql FROM system.queries").await.expect("all rows"), 0);
    assert!(
        all.iter().any(|s| s.contains("rita was here")) && all.iter().any(|s| s.contains("jdbc:postgresql")),
        "{all:?}"
    );
    assert!(!all.iter().any(|s| s.contains("hunter2-secret")), "a password in system.queries: {all:?}");
    drop((root, rita));
    let log = server.stop();
    assert!(!log.contains("hunter2-secret"), "a password in the server log");
    assert!(log.contains("permission denied") || log.contains("\"rita\"") || log.contains("rita"), "{log}");
}

#[test]
fn names_never_become_paths() {
    let lakegate = Lakegate::new();
    for sql in [
        r#"CREATE DATABASE "../escape""#,
        r#"CREATE DATABASE "a/b""#,
        r#"CREATE TABLE "../../etc" (a INT) USING PARQUET"#,
        r#"CREATE TABLE "x/y" (a INT)"#,
        r#"CREATE TEMPORARY VIEW "a/b" USING parquet OPTIONS (path '/tmp')"#,
    ] {
        let run = lakegate.sql(sql).failure();
        assert!(run.stderr.contains("cannot be empty, '.' or '..', or contain '/'"), "{sql}: {}", run.stderr);
    }
    assert!(!lakegate.data_dir.path().join("escape").exists());
    assert!(!lakegate.data_dir.path().join("etc").exists());
    let warehouse = lakegate.data_dir.path().join("warehouse/default");
    assert!(!warehouse.join("x").exists());
}

#[test]
fn admin_locations_stay_under_allowed_prefixes() {
    let lakegate = Lakegate::new();
    let allowed = lakegate.data_dir.path().join("lake");
    std::fs::create_dir_all(allowed.join("t")).expect("dir");
    let config = lakegate.data_dir.path().join("lakegate.toml");
    std::fs::write(&config, format!("[server]\nallowed_locations = [\"{}/\", \"s3://lake/\"]\n", allowed.display()))
        .expect("config");
    let run = |sql: &str| lakegate.run(&["--config", config.to_str().expect("utf-8"), "sql", "-e", sql]);
    run(&format!("CREATE EXTERNAL TABLE ok (a INT) STORED AS PARQUET LOCATION '{}/t'", allowed.display())).success();
    for location in [
        "/etc".to_owned(),
        format!("{}/../elsewhere", allowed.display()),
        format!("{}-sibling", allowed.display()),
        "s3://other/x".into(),
    ] {
        let refused =
            run(&format!("CREATE EXTERNAL TABLE bad (a INT) STORED AS PARQUET LOCATION '{location}'")).failure();
        assert!(refused.stderr.contains("allowed_locations"), "{location}: {}", refused.stderr);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn tokens_are_exact_and_basic_headers_reuse_one_session() {
    let server = team_server("");
    let rita = server.sign_in("rita", PASSWORD).await.expect("signs in");
    let token = rita.token().expect("token").to_owned();
    // A token with trailing space or another case is not the token.
    for forged in [format!("{token} "), token.to_uppercase(), format!("{token}x")] {
        let mut other = server.sign_in("rita", PASSWORD).await.expect("signs in");
        other.set_token(forged.clone());
        let err = query(&mut other, "SELECT 1").await.expect_err("forged token");
        assert!(err.contains("unknown or expired"), "{forged}: {err}");
    }
    // Basic credentials on every call (as some drivers send them) keep one session: a `USE`
    // in one call holds in the next.
    let channel = Channel::from_shared(server.url().replace("grpc://", "http://"))
        .expect("url")
        .connect()
        .await
        .expect("connects");
    let mut basic = FlightSqlServiceClient::new(channel);
    use base64::Engine;
    let header = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("rita:{PASSWORD}")));
    basic.set_header("authorization", header);
    query(&mut basic, "USE reports").await.expect("use");
    let rows = query(&mut basic, "SELECT count(*) FROM sales").await.expect("same session");
    assert_eq!(strings(&rows, 0), ["2"]);
}

#[test]
fn remote_passwords_need_tls() {
    let lakegate = Lakegate::new();
    let hash = password_hash(&lakegate, PASSWORD);
    let config = lakegate.data_dir.path().join("lakegate.toml");
    std::fs::write(
        &config,
        format!("[[server.users]]\nname = \"root\"\npassword_hash = \"{hash}\"\nrole = \"admin\"\n"),
    )
    .expect("config");
    let config = config.to_str().expect("utf-8");
    let refused = lakegate.run(&["--config", config, "serve", "--listen", "0.0.0.0:0"]).failure();
    assert!(
        refused.stderr.contains("tls_cert") && refused.stderr.contains("--insecure-allow-plaintext"),
        "{}",
        refused.stderr
    );
}
