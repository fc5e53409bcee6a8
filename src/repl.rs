//! The interactive shell: multi-line statements ending in `;`, history, `\d`-style browsing,
//! Ctrl-C cancels the running query (not the shell).

use std::time::Instant;

use rustyline::DefaultEditor;
use rustyline::error::ReadlineError;

use crate::output::Output;
use crate::output::{self, Format, Written};
use crate::session::{self, Lakegate, Session};
use crate::{Error, Result};

const HELP: &str = "\
Statements end with ';' and may span lines. Commands:
  \\l              list databases          \\dt [db]   list tables
  \\d [table]      describe a table        \\c db      use a database
  \\?              this help               \\q         quit
Ctrl-C cancels a running query; Ctrl-D quits.";

/// Where the shell's statements run: in this process, or on a lakegate server.
#[derive(Debug)]
pub enum Target {
    Local(Box<Session>),
    Remote(Box<crate::flight::Remote>),
}

impl Target {
    async fn execute(&self, statement: &str) -> Result<Output> {
        match self {
            Target::Local(session) => session.execute(statement).await,
            Target::Remote(remote) => remote.execute(statement).await,
        }
    }

    fn prompt(&self) -> String {
        match self {
            Target::Local(session) => format!("{}> ", session.current_database()),
            Target::Remote(remote) => format!("{}> ", remote.url()),
        }
    }
}

/// Runs the shell until `\q` or end of input.
///
/// # Errors
/// Only when the terminal cannot be used; statement errors are printed and the shell goes on.
pub async fn run(lakegate: &Lakegate, target: Option<Target>) -> Result<()> {
    let mut editor = DefaultEditor::new().map_err(|e| Error::Terminal(format!("cannot open it: {e}")))?;
    let history = lakegate.config().data_dir.join("history");
    let _ = editor.load_history(&history);
    let session = target.unwrap_or_else(|| Target::Local(Box::new(lakegate.session().with_client("repl"))));
    println!("lakegate {} — type \\? for help, \\q to quit", env!("CARGO_PKG_VERSION"));
    let mut buffer = String::new();
    loop {
        let prompt = if buffer.is_empty() { session.prompt() } else { "   ...> ".to_owned() };
        let line = match editor.readline(&prompt) {
            Ok(line) => line,
            Err(ReadlineError::Interrupted) => {
                buffer.clear();
                continue;
            }
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(Error::Terminal(e.to_string())),
        };
        let trimmed = line.trim();
        if buffer.is_empty() && trimmed.starts_with('\\') {
            let _ = editor.add_history_entry(trimmed);
            match backslash(trimmed) {
                Backslash::Quit => break,
                Backslash::Help => println!("{HELP}"),
                Backslash::Sql(statement) => run_statement(&session, &statement).await,
                Backslash::Unknown => println!("unknown command {trimmed}; \\? lists the commands"),
            }
            continue;
        }
        if buffer.is_empty() && matches!(trimmed, "quit" | "exit") {
            break;
        }
        buffer.push_str(&line);
        buffer.push('\n');
        if !trimmed.ends_with(';') {
            continue;
        }
        let text = std::mem::take(&mut buffer);
        // The history file keeps no secrets: literals holding them are masked.
        let _ = editor.add_history_entry(session::redact(text.trim()));
        match session::split_statements(&text) {
            Ok(statements) => {
                for statement in statements {
                    run_statement(&session, &statement.text).await;
                }
            }
            Err(e) => eprintln!("error: {e}"),
        }
    }
    let _ = editor.save_history(&history);
    Ok(())
}

enum Backslash {
    Quit,
    Help,
    Sql(String),
    Unknown,
}

fn backslash(command: &str) -> Backslash {
    let mut words = command.split_whitespace();
    let name = words.next().unwrap_or_default();
    let argument = words.next();
    match (name, argument) {
        ("\\q" | "\\quit", _) => Backslash::Quit,
        ("\\?" | "\\h" | "\\help", _) => Backslash::Help,
        ("\\l", _) => Backslash::Sql("SHOW DATABASES".into()),
        ("\\dt" | "\\d", None) => Backslash::Sql("SHOW TABLES".into()),
        ("\\dt", Some(db)) => Backslash::Sql(format!("SHOW TABLES IN {db}")),
        ("\\d", Some(table)) => Backslash::Sql(format!("DESCRIBE {table}")),
        ("\\c" | "\\use", Some(db)) => Backslash::Sql(format!("USE {db}")),
        _ => Backslash::Unknown,
    }
}

/// Runs one statement, printing rows, row count and time, or the error; Ctrl-C cancels it.
async fn run_statement(target: &Target, statement: &str) {
    let started = Instant::now();
    let work = async {
        let result = target.execute(statement).await?;
        output::write(result, Format::Table, &mut std::io::stdout(), None).await
    };
    tokio::select! {
        result = work => match result {
            Ok(written @ Written::Rows(_)) => println!("{written} in {:.3} s", started.elapsed().as_secs_f64()),
            Ok(written @ Written::Done(_)) => println!("{written} ({:.3} s)", started.elapsed().as_secs_f64()),
            Err(e) => eprintln!("error: {e}"),
        },
        _ = tokio::signal::ctrl_c() => println!("cancelled after {:.3} s", started.elapsed().as_secs_f64()),
    }
}
