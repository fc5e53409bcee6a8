//! The SQL front: parsing and rewriting over what the session hands it. lakegate's own
//! statements (Hive/Spark DDL, catalog browsing) parse into [`ddl::Command`]s; INSERTs into the
//! catalog's tables are found and resolved here for the writer; everything else is left to
//! DataFusion's planner. Nothing here runs a statement: the session does.

mod cache;
mod control;
pub mod ddl;
mod insert;
pub(crate) mod rewrite;
mod script;
pub mod template;
mod tokens;
pub mod types;

use datafusion::common::ParamValues;
use datafusion::logical_expr::LogicalPlan;

pub use control::parse_duration;
pub(crate) use insert::{catalog_insert, insert_target};
pub use script::{ScriptStatement, split_statements};
pub use tokens::{number_placeholders, redact};

use crate::Result;

/// The catalog name under which all databases appear (`lakegate.db.table`).
pub const CATALOG: &str = "lakegate";

/// `plan` with `params` put in place of its placeholders, as literals of the plan (not text).
pub(crate) fn bind(plan: LogicalPlan, params: Option<&ParamValues>) -> Result<LogicalPlan> {
    Ok(match params {
        Some(params) => plan.with_param_values(params.clone())?,
        None => plan,
    })
}
