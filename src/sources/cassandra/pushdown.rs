//! Which filters Cassandra evaluates, and the CQL that does it.
//!
//! One function, [`plan`], decides both what `supports_filters_pushdown` reports and what the
//! scan sends, so the two never disagree. Pushed, always exactly as DataFusion would evaluate
//! them: equality or `IN` on every partition-key column (the scan then reads only those
//! partitions), and with the partition fixed, clustering-key restrictions in clustering order
//! (equality on a prefix, then one range). With the table option `allow_filtering` set, other
//! comparisons on plain scalar columns are pushed as well and the query carries
//! `ALLOW FILTERING`. Everything else is left to DataFusion.

use datafusion::common::ScalarValue;
use datafusion::logical_expr::{Between, BinaryExpr, Expr, Operator};
use scylla::cluster::metadata::{ColumnType, NativeType};
use scylla::value::{CqlDate, CqlTimestamp, CqlTimeuuid, CqlValue};

/// The key layout of a table and the CQL types of its columns.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    pub(crate) partition: Vec<String>,
    pub(crate) clustering: Vec<String>,
    /// Every column with its type, for binding values.
    pub(crate) types: Vec<(String, ColumnType<'static>)>,
}

impl Keys {
    fn type_of(&self, column: &str) -> Option<&ColumnType<'static>> {
        self.types.iter().find(|(c, _)| c == column).map(|(_, t)| t)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Eq,
    In,
    Lt,
    LtEq,
    Gt,
    GtEq,
}

impl Op {
    fn cql(self) -> &'static str {
        match self {
            Op::Eq => "=",
            Op::In => "IN",
            Op::Lt => "<",
            Op::LtEq => "<=",
            Op::Gt => ">",
            Op::GtEq => ">=",
        }
    }

    fn flipped(self) -> Op {
        match self {
            Op::Lt => Op::Gt,
            Op::LtEq => Op::GtEq,
            Op::Gt => Op::Lt,
            Op::GtEq => Op::LtEq,
            same => same,
        }
    }

    fn is_lower(self) -> bool {
        matches!(self, Op::Gt | Op::GtEq)
    }

    fn is_upper(self) -> bool {
        matches!(self, Op::Lt | Op::LtEq)
    }
}

/// `column op ?`, with the value bound (for `IN`, a list).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Restriction {
    pub(crate) column: String,
    pub(crate) op: Op,
    pub(crate) value: CqlValue,
}

/// What Cassandra evaluates of a scan's filters.
#[derive(Debug, Clone, Default)]
pub(crate) struct CqlPlan {
    /// Per filter, in the order given: whether the CQL evaluates it (exactly).
    pub(crate) pushed: Vec<bool>,
    /// Restrictions on every partition-key column; empty means a token-range scan.
    pub(crate) partition: Vec<Restriction>,
    /// Clustering-key restrictions, and with `allow_filtering`, any others.
    pub(crate) rest: Vec<Restriction>,
    pub(crate) allow_filtering: bool,
}

/// Decides which of `filters` Cassandra evaluates.
pub(crate) fn plan(filters: &[&Expr], keys: &Keys, allow_filtering: bool) -> CqlPlan {
    let atoms: Vec<Option<Vec<Restriction>>> = filters.iter().map(|f| restrictions(f, keys)).collect();
    let mut plan = CqlPlan { pushed: vec![false; filters.len()], ..CqlPlan::default() };
    let mut slots = Slots::default();

    // Every partition-key column needs an equality or IN, else nothing on it is pushed.
    let mut partition = Vec::new();
    for column in &keys.partition {
        let found = atoms.iter().enumerate().find_map(|(i, a)| match a.as_deref() {
            Some([r]) if &r.column == column && matches!(r.op, Op::Eq | Op::In) => Some((i, r.clone())),
            _ => None,
        });
        match found {
            Some(found) => partition.push(found),
            None => {
                partition.clear();
                break;
            }
        }
    }
    for (i, restriction) in partition {
        plan.pushed[i] = true;
        slots.take(&restriction);
        plan.partition.push(restriction);
    }
    let fixed = !plan.partition.is_empty();

    // Clustering columns in order: equalities on a prefix, then one column's range.
    if fixed {
        for column in &keys.clustering {
            let pushed_eq = push_matching(&atoms, &mut plan, &mut slots, |r| &r.column == column && r.op == Op::Eq);
            if pushed_eq {
                continue;
            }
            push_matching(&atoms, &mut plan, &mut slots, |r| &r.column == column && r.op != Op::In);
            break;
        }
    }

    if allow_filtering {
        let before = plan.rest.len();
        let is_partition = |c: &str| keys.partition.iter().any(|p| p == c);
        push_matching(&atoms, &mut plan, &mut slots, |r| !is_partition(&r.column) && r.op != Op::In);
        plan.allow_filtering = plan.rest.len() > before;
    }
    plan
}

/// Pushes every not-yet-pushed filter whose restrictions all match and fit the column's
/// free slots; true if any was pushed.
fn push_matching(
    atoms: &[Option<Vec<Restriction>>],
    plan: &mut CqlPlan,
    slots: &mut Slots,
    matches: impl Fn(&Restriction) -> bool,
) -> bool {
    let mut any = false;
    for (i, atom) in atoms.iter().enumerate() {
        let Some(restrictions) = atom else { continue };
        if plan.pushed[i] || !restrictions.iter().all(&matches) || !slots.fits(restrictions) {
            continue;
        }
        for r in restrictions {
            slots.take(r);
            plan.rest.push(r.clone());
        }
        plan.pushed[i] = true;
        any = true;
    }
    any
}

/// CQL allows per column one equality or IN, or else one lower and one upper bound.
#[derive(Default)]
struct Slots(Vec<(String, Op)>);

impl Slots {
    fn fits(&self, restrictions: &[Restriction]) -> bool {
        let mut taken = self.0.clone();
        for r in restrictions {
            let clash = taken.iter().any(|(c, op)| {
                c == &r.column
                    && (matches!(op, Op::Eq | Op::In)
                        || matches!(r.op, Op::Eq | Op::In)
                        || (op.is_lower() && r.op.is_lower())
                        || (op.is_upper() && r.op.is_upper()))
            });
            if clash {
                return false;
            }
            taken.push((r.column.clone(), r.op));
        }
        true
    }

    fn take(&mut self, r: &Restriction) {
        self.0.push((r.column.clone(), r.op));
    }
}

/// A filter as CQL restrictions, when it is a comparison of a column with literals that
/// Cassandra evaluates exactly as DataFusion does.
fn restrictions(filter: &Expr, keys: &Keys) -> Option<Vec<Restriction>> {
    match filter {
        // DataFusion writes short IN lists as ORs of equalities.
        Expr::BinaryExpr(BinaryExpr { op: Operator::Or, .. }) => {
            let mut column = None;
            let mut values = Vec::new();
            for disjunct in split_or(filter) {
                let [r] = restrictions(disjunct, keys)?.try_into().ok()?;
                let (same, op) = (column.get_or_insert_with(|| r.column.clone()) == &r.column, r.op);
                match (same, op, r.value) {
                    (true, Op::Eq, value) => values.push(value),
                    (true, Op::In, CqlValue::List(more)) => values.extend(more),
                    _ => return None,
                }
            }
            Some(vec![Restriction { column: column?, op: Op::In, value: CqlValue::List(values) }])
        }
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
            let op = match op {
                Operator::Eq => Op::Eq,
                Operator::Lt => Op::Lt,
                Operator::LtEq => Op::LtEq,
                Operator::Gt => Op::Gt,
                Operator::GtEq => Op::GtEq,
                _ => return None,
            };
            let (column, literal, op) = match (left.as_ref(), right.as_ref()) {
                (Expr::Column(c), Expr::Literal(v, _)) => (c, v, op),
                (Expr::Literal(v, _), Expr::Column(c)) => (c, v, op.flipped()),
                _ => return None,
            };
            let value = bind(keys.type_of(&column.name)?, literal, op == Op::Eq)?;
            Some(vec![Restriction { column: column.name.clone(), op, value }])
        }
        Expr::InList(list) if !list.negated && !list.list.is_empty() => {
            let Expr::Column(column) = list.expr.as_ref() else { return None };
            let typ = keys.type_of(&column.name)?;
            let values = list
                .list
                .iter()
                .map(|e| match e {
                    Expr::Literal(v, _) => bind(typ, v, true),
                    _ => None,
                })
                .collect::<Option<Vec<_>>>()?;
            Some(vec![Restriction { column: column.name.clone(), op: Op::In, value: CqlValue::List(values) }])
        }
        Expr::Between(Between { expr, negated: false, low, high }) => {
            let (Expr::Column(column), Expr::Literal(low, _), Expr::Literal(high, _)) =
                (expr.as_ref(), low.as_ref(), high.as_ref())
            else {
                return None;
            };
            let typ = keys.type_of(&column.name)?;
            Some(vec![
                Restriction { column: column.name.clone(), op: Op::GtEq, value: bind(typ, low, false)? },
                Restriction { column: column.name.clone(), op: Op::LtEq, value: bind(typ, high, false)? },
            ])
        }
        _ => None,
    }
}

fn split_or(expr: &Expr) -> Vec<&Expr> {
    match expr {
        Expr::BinaryExpr(BinaryExpr { left, op: Operator::Or, right }) => {
            let mut all = split_or(left);
            all.extend(split_or(right));
            all
        }
        other => vec![other],
    }
}

/// A literal as a value of the column's CQL type, when the comparison means the same on both
/// sides: same integer value, same string (for uuids, only the canonical spelling, and only
/// for equality: the CQL order of uuids is not the order of their text), same instant.
/// Floating point, collections and other types are never pushed.
fn bind(typ: &ColumnType<'_>, literal: &ScalarValue, equality: bool) -> Option<CqlValue> {
    let ColumnType::Native(native) = typ else { return None };
    let int = || -> Option<i64> {
        match literal {
            ScalarValue::Int8(Some(v)) => Some(i64::from(*v)),
            ScalarValue::Int16(Some(v)) => Some(i64::from(*v)),
            ScalarValue::Int32(Some(v)) => Some(i64::from(*v)),
            ScalarValue::Int64(Some(v)) => Some(*v),
            ScalarValue::UInt8(Some(v)) => Some(i64::from(*v)),
            ScalarValue::UInt16(Some(v)) => Some(i64::from(*v)),
            ScalarValue::UInt32(Some(v)) => Some(i64::from(*v)),
            ScalarValue::UInt64(Some(v)) => i64::try_from(*v).ok(),
            _ => None,
        }
    };
    let text = || -> Option<&str> {
        match literal {
            ScalarValue::Utf8(Some(s)) | ScalarValue::LargeUtf8(Some(s)) | ScalarValue::Utf8View(Some(s)) => Some(s),
            _ => None,
        }
    };
    let canonical_uuid = || -> Option<uuid::Uuid> {
        let s = text()?;
        let parsed = uuid::Uuid::parse_str(s).ok()?;
        (equality && parsed.hyphenated().to_string() == s).then_some(parsed)
    };
    Some(match native {
        NativeType::TinyInt => CqlValue::TinyInt(i8::try_from(int()?).ok()?),
        NativeType::SmallInt => CqlValue::SmallInt(i16::try_from(int()?).ok()?),
        NativeType::Int => CqlValue::Int(i32::try_from(int()?).ok()?),
        NativeType::BigInt => CqlValue::BigInt(int()?),
        NativeType::Text => CqlValue::Text(text()?.to_owned()),
        NativeType::Ascii => CqlValue::Ascii(text().filter(|s| s.is_ascii())?.to_owned()),
        NativeType::Uuid => CqlValue::Uuid(canonical_uuid()?),
        NativeType::Timeuuid => CqlValue::Timeuuid(CqlTimeuuid::from(canonical_uuid()?)),
        NativeType::Boolean if equality => match literal {
            ScalarValue::Boolean(Some(b)) => CqlValue::Boolean(*b),
            _ => return None,
        },
        NativeType::Date => match literal {
            ScalarValue::Date32(Some(days)) => {
                CqlValue::Date(CqlDate(u32::try_from(i64::from(*days) + (1 << 31)).ok()?))
            }
            _ => return None,
        },
        NativeType::Timestamp => {
            let millis = match literal {
                ScalarValue::TimestampSecond(Some(v), _) => v.checked_mul(1000)?,
                ScalarValue::TimestampMillisecond(Some(v), _) => *v,
                ScalarValue::TimestampMicrosecond(Some(v), _) if v % 1000 == 0 => v / 1000,
                ScalarValue::TimestampNanosecond(Some(v), _) if v % 1_000_000 == 0 => v / 1_000_000,
                _ => return None,
            };
            CqlValue::Timestamp(CqlTimestamp(millis))
        }
        _ => return None,
    })
}

/// A CQL identifier, always quoted, so any name (mixed case, reserved words) means itself.
pub(crate) fn quote(identifier: &str) -> String {
    format!("\"{}\"", identifier.replace('"', "\"\""))
}

/// One token range of a scan: `token(pk) > start AND token(pk) <= end`, either side open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct TokenRange {
    pub(crate) start: Option<i64>,
    pub(crate) end: Option<i64>,
}

/// What one scan asks of Cassandra: the statement text and its values.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Select {
    pub(crate) cql: String,
    pub(crate) values: Vec<CqlValue>,
}

/// `SELECT columns FROM ks.table WHERE ... [LIMIT ?] [ALLOW FILTERING]` for one token range
/// (ignored when the partition is fixed).
pub(crate) fn select(
    keyspace: &str,
    table: &str,
    columns: &[String],
    keys: &Keys,
    plan: &CqlPlan,
    range: TokenRange,
    limit: Option<usize>,
) -> Select {
    let columns = columns.iter().map(|c| quote(c)).collect::<Vec<_>>().join(", ");
    let mut cql = format!("SELECT {columns} FROM {}.{}", quote(keyspace), quote(table));
    let mut conditions = Vec::new();
    let mut values = Vec::new();
    if plan.partition.is_empty() {
        let token = format!("token({})", keys.partition.iter().map(|c| quote(c)).collect::<Vec<_>>().join(", "));
        if let Some(start) = range.start {
            conditions.push(format!("{token} > ?"));
            values.push(CqlValue::BigInt(start));
        }
        if let Some(end) = range.end {
            conditions.push(format!("{token} <= ?"));
            values.push(CqlValue::BigInt(end));
        }
    }
    for r in plan.partition.iter().chain(&plan.rest) {
        conditions.push(format!("{} {} ?", quote(&r.column), r.op.cql()));
        values.push(r.value.clone());
    }
    if !conditions.is_empty() {
        cql.push_str(" WHERE ");
        cql.push_str(&conditions.join(" AND "));
    }
    if let Some(limit) = limit {
        cql.push_str(" LIMIT ?");
        values.push(CqlValue::Int(i32::try_from(limit).unwrap_or(i32::MAX)));
    }
    if plan.allow_filtering {
        cql.push_str(" ALLOW FILTERING");
    }
    Select { cql, values }
}

/// The token ranges between `tokens` (the ring, any order), each split into `per_range`
/// pieces; the range that wraps past the largest token is split in two, so that together
/// the ranges cover every token exactly once. No tokens: one unrestricted range.
pub(crate) fn token_ranges(tokens: &[i64], per_range: usize) -> Vec<TokenRange> {
    let mut tokens = tokens.to_vec();
    tokens.sort_unstable();
    tokens.dedup();
    let (Some(&first), Some(&last)) = (tokens.first(), tokens.last()) else {
        return vec![TokenRange { start: None, end: None }];
    };
    let mut ranges = vec![TokenRange { start: None, end: Some(first) }];
    for pair in tokens.windows(2) {
        let (start, end) = (pair[0], pair[1]);
        let pieces = per_range.max(1) as i128;
        let width = (i128::from(end) - i128::from(start)) / pieces;
        let mut from = start;
        for piece in 1..pieces {
            let to = (i128::from(start) + width * piece) as i64;
            if to > from && to < end {
                ranges.push(TokenRange { start: Some(from), end: Some(to) });
                from = to;
            }
        }
        ranges.push(TokenRange { start: Some(from), end: Some(end) });
    }
    ranges.push(TokenRange { start: Some(last), end: None });
    ranges
}

#[cfg(test)]
mod tests {
    use datafusion::prelude::{col, lit};

    use super::*;

    fn keys() -> Keys {
        let t = |n| ColumnType::Native(n);
        Keys {
            partition: vec!["id".into()],
            clustering: vec!["day".into(), "seq".into()],
            types: vec![
                ("id".into(), t(NativeType::Int)),
                ("day".into(), t(NativeType::Text)),
                ("seq".into(), t(NativeType::BigInt)),
                ("name".into(), t(NativeType::Text)),
                ("score".into(), t(NativeType::Double)),
            ],
        }
    }

    fn cql(filters: &[Expr], allow_filtering: bool) -> (Vec<bool>, String) {
        let refs: Vec<&Expr> = filters.iter().collect();
        let keys = keys();
        let plan = plan(&refs, &keys, allow_filtering);
        let range = TokenRange { start: Some(-5), end: Some(7) };
        (plan.pushed.clone(), select("ks", "t", &["id".into(), "name".into()], &keys, &plan, range, None).cql)
    }

    #[test]
    fn partition_equality_fixes_the_partition_and_opens_the_clustering_key() {
        let (pushed, cql) = cql(
            &[col("id").eq(lit(3)), col("seq").gt(lit(1_i64)), col("day").eq(lit("mon")), col("name").eq(lit("x"))],
            false,
        );
        assert_eq!(pushed, [true, true, true, false]);
        assert_eq!(cql, r#"SELECT "id", "name" FROM "ks"."t" WHERE "id" = ? AND "day" = ? AND "seq" > ?"#);
    }

    #[test]
    fn clustering_ranges_need_the_prefix_and_the_partition() {
        let (pushed, _) = cql(&[col("id").eq(lit(3)), col("seq").gt(lit(1_i64))], false);
        assert_eq!(pushed, [true, false], "seq is not pushed without day");
        let (pushed, cql) = cql(&[col("day").eq(lit("mon"))], false);
        assert_eq!(pushed, [false], "no partition: a clustering restriction would need filtering");
        assert!(cql.contains(r#"token("id") > ? AND token("id") <= ?"#), "{cql}");
    }

    #[test]
    fn in_lists_and_between() {
        let (pushed, cql) =
            cql(&[col("id").in_list(vec![lit(1), lit(2)], false), col("day").between(lit("a"), lit("c"))], false);
        assert_eq!(pushed, [true, true]);
        assert!(cql.ends_with(r#"WHERE "id" IN ? AND "day" >= ? AND "day" <= ?"#), "{cql}");
    }

    #[test]
    fn ors_of_equalities_on_one_column_are_in_lists() {
        let (pushed, sent) = cql(&[col("id").eq(lit(1)).or(col("id").eq(lit(2))).or(col("id").eq(lit(3)))], false);
        assert_eq!(pushed, [true]);
        assert!(sent.ends_with(r#"WHERE "id" IN ?"#), "{sent}");
        let (pushed, _) = cql(&[col("id").eq(lit(1)).or(col("name").eq(lit("x")))], false);
        assert_eq!(pushed, [false]);
    }

    #[test]
    fn what_cql_would_evaluate_differently_stays_with_datafusion() {
        let (pushed, _) = cql(
            &[
                col("id").eq(lit(3_000_000_000_i64)),
                col("id").eq(lit(3.0)),
                col("id").not_eq(lit(1)),
                col("score").gt(lit(1.0)),
            ],
            true,
        );
        assert_eq!(pushed, [false, false, false, false]);
    }

    #[test]
    fn filtering_only_when_allowed() {
        let (pushed, cql) = cql(&[col("name").eq(lit("x"))], true);
        assert_eq!(pushed, [true]);
        assert!(cql.ends_with(r#""name" = ? ALLOW FILTERING"#), "{cql}");
    }

    #[test]
    fn token_ranges_cover_the_ring_once_including_the_wrap() {
        let ranges = token_ranges(&[10, -20, 30], 1);
        let expected = [(None, Some(-20)), (Some(-20), Some(10)), (Some(10), Some(30)), (Some(30), None)];
        assert_eq!(ranges.iter().map(|r| (r.start, r.end)).collect::<Vec<_>>(), expected);
        let split = token_ranges(&[0, 100], 4);
        let inner: Vec<_> = split.iter().map(|r| (r.start, r.end)).collect();
        assert_eq!(
            inner,
            [
                (None, Some(0)),
                (Some(0), Some(25)),
                (Some(25), Some(50)),
                (Some(50), Some(75)),
                (Some(75), Some(100)),
                (Some(100), None)
            ]
        );
        assert_eq!(token_ranges(&[], 4), [TokenRange { start: None, end: None }]);
    }

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote(r#"we"ird"#), r#""we""ird""#);
    }
}
