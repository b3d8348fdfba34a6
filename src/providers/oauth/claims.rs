//! From a provider's claims (ID token merged with userinfo, or the oauth2 profile) to an
//! `Identity`, as Directus reads them: keys may be dotted paths into nested objects (Directus
//! flattens the profile with `flat`), values are taken when JavaScript finds them truthy, and
//! the identifier falls back to the email.

use serde_json::{Map, Value};

use super::OAuthConfig;
use crate::providers::Identity;

/// The value at `key`: the key itself, else a dotted path (`data.email`, `emails.0`).
pub fn lookup<'a>(claims: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    if let Some(v) = claims.get(key) {
        return Some(v);
    }
    let mut parts = key.split('.');
    let mut v = claims.get(parts.next()?)?;
    for p in parts {
        v = match v {
            Value::Object(m) => m.get(p)?,
            Value::Array(a) => a.get(p.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(v)
}

/// JavaScript's truthiness.
pub fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0 && !f.is_nan()),
        Value::String(s) => !s.is_empty(),
        Value::Array(_) | Value::Object(_) => true,
    }
}

/// `String(v)` for the scalars an identifier or email can be.
fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn truthy_scalar(claims: &Map<String, Value>, key: &str) -> Option<String> {
    lookup(claims, key).filter(|v| truthy(v)).and_then(scalar)
}

/// The group claim: a string is one group, an array its string (or number) members.
pub fn groups(claims: &Map<String, Value>, claim: &str) -> Vec<String> {
    match claims.get(claim) {
        Some(Value::String(s)) if !s.is_empty() => vec![s.clone()],
        Some(Value::Array(a)) => a.iter().filter_map(scalar).collect(),
        _ => vec![],
    }
}

/// The identity in `claims`, or None when neither the identifier nor the email is there.
pub fn identity(
    claims: &Map<String, Value>,
    config: &OAuthConfig,
    refresh_token: Option<&str>,
) -> Option<Identity> {
    let email = truthy_scalar(claims, &config.email_key);
    let external_id = config
        .identifier_key
        .as_deref()
        .and_then(|k| truthy_scalar(claims, k))
        .or_else(|| email.clone())?;
    let name = |key: &Option<String>| {
        key.as_deref()
            .and_then(|k| lookup(claims, k))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    Some(Identity {
        external_id,
        email,
        first_name: name(&config.first_name_key),
        last_name: name(&config.last_name_key),
        groups: groups(claims, &config.group_claim),
        auth_data: refresh_token.map(|t| serde_json::json!({ "refreshToken": t })),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn dotted_paths_reach_into_objects_and_arrays() {
        let c = obj(json!({"data": {"email": "a@x.example", "ids": [7, 8]}, "a.b": 1}));
        assert_eq!(lookup(&c, "data.email"), Some(&json!("a@x.example")));
        assert_eq!(lookup(&c, "data.ids.1"), Some(&json!(8)));
        assert_eq!(lookup(&c, "a.b"), Some(&json!(1)));
        assert_eq!(lookup(&c, "data.missing"), None);
        assert_eq!(lookup(&c, "data.email.x"), None);
        assert_eq!(lookup(&c, ""), None);
    }

    #[test]
    fn truthiness_is_javascripts() {
        for v in [json!(null), json!(false), json!(0), json!(""), json!(0.0)] {
            assert!(!truthy(&v), "{v}");
        }
        for v in [
            json!(true),
            json!(1),
            json!("0"),
            json!("false"),
            json!([]),
            json!({}),
        ] {
            assert!(truthy(&v), "{v}");
        }
    }

    #[test]
    fn groups_are_a_string_or_an_array() {
        let c = obj(json!({"g": "admins,staff", "a": ["x", 2, {"y": 1}], "e": ""}));
        assert_eq!(groups(&c, "g"), ["admins,staff"]);
        assert_eq!(groups(&c, "a"), ["x", "2"]);
        assert!(groups(&c, "e").is_empty());
        assert!(groups(&c, "none").is_empty());
    }
}
