//! The `filter` query parameter: the JSON form (`api/src/utils/sanitize-query.ts`
//! sanitizeFilter) or the bracket form as Directus's `qs.parse` builds it (`api/src/app.ts`:
//! depth 10, arrays up to index 500), then the checks of `validateFilter`
//! (`api/src/utils/validate-query.ts`), in Directus's words.

use serde_json::{Map, Value};

use super::parse::{Op, MAX_CONDITIONS, MAX_DEPTH};
use super::value::Lit;
use super::Unsupported;

/// qs's `arrayLimit` in Directus (`QUERYSTRING_ARRAY_LIMIT`): a larger index makes an object.
const ARRAY_LIMIT: usize = 500;

fn unsupported(reason: impl Into<String>) -> Unsupported {
    Unsupported(reason.into())
}

pub(super) fn from_query(pairs: &[(String, String)]) -> Result<Option<Value>, Unsupported> {
    let json: Vec<&str> = pairs
        .iter()
        .filter(|(k, _)| k == "filter")
        .map(|(_, v)| v.as_str())
        .collect();
    let brackets: Vec<(&str, &str)> = pairs
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix("filter[")?, v.as_str())))
        .collect();
    let filter = match (json.as_slice(), brackets.is_empty()) {
        ([], true) => return Ok(None),
        ([_, ..], false) => {
            return Err(unsupported(
                "The filter is given both as JSON and in brackets",
            ))
        }
        // `if (rawQuery.filter)`: an empty value is no filter.
        ([""], true) => return Ok(None),
        ([text], true) => {
            let parsed: Value = serde_json::from_str(text)
                .map_err(|_| unsupported("Invalid JSON for filter object"))?;
            if !parsed.is_object() {
                return Err(unsupported("\"filter\" must be of type object"));
            }
            parsed
        }
        ([_, _, ..], true) => return Err(unsupported("\"filter\" is given more than once")),
        ([], false) => brackets_to_value(&brackets)?,
    };
    bounds(&filter, 0, &mut 0)?;
    if let Value::Object(m) = &filter {
        validate_filter(m)?;
    }
    Ok(Some(filter))
}

/// qs's tree of bracket keys.
enum QNode {
    Leaf { values: Vec<String>, array: bool },
    Map(Vec<(String, QNode)>),
}

fn brackets_to_value(pairs: &[(&str, &str)]) -> Result<Value, Unsupported> {
    // SECURITY: as many pairs as conditions at most.
    if pairs.len() > MAX_CONDITIONS {
        return Err(unsupported(format!(
            "The filter has more than {MAX_CONDITIONS} conditions"
        )));
    }
    let mut root = QNode::Map(Vec::new());
    for (rest, value) in pairs {
        let segments = segments(rest)?;
        insert(&mut root, &segments, value)?;
    }
    Ok(to_value(root))
}

/// `email][_eq]` (after `filter[`) to `["email", "_eq"]`; a trailing `[]` is an empty segment.
fn segments(rest: &str) -> Result<Vec<&str>, Unsupported> {
    let malformed = || unsupported(format!("Invalid filter key \"filter[{rest}\""));
    let mut out = Vec::new();
    let mut s = rest;
    loop {
        let end = s.find(']').ok_or_else(malformed)?;
        let seg = &s[..end];
        if seg.contains('[') {
            return Err(malformed());
        }
        out.push(seg);
        s = &s[end + 1..];
        if s.is_empty() {
            break;
        }
        s = s.strip_prefix('[').ok_or_else(malformed)?;
    }
    if out.len() > MAX_DEPTH {
        return Err(unsupported(format!(
            "The filter is nested deeper than {MAX_DEPTH} levels"
        )));
    }
    if out[..out.len() - 1].contains(&"") {
        return Err(malformed());
    }
    Ok(out)
}

fn insert(node: &mut QNode, segments: &[&str], value: &str) -> Result<(), Unsupported> {
    let conflict =
        || unsupported("The filter gives a field both a value and conditions".to_string());
    let QNode::Map(entries) = node else {
        return Err(conflict());
    };
    let Some((first, rest)) = segments.split_first() else {
        return Err(conflict());
    };
    let push = rest == [""];
    let pos = entries.iter().position(|(k, _)| k == first);
    if rest.is_empty() || push {
        match pos.map(|i| &mut entries[i].1) {
            None => entries.push((
                first.to_string(),
                QNode::Leaf {
                    values: vec![value.to_string()],
                    array: push,
                },
            )),
            Some(QNode::Leaf { values, array }) => {
                values.push(value.to_string());
                *array |= push;
            }
            Some(QNode::Map(_)) => return Err(conflict()),
        }
        return Ok(());
    }
    let child = match pos {
        Some(i) => &mut entries[i].1,
        None => {
            entries.push((first.to_string(), QNode::Map(Vec::new())));
            let last = entries.len() - 1;
            &mut entries[last].1
        }
    };
    insert(child, rest, value)
}

/// A map whose keys are all array indices (qs: at most `arrayLimit`) becomes an array, in
/// index order with the gaps closed, as qs compacts it.
fn to_value(node: QNode) -> Value {
    match node {
        QNode::Leaf { mut values, array } => {
            if values.len() == 1 && !array {
                Value::String(values.remove(0))
            } else {
                Value::Array(values.into_iter().map(Value::String).collect())
            }
        }
        QNode::Map(entries) => {
            let index = |k: &str| {
                (k == "0" || (!k.starts_with('0') && k.chars().all(|c| c.is_ascii_digit())))
                    .then(|| k.parse::<usize>().ok())
                    .flatten()
                    .filter(|i| *i <= ARRAY_LIMIT)
            };
            if !entries.is_empty() && entries.iter().all(|(k, _)| index(k).is_some()) {
                let mut items: Vec<(usize, Value)> = entries
                    .into_iter()
                    .map(|(k, v)| (index(&k).unwrap_or(0), to_value(v)))
                    .collect();
                items.sort_by_key(|(i, _)| *i);
                return Value::Array(items.into_iter().map(|(_, v)| v).collect());
            }
            let mut m = Map::new();
            for (k, v) in entries {
                m.insert(k, to_value(v));
            }
            Value::Object(m)
        }
    }
}

/// SECURITY: the depth and size bounds, before anything else walks the filter.
fn bounds(v: &Value, depth: usize, leaves: &mut usize) -> Result<(), Unsupported> {
    match v {
        Value::Object(_) | Value::Array(_) if depth >= MAX_DEPTH => Err(unsupported(format!(
            "The filter is nested deeper than {MAX_DEPTH} levels"
        ))),
        Value::Object(m) => m.values().try_for_each(|c| bounds(c, depth + 1, leaves)),
        Value::Array(a) => a.iter().try_for_each(|c| bounds(c, depth + 1, leaves)),
        _ => {
            *leaves += 1;
            if *leaves > MAX_CONDITIONS {
                return Err(unsupported(format!(
                    "The filter has more than {MAX_CONDITIONS} conditions"
                )));
            }
            Ok(())
        }
    }
}

/// `validateFilter`, on the filter as `parseFilter` leaves it (a plain value is `_eq`, the
/// list operators' values are lists, `"true"`/`"false"`/`"null"` are coerced).
fn validate_filter(m: &Map<String, Value>) -> Result<(), Unsupported> {
    for (key, nested) in m {
        if key == "_and" || key == "_or" {
            let Value::Array(members) = nested else {
                return Err(unsupported("Invalid filter object"));
            };
            for member in members {
                let Value::Object(member) = member else {
                    return Err(unsupported("Invalid filter object"));
                };
                validate_filter(member)?;
            }
        } else if key.starts_with('_') {
            match Op::from_name(key) {
                Some(op) if op.takes_list() => {
                    let empty = match nested {
                        Value::Array(a) => a.is_empty(),
                        Value::Object(o) => o.is_empty(),
                        _ => false,
                    };
                    if empty {
                        return Err(unsupported(format!(
                            "\"{key}\" has to be an array of values"
                        )));
                    }
                }
                Some(Op::Null | Op::Nnull | Op::Empty | Op::Nempty) => {
                    let ok = match nested {
                        Value::String(s) if s.is_empty() => true,
                        v => matches!(Lit::from_scalar(v), Some(Lit::Null | Lit::Bool(_))),
                    };
                    if !ok {
                        return Err(unsupported(format!("\"{key}\" has to be a boolean")));
                    }
                }
                // Unknown operators are refused when the filter is parsed.
                _ => primitive(nested, key)?,
            }
        } else {
            match nested {
                Value::Object(inner) => validate_filter(inner)?,
                Value::Array(_) => return Err(unsupported("Invalid filter object")),
                v => primitive(v, "_eq")?,
            }
        }
    }
    Ok(())
}

/// `validateFilterPrimitive`.
fn primitive(v: &Value, key: &str) -> Result<(), Unsupported> {
    match v {
        Value::Null | Value::Bool(_) => Ok(()),
        Value::Number(n) if n.as_f64().is_none_or(|f| f > 9_007_199_254_740_991.0) => Err(
            unsupported(format!("The filter value for \"{key}\" is not a valid number")),
        ),
        Value::Number(_) => Ok(()),
        Value::String(s) if s.is_empty() => Err(unsupported(format!(
            "You can't filter for an empty string in \"{key}\". Use \"_empty\" or \"_nempty\" instead"
        ))),
        Value::String(_) => Ok(()),
        Value::Array(_) | Value::Object(_) => Err(unsupported(format!(
            "The filter value for \"{key}\" has to be a string, number, or boolean"
        ))),
    }
}
