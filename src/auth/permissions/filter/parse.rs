//! A filter object to a tree of conditions, as Directus's `parseFilter`
//! (`packages/utils/shared/parse-filter.ts`) normalises it and `applyFilter`
//! (`api/src/database/run-ast/lib/apply-query/filter/index.ts`) walks it: several keys in
//! one object are AND-ed, a field whose value is an object of fields is a relation, a field
//! with a plain value is `_eq`, a `_and`/`_or` under a field applies to that field.

use serde_json::{Map, Value};

use super::value::{parse_now, Lit};
use super::{Unsupported, Vars};

/// SECURITY: how deeply objects and arrays may nest in a filter (qs's depth in Directus is
/// also 10, `QUERYSTRING_MAX_PARSE_DEPTH`), and how many conditions and list values it may
/// hold. Both bound the work one request can ask for.
pub(super) const MAX_DEPTH: usize = 10;
pub(super) const MAX_CONDITIONS: usize = 1000;

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Node {
    And(Vec<Node>),
    Or(Vec<Node>),
    /// A root `_or` with a `{}` member: Directus writes no SQL for the whole `_or`.
    SkippedOr(Vec<Node>),
    Cond(Cond),
    /// `{"field": {}}`: no operator, so Directus writes no SQL for it (`getOperation` is null).
    Noop(Vec<String>),
}

#[derive(Debug, Clone, PartialEq)]
pub(super) struct Cond {
    pub path: Vec<String>,
    pub op: Op,
    pub arg: Arg,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Arg {
    One(Lit),
    List(Vec<Lit>),
}

macro_rules! ops {
    ($($variant:ident => $name:literal),* $(,)?) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub(super) enum Op { $($variant),* }

        impl Op {
            pub(super) fn from_name(name: &str) -> Option<Op> {
                match name { $($name => Some(Op::$variant),)* _ => None }
            }

            pub(super) fn name(self) -> &'static str {
                match self { $(Op::$variant => $name),* }
            }
        }
    };
}

ops! {
    Eq => "_eq", Neq => "_neq", Ieq => "_ieq", Nieq => "_nieq",
    In => "_in", Nin => "_nin",
    Null => "_null", Nnull => "_nnull", Empty => "_empty", Nempty => "_nempty",
    Contains => "_contains", Ncontains => "_ncontains",
    Icontains => "_icontains", Nicontains => "_nicontains",
    StartsWith => "_starts_with", NstartsWith => "_nstarts_with",
    IstartsWith => "_istarts_with", NistartsWith => "_nistarts_with",
    EndsWith => "_ends_with", NendsWith => "_nends_with",
    IendsWith => "_iends_with", NiendsWith => "_niends_with",
    Gt => "_gt", Gte => "_gte", Lt => "_lt", Lte => "_lte",
    Between => "_between", Nbetween => "_nbetween",
    Submitted => "_submitted",
}

impl Op {
    /// Operators whose value Directus reads as a list (`toArray`: a string is split at commas).
    pub(super) fn takes_list(self) -> bool {
        matches!(self, Op::In | Op::Nin | Op::Between | Op::Nbetween)
    }

    /// Operators Directus runs through `compareValue.toLowerCase()`, which throws for anything
    /// but a string.
    fn lowers(self) -> bool {
        matches!(
            self,
            Op::Ieq
                | Op::Nieq
                | Op::Icontains
                | Op::Nicontains
                | Op::IstartsWith
                | Op::NistartsWith
                | Op::IendsWith
                | Op::NiendsWith
        )
    }

    /// Operators that put the value into a LIKE pattern.
    pub(super) fn likes(self) -> bool {
        matches!(
            self,
            Op::Contains
                | Op::Ncontains
                | Op::Icontains
                | Op::Nicontains
                | Op::StartsWith
                | Op::NstartsWith
                | Op::IstartsWith
                | Op::NistartsWith
                | Op::EndsWith
                | Op::NendsWith
                | Op::IendsWith
                | Op::NiendsWith
        )
    }
}

fn unsupported(reason: impl Into<String>) -> Unsupported {
    Unsupported(reason.into())
}

fn primitive_only(op: &str) -> Unsupported {
    // Directus's wording (`api/src/utils/validate-query.ts` validateFilterPrimitive).
    unsupported(format!(
        "The filter value for \"{op}\" has to be a string, number, or boolean"
    ))
}

struct Parser<'a> {
    vars: &'a Vars,
    conditions: usize,
}

/// The whole filter: None for `null` and `{}` (every row).
pub(super) fn parse(filter: &Value, vars: &Vars) -> Result<Option<Node>, Unsupported> {
    let mut p = Parser {
        vars,
        conditions: 0,
    };
    match filter {
        Value::Null => Ok(None),
        Value::Object(m) if m.is_empty() => Ok(None),
        Value::Object(m) => p.object(m, &[], 1).map(Some),
        _ => Err(unsupported("\"filter\" must be of type object")),
    }
}

impl Parser<'_> {
    fn count(&mut self, n: usize) -> Result<(), Unsupported> {
        self.conditions += n;
        if self.conditions > MAX_CONDITIONS {
            return Err(unsupported(format!(
                "The filter has more than {MAX_CONDITIONS} conditions"
            )));
        }
        Ok(())
    }

    /// One object at `depth` (the number of objects and arrays around its keys), its keys
    /// under the field path `prefix`.
    fn object(
        &mut self,
        m: &Map<String, Value>,
        prefix: &[String],
        depth: usize,
    ) -> Result<Node, Unsupported> {
        if depth > MAX_DEPTH {
            return Err(unsupported(format!(
                "The filter is nested deeper than {MAX_DEPTH} levels"
            )));
        }
        if m.is_empty() {
            return Ok(match prefix {
                [] => Node::And(vec![]),
                _ => Node::Noop(prefix.to_vec()),
            });
        }
        let mut nodes = Vec::with_capacity(m.len());
        for (key, value) in m {
            nodes.push(self.entry(key, value, prefix, depth)?);
        }
        Ok(if nodes.len() == 1 {
            nodes.remove(0)
        } else {
            Node::And(nodes)
        })
    }

    fn entry(
        &mut self,
        key: &str,
        value: &Value,
        prefix: &[String],
        depth: usize,
    ) -> Result<Node, Unsupported> {
        if key == "_and" || key == "_or" {
            let Value::Array(members) = value else {
                return Err(unsupported(format!("\"{key}\" has to be an array")));
            };
            let mut nodes = Vec::with_capacity(members.len());
            let mut has_empty = false;
            for member in members {
                let Value::Object(m) = member else {
                    return Err(unsupported(format!(
                        "Each member of \"{key}\" has to be a filter object"
                    )));
                };
                has_empty |= m.is_empty();
                nodes.push(self.object(m, prefix, depth + 2)?);
            }
            // `addWhereClauses` skips a `_or` with an empty member. Under a field the member
            // is `{"field": {}}` by then (`shiftLogicalOperatorsUp`), which is not empty.
            return Ok(match key {
                "_and" => Node::And(nodes),
                _ if has_empty && prefix.is_empty() => Node::SkippedOr(nodes),
                _ => Node::Or(nodes),
            });
        }
        if key.starts_with('_') {
            let Some(op) = Op::from_name(key) else {
                return Err(unsupported(format!(
                    "The filter operator \"{key}\" is not supported"
                )));
            };
            if prefix.is_empty() {
                return Err(unsupported(format!("Invalid filter key \"{key}\"")));
            }
            return self.condition(prefix, op, value);
        }
        // A function (`year(date_created)`), a dotted path or an empty name is no field.
        if key.is_empty() || key.contains(['.', '(', ')']) {
            return Err(unsupported(format!("Invalid filter key \"{key}\"")));
        }
        let mut path = prefix.to_vec();
        path.push(key.to_string());
        match value {
            Value::Object(m) => self.object(m, &path, depth + 1),
            // `parseFilterRecursive` would nest an array as `{"0": …}`, and `applyFilter`
            // throws on a null.
            Value::Array(_) | Value::Null => {
                Err(unsupported(format!("Invalid filter value for \"{key}\"")))
            }
            scalar => self.condition(&path, Op::Eq, scalar),
        }
    }

    fn condition(&mut self, path: &[String], op: Op, value: &Value) -> Result<Node, Unsupported> {
        let arg = if op.takes_list() {
            let list = self.list(op, value)?;
            self.count(list.len().max(1))?;
            Arg::List(list)
        } else {
            self.count(1)?;
            let lit = match self.resolve(value, op)? {
                Resolved::One(l) => l,
                Resolved::Many(_) => return Err(primitive_only(op.name())),
            };
            if op.lowers() && !matches!(lit, Lit::Str(_)) {
                // Directus: `compareValue.toLowerCase is not a function`.
                return Err(unsupported(format!(
                    "The filter value for \"{}\" has to be a string",
                    op.name()
                )));
            }
            if op.likes() && matches!(lit, Lit::Date(_)) {
                return Err(primitive_only(op.name()));
            }
            Arg::One(lit)
        };
        Ok(Node::Cond(Cond {
            path: path.to_vec(),
            op,
            arg,
        }))
    }

    /// `parseFilterEntry` for `_in`, `_nin`, `_between`, `_nbetween`: an object's values, an
    /// array, a string split at commas or one value; each resolved, arrays flattened once.
    fn list(&mut self, op: Op, value: &Value) -> Result<Vec<Lit>, Unsupported> {
        let too_many = || {
            unsupported(format!(
                "The filter has more than {MAX_CONDITIONS} conditions"
            ))
        };
        let len = match value {
            Value::Object(m) => m.len(),
            Value::Array(a) => a.len(),
            Value::String(s) => s.matches(',').count() + 1,
            _ => 1,
        };
        if len > MAX_CONDITIONS {
            return Err(too_many());
        }
        let raw: Vec<Value> = match value {
            Value::Object(m) => m.values().cloned().collect(),
            Value::Array(a) => a.clone(),
            Value::String(s) => s.split(',').map(|p| Value::String(p.into())).collect(),
            other => vec![other.clone()],
        };
        let mut out = Vec::with_capacity(raw.len());
        for item in &raw {
            match item {
                Value::Array(inner) => {
                    for v in inner {
                        match self.resolve(v, op)? {
                            Resolved::One(l) => out.push(l),
                            Resolved::Many(_) => return Err(primitive_only(op.name())),
                        }
                    }
                }
                v => match self.resolve(v, op)? {
                    Resolved::One(l) => out.push(l),
                    Resolved::Many(ls) => out.extend(ls),
                },
            }
            if out.len() > MAX_CONDITIONS {
                return Err(too_many());
            }
        }
        Ok(out)
    }

    /// `parseDynamicVariable` then `parseFilter`'s coercion of `"true"`, `"false"`, `"null"`.
    fn resolve(&self, v: &Value, op: Op) -> Result<Resolved, Unsupported> {
        let Value::String(s) = v else {
            return Lit::from_scalar(v)
                .map(Resolved::One)
                .ok_or_else(|| primitive_only(op.name()));
        };
        let vars = self.vars;
        let uuids = |ids: &[uuid::Uuid]| {
            Resolved::Many(ids.iter().map(|u| Lit::Str(u.to_string())).collect())
        };
        let not_loaded = |var: &str| {
            unsupported(format!(
                "\"{s}\": gatehouse does not read the fields of {var} in a filter"
            ))
        };
        if s.starts_with("$NOW") {
            return parse_now(s, vars.now)
                .map(|d| Resolved::One(Lit::Date(d)))
                .ok_or_else(|| unsupported(format!("\"{s}\" is not a valid date")));
        }
        if let Some(rest) = s.strip_prefix("$CURRENT_USER") {
            let Some(user) = &vars.user else {
                return Ok(Resolved::One(Lit::Null));
            };
            if rest.is_empty() {
                return Ok(Resolved::One(
                    user.get("id")
                        .and_then(Lit::from_scalar)
                        .unwrap_or(Lit::Null),
                ));
            }
            // `get(context, "$CURRENT_USERx", null)`: anything but a dotted path is null.
            let Some(path) = rest.strip_prefix('.') else {
                return Ok(Resolved::One(Lit::Null));
            };
            return user_value(user, path, s);
        }
        if let Some(rest) = s.strip_prefix("$CURRENT_ROLES") {
            return match rest {
                "" => Ok(uuids(&vars.roles)),
                r if r.starts_with('.') => Err(not_loaded("$CURRENT_ROLES")),
                _ => Ok(Resolved::One(Lit::Null)),
            };
        }
        if let Some(rest) = s.strip_prefix("$CURRENT_ROLE") {
            return match rest {
                "" => Ok(Resolved::One(
                    vars.role.map_or(Lit::Null, |r| Lit::Str(r.to_string())),
                )),
                r if r.starts_with('.') => Err(not_loaded("$CURRENT_ROLE")),
                _ => Ok(Resolved::One(Lit::Null)),
            };
        }
        if let Some(rest) = s.strip_prefix("$CURRENT_POLICIES") {
            return match rest {
                "" => Ok(uuids(&vars.policies)),
                r if r.starts_with('.') => Err(not_loaded("$CURRENT_POLICIES")),
                _ => Ok(Resolved::One(Lit::Null)),
            };
        }
        Lit::from_scalar(v)
            .map(Resolved::One)
            .ok_or_else(|| primitive_only(op.name()))
    }
}

enum Resolved {
    One(Lit),
    Many(Vec<Lit>),
}

/// `$CURRENT_USER.<path>` read from the user row as Directus's `get` reads the fetched user:
/// through expanded relations (objects) and lists (each member's value, empty ones left out);
/// a null relation on the way is null. A field the row does not have is refused: Directus
/// fails to read the user with a field it does not know, and a caller that forgot to read
/// one must not turn it into null.
fn user_value(user: &Map<String, Value>, path: &str, var: &str) -> Result<Resolved, Unsupported> {
    let mut current = Value::Object(user.clone());
    for raw_key in path.split('.') {
        // A `field:collection` key (many-to-any) reads `field`.
        let key = raw_key.split(':').next().unwrap_or(raw_key);
        current = match current {
            // Directus reads the user with these fields and fails on one it does not know.
            Value::Object(mut m) => m.remove(key).ok_or_else(|| {
                unsupported(format!("\"{var}\": the user has no field \"{key}\""))
            })?,
            Value::Array(items) => {
                let found: Vec<Value> = items
                    .into_iter()
                    .filter_map(|item| match item {
                        Value::Object(mut m) => m.remove(key),
                        _ => None,
                    })
                    .filter(truthy)
                    .flat_map(|v| match v {
                        Value::Array(inner) => inner,
                        v => vec![v],
                    })
                    .collect();
                if found.is_empty() {
                    Value::Null
                } else {
                    Value::Array(found)
                }
            }
            Value::Null => return Ok(Resolved::One(Lit::Null)),
            // SECURITY: a relation the caller did not expand is not "no value": refuse
            // rather than compare against null.
            _ => {
                return Err(unsupported(format!(
                    "\"{var}\" reads through a field of the user that is not expanded"
                )))
            }
        };
    }
    let one = |v: &Value| -> Result<Lit, Unsupported> {
        match v {
            // An expanded relation stands for its key.
            Value::Object(m) => m
                .get("id")
                .and_then(Lit::from_scalar)
                .ok_or_else(|| primitive_only("_eq")),
            v => Lit::from_scalar(v).ok_or_else(|| primitive_only("_eq")),
        }
    };
    match &current {
        Value::Array(items) => Ok(Resolved::Many(
            items.iter().map(one).collect::<Result<_, _>>()?,
        )),
        v => one(v).map(Resolved::One),
    }
}

fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(_) | Value::Object(_) => true,
    }
}

impl Node {
    /// Whether Directus writes no SQL for this node (so it leaves its group).
    pub(super) fn is_dropped(&self) -> bool {
        match self {
            Node::And(ns) | Node::Or(ns) => ns.iter().all(Node::is_dropped),
            Node::SkippedOr(_) | Node::Noop(_) => true,
            Node::Cond(c) => c.skipped(),
        }
    }

    pub(super) fn visit<'a>(&'a self, f: &mut impl FnMut(&'a [String], Option<Op>)) {
        match self {
            Node::And(ns) | Node::Or(ns) | Node::SkippedOr(ns) => {
                ns.iter().for_each(|n| n.visit(f));
            }
            Node::Cond(c) => f(&c.path, Some(c.op)),
            Node::Noop(path) => f(path, None),
        }
    }
}

impl Cond {
    /// `_between`/`_nbetween` with other than two values: Directus's `applyOperatorToRaw`
    /// returns without a condition.
    pub(super) fn skipped(&self) -> bool {
        matches!(self.op, Op::Between | Op::Nbetween)
            && matches!(&self.arg, Arg::List(l) if l.len() != 2)
    }
}
