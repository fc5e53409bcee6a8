//! A remote table with more of a query in its `SELECT` than filters: an aggregate's groups, the
//! `ORDER BY ... LIMIT` of a top-n. Built only by [`crate::sources::rewrite`], which decides
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
use super::pushdown::{Clauses, Output, RemoteQuery};

#[derive(Debug, Clone)]
pub(crate) struct PushedQuery {
    pub(crate) table: RemoteTable,
    schema: SchemaRef,
    pub(crate) outputs: Vec<Output>,
    /// An aggregate's `WHERE`: the filters pushed into the table's scan before grouping.
    filters: Vec<Expr>,
    pub(crate) clauses: Clauses,
}

impl PushedQuery {
    pub(crate) fn new(table: RemoteTable, outputs: Vec<Output>, filters: Vec<Expr>, clauses: Clauses) -> Self {
        let schema = Arc::new(Schema::new(outputs.iter().map(|o| o.field.clone()).collect::<Vec<_>>()));
        Self { table, schema, outputs, filters, clauses }
    }

    /// The table's rows, all columns, in `order_by`, the first `limit` of them.
    pub(crate) fn top(table: RemoteTable, order_by: Vec<String>, limit: usize) -> Self {
        let outputs = table.columns.iter().map(Output::column).collect();
        Self::new(table, outputs, Vec::new(), Clauses { group_by: None, order_by, limit: Some(limit) })
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

    /// Filters over an aggregate's results (HAVING) stay in lakegate; over rows, as the table.
    fn supports_filters_pushdown(&self, filters: &[&Expr]) -> DFResult<Vec<TableProviderFilterPushDown>> {
        if self.is_aggregate() {
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
        let query = RemoteQuery::render(&table.table, &chosen, &filters, &clauses, table.server.dialect)?;
        Ok(table.scan_exec(state, schema, vec![query]))
    }
}
