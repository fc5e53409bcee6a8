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
use datafusion::logical_expr::expr::{AggregateFunction, Between, InList, Like, Placeholder};
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

pub(crate) fn is_integer_widening(from: &DataType, to: &DataType) -> bool {
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

/// One column of a remote query's result: the SQL that computes it and how it is read.
#[derive(Debug, Clone)]
pub(crate) struct Output {
    pub(crate) sql: String,
    pub(crate) field: Field,
    /// Whether the database orders this column exactly as DataFusion does.
    pub(crate) orderable: bool,
}

impl Output {
    pub(crate) fn column(column: &TableColumn) -> Self {
        Self {
            sql: quote::identifier(column.field.name()),
            field: column.field.clone(),
            orderable: column.native && is_ordered_natively(column.field.data_type()),
        }
    }

    /// `<sql> ASC|DESC NULLS FIRST|LAST` when the database orders this column exactly as
    /// DataFusion does.
    pub(crate) fn order_key(&self, ascending: bool, nulls_first: bool) -> Option<String> {
        let direction = if ascending { "ASC" } else { "DESC" };
        let nulls = if nulls_first { "FIRST" } else { "LAST" };
        self.orderable.then(|| format!("{} {direction} NULLS {nulls}", self.sql))
    }
}

/// Types the database orders (and so takes the MIN/MAX of) exactly as DataFusion does. Not
/// text (collations), nor floats (PostgreSQL has `-0 = 0`, Arrow orders `-0` first), nor
/// booleans (PostgreSQL has no `min(bool)`).
fn is_ordered_natively(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::Decimal128(..)
            | DataType::Date32
            | DataType::Timestamp(..)
    )
}

pub(crate) fn is_integer(data_type: &DataType) -> bool {
    matches!(data_type, DataType::Int16 | DataType::Int32 | DataType::Int64)
}

/// `column` as a `GROUP BY` key, when the database tells its values apart exactly as
/// DataFusion does: what it orders natively, plus text (equality does not depend on the
/// collation) and booleans. Not floats (`-0 = 0` and NaNs group differently).
pub(crate) fn group_key(column: &TableColumn) -> Option<Output> {
    let data_type = column.field.data_type();
    let groups = is_ordered_natively(data_type) || matches!(data_type, DataType::Utf8 | DataType::Boolean);
    (column.native && groups).then(|| Output::column(column))
}

/// An aggregate as the database computes it.
#[derive(Debug, Clone)]
pub(crate) enum Aggregate {
    /// One result column: `count`, `sum`, `min`, `max`.
    Value(Output),
    /// `avg` as DataFusion computes it, `sum / count` in floating point, from the database's
    /// exact sum (as `float8`) and count.
    Average { sum: Output, count: Output },
}

/// `expr`, an aggregate whose result is `field`, when the database computes exactly what
/// DataFusion would: `count(*)` and `count(column)` of any column; `sum` of integer and
/// decimal columns; `min`/`max` of the types in [`is_ordered_natively`]; `avg` of integer
/// columns. Never with DISTINCT, FILTER or ORDER BY inside the call. Floats are never summed
/// remotely: the order of additions changes the result.
///
/// Differences, both documented: a `bigint` sum that overflows is an error in the database,
/// where DataFusion would wrap around; an average whose sum passes 2^53 is rounded once in the
/// database, where DataFusion rounds at each addition.
pub(crate) fn aggregate(expr: &Expr, columns: &[TableColumn], field: &Field) -> Option<Aggregate> {
    let Expr::AggregateFunction(AggregateFunction { func, params }) = expr.clone().unalias() else { return None };
    if params.distinct || params.filter.is_some() || !params.order_by.is_empty() || params.null_treatment.is_some() {
        return None;
    }
    let [arg] = params.args.as_slice() else { return None };
    // The column an aggregate reads, through the casts DataFusion's type coercion adds.
    let read = || {
        column(arg, columns).or_else(|| match arg {
            Expr::Cast(Cast { expr, field: to }) if matches!(to.data_type(), DataType::Int64 | DataType::Float64) => {
                column(expr, columns).filter(|c| is_integer(c.field.data_type()))
            }
            _ => None,
        })
    };
    let value = |sql: String| Some(Aggregate::Value(Output { sql, field: field.clone(), orderable: true }));
    let name = quote::identifier;
    match func.name() {
        "count" => match arg {
            Expr::Literal(v, _) if !v.is_null() => value("count(*)".to_owned()),
            _ => value(format!("count({})", name(read()?.field.name()))),
        },
        "sum" => {
            let c = read().filter(|c| c.native)?;
            let exact = match (c.field.data_type(), field.data_type()) {
                (from, DataType::Int64) => is_integer(from),
                // Up to 28 digits DataFusion's sum has ten more, so neither side overflows; an
                // unconstrained numeric (read as 38 digits) would be summed unrounded remotely.
                (DataType::Decimal128(p, _), DataType::Decimal128(..)) => *p <= 28,
                _ => false,
            };
            exact.then(|| format!("sum({})", name(c.field.name()))).and_then(value)
        }
        "min" | "max" => {
            let c = column(arg, columns).filter(|c| c.native)?;
            let exact = is_ordered_natively(c.field.data_type()) && c.field.data_type() == field.data_type();
            exact.then(|| format!("{}({})", func.name(), name(c.field.name()))).and_then(value)
        }
        "avg" => {
            let c = read().filter(|c| c.native && is_integer(c.field.data_type()))?;
            if field.data_type() != &DataType::Float64 {
                return None;
            }
            let column = name(c.field.name());
            let part = |sql: String, suffix: &str, data_type: DataType, nullable: bool| Output {
                sql,
                field: Field::new(format!("{}: {suffix}", field.name()), data_type, nullable),
                orderable: false,
            };
            Some(Aggregate::Average {
                sum: part(format!("sum({column})"), "sum", DataType::Float64, true),
                count: part(format!("count({column})"), "count", DataType::Int64, false),
            })
        }
        _ => None,
    }
}

/// What a remote query computes beyond its filters: its groups, order and limit, each
/// already in SQL (see [`crate::sources::rewrite`], which decides what may be pushed).
#[derive(Debug, Clone, Default)]
pub(crate) struct Clauses {
    /// `GROUP BY` these; `Some(vec![])` for an aggregate without keys (one row).
    pub(crate) group_by: Option<Vec<String>>,
    /// `ORDER BY` these, each with its direction and where NULLs go.
    pub(crate) order_by: Vec<String>,
    pub(crate) limit: Option<usize>,
}

/// Tables of one server joined there, as a pushed query reads them.
#[derive(Debug, Clone)]
pub(crate) struct Relation {
    /// What the relation gives, in the order of the plan node it stands for.
    pub(crate) columns: Vec<Joined>,
    from: From,
}

#[derive(Debug, Clone)]
enum From {
    /// A table, `"schema"."table"` quoted, with the filters its scan took.
    Table { table: String, filters: Vec<Expr> },
    /// An inner join where each pair of key columns is equal, as `(left, right)` indices into
    /// each side's columns.
    Join { left: Box<Relation>, right: Box<Relation>, on: Vec<(usize, usize)> },
}

/// A column of a relation: which of its tables (counted from the left, from 0) and which of
/// that table's columns.
#[derive(Debug, Clone)]
pub(crate) struct Joined {
    pub(crate) table: usize,
    pub(crate) column: TableColumn,
}

/// How the query names table `n` of a join.
fn alias(n: usize) -> String {
    quote::identifier(&format!("t{n}"))
}

impl Joined {
    /// The column as the join gives it, named `t<table>.<name>`: a name no other column of
    /// the join has (see [`Relation::derived`]).
    pub(crate) fn as_column(&self) -> TableColumn {
        let name = format!("t{}.{}", self.table, self.column.field.name());
        TableColumn { field: self.column.field.clone().with_name(name), native: self.column.native }
    }

    /// Whether the database finds two such values equal exactly when DataFusion does: the
    /// types it groups natively ([`group_key`]) but decimals (an unconstrained numeric is
    /// compared unrounded there, rounded here).
    pub(crate) fn is_join_key(&self) -> bool {
        group_key(&self.column).is_some() && !matches!(self.column.field.data_type(), DataType::Decimal128(..))
    }
}

impl Relation {
    /// `columns` of `table` (quoted), as its scan read them with `filters`.
    pub(crate) fn table(table: &str, columns: Vec<TableColumn>, filters: Vec<Expr>) -> Self {
        let columns = columns.into_iter().map(|column| Joined { table: 0, column }).collect();
        Self { columns, from: From::Table { table: table.to_owned(), filters } }
    }

    /// `left` and `right` joined where each pair `on` (indices into their columns) is equal;
    /// its columns are theirs, left first.
    pub(crate) fn join(left: Relation, right: Relation, on: Vec<(usize, usize)>) -> Self {
        let shift = left.tables();
        let columns = left
            .columns
            .iter()
            .cloned()
            .chain(right.columns.iter().map(|c| Joined { table: c.table + shift, column: c.column.clone() }))
            .collect();
        Self { columns, from: From::Join { left: Box::new(left), right: Box::new(right), on } }
    }

    /// The same tables joined the same way, giving `columns` (a projection of its columns).
    pub(crate) fn giving(&self, columns: Vec<Joined>) -> Self {
        Self { columns, from: self.from.clone() }
    }

    /// How many tables it reads.
    pub(crate) fn tables(&self) -> usize {
        match &self.from {
            From::Table { .. } => 1,
            From::Join { left, right, .. } => left.tables() + right.tables(),
        }
    }

    /// The relation as a table for a query's `FROM`: `(SELECT "t0"."a" AS "t0.a", ... FROM
    /// <the join>) AS "joined"`, its columns named as [`Joined::as_column`] names them, so a
    /// query reads, groups and orders them as it does a table's; values are bound as `$n`,
    /// their texts pushed onto `params`.
    pub(crate) fn derived(&self, params: &mut Vec<String>) -> DFResult<String> {
        let columns: Vec<String> = self
            .columns
            .iter()
            .map(|c| {
                let name = quote::identifier(c.column.field.name());
                format!("{}.{name} AS {}", alias(c.table), quote::identifier(c.as_column().field.name()))
            })
            .collect();
        let from = self.render(0, params)?;
        Ok(format!("(SELECT {} FROM {from}) AS {}", columns.join(", "), quote::identifier("joined")))
    }

    /// The `FROM` clause, its tables named `t<first>`, `t<first + 1>`... from the left.
    fn render(&self, first: usize, params: &mut Vec<String>) -> DFResult<String> {
        match &self.from {
            From::Table { table, filters } => {
                let Some(all) = conjunction(filters.iter().cloned()) else {
                    return Ok(format!("{table} AS {}", alias(first)));
                };
                let condition = where_condition(all, params)?;
                Ok(format!("(SELECT * FROM {table} WHERE {condition}) AS {}", alias(first)))
            }
            From::Join { left, right, on } => {
                let left_sql = left.render(first, params)?;
                let right_first = first + left.tables();
                let right_sql = right.render(right_first, params)?;
                let right_sql = match right.from {
                    From::Join { .. } => format!("({right_sql})"),
                    From::Table { .. } => right_sql,
                };
                let key = |c: &Joined, at: usize| {
                    format!("{}.{}", alias(at + c.table), quote::identifier(c.column.field.name()))
                };
                let keys: Vec<String> = on
                    .iter()
                    .map(|&(l, r)| {
                        format!("{} = {}", key(&left.columns[l], first), key(&right.columns[r], right_first))
                    })
                    .collect();
                Ok(format!("{left_sql} JOIN {right_sql} ON {}", keys.join(" AND ")))
            }
        }
    }
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
        let outputs: Vec<Output> = columns.iter().map(|c| Output::column(c)).collect();
        let outputs: Vec<&Output> = outputs.iter().collect();
        Self::render(table, &outputs, filters, &Clauses { limit, ..Clauses::default() }, dialect)
    }

    /// `SELECT <outputs cast to their read types> FROM <table> [WHERE <filters>] [GROUP BY ...]
    /// [ORDER BY ...] [LIMIT n]`; as [`Self::select`] otherwise.
    ///
    /// # Errors
    /// As [`Self::select`].
    pub(crate) fn render(
        table: &str,
        outputs: &[&Output],
        filters: &[Expr],
        clauses: &Clauses,
        dialect: &Dialect,
    ) -> DFResult<Self> {
        Self::render_from(table, Vec::new(), outputs, filters, clauses, dialect)
    }

    /// [`Self::render`] from `from`, a table or a [`Relation`] already rendered with the
    /// values `params`.
    ///
    /// # Errors
    /// As [`Self::select`].
    pub(crate) fn render_from(
        from: &str,
        mut params: Vec<String>,
        outputs: &[&Output],
        filters: &[Expr],
        clauses: &Clauses,
        dialect: &Dialect,
    ) -> DFResult<Self> {
        let mut sql = String::from("SELECT ");
        if outputs.is_empty() {
            sql.push_str(dialect.constant_column);
        }
        for (i, output) in outputs.iter().enumerate() {
            let separator = if i == 0 { "" } else { ", " };
            let _ = write!(sql, "{separator}CAST({} AS {})", output.sql, wire_type(&output.field, dialect)?);
        }
        let _ = write!(sql, " FROM {from}");
        // One expression, so the unparser decides the parentheses.
        if let Some(all) = conjunction(filters.iter().cloned()) {
            let _ = write!(sql, " WHERE {}", where_condition(all, &mut params)?);
        }
        if let Some(keys) = clauses.group_by.as_ref().filter(|k| !k.is_empty()) {
            let _ = write!(sql, " GROUP BY {}", keys.join(", "));
        }
        if !clauses.order_by.is_empty() {
            let _ = write!(sql, " ORDER BY {}", clauses.order_by.join(", "));
        }
        if let Some(limit) = clauses.limit {
            let _ = write!(sql, " LIMIT {limit}");
        }
        Ok(Self { sql, params })
    }
}

/// `filter` as SQL, its values bound as the next `$n` (pushed onto `params`) and its columns
/// unqualified.
fn where_condition(filter: Expr, params: &mut Vec<String>) -> DFResult<ast::Expr> {
    let bound = bind_values(filter, params)?;
    let mut condition = Unparser::new(&PostgreSqlDialect {}).expr_to_sql(&bound)?;
    requote_identifiers(&mut condition);
    Ok(condition)
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

        /// So do a pushed aggregate's key, its aggregate's argument and its order.
        #[test]
        fn any_name_is_grouped_counted_and_ordered_as_itself(name in "[^\u{0}]{1,24}") {
            let column = TableColumn { field: Field::new(&name, DataType::Int32, true), native: true };
            let key = group_key(&column).expect("an integer key");
            let counted = aggregate(
                &datafusion::functions_aggregate::expr_fn::count(Expr::Column(Column::new_unqualified(&name))),
                std::slice::from_ref(&column),
                &Field::new("n", DataType::Int64, false),
            );
            let Some(Aggregate::Value(counted)) = counted else { panic!("count is pushed") };
            let clauses = Clauses {
                group_by: Some(vec![key.sql.clone()]),
                order_by: vec![key.order_key(false, true).expect("integers order natively")],
                limit: Some(3),
            };
            let query = RemoteQuery::render(&table(), &[&key, &counted], &[], &clauses, &POSTGRES).expect("renders");
            let (columns, _) = names_in(&query.sql);
            proptest::prop_assert_eq!(columns, vec![name.clone(); 4], "{}", query.sql);
        }
    }

    /// Two tables joined on a column, each with a filter, and the join's count grouped by it.
    fn joined(name: &str) -> RemoteQuery {
        let column = TableColumn { field: Field::new(name, DataType::Int32, true), native: true };
        let side = || {
            let filter = Expr::Column(Column::new_unqualified(name)).gt(lit(7));
            Relation::table(&quote::table(name, name), vec![column.clone()], vec![filter])
        };
        let relation = Relation::join(side(), side(), vec![(0, 0)]);
        let key = group_key(&relation.columns[1].as_column()).expect("an integer key");
        let clauses = Clauses { group_by: Some(vec![key.sql.clone()]), ..Clauses::default() };
        let mut params = Vec::new();
        let from = relation.derived(&mut params).expect("renders");
        RemoteQuery::render_from(&from, params, &[&key], &[], &clauses, &POSTGRES).expect("renders")
    }

    #[test]
    fn a_join_names_its_tables_and_binds_each_sides_values_in_order() {
        let query = joined("id");
        assert_eq!(
            query.sql,
            r#"SELECT CAST("t1.id" AS int4) FROM (SELECT "t0"."id" AS "t0.id", "t1"."id" AS "t1.id" FROM (SELECT * FROM "id"."id" WHERE ("id" > $1)) AS "t0" JOIN (SELECT * FROM "id"."id" WHERE ("id" > $2)) AS "t1" ON "t0"."id" = "t1"."id") AS "joined" GROUP BY "t1.id""#
        );
        assert_eq!(query.params, ["7", "7"]);
    }

    proptest::proptest! {
        /// Whatever the joined tables and columns are called, the join names exactly them.
        #[test]
        fn any_name_is_joined_as_itself(name in "[^\u{0}]{1,24}") {
            use datafusion::sql::sqlparser::ast::visit_expressions;
            use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
            use datafusion::sql::sqlparser::parser::Parser;
            let query = joined(&name);
            let statements = Parser::parse_sql(&PostgreSqlDialect {}, &query.sql).unwrap_or_else(|e| panic!("{}: {e}", query.sql));
            let mut read = Vec::new();
            let _ = visit_expressions(&statements, |e| {
                if let ast::Expr::CompoundIdentifier(parts) = e {
                    read.push(parts.iter().map(|p| p.value.clone()).collect::<Vec<_>>());
                }
                ControlFlow::<()>::Continue(())
            });
            let t = |n: &str| vec![n.to_owned(), name.clone()];
            // The derived table's two columns, then the ON clause's two keys.
            proptest::prop_assert_eq!(read, vec![t("t0"), t("t1"), t("t0"), t("t1")], "{}", query.sql);
            let (columns, tables) = names_in(&query.sql);
            proptest::prop_assert_eq!(tables, vec![vec![name.clone(), name.clone()]; 2], "{}", query.sql);
            let expected: Vec<String> = vec![format!("t1.{name}"), name.clone(), name.clone(), format!("t1.{name}")];
            proptest::prop_assert_eq!(columns, expected, "{}", query.sql);
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

    /// Which aggregates, keys and orders the database computes as DataFusion does.
    #[test]
    fn aggregates_keys_and_orders_are_pushed_only_when_exact() {
        use datafusion::functions_aggregate::expr_fn::{avg, count, count_distinct, max, min, sum};
        let mut cols = columns();
        cols.push(TableColumn { field: Field::new("ratio", DataType::Float64, true), native: true });
        let pushed = |e: Expr, t: DataType| aggregate(&e, &cols, &Field::new("out", t, true));
        let sql = |e: Expr, t: DataType| match pushed(e, t) {
            Some(Aggregate::Value(o)) => Some(o.sql),
            Some(Aggregate::Average { sum, count }) => Some(format!("{} / {}", sum.sql, count.sql)),
            None => None,
        };
        let widened = |c: &str, t: DataType| Expr::Cast(Cast::new(Box::new(col(c)), t));
        assert_eq!(sql(count(lit(1)), DataType::Int64).as_deref(), Some("count(*)"));
        assert_eq!(sql(count(col("token")), DataType::Int64).as_deref(), Some(r#"count("token")"#));
        assert_eq!(sql(sum(widened("uid", DataType::Int64)), DataType::Int64).as_deref(), Some(r#"sum("uid")"#));
        assert_eq!(sql(max(col("seen")), cols[3].field.data_type().clone()).as_deref(), Some(r#"max("seen")"#));
        assert_eq!(
            sql(avg(widened("uid", DataType::Float64)), DataType::Float64).as_deref(),
            Some(r#"sum("uid") / count("uid")"#)
        );
        // Float sums (addition order), text min (collation), DISTINCT, non-native columns.
        assert!(pushed(sum(col("ratio")), DataType::Float64).is_none());
        assert!(pushed(min(col("gender")), DataType::Utf8).is_none());
        assert!(pushed(count_distinct(col("uid")), DataType::Int64).is_none());
        assert!(pushed(min(col("token")), DataType::Utf8).is_none());
        assert!(group_key(&cols[1]).is_some() && group_key(&cols[2]).is_none() && group_key(&cols[4]).is_none());
        let key = Output::column(&cols[0]);
        assert_eq!(key.order_key(false, true).as_deref(), Some(r#""uid" DESC NULLS FIRST"#));
        assert_eq!(Output::column(&cols[1]).order_key(true, false), None, "text orders by collation");
    }
}
