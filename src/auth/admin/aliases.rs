//! Relational fields of the admin API's items, as Directus 12.4.0 reads them: the one-to-many
//! aliases every default read carries (`policies` on users; `children`, `policies` and `users`
//! on roles; `permissions`, `roles` and `users` on policies, each a list of keys) and the
//! relations `fields` expands (`role.*`, `policies.*`, `users.email`, `*.*`). The `fields`
//! list is read as `api/src/database/get-ast-from-query/lib/{convert-wildcards,parse-fields}.ts`
//! read it and the tree is run as `api/src/database/run-ast/` runs it: each relation of the
//! tree is one batched read for all the rows of its level (split every `CHUNK` keys), never one
//! read per row.

use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;

use serde_json::{Map, Value};

use super::super::permissions::fields_forbidden;
use super::super::{Auth, Error};
use super::{policies, users, Fields};
use crate::error::ApiError;
use crate::store::{
    Collection, Filter, Item, ListQuery, ACCESS, PERMISSIONS, POLICIES, ROLES, USERS,
};

/// How many keys one batched read names (well under SQLite's and PostgreSQL's bind limits).
const CHUNK: usize = 500;
/// Directus's `QUERY_LIMIT_DEFAULT`: a one-to-many alias lists at most this many items per row
/// (`api/src/database/run-ast/utils/merge-with-parent-items.ts`).
pub(super) const NESTED_LIMIT: usize = 100;
/// Directus's `MAX_RELATIONAL_DEPTH` (`api/src/utils/validate-query.ts`).
const MAX_DEPTH: usize = 10;
/// SECURITY: wildcard segments multiply (`*.*.*.*…` names every relation of every relation), and
/// each relation read is a query; a selection may name at most this many relations
/// (docs/compatibility.md). Directus sets no such bound.
const MAX_RELATIONS: usize = 1000;

/// One relation of a collection, named by its field.
#[derive(Debug, Clone, Copy)]
enum Relation {
    /// The field holds a key of `to` (many-to-one).
    ToOne { to: &'static Collection },
    /// The rows of `from` whose `fk` holds this row's key (an alias); `sort` is the
    /// relation's own sort field, if any.
    ToMany {
        from: &'static Collection,
        fk: &'static str,
        sort: Option<&'static str>,
    },
    /// A relation to a collection gatehouse does not serve: the field stays a key.
    Unserved,
}

type Relations = [(&'static str, Relation)];

// Directus's system relations among the collections gatehouse serves (`@directus/system-data`,
// `systemRelationRows`), in Directus's order. `avatar` (to `directus_files`) is not served:
// it stays a key at any depth.
static USER_RELATIONS: [(&str, Relation); 3] = [
    ("avatar", Relation::Unserved),
    ("role", Relation::ToOne { to: &ROLES }),
    (
        "policies",
        Relation::ToMany {
            from: &ACCESS,
            fk: "user",
            sort: Some("sort"),
        },
    ),
];
static ROLE_RELATIONS: [(&str, Relation); 4] = [
    ("parent", Relation::ToOne { to: &ROLES }),
    (
        "children",
        Relation::ToMany {
            from: &ROLES,
            fk: "parent",
            sort: None,
        },
    ),
    (
        "policies",
        Relation::ToMany {
            from: &ACCESS,
            fk: "role",
            sort: Some("sort"),
        },
    ),
    (
        "users",
        Relation::ToMany {
            from: &USERS,
            fk: "role",
            sort: None,
        },
    ),
];
// `roles` and `users` are both every `directus_access` row of the policy: Directus's two
// relations share the column `policy` and differ only in the junction field the app shows.
static POLICY_RELATIONS: [(&str, Relation); 3] = [
    (
        "permissions",
        Relation::ToMany {
            from: &PERMISSIONS,
            fk: "policy",
            sort: None,
        },
    ),
    (
        "users",
        Relation::ToMany {
            from: &ACCESS,
            fk: "policy",
            sort: None,
        },
    ),
    (
        "roles",
        Relation::ToMany {
            from: &ACCESS,
            fk: "policy",
            sort: None,
        },
    ),
];
static ACCESS_RELATIONS: [(&str, Relation); 3] = [
    ("role", Relation::ToOne { to: &ROLES }),
    ("user", Relation::ToOne { to: &USERS }),
    ("policy", Relation::ToOne { to: &POLICIES }),
];
static PERMISSION_RELATIONS: [(&str, Relation); 1] =
    [("policy", Relation::ToOne { to: &POLICIES })];

/// A collection's own sort field (`directus_collections.sort_field`), which orders its rows
/// in an alias that has no sort field of its own (`getAllowedSort`).
fn collection_sort(c: &Collection) -> Option<&'static str> {
    (c.name == ACCESS.name).then_some("sort")
}

fn relations(c: &Collection) -> &'static Relations {
    match c.name {
        "directus_users" => &USER_RELATIONS,
        "directus_roles" => &ROLE_RELATIONS,
        "directus_policies" => &POLICY_RELATIONS,
        "directus_access" => &ACCESS_RELATIONS,
        "directus_permissions" => &PERMISSION_RELATIONS,
        _ => &[],
    }
}

fn relation(c: &Collection, field: &str) -> Option<Relation> {
    relations(c)
        .iter()
        .find(|(f, _)| *f == field)
        .map(|(_, r)| *r)
}

fn is_alias(c: &Collection, field: &str) -> bool {
    matches!(relation(c, field), Some(Relation::ToMany { .. }))
}

/// Who reads: an admin sees every field and alias. A reader limited to `top` fields at the
/// first level sees no aliases at any level (callers without admin access are rendered by
/// `scoped`, through their permissions).
#[derive(Debug, Clone, Copy)]
pub(super) struct View {
    aliases: bool,
    top: Option<&'static [&'static str]>,
}

impl View {
    pub(super) const ADMIN: View = View {
        aliases: true,
        top: None,
    };

    fn nested(self) -> View {
        View { top: None, ..self }
    }

    /// The fields `*` stands for: the columns, then the aliases.
    fn all(self, c: &Collection) -> Vec<String> {
        let columns = c
            .fields
            .iter()
            .map(|(f, _)| *f)
            .filter(|f| self.top.is_none_or(|top| top.contains(f)));
        let aliases = relations(c)
            .iter()
            .filter(|(f, r)| {
                self.aliases
                    && self.top.is_none()
                    && matches!(r, Relation::ToMany { .. })
                    && !c.fields.iter().any(|(col, _)| col == f)
            })
            .map(|(f, _)| *f);
        columns.chain(aliases).map(str::to_string).collect()
    }

    fn knows(self, c: &Collection, field: &str) -> bool {
        let column = c.kind(field).is_some() && self.top.is_none_or(|top| top.contains(&field));
        column || (self.aliases && self.top.is_none() && is_alias(c, field))
    }
}

/// What to read of one collection, in answer order.
#[derive(Debug, Default)]
struct Tree {
    nodes: Vec<Node>,
}

impl Tree {
    /// Whether the column `field` is read at this level.
    fn reads(&self, field: &str) -> bool {
        self.nodes
            .iter()
            .any(|n| matches!(n, Node::Column(f) if f == field))
    }
}

#[derive(Debug)]
enum Node {
    Column(String),
    Related {
        field: &'static str,
        relation: Relation,
        sub: Tree,
    },
}

/// Reads a `fields` list (each entry a dotted path, `*` a wildcard segment) for `c`, found at
/// `path` (`""` at the top). An empty list at the top is `*`; an empty list below a relation
/// is the related key only. A field that `c` does not have (or that `view` does not show) is
/// 403 `FORBIDDEN` with Directus's reason (`validate-path-existence.ts`); a dotted path
/// through a name that is no relation names nothing, as in Directus.
fn parse(
    c: &'static Collection,
    fields: &[String],
    view: View,
    path: &str,
    budget: &mut usize,
) -> Result<Tree, Error> {
    // `convertWildcards`: `*` is every field; `*.<rest>` is `<relation>.<rest>` for each
    // relation, then every other field.
    let mut expanded: Vec<String> = Vec::new();
    for f in fields {
        if f.split('.').count() > MAX_DEPTH {
            return Err(ApiError::query("Max relational depth exceeded").into());
        }
        if f == "*" {
            expanded.extend(view.all(c));
        } else if let Some(rest) = f.strip_prefix("*.") {
            let (related, plain): (Vec<String>, Vec<String>) = view
                .all(c)
                .into_iter()
                .partition(|name| relation(c, name).is_some());
            expanded.extend(related.into_iter().map(|name| format!("{name}.{rest}")));
            expanded.extend(plain);
        } else {
            expanded.push(f.clone());
        }
    }
    // `parseFields`: a dotted path or an alias is a relation (its sub-fields gathered), any
    // other name a column; each root keeps the place of its first mention.
    let mut order: Vec<String> = Vec::new();
    let mut plain: HashSet<String> = HashSet::new();
    let mut nested: HashMap<String, Vec<String>> = HashMap::new();
    let mut unknown: Vec<String> = Vec::new();
    for f in expanded {
        let (root, rest) = match f.split_once('.') {
            Some((root, rest)) => (root.to_string(), Some(rest.to_string())),
            None => (f, None),
        };
        if !view.knows(c, &root) {
            if rest.is_none() && !unknown.contains(&root) {
                unknown.push(root);
            }
            continue;
        }
        if !order.contains(&root) {
            order.push(root.clone());
        }
        if rest.is_some() || is_alias(c, &root) {
            nested.entry(root).or_default().extend(rest);
        } else {
            plain.insert(root);
        }
    }
    if !unknown.is_empty() {
        return Err(fields_forbidden(path, c.name, &unknown).into());
    }
    let mut tree = Tree::default();
    for root in order {
        let found = relations(c).iter().find(|(f, _)| *f == root);
        match (nested.remove(&root), found) {
            (Some(subs), Some((field, relation))) if !matches!(relation, Relation::Unserved) => {
                let at = if path.is_empty() {
                    root.clone()
                } else {
                    format!("{path}.{root}")
                };
                *budget = budget.checked_sub(1).ok_or_else(|| {
                    ApiError::query(format!(
                        "\"fields\" names more than {MAX_RELATIONS} relations"
                    ))
                })?;
                let sub = parse(target(relation), &subs, view.nested(), &at, budget)?;
                tree.nodes.push(Node::Related {
                    field,
                    relation: *relation,
                    sub,
                });
            }
            // A dotted path through a column that is no relation names nothing; the column
            // itself is still read when it was asked for too.
            (Some(_), None) if !plain.contains(&root) => {}
            _ => tree.nodes.push(Node::Column(root)),
        }
    }
    Ok(tree)
}

fn target(r: &Relation) -> &'static Collection {
    match r {
        Relation::ToOne { to } => to,
        Relation::ToMany { from, .. } => from,
        // Never parsed below: an unserved relation is read as its column.
        Relation::Unserved => &USERS,
    }
}

/// A key as the maps below compare it: UUIDs in lower case, numbers as their digits.
fn key_of(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.to_ascii_lowercase()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Directus's order for an alias's items: ascending, nulls last (`merge-with-parent-items.ts`).
fn ascending(a: Option<&Value>, b: Option<&Value>) -> Ordering {
    match (a.filter(|v| !v.is_null()), b.filter(|v| !v.is_null())) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Greater,
        (Some(_), None) => Ordering::Less,
        (Some(Value::Number(x)), Some(Value::Number(y))) => x
            .as_f64()
            .partial_cmp(&y.as_f64())
            .unwrap_or(Ordering::Equal),
        (Some(x), Some(y)) => key_of(x).cmp(&key_of(y)),
    }
}

/// How a row of `c` reads back: users concealed, CSV columns as arrays.
fn present(c: &Collection, item: Item) -> Item {
    match c.name {
        "directus_users" => users::conceal(item),
        "directus_policies" => policies::present(item),
        // Split without trimming, as Directus reads its `cast-csv` column.
        "directus_permissions" => super::permissions::present(item),
        _ => item,
    }
}

type Rendered<'a> = Pin<Box<dyn Future<Output = Result<Vec<Value>, Error>> + Send + 'a>>;

/// The values each relation of a level resolved to.
enum Resolved {
    /// Related row key → its rendering.
    One(HashMap<String, Value>),
    /// Parent row key → its alias items.
    Many(HashMap<String, Vec<Value>>),
}

impl Auth {
    /// Renders rows of `c` (admin API items, `/users/me`) with the `fields` selection: the
    /// columns asked for, each relation asked for expanded, the aliases of `*` as keys.
    pub(super) async fn render_items(
        &self,
        c: &'static Collection,
        rows: Vec<Item>,
        fields: &Fields,
        view: View,
    ) -> Result<Vec<Value>, Error> {
        let wanted = if fields.0.is_empty() {
            vec!["*".to_string()]
        } else {
            fields.0.clone()
        };
        let mut budget = MAX_RELATIONS;
        let tree = parse(c, &wanted, view, "", &mut budget)?;
        self.render_level(c, rows, &tree).await
    }

    /// The rows of `c` whose `field` holds one of `keys`, in batches of `CHUNK` keys, each
    /// batch in `sort`'s order (the database's, nulls included) then by key.
    pub(super) async fn rows_in(
        &self,
        c: &'static Collection,
        field: &'static str,
        keys: Vec<String>,
        sort: Option<&'static str>,
    ) -> Result<Vec<Item>, Error> {
        let mut out = Vec::new();
        for chunk in keys.chunks(CHUNK) {
            let q = ListQuery {
                filters: vec![Filter {
                    field,
                    value: Value::Array(chunk.iter().cloned().map(Value::from).collect()),
                }],
                sort,
                ..Default::default()
            };
            out.extend(self.store.items.items_list(c, &q).await?);
        }
        Ok(out)
    }

    /// Drops from a write payload the aliases that change nothing, so an item read and saved
    /// back whole (what an admin UI does) is accepted: on create an empty list, on update the
    /// list of keys the row already has, in any order. Any other alias value is left for the
    /// collection's own rules (docs/compatibility.md).
    pub(super) async fn strip_unchanged_aliases(
        &self,
        c: &'static Collection,
        id: Option<&str>,
        body: &mut Map<String, Value>,
    ) -> Result<(), Error> {
        for (field, relation) in relations(c) {
            let Relation::ToMany { from, fk, .. } = relation else {
                continue;
            };
            let Some(Value::Array(sent)) = body.get(*field) else {
                continue;
            };
            let Some(sent) = sent.iter().map(key_of).collect::<Option<HashSet<String>>>() else {
                continue;
            };
            let unchanged = match id {
                None => sent.is_empty(),
                Some(id) => {
                    let current: HashSet<String> = self
                        .rows_in(from, fk, vec![id.to_string()], None)
                        .await?
                        .iter()
                        .filter_map(|r| r.get(from.pk).and_then(key_of))
                        .collect();
                    current == sent
                }
            };
            if unchanged {
                body.remove(*field);
            }
        }
        Ok(())
    }

    fn render_level<'a>(
        &'a self,
        c: &'static Collection,
        rows: Vec<Item>,
        tree: &'a Tree,
    ) -> Rendered<'a> {
        Box::pin(async move {
            if tree.nodes.is_empty() {
                // No field asked below a relation: the related key (`removeTemporaryFields`).
                return Ok(rows
                    .into_iter()
                    .map(|r| r.get(c.pk).cloned().unwrap_or(Value::Null))
                    .collect());
            }
            let rows: Vec<Item> = rows.into_iter().map(|r| present(c, r)).collect();
            let mut resolved = Vec::with_capacity(tree.nodes.len());
            for node in &tree.nodes {
                let Node::Related {
                    field,
                    relation,
                    sub,
                } = node
                else {
                    resolved.push(None);
                    continue;
                };
                resolved.push(Some(match *relation {
                    Relation::Unserved => {
                        resolved.push(None);
                        continue;
                    }
                    Relation::ToOne { to } => {
                        let mut keys = Vec::new();
                        let mut seen = HashSet::new();
                        for k in rows.iter().filter_map(|r| r.get(*field).and_then(key_of)) {
                            if seen.insert(k.clone()) {
                                keys.push(k);
                            }
                        }
                        let targets = self.rows_in(to, to.pk, keys, None).await?;
                        let ids: Vec<Option<String>> = targets
                            .iter()
                            .map(|t| t.get(to.pk).and_then(key_of))
                            .collect();
                        let values = self.render_level(to, targets, sub).await?;
                        let map = ids
                            .into_iter()
                            .zip(values)
                            .filter_map(|(id, v)| Some((id?, v)))
                            .collect();
                        Resolved::One(map)
                    }
                    Relation::ToMany { from, fk, sort } => {
                        let keys: Vec<String> = rows
                            .iter()
                            .filter_map(|r| r.get(c.pk).and_then(key_of))
                            .collect();
                        // The database orders by the sort field (the relation's, else the
                        // collection's); each row keeps its first `NESTED_LIMIT` items; then
                        // Directus sorts them again in JavaScript, nulls last, when they carry
                        // that field: always for the relation's own, else when it was asked
                        // for (`merge-with-parent-items.ts`).
                        let by = sort.or_else(|| collection_sort(from));
                        let items = self.rows_in(from, fk, keys, by).await?;
                        let mut groups: HashMap<String, Vec<Item>> = HashMap::new();
                        for item in items {
                            let Some(parent) = item.get(fk).and_then(key_of) else {
                                continue;
                            };
                            let group = groups.entry(parent).or_default();
                            if group.len() < NESTED_LIMIT {
                                group.push(item);
                            }
                        }
                        if let Some(by) = by.filter(|by| sort.is_some() || sub.reads(by)) {
                            for group in groups.values_mut() {
                                group.sort_by(|a, b| ascending(a.get(by), b.get(by)));
                            }
                        }
                        let mut map = HashMap::with_capacity(groups.len());
                        let (parents, lists): (Vec<String>, Vec<Vec<Item>>) =
                            groups.into_iter().unzip();
                        let sizes: Vec<usize> = lists.iter().map(Vec::len).collect();
                        let mut values = self
                            .render_level(from, lists.into_iter().flatten().collect(), sub)
                            .await?
                            .into_iter();
                        for (parent, size) in parents.into_iter().zip(sizes) {
                            map.insert(parent, values.by_ref().take(size).collect());
                        }
                        Resolved::Many(map)
                    }
                }));
            }
            let mut out = Vec::with_capacity(rows.len());
            for row in &rows {
                let mut item = Map::new();
                for (node, resolved) in tree.nodes.iter().zip(&resolved) {
                    match (node, resolved) {
                        (Node::Column(f), _) => {
                            if let Some(v) = row.get(f) {
                                item.insert(f.clone(), v.clone());
                            }
                        }
                        (Node::Related { field, .. }, Some(Resolved::One(map))) => {
                            let v = row
                                .get(*field)
                                .and_then(key_of)
                                .and_then(|k| map.get(&k).cloned())
                                .unwrap_or(Value::Null);
                            item.insert(field.to_string(), v);
                        }
                        (Node::Related { field, .. }, Some(Resolved::Many(map))) => {
                            let v = row
                                .get(c.pk)
                                .and_then(key_of)
                                .and_then(|k| map.get(&k).cloned())
                                .unwrap_or_default();
                            item.insert(field.to_string(), Value::Array(v));
                        }
                        (Node::Related { .. }, None) => {}
                    }
                }
                out.push(Value::Object(item));
            }
            Ok(out)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(t: &Tree) -> Vec<String> {
        t.nodes
            .iter()
            .map(|n| match n {
                Node::Column(f) => f.clone(),
                Node::Related { field, sub, .. } => format!("{field}({})", names(sub).join(",")),
            })
            .collect()
    }

    fn tree(c: &'static Collection, fields: &[&str]) -> Vec<String> {
        let fields: Vec<String> = fields.iter().map(|s| s.to_string()).collect();
        names(&parse(c, &fields, View::ADMIN, "", &mut 100).unwrap())
    }

    #[test]
    fn star_is_every_column_then_the_aliases_as_keys() {
        let t = tree(&ROLES, &["*"]);
        assert_eq!(
            t,
            [
                "id",
                "name",
                "icon",
                "description",
                "parent",
                "children()",
                "policies()",
                "users()"
            ]
        );
        assert_eq!(tree(&USERS, &["*"]).last().unwrap(), "policies()");
    }

    #[test]
    fn wildcard_segments_expand_every_relation() {
        let t = tree(&USERS, &["*.*"]);
        assert_eq!(t[0], "avatar", "{t:?}");
        assert!(t[1].starts_with("role(id,name,"), "{t:?}");
        assert!(t[1].ends_with("children(),policies(),users())"), "{t:?}");
        assert!(
            t[2].starts_with("policies(id,role,user,policy,sort"),
            "{t:?}"
        );
        assert!(t.contains(&"email".to_string()));
        assert_eq!(tree(&ROLES, &["users.email"]), ["users(email)"]);
        assert_eq!(tree(&ROLES, &["name", "nope.x", "name.x"]), ["name"]);
        assert_eq!(tree(&USERS, &["avatar.id"]), ["avatar"]);
    }

    #[test]
    fn unknown_fields_are_refused_with_directus_reason() {
        let fields = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let reason = |c, list: &[&str]| match parse(c, &fields(list), View::ADMIN, "", &mut 100) {
            Err(e) => e.api().to_string(),
            Ok(t) => panic!("accepted: {:?}", names(&t)),
        };
        assert_eq!(
            reason(&ROLES, &["nope"]),
            "You don't have permission to access field \"nope\" in collection \"directus_roles\" or it does not exist. Queried in root."
        );
        assert_eq!(
            reason(&USERS, &["a", "b", "a"]),
            "You don't have permission to access fields \"a\", \"b\" in collection \"directus_users\" or they do not exist. Queried in root."
        );
        assert_eq!(
            reason(&USERS, &["role.policies.nope"]),
            "You don't have permission to access field \"nope\" in collection \"directus_access\" or it does not exist. Queried in \"role.policies\"."
        );
    }

    #[test]
    fn depth_is_bounded() {
        let deep = vec![["role"; 11].join(".")];
        assert!(parse(&USERS, &deep, View::ADMIN, "", &mut 100).is_err());
        // Wildcard segments multiply; the selection is bounded.
        let wide = vec![["*"; 10].join(".")];
        let err = parse(&USERS, &wide, View::ADMIN, "", &mut 1000).expect_err("too many relations");
        assert_eq!(err.api().code(), "INVALID_QUERY");
        let fine = vec![["*"; 3].join(".")];
        assert!(parse(&USERS, &fine, View::ADMIN, "", &mut 1000).is_ok());
    }
}
