//! Rewrites of DataFusion statements for the Spark/Hive spellings DataFusion plans differently.

use std::ops::ControlFlow;

use datafusion::sql::parser::Statement;
use sqlparser::ast::{AccessExpr, Expr, Subscript, Value, visit_expressions_mut};

/// Spark's `f(x).field` (a field of a function's struct result, e.g. `geodata(lon, lat).city`)
/// becomes `f(x)['field']`, which DataFusion plans; on columns DataFusion already resolves dots.
pub(super) fn struct_field_access(statement: &mut Statement) {
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
