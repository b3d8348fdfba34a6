//! Directus's filter language, evaluated in memory: the row rules of permissions
//! (`permissions`), their payload rules (`validation`) and the `filter` query parameter.
//! Directus turns a filter into SQL (`api/src/database/run-ast/lib/apply-query/filter/operator.ts`)
//! and a validation into Joi (`packages/utils/shared/generate-joi.ts`); gatehouse evaluates
//! both on the row or payload it holds, with the same answers.

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
    _todo: (),
}

impl Rule {
    /// The empty filter: matches every row.
    pub fn all() -> Rule {
        Rule { _todo: () }
    }

    /// Parses a Directus filter object (`{}` and `null` match every row), resolving the
    /// dynamic variables from `vars`.
    pub fn parse(_filter: &Value, _vars: &Vars) -> Result<Rule, Unsupported> {
        Err(Unsupported("not built yet".into()))
    }

    /// Whether this rule is the empty filter.
    pub fn is_all(&self) -> bool {
        false
    }

    /// Whether a row matches, with the database's semantics (a comparison with a NULL column
    /// is false). A condition through a relation (`{"role": {"name": {...}}}`) reads
    /// `row["role"]` as an object; when it is not one (not expanded), the condition is false.
    pub fn matches(&self, _row: &Item) -> bool {
        false
    }

    /// Every field path the filter reads (`email`, `role.name`), for permission checks.
    pub fn paths(&self) -> BTreeSet<String> {
        BTreeSet::new()
    }

    /// Checks a payload against a validation rule as Directus's `validatePayload` does.
    pub fn validate(&self, _payload: &Item) -> Vec<Failure> {
        vec![]
    }
}

/// The `$CURRENT_USER.<path>` paths a filter uses, so the caller reads only what it needs.
pub fn user_paths(_filter: &Value) -> BTreeSet<String> {
    BTreeSet::new()
}

/// The `filter` query parameter, in either form: JSON (`filter={"email":{"_eq":"a"}}`, what
/// @directus/sdk sends) or brackets (`filter[email][_eq]=a`, `filter[_or][0][id][_eq]=b`),
/// as Directus's `qs` parsing builds it. None when the query has no filter.
pub fn from_query(_pairs: &[(String, String)]) -> Result<Option<Value>, Unsupported> {
    Ok(None)
}
