//! What is pushed to a database on PostgreSQL's wire protocol, and the SQL that pushes it.
//!
//! [`supports`] decides which filters the database evaluates exactly as DataFusion would;
//! [`RemoteQuery::select`] renders exactly those with DataFusion's `Unparser`, every literal
//! replaced by a `$n` parameter that is bound as text, so values are never spliced into SQL.

use std::fmt::Write as _;
use std::ops::ControlFlow;

use datafusion::arrow::datatypes::{DataType, Field};
use datafusion::arrow::util::display::array_value_to_string;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, ScalarValue};
use datafusion::error::Result as DFResult;
use datafusion::logical_expr::expr::{Between, InList, Like, Placeholder};
use datafusion::logical_expr::utils::conjunction;
use datafusion::logical_expr::{BinaryExpr, Cast, Expr, Operator};
use datafusion::sql::sqlparser::ast::{self, Ident, visit_expressions_mut};
use datafusion::sql::unparser::Unparser;
use datafusion::sql::unparser::dialect::PostgreSqlDialect;

use super::Dialect;
#[cfg(test)]
use super::POSTGRES;
use super::quote;
use super::schema::wire_type;

/// One column of a registered table: how it is read, and whether filters on it may be pushed.
#[derive(Debug, Clone)]
pub(crate) struct TableColumn {
    pub(crate) field: Field,
    /// See [`super::schema::RemoteColumn::compares_natively`].
    pub(crate) native: bool,
}

/// Whether `filter` can be evaluated by the database with exactly DataFusion's result:
/// comparisons, BETWEEN, IN, LIKE, IS [NOT] NULL and AND/OR/NOT over columns that compare
/// natively and literals. Text is compared only for (in)equality and LIKE, since ordering
/// depends on the database's collation. Functions, casts other than integer widening, and
/// arithmetic (whose overflow rules differ) stay in lakegate.
pub(crate) fn supports(filter: &Expr, columns: &[TableColumn]) -> bool {
    let native = |e: &Expr, ordered: bool| {
        column(e, columns).is_some_and(|c| c.native && !(ordered && c.field.data_type() == &DataType::Utf8))
    };
    match filter {
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => match op {
            Operator::And | Operator::Or => supports(left, columns) && supports(right, columns),
            Operator::Eq | Operator::NotEq | Operator::Lt | Operator::LtEq | Operator::Gt | Operator::GtEq => {
                let ordered = !matches!(op, Operator::Eq | Operator::NotEq);
                (native(left, ordered) && is_value(right)) || (is_value(left) && native(right, ordered))
            }
            _ => false,
        },
        Expr::Not(inner) => supports(inner, columns),
        Expr::IsNull(inner) | Expr::IsNotNull(inner) => column(inner, columns).is_some(),
        Expr::Between(Between { expr, low, high, .. }) => native(expr, true) && is_value(low) && is_value(high),
        Expr::InList(InList { expr, list, .. }) => native(expr, false) && list.iter().all(is_value),
        Expr::Like(Like { expr, pattern, escape_char: None, case_insensitive: false, .. }) => {
            native(expr, false)
                && column(expr, columns).is_some_and(|c| c.field.data_type() == &DataType::Utf8)
                && is_value(pattern)
        }
        Expr::Column(_) => {
            column(filter, columns).is_some_and(|c| c.native && c.field.data_type() == &DataType::Boolean)
        }
        _ => false,
    }
}

/// The table column `expr` reads: a column, or an integer column widened by a cast.
fn column<'a>(expr: &Expr, columns: &'a [TableColumn]) -> Option<&'a TableColumn> {
    let find = |c: &Column| columns.iter().find(|t| t.field.name() == &c.name);
    match expr {
        Expr::Column(c) => find(c),
        Expr::Cast(Cast { expr, field }) => match expr.as_ref() {
            Expr::Column(c) => find(c).filter(|t| is_integer_widening(t.field.data_type(), field.data_type())),
            _ => None,
        },
        _ => None,
    }
}

fn is_integer_widening(from: &DataType, to: &DataType) -> bool {
    let width = |t: &DataType| match t {
        DataType::Int16 => Some(2),
        DataType::Int32 => Some(4),
        DataType::Int64 => Some(8),
        _ => None,
    };
    matches!((width(from), width(to)), (Some(f), Some(t)) if f <= t)
}

fn is_value(expr: &Expr) -> bool {
    matches!(expr, Expr::Literal(v, _) if !v.is_null())
}

/// A `SELECT` for the database and the text of its `$n` parameters.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RemoteQuery {
    pub(crate) sql: String,
    pub(crate) params: Vec<String>,
}

impl RemoteQuery {
    /// `SELECT <columns cast to their read types> FROM <table> [WHERE <filters>] [LIMIT n]`,
    /// `table` already quoted ([`quote::table`]). `filters` must all satisfy [`supports`].
    /// With no columns (e.g. `count(*)`), selects the dialect's constant per row.
    ///
    /// # Errors
    /// A column type without a database counterpart, or a filter the unparser cannot render.
    pub(crate) fn select(
        table: &str,
        columns: &[&TableColumn],
        filters: &[Expr],
        limit: Option<usize>,
        dialect: &Dialect,
    ) -> DFResult<Self> {
        let mut sql = String::from("SELECT ");
        if columns.is_empty() {
            sql.push_str(dialect.constant_column);
        }
        for (i, column) in columns.iter().enumerate() {
            let name = quote::identifier(column.field.name());
            let separator = if i == 0 { "" } else { ", " };
            let _ = write!(sql, "{separator}CAST({name} AS {})", wire_type(&column.field, dialect)?);
        }
        let _ = write!(sql, " FROM {table}");
        let mut params = Vec::new();
        let unparser = Unparser::new(&PostgreSqlDialect {});
        // One expression, so the unparser decides the parentheses.
        if let Some(all) = conjunction(filters.iter().cloned()) {
            let bound = bind_values(all, &mut params)?;
            let mut condition = unparser.expr_to_sql(&bound)?;
            requote_identifiers(&mut condition);
            let _ = write!(sql, " WHERE {condition}");
        }
        if let Some(limit) = limit {
            let _ = write!(sql, " LIMIT {limit}");
        }
        Ok(Self { sql, params })
    }
}

/// Rewrites every column name of the unparser's output as [`quote::identifier`] writes it.
/// The unparser leaves names in `Ident`s whose Display does not escape every name (see
/// [`quote`]); an `Ident` without a quote style is printed as it is, so it carries the
/// already quoted name.
fn requote_identifiers(condition: &mut ast::Expr) {
    let requote = |ident: &mut Ident| *ident = Ident::new(quote::identifier(&ident.value));
    let _ = visit_expressions_mut(condition, |e| {
        match e {
            ast::Expr::Identifier(ident) => requote(ident),
            ast::Expr::CompoundIdentifier(parts) => parts.iter_mut().for_each(requote),
            _ => {}
        }
        ControlFlow::<()>::Continue(())
    });
}

/// Replaces every literal of `filter` by the next `$n`, pushing its text onto `params`, and
/// drops column qualifiers (the remote query names only its own table).
fn bind_values(filter: Expr, params: &mut Vec<String>) -> DFResult<Expr> {
    let bound = filter.transform_down(|e| match e {
        Expr::Literal(value, _) if !value.is_null() => {
            params.push(parameter_text(&value)?);
            Ok(Transformed::yes(Expr::Placeholder(Placeholder::new_with_field(format!("${}", params.len()), None))))
        }
        Expr::Column(c) => Ok(Transformed::yes(Expr::Column(Column::new_unqualified(c.name)))),
        other => Ok(Transformed::no(other)),
    })?;
    Ok(bound.data)
}

/// A value in the text form PostgreSQL parses for the parameter's inferred type. Time stamps
/// with a zone carry their offset, so the session's time zone does not matter.
fn parameter_text(value: &ScalarValue) -> DFResult<String> {
    Ok(match value {
        ScalarValue::Utf8(Some(s)) | ScalarValue::Utf8View(Some(s)) | ScalarValue::LargeUtf8(Some(s)) => s.clone(),
        other => array_value_to_string(&other.to_array()?, 0)?,
    })
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::datatypes::TimeUnit;
    use datafusion::prelude::{col, lit};

    use super::*;

    fn columns() -> Vec<TableColumn> {
        let field = |name: &str, t: DataType| Field::new(name, t, true);
        vec![
            TableColumn { field: field("uid", DataType::Int32), native: true },
            TableColumn { field: field("gender", DataType::Utf8), native: true },
            TableColumn { field: field("token", DataType::Utf8), native: false },
            TableColumn {
                field: field("seen", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))),
                native: true,
            },
        ]
    }

    fn table() -> String {
        quote::table("public", "users")
    }

    #[test]
    fn exact_filters_are_pushed_and_the_rest_stay() {
        let cols = columns();
        let pushed = [
            col("uid").between(lit(25), lit(49)),
            col("gender").eq(lit("F")),
            col("gender").in_list(vec![lit("F"), lit("M")], false),
            col("gender").like(lit("F%")),
            col("uid").gt(lit(3)).or(col("uid").is_null()),
            col("token").is_null(),
            Expr::Cast(Cast::new(Box::new(col("uid")), DataType::Int64)).eq(lit(5i64)),
        ];
        for filter in &pushed {
            assert!(supports(filter, &cols), "{filter}");
        }
        let kept = [
            col("gender").gt(lit("F")),
            col("token").eq(lit("abc")),
            (col("uid") + lit(1)).eq(lit(3)),
            col("gender").ilike(lit("f%")),
            Expr::Cast(Cast::new(Box::new(col("uid")), DataType::Float64)).eq(lit(5.0)),
        ];
        for filter in &kept {
            assert!(!supports(filter, &cols), "{filter}");
        }
    }

    #[test]
    fn values_are_bound_and_names_quoted() {
        let cols = columns();
        let chosen: Vec<&TableColumn> = cols.iter().take(2).collect();
        let filters = [col("users.uid").between(lit(25), lit(49)), col("gender").eq(lit("O'Brien"))];
        let query = RemoteQuery::select(&table(), &chosen, &filters, Some(10), &POSTGRES).expect("renders");
        assert_eq!(
            query.sql,
            r#"SELECT CAST("uid" AS int4), CAST("gender" AS text) FROM "public"."users" WHERE (("uid" BETWEEN $1 AND $2) AND ("gender" = $3)) LIMIT 10"#
        );
        assert_eq!(query.params, vec!["25", "49", "O'Brien"]);
    }

    /// The column names a statement reads and the parts of the table name it reads from,
    /// as PostgreSQL's grammar (sqlparser's PostgreSQL dialect) parses them.
    fn names_in(sql: &str) -> (Vec<String>, Vec<Vec<String>>) {
        use datafusion::sql::sqlparser::ast::{visit_expressions, visit_relations};
        use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
        use datafusion::sql::sqlparser::parser::Parser;
        let statements = Parser::parse_sql(&PostgreSqlDialect {}, sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
        let (mut columns, mut tables) = (Vec::new(), Vec::new());
        let _ = visit_expressions(&statements, |e| {
            if let ast::Expr::Identifier(ident) = e {
                columns.push(ident.value.clone());
            }
            ControlFlow::<()>::Continue(())
        });
        let _ = visit_relations(&statements, |name| {
            tables.push(name.0.iter().filter_map(|p| p.as_ident()).map(|i| i.value.clone()).collect());
            ControlFlow::<()>::Continue(())
        });
        (columns, tables)
    }

    fn select_named(name: &str) -> RemoteQuery {
        let cols = [TableColumn { field: Field::new(name, DataType::Int32, true), native: true }];
        let chosen: Vec<&TableColumn> = cols.iter().collect();
        let filter = Expr::Column(Column::new_unqualified(name))
            .eq(lit(7))
            .or(Expr::Column(Column::new_unqualified(name)).is_null());
        RemoteQuery::select(&quote::table(name, name), &chosen, &[filter], None, &POSTGRES).expect("renders")
    }

    #[test]
    fn names_with_quotes_and_backslashes_are_escaped_everywhere() {
        let query = select_named(r#"a""b"#);
        assert_eq!(
            query.sql,
            r#"SELECT CAST("a""""b" AS int4) FROM "a""""b"."a""""b" WHERE (("a""""b" = $1) OR "a""""b" IS NULL)"#
        );
        // sqlparser's own rendering would end the name at `\"` and read `) OR ...` as SQL.
        let query = select_named(r#"x\" OR true --"#);
        assert_eq!(
            query.sql,
            r#"SELECT CAST("x\"" OR true --" AS int4) FROM "x\"" OR true --"."x\"" OR true --" WHERE (("x\"" OR true --" = $1) OR "x\"" OR true --" IS NULL)"#
        );
        assert_eq!(query.params, ["7"]);
    }

    proptest::proptest! {
        /// Whatever a remote column or table is called, the statement names exactly it.
        #[test]
        fn any_name_reaches_the_database_as_itself(name in "[^\u{0}]{1,24}") {
            let query = select_named(&name);
            let (columns, tables) = names_in(&query.sql);
            proptest::prop_assert_eq!(columns, vec![name.clone(); 3], "{}", query.sql);
            proptest::prop_assert_eq!(tables, vec![vec![name.clone(), name.clone()]], "{}", query.sql);
        }
    }

    #[test]
    fn time_stamps_keep_their_zone_and_no_columns_select_a_constant() {
        let seen = ScalarValue::TimestampMicrosecond(Some(1_520_208_000_000_000), Some("UTC".into()));
        let query =
            RemoteQuery::select(&table(), &[], &[col("seen").gt_eq(lit(seen))], None, &POSTGRES).expect("renders");
        assert_eq!(query.sql, r#"SELECT 1 FROM "public"."users" WHERE ("seen" >= $1)"#);
        let plain = RemoteQuery::select(&table(), &[], &[], None, &POSTGRES).expect("renders");
        assert_eq!(plain.sql, r#"SELECT 1 FROM "public"."users""#);
        assert!(
            query.params[0].starts_with("2018-03-05T00:00:00") && query.params[0].ends_with('Z')
                || query.params[0].ends_with("+00:00"),
            "{:?}",
            query.params
        );
    }
}
