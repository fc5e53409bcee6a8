//! Statements run one after another, as `lakegate sql -e/-f`, `lakegate run` (a batch script
//! with a progress bar) and a dry run print them: the first failure stops the run and names
//! its file and line.

use std::io::Write;
use std::time::Instant;

use super::Session;
use crate::output::{Format, Written, human_bytes, write};
use crate::sql::ScriptStatement;
use crate::{Error, Result};

impl Session {
    /// Runs `planned` and prints its rows as a table (its message, for a statement without
    /// rows, goes to standard error).
    ///
    /// # Errors
    /// The statement fails.
    pub async fn print(&self, planned: super::Planned) -> Result<()> {
        let output = self.run("", planned).await?;
        match write(output, Format::Table, &mut std::io::stdout().lock(), None).await? {
            written @ Written::Done(_) => eprintln!("{written}"),
            Written::Rows(_) => {}
        }
        Ok(())
    }

    /// Runs a batch script with a progress bar; each statement's outcome goes to stderr, and the
    /// first failure stops the run, naming its line.
    pub async fn run_script(&self, origin: &str, statements: &[ScriptStatement]) -> Result<()> {
        let progress = indicatif::ProgressBar::new(statements.len() as u64).with_style(
            indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} statements  {elapsed}  {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        let started = Instant::now();
        for statement in statements {
            let first_line = statement.text.lines().next().unwrap_or_default();
            let label = format!("line {}: {first_line}", statement.line);
            progress.set_message(label.clone());
            // Writes report rows and bytes as they go.
            let ticker = {
                let (progress, counters) = (progress.clone(), self.write_progress());
                let start = counters.written();
                tokio::spawn(async move {
                    loop {
                        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                        let (rows, bytes) = counters.written();
                        if (rows, bytes) != start {
                            let written = human_bytes(bytes - start.1);
                            progress.set_message(format!("{label}  [{} rows, {written} written]", rows - start.0));
                        }
                    }
                })
            };
            let outcome = run_one(self, origin, statement, Format::Table, &mut std::io::stdout(), None).await;
            ticker.abort();
            let (written, seconds) = outcome?;
            progress.suspend(|| eprintln!("{origin}:{}: {written} ({seconds:.3} s)", statement.line));
            progress.inc(1);
        }
        progress.finish_and_clear();
        eprintln!("{} statements in {:.3} s", statements.len(), started.elapsed().as_secs_f64());
        Ok(())
    }

    /// Prints each statement with its variables replaced and, for writes, the plan and the
    /// partitions they would replace. Nothing is run except the queries that find those partitions.
    pub async fn dry_run(&self, origin: &str, statements: &[ScriptStatement]) -> Result<()> {
        for statement in statements {
            println!("-- {origin}:{}\n{};", statement.line, statement.text);
            let is_insert = statement.text.trim_start().get(..6).is_some_and(|w| w.eq_ignore_ascii_case("insert"));
            if !is_insert {
                continue;
            }
            match self.execute(&format!("EXPLAIN {}", statement.text)).await {
                Ok(result) => {
                    let mut plan = Vec::new();
                    write(result, Format::Csv, &mut plan, None).await?;
                    for line in String::from_utf8_lossy(&plan).lines().skip(1) {
                        println!("--   {}", line.trim_matches('"'));
                    }
                }
                // Tables the script creates do not exist in a dry run.
                Err(e) => println!("--   (not planned: {e})"),
            }
            println!();
        }
        Ok(())
    }

    /// Runs statements in order; the first failure stops the run and names its line.
    pub async fn run_statements(
        &self,
        origin: &str,
        statements: &[ScriptStatement],
        format: Format,
        output: Option<&std::path::Path>,
        timing: bool,
    ) -> Result<()> {
        let mut file = match (output, format) {
            (Some(path), f) if f != Format::Parquet => {
                Some(std::fs::File::create(path).map_err(|e| Error::io(path.display(), e))?)
            }
            _ => None,
        };
        for statement in statements {
            let mut stdout = std::io::stdout().lock();
            let out: &mut dyn Write = match file.as_mut() {
                Some(f) => f,
                None => &mut stdout,
            };
            match run_one(self, origin, statement, format, out, output).await? {
                (written @ Written::Rows(_), seconds) if timing => eprintln!("({written}, {seconds:.3} s)"),
                (written @ Written::Done(_), _) => eprintln!("{written}"),
                (Written::Rows(_), _) => {}
            }
        }
        Ok(())
    }
}

/// Runs one statement of a script and writes its rows; an error names the statement's line.
async fn run_one(
    session: &Session,
    origin: &str,
    statement: &ScriptStatement,
    format: Format,
    out: &mut dyn Write,
    path: Option<&std::path::Path>,
) -> Result<(Written, f64)> {
    let started = Instant::now();
    let located =
        |source: Error| Error::Statement { location: format!("{origin}:{}", statement.line), source: Box::new(source) };
    let result = session.execute(&statement.text).await.map_err(located)?;
    let written = write(result, format, out, path).await.map_err(located)?;
    Ok((written, started.elapsed().as_secs_f64()))
}
