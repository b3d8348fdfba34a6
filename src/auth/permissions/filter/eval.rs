//! A parsed filter evaluated on one row with the SQL Directus writes for it
//! (`api/src/database/run-ast/lib/apply-query/filter/operator.ts`): SQL's three-valued logic,
//! so every comparison with a NULL column is false, negated ones included; only `_null`,
//! `_nnull`, `_empty`, `_nempty` and `_eq`/`_neq` with `null` (IS [NOT] NULL) test for NULL.
//!
//! Values compare by the row's value, as the column's type would: a boolean column reads
//! `true`/`false`/`1`/`0`, a number column JavaScript's `Number(…)` of the value (as
//! Directus's `castToNumber`), a date or timestamp column (an ISO string in the row) an
//! instant, a uuid column a uuid (in any case), any other string column text. A value the
//! column cannot hold (Directus: an error from the database or `Invalid numeric value`)
//! matches nothing. Strings compare by code point (SQLite's BINARY collation; PostgreSQL
//! orders by the database's collation).

use std::cmp::Ordering;

use serde_json::Value;
use uuid::Uuid;

use super::parse::{Arg, Cond, Node, Op};
use super::value::{js_number_string, parse_sql_date, row_date, Lit};
use crate::store::Item;

/// None when the node writes no SQL (it leaves its group, as knex leaves out an empty
/// `where` group): in an AND it does not restrict, in an OR it does not match.
pub(super) fn eval(node: &Node, row: &Item) -> Option<bool> {
    match node {
        Node::And(ns) => {
            let mut any = false;
            for n in ns {
                match eval(n, row) {
                    Some(false) => return Some(false),
                    Some(true) => any = true,
                    None => {}
                }
            }
            any.then_some(true)
        }
        Node::Or(ns) => {
            let mut any = false;
            for n in ns {
                match eval(n, row) {
                    Some(true) => return Some(true),
                    Some(false) => any = true,
                    None => {}
                }
            }
            any.then_some(false)
        }
        Node::SkippedOr(_) | Node::Noop(_) => None,
        Node::Cond(c) if c.skipped() => skipped_between(c, row),
        Node::Cond(c) => Some(cond(c, row)),
    }
}

/// `_between` with other than two values writes no SQL, but on a number column Directus casts
/// the values first and refuses one that is not a number (`Invalid numeric value`): no match.
fn skipped_between(c: &Cond, row: &Item) -> Option<bool> {
    let numeric = matches!(column(row, &c.path), Column::Value(Value::Number(_)));
    let nan = matches!(&c.arg, Arg::List(l) if l.iter().any(|l| l.to_number().is_nan()));
    (numeric && nan).then_some(false)
}

/// The column a path reads. Through a relation, `row[field]` is the related row (an object)
/// or null (no related row: every column of it is NULL, as Directus's LEFT JOIN reads it).
enum Column<'a> {
    Value(&'a Value),
    Null,
    /// Not in the row, or through a relation that is not expanded: the condition is false.
    Unknown,
}

fn column<'a>(row: &'a Item, path: &[String]) -> Column<'a> {
    let Some((last, through)) = path.split_last() else {
        return Column::Unknown;
    };
    let mut current = row;
    for field in through {
        match current.get(field) {
            Some(Value::Object(related)) => current = related,
            Some(Value::Null) => return Column::Null,
            _ => return Column::Unknown,
        }
    }
    match current.get(last) {
        Some(Value::Null) => Column::Null,
        // A relation the caller expanded for another condition: the column holds its key.
        Some(Value::Object(related)) if related.contains_key("id") => match &related["id"] {
            Value::Null => Column::Null,
            id => Column::Value(id),
        },
        Some(v) => Column::Value(v),
        None => Column::Unknown,
    }
}

fn cond(c: &Cond, row: &Item) -> bool {
    let value = match column(row, &c.path) {
        Column::Unknown => return false,
        Column::Null => None,
        Column::Value(v) => Some(v),
    };
    let one = match &c.arg {
        Arg::One(l) => Some(l),
        Arg::List(_) => None,
    };
    let not_false = one != Some(&Lit::Bool(false));
    // `applyOperator`'s first branches: IS NULL, IS NOT NULL, and the empty tests, where
    // `false` turns the operator around.
    let is_null = match c.op {
        Op::Null => Some(not_false),
        Op::Nnull => Some(!not_false),
        Op::Eq if one == Some(&Lit::Null) => Some(true),
        Op::Neq if one == Some(&Lit::Null) => Some(false),
        _ => None,
    };
    if let Some(want_null) = is_null {
        return value.is_none() == want_null;
    }
    let empty = |v: Option<&Value>| v.is_none_or(|v| v.as_str() == Some(""));
    match c.op {
        Op::Empty => return empty(value) == not_false,
        Op::Nempty => return empty(value) != not_false,
        // Only for validation; Directus refuses it in a query (no field type has it).
        Op::Submitted => return false,
        _ => {}
    }
    if let Arg::List(list) = &c.arg {
        // knex: `whereNotIn(col, [])` is `1 = 1`, true even for NULL.
        if c.op == Op::Nin && list.is_empty() {
            return true;
        }
    }
    let Some(value) = value else {
        return false;
    };
    match (&c.arg, c.op) {
        (Arg::One(l), op) if op.likes() => like(value, l, op),
        (Arg::One(l), Op::Ieq | Op::Nieq) => match (value, l) {
            (Value::String(s), Lit::Str(x)) => {
                (s.to_lowercase() == x.to_lowercase()) == (c.op == Op::Ieq)
            }
            _ => false,
        },
        (Arg::One(l), op) => {
            let Some(o) = compare(value, l) else {
                return false;
            };
            match op {
                Op::Eq => o.is_eq(),
                Op::Neq => o.is_ne(),
                Op::Gt => o.is_gt(),
                Op::Gte => o.is_ge(),
                Op::Lt => o.is_lt(),
                Op::Lte => o.is_le(),
                _ => false,
            }
        }
        (Arg::List(list), Op::In) => list
            .iter()
            .any(|l| compare(value, l) == Some(Ordering::Equal)),
        // NOT IN with a NULL (or a value the column cannot hold) in the list is never true.
        (Arg::List(list), Op::Nin) => list
            .iter()
            .all(|l| compare(value, l).is_some_and(Ordering::is_ne)),
        (Arg::List(list), Op::Between | Op::Nbetween) => {
            let (Some(low), Some(high)) = (
                list.first().and_then(|l| compare(value, l)),
                list.get(1).and_then(|l| compare(value, l)),
            ) else {
                return false;
            };
            let inside = low.is_ge() && high.is_le();
            inside == (c.op == Op::Between)
        }
        (Arg::List(_), _) => false,
    }
}

/// `LIKE '%value%'` and friends, and `LOWER(col) LIKE` for the `_i…` ones.
///
/// Case: PostgreSQL's LIKE is case-sensitive, and gatehouse follows it; Directus on SQLite
/// answers `_contains` case-insensitively for ASCII letters (SQLite's LIKE). The `_i…`
/// operators lower-case both sides (Unicode; SQLite's LOWER only knows ASCII).
///
/// Wildcards: Directus puts the value into the pattern as it is, so a `%` or `_` in it is a
/// wildcard there (`_contains: "a_b"` matches `axb`; on PostgreSQL a backslash escapes).
/// gatehouse reads the value literally, which is what the caller means; it matches fewer
/// rows than Directus for the positive operators and more for the negated ones.
fn like(value: &Value, needle: &Lit, op: Op) -> bool {
    // Only text columns: PostgreSQL has no LIKE on numbers, booleans, uuids or timestamps
    // (Directus on SQLite matches the pattern against epoch milliseconds there).
    let Value::String(s) = value else {
        return false;
    };
    if row_date(s).is_some() || uuid(s).is_some() {
        return false;
    }
    // The value goes through a template string: `${5}` is "5", `${null}` is "null".
    let needle = match needle {
        Lit::Str(x) => x.clone(),
        Lit::Num(n) => js_number_string(*n),
        Lit::Bool(b) => b.to_string(),
        Lit::Null => "null".into(),
        Lit::Date(_) => return false,
    };
    let insensitive = matches!(
        op,
        Op::Icontains
            | Op::Nicontains
            | Op::IstartsWith
            | Op::NistartsWith
            | Op::IendsWith
            | Op::NiendsWith
    );
    let (s, needle) = if insensitive {
        (s.to_lowercase(), needle.to_lowercase())
    } else {
        (s.clone(), needle)
    };
    match op {
        Op::Contains | Op::Icontains => s.contains(&needle),
        Op::Ncontains | Op::Nicontains => !s.contains(&needle),
        Op::StartsWith | Op::IstartsWith => s.starts_with(&needle),
        Op::NstartsWith | Op::NistartsWith => !s.starts_with(&needle),
        Op::EndsWith | Op::IendsWith => s.ends_with(&needle),
        Op::NendsWith | Op::NiendsWith => !s.ends_with(&needle),
        _ => false,
    }
}

/// The row's value against a filter value, as the column's type compares them. None: the
/// column cannot hold the value (or it is NULL), so no comparison is true.
fn compare(value: &Value, l: &Lit) -> Option<Ordering> {
    match value {
        Value::Bool(b) => {
            let other = match l {
                Lit::Bool(x) => *x,
                Lit::Num(n) if *n == 1.0 => true,
                Lit::Num(n) if *n == 0.0 => false,
                Lit::Str(s) if s == "1" => true,
                Lit::Str(s) if s == "0" => false,
                _ => return None,
            };
            Some(b.cmp(&other))
        }
        Value::Number(n) => {
            let other = l.to_number();
            n.as_f64()?.partial_cmp(&other)
        }
        Value::String(s) => {
            if let Some(at) = row_date(s) {
                let other = match l {
                    Lit::Date(d) => *d,
                    Lit::Str(x) => parse_sql_date(x)?,
                    _ => return None,
                };
                return Some(at.cmp(&other));
            }
            // A uuid column: PostgreSQL compares uuids (in any case) and refuses a value that
            // is not one (SQLite compares the text as it is stored).
            if let Some(u) = uuid(s) {
                return match l {
                    Lit::Str(x) => Some(u.cmp(&uuid(x)?)),
                    _ => None,
                };
            }
            let other = match l {
                Lit::Str(x) => x.clone(),
                Lit::Num(n) => js_number_string(*n),
                Lit::Bool(b) => b.to_string(),
                Lit::Null | Lit::Date(_) => return None,
            };
            Some(s.as_str().cmp(other.as_str()))
        }
        // JSON columns: Directus allows only `_null`/`_nnull` (and `_json`) on them.
        Value::Array(_) | Value::Object(_) | Value::Null => None,
    }
}

/// A hyphenated uuid, as uuid columns hold them.
fn uuid(s: &str) -> Option<Uuid> {
    (s.len() == 36).then(|| Uuid::parse_str(s).ok()).flatten()
}
