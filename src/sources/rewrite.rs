//! Pushing more than filters to PostgreSQL, Aurora and Redshift: a logical optimizer rule that
//! hands the database
//! - an aggregate over one of its tables (`count`, `sum`, `min`, `max`, `avg` with or without
//!   `GROUP BY`, and so `SELECT DISTINCT`), so only the groups cross the network;
//! - the `ORDER BY` of a top-n query (`ORDER BY ... LIMIT n`) over such a table or aggregate,
//!   so only n rows do. The sort stays in lakegate too, over those rows, so the order and the
//!   merge of ties are DataFusion's;
//! - inner joins on equal keys of two or more of its tables (with the filters each table's
//!   scan took), so the tables' rows are matched where they are and only the joined rows move.
//!
//! Only when the database computes exactly what DataFusion would: which columns, aggregates
//! and orderings qualify is decided in [`postgres::pushdown`]; this module matches plan
//! shapes. A plan that does not match is left as it is, so nothing here changes a result.

use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::catalog::default_table_source::{provider_as_source, source_as_provider};
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, NullEquality};
use datafusion::error::Result as DFResult;
use datafusion::logical_expr::{
    Aggregate, Expr, Join, JoinType, LogicalPlan, Projection, Sort, TableScan, TableScanBuilder, TableSource, cast,
};
use datafusion::optimizer::optimizer::ApplyOrder;
use datafusion::optimizer::{OptimizerConfig, OptimizerRule};

use super::postgres::pushdown::{self, Clauses, Relation, TableColumn};
use super::postgres::pushed::PushedQuery;
use super::postgres::{POSTGRES, RemoteTable, pushdown::Output};
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
            LogicalPlan::Join(join) => push_join(join)?,
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
    let Some(input) = AggregateInput::of(aggregate.input.as_ref()) else { return Ok(None) };
    let (scan, columns) = (input.scan, &input.columns);
    let schema = aggregate.schema.as_ref();
    let mut outputs: Vec<Output> = Vec::new();
    let mut results = Vec::new();
    let mut keys = Vec::new();
    for expr in &aggregate.group_expr {
        let Expr::Column(c) = input.read(expr)? else { return Ok(None) };
        let Some(column) = columns.iter().find(|t| t.field.name() == &c.name) else { return Ok(None) };
        let Some(mut key) = pushdown::group_key(column) else { return Ok(None) };
        keys.push(key.sql.clone());
        key.field = schema.field(results.len()).as_ref().clone();
        results.push(Computed::Output(outputs.len()));
        outputs.push(key);
    }
    for expr in &aggregate.aggr_expr {
        let field = schema.field(results.len());
        match pushdown::aggregate(&input.read(expr)?, columns, field) {
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
    // Over a join, two keys may share a name (`GROUP BY a.name, b.name`); a scan's may not.
    if !all_different(&names) {
        return Ok(None);
    }
    let clauses = Clauses { group_by: Some(keys), ..Clauses::default() };
    let pushed = match input.reads {
        Reads::Join(join) => join.computing(outputs, clauses),
        Reads::Table(table) => PushedQuery::new(table, outputs, scan.filters.clone(), clauses),
    };
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

/// What an aggregate reads, when the database may compute it: a remote table's scan, or a
/// pushed join under the projection that gives its columns the join's names.
struct AggregateInput<'a> {
    scan: &'a TableScan,
    reads: Reads,
    /// The scan's columns, as the database's query names them.
    columns: Vec<TableColumn>,
    /// For a join: the projection, whose columns the aggregate names.
    renames: Option<&'a Projection>,
}

enum Reads {
    Table(RemoteTable),
    Join(PushedQuery),
}

impl<'a> AggregateInput<'a> {
    fn of(plan: &'a LogicalPlan) -> Option<Self> {
        match plan {
            LogicalPlan::TableScan(scan) if scan.fetch.is_none() => match remote_table(&scan.source) {
                Some(table) => {
                    Some(Self { scan, columns: table.columns.clone(), reads: Reads::Table(table), renames: None })
                }
                None => Self::join(scan, None),
            },
            LogicalPlan::Projection(projection) => match projection.input.as_ref() {
                LogicalPlan::TableScan(scan) if scan.fetch.is_none() => Self::join(scan, Some(projection)),
                _ => None,
            },
            // `FROM views v`: the aggregate names the columns as the scan does, but qualified.
            LogicalPlan::SubqueryAlias(alias) => Self::of(&alias.input).filter(|input| input.renames.is_none()),
            _ => None,
        }
    }

    fn join(scan: &'a TableScan, renames: Option<&'a Projection>) -> Option<Self> {
        let pushed = pushed_query(&scan.source).filter(PushedQuery::is_plain_join)?;
        let columns = pushed.join.as_ref()?.columns.iter().map(|c| c.as_column()).collect();
        Some(Self { scan, columns, reads: Reads::Join(pushed), renames })
    }

    /// `expr`, an expression of the aggregate, over the scan's columns.
    fn read(&self, expr: &Expr) -> DFResult<Expr> {
        let Some(projection) = self.renames else { return Ok(expr.clone()) };
        let read = expr.clone().transform(|e| match e {
            Expr::Column(c) => {
                let i = projection.schema.index_of_column(&c)?;
                Ok(Transformed::yes(projection.expr[i].clone().unalias()))
            }
            other => Ok(Transformed::no(other)),
        })?;
        Ok(read.data)
    }
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

/// One side of a join the database may compute: the remote table it reads (one of its tables,
/// for a join), the rows it stands for, and a label for messages.
struct Side {
    table: RemoteTable,
    relation: Relation,
    label: String,
}

/// `plan` as a side of a pushed join: a remote table's scan (its projection and filters), or
/// an earlier pushed join under the projection that renames its columns back; under an alias
/// (`FROM users u`), which renames nothing the database sees.
fn side(plan: &LogicalPlan) -> Option<Side> {
    match plan {
        LogicalPlan::SubqueryAlias(alias) => side(&alias.input),
        LogicalPlan::TableScan(scan) if scan.fetch.is_none() => {
            let table = remote_table(&scan.source)?;
            let columns = match &scan.projection {
                Some(indices) => indices.iter().map(|&i| table.columns[i].clone()).collect(),
                None => table.columns.clone(),
            };
            let relation = Relation::table(&table.table, columns, scan.filters.clone());
            Some(Side { label: table.label.clone(), table, relation })
        }
        LogicalPlan::Projection(projection) => {
            let LogicalPlan::TableScan(scan) = projection.input.as_ref() else { return None };
            let pushed = pushed_query(&scan.source).filter(|p| scan.fetch.is_none() && p.is_plain_join())?;
            let relation = pushed.join.as_ref()?;
            let mut columns = Vec::new();
            for expr in &projection.expr {
                let Expr::Column(c) = expr.clone().unalias() else { return None };
                let i = scan.projected_schema.index_of_column(&c).ok()?;
                let output = scan.projection.as_ref().map_or(i, |p| p[i]);
                columns.push(relation.columns[output].clone());
            }
            let relation = relation.giving(columns);
            Some(Side { label: pushed.table.label.clone(), table: pushed.table, relation })
        }
        _ => None,
    }
}

/// The column of `side` that join key `key` reads (through an integer widening cast), if the
/// database compares it exactly as DataFusion does.
fn join_key(key: &Expr, plan: &LogicalPlan, side: &Side) -> Option<usize> {
    let (column, cast_to) = match key {
        Expr::Column(c) => (c, None),
        Expr::Cast(cast) => match cast.expr.as_ref() {
            Expr::Column(c) => (c, Some(cast.field.data_type())),
            _ => return None,
        },
        _ => return None,
    };
    let i = plan.schema().index_of_column(column).ok()?;
    let read = &side.relation.columns[i];
    let widened = cast_to.is_none_or(|to| pushdown::is_integer_widening(read.column.field.data_type(), to));
    (widened && read.is_join_key()).then_some(i)
}

/// `Join(inner, equal keys)` of two sides on the same server as `Projection(TableScan(pushed
/// join))`, the projection giving each column the join's own qualified name.
fn push_join(join: &Join) -> DFResult<Option<LogicalPlan>> {
    if join.join_type != JoinType::Inner
        || join.filter.is_some()
        || join.null_equality != NullEquality::NullEqualsNothing
    {
        return Ok(None);
    }
    let (Some(left), Some(right)) = (side(&join.left), side(&join.right)) else { return Ok(None) };
    if left.table.server != right.table.server || join.on.is_empty() {
        return Ok(None);
    }
    let mut on = Vec::new();
    for (l, r) in &join.on {
        let (Some(l), Some(r)) = (join_key(l, &join.left, &left), join_key(r, &join.right, &right)) else {
            return Ok(None);
        };
        // Integers compare across widths; any other type only with itself. Redshift ignores
        // trailing blanks when it compares text, so its text keys are compared here.
        let (a, b) =
            (left.relation.columns[l].column.field.data_type(), right.relation.columns[r].column.field.data_type());
        let text_differs = *a == DataType::Utf8 && left.table.server.dialect.kind != POSTGRES.kind;
        if (a != b && !(pushdown::is_integer(a) && pushdown::is_integer(b))) || text_differs {
            return Ok(None);
        }
        on.push((l, r));
    }
    let label = format!("{} JOIN {}", left.label, right.label);
    let relation = Relation::join(left.relation, right.relation, on);
    let outputs: Vec<Output> = relation.columns.iter().map(|c| Output::column(&c.as_column())).collect();
    let names: Vec<String> = outputs.iter().map(|o| o.field.name().clone()).collect();
    // A side may give one column twice, and PostgreSQL cuts names at 63 bytes: either would
    // make the join's names collide.
    if !all_different(&names) || names.iter().any(|n| n.len() > 63) {
        return Ok(None);
    }
    let name = datafusion::common::TableReference::bare(label.clone());
    let pushed = PushedQuery::over_join(left.table, relation, label, outputs, Clauses::default());
    let scan = TableScanBuilder::new(name.clone(), provider_as_source(Arc::new(pushed))).build()?;
    let exprs = names
        .iter()
        .enumerate()
        .map(|(i, output)| {
            let (qualifier, field) = join.schema.qualified_field(i);
            Expr::Column(Column::new(Some(name.clone()), output)).alias_qualified(qualifier.cloned(), field.name())
        })
        .collect();
    Ok(Some(LogicalPlan::Projection(Projection::try_new(exprs, Arc::new(LogicalPlan::TableScan(scan)))?)))
}

fn all_different(names: &[String]) -> bool {
    let mut seen = std::collections::HashSet::new();
    names.iter().all(|n| seen.insert(n))
}
