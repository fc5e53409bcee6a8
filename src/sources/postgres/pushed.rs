//! A remote table with more of a query in its `SELECT` than filters: an aggregate's groups, the
//! `ORDER BY ... LIMIT` of a top-n, a join of tables of the same server. Built only by [`crate::sources::rewrite`], which decides
//! what the database computes exactly as DataFusion would; read by the table's own scan.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::catalog::{Session, TableProvider};
use datafusion::datasource::TableType;
use datafusion::error::Result as DFResult;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;

use super::RemoteTable;
use super::pushdown::{Clauses, Output, Relation, RemoteQuery};

#[derive(Debug, Clone)]
pub(crate) struct PushedQuery {
    /// The table read; for a join, one of its tables, whose server, pool and options the
    /// query uses.
    pub(crate) table: RemoteTable,
    /// For a join: its tables and how they are joined.
    pub(crate) join: Option<Relation>,
    schema: SchemaRef,
    pub(crate) outputs: Vec<Output>,
    /// An aggregate's `WHERE`: the filters pushed into the table's scan before grouping.
    filters: Vec<Expr>,
    pub(crate) clauses: Clauses,
}

impl PushedQuery {
    pub(crate) fn new(table: RemoteTable, outputs: Vec<Output>, filters: Vec<Expr>, clauses: Clauses) -> Self {
        let schema = Arc::new(Schema::new(outputs.iter().map(|o| o.field.clone()).collect::<Vec<_>>()));
        Self { table, join: None, schema, outputs, filters, clauses }
    }

    /// What `outputs` compute, with `clauses`, over `relation`: tables of `table`'s server
    /// joined there, each column read as [`super::pushdown::Joined::as_column`] names it.
    pub(crate) fn over_join(
        mut table: RemoteTable,
        relation: Relation,
        label: String,
        outputs: Vec<Output>,
        clauses: Clauses,
    ) -> Self {
        table.label = label;
        Self { join: Some(relation), ..Self::new(table, outputs, Vec::new(), clauses) }
    }

    /// The table's rows, all columns, in `order_by`, the first `limit` of them.
    pub(crate) fn top(table: RemoteTable, order_by: Vec<String>, limit: usize) -> Self {
        let outputs = table.columns.iter().map(Output::column).collect();
        Self::new(table, outputs, Vec::new(), Clauses { group_by: None, order_by, limit: Some(limit) })
    }

    /// This join's query computing `outputs` with `clauses` over its rows.
    pub(crate) fn computing(self, outputs: Vec<Output>, clauses: Clauses) -> Self {
        Self { join: self.join, ..Self::new(self.table, outputs, Vec::new(), clauses) }
    }

    /// A join's rows, nothing more computed over them.
    pub(crate) fn is_plain_join(&self) -> bool {
        let Clauses { group_by, order_by, limit } = &self.clauses;
        self.join.is_some() && group_by.is_none() && order_by.is_empty() && limit.is_none()
    }

    fn is_aggregate(&self) -> bool {
        self.clauses.group_by.is_some()
    }
}

#[async_trait]
impl TableProvider for PushedQuery {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    /// Filters over an aggregate's results (HAVING) or a join's rows stay in lakegate (the
    /// filters of the joined tables are in the join already); over rows, as the table.
    fn supports_filters_pushdown(&self, filters: &[&Expr]) -> DFResult<Vec<TableProviderFilterPushDown>> {
        if self.is_aggregate() || self.join.is_some() {
            return Ok(vec![TableProviderFilterPushDown::Unsupported; filters.len()]);
        }
        self.table.supports_filters_pushdown(filters)
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        let chosen: Vec<&Output> = match projection {
            Some(indices) => indices.iter().map(|&i| &self.outputs[i]).collect(),
            None => self.outputs.iter().collect(),
        };
        let schema = Arc::new(Schema::new(chosen.iter().map(|o| o.field.clone()).collect::<Vec<_>>()));
        let filters: Vec<Expr> = self.filters.iter().chain(filters).cloned().collect();
        let mut clauses = self.clauses.clone();
        clauses.limit = match (clauses.limit, limit) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let table = &self.table;
        let dialect = table.server.dialect;
        let query = match &self.join {
            Some(relation) => {
                let mut params = Vec::new();
                let from = relation.derived(&mut params)?;
                RemoteQuery::render_from(&from, params, &chosen, &filters, &clauses, dialect)?
            }
            None => RemoteQuery::render(&table.table, &chosen, &filters, &clauses, dialect)?,
        };
        Ok(table.scan_exec(state, schema, vec![query]))
    }
}
