//! Pushing more than filters to PostgreSQL, Aurora and Redshift: a logical optimizer rule that
//! hands the database
//! - an aggregate over one of its tables (`count`, `sum`, `min`, `max`, `avg` with or without
//!   `GROUP BY`, and so `SELECT DISTINCT`), so only the groups cross the network;
//! - the `ORDER BY` of a top-n query (`ORDER BY ... LIMIT n`) over such a table or aggregate,
//!   so only n rows do. The sort stays in lakegate too, over those rows, so the order and the
//!   merge of ties are DataFusion's.
//!
//! Only when the database computes exactly what DataFusion would: which columns, aggregates
//! and orderings qualify is decided in [`postgres::pushdown`]; this module matches plan
//! shapes. A plan that does not match is left as it is, so nothing here changes a result.

use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::catalog::default_table_source::{provider_as_source, source_as_provider};
use datafusion::common::Column;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::error::Result as DFResult;
use datafusion::logical_expr::{
    Aggregate, Expr, LogicalPlan, Projection, Sort, TableScan, TableScanBuilder, TableSource, cast,
};
use datafusion::optimizer::optimizer::ApplyOrder;
use datafusion::optimizer::{OptimizerConfig, OptimizerRule};

use super::postgres::pushdown::{self, Clauses};
use super::postgres::pushed::PushedQuery;
use super::postgres::{RemoteTable, pushdown::Output};
use super::redshift::RedshiftTable;

/// The optimizer rule; see the module comment.
#[derive(Debug, Default)]
pub struct PushToDatabases;

impl OptimizerRule for PushToDatabases {
    fn name(&self) -> &str {
        "lakegate_push_to_databases"
    }

    fn apply_order(&self) -> Option<ApplyOrder> {
        Some(ApplyOrder::BottomUp)
    }

    fn rewrite(&self, plan: LogicalPlan, _config: &dyn OptimizerConfig) -> DFResult<Transformed<LogicalPlan>> {
        let pushed = match &plan {
            LogicalPlan::Aggregate(aggregate) => push_aggregate(aggregate)?,
            LogicalPlan::Sort(sort) => push_order(sort)?,
            _ => None,
        };
        Ok(match pushed {
            Some(plan) => Transformed::yes(plan),
            None => Transformed::no(plan),
        })
    }
}

/// The remote table a scan reads, if it is one on PostgreSQL's wire protocol.
fn remote_table(source: &Arc<dyn TableSource>) -> Option<RemoteTable> {
    let provider = source_as_provider(source).ok()?;
    provider
        .downcast_ref::<RemoteTable>()
        .or_else(|| provider.downcast_ref::<RedshiftTable>().map(RedshiftTable::remote))
        .cloned()
}

fn pushed_query(source: &Arc<dyn TableSource>) -> Option<PushedQuery> {
    source_as_provider(source).ok()?.downcast_ref::<PushedQuery>().cloned()
}

/// How one column of the aggregate's result comes from the pushed query's outputs.
enum Computed {
    Output(usize),
    Average { sum: usize, count: usize },
}

/// `Aggregate(TableScan(remote))` as `Projection(TableScan(pushed aggregate))`, the projection
/// giving each column the aggregate's own name (and computing `avg` from its sum and count).
fn push_aggregate(aggregate: &Aggregate) -> DFResult<Option<LogicalPlan>> {
    let LogicalPlan::TableScan(scan) = aggregate.input.as_ref() else { return Ok(None) };
    let Some(table) = remote_table(&scan.source).filter(|_| scan.fetch.is_none()) else { return Ok(None) };
    let schema = aggregate.schema.as_ref();
    let mut outputs: Vec<Output> = Vec::new();
    let mut results = Vec::new();
    let mut keys = Vec::new();
    for expr in &aggregate.group_expr {
        let Expr::Column(c) = expr else { return Ok(None) };
        let Some(column) = table.columns.iter().find(|t| t.field.name() == &c.name) else { return Ok(None) };
        let Some(mut key) = pushdown::group_key(column) else { return Ok(None) };
        keys.push(key.sql.clone());
        key.field = schema.field(results.len()).as_ref().clone();
        results.push(Computed::Output(outputs.len()));
        outputs.push(key);
    }
    for expr in &aggregate.aggr_expr {
        let field = schema.field(results.len());
        match pushdown::aggregate(expr, &table.columns, field) {
            Some(pushdown::Aggregate::Value(output)) => {
                results.push(Computed::Output(outputs.len()));
                outputs.push(output);
            }
            Some(pushdown::Aggregate::Average { sum, count }) => {
                results.push(Computed::Average { sum: outputs.len(), count: outputs.len() + 1 });
                outputs.extend([sum, count]);
            }
            None => return Ok(None),
        }
    }
    let names: Vec<String> = outputs.iter().map(|o| o.field.name().clone()).collect();
    let clauses = Clauses { group_by: Some(keys), ..Clauses::default() };
    let pushed = PushedQuery::new(table, outputs, scan.filters.clone(), clauses);
    let new_scan = TableScanBuilder::new(scan.table_name.clone(), provider_as_source(Arc::new(pushed))).build()?;
    let column = |i: usize| Expr::Column(Column::new(Some(scan.table_name.clone()), &names[i]));
    let exprs = results
        .iter()
        .enumerate()
        .map(|(i, result)| {
            let value = match result {
                Computed::Output(k) => column(*k),
                Computed::Average { sum, count } => column(*sum) / cast(column(*count), DataType::Float64),
            };
            let (qualifier, field) = schema.qualified_field(i);
            value.alias_qualified(qualifier.cloned(), field.name())
        })
        .collect();
    let projection = Projection::try_new(exprs, Arc::new(LogicalPlan::TableScan(new_scan)))?;
    Ok(Some(LogicalPlan::Projection(projection)))
}

/// `Sort(fetch n)` over projections of columns (and subquery aliases) over a remote scan or a
/// pushed aggregate: the
/// scan gets the `ORDER BY` and `LIMIT n` too, when every key is a column the database orders
/// exactly as DataFusion does.
fn push_order(sort: &Sort) -> DFResult<Option<LogicalPlan>> {
    let Some(limit) = sort.fetch else { return Ok(None) };
    let mut keys: Vec<Column> = Vec::new();
    for key in &sort.expr {
        let Expr::Column(c) = &key.expr else { return Ok(None) };
        keys.push(c.clone());
    }
    // Follow each key down to the scan's column it renames.
    let mut node = sort.input.as_ref();
    let scan = loop {
        match node {
            LogicalPlan::Projection(projection) => {
                for key in &mut keys {
                    let Ok(i) = projection.schema.index_of_column(key) else { return Ok(None) };
                    match projection.expr[i].clone().unalias() {
                        Expr::Column(c) => *key = c,
                        _ => return Ok(None),
                    }
                }
                node = projection.input.as_ref();
            }
            // Superset wraps a chart's SQL as `(...) AS virtual_table`: the same columns renamed.
            LogicalPlan::SubqueryAlias(alias) => {
                for key in &mut keys {
                    let Ok(i) = alias.schema.index_of_column(key) else { return Ok(None) };
                    *key = Column::from(alias.input.schema().qualified_field(i));
                }
                node = alias.input.as_ref();
            }
            LogicalPlan::TableScan(scan) if scan.fetch.is_none() => break scan,
            _ => return Ok(None),
        }
    };
    let order_by = |outputs: &[Output]| -> Option<Vec<String>> {
        keys.iter()
            .zip(&sort.expr)
            .map(|(key, s)| outputs.iter().find(|o| o.field.name() == &key.name)?.order_key(s.asc, s.nulls_first))
            .collect()
    };
    let pushed = if let Some(mut pushed) = pushed_query(&scan.source) {
        if !pushed.clauses.order_by.is_empty() {
            return Ok(None);
        }
        let Some(order) = order_by(&pushed.outputs) else { return Ok(None) };
        pushed.clauses.order_by = order;
        pushed.clauses.limit = Some(limit);
        pushed
    } else if let Some(table) = remote_table(&scan.source) {
        let columns: Vec<Output> = table.columns.iter().map(Output::column).collect();
        let Some(order) = order_by(&columns) else { return Ok(None) };
        PushedQuery::top(table, order, limit)
    } else {
        return Ok(None);
    };
    let source = provider_as_source(Arc::new(pushed));
    let input = sort.input.as_ref().clone().transform_up(|node| {
        Ok(match node {
            LogicalPlan::TableScan(scan) => {
                Transformed::yes(LogicalPlan::TableScan(TableScan { source: Arc::clone(&source), ..scan }))
            }
            other => Transformed::no(other),
        })
    })?;
    Ok(Some(LogicalPlan::Sort(Sort { expr: sort.expr.clone(), input: Arc::new(input.data), fetch: sort.fetch })))
}
