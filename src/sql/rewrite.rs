//! Rewrites of DataFusion statements for the Spark/Hive spellings DataFusion plans differently.

use std::ops::ControlFlow;

use datafusion::sql::parser::Statement;
use sqlparser::ast::{
    AccessExpr, Expr, OrderBy, OrderByExpr, OrderByKind, Query, SetExpr, Subscript, Value, visit_expressions_mut,
};

/// Spark's `f(x).field` (a field of a function's struct result, e.g. `geodata(lon, lat).city`)
/// becomes `f(x)['field']`, which DataFusion plans; on columns DataFusion already resolves dots.
pub(crate) fn struct_field_access(statement: &mut Statement) {
    let Statement::Statement(statement) = statement else { return };
    let _ = visit_expressions_mut(statement.as_mut(), |expr| {
        if let Expr::CompoundFieldAccess { root, access_chain } = expr
            && matches!(root.as_ref(), Expr::Function(_))
        {
            for access in access_chain.iter_mut() {
                if let AccessExpr::Dot(Expr::Identifier(field)) = access {
                    let index = Expr::value(Value::SingleQuotedString(field.value.clone()));
                    *access = AccessExpr::Subscript(Subscript::Index { index });
                }
            }
        }
        ControlFlow::<()>::Continue(())
    });
}

/// Hive's `SORT BY` (order within each reducer) and `CLUSTER BY` in a query become `ORDER BY`,
/// which gives the order they promise and more; `DISTRIBUTE BY` changes nothing in a single
/// result. (Writes lay files out by them: see `write`.)
pub(crate) fn layout_clauses_in_queries(statement: &mut Statement) {
    let Statement::Statement(statement) = statement else { return };
    let _ = sqlparser::ast::visit_statements_mut(statement.as_mut(), |statement| {
        if let sqlparser::ast::Statement::Query(query) = statement {
            layout_clauses_to_order_by(query);
        }
        ControlFlow::<()>::Continue(())
    });
}

fn layout_clauses_to_order_by(query: &mut Query) {
    let SetExpr::Select(select) = query.body.as_mut() else { return };
    let cluster_by = std::mem::take(&mut select.cluster_by);
    let sort_by = std::mem::take(&mut select.sort_by);
    select.distribute_by.clear();
    let order: Vec<OrderByExpr> = if cluster_by.is_empty() {
        sort_by
    } else {
        cluster_by.into_iter().map(|expr| OrderByExpr { expr, options: Default::default(), with_fill: None }).collect()
    };
    if !order.is_empty() && query.order_by.is_none() {
        query.order_by = Some(OrderBy { kind: OrderByKind::Expressions(order), interpolate: None });
    }
}
