//! Who may do what. Configured users have a role and the databases granted to them:
//! `admin` may do everything; `writer` may read and INSERT into its databases; `reader` may
//! read its databases. Without configured users the one local user is an admin, as before.
//!
//! Checks run on what a statement is, after parsing and planning, so no spelling of a
//! statement (quoted names, views, subqueries) gets around them.

use datafusion::common::TableReference;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::logical_expr::{DdlStatement, LogicalPlan, Statement, WriteOp};
use serde::{Deserialize, Serialize};

use crate::sql::ddl::{Command, TableName};
use crate::{Error, Result};

/// A configured user's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything: DDL, any table, `COPY ... TO`, URL tables, S3 options, `VACUUM`.
    Admin,
    /// SELECT and INSERT on the granted databases.
    Writer,
    /// SELECT on the granted databases.
    #[default]
    Reader,
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Role::Admin => "admin",
            Role::Writer => "writer",
            Role::Reader => "reader",
        })
    }
}

/// The user of a process or server without configured users.
pub const ANONYMOUS: &str = "anonymous";

/// The database grants that mean "every database".
const ALL_DATABASES: &str = "*";

/// The databases every user may read: lakegate's own views of itself (rows filtered per
/// user where they name users) and DataFusion's catalog views.
const PUBLIC_DATABASES: &[&str] = &["system", "information_schema"];

/// Who runs a session's statements.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub user: String,
    pub role: Role,
    /// Granted databases (lower case); `*` grants all. Admins need none.
    pub databases: Vec<String>,
}

impl Principal {
    /// The one user of a process without configured users (the CLI, the REPL, a loopback
    /// server without `[[server.users]]`).
    pub fn local(user: &str) -> Self {
        Self { user: user.to_owned(), role: Role::Admin, databases: vec![ALL_DATABASES.to_owned()] }
    }

    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    fn granted(&self, database: &str) -> bool {
        self.is_admin() || self.databases.iter().any(|d| d == ALL_DATABASES || d.eq_ignore_ascii_case(database))
    }

    pub fn may_read(&self, database: &str) -> bool {
        PUBLIC_DATABASES.contains(&database) || self.granted(database)
    }

    pub fn may_write(&self, database: &str) -> bool {
        matches!(self.role, Role::Admin | Role::Writer) && self.granted(database)
    }

    /// A refusal naming this user and what is missing, logged for the operator.
    pub fn deny(&self, privilege: impl Into<String>) -> Error {
        let privilege = privilege.into();
        tracing::warn!(user = %self.user, role = %self.role, %privilege, "permission denied");
        Error::PermissionDenied { user: self.user.clone(), privilege }
    }

    fn require_admin(&self, what: &str) -> Result<()> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(self.deny(format!("{what} needs the admin role (user is a {})", self.role)))
        }
    }

    fn require_read(&self, database: &str) -> Result<()> {
        if self.may_read(database) {
            Ok(())
        } else {
            Err(self.deny(format!("SELECT on database {database} is not granted")))
        }
    }

    /// # Errors
    /// [`Error::PermissionDenied`] unless this user may INSERT into `database`.
    pub fn require_write(&self, database: &str) -> Result<()> {
        if self.may_write(database) {
            return Ok(());
        }
        Err(self.deny(match self.role {
            Role::Reader => {
                format!("INSERT into database {database} needs the writer or admin role (user is a reader)")
            }
            _ => format!("INSERT into database {database} is not granted"),
        }))
    }

    /// Whether this user may run one of lakegate's own statements; `current` is the session's
    /// database, for unqualified names.
    ///
    /// # Errors
    /// [`Error::PermissionDenied`] naming the user and the privilege missing.
    pub fn check_command(&self, command: &Command, current: &str) -> Result<()> {
        let database = |t: &TableName| t.database.clone().unwrap_or_else(|| current.to_owned());
        match command {
            Command::CreateDatabase { .. } => self.require_admin("CREATE DATABASE"),
            Command::RefreshDatabase { name } => self.require_read(name),
            Command::DropDatabase { .. } => self.require_admin("DROP DATABASE"),
            Command::CreateTable(_) => self.require_admin("CREATE TABLE"),
            Command::DropTable { .. } => self.require_admin("DROP TABLE"),
            Command::Vacuum { .. } => self.require_admin("VACUUM"),
            Command::AddPartitions { .. } => self.require_admin("ALTER TABLE"),
            Command::RepairTable { table }
            | Command::CacheTable { table, .. }
            | Command::UncacheTable { table, .. } => self.require_write(&database(table)),
            Command::ClearCache => self.require_admin("CLEAR CACHE"),
            Command::Describe { table } | Command::ShowCreateTable { table } | Command::ShowPartitions { table } => {
                self.require_read(&database(table))
            }
            Command::ShowTables { database, .. } => self.require_read(database.as_deref().unwrap_or(current)),
            Command::Use { database } => self.require_read(database),
            // Filtered to what the user may read where they list names.
            Command::ShowDatabases { .. }
            | Command::ShowGrants
            | Command::ShowCachedTables
            | Command::IgnoredSetting { .. } => Ok(()),
            // Anyone may limit their own statements; whose query one may kill is checked
            // against the query's owner when it is found.
            Command::SetStatementTimeout { .. } | Command::KillQuery { .. } => Ok(()),
        }
    }

    /// Whether this user may run a plan DataFusion made: every table it reads (in subqueries
    /// and views too) lies in a readable database; DDL, `COPY ... TO` and DML need more.
    /// Names are read as DataFusion read them: unqualified ones in `default_catalog` and the
    /// `current` database; `catalog` is lakegate's own, whose databases are granted by name.
    ///
    /// # Errors
    /// [`Error::PermissionDenied`] naming the user and the privilege missing.
    pub fn check_plan(&self, plan: &LogicalPlan, catalog: &str, default_catalog: &str, current: &str) -> Result<()> {
        let mut denied = None;
        let resolve = |name: &TableReference| -> Option<String> {
            let name = name.clone().resolve(default_catalog, current);
            match name.catalog.as_ref() {
                c if c == catalog => Some(name.schema.to_string()),
                // DataFusion's own catalog holds URL tables: any file the server reaches.
                "datafusion" => None,
                // A metastore's database is granted by its qualified name, `hive.sales`.
                c => Some(format!("{c}.{}", name.schema)),
            }
        };
        let visit = plan.apply_with_subqueries(|node| {
            let refused = match node {
                LogicalPlan::TableScan(scan) => match resolve(&scan.table_name) {
                    Some(database) => self.require_read(&database).err(),
                    None => self.require_admin(&format!("reading {}", scan.table_name)).err(),
                },
                LogicalPlan::Copy(_) => self.require_admin("COPY ... TO").err(),
                // Ballista's settings travel with every query to the cluster and change how its
                // executors run (fault injection, memory limits): the whole team's, not a session's.
                LogicalPlan::Statement(Statement::SetVariable(set))
                    if set.variable.to_ascii_lowercase().starts_with("ballista.") =>
                {
                    self.require_admin(&format!("SET {}", set.variable)).err()
                }
                LogicalPlan::Ddl(ddl) => self.require_admin(ddl_name(ddl)).err(),
                LogicalPlan::Dml(dml) => match (&dml.op, resolve(&dml.table_name)) {
                    (WriteOp::Insert(_), Some(database)) => self.require_write(&database).err(),
                    _ => self.require_admin(&format!("{} {}", dml.op.name(), dml.table_name)).err(),
                },
                _ => None,
            };
            if refused.is_some() {
                denied = refused;
                return Ok(TreeNodeRecursion::Stop);
            }
            Ok(TreeNodeRecursion::Continue)
        });
        visit?;
        denied.map_or(Ok(()), Err)
    }
}

fn ddl_name(ddl: &DdlStatement) -> &'static str {
    match ddl {
        DdlStatement::CreateExternalTable(_) => "CREATE EXTERNAL TABLE",
        DdlStatement::CreateMemoryTable(_) => "CREATE TABLE",
        DdlStatement::CreateView(_) => "CREATE VIEW",
        DdlStatement::CreateCatalogSchema(_) | DdlStatement::CreateCatalog(_) => "CREATE SCHEMA",
        DdlStatement::CreateIndex(_) => "CREATE INDEX",
        DdlStatement::DropTable(_) => "DROP TABLE",
        DdlStatement::DropView(_) => "DROP VIEW",
        DdlStatement::DropCatalogSchema(_) => "DROP SCHEMA",
        DdlStatement::CreateFunction(_) => "CREATE FUNCTION",
        DdlStatement::DropFunction(_) => "DROP FUNCTION",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(role: Role, databases: &[&str]) -> Principal {
        Principal { user: "ana".into(), role, databases: databases.iter().map(|d| d.to_string()).collect() }
    }

    #[test]
    fn roles_grant_what_they_say() {
        let reader = user(Role::Reader, &["reports"]);
        assert!(reader.may_read("reports") && reader.may_read("system") && !reader.may_read("logs"));
        assert!(!reader.may_write("reports"));
        let writer = user(Role::Writer, &["reports"]);
        assert!(writer.may_write("reports") && !writer.may_write("logs"));
        let everything = user(Role::Reader, &["*"]);
        assert!(everything.may_read("anything") && !everything.may_write("anything"));
        let admin = user(Role::Admin, &[]);
        assert!(admin.may_read("logs") && admin.may_write("logs"));
    }

    /// A metastore's tables are granted by qualified database (`hive.sales`); URL tables
    /// (DataFusion's own catalog) stay an admin's.
    #[test]
    fn metastore_databases_are_granted_by_their_qualified_names() {
        use std::sync::Arc;

        use datafusion::arrow::datatypes::Schema;
        use datafusion::logical_expr::{LogicalPlanBuilder, LogicalTableSource};
        let scan = |name: TableReference| {
            let source = Arc::new(LogicalTableSource::new(Arc::new(Schema::empty())));
            LogicalPlanBuilder::scan(name, source, None).and_then(LogicalPlanBuilder::build).expect("plan")
        };
        let reader = user(Role::Reader, &["hive.sales"]);
        let granted = scan(TableReference::full("hive", "sales", "events"));
        assert!(reader.check_plan(&granted, "lakegate", "lakegate", "default").is_ok());
        for refused in [
            TableReference::full("hive", "hr", "salaries"),
            TableReference::partial("sales", "events"),
            TableReference::full("datafusion", "public", "x"),
        ] {
            let err =
                reader.check_plan(&scan(refused.clone()), "lakegate", "lakegate", "default").unwrap_err().to_string();
            assert!(err.contains("'ana'"), "{refused}: {err}");
        }
        // After `SET datafusion.catalog.default_catalog = 'hive'`, short names are the
        // metastore's: `default.t` is hive.default, not lakegate's `default`.
        let reader = user(Role::Reader, &["default", "hive.sales"]);
        let short = scan(TableReference::partial("default", "t"));
        assert!(reader.check_plan(&short, "lakegate", "lakegate", "default").is_ok());
        assert!(reader.check_plan(&short, "lakegate", "hive", "default").is_err());
        assert!(reader.check_plan(&scan(TableReference::bare("events")), "lakegate", "hive", "sales").is_ok());
    }

    /// Ballista's settings travel to the cluster with every query: an admin's to set, while
    /// a session's own DataFusion settings stay anyone's.
    #[test]
    fn only_admins_set_the_clusters_settings() {
        use datafusion::logical_expr::SetVariable;
        let set = |variable: &str| {
            LogicalPlan::Statement(Statement::SetVariable(SetVariable {
                variable: variable.to_owned(),
                value: "true".to_owned(),
            }))
        };
        let reader = user(Role::Reader, &["reports"]);
        let chaos = set("Ballista.testing.chaos_execution.enabled");
        let err = reader.check_plan(&chaos, "lakegate", "lakegate", "default").unwrap_err().to_string();
        assert!(err.contains("'ana'") && err.contains("SET Ballista.testing"), "{err}");
        assert!(user(Role::Admin, &[]).check_plan(&chaos, "lakegate", "lakegate", "default").is_ok());
        let own = set("datafusion.execution.batch_size");
        assert!(reader.check_plan(&own, "lakegate", "lakegate", "default").is_ok());
    }

    #[test]
    fn refusals_name_the_user_and_the_privilege() {
        let reader = user(Role::Reader, &["reports"]);
        let create = Command::CreateDatabase { name: "x".into(), if_not_exists: false, comment: None, mount: None };
        let err = reader.check_command(&create, "default").unwrap_err().to_string();
        assert!(err.contains("'ana'") && err.contains("CREATE DATABASE") && err.contains("admin"), "{err}");
        let err = reader.require_write("reports").unwrap_err().to_string();
        assert!(err.contains("writer"), "{err}");
    }
}
