//! The server under garbage: generated and mutated SQL, and random bytes as tickets, commands,
//! actions and DoPut streams, through the real server over a real socket. Every call must get
//! a result or an error, the server must never panic or die, and it must answer a plain query
//! afterwards.

use std::time::Duration;

use arrow_flight::sql::client::FlightSqlServiceClient;
use arrow_flight::{Action, FlightData, FlightDescriptor, Ticket};
use futures::TryStreamExt;
use tonic::transport::Channel;

use crate::flight::Server;

/// Statements sent in all (grammar-made plus mutations of the test corpus).
const STATEMENTS: usize = 10_000;
/// Random byte strings sent as each of: tickets, commands, actions, DoPut streams.
const RANDOM_CALLS: usize = 500;
/// A call that takes longer (a generated cross join, say) is dropped, which cancels it.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// xorshift64*: reproducible without a dependency; the seed is printed on failure.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    fn bytes(&mut self, max: usize) -> Vec<u8> {
        (0..self.below(max + 1)).map(|_| self.next() as u8).collect()
    }
}

/// The SQL of the project's own sqllogictest files: every statement and query block.
/// `$SCRATCH` becomes `scratch`.
fn corpus(scratch: &str) -> Vec<String> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/slt");
    let mut statements = Vec::new();
    for entry in std::fs::read_dir(dir).expect("tests/slt") {
        let text = std::fs::read_to_string(entry.expect("entry").path()).expect("slt file");
        let mut current: Option<String> = None;
        for line in text.lines() {
            if line.starts_with("statement") || line.starts_with("query") {
                current = Some(String::new());
            } else if line.trim().is_empty() || line == "----" {
                if let Some(sql) = current.take().filter(|s| !s.trim().is_empty()) {
                    statements.push(sql.replace("$SCRATCH", scratch));
                }
            } else if let Some(sql) = current.as_mut() {
                sql.push_str(line);
                sql.push('\n');
            }
        }
        if let Some(sql) = current.filter(|s| !s.trim().is_empty()) {
            statements.push(sql.replace("$SCRATCH", scratch));
        }
    }
    assert!(statements.len() > 50, "the corpus is the slt files' statements: {}", statements.len());
    statements
}

/// A random statement from a small grammar of what analysts type, odd corners included.
fn generated(rng: &mut Rng) -> String {
    const LITERALS: &[&str] = &[
        "1",
        "-0",
        "NULL",
        "'it''s'",
        "'\\'",
        "1e308",
        "9223372036854775807",
        "DATE '2018-03-05'",
        "TRUE",
        "'ünï'",
        "''",
        "0.1",
    ];
    const FUNCTIONS: &[&str] =
        &["abs", "upper", "length", "coalesce", "geodata", "sum", "count", "max", "concat", "date_trunc", "cast"];
    const OPS: &[&str] = &["+", "-", "*", "/", "%", "=", "<>", "<", "AND", "OR", "||", "LIKE", "IS DISTINCT FROM"];
    fn expr(rng: &mut Rng, depth: usize) -> String {
        match if depth > 3 { 0 } else { rng.below(6) } {
            0 => rng.pick(LITERALS).to_string(),
            1 => format!("{} {} {}", expr(rng, depth + 1), rng.pick(OPS), expr(rng, depth + 1)),
            2 => format!("{}({})", rng.pick(FUNCTIONS), expr(rng, depth + 1)),
            3 => format!("({})", expr(rng, depth + 1)),
            4 => format!(
                "CASE WHEN {} THEN {} ELSE {} END",
                expr(rng, depth + 1),
                expr(rng, depth + 1),
                expr(rng, depth + 1)
            ),
            _ => format!("(SELECT {})", expr(rng, depth + 1)),
        }
    }
    match rng.below(8) {
        0 => format!(
            "SELECT {} FROM generate_series(1, {}) AS t(v) WHERE {}",
            expr(rng, 0),
            rng.below(1000),
            expr(rng, 1)
        ),
        1 => format!("SELECT count(*) FROM system.queries WHERE sql LIKE {}", rng.pick(LITERALS)),
        2 => format!("SHOW TABLES LIKE {}", rng.pick(LITERALS)),
        3 => format!("DESCRIBE {}", rng.pick(&["t", "\"a\"\"b\"", "system.queries", "nope.nope", "`x`"])),
        4 => format!(
            "SELECT * FROM (VALUES ({}), ({})) AS v(a) ORDER BY 1 LIMIT {}",
            expr(rng, 1),
            expr(rng, 1),
            rng.below(5)
        ),
        5 => format!("EXPLAIN SELECT {}", expr(rng, 0)),
        6 => format!("SET datafusion.execution.batch_size = {}", rng.pick(&["1", "0", "-1", "'x'", "8192"])),
        _ => format!("SELECT {}", expr(rng, 0)),
    }
}

/// `sql` damaged: a cut, a byte flipped, a slice repeated or a token swapped in.
fn mutated(rng: &mut Rng, sql: &str) -> String {
    let mut bytes = sql.as_bytes().to_vec();
    for _ in 0..=rng.below(3) {
        let at = rng.below(bytes.len());
        match rng.below(5) {
            0 => {
                bytes.truncate(at);
            }
            1 => {
                if let Some(b) = bytes.get_mut(at) {
                    *b = rng.next() as u8;
                }
            }
            2 => {
                let piece = bytes[at..(at + rng.below(20)).min(bytes.len())].to_vec();
                bytes.splice(at..at, piece);
            }
            3 => {
                let token =
                    rng.pick(&["'", "\"", "(", ")", ";", "--", "/*", "$1", "?", "\0", "NULL", "SELECT", ",", "\\"]);
                bytes.splice(at..at, token.bytes());
            }
            _ => {
                let noise = rng.bytes(8);
                bytes.splice(at..at, noise);
            }
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Runs one statement fully (FlightInfo, then each ticket streamed); true when it succeeded.
async fn run(client: &mut FlightSqlServiceClient<Channel>, sql: String) -> bool {
    let call = async {
        let info = client.execute(sql, None).await?;
        for endpoint in info.endpoint {
            if let Some(ticket) = endpoint.ticket {
                client.do_get(ticket).await?.try_collect::<Vec<_>>().await?;
            }
        }
        Ok::<_, arrow_flight::error::FlightError>(())
    };
    matches!(tokio::time::timeout(CALL_TIMEOUT, call).await, Ok(Ok(())))
}

#[tokio::test(flavor = "multi_thread")]
async fn the_server_survives_ten_thousand_bad_statements_and_random_bytes() {
    let seed = std::env::var("LAKEGATE_FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x5eed_1a4e_6a7e_u64);
    let mut rng = Rng(seed);
    // Mutated DDL may name any LOCATION and then overwrite it: tables stay in the server's own
    // directory.
    let lakegate = crate::common::Lakegate::new();
    let home = lakegate.data_dir.path().display().to_string();
    let config = format!("[server]\nallowed_locations = [\"{home}/\"]\n");
    let server = Server::spawn(lakegate, &config, &["--listen", "127.0.0.1:0"]).expect("the server starts");
    let channel = Channel::from_shared(server.url().replace("grpc://", "http://"))
        .expect("url")
        .connect()
        .await
        .expect("connects");
    let mut client = FlightSqlServiceClient::new(channel.clone());
    assert!(run(&mut client, "CREATE TABLE t (a BIGINT, b STRING) USING PARQUET".into()).await);
    assert!(run(&mut client, "INSERT INTO t VALUES (1, 'x'), (2, NULL)".into()).await);

    let corpus = corpus(&format!("{home}/scratch"));
    let (mut ok, mut failed) = (0, 0);
    for i in 0..STATEMENTS {
        let sql = match i % 3 {
            0 => generated(&mut rng),
            1 => {
                let base = rng.pick(&corpus).clone();
                mutated(&mut rng, &base)
            }
            _ => {
                let base = generated(&mut rng);
                mutated(&mut rng, &base)
            }
        };
        if run(&mut client, sql).await { ok += 1 } else { failed += 1 }
    }

    // Random bytes where the protocol expects its own messages.
    let mut raw = arrow_flight::flight_service_client::FlightServiceClient::new(channel);
    let mut answered = 0;
    for _ in 0..RANDOM_CALLS {
        let ticket = Ticket::new(rng.bytes(300));
        answered += tokio::time::timeout(CALL_TIMEOUT, raw.do_get(ticket)).await.is_ok() as usize;
        let descriptor = FlightDescriptor::new_cmd(rng.bytes(300));
        answered += tokio::time::timeout(CALL_TIMEOUT, raw.get_flight_info(descriptor.clone())).await.is_ok() as usize;
        let action = Action::new(
            *rng.pick(&["CreatePreparedStatement", "ClosePreparedStatement", "CancelFlightInfo", "CancelQuery", "x"]),
            rng.bytes(300),
        );
        answered += tokio::time::timeout(CALL_TIMEOUT, raw.do_action(action)).await.is_ok() as usize;
        let data = FlightData {
            flight_descriptor: Some(descriptor),
            data_header: rng.bytes(64).into(),
            data_body: rng.bytes(256).into(),
            ..Default::default()
        };
        let put = raw.do_put(futures::stream::iter([data]));
        answered += tokio::time::timeout(CALL_TIMEOUT, put).await.is_ok() as usize;
    }

    // The fuzzed session may have dropped `t` or set anything: a new client is the test of
    // whether the server still serves everyone else.
    let fresh = Channel::from_shared(server.url().replace("grpc://", "http://"))
        .expect("url")
        .connect()
        .await
        .expect("connects");
    let alive = run(&mut FlightSqlServiceClient::new(fresh), "SELECT 1".into()).await;
    let log = server.stop();
    println!(
        "fuzz (seed {seed}): {STATEMENTS} statements ({ok} ran, {failed} refused or failed), {} random-byte calls ({answered} answered)",
        RANDOM_CALLS * 4
    );
    assert!(alive, "the server stopped answering after the fuzzing (seed {seed})");
    assert!(!log.contains("panicked"), "the server panicked (seed {seed}):\n{log}");
    assert_eq!(answered, RANDOM_CALLS * 4, "every random-byte call is answered (seed {seed})");
}
