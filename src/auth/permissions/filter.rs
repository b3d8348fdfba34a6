//! Directus's filter language, evaluated in memory: the row rules of permissions
//! (`permissions`), their payload rules (`validation`) and the `filter` query parameter.
//! Directus turns a filter into SQL (`api/src/database/run-ast/lib/apply-query/filter/operator.ts`)
//! and a validation into Joi (`packages/utils/shared/generate-joi.ts`); gatehouse evaluates
//! both on the row or payload it holds, with the same answers.
//!
//! `parse` resolves the dynamic variables and checks the shape once (`parse.rs`); `matches`
//! evaluates the tree on a row with the database's semantics (`eval.rs`); `validate` checks
//! a payload as Joi does (`joi.rs`); `from_query` reads the query parameter (`query.rs`).
//! What gatehouse cannot evaluate is `Unsupported`, never a rule that allows.

mod eval;
mod joi;
mod parse;
mod query;
mod value;

#[cfg(test)]
mod tests;

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

use crate::store::Item;

/// What the dynamic variables stand for (Directus: `packages/utils/shared/parse-filter.ts`).
#[derive(Debug, Clone, Default)]
pub struct Vars {
    /// The current user's row: `$CURRENT_USER` is its `id`, `$CURRENT_USER.<field>` one of
    /// its fields; a relation (`role`) may be expanded to an object for
    /// `$CURRENT_USER.role.<field>`. None for an anonymous caller.
    pub user: Option<Item>,
    /// `$CURRENT_ROLE`.
    pub role: Option<Uuid>,
    /// `$CURRENT_ROLES`: the role and its parents.
    pub roles: Vec<Uuid>,
    /// `$CURRENT_POLICIES`.
    pub policies: Vec<Uuid>,
    /// `$NOW`.
    pub now: DateTime<Utc>,
}

/// A filter gatehouse cannot evaluate (an unknown operator, a malformed shape). Callers deny.
/// The text is a reason in Directus's words where Directus has one (`"_in" has to be an
/// array of values`), for `Invalid query. <reason>.`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsupported(pub String);

/// One failed validation rule, as Directus's `FAILED_VALIDATION` reports it
/// (`packages/validation/src/utils/joi-validation-error-item-to-error-extensions.ts`).
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub field: String,
    /// Joi's rule name as Directus reports it: `eq`, `neq`, `in`, `contains`, `gt`, ...
    pub kind: String,
    pub valid: Option<Value>,
    pub invalid: Option<Value>,
    pub substring: Option<String>,
}

/// A parsed filter with its dynamic values resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// None: the empty filter.
    root: Option<parse::Node>,
}

impl Rule {
    /// The empty filter: matches every row.
    pub fn all() -> Rule {
        Rule { root: None }
    }

    /// Parses a Directus filter object (`{}` and `null` match every row), resolving the
    /// dynamic variables from `vars`:
    /// - `$CURRENT_USER`: the user's id; null for an anonymous caller, as every variable
    ///   of the user is.
    /// - `$CURRENT_USER.<path>`: a field of `vars.user`, through expanded relations. The
    ///   caller puts every path of `user_paths` in it; one it lacks is refused, as Directus
    ///   refuses a field the user collection does not have. A null field is `null` (so
    ///   `_eq` is IS NULL, as in Directus).
    /// - `$CURRENT_ROLE`; `$CURRENT_ROLES` and `$CURRENT_POLICIES`, lists for `_in`/`_nin`
    ///   (with `_eq` they are refused, as Directus's query validation refuses a list there).
    /// - `$NOW` and `$NOW(<adjustment>)` (`-1 day`, `+2 weeks`, `90 min`, …).
    ///
    /// Refused: operators gatehouse does not evaluate (`_regex`, `_some`, `_none`, `_json`,
    /// `_intersects…`, any other), functions (`year(date)`), dotted keys, the fields of
    /// `$CURRENT_ROLE(S)`/`$CURRENT_POLICIES`, a relation of the user that is not expanded,
    /// and anything deeper than 10 levels or with more than 1000 conditions.
    pub fn parse(filter: &Value, vars: &Vars) -> Result<Rule, Unsupported> {
        parse::parse(filter, vars).map(|root| Rule { root })
    }

    /// Whether this rule is the empty filter (or only holds conditions Directus writes no
    /// SQL for, such as `{"email": {}}`).
    pub fn is_all(&self) -> bool {
        self.root.as_ref().is_none_or(parse::Node::is_dropped)
    }

    /// Whether a row matches, with the database's semantics (a comparison with a NULL column
    /// is false). A condition through a relation (`{"role": {"name": {...}}}`) reads
    /// `row["role"]` as an object; when it is not one (not expanded), the condition is false.
    /// A null relation reads as a related row whose columns are all NULL (Directus's LEFT
    /// JOIN), and an expanded relation where the path ends (`{"role": {"_eq": …}}`) as its
    /// `id`. A path the row does not have makes its condition false: callers put every path
    /// of `paths()` in the row.
    pub fn matches(&self, row: &Item) -> bool {
        self.root
            .as_ref()
            .is_none_or(|n| eval::eval(n, row).unwrap_or(true))
    }

    /// Every field path the filter reads (`email`, `role.name`), for permission checks.
    pub fn paths(&self) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        if let Some(n) = &self.root {
            n.visit(&mut |path, _| {
                out.insert(path.join("."));
            });
        }
        out
    }

    /// The fields of the collection itself the filter reads (`role` for `role.name`).
    pub fn fields_at_root(&self) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        if let Some(n) = &self.root {
            n.visit(&mut |path, _| {
                if let Some(first) = path.first() {
                    out.insert(first.clone());
                }
            });
        }
        out
    }

    /// Every (path, operator) the filter uses (`("email", "_eq")`), so the caller can refuse
    /// an operator the field's type does not have, as Directus does (`check_operator`).
    pub fn operators(&self) -> BTreeSet<(String, &'static str)> {
        let mut out = BTreeSet::new();
        if let Some(n) = &self.root {
            n.visit(&mut |path, op| {
                if let Some(op) = op {
                    out.insert((path.join("."), op.name()));
                }
            });
        }
        out
    }

    /// Checks a payload against a validation rule as Directus's `validatePayload` does.
    pub fn validate(&self, payload: &Item) -> Vec<Failure> {
        self.root
            .as_ref()
            .map_or_else(Vec::new, |n| joi::validate(n, payload))
    }
}

/// The operators Directus allows on a field of this type (`getFilterOperatorsForType`,
/// `packages/utils/shared/get-filter-operators-for-type.ts`), without their `_`. Types as
/// Directus names them: `string`, `text`, `uuid`, `boolean`, `integer`, `timestamp`, `json`,
/// `hash`, …; an unknown one gets Directus's default list.
pub fn allowed_operators(field_type: &str) -> &'static [&'static str] {
    const TEXT: &[&str] = &[
        "contains",
        "ncontains",
        "icontains",
        "starts_with",
        "nstarts_with",
        "istarts_with",
        "nistarts_with",
        "ends_with",
        "nends_with",
        "iends_with",
        "niends_with",
        "eq",
        "neq",
        "empty",
        "nempty",
        "null",
        "nnull",
        "in",
        "nin",
    ];
    const HASH: &[&str] = &["empty", "nempty", "null", "nnull"];
    const UUID: &[&str] = &["eq", "neq", "null", "nnull", "in", "nin"];
    const JSON: &[&str] = &["null", "nnull", "json"];
    const BOOLEAN: &[&str] = &["eq", "neq", "null", "nnull"];
    const ORDERED: &[&str] = &[
        "eq", "neq", "lt", "lte", "gt", "gte", "between", "nbetween", "null", "nnull", "in", "nin",
    ];
    const GEOMETRY: &[&str] = &[
        "eq",
        "neq",
        "null",
        "nnull",
        "intersects",
        "nintersects",
        "intersects_bbox",
        "nintersects_bbox",
    ];
    const DEFAULT: &[&str] = &[
        "contains",
        "ncontains",
        "eq",
        "neq",
        "lt",
        "lte",
        "gt",
        "gte",
        "between",
        "nbetween",
        "empty",
        "nempty",
        "null",
        "nnull",
        "in",
        "nin",
    ];
    match field_type {
        "binary" | "string" | "text" | "csv" => TEXT,
        "hash" => HASH,
        "uuid" => UUID,
        "json" => JSON,
        "boolean" => BOOLEAN,
        "bigInteger" | "integer" | "decimal" | "float" | "dateTime" | "date" | "time" => ORDERED,
        "geometry" => GEOMETRY,
        _ => DEFAULT,
    }
}

/// Directus's `validateOperator` (`api/src/database/run-ast/lib/apply-query/filter/
/// validate-operator.ts`): an operator the field's type does not have, or any but the
/// null/empty tests on a concealed field, is refused with Directus's reason.
pub fn check_operator(
    field_type: &str,
    concealed: bool,
    operator: &str,
) -> Result<(), Unsupported> {
    let bare = operator.strip_prefix('_').unwrap_or(operator);
    if !allowed_operators(field_type).contains(&bare) {
        return Err(Unsupported(format!(
            "\"{field_type}\" field type does not contain the \"_{bare}\" filter operator"
        )));
    }
    if concealed && !allowed_operators("hash").contains(&bare) {
        return Err(Unsupported(format!(
            "Field with \"conceal\" special does not allow the \"_{bare}\" filter operator"
        )));
    }
    Ok(())
}

/// The `$CURRENT_USER.<path>` paths a filter uses, so the caller reads only what it needs
/// (Directus: `api/src/permissions/utils/extract-required-dynamic-variable-context.ts`, every
/// string value anywhere in the filter).
pub fn user_paths(filter: &Value) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut stack = vec![filter];
    while let Some(v) = stack.pop() {
        match v {
            Value::Object(m) => stack.extend(m.values()),
            Value::Array(a) => stack.extend(a.iter()),
            Value::String(s) => {
                if let Some(path) = s.strip_prefix("$CURRENT_USER.") {
                    out.insert(path.to_string());
                }
            }
            _ => {}
        }
    }
    out
}

/// The `filter` query parameter, in either form: JSON (`filter={"email":{"_eq":"a"}}`, what
/// @directus/sdk sends) or brackets (`filter[email][_eq]=a`, `filter[_or][0][id][_eq]=b`),
/// as Directus's `qs` parsing builds it. None when the query has no filter. The checks of
/// Directus's query validation run here (`"_in" has to be an array of values`, no empty
/// string for `_eq`, …); both forms together, a repeated JSON form, a malformed bracket key,
/// more than 10 levels or 1000 conditions are refused.
pub fn from_query(pairs: &[(String, String)]) -> Result<Option<Value>, Unsupported> {
    query::from_query(pairs)
}
