//! A parsed filter as a payload rule: Directus's `validatePayload` (`packages/utils/shared/
//! validate-payload.ts`) with the Joi schema `generateJoi` (`…/generate-joi.ts`) builds for
//! each condition, and the failures as `joiValidationErrorItemToErrorExtensions`
//! (`packages/validation/src/utils/joi-to-error-extensions.ts`) names them.
//!
//! Only the fields the payload carries are checked (Joi passes an absent key unless it is
//! `required()`, which only `_submitted` asks for). `_and` reports every branch's failures;
//! `_or` passes when one branch passes and otherwise reports all of theirs.
//!
//! Where Directus itself fails with a 500 (Joi raises an error its translation cannot name,
//! such as `_contains` on a number or `_starts_with` on `""`, or the rule cannot be built,
//! such as `_between` with one value or `_gt` with a value that is neither a number nor a
//! date), gatehouse reports the operator's own kind (`contains`, `starts_with`, `between`,
//! `gt`, …): the payload is refused either way.

use std::cmp::Ordering;
use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use regex::Regex;
use serde_json::Value;

use super::parse::{Arg, Cond, Node, Op};
use super::value::{
    iso, joi_date, joi_date_of, js_number, js_number_string, num_json, regex_source, Lit,
};
use super::Failure;
use crate::store::Item;

pub(super) fn validate(node: &Node, payload: &Item) -> Vec<Failure> {
    match node {
        Node::And(ns) => ns.iter().flat_map(|n| validate(n, payload)).collect(),
        Node::Or(ns) => {
            let mut swallowed = Vec::new();
            for n in ns {
                let failures = validate(n, payload);
                if failures.is_empty() {
                    return vec![];
                }
                swallowed.extend(failures);
            }
            swallowed
        }
        // Directus throws on the `{}` member (`generateJoi` needs a field); gatehouse
        // passes it, as the `_or` is skipped when filtering.
        Node::SkippedOr(_) | Node::Noop(_) => vec![],
        Node::Cond(c) => cond(c, payload),
    }
}

fn failure(field: &str, kind: &str) -> Failure {
    Failure {
        field: field.to_string(),
        kind: kind.to_string(),
        valid: None,
        invalid: None,
        substring: None,
    }
}

fn cond(c: &Cond, payload: &Item) -> Vec<Failure> {
    let Some((field, _)) = c.path.split_first() else {
        return vec![];
    };
    // Through a relation, the schema is `Joi.object({...})`: an absent key passes, anything
    // but an object is `object.base` ("required").
    let mut current = payload;
    for seg in &c.path[..c.path.len() - 1] {
        match current.get(seg) {
            None => return vec![],
            Some(Value::Object(o)) => current = o,
            Some(_) => return vec![failure(field, "required")],
        }
    }
    let Some(value) = c.path.last().and_then(|last| current.get(last)) else {
        return match c.op {
            Op::Submitted => vec![failure(field, "required")],
            _ => vec![],
        };
    };
    let one = match &c.arg {
        Arg::One(l) => l,
        Arg::List(list) => return list_rule(field, c.op, list, value),
    };
    match c.op {
        Op::Eq => only(field, value, &typecast(one)),
        Op::Neq => not(field, value, &typecast(one)),
        Op::Null => only(field, value, &[Lit::Null]),
        Op::Nnull => not(field, value, &[Lit::Null]),
        Op::Empty => only(field, value, &[Lit::Str(String::new())]),
        Op::Nempty => not(field, value, &[Lit::Str(String::new())]),
        Op::Contains | Op::Icontains | Op::Ncontains => contains(field, c.op, one, value),
        op if op.likes() => pattern(field, op, one, value),
        Op::Gt | Op::Gte | Op::Lt | Op::Lte => {
            let kind = &c.op.name()[1..];
            if matches!(one, Lit::Date(_)) || one.to_number().is_nan() {
                let Some(limit) = joi_date_of(one) else {
                    return vec![failure(field, kind)];
                };
                date_rules(field, value, &[(c.op, limit)])
            } else {
                number_rules(field, value, &[(c.op, one.to_number())])
            }
        }
        // `_ieq`, `_nieq`: `generateJoi` has no rule for them (`Joi.any()`).
        _ => vec![],
    }
}

/// `_eq`/`_neq`: the value and, when it reads as one, its number (or a number's string).
fn typecast(l: &Lit) -> Vec<Lit> {
    match l {
        Lit::Num(n) => vec![l.clone(), Lit::Str(js_number_string(*n))],
        Lit::Null | Lit::Bool(_) => vec![l.clone()],
        Lit::Str(s) if s.is_empty() => vec![l.clone()],
        Lit::Str(s) => match js_number(s) {
            n if n.is_nan() => vec![l.clone()],
            n => vec![l.clone(), Lit::Num(n)],
        },
        Lit::Date(d) => vec![l.clone(), Lit::Num(d.timestamp_millis() as f64)],
    }
}

/// Joi's `valid`/`invalid` lookup: strict equality of scalars (a `Date` equals no JSON).
fn listed(value: &Value, list: &[Lit]) -> bool {
    list.iter().any(|l| match (value, l) {
        (Value::Null, Lit::Null) => true,
        (Value::Bool(a), Lit::Bool(b)) => a == b,
        (Value::Number(a), Lit::Num(b)) => a.as_f64() == Some(*b),
        (Value::String(a), Lit::Str(b)) => a == b,
        _ => false,
    })
}

/// `any.only`: one allowed value is `eq` (`null`, `empty` for those), several are `in`.
fn only(field: &str, value: &Value, valids: &[Lit]) -> Vec<Failure> {
    if valids.is_empty() || listed(value, valids) {
        return vec![];
    }
    vec![match valids {
        [Lit::Null] => failure(field, "null"),
        [Lit::Str(s)] if s.is_empty() => failure(field, "empty"),
        [one] => Failure {
            valid: Some(one.to_json()),
            ..failure(field, "eq")
        },
        many => Failure {
            valid: Some(Value::Array(many.iter().map(Lit::to_json).collect())),
            ..failure(field, "in")
        },
    }]
}

/// `any.invalid`: one refused value is `neq` (`nnull`, `nempty`), several are `nin`.
fn not(field: &str, value: &Value, invalids: &[Lit]) -> Vec<Failure> {
    if !listed(value, invalids) {
        return vec![];
    }
    vec![match invalids {
        [Lit::Null] => failure(field, "nnull"),
        [Lit::Str(s)] if s.is_empty() => failure(field, "nempty"),
        [one] => Failure {
            invalid: Some(one.to_json()),
            ..failure(field, "neq")
        },
        many => Failure {
            invalid: Some(Value::Array(many.iter().map(Lit::to_json).collect())),
            ..failure(field, "nin")
        },
    }]
}

fn list_rule(field: &str, op: Op, list: &[Lit], value: &Value) -> Vec<Failure> {
    match op {
        Op::In => only(field, value, list),
        Op::Nin => not(field, value, list),
        Op::Between | Op::Nbetween => {
            let kind = &op.name()[1..];
            let [low, high, ..] = list else {
                return vec![failure(field, kind)];
            };
            // Numbers when every value is a safe number (a `Date` is not), else dates.
            let numeric = list.iter().all(|l| {
                let n = match l {
                    Lit::Date(_) => f64::NAN,
                    l => l.to_number(),
                };
                !n.is_nan() && n.abs() <= 9_007_199_254_740_991.0
            });
            // `min`/`max` for `_between`; `less`/`greater` for `_nbetween` (so nothing
            // passes it when the first value is the lower one, as in Directus).
            fn rules<T>(op: Op, a: T, b: T) -> [(Op, T); 2] {
                match op {
                    Op::Between => [(Op::Gte, a), (Op::Lte, b)],
                    _ => [(Op::Lt, a), (Op::Gt, b)],
                }
            }
            if numeric {
                number_rules(field, value, &rules(op, low.to_number(), high.to_number()))
            } else {
                let (Some(a), Some(b)) = (joi_date_of(low), joi_date_of(high)) else {
                    return vec![failure(field, kind)];
                };
                date_rules(field, value, &rules(op, a, b))
            }
        }
        _ => vec![],
    }
}

/// Joi's `number()`: a number, or a string that reads as one exactly (`number.unsafe` when
/// it loses digits); anything else is `number.base` ("required").
fn number_rules(field: &str, value: &Value, rules: &[(Op, f64)]) -> Vec<Failure> {
    let n = match joi_number(value) {
        Ok(n) => n,
        Err(kind) => return vec![failure(field, kind)],
    };
    rules
        .iter()
        .filter(|(op, limit)| !holds(*op, n.partial_cmp(limit)))
        .map(|(op, limit)| Failure {
            valid: Some(num_json(*limit)),
            ..failure(field, &op.name()[1..])
        })
        .collect()
}

fn date_rules(field: &str, value: &Value, rules: &[(Op, DateTime<Utc>)]) -> Vec<Failure> {
    let Some(d) = joi_date(value) else {
        return vec![failure(field, "required")];
    };
    rules
        .iter()
        .filter(|(op, limit)| !holds(*op, Some(d.cmp(limit))))
        .map(|(op, limit)| Failure {
            valid: Some(Value::String(iso(*limit))),
            ..failure(field, &op.name()[1..])
        })
        .collect()
}

fn holds(op: Op, o: Option<Ordering>) -> bool {
    o.is_some_and(|o| match op {
        Op::Gt => o.is_gt(),
        Op::Gte => o.is_ge(),
        Op::Lt => o.is_lt(),
        Op::Lte => o.is_le(),
        _ => false,
    })
}

const MAX_SAFE: f64 = 9_007_199_254_740_991.0;

/// `joi/lib/types/number.js`: its coercion of strings and its safe-number check.
fn joi_number(value: &Value) -> Result<f64, &'static str> {
    match value {
        Value::Number(n) => match n.as_f64() {
            Some(f) if f.abs() > MAX_SAFE => Err("unsafe"),
            Some(f) => Ok(f),
            None => Err("required"),
        },
        Value::String(s) => {
            static NUMBER: LazyLock<Option<Regex>> = LazyLock::new(|| {
                Regex::new(r"^[+-]?(?:(?:[0-9]+(?:\.[0-9]*)?)|(?:\.[0-9]+))(?:[eE]([+-]?[0-9]+))?$")
                    .ok()
            });
            let t = s.trim();
            if !NUMBER.as_ref().is_some_and(|r| r.is_match(t)) {
                return Err("required");
            }
            let f: f64 = t.parse().map_err(|_| "required")?;
            let f = if f == 0.0 { 0.0 } else { f };
            let printed = js_number_string(f);
            let exact = if t.contains(['e', 'E']) {
                significant(t) == significant(&printed)
            } else {
                printed.contains('e') || printed == normalize_decimal(t)
            };
            if !exact {
                return Err("unsafe");
            }
            if f.abs() > MAX_SAFE {
                return Err("unsafe");
            }
            Ok(f)
        }
        _ => Err("required"),
    }
}

fn replace(re: &'static LazyLock<Option<Regex>>, s: &str, with: &str) -> String {
    match re.as_ref() {
        Some(r) => r.replace(s, with).into_owned(),
        None => s.to_string(),
    }
}

macro_rules! re {
    ($name:ident, $src:literal) => {
        static $name: LazyLock<Option<Regex>> = LazyLock::new(|| Regex::new($src).ok());
    };
}

/// `extractSignificantDigits`.
fn significant(s: &str) -> String {
    re!(EXPONENT, r"[eE][+-]?[0-9]+$");
    re!(DOT, r"\.");
    re!(TRAILING_ZEROS, r"0+$");
    re!(LEADING, r"^[+-]?(0*)?");
    let s = replace(&EXPONENT, s, "");
    let s = replace(&DOT, &s, "");
    let s = replace(&TRAILING_ZEROS, &s, "");
    replace(&LEADING, &s, "")
}

/// `normalizeDecimal`.
fn normalize_decimal(s: &str) -> String {
    re!(PLUS, r"^\+");
    re!(POINT_ZEROS, r"\.0*$");
    re!(BARE_FRACTION, r"^(-?)\.([^.]*)$");
    re!(LEADING_ZEROS, r"^(-?)0+([0-9])");
    re!(TRAILING_ZEROS, r"0+$");
    let s = replace(&PLUS, s, "");
    let s = replace(&POINT_ZEROS, &s, "");
    let s = replace(&BARE_FRACTION, &s, "${1}0.${2}");
    let mut s = replace(&LEADING_ZEROS, &s, "${1}${2}");
    if s.contains('.') && s.ends_with('0') {
        s = replace(&TRAILING_ZEROS, &s, "");
    }
    if s == "-0" {
        return "0".into();
    }
    s
}

/// `_contains`, `_icontains`, `_ncontains`: `Joi.alternatives(string().contains(x),
/// array().items(…))`; a value that is not a string is `Joi.any().equal(true)`.
fn contains(field: &str, op: Op, needle: &Lit, value: &Value) -> Vec<Failure> {
    let Lit::Str(needle) = needle else {
        return only(field, value, &[Lit::Bool(true)]);
    };
    let has = |s: &str| match op {
        Op::Icontains => s.to_lowercase().contains(&needle.to_lowercase()),
        _ => s.contains(needle.as_str()),
    };
    let ok = match value {
        Value::String(s) if !s.is_empty() => has(s) != (op == Op::Ncontains),
        // An array passes when one member (a non-empty string) contains it, or, for
        // `_ncontains`, when none does.
        Value::Array(items) => {
            let any = items
                .iter()
                .any(|i| i.as_str().is_some_and(|s| !s.is_empty() && has(s)));
            any != (op == Op::Ncontains)
        }
        _ => false,
    };
    if ok {
        return vec![];
    }
    let kind = if op == Op::Ncontains {
        "ncontains"
    } else {
        "contains"
    };
    vec![Failure {
        substring: Some(needle.clone()),
        ..failure(field, kind)
    }]
}

/// The starts/ends operators: `Joi.string().pattern(/^x.*/, { name, invert })`.
fn pattern(field: &str, op: Op, needle: &Lit, value: &Value) -> Vec<Failure> {
    let Lit::Str(needle) = needle else {
        return only(field, value, &[Lit::Bool(true)]);
    };
    let kind = &op.name()[1..];
    let Value::String(s) = value else {
        return vec![failure(field, "required")];
    };
    let insensitive = matches!(
        op,
        Op::IstartsWith | Op::NistartsWith | Op::IendsWith | Op::NiendsWith
    );
    let (s, n) = if insensitive {
        (s.to_lowercase(), needle.to_lowercase())
    } else {
        (s.clone(), needle.clone())
    };
    let found = match op {
        Op::StartsWith | Op::NstartsWith | Op::IstartsWith | Op::NistartsWith => s.starts_with(&n),
        _ => s.ends_with(&n),
    };
    let inverted = matches!(
        op,
        Op::NstartsWith | Op::NistartsWith | Op::NendsWith | Op::NiendsWith
    );
    // Joi's `string()` refuses "" (`string.empty`) before the pattern.
    if !s.is_empty() && found != inverted {
        return vec![];
    }
    vec![Failure {
        substring: Some(regex_source(needle)),
        ..failure(field, kind)
    }]
}
