//! Property tests for the parsers that read untrusted or hand-written text: durations and
//! sizes (configuration), cookies, query strings, the JWT shape rule, `ip_access` lists and
//! email addresses. Each parser never panics, and reads back what its writer writes.

#![allow(clippy::unwrap_used)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue};
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use proptest::prelude::*;

use gatehouse::auth::access::ip_allowed;
use gatehouse::config::{parse_duration, parse_size, CookieConfig, SameSite};
use gatehouse::http::{cookies, extract::QueryPairs};
use gatehouse::tokens::{is_directus_jwt, AccessClaims, Tokens};

/// Units of the `ms` package and their length in milliseconds.
const DURATION_UNITS: &[(&str, u64)] = &[
    ("", 1),
    ("ms", 1),
    ("milliseconds", 1),
    ("s", 1_000),
    ("sec", 1_000),
    ("seconds", 1_000),
    ("m", 60_000),
    ("min", 60_000),
    ("h", 3_600_000),
    ("hours", 3_600_000),
    ("d", 86_400_000),
    ("w", 604_800_000),
    ("y", 31_557_600_000),
];

fn cookie_config(name: String) -> CookieConfig {
    CookieConfig {
        name,
        domain: None,
        secure: false,
        same_site: SameSite::Lax,
        ttl: Duration::from_secs(604_800),
    }
}

fn ipv4_mask(ip: Ipv4Addr, bits: u32) -> u32 {
    match bits {
        0 => 0,
        b => u32::from(ip) & (u32::MAX << (32 - b)),
    }
}

proptest! {
    // Failures print their minimal input; no regression files are written into the tree.
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    // ---- configuration: durations and sizes ----

    #[test]
    fn parse_duration_never_panics(text in any::<String>()) {
        let _ = parse_duration(&text);
    }

    #[test]
    fn parse_duration_reads_a_number_and_a_unit(
        n in 0u64..100_000,
        unit in prop::sample::select(DURATION_UNITS),
        upper in any::<bool>(),
        pad in "[ ]{0,2}",
    ) {
        let (name, ms) = unit;
        let name = if upper { name.to_ascii_uppercase() } else { name.to_string() };
        let text = format!("{pad}{n}{name}{pad}");
        // Directus's `ms` reads any length; gatehouse refuses 1e15 ms (31,688 years) and more.
        let want = Some(n * ms).filter(|ms| *ms < 1_000_000_000_000_000).map(Duration::from_millis);
        prop_assert_eq!(parse_duration(&text), want, "{:?}", text);
    }

    #[test]
    fn parse_duration_refuses_unknown_units(n in 0u64..1000, unit in "[a-z]{1,8}") {
        prop_assume!(!DURATION_UNITS.iter().any(|(u, _)| *u == unit)
            && !["msec", "msecs", "millisecond", "secs", "second", "mins", "minute", "minutes",
                 "hr", "hrs", "hour", "day", "days", "week", "weeks", "yr", "yrs", "year",
                 "years"].contains(&unit.as_str()));
        prop_assert_eq!(parse_duration(&format!("{n}{unit}")), None);
    }

    #[test]
    fn parse_size_never_panics(text in any::<String>()) {
        let _ = parse_size(&text);
    }

    #[test]
    fn parse_size_reads_bytes_and_units(
        n in 1usize..100_000,
        unit in prop::sample::select(&[("", 1usize), ("b", 1), ("kb", 1024), ("KB", 1024), ("mb", 1 << 20), ("gb", 1 << 30)][..]),
    ) {
        let (name, mult) = unit;
        let text = format!("{n}{name}");
        let want = n * mult;
        prop_assert_eq!(parse_size(&text), (want < 1_000_000_000_000).then_some(want), "{:?}", text);
    }

    // ---- cookies ----

    #[test]
    fn a_cookie_reads_back_as_set(
        name in "[A-Za-z_][A-Za-z0-9_]{0,20}",
        value in "[A-Za-z0-9_.\\-]{1,200}",
        before in "([a-z]{1,5}=[a-z0-9]{0,5}; ){0,3}",
    ) {
        // The first cookie of a name wins (as in cookie-parser): the others have other names.
        prop_assume!(!before.split("; ").any(|p| p.split('=').next() == Some(name.as_str())));
        let c = cookie_config(name.clone());
        let set = cookies::set(&c, &value, chrono::Utc::now());
        // What a browser sends back: the `name=value` part of `Set-Cookie`.
        let pair = set.split(';').next().unwrap();
        prop_assert_eq!(pair, format!("{name}={value}"));
        let mut headers = HeaderMap::new();
        headers.insert("cookie", HeaderValue::from_str(&format!("{before}{pair}")).unwrap());
        prop_assert_eq!(cookies::read(&headers, &name), Some(value));
    }

    #[test]
    fn reading_cookies_never_panics(raw in prop::collection::vec(any::<u8>(), 0..300), name in ".{0,10}") {
        let mut headers = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_bytes(&raw) {
            headers.insert("cookie", v);
        }
        let _ = cookies::read(&headers, &name);
    }

    // ---- query strings ----

    #[test]
    fn query_parsing_never_panics(query in any::<String>()) {
        let _ = QueryPairs::parse(Some(&query));
    }

    #[test]
    fn percent_encoded_pairs_round_trip(pairs in prop::collection::vec((any::<String>(), any::<String>()), 0..8)) {
        let query = pairs
            .iter()
            .map(|(k, v)| format!(
                "{}={}",
                utf8_percent_encode(k, NON_ALPHANUMERIC),
                utf8_percent_encode(v, NON_ALPHANUMERIC)
            ))
            .collect::<Vec<_>>()
            .join("&");
        prop_assert_eq!(QueryPairs::parse(Some(&query)).0, pairs);
    }

    #[test]
    fn plus_is_a_space_in_queries(k in "[a-z]{1,8}", words in prop::collection::vec("[a-z]{1,5}", 1..4)) {
        let q = QueryPairs::parse(Some(&format!("{k}={}", words.join("+"))));
        let want = words.join(" ");
        prop_assert_eq!(q.get(&k), Some(want.as_str()));
    }

    // ---- JWT shape ----

    #[test]
    fn the_jwt_shape_rule_never_panics(token in any::<String>(), dotted in "[A-Za-z0-9_=\\-]{0,40}\\.[A-Za-z0-9_=\\-]{0,80}\\.[A-Za-z0-9_=\\-]{0,40}") {
        let _ = is_directus_jwt(&token);
        let _ = is_directus_jwt(&dotted);
    }

    #[test]
    fn what_tokens_sign_is_a_directus_jwt(
        id in any::<u128>(),
        role in proptest::option::of(any::<u128>()),
        app_access in any::<bool>(),
        admin_access in any::<bool>(),
        enforce_tfa in proptest::option::of(any::<bool>()),
        session in proptest::option::of("[A-Za-z0-9_\\-]{64}"),
        iat in 0i64..4_000_000_000,
        ttl in 0i64..1_000_000,
        secret in "[ -~]{16,64}",
    ) {
        let claims = AccessClaims {
            id: uuid::Uuid::from_u128(id),
            role: role.map(uuid::Uuid::from_u128),
            app_access,
            admin_access,
            enforce_tfa,
            session,
            iat,
            exp: iat + ttl,
            iss: "directus".into(),
        };
        let token = Tokens::new(&secret).sign(&claims).unwrap();
        prop_assert!(is_directus_jwt(&token), "{}", token);
        // Another issuer is not Directus's.
        let other = Tokens::new(&secret).sign(&AccessClaims { iss: "elsewhere".into(), ..claims }).unwrap();
        prop_assert!(!is_directus_jwt(&other));
    }

    // ---- ip_access lists ----

    #[test]
    fn an_address_is_in_its_own_network(v4 in any::<u32>(), v6 in any::<u128>()) {
        let v4 = Ipv4Addr::from(v4);
        let v6 = Ipv6Addr::from(v6);
        let (host32, host) = (format!("{v4}/32"), v4.to_string());
        prop_assert!(ip_allowed(&host32, IpAddr::V4(v4)));
        prop_assert!(ip_allowed(&host, IpAddr::V4(v4)));
        prop_assert!(ip_allowed("0.0.0.0/0", IpAddr::V4(v4)));
        // Seen through a dual-stack socket, an IPv4 client is still itself.
        prop_assert!(ip_allowed(&host32, IpAddr::V6(v4.to_ipv6_mapped())));
        let seen = IpAddr::V6(v6).to_canonical();
        let (host128, host) = (format!("{v6}/128"), v6.to_string());
        prop_assert!(ip_allowed(&host128, seen));
        prop_assert!(ip_allowed(&host, seen));
    }

    #[test]
    fn ipv4_ranges_compare_the_prefix_bits(net in any::<u32>(), ip in any::<u32>(), bits in 0u32..=32) {
        let (net, ip) = (Ipv4Addr::from(net), Ipv4Addr::from(ip));
        let want = ipv4_mask(net, bits) == ipv4_mask(ip, bits);
        prop_assert_eq!(ip_allowed(&format!("{net}/{bits}"), IpAddr::V4(ip)), want);
    }

    #[test]
    fn ip_lists_never_panic(list in any::<String>(), junk in "[0-9a-f:./, ]{0,40}", ip in any::<u128>()) {
        let ip = IpAddr::V6(Ipv6Addr::from(ip));
        let _ = ip_allowed(&list, ip);
        let _ = ip_allowed(&junk, ip);
        let _ = ip_allowed(&junk, ip.to_canonical());
    }

    // ---- email addresses ----

    #[test]
    fn email_checks_never_panic(s in any::<String>()) {
        let _ = gatehouse::email::valid(&s);
        let _ = gatehouse::email::key(&s);
        let _ = gatehouse::email::normalize(&s);
    }

    #[test]
    fn the_email_key_is_idempotent(s in any::<String>(), mixed in "[A-Za-zÀ-ÿ\u{0300}-\u{036f}İıẞß@.]{0,20}") {
        for s in [s, mixed] {
            let key = gatehouse::email::key(&s);
            prop_assert_eq!(gatehouse::email::key(&key), key.clone(), "{:?}", s);
        }
    }

    #[test]
    fn plain_addresses_are_valid(local in "[a-z0-9._+\\-]{1,30}", domain in "[a-z0-9\\-]{1,20}", tld in "[a-z]{2,6}") {
        let email = format!("{local}@{domain}.{tld}");
        prop_assert!(gatehouse::email::valid(&email), "{}", email);
        prop_assert!(!gatehouse::email::valid(&format!("{local}@{domain}")), "no dot in the domain");
    }
}
