//! The `CORS_*` variables, read as Directus reads them: `@directus/env` casts each value (its
//! `cast` and `guessType`), and `api/src/middleware/cors.ts` hands the result to the `cors`
//! package. Every form Directus accepts for `CORS_ORIGIN` is read here, and checked at start:
//! an entry that could never match a browser's `Origin` stops the start instead of failing
//! quietly at the first preflight.

use regex::Regex;

use super::{bad, ConfigError, Vars};

/// Which origins get `Access-Control-Allow-Origin`.
#[derive(Debug, Clone)]
pub enum CorsOrigin {
    /// `CORS_ORIGIN=true`: the request's `Origin`, whatever it is, is sent back (the `cors`
    /// package's "reflect").
    Reflect,
    /// `CORS_ORIGIN=*`: the literal `*` (only without credentials, see [`CorsConfig`]).
    Any,
    /// One origin, a list or patterns: the request's `Origin` is sent back when it matches.
    List(Vec<OriginRule>),
}

/// One entry of a `CORS_ORIGIN` list.
#[derive(Debug, Clone)]
pub enum OriginRule {
    /// Compared byte for byte with the `Origin` header, as the `cors` package does.
    Exact(String),
    /// `regex:<pattern>`: Directus builds `new RegExp(pattern)` and calls `test`, an
    /// unanchored search; `Regex::is_match` searches the same way.
    Pattern(Regex),
}

impl OriginRule {
    pub fn matches(&self, origin: &str) -> bool {
        match self {
            OriginRule::Exact(o) => o == origin,
            OriginRule::Pattern(re) => re.is_match(origin),
        }
    }
}

/// CORS as configured; present only when `CORS_ENABLED=true` and `CORS_ORIGIN` is not false
/// (with `CORS_ORIGIN=false` the `cors` package adds nothing, so CORS is off either way).
#[derive(Debug, Clone)]
pub struct CorsConfig {
    pub origin: CorsOrigin,
    /// `Access-Control-Allow-Methods`, spelled as configured.
    pub methods: Vec<String>,
    /// `Access-Control-Allow-Headers`, spelled as configured; `None`
    /// (`CORS_ALLOWED_HEADERS=false`) sends back the preflight's `Access-Control-Request-Headers`.
    pub allowed_headers: Option<Vec<String>>,
    /// `Access-Control-Expose-Headers`; empty (`CORS_EXPOSED_HEADERS=false`) sends none.
    pub exposed_headers: Vec<String>,
    /// `Access-Control-Allow-Credentials: true`.
    pub credentials: bool,
    /// `Access-Control-Max-Age` in seconds; `None` (`CORS_MAX_AGE=false`) sends none.
    pub max_age: Option<u64>,
}

/// `CORS_ORIGIN` before `CORS_ENABLED` and credentials are taken into account.
enum Origin {
    Off,
    On(CorsOrigin),
}

/// The casting flag `@directus/env` reads (`getCastFlag`): the text before the first `:` when
/// it is one of its types.
fn cast_flag(raw: &str) -> Option<(&str, &str)> {
    let (flag, rest) = raw.split_once(':')?;
    ["string", "number", "regex", "array", "json", "boolean"]
        .contains(&flag)
        .then_some((flag, rest))
}

/// A serialized origin as browsers send it (RFC 6454 §6.2): lowercase `scheme://host[:port]`,
/// no path, no trailing slash. Anything else would be compared with `Origin` and never match.
fn is_origin(s: &str) -> bool {
    let Some((scheme, authority)) = s.split_once("://") else {
        return false;
    };
    let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_lowercase())
        && scheme
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+-.".contains(&b));
    // The host and what follows it (`""` or `:<port>`).
    let (host_ok, rest) = match authority.strip_prefix('[') {
        // An IPv6 literal: `[::1]` or `[::1]:8080`.
        Some(v6) => match v6.split_once(']') {
            Some((addr, rest)) => (addr.parse::<std::net::Ipv6Addr>().is_ok(), rest),
            None => return false,
        },
        None => {
            let (host, rest) = authority.split_at(authority.find(':').unwrap_or(authority.len()));
            let host_ok = !host.is_empty()
                && host.split('.').all(|label| {
                    !label.is_empty()
                        && label
                            .bytes()
                            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                });
            (host_ok, rest)
        }
    };
    let port_ok = match rest.strip_prefix(':') {
        None => rest.is_empty(),
        Some(p) => !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()),
    };
    scheme_ok && host_ok && port_ok
}

const ORIGIN_HELP: &str = "use true (any origin), *, an origin such as https://app.example.com \
     (scheme://host[:port], lowercase, no path or trailing slash), a comma-separated list of \
     them, regex:<pattern>, or false";

/// One exact origin (`*` is read by [`single`], and only there).
fn exact(s: &str) -> Result<OriginRule, String> {
    if s == "*" {
        return Err("`*` only works alone (CORS_ORIGIN=*), not inside a list".into());
    }
    if is_origin(s) {
        Ok(OriginRule::Exact(s.to_string()))
    } else if s.starts_with('/') {
        Err(format!(
            "{s:?} is read as a plain origin, not a pattern; write a pattern as regex:<pattern>"
        ))
    } else {
        Err(format!("{s:?} is not an origin; {ORIGIN_HELP}"))
    }
}

fn pattern(p: &str) -> Result<OriginRule, String> {
    Regex::new(p)
        .map(OriginRule::Pattern)
        .map_err(|e| format!("regex:{p} is not a valid pattern ({e})"))
}

/// A comma-separated list (`array:` or a value with a comma): `@directus/env` casts each
/// entry on its own, so an entry may be `regex:<pattern>` (without commas of its own).
fn csv_list(text: &str) -> Result<Origin, String> {
    let mut rules = Vec::new();
    // SECURITY: an entry that means "any origin" (`true`) or is not an origin is refused
    // rather than read the way the `cors` package would (`true` there allows every origin).
    for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        rules.push(match cast_flag(entry) {
            Some(("regex", p)) => pattern(p)?,
            Some(("string", s)) => exact(s)?,
            Some(_) => {
                return Err(format!(
                    "{entry:?}: a list holds origins and regex:<pattern> entries only"
                ))
            }
            None if entry == "true" || entry == "false" => {
                return Err(format!(
                    "{entry:?} inside a list: use CORS_ORIGIN={entry} alone"
                ))
            }
            None => exact(entry)?,
        });
    }
    if rules.is_empty() {
        return Err("the list holds no origin".into());
    }
    Ok(Origin::On(CorsOrigin::List(rules)))
}

/// A JSON value (`json:` or a value that parses as JSON): as `parseJSON` gives it to `cors`,
/// with no further casting of array entries.
fn json_value(v: serde_json::Value) -> Result<Origin, String> {
    use serde_json::Value;
    match v {
        Value::Bool(true) => Ok(Origin::On(CorsOrigin::Reflect)),
        Value::Bool(false) => Ok(Origin::Off),
        Value::String(s) => single(&s),
        Value::Array(items) if !items.is_empty() => {
            let rules = items
                .iter()
                .map(|i| match i {
                    Value::String(s) => exact(s),
                    other => Err(format!("{other} inside the list is not an origin")),
                })
                .collect::<Result<_, _>>()?;
            Ok(Origin::On(CorsOrigin::List(rules)))
        }
        other => Err(format!(
            "the JSON value {other} is not an origin; {ORIGIN_HELP}"
        )),
    }
}

fn single(s: &str) -> Result<Origin, String> {
    if s == "*" {
        return Ok(Origin::On(CorsOrigin::Any));
    }
    Ok(Origin::On(CorsOrigin::List(vec![exact(s)?])))
}

/// `CORS_ORIGIN` as `@directus/env`'s `cast` reads it: a cast flag first, else `true`/`false`,
/// else a value with a comma is a list, else JSON, else the plain string.
fn origin(raw: &str) -> Result<Origin, String> {
    match cast_flag(raw) {
        Some(("regex", p)) => Ok(Origin::On(CorsOrigin::List(vec![pattern(p)?]))),
        Some(("array", list)) => csv_list(list),
        Some(("json", text)) => json_value(
            serde_json::from_str(text).map_err(|e| format!("json:{text} is not JSON ({e})"))?,
        ),
        Some(("string", s)) => single(s),
        // `toBoolean`: only `true` and `1` are true.
        Some(("boolean", b)) => Ok(if b == "true" || b == "1" {
            Origin::On(CorsOrigin::Reflect)
        } else {
            Origin::Off
        }),
        Some(_) => Err(format!("{raw:?} is a number; {ORIGIN_HELP}")),
        None if raw == "true" => Ok(Origin::On(CorsOrigin::Reflect)),
        None if raw == "false" => Ok(Origin::Off),
        // A JSON array: what a JSON or YAML config file's list becomes here (Directus gets
        // the array itself from those files; from the environment it would split the text on
        // its commas, see docs/compatibility.md).
        None if raw.starts_with('[') => json_value(
            serde_json::from_str(raw).map_err(|e| format!("{raw} is not a JSON array ({e})"))?,
        ),
        None if raw.contains(',') => csv_list(raw),
        None => match serde_json::from_str::<serde_json::Value>(raw) {
            Ok(v) => json_value(v),
            Err(_) => single(raw),
        },
    }
}

/// A list variable: a JSON array of strings (as a JSON or YAML config file holds it) or
/// comma-separated text; entries are trimmed and empty ones dropped.
pub(super) fn list(v: &Vars, name: &str, default: &str) -> Result<Vec<String>, ConfigError> {
    let text = v.get(name).unwrap_or(default);
    let items: Vec<String> = if text.trim_start().starts_with('[') {
        serde_json::from_str::<Vec<String>>(text).map_err(|_| {
            bad(
                name,
                text,
                "use a comma-separated list or a JSON array of strings",
            )
        })?
    } else {
        text.split(',').map(|s| s.trim().to_string()).collect()
    };
    Ok(items.into_iter().filter(|s| !s.is_empty()).collect())
}

/// `CORS_ALLOWED_HEADERS` and `CORS_EXPOSED_HEADERS`: header names, or `false`.
fn header_names(v: &Vars, name: &str, default: &str) -> Result<Option<Vec<String>>, ConfigError> {
    if v.get(name) == Some("false") {
        return Ok(None);
    }
    let names = list(v, name, default)?;
    if let Some(n) = names
        .iter()
        .find(|n| axum::http::HeaderName::from_bytes(n.as_bytes()).is_err())
    {
        return Err(bad(
            name,
            n,
            "use header names such as Content-Type,Authorization",
        ));
    }
    Ok(Some(names))
}

/// Reads and checks every `CORS_*` variable (also when CORS is off, so a typo shows at once);
/// `None` when CORS is off.
pub(super) fn read(v: &Vars) -> Result<Option<CorsConfig>, ConfigError> {
    let enabled = v.bool("CORS_ENABLED", false)?;
    // The raw value: the cast flag decides the form (`regex:`, `array:`, …).
    let raw =
        v.0.get("CORS_ORIGIN")
            .map(String::as_str)
            .filter(|r| !r.is_empty() && cast_flag(r).is_none_or(|(_, rest)| !rest.is_empty()));
    let origin = match raw {
        None => Origin::Off,
        Some(raw) => origin(raw)
            .map_err(|why| ConfigError(format!("CORS_ORIGIN={raw:?} is not valid: {why}")))?,
    };
    let methods = list(v, "CORS_METHODS", "GET,POST,PATCH,DELETE")?;
    if methods.is_empty() {
        return Err(bad(
            "CORS_METHODS",
            v.get("CORS_METHODS").unwrap_or(""),
            "name at least one method",
        ));
    }
    if let Some(m) = methods
        .iter()
        .find(|m| axum::http::Method::from_bytes(m.as_bytes()).is_err())
    {
        return Err(bad(
            "CORS_METHODS",
            m,
            "use method names such as GET,POST,PATCH,DELETE",
        ));
    }
    let allowed_headers = header_names(v, "CORS_ALLOWED_HEADERS", "Content-Type,Authorization")?;
    let exposed_headers =
        header_names(v, "CORS_EXPOSED_HEADERS", "Content-Range")?.unwrap_or_default();
    let credentials = v.bool("CORS_CREDENTIALS", true)?;
    let max_age = match v.get("CORS_MAX_AGE") {
        Some("false") => None,
        Some(s) => Some(s.trim().parse::<u64>().map_err(|_| {
            bad(
                "CORS_MAX_AGE",
                s,
                "use a whole number of seconds, or false to send none",
            )
        })?),
        None => Some(18000),
    };
    let Origin::On(origin) = origin else {
        return Ok(None);
    };
    if !enabled {
        return Ok(None);
    }
    if credentials {
        // SECURITY: `Access-Control-Allow-Origin: *` with `Access-Control-Allow-Credentials:
        // true` is what the `cors` package sends for this configuration. Browsers refuse
        // credentialed answers with `*`, and reading it as "any origin, with cookies" would
        // hand every website the user's session; the operator chooses instead.
        if matches!(origin, CorsOrigin::Any) {
            return Err(ConfigError(
                "CORS_ORIGIN=* cannot be used with CORS_CREDENTIALS=true (the default): browsers \
                 refuse credentialed answers for `*`. List the origins that may send cookies \
                 (CORS_ORIGIN=https://app.example.com,…), or set CORS_CREDENTIALS=false to \
                 allow every origin without cookies"
                    .into(),
            ));
        }
        // With credentials a browser reads `*` in these lists as a name, not a wildcard.
        for (name, values) in [
            ("CORS_METHODS", Some(&methods)),
            ("CORS_ALLOWED_HEADERS", allowed_headers.as_ref()),
            ("CORS_EXPOSED_HEADERS", Some(&exposed_headers)),
        ] {
            if values.is_some_and(|vs| vs.iter().any(|s| s == "*")) {
                return Err(ConfigError(format!(
                    "{name}=* cannot be used with CORS_CREDENTIALS=true: browsers read `*` as a \
                     wildcard only without credentials; list the names"
                )));
            }
        }
    }
    Ok(Some(CorsConfig {
        origin,
        methods,
        allowed_headers,
        exposed_headers,
        credentials,
        max_age,
    }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn cors(pairs: &[(&str, &str)]) -> Result<Option<CorsConfig>, String> {
        let mut all = vec![("CORS_ENABLED", "true")];
        all.extend_from_slice(pairs);
        read(&Vars::from_pairs(all.iter().copied()).unwrap()).map_err(|e| e.to_string())
    }

    fn origin_of(value: &str) -> CorsOrigin {
        cors(&[("CORS_ORIGIN", value)])
            .unwrap_or_else(|e| panic!("{value}: {e}"))
            .unwrap_or_else(|| panic!("{value}: CORS is off"))
            .origin
    }

    /// Which of these origins a form lets through.
    fn allows(form: &CorsOrigin, origin: &str) -> bool {
        match form {
            CorsOrigin::Reflect | CorsOrigin::Any => true,
            CorsOrigin::List(rules) => rules.iter().any(|r| r.matches(origin)),
        }
    }

    #[test]
    fn defaults_are_directus_s() {
        // CORS_ENABLED defaults to false; CORS_ORIGIN to false, which is off as well.
        assert!(read(&Vars::default()).unwrap().is_none());
        assert!(cors(&[]).unwrap().is_none());
        let c = cors(&[("CORS_ORIGIN", "https://app.example.com")])
            .unwrap()
            .unwrap();
        assert_eq!(c.methods, ["GET", "POST", "PATCH", "DELETE"]);
        assert_eq!(
            c.allowed_headers.as_deref(),
            Some(&["Content-Type".to_string(), "Authorization".to_string()][..])
        );
        assert_eq!(c.exposed_headers, ["Content-Range"]);
        assert!(c.credentials);
        assert_eq!(c.max_age, Some(18000));
    }

    #[test]
    fn every_origin_form_directus_reads() {
        assert!(matches!(origin_of("true"), CorsOrigin::Reflect));
        assert!(matches!(origin_of("boolean:true"), CorsOrigin::Reflect));
        assert!(matches!(origin_of("json:true"), CorsOrigin::Reflect));
        for off in ["false", "boolean:false", "json:false", "boolean:no"] {
            assert!(cors(&[("CORS_ORIGIN", off)]).unwrap().is_none(), "{off}");
        }
        let one = origin_of("https://app.example.com");
        assert!(allows(&one, "https://app.example.com"));
        assert!(!allows(&one, "https://app.example.com.evil.test"));
        assert!(!allows(&one, "http://app.example.com"));
        for list in [
            "https://a.example,http://127.0.0.1:3000",
            "array:https://a.example,http://127.0.0.1:3000",
            "https://a.example, http://127.0.0.1:3000",
            r#"json:["https://a.example","http://127.0.0.1:3000"]"#,
            r#"["https://a.example","http://127.0.0.1:3000"]"#,
        ] {
            let form = origin_of(list);
            assert!(allows(&form, "https://a.example"), "{list}");
            assert!(allows(&form, "http://127.0.0.1:3000"), "{list}");
            assert!(!allows(&form, "http://127.0.0.1:3001"), "{list}");
        }
        let single_in_array = origin_of("array:https://a.example");
        assert!(allows(&single_in_array, "https://a.example"));
        let quoted = origin_of(r#""https://a.example""#);
        assert!(allows(&quoted, "https://a.example"));
        // The regex form, alone (commas included in the pattern) or as list entries.
        let re = origin_of(r"regex:^https://[a-z0-9-]+\.example\.com$");
        assert!(allows(&re, "https://app.example.com"));
        assert!(!allows(&re, "https://app.example.com.evil.test"));
        assert!(!allows(&re, "http://app.example.com"));
        let re_commas = origin_of(r"regex:^https://a{1,3}\.example$");
        assert!(allows(&re_commas, "https://aa.example"));
        let mixed = origin_of(r"https://b.example,regex:^http://127\.0\.0\.1:\d+$");
        assert!(allows(&mixed, "https://b.example"));
        assert!(allows(&mixed, "http://127.0.0.1:9"));
        assert!(!allows(&mixed, "http://127.0.0.2:9"));
        let unanchored = origin_of(r"regex:\.example\.com");
        assert!(allows(&unanchored, "https://x.example.com"));
        // IPv6 literals and ports.
        let v6 = origin_of("http://[::1]:8080");
        assert!(allows(&v6, "http://[::1]:8080"));
        // `*` needs CORS_CREDENTIALS=false (below).
        let any = cors(&[("CORS_ORIGIN", "*"), ("CORS_CREDENTIALS", "false")])
            .unwrap()
            .unwrap();
        assert!(matches!(any.origin, CorsOrigin::Any));
        assert!(!any.credentials);
        let any = cors(&[("CORS_ORIGIN", "string:*"), ("CORS_CREDENTIALS", "false")])
            .unwrap()
            .unwrap();
        assert!(matches!(any.origin, CorsOrigin::Any));
    }

    #[test]
    fn off_unless_enabled() {
        let v = Vars::from_pairs([("CORS_ORIGIN", "true")]).unwrap();
        assert!(read(&v).unwrap().is_none());
        let v = Vars::from_pairs([("CORS_ORIGIN", "true"), ("CORS_ENABLED", "false")]).unwrap();
        assert!(read(&v).unwrap().is_none());
        // A wrong value is refused even while CORS is off.
        let v = Vars::from_pairs([("CORS_ORIGIN", "https://a.example/")]).unwrap();
        assert!(read(&v).unwrap_err().to_string().contains("CORS_ORIGIN"));
        // `*` with credentials is only refused when it would be used.
        let v = Vars::from_pairs([("CORS_ORIGIN", "*")]).unwrap();
        assert!(read(&v).unwrap().is_none());
    }

    #[test]
    fn origins_that_could_never_match_are_refused() {
        for value in [
            "https://app.example.com/",
            "https://app.example.com/path",
            "app.example.com",
            "HTTPS://app.example.com",
            "https://App.example.com",
            "https://app.example.com:port",
            "https://app.example.com:123456",
            "https://",
            "https://a..b",
            "null",
            "42",
            "number:42",
            "json:{\"a\":1}",
            "json:[1]",
            "json:[]",
            "json:nope",
            r"/^https?:\/\/.*\.example\.com$/",
            "regex:(unclosed",
            "regex:^(?=lookahead)",
            "https://a.example,*",
            "https://a.example,true",
            "https://a.example,number:3",
            ",",
            "https://a.example,https://b.example/",
            "http://[::1",
            "http://[nothex]:80",
        ] {
            let err = cors(&[("CORS_ORIGIN", value)]).map(|_| ()).unwrap_err();
            assert!(err.contains("CORS_ORIGIN"), "{value}: {err}");
        }
        // The JS form of a pattern is pointed at the regex: form.
        let err = cors(&[("CORS_ORIGIN", r"/^https:\/\/a$/")])
            .map(|_| ())
            .unwrap_err();
        assert!(err.contains("regex:<pattern>"), "{err}");
    }

    #[test]
    fn star_with_credentials_is_refused() {
        for value in ["*", "string:*", "json:\"*\""] {
            let err = cors(&[("CORS_ORIGIN", value)]).map(|_| ()).unwrap_err();
            assert!(
                err.contains("CORS_ORIGIN=*") && err.contains("CORS_CREDENTIALS"),
                "{err}"
            );
        }
        for var in [
            "CORS_METHODS",
            "CORS_ALLOWED_HEADERS",
            "CORS_EXPOSED_HEADERS",
        ] {
            let err = cors(&[("CORS_ORIGIN", "https://a.example"), (var, "*")])
                .map(|_| ())
                .unwrap_err();
            assert!(err.contains(var), "{err}");
            let ok = cors(&[
                ("CORS_ORIGIN", "https://a.example"),
                (var, "*"),
                ("CORS_CREDENTIALS", "false"),
            ]);
            assert!(ok.unwrap().is_some(), "{var}");
        }
    }

    #[test]
    fn the_other_variables() {
        let c = cors(&[
            ("CORS_ORIGIN", "https://a.example"),
            ("CORS_METHODS", "GET, POST ,SEARCH"),
            ("CORS_ALLOWED_HEADERS", r#"["Content-Type","X-Custom"]"#),
            ("CORS_EXPOSED_HEADERS", "Content-Range,X-Total"),
            ("CORS_CREDENTIALS", "false"),
            ("CORS_MAX_AGE", "600"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(c.methods, ["GET", "POST", "SEARCH"]);
        assert_eq!(
            c.allowed_headers.unwrap(),
            ["Content-Type".to_string(), "X-Custom".to_string()]
        );
        assert_eq!(c.exposed_headers, ["Content-Range", "X-Total"]);
        assert!(!c.credentials);
        assert_eq!(c.max_age, Some(600));
        let c = cors(&[
            ("CORS_ORIGIN", "https://a.example"),
            ("CORS_ALLOWED_HEADERS", "false"),
            ("CORS_EXPOSED_HEADERS", "false"),
            ("CORS_MAX_AGE", "false"),
            ("CORS_METHODS", "array:GET"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(c.allowed_headers, None);
        assert!(c.exposed_headers.is_empty());
        assert_eq!(c.max_age, None);
        assert_eq!(c.methods, ["GET"]);
        assert_eq!(
            cors(&[("CORS_ORIGIN", "https://a.example"), ("CORS_MAX_AGE", "0")])
                .unwrap()
                .unwrap()
                .max_age,
            Some(0)
        );
        for (var, value) in [
            ("CORS_ENABLED", "maybe"),
            ("CORS_CREDENTIALS", "sometimes"),
            ("CORS_MAX_AGE", "5m"),
            ("CORS_MAX_AGE", "-1"),
            ("CORS_METHODS", "GET,PO ST"),
            ("CORS_METHODS", ","),
            ("CORS_ALLOWED_HEADERS", "Content-Type,Bad Header"),
            ("CORS_ALLOWED_HEADERS", "[\"unclosed\""),
            ("CORS_EXPOSED_HEADERS", "X:Y"),
        ] {
            let err = cors(&[("CORS_ORIGIN", "https://a.example"), (var, value)])
                .map(|_| ())
                .unwrap_err();
            assert!(err.contains(var), "{var}={value}: {err}");
        }
    }
}
