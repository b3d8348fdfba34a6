//! Reads through the caller's permissions, for callers without admin access, and the `filter`
//! query parameter for everyone: which rows of `directus_users` and `directus_roles` a read
//! returns and which of their fields show (Directus: `api/src/services/items.ts` `readByQuery`
//! with `api/src/permissions/modules/process-ast/process-ast.ts`), and how a filter is checked
//! before it runs (`validate-path-existence.ts`, `validate-path-permissions.ts`).

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::super::permissions::filter::{self, Rule, Vars};
use super::super::permissions::{fields_forbidden, Action, Grants, ROLES_COLLECTION};
use super::super::{Accountability, Auth, Error};
use super::{conceal, Fields, Resource};
use crate::error::ApiError;
use crate::store::{Collection, Filter, Item, Kind, ListQuery, ROLES, USERS};

/// SECURITY: no one filters on a secret, not even an admin: a filter is a yes/no oracle
/// on the value (`password` `_starts_with` `$argon2id$v=19$m=`…), and Directus allows it to
/// whoever may read the concealed field (docs/compatibility.md).
const UNFILTERABLE: &[&str] = &["password", "token", "tfa_secret"];

/// Rows read from the database per round while a filter is evaluated in memory.
const SCAN_CHUNK: i64 = 500;

/// A column kind as Directus names the field type (for the operators it allows).
fn directus_type(kind: Kind) -> &'static str {
    match kind {
        Kind::Text => "string",
        Kind::Uuid => "uuid",
        Kind::Json => "json",
        Kind::Bool => "boolean",
        Kind::Int => "integer",
        Kind::Timestamp => "timestamp",
    }
}

/// The relation a field of `c` points to, for nested fields and filters.
fn relation(c: &Collection, field: &str) -> Option<&'static Collection> {
    match (c.name, field) {
        ("directus_users", "role") | ("directus_roles", "parent") => Some(&ROLES),
        _ => None,
    }
}

/// A filtered list: the rule, what narrows it in SQL, and the page.
pub(super) struct Listing {
    pub rule: Option<Rule>,
    pub narrow: Vec<Filter>,
    pub offset: i64,
    pub limit: Option<i64>,
}

/// What a read as a caller without admin access returns: the grants, the fields asked for,
/// and the nested role selection when the caller may read roles.
pub(super) struct Plan {
    grants: Grants,
    requested: Vec<String>,
    /// `role.<field>` (users) or `parent.<field>` (roles): the related collection's grants
    /// and fields. None when not asked for.
    nested: Option<(String, Grants, Vec<String>)>,
}

impl Auth {
    /// The dynamic values for a query filter (`$CURRENT_USER` works there too).
    pub(super) async fn filter_vars(&self, acc: &Accountability, f: &Value) -> Result<Vars, Error> {
        let (roles, policies) = self.roles_and_policies(acc).await?;
        let wants_role = filter::user_paths(f).iter().any(|p| p.starts_with("role."));
        self.vars(acc, roles, policies, wants_role).await
    }

    /// Parses a query filter and checks every field it reads exists (else 403, as Directus's
    /// `validatePathExistence` answers) and is not a secret.
    pub(super) async fn query_rule(
        &self,
        acc: &Accountability,
        c: &'static Collection,
        f: &Value,
    ) -> Result<Rule, Error> {
        let vars = self.filter_vars(acc, f).await?;
        let rule = Rule::parse(f, &vars).map_err(|e| ApiError::InvalidQuery(e.0))?;
        if let Some(secret) = rule
            .fields_at_root()
            .into_iter()
            .find(|f| c.name == USERS.name && UNFILTERABLE.contains(&f.as_str()))
        {
            return Err(fields_forbidden("", c.name, &[secret]).into());
        }
        // Directus's `validateOperator`: the operators each field type has.
        for (path, op) in rule.operators() {
            let (col, field) = match path.split_once('.') {
                Some((top, rest)) => match relation(c, top) {
                    Some(related) => (related, rest),
                    None => (c, path.as_str()),
                },
                None => (c, path.as_str()),
            };
            if let Some(kind) = col.kind(field) {
                let concealed = col.name == USERS.name && UNFILTERABLE.contains(&field);
                filter::check_operator(directus_type(kind), concealed, op)
                    .map_err(|e| ApiError::InvalidQuery(e.0))?;
            }
        }
        for path in rule.paths() {
            let mut segments = path.split('.');
            let first = segments.next().unwrap_or_default();
            if c.kind(first).is_none() {
                return Err(fields_forbidden("", c.name, &[first.to_string()]).into());
            }
            if c.name == USERS.name && UNFILTERABLE.contains(&first) {
                return Err(fields_forbidden("", c.name, &[first.to_string()]).into());
            }
            if let Some(second) = segments.next() {
                let Some(related) = relation(c, first) else {
                    return Err(fields_forbidden("", c.name, std::slice::from_ref(&path)).into());
                };
                if related.kind(second).is_none() {
                    return Err(fields_forbidden(first, related.name, &[second.to_string()]).into());
                }
            }
        }
        Ok(rule)
    }

    /// Checks a read by a caller without admin access and says what it returns (Directus:
    /// `convertWildcards`, `validatePathPermissions`, `getCases`). A relation the caller may
    /// not read is left out of the answer, as Directus's `parseFields` leaves it out.
    pub(super) async fn read_plan(
        &self,
        acc: &Accountability,
        r: Resource,
        fields: &Fields,
        rule: Option<&Rule>,
    ) -> Result<Plan, Error> {
        let c = r.collection();
        let collection = if r == Resource::Users {
            "directus_users"
        } else {
            ROLES_COLLECTION
        };
        let grants = self.grants(acc, collection, Action::Read).await?;
        if grants.is_empty() {
            return Err(super::super::permissions::collection_forbidden("", c.name).into());
        }
        let columns: Vec<&str> = c.fields.iter().map(|(f, _)| *f).collect();
        let mut requested: Vec<String> = Vec::new();
        let mut explicit: Vec<String> = Vec::new();
        if fields.wants_all() {
            requested.extend(grants.expand_star(&columns));
        }
        for f in &fields.0 {
            let top = f.split('.').next().unwrap_or_default();
            if top == "*" || requested.iter().any(|r| r == top) {
                continue;
            }
            if c.kind(top).is_none() {
                return Err(fields_forbidden("", c.name, &[top.to_string()]).into());
            }
            explicit.push(top.to_string());
            requested.push(top.to_string());
        }
        grants.check_fields("", &explicit)?;
        // The fields a filter reads must be readable too (Directus validates the query's
        // fields with the read permissions).
        if let Some(rule) = rule {
            let mut tops: Vec<String> = Vec::new();
            for p in rule.paths() {
                let top = p.split('.').next().unwrap_or_default().to_string();
                if !tops.contains(&top) {
                    tops.push(top);
                }
            }
            grants.check_fields("", &tops)?;
            for p in rule.paths() {
                if let Some((top, rest)) = p.split_once('.') {
                    if relation(c, top).is_some() {
                        let related = self.grants(acc, ROLES_COLLECTION, Action::Read).await?;
                        related.check_fields(top, &[rest.to_string()])?;
                    }
                }
            }
        }
        let mut nested = None;
        for (field, _) in c.fields {
            if relation(c, field).is_none() || !requested.iter().any(|r| r == field) {
                continue;
            }
            if let Some(sub) = fields.nested(field) {
                let related = self.grants(acc, ROLES_COLLECTION, Action::Read).await?;
                if related.is_empty() {
                    // Directus drops the relation from the answer.
                    requested.retain(|r| r != field);
                    continue;
                }
                let role_columns: Vec<&str> = ROLES.fields.iter().map(|(f, _)| *f).collect();
                let mut sub_fields = Vec::new();
                if sub.wants_all() {
                    sub_fields.extend(related.expand_star(&role_columns));
                }
                let mut sub_explicit = Vec::new();
                for f in &sub.0 {
                    let top = f.split('.').next().unwrap_or_default();
                    if top == "*" || sub_fields.iter().any(|s| s == top) {
                        continue;
                    }
                    if ROLES.kind(top).is_none() {
                        return Err(fields_forbidden(field, ROLES.name, &[top.to_string()]).into());
                    }
                    sub_explicit.push(top.to_string());
                    sub_fields.push(top.to_string());
                }
                related.check_fields(field, &sub_explicit)?;
                nested = Some((field.to_string(), related, sub_fields));
            }
        }
        Ok(Plan {
            grants,
            requested,
            nested,
        })
    }

    /// Every role by id, for filters and rules that read `role.<field>`.
    async fn roles_by_id(&self) -> Result<HashMap<String, Item>, Error> {
        let rows = self
            .store
            .items
            .items_list(&ROLES, &ListQuery::default())
            .await?;
        Ok(rows
            .into_iter()
            .filter_map(|r| Some((r.get("id")?.as_str()?.to_string(), r)))
            .collect())
    }

    /// The rows of `c` that `keep` accepts, from `offset`, at most `limit`: read in chunks
    /// and filtered in memory. A plain `_eq` on a text column narrows the read in SQL first.
    pub(super) async fn scan(
        &self,
        c: &'static Collection,
        narrow: Vec<Filter>,
        mut keep: impl FnMut(&Item) -> bool,
        offset: i64,
        limit: Option<i64>,
    ) -> Result<Vec<Item>, Error> {
        let mut out = Vec::new();
        let mut skipped = 0;
        let mut at = 0;
        loop {
            let q = ListQuery {
                filters: narrow.clone(),
                limit: Some(SCAN_CHUNK),
                offset: Some(at),
                ..Default::default()
            };
            let rows = self.store.items.items_list(c, &q).await?;
            let n = rows.len() as i64;
            for row in rows {
                if !keep(&row) {
                    continue;
                }
                if skipped < offset {
                    skipped += 1;
                    continue;
                }
                if limit.is_some_and(|l| out.len() as i64 >= l) {
                    return Ok(out);
                }
                out.push(row);
            }
            if limit.is_some_and(|l| out.len() as i64 >= l) || n < SCAN_CHUNK {
                return Ok(out);
            }
            at += SCAN_CHUNK;
        }
    }

    /// Lists `r` with a filter and, for a caller without admin access, its permissions.
    pub(super) async fn list_filtered(
        &self,
        r: Resource,
        q: Listing,
        plan: Option<Plan>,
        fields: &Fields,
    ) -> Result<Vec<Value>, Error> {
        let Listing {
            rule,
            narrow,
            offset,
            limit,
        } = q;
        let c = r.collection();
        let roles = if self.needs_roles(c, rule.as_ref(), plan.as_ref()) {
            Some(self.roles_by_id().await?)
        } else {
            None
        };
        let cases = plan.as_ref().map(|p| p.grants.cases(&p.requested));
        let rows = self
            .scan(
                c,
                narrow,
                |row| {
                    let eval = expanded(c, row, roles.as_ref());
                    rule.as_ref().is_none_or(|r| r.matches(&eval))
                        && cases.as_ref().is_none_or(|cs| cs.row_visible(&eval))
                },
                offset,
                limit,
            )
            .await?;
        let Some(p) = &plan else {
            // An admin's rows, rendered together (`aliases`).
            return self.render(r, rows, fields).await;
        };
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            out.push(self.render_scoped(c, p, row, roles.as_ref(), false).await?);
        }
        Ok(out)
    }

    fn needs_roles(&self, c: &Collection, rule: Option<&Rule>, plan: Option<&Plan>) -> bool {
        let through = |paths: std::collections::BTreeSet<String>| {
            paths.iter().any(|p| {
                p.split_once('.')
                    .is_some_and(|(top, _)| relation(c, top).is_some())
            })
        };
        rule.is_some_and(|r| through(r.paths()))
            || plan.is_some_and(|p| p.grants.list.iter().any(|g| g.reads_relation(c)))
    }

    /// One row as a caller without admin access sees it (with `check`, 403 when no case
    /// reaches it): the requested fields, each null
    /// where no case that covers it matches the row; secrets concealed; the nested relation
    /// through the related collection's own grants (null when its row is not readable).
    pub(super) async fn render_scoped(
        &self,
        c: &'static Collection,
        plan: &Plan,
        row: Item,
        roles: Option<&HashMap<String, Item>>,
        check: bool,
    ) -> Result<Value, Error> {
        let eval = expanded(c, &row, roles);
        let cases = plan.grants.cases(&plan.requested);
        let matched = cases.matched(&eval);
        if check && !matched.contains(&true) {
            return Err(ApiError::Forbidden.into());
        }
        let mut out = Map::new();
        for f in &plan.requested {
            let v = if cases.shows(&matched, f) {
                row.get(f).cloned().unwrap_or(Value::Null)
            } else {
                Value::Null
            };
            out.insert(f.clone(), v);
        }
        let mut out = if c.name == USERS.name {
            conceal(out)
        } else {
            out
        };
        if let Some((field, grants, sub)) = &plan.nested {
            if let Some(id) = out.get(field).and_then(Value::as_str).map(str::to_string) {
                let related = match roles {
                    Some(all) => all.get(&id).cloned(),
                    None => {
                        self.store
                            .items
                            .item_get(&ROLES, &id.clone().into())
                            .await?
                    }
                };
                let sub_cases = grants.cases(sub);
                let v = match related {
                    Some(rel) if sub_cases.row_visible(&rel) => {
                        let sub_matched = sub_cases.matched(&rel);
                        let mut m = Map::new();
                        for f in sub {
                            let v = if sub_cases.shows(&sub_matched, f) {
                                rel.get(f).cloned().unwrap_or(Value::Null)
                            } else {
                                Value::Null
                            };
                            m.insert(f.clone(), v);
                        }
                        Value::Object(m)
                    }
                    _ => Value::Null,
                };
                out.insert(field.clone(), v);
            }
        }
        Ok(Value::Object(out))
    }

    /// One row by key through a caller's permissions: 403 when no case reaches it.
    pub(super) async fn get_scoped(
        &self,
        c: &'static Collection,
        plan: &Plan,
        row: Option<Item>,
    ) -> Result<Value, Error> {
        let Some(row) = row else {
            return Err(ApiError::Forbidden.into());
        };
        let roles = if plan.grants.list.iter().any(|g| g.reads_relation(c)) {
            Some(self.roles_by_id().await?)
        } else {
            None
        };
        self.render_scoped(c, plan, row, roles.as_ref(), true).await
    }
}

/// The row with its relation expanded to the related row, for rules that read through it.
fn expanded(c: &Collection, row: &Item, roles: Option<&HashMap<String, Item>>) -> Item {
    let Some(roles) = roles else {
        return row.clone();
    };
    let mut eval = row.clone();
    for (field, _) in c.fields {
        if relation(c, field).is_none() {
            continue;
        }
        if let Some(rel) = row
            .get(*field)
            .and_then(Value::as_str)
            .and_then(|id| roles.get(id))
        {
            eval.insert(field.to_string(), Value::Object(rel.clone()));
        }
    }
    eval
}

/// The `_eq` conditions on text columns at the top of a filter, to narrow a scan in SQL.
/// The filter still decides: these only skip rows it could not match.
pub(super) fn narrowing(c: &Collection, f: Option<&Value>) -> Vec<Filter> {
    let Some(Value::Object(top)) = f else {
        return vec![];
    };
    let mut out = Vec::new();
    for (field, cond) in top {
        let Some((name, kind)) = c.fields.iter().find(|(n, _)| n == field) else {
            continue;
        };
        if !matches!(kind, Kind::Text) {
            continue;
        }
        if let Some(Value::Object(ops)) = Some(cond) {
            if let (1, Some(Value::String(s))) = (ops.len(), ops.get("_eq")) {
                if !s.starts_with('$') {
                    out.push(Filter {
                        field: name,
                        value: Value::from(s.clone()),
                    });
                }
            }
        }
    }
    out
}
