//! The embedded catalog store: one SQLite file, every change one transaction.
//!
//! WAL mode and a busy timeout let several lakegate processes share the file: readers never
//! block, writers queue, and a crash leaves the last committed state.

use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use crate::error::did_you_mean;
use crate::{Error, Result, TableSpec};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS databases (
    name       TEXT PRIMARY KEY,
    comment    TEXT,
    created_at TEXT NOT NULL DEFAULT (datetime('now'))
);
CREATE TABLE IF NOT EXISTS tables (
    database   TEXT NOT NULL REFERENCES databases(name),
    name       TEXT NOT NULL,
    spec       TEXT NOT NULL,
    created_at TEXT NOT NULL DEFAULT (datetime('now')),
    PRIMARY KEY (database, name)
);
CREATE TABLE IF NOT EXISTS caches (
    database   TEXT NOT NULL,
    name       TEXT NOT NULL,
    definition TEXT NOT NULL,
    state      TEXT NOT NULL,
    PRIMARY KEY (database, name)
);
INSERT OR IGNORE INTO databases (name, comment) VALUES ('default', 'Default database');
";

pub(crate) const DEFAULT_DATABASE: &str = "default";

#[derive(Debug)]
pub(crate) struct Store {
    conn: Mutex<Connection>,
}

impl Store {
    pub(crate) fn open(path: &Path) -> Result<Self> {
        let open_error = |source| Error::Open { path: path.display().to_string(), source };
        let conn = Connection::open(path).map_err(open_error)?;
        conn.busy_timeout(Duration::from_secs(30)).map_err(open_error)?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(open_error)?;
        conn.pragma_update(None, "synchronous", "NORMAL").map_err(open_error)?;
        conn.pragma_update(None, "foreign_keys", "ON").map_err(open_error)?;
        conn.execute_batch(&format!("BEGIN IMMEDIATE; {SCHEMA} COMMIT;")).map_err(open_error)?;
        // Catalogs made before databases could be mounted gain the column (NULL: not mounted).
        let mounts: bool = conn
            .query_row("SELECT count(*) FROM pragma_table_info('databases') WHERE name = 'mount'", [], |r| r.get(0))
            .map_err(open_error)?;
        if !mounts {
            conn.execute_batch("ALTER TABLE databases ADD COLUMN mount TEXT").map_err(open_error)?;
        }
        Ok(Self { conn: Mutex::new(conn) })
    }

    fn with<T>(&self, f: impl FnOnce(&mut Connection) -> Result<T>) -> Result<T> {
        // A panic while holding the lock cannot leave SQLite half-written: the transaction rolls back.
        let mut conn = self.conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&mut conn)
    }

    pub(crate) fn databases(&self) -> Result<Vec<String>> {
        self.with(|c| {
            let mut stmt = c.prepare_cached("SELECT name FROM databases ORDER BY name")?;
            let rows = stmt.query_map([], |r| r.get(0))?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    pub(crate) fn database_exists(&self, name: &str) -> Result<bool> {
        self.with(|c| {
            let mut stmt = c.prepare_cached("SELECT 1 FROM databases WHERE name = ?1")?;
            Ok(stmt.exists([name])?)
        })
    }

    pub(crate) fn require_database(&self, name: &str) -> Result<()> {
        if self.database_exists(name)? {
            return Ok(());
        }
        let known = self.databases()?;
        Err(Error::UnknownDatabase {
            name: name.to_owned(),
            hint: did_you_mean(name, known.iter().map(String::as_str)),
        })
    }

    /// Returns false when the database existed and `if_not_exists` was given. `mount` is the
    /// JSON spec of the remote schema a mounted database shows.
    pub(crate) fn create_database(
        &self,
        name: &str,
        comment: Option<&str>,
        if_not_exists: bool,
        mount: Option<&str>,
    ) -> Result<bool> {
        self.with(|c| {
            let inserted = c.execute(
                "INSERT OR IGNORE INTO databases (name, comment, mount) VALUES (?1, ?2, ?3)",
                params![name, comment, mount],
            )?;
            match (inserted, if_not_exists) {
                (1, _) => Ok(true),
                (_, true) => Ok(false),
                _ => Err(Error::DatabaseExists(name.to_owned())),
            }
        })
    }

    /// The JSON spec of the remote schema `name` mounts, if it is a mounted database.
    pub(crate) fn mount_json(&self, name: &str) -> Result<Option<String>> {
        self.with(|c| {
            let mut stmt = c.prepare_cached("SELECT mount FROM databases WHERE name = ?1")?;
            Ok(stmt.query_row([name], |r| r.get::<_, Option<String>>(0)).optional()?.flatten())
        })
    }

    pub(crate) fn drop_database(&self, name: &str, if_exists: bool, cascade: bool) -> Result<bool> {
        if !self.database_exists(name)? {
            return if if_exists { Ok(false) } else { self.require_database(name).map(|()| false) };
        }
        self.with(|c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let tables: usize =
                tx.query_row("SELECT count(*) FROM tables WHERE database = ?1", [name], |r| r.get(0))?;
            if tables > 0 && !cascade {
                return Err(Error::DatabaseNotEmpty { name: name.to_owned(), tables });
            }
            tx.execute("DELETE FROM tables WHERE database = ?1", [name])?;
            tx.execute("DELETE FROM caches WHERE database = ?1", [name])?;
            tx.execute("DELETE FROM databases WHERE name = ?1", [name])?;
            tx.commit()?;
            Ok(true)
        })
    }

    pub(crate) fn table_names(&self, database: &str) -> Result<Vec<String>> {
        self.with(|c| {
            let mut stmt = c.prepare_cached("SELECT name FROM tables WHERE database = ?1 ORDER BY name")?;
            let rows = stmt.query_map([database], |r| r.get(0))?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    /// The stored spec as JSON text, which also serves as the provider cache's version.
    pub(crate) fn table_json(&self, database: &str, name: &str) -> Result<Option<String>> {
        self.with(|c| {
            let mut stmt = c.prepare_cached("SELECT spec FROM tables WHERE database = ?1 AND name = ?2")?;
            Ok(stmt.query_row([database, name], |r| r.get(0)).optional()?)
        })
    }

    pub(crate) fn tables(&self, database: &str) -> Result<Vec<TableSpec>> {
        let rows: Vec<(String, String)> = self.with(|c| {
            let mut stmt = c.prepare_cached("SELECT name, spec FROM tables WHERE database = ?1 ORDER BY name")?;
            let rows = stmt.query_map([database], |r| Ok((r.get(0)?, r.get(1)?)))?;
            Ok(rows.collect::<Result<_, _>>()?)
        })?;
        rows.into_iter().map(|(name, json)| parse_spec(&format!("{database}.{name}"), &json)).collect()
    }

    /// Inserts a new table; false when it already exists and `if_not_exists` was given.
    pub(crate) fn insert_table(&self, spec: &TableSpec, if_not_exists: bool) -> Result<bool> {
        let json =
            serde_json::to_string(spec).map_err(|source| Error::Corrupt { table: spec.qualified_name(), source })?;
        self.with(|c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let db_exists = tx.query_row("SELECT count(*) FROM databases WHERE name = ?1", [&spec.database], |r| {
                r.get::<_, i64>(0)
            })?;
            if db_exists == 0 {
                return Err(Error::UnknownDatabase { name: spec.database.clone(), hint: String::new() });
            }
            let inserted = tx.execute(
                "INSERT OR IGNORE INTO tables (database, name, spec) VALUES (?1, ?2, ?3)",
                params![spec.database, spec.name, json],
            )?;
            tx.commit()?;
            match (inserted, if_not_exists) {
                (1, _) => Ok(true),
                (_, true) => Ok(false),
                _ => Err(Error::TableExists(spec.qualified_name())),
            }
        })
    }

    pub(crate) fn delete_table(&self, database: &str, name: &str) -> Result<bool> {
        self.with(|c| Ok(c.execute("DELETE FROM tables WHERE database = ?1 AND name = ?2", [database, name])? == 1))
    }
}

/// A cache's definition and state, each as JSON text.
pub(crate) type CacheJson = (String, String);

/// A cache's database, name, definition and state.
pub(crate) type CacheRow = (String, String, String, String);

impl Store {
    /// The definition and state of the cache of `database.name`, as JSON text.
    pub(crate) fn cache_json(&self, database: &str, name: &str) -> Result<Option<CacheJson>> {
        self.with(|c| {
            let mut stmt =
                c.prepare_cached("SELECT definition, state FROM caches WHERE database = ?1 AND name = ?2")?;
            Ok(stmt.query_row([database, name], |r| Ok((r.get(0)?, r.get(1)?))).optional()?)
        })
    }

    /// The stored spec of `database.name` and its cache's definition and state, in one read:
    /// what resolving a table needs on every query.
    pub(crate) fn table_and_cache_json(
        &self,
        database: &str,
        name: &str,
    ) -> Result<(Option<String>, Option<CacheJson>)> {
        self.with(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT (SELECT spec FROM tables WHERE database = ?1 AND name = ?2), c.definition, c.state \
                 FROM (SELECT 1) LEFT JOIN caches c ON c.database = ?1 AND c.name = ?2",
            )?;
            Ok(stmt.query_row([database, name], |r| {
                let cache = match (r.get::<_, Option<String>>(1)?, r.get::<_, Option<String>>(2)?) {
                    (Some(definition), Some(state)) => Some((definition, state)),
                    _ => None,
                };
                Ok((r.get(0)?, cache))
            })?)
        })
    }

    /// Every cache: database, name, definition and state.
    pub(crate) fn caches(&self) -> Result<Vec<CacheRow>> {
        self.with(|c| {
            let mut stmt =
                c.prepare_cached("SELECT database, name, definition, state FROM caches ORDER BY database, name")?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    /// Creates or replaces a cache, definition and state together.
    pub(crate) fn put_cache(&self, database: &str, name: &str, definition: &str, state: &str) -> Result<()> {
        self.with(|c| {
            c.execute(
                "INSERT OR REPLACE INTO caches (database, name, definition, state) VALUES (?1, ?2, ?3, ?4)",
                params![database, name, definition, state],
            )?;
            Ok(())
        })
    }

    /// Replaces a cache's state when it is still `expected` (so a refresh never overwrites a
    /// newer one, or re-creates an uncached table); false when it was not.
    pub(crate) fn swap_cache_state(&self, database: &str, name: &str, expected: &str, state: &str) -> Result<bool> {
        self.with(|c| {
            let changed = c.execute(
                "UPDATE caches SET state = ?4 WHERE database = ?1 AND name = ?2 AND state = ?3",
                params![database, name, expected, state],
            )?;
            Ok(changed == 1)
        })
    }

    pub(crate) fn delete_cache(&self, database: &str, name: &str) -> Result<bool> {
        self.with(|c| Ok(c.execute("DELETE FROM caches WHERE database = ?1 AND name = ?2", [database, name])? == 1))
    }
}

pub(crate) fn parse_spec(table: &str, json: &str) -> Result<TableSpec> {
    serde_json::from_str(json).map_err(|source| Error::Corrupt { table: table.to_owned(), source })
}
