//! Views kept in a metastore (Hive's and Spark's `CREATE VIEW`): their SQL is planned in place
//! of the view, as DataFusion inlines its own views. So the tables a view reads are checked
//! against its reader's grants (a view runs with its reader's rights, like Trino's
//! `SECURITY INVOKER`), and a query's filters reach those tables' partitions.

use std::ops::ControlFlow;
use std::sync::Arc;

use datafusion::catalog::TableProvider;
use datafusion::common::tree_node::{Transformed, TreeNodeRecursion};
use datafusion::common::{Column, TableReference, plan_err};
use datafusion::datasource::source_as_provider;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::SessionState;
use datafusion::logical_expr::{
    Expr, LogicalPlan, LogicalPlanBuilder, SubqueryAlias, TableScan, TableScanBuilder, cast,
};
use datafusion::sql::parser::Statement;
use datafusion::sql::sqlparser::ast::{ObjectNamePart, visit_relations_mut};

use super::table::HiveTableProvider;

/// Views reading views: deeper than this is taken for a view that reads itself.
const MAX_DEPTH: usize = 16;
/// Views read in one statement, counting each read: bounds a plan that views reading a view
/// twice would double at each level.
const MAX_EXPANSIONS: usize = 1_000;

/// `plan` with every metastore view it reads replaced by the view's own plan.
///
/// `allowed` is the reader's grants: it sees the plan before each level of views is planned,
/// so a view's SQL is planned only for whoever may read the view, and the tables it reads are
/// checked on the next pass (and by the caller, after).
///
/// # Errors
/// What `allowed` refuses; a view's SQL that DataFusion cannot plan (named in the message), a
/// view whose SQL gives other columns than it declares, views nested deeper than 16 or read
/// more than 1,000 times.
pub async fn expand_views<E: From<DataFusionError>>(
    plan: LogicalPlan,
    state: &SessionState,
    allowed: impl Fn(&LogicalPlan) -> std::result::Result<(), E>,
) -> std::result::Result<LogicalPlan, E> {
    let mut plan = plan;
    let mut expansions = 0;
    for depth in 0..=MAX_DEPTH {
        let mut views: Vec<(TableReference, Arc<dyn TableProvider>)> = Vec::new();
        plan.apply_with_subqueries(|node| {
            if let LogicalPlan::TableScan(scan) = node
                && let Some(provider) = view_of(scan)
                && !views.iter().any(|(name, _)| *name == scan.table_name)
            {
                views.push((scan.table_name.clone(), provider));
            }
            Ok(TreeNodeRecursion::Continue)
        })?;
        if views.is_empty() {
            return Ok(plan);
        }
        if depth == MAX_DEPTH {
            break;
        }
        allowed(&plan)?;
        let mut planned = Vec::with_capacity(views.len());
        for (name, provider) in views {
            let view = plan_view(state, &name, provider.as_ref()).await?;
            planned.push((name, view));
        }
        plan = plan
            .transform_up_with_subqueries(|node| {
                let LogicalPlan::TableScan(scan) = node else { return Ok(Transformed::no(node)) };
                match planned.iter().find(|(name, _)| *name == scan.table_name) {
                    Some((name, _)) if expansions >= MAX_EXPANSIONS => {
                        plan_err!("{name}: views read more than {MAX_EXPANSIONS} times in one statement")
                    }
                    Some((_, view)) => {
                        expansions += 1;
                        Ok(Transformed::yes(inline(scan, view.clone())?))
                    }
                    None => Ok(Transformed::no(LogicalPlan::TableScan(scan))),
                }
            })?
            .data;
    }
    Err(DataFusionError::Plan(format!("views nested more than {MAX_DEPTH} deep: does a view read itself?")).into())
}

fn view_of(scan: &TableScan) -> Option<Arc<dyn TableProvider>> {
    let provider = source_as_provider(&scan.source).ok()?;
    provider.downcast_ref::<HiveTableProvider>()?.view()?;
    Some(provider)
}

/// The view's SQL planned in its own catalog and database, its columns cast to the types and
/// names the metastore declares.
async fn plan_view(state: &SessionState, name: &TableReference, provider: &dyn TableProvider) -> Result<LogicalPlan> {
    let Some((sql, catalog, database)) = provider.downcast_ref::<HiveTableProvider>().and_then(|v| v.view()) else {
        return plan_err!("{name} is not a view");
    };
    let mut state = state.clone();
    let options = state.config_mut().options_mut();
    options.catalog.default_catalog = catalog.to_owned();
    options.catalog.default_schema = database.to_owned();
    let dialect = state.config().options().sql_parser.dialect;
    let in_view = |e: datafusion::error::DataFusionError| e.context(format!("reading view {name}"));
    let mut statement = state.sql_to_statement(sql, &dialect).map_err(in_view)?;
    let Statement::Statement(query) = &mut statement else { return plan_err!("view {name} is not a query") };
    // Spark names its own catalog `spark_catalog`; here that is the metastore's catalog.
    let _ = visit_relations_mut(query.as_mut(), |relation| {
        if relation.0.len() == 3
            && let Some(ObjectNamePart::Identifier(first)) = relation.0.first_mut()
            && first.value.eq_ignore_ascii_case("spark_catalog")
        {
            first.value = catalog.to_owned();
            first.quote_style = Some('"');
        }
        ControlFlow::<()>::Continue(())
    });
    if !matches!(query.as_ref(), datafusion::sql::sqlparser::ast::Statement::Query(_)) {
        return plan_err!("view {name} is not a query");
    }
    let view = state.statement_to_plan(statement).await.map_err(in_view)?;
    let view = qualified(view, catalog, database)?;
    let declared = provider.schema();
    if view.schema().fields().len() != declared.fields().len() {
        return plan_err!(
            "view {name} declares {} columns but its SQL gives {}",
            declared.fields().len(),
            view.schema().fields().len()
        );
    }
    let columns: Vec<Expr> = view
        .schema()
        .columns()
        .into_iter()
        .zip(declared.fields())
        .map(|(column, field)| cast(Expr::Column(column), field.data_type().clone()).alias(field.name()))
        .collect();
    LogicalPlanBuilder::from(view).project(columns)?.build()
}

/// Every table the view reads, named in full (`hive.sales.events`), so the reader's grants
/// are checked against the database the view means, not the reader's current one. Column
/// references keep the name the view's SQL gave.
fn qualified(view: LogicalPlan, catalog: &str, database: &str) -> Result<LogicalPlan> {
    view.transform_up_with_subqueries(|node| {
        let LogicalPlan::TableScan(scan) = node else { return Ok(Transformed::no(node)) };
        if matches!(scan.table_name, TableReference::Full { .. }) {
            return Ok(Transformed::no(LogicalPlan::TableScan(scan)));
        }
        let written = scan.table_name.clone();
        let full = written.clone().resolve(catalog, database);
        let full = TableReference::full(full.catalog, full.schema, full.table);
        let scan = TableScanBuilder::new(full, scan.source)
            .with_projection(scan.projection)
            .with_filters(scan.filters)
            .with_fetch(scan.fetch)
            .build()?;
        let alias = SubqueryAlias::try_new(Arc::new(LogicalPlan::TableScan(scan)), written)?;
        Ok(Transformed::yes(LogicalPlan::SubqueryAlias(alias)))
    })
    .map(|t| t.data)
}

/// The view's plan where `scan` read the view: under the view's name, with the scan's
/// projection, filters and limit.
fn inline(scan: TableScan, view: LogicalPlan) -> Result<LogicalPlan> {
    let mut builder = LogicalPlanBuilder::from(view).alias(scan.table_name)?;
    if let Some(projection) = scan.projection {
        let schema = Arc::clone(builder.schema());
        let columns = projection.into_iter().map(|i| Expr::Column(Column::from(schema.qualified_field(i))));
        builder = builder.project(columns)?;
    }
    for filter in scan.filters {
        builder = builder.filter(filter)?;
    }
    if let Some(fetch) = scan.fetch {
        builder = builder.limit(0, Some(fetch))?;
    }
    builder.build()
}
