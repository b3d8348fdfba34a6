//! Collection permissions (`directus_permissions`) as Directus evaluates them for the
//! collections gatehouse serves: which rows and fields of `directus_users` and
//! `directus_roles` a caller without admin access may read, and what it may update.
//! Directus: `api/src/permissions/**`. Admins bypass all of it, as in Directus.
//!
//! The caller's policies are Directus's `fetchPolicies` (role tree, the user's own policies,
//! the public policy when the caller has no role; `ip_access` applied); their permission rows
//! come through the per-node cache. Each row's `permissions` filter is a *case*: a row is
//! visible when one case matches it, and a field's value shows only when a case that covers
//! the field matches the row (`api/src/permissions/modules/process-ast/lib/inject-cases.ts`).

pub mod filter;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Mutex, OnceLock};

use serde_json::{json, Map, Value};
use uuid::Uuid;

use self::filter::{Rule, Vars};
use super::access::ip_allowed;
use super::user::Policy;
use super::{Accountability, Auth, Error};
use crate::error::ApiError;
use crate::store::{Item, ROLES};

pub const USERS_COLLECTION: &str = "directus_users";
pub const ROLES_COLLECTION: &str = "directus_roles";
pub const ACCESS_COLLECTION: &str = "directus_access";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Read,
    Update,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Read => "read",
            Action::Update => "update",
        }
    }
}

/// One permission row as it applies to this request, its dynamic values resolved.
#[derive(Debug, Clone)]
pub struct Grant {
    /// The row's id; None for Directus's minimal app permissions.
    pub id: Option<i64>,
    /// The `permissions` filter as stored, to merge grants with the same rule.
    raw: Value,
    /// The row rule; None when gatehouse cannot evaluate it: then the grant reaches no row.
    rule: Option<Rule>,
    /// A non-empty `permissions` filter (Directus's `hasItemPermissions`): its fields are
    /// visible only on rows the rule matches.
    item_rule: bool,
    /// The fields it allows; `*` is every field.
    pub fields: BTreeSet<String>,
    /// The payload rule; Err when it cannot be evaluated (every write it covers is refused).
    validation: Option<Result<Rule, String>>,
    /// Values a write starts from (Directus's `presets`).
    presets: Map<String, Value>,
}

impl Grant {
    /// Whether its row rule reads through a relation (`role.name`): rows are then checked
    /// with the related row in place of its key.
    pub fn reads_relation(&self, _c: &crate::store::Collection) -> bool {
        self.rule
            .as_ref()
            .is_some_and(|r| r.paths().iter().any(|p| p.contains('.')))
    }
}

/// A permission row's columns, before its filters are parsed.
struct RawGrant {
    id: Option<i64>,
    rule: Value,
    validation: Option<Value>,
    presets: Option<Value>,
    fields: BTreeSet<String>,
}

/// The grants of one collection and action for a caller, in policy order.
#[derive(Debug, Clone)]
pub struct Grants {
    pub collection: &'static str,
    pub list: Vec<Grant>,
}

/// Directus's `createCollectionForbiddenError`
/// (`api/src/permissions/modules/process-ast/utils/validate-path/create-error.ts`).
pub fn collection_forbidden(path: &str, collection: &str) -> ApiError {
    ApiError::ForbiddenBecause(format!(
        "You don't have permission to access collection \"{collection}\" or it does not exist. Queried in {}.",
        queried_in(path)
    ))
}

/// Directus's `createFieldsForbiddenError`.
pub fn fields_forbidden(path: &str, collection: &str, fields: &[String]) -> ApiError {
    let list = fields
        .iter()
        .map(|f| format!("\"{f}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let at = queried_in(path);
    ApiError::ForbiddenBecause(if fields.len() == 1 {
        format!("You don't have permission to access field {list} in collection \"{collection}\" or it does not exist. Queried in {at}.")
    } else {
        format!("You don't have permission to access fields {list} in collection \"{collection}\" or they do not exist. Queried in {at}.")
    })
}

fn queried_in(path: &str) -> String {
    if path.is_empty() {
        "root".into()
    } else {
        format!("\"{path}\"")
    }
}

/// Directus's `validateAccess` refusal (`api/src/permissions/modules/validate-access/validate-access.ts`).
pub fn action_forbidden(action: Action, collection: &str, fields: &[String]) -> ApiError {
    let action = action.as_str();
    if fields.is_empty() {
        ApiError::ForbiddenBecause(format!(
            "You don't have permission to perform \"{action}\" for collection \"{collection}\" or it does not exist."
        ))
    } else {
        let list = fields
            .iter()
            .map(|f| format!("\"{f}\""))
            .collect::<Vec<_>>()
            .join(", ");
        ApiError::ForbiddenBecause(format!(
            "You don't have permissions to perform \"{action}\" for the field(s) {list} in collection \"{collection}\" or it does not exist."
        ))
    }
}

/// What the rows of a read may show: Directus's cases for the requested fields
/// (`api/src/permissions/modules/process-ast/lib/get-cases.ts`).
pub struct Cases<'a> {
    rules: Vec<Option<&'a Rule>>,
    by_field: HashMap<String, Vec<usize>>,
    /// Fields of grants without a row rule: visible on every visible row.
    unconditional: BTreeSet<String>,
}

impl Cases<'_> {
    /// Which cases match the row, each evaluated once (a row's fields all ask the same cases).
    pub fn matched(&self, row: &Item) -> Vec<bool> {
        self.rules
            .iter()
            .map(|r| r.is_some_and(|r| r.matches(row)))
            .collect()
    }

    /// Whether one case matches the row.
    pub fn row_visible(&self, row: &Item) -> bool {
        self.rules.iter().any(|r| r.is_some_and(|r| r.matches(row)))
    }

    /// Whether the field's value shows on this row (otherwise it reads as null).
    pub fn field_visible(&self, row: &Item, field: &str) -> bool {
        self.shows(&self.matched(row), field)
    }

    /// `field_visible` from the row's `matched` cases.
    pub fn shows(&self, matched: &[bool], field: &str) -> bool {
        if self.unconditional.contains("*") || self.unconditional.contains(field) {
            return true;
        }
        [field, "*"]
            .iter()
            .filter_map(|f| self.by_field.get(*f))
            .flatten()
            .any(|i| matched.get(*i).copied().unwrap_or(false))
    }
}

impl Grants {
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Whether a grant allows every field.
    fn allows_all(&self) -> bool {
        self.list.iter().any(|g| g.fields.contains("*"))
    }

    fn allows(&self, field: &str) -> bool {
        self.allows_all() || self.list.iter().any(|g| g.fields.contains(field))
    }

    /// Directus's `validatePathPermissions`: some grant exists, and each field is allowed.
    pub fn check_fields(&self, path: &str, fields: &[String]) -> Result<(), ApiError> {
        if self.is_empty() {
            return Err(collection_forbidden(path, self.collection));
        }
        let bad: Vec<String> = fields.iter().filter(|f| !self.allows(f)).cloned().collect();
        if bad.is_empty() {
            Ok(())
        } else {
            Err(fields_forbidden(path, self.collection, &bad))
        }
    }

    /// The fields `*` stands for: every column when a grant allows `*`, else the allowed
    /// ones, in the collection's order (Directus's `convertWildcards`).
    pub fn expand_star(&self, columns: &[&str]) -> Vec<String> {
        columns
            .iter()
            .filter(|c| self.allows(c))
            .map(|c| c.to_string())
            .collect()
    }

    /// The cases for a read of `requested` fields: grants with the same rule are merged,
    /// and a grant none of whose fields is requested adds no case.
    pub fn cases(&self, requested: &[String]) -> Cases<'_> {
        let mut merged: Vec<(&Grant, BTreeSet<String>)> = Vec::new();
        for g in &self.list {
            match merged.iter_mut().find(|(m, _)| m.raw == g.raw) {
                Some((_, fields)) => fields.extend(g.fields.iter().cloned()),
                None => merged.push((g, g.fields.clone())),
            }
        }
        let mut cases = Cases {
            rules: Vec::new(),
            by_field: HashMap::new(),
            unconditional: BTreeSet::new(),
        };
        for g in self
            .list
            .iter()
            .filter(|g| !g.item_rule && g.rule.is_some())
        {
            cases.unconditional.extend(g.fields.iter().cloned());
        }
        for (g, fields) in merged {
            let relevant = requested.is_empty()
                || fields.contains("*")
                || fields.iter().any(|f| requested.contains(f));
            if !relevant {
                continue;
            }
            let i = cases.rules.len();
            cases.rules.push(g.rule.as_ref());
            for f in fields {
                cases.by_field.entry(f).or_default().push(i);
            }
        }
        cases
    }

    /// The presets of every grant, earlier ones first, then the payload over them
    /// (Directus: `assign({}, ...presets, payload)`).
    pub fn with_presets(&self, payload: Map<String, Value>) -> Map<String, Value> {
        let mut out = Map::new();
        for g in &self.list {
            for (k, v) in &g.presets {
                out.insert(k.clone(), v.clone());
            }
        }
        out.extend(payload);
        out
    }

    /// Every grant's `validation`, all of which the payload must pass.
    pub fn validate(&self, payload: &Item) -> Result<(), ApiError> {
        let mut failures = Vec::new();
        for g in &self.list {
            match &g.validation {
                None => {}
                Some(Err(reason)) => {
                    log_once(g.id, reason);
                    return Err(ApiError::Forbidden);
                }
                Some(Ok(rule)) => failures.extend(rule.validate(payload)),
            }
        }
        if failures.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Invalid(
                failures
                    .into_iter()
                    .map(|f| crate::error::Invalid {
                        field: f.field,
                        path: vec![],
                        kind: f.kind,
                        valid: f.valid,
                        invalid: f.invalid,
                        substring: f.substring,
                    })
                    .collect(),
            ))
        }
    }
}

/// Logs a permission gatehouse cannot evaluate, once per row and reason (bounded).
fn log_once(id: Option<i64>, reason: &str) {
    type Seen = Mutex<HashSet<(Option<i64>, String)>>;
    static SEEN: OnceLock<Seen> = OnceLock::new();
    let seen = SEEN.get_or_init(|| Mutex::new(HashSet::new()));
    let mut seen = seen.lock().unwrap_or_else(|p| p.into_inner());
    if seen.len() < 1024 && seen.insert((id, reason.to_string())) {
        tracing::warn!(
            permission = ?id,
            reason,
            "a permission filter gatehouse cannot evaluate denies what it covers"
        );
    }
}

/// A permission's `fields` column: a comma-separated list (or, from an API payload, an array).
pub fn field_list(v: Option<&Value>) -> BTreeSet<String> {
    match v {
        Some(Value::String(s)) => s
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        _ => BTreeSet::new(),
    }
}

/// A JSON column as an object: SQLite hands JSON back as text.
fn json_column(v: Option<&Value>) -> Option<Value> {
    match v {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => serde_json::from_str(s)
            .ok()
            .or(Some(Value::String(s.clone()))),
        Some(other) => Some(other.clone()),
    }
}

/// Directus's minimal app permissions for the collections gatehouse serves
/// (`@directus/system-data`, `appAccessMinimalPermissions`): an app user reads its own row
/// (these fields) and its roles.
fn app_minimal(collection: &str, action: Action) -> Option<(Value, &'static [&'static str])> {
    const USER_FIELDS: &[&str] = &[
        "id",
        "first_name",
        "last_name",
        "last_page",
        "email",
        "password",
        "location",
        "title",
        "description",
        "tags",
        "provider",
        "preferences_divider",
        "avatar",
        "language",
        "appearance",
        "theme_light",
        "theme_dark",
        "tfa_secret",
        "status",
        "role",
    ];
    match (collection, action) {
        (USERS_COLLECTION, Action::Read) => {
            Some((json!({"id": {"_eq": "$CURRENT_USER"}}), USER_FIELDS))
        }
        (ROLES_COLLECTION, Action::Read) => {
            Some((json!({"id": {"_in": "$CURRENT_ROLES"}}), &["*"]))
        }
        _ => None,
    }
}

/// Resolves the dynamic values of a `presets` object (Directus's `parsePreset`): a string
/// value that is a dynamic variable becomes its value.
fn resolve_presets(presets: Option<Value>, vars: &Vars) -> Map<String, Value> {
    let Some(Value::Object(m)) = presets else {
        return Map::new();
    };
    m.into_iter()
        .map(|(k, v)| {
            let v = match v.as_str() {
                Some("$CURRENT_USER") => vars
                    .user
                    .as_ref()
                    .and_then(|u| u.get("id").cloned())
                    .unwrap_or(Value::Null),
                Some("$CURRENT_ROLE") => json!(vars.role.map(|r| r.to_string())),
                Some("$CURRENT_ROLES") => {
                    json!(vars.roles.iter().map(Uuid::to_string).collect::<Vec<_>>())
                }
                Some("$CURRENT_POLICIES") => {
                    json!(vars
                        .policies
                        .iter()
                        .map(Uuid::to_string)
                        .collect::<Vec<_>>())
                }
                Some("$NOW") => crate::store::format_ts(vars.now),
                Some(s) if s.starts_with("$CURRENT_USER.") => {
                    let field = &s["$CURRENT_USER.".len()..];
                    vars.user
                        .as_ref()
                        .and_then(|u| u.get(field).cloned())
                        .unwrap_or(Value::Null)
                }
                _ => v,
            };
            (k, v)
        })
        .collect()
}

impl Auth {
    /// The caller's role tree and policies, in Directus's order: the roles' policies nearest
    /// role first, then the user's own (or, without a role, the public policy); a policy
    /// limited to other IPs, or with an `ip_access` list when the IP is unknown, is dropped
    /// (`api/src/permissions/lib/fetch-policies.ts`, `utils/filter-policies-by-ip.ts`).
    pub async fn roles_and_policies(
        &self,
        acc: &Accountability,
    ) -> Result<(Vec<Uuid>, Vec<Uuid>), Error> {
        let roles = self.role_chain(acc.role).await?;
        let mut rows: Vec<(Item, Option<Uuid>)> = if roles.is_empty() && acc.user.is_none() {
            Vec::new()
        } else {
            Vec::clone(&*self.store.access.policies_for(&roles, acc.user).await?)
        };
        if roles.is_empty() {
            rows.extend(
                self.store
                    .access
                    .public_policies()
                    .await?
                    .into_iter()
                    .map(|p| (p, None)),
            );
        }
        // A stable sort: role rows by the role's place in the tree, the rest after them.
        rows.sort_by_key(|(_, via)| {
            via.and_then(|r| roles.iter().position(|x| *x == r))
                .unwrap_or(usize::MAX)
        });
        let mut policies = Vec::new();
        for (row, _) in rows {
            let Some(id) = super::uuid_of(&row, "id") else {
                continue;
            };
            let policy = Policy::from_item(&row);
            if let Some(list) = policy.ip_access.as_deref().filter(|l| !l.trim().is_empty()) {
                match acc.meta.ip {
                    Some(ip) if ip_allowed(list, ip) => {}
                    _ => continue,
                }
            }
            if !policies.contains(&id) {
                policies.push(id);
            }
        }
        Ok((roles, policies))
    }

    /// The caller's grants on one collection and action. Callers with admin access never
    /// get here: they may do everything.
    pub async fn grants(
        &self,
        acc: &Accountability,
        collection: &'static str,
        action: Action,
    ) -> Result<Grants, Error> {
        let (roles, policies) = self.roles_and_policies(acc).await?;
        let mut rows: Vec<Item> = self
            .store
            .access
            .collection_permissions(collection)
            .await?
            .into_iter()
            .filter(|p| p.get("action").and_then(Value::as_str) == Some(action.as_str()))
            .filter(|p| super::uuid_of(p, "policy").is_some_and(|id| policies.contains(&id)))
            .collect();
        rows.sort_by_key(|p| {
            super::uuid_of(p, "policy").and_then(|id| policies.iter().position(|x| *x == id))
        });
        let mut raw: Vec<RawGrant> = rows
            .iter()
            .map(|p| RawGrant {
                id: p.get("id").and_then(Value::as_i64),
                rule: json_column(p.get("permissions")).unwrap_or(Value::Null),
                validation: json_column(p.get("validation")),
                presets: json_column(p.get("presets")),
                fields: field_list(p.get("fields")),
            })
            .collect();
        if acc.app {
            if let Some((rule, fields)) = app_minimal(collection, action) {
                let fields = fields.iter().map(|f| f.to_string()).collect();
                raw.push(RawGrant {
                    id: None,
                    rule,
                    validation: None,
                    presets: None,
                    fields,
                });
            }
        }
        let wants_role = raw.iter().any(|g| {
            [Some(&g.rule), g.validation.as_ref(), g.presets.as_ref()]
                .into_iter()
                .flatten()
                .flat_map(filter::user_paths)
                .any(|path| path.starts_with("role."))
        });
        let vars = self.vars(acc, roles, policies, wants_role).await?;
        let list = raw
            .into_iter()
            .map(|raw| {
                let RawGrant {
                    id,
                    rule: rule_v,
                    validation,
                    presets,
                    fields,
                } = raw;
                let item_rule = rule_v.as_object().is_some_and(|o| !o.is_empty());
                let rule = match Rule::parse(&rule_v, &vars) {
                    Ok(r) => Some(r),
                    Err(e) => {
                        log_once(id, &e.0);
                        None
                    }
                };
                let validation = validation
                    .filter(|v| v.as_object().is_some_and(|o| !o.is_empty()))
                    .map(|v| Rule::parse(&v, &vars).map_err(|e| e.0));
                Grant {
                    id,
                    raw: rule_v,
                    rule,
                    item_rule,
                    fields,
                    validation,
                    presets: resolve_presets(presets, &vars),
                }
            })
            .collect();
        Ok(Grants { collection, list })
    }

    /// The dynamic values for filters: the current user's row (with its role in place of the
    /// key when a filter reads `$CURRENT_USER.role.<field>`), roles, policies and the time.
    pub(super) async fn vars(
        &self,
        acc: &Accountability,
        roles: Vec<Uuid>,
        policies: Vec<Uuid>,
        wants_role: bool,
    ) -> Result<Vars, Error> {
        let mut user = None;
        if let Some(id) = acc.user {
            if let Some((mut row, _)) = self.store.access.user_with_access(id).await? {
                if wants_role {
                    self.expand_role(&mut row).await?;
                }
                user = Some(row);
            }
        }
        Ok(Vars {
            user,
            role: acc.role,
            roles,
            policies,
            now: self.now(),
        })
    }

    /// Puts a user row's role in place of its key, for rules that read `role.<field>`.
    pub(super) async fn expand_role(&self, row: &mut Item) -> Result<(), Error> {
        if let Some(role) = super::uuid_of(row, "role") {
            if let Some(r) = self
                .store
                .items
                .item_get(&ROLES, &role.to_string().into())
                .await?
            {
                row.insert("role".into(), Value::Object(r));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_read_as_directus_writes_them() {
        assert_eq!(
            collection_forbidden("", "directus_users").to_string(),
            "You don't have permission to access collection \"directus_users\" or it does not exist. Queried in root."
        );
        assert_eq!(
            fields_forbidden("role", "directus_roles", &["name".into()]).to_string(),
            "You don't have permission to access field \"name\" in collection \"directus_roles\" or it does not exist. Queried in \"role\"."
        );
        assert_eq!(
            fields_forbidden("", "directus_users", &["role".into(), "status".into()]).to_string(),
            "You don't have permission to access fields \"role\", \"status\" in collection \"directus_users\" or they do not exist. Queried in root."
        );
        assert_eq!(
            action_forbidden(Action::Update, "directus_users", &["first_name".into()]).to_string(),
            "You don't have permissions to perform \"update\" for the field(s) \"first_name\" in collection \"directus_users\" or it does not exist."
        );
    }

    #[test]
    fn field_lists_read_csv_and_arrays() {
        assert_eq!(
            field_list(Some(&json!("id, email,,"))),
            ["email", "id"].iter().map(|s| s.to_string()).collect()
        );
        assert_eq!(field_list(Some(&json!(["*"]))).len(), 1);
        assert!(field_list(None).is_empty());
    }
}
