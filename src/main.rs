//! The `lakegate` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use lakegate::output::Format;
use lakegate::session::{self as sql, Command as Statement, Planned, parse_database_name, parse_table_name};
use lakegate::telemetry::LogFormat;
use lakegate::{Config, Error, Lakegate, Result};
use tracing_subscriber::EnvFilter;

/// lakegate: one SQL gateway over S3 Parquet, PostgreSQL, Redshift and Cassandra.
///
/// Tables of every source live in one persistent catalog (by default `./.lakegate/catalog.db`),
/// so a query can join them all. Hive and Spark DDL (`CREATE TABLE ... USING PARQUET
/// PARTITIONED BY (dt) LOCATION 's3a://...'`) runs unchanged.
#[derive(Debug, Parser)]
#[command(name = "lakegate", version, about, long_about)]
struct Cli {
    /// Directory of the embedded catalog and the default warehouse [default: ./.lakegate]
    #[arg(long, global = true, env = "LAKEGATE_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Configuration file [default: ./lakegate.toml when present]
    #[arg(long, global = true, env = "LAKEGATE_CONFIG")]
    config: Option<PathBuf>,
    /// More log output (-v info, -vv debug); RUST_LOG overrides
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// How log lines are written on standard error: text, or JSON objects (one per line, with
    /// the query id of the statement they belong to)
    #[arg(long, global = true, value_enum, default_value = "text", env = "LAKEGATE_LOG_FORMAT")]
    log_format: LogFormat,
    /// Run queries on this Ballista scheduler (`host:port`, a `lakegate scheduler`) instead of
    /// in this process [default: `[cluster] scheduler`]
    #[arg(long, global = true, env = "LAKEGATE_CLUSTER_SCHEDULER", value_name = "HOST:PORT")]
    cluster: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run SQL statements once and print their results
    Sql {
        /// Statements to run, separated by `;`
        #[arg(short = 'e', long = "execute", conflicts_with = "file", required_unless_present = "file")]
        execute: Option<String>,
        /// A file of statements, separated by `;`
        #[arg(short, long)]
        file: Option<PathBuf>,
        /// How to print rows
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
        /// Write rows to this file instead of standard output (required for parquet)
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// Print "(N rows, S s)" for each statement on standard error
        #[arg(long)]
        timing: bool,
    },
    /// Run a batch script (Airflow/cron): variables, a progress bar, a non-zero exit with
    /// file and line on the first failure
    Run {
        /// The script: statements separated by `;`
        script: PathBuf,
        /// A variable, as NAME=VALUE; `{{ NAME }}`, `${NAME}` and `${hivevar:NAME}` are replaced.
        /// With `ds`, Airflow's `ds_nodash`, `ts` and `ts_nodash` are derived.
        #[arg(long = "var", value_parser = parse_var)]
        vars: Vec<(String, String)>,
        /// Print the statements with variables replaced, and run nothing
        #[arg(long)]
        dry_run: bool,
    },
    /// Serve the catalog over Arrow Flight SQL, for Superset, Jupyter (ADBC), JDBC tools and
    /// `lakegate repl --connect`; stops cleanly on Ctrl-C or SIGTERM
    Serve {
        /// Address to listen on [default: 127.0.0.1:50051, or `[server] listen`]; port 0 picks one
        #[arg(long, env = "LAKEGATE_LISTEN")]
        listen: Option<String>,
        /// Address of the admin HTTP endpoint (/metrics, /healthz, /readyz) [default:
        /// 127.0.0.1:9090, or `[server] admin_listen`]; `off` serves none
        #[arg(long, env = "LAKEGATE_ADMIN_LISTEN")]
        admin_listen: Option<String>,
        /// Serve a non-loopback address although no users are configured (anyone can connect)
        #[arg(long)]
        insecure_allow_remote: bool,
        /// Serve a non-loopback address with users configured but without TLS (passwords and
        /// tokens then cross the network in clear text; for use behind a TLS-terminating proxy)
        #[arg(long)]
        insecure_allow_plaintext: bool,
        /// First load the sample data and answer the NCIS question, as `lakegate demo` does
        #[arg(long)]
        demo: bool,
        /// With --demo: put the sample `users` into this PostgreSQL database (see `demo --postgres`)
        #[arg(long, env = "LAKEGATE_DEMO_POSTGRES", requires = "demo")]
        demo_postgres: Option<String>,
    },
    /// Print the Argon2 hash of a password read from standard input, for `[[server.users]]`
    HashPassword,
    /// Delete the files no reader of a Parquet table can see any more: files replaced by an
    /// overwrite, and those of writes that never finished (same as `VACUUM t RETAIN n HOURS`)
    Vacuum {
        /// The table, as `db.table` or `table`
        table: String,
        /// Keep files of unfinished writes younger than this, in hours (they may still be
        /// running)
        #[arg(long, default_value_t = 1.0)]
        retain_hours: f64,
    },
    /// Interactive SQL shell with history, multi-line statements and \d browsing, over this
    /// process's catalog or a lakegate server
    Repl {
        /// Run statements on a server instead: grpc://host:port or grpc+tls://host:port
        #[arg(long)]
        connect: Option<String>,
        /// User to sign in as on the server; the password comes from LAKEGATE_PASSWORD, or is
        /// read from standard input
        #[arg(long, requires = "connect")]
        user: Option<String>,
        /// PEM certificate to trust for grpc+tls:// (a self-signed server certificate or its CA)
        #[arg(long, requires = "connect")]
        ca_cert: Option<PathBuf>,
    },
    /// Generate sample data (ad impressions, users, programs), register it and answer the
    /// canonical question: how many women aged 25-49 saw an NCIS ad?
    Demo {
        /// Ad-server log rows to generate
        #[arg(long, default_value_t = 3_000_000)]
        rows: usize,
        /// Put `users` into this PostgreSQL database instead of a Parquet file, e.g.
        /// postgres://me@127.0.0.1:5432/demo; the password comes from PGPASSWORD, which the
        /// registered table references as ${env:PGPASSWORD}. Replaces its table `users`.
        #[arg(long, env = "LAKEGATE_DEMO_POSTGRES")]
        postgres: Option<String>,
    },
    /// Run a cluster's scheduler: it plans the queries that clients started with `--cluster`
    /// send, and hands their tasks to executors. It reads the same configuration as the
    /// clients (`[s3]`, `[cassandra]`, `[geodata]`), for it lists the files of the tables.
    Scheduler {
        /// Address to listen on
        #[arg(long, default_value = "127.0.0.1:50050", env = "LAKEGATE_SCHEDULER_LISTEN")]
        listen: std::net::SocketAddr,
    },
    /// Run a cluster's executor: it runs the tasks its scheduler hands it, reading tables through
    /// its own configuration (`[s3]`, `[cassandra]`, `[geodata]`, and the environment variables
    /// that tables' `${env:...}` options name)
    Executor {
        /// The scheduler, as host:port
        #[arg(long, env = "LAKEGATE_SCHEDULER", value_name = "HOST:PORT")]
        scheduler: String,
        /// Address where other executors and clients fetch this one's results (Arrow Flight)
        #[arg(long, default_value = "127.0.0.1:50061", env = "LAKEGATE_EXECUTOR_LISTEN")]
        listen: std::net::SocketAddr,
        /// Port where the scheduler hands this executor its tasks (gRPC) [default: the listen
        /// port + 1]
        #[arg(long)]
        grpc_port: Option<u16>,
        /// Host name other nodes reach this executor by [default: the listen address's]
        #[arg(long)]
        advertise_host: Option<String>,
        /// Tasks run at once [default: the number of cores]
        #[arg(long)]
        concurrent_tasks: Option<usize>,
        /// Directory of shuffle files [default: a temporary directory]
        #[arg(long)]
        work_dir: Option<PathBuf>,
    },
    /// Browse the catalog without writing SQL
    Catalog {
        #[command(subcommand)]
        action: CatalogAction,
    },
    /// Look at the cluster that `--cluster` (or `[cluster] scheduler`) names
    Cluster {
        #[command(subcommand)]
        action: ClusterAction,
    },
}

#[derive(Debug, Subcommand)]
enum ClusterAction {
    /// List the executors registered with the scheduler, their task slots and last heartbeat
    /// (as `SELECT * FROM system.executors`)
    Status,
}

#[derive(Debug, Subcommand)]
enum CatalogAction {
    /// List databases
    Databases,
    /// List the tables of a database
    Tables {
        #[arg(default_value = "default")]
        database: String,
    },
    /// Show a table's columns
    Describe { table: String },
    /// Show the statement that re-creates a table (secrets masked)
    Show { table: String },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<()> {
    let mut config = Config::load(cli.config.as_deref())?;
    if let Some(dir) = cli.data_dir {
        config.data_dir = Some(dir);
    }
    if let Some(scheduler) = cli.cluster {
        config.cluster.scheduler = Some(scheduler);
    }
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new(match cli.verbose {
            0 => "warn",
            1 => "info,lakegate=info",
            _ => "debug",
        })
    });
    // Kept until the end: dropping it sends the traces still queued.
    let _telemetry = lakegate::telemetry::init(filter, cli.log_format, &config.telemetry)?;
    let server = config.server.clone();
    let command = match cli.command {
        Command::Scheduler { listen } => {
            let node = Lakegate::cluster_node(config).await?;
            return lakegate::cluster::run_scheduler(node, lakegate::cluster::SchedulerArgs { listen }).await;
        }
        Command::Executor { scheduler, listen, grpc_port, advertise_host, concurrent_tasks, work_dir } => {
            let node = Lakegate::cluster_node(config).await?;
            let grpc_port = grpc_port.unwrap_or(listen.port().wrapping_add(1));
            let args = lakegate::cluster::ExecutorArgs {
                scheduler,
                listen,
                grpc_port,
                advertise_host,
                concurrent_tasks,
                work_dir,
            };
            return lakegate::cluster::run_executor(node, args).await;
        }
        command => command,
    };
    let lakegate = Lakegate::open(config).await?;
    match command {
        Command::Scheduler { .. } | Command::Executor { .. } => unreachable!("run above"),
        Command::Cluster { action: ClusterAction::Status } => {
            if lakegate.config().cluster.scheduler.is_none() {
                return Err(Error::Usage(
                    "no cluster to look at: name its scheduler with --cluster HOST:PORT or [cluster] scheduler".into(),
                ));
            }
            let statements = sql::split_statements("SELECT * FROM system.executors ORDER BY id")?;
            lakegate.session().run_statements("cluster status", &statements, Format::Table, None, false).await
        }
        Command::Sql { execute, file, format, output, timing } => {
            let (origin, statements) = match (execute, file) {
                (Some(text), _) => ("-e".to_owned(), sql::split_statements(&text)?),
                (None, Some(path)) => {
                    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(path.display(), e))?;
                    (path.display().to_string(), sql::split_statements(&text)?)
                }
                (None, None) => unreachable!("clap requires -e or -f"),
            };
            lakegate.session().run_statements(&origin, &statements, format, output.as_deref(), timing).await
        }
        Command::Run { script, vars, dry_run } => {
            let text = std::fs::read_to_string(&script).map_err(|e| Error::io(script.display(), e))?;
            let origin = script.display().to_string();
            let vars = sql::template::with_airflow_defaults(vars.into_iter().collect());
            let located = |source: Error| Error::Statement { location: origin.clone(), source: Box::new(source) };
            let statements =
                sql::split_statements(&sql::template::render(&text, &vars).map_err(located)?).map_err(located)?;
            if dry_run {
                return lakegate.session().dry_run(&origin, &statements).await;
            }
            lakegate.session().run_script(&origin, &statements).await
        }
        Command::Serve {
            listen,
            admin_listen,
            insecure_allow_remote,
            insecure_allow_plaintext,
            demo,
            demo_postgres,
        } => {
            if demo {
                lakegate::demo::run(&lakegate, 3_000_000, demo_postgres.as_deref()).await?;
            }
            let insecure = lakegate::flight::Insecure {
                allow_remote: insecure_allow_remote,
                allow_plaintext: insecure_allow_plaintext,
            };
            let lakegate = std::sync::Arc::new(lakegate);
            lakegate::flight::serve(lakegate, &server, listen.as_deref(), admin_listen.as_deref(), insecure).await
        }
        Command::Vacuum { table, retain_hours } => {
            let table = parse_table_name(&table)?;
            lakegate
                .session()
                .print(Planned::Command(Statement::Vacuum { table, retain_hours: Some(retain_hours) }))
                .await
        }
        Command::HashPassword => {
            let mut password = String::new();
            std::io::stdin().read_line(&mut password).map_err(|e| Error::io("standard input", e))?;
            let hash =
                lakegate::flight::hash_password(password.trim_end_matches(['\n', '\r'])).map_err(Error::Config)?;
            println!("{hash}");
            Ok(())
        }
        Command::Repl { connect, user, ca_cert } => {
            let target = match connect {
                Some(url) => {
                    let password = match (&user, std::env::var("LAKEGATE_PASSWORD")) {
                        (None, _) => None,
                        (Some(_), Ok(password)) => Some(password),
                        (Some(user), Err(_)) => {
                            eprint!("password for {user}: ");
                            let mut line = String::new();
                            std::io::stdin().read_line(&mut line).map_err(|e| Error::io("standard input", e))?;
                            Some(line.trim_end_matches(['\n', '\r']).to_owned())
                        }
                    };
                    let remote = lakegate::flight::Remote::connect(
                        &url,
                        user.as_deref(),
                        password.as_deref(),
                        ca_cert.as_deref(),
                    )
                    .await?;
                    Some(lakegate::repl::Target::Remote(Box::new(remote)))
                }
                None => None,
            };
            lakegate::repl::run(&lakegate, target).await
        }
        Command::Demo { rows, postgres } => lakegate::demo::run(&lakegate, rows, postgres.as_deref()).await,
        Command::Catalog { action } => {
            let statement = match action {
                CatalogAction::Databases => Statement::ShowDatabases { catalog: None, pattern: None },
                CatalogAction::Tables { database } => {
                    Statement::ShowTables { database: Some(parse_database_name(&database)?), pattern: None }
                }
                CatalogAction::Describe { table } => Statement::Describe { table: parse_table_name(&table)? },
                CatalogAction::Show { table } => Statement::ShowCreateTable { table: parse_table_name(&table)? },
            };
            lakegate.session().print(Planned::Command(statement)).await
        }
    }
}

fn parse_var(text: &str) -> std::result::Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.trim().to_owned(), v.to_owned()))
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| format!("'{text}' is not NAME=VALUE"))
}
