//! Table tests. Expected values come from Directus 12.4.0: the SQL its `applyFilter` writes,
//! run on SQLite and PostgreSQL, and `validatePayload` with `joiValidationErrorItemToErrorExtensions`
//! run in Node (see the module docs for where gatehouse deliberately differs).

use chrono::TimeZone;
use serde_json::json;

use super::*;

const USER: &str = "11111111-1111-4111-8111-111111111111";
const ROLE: &str = "22222222-2222-4222-8222-222222222222";
const PARENT_ROLE: &str = "33333333-3333-4333-8333-333333333333";
const POLICY: &str = "44444444-4444-4444-8444-444444444444";

fn vars() -> Vars {
    let user = json!({
        "id": USER,
        "email": "me@example.com",
        "title": null,
        "role": {"id": ROLE, "name": "Editors"},
        "policies": [{"policy": {"id": POLICY}}],
    });
    Vars {
        user: user.as_object().cloned(),
        role: Some(ROLE.parse().unwrap()),
        roles: vec![ROLE.parse().unwrap(), PARENT_ROLE.parse().unwrap()],
        policies: vec![POLICY.parse().unwrap()],
        now: Utc.with_ymd_and_hms(2026, 12, 1, 12, 0, 0).unwrap(),
    }
}

fn item(v: Value) -> Item {
    v.as_object().cloned().expect("an object")
}

fn rule(filter: &Value) -> Rule {
    Rule::parse(filter, &vars()).unwrap_or_else(|e| panic!("{filter}: {e:?}"))
}

/// `{field: {op: value}}` against a row `{field: row}`.
fn check(op: &str, row: Value, value: Value, expected: bool) {
    let filter = json!({ "f": { op: value } });
    let got = rule(&filter).matches(&item(json!({ "f": row })));
    assert_eq!(got, expected, "{filter} on f = {row}");
}

#[test]
fn each_operator_on_one_column() {
    let rows: &[(&str, Value, Value, bool)] = &[
        ("_eq", json!("a@x.io"), json!("a@x.io"), true),
        ("_eq", json!("a@x.io"), json!("A@x.io"), false),
        ("_eq", json!(null), json!("a"), false),
        ("_eq", json!(null), json!(null), true),
        ("_eq", json!("a"), json!(null), false),
        ("_eq", json!("null"), json!("null"), false), // "null" is coerced to null: IS NULL
        ("_neq", json!("a"), json!("b"), true),
        ("_neq", json!("a"), json!("a"), false),
        ("_neq", json!(null), json!("b"), false), // NULL <> 'b' is not true
        ("_neq", json!(null), json!(null), false), // IS NOT NULL
        ("_neq", json!("a"), json!(null), true),
        ("_ieq", json!("Ärger"), json!("äRGER"), true),
        ("_ieq", json!(null), json!("a"), false),
        ("_nieq", json!("Abc"), json!("abd"), true),
        ("_nieq", json!("Abc"), json!("aBC"), false),
        ("_nieq", json!(null), json!("a"), false),
        ("_in", json!("b"), json!(["a", "b"]), true),
        ("_in", json!("c"), json!(["a", "b"]), false),
        ("_in", json!("b"), json!("a,b"), true),
        ("_in", json!("b"), json!([]), false),
        ("_in", json!("b"), json!({"0": "b"}), true),
        ("_in", json!(null), json!(["a", null]), false),
        ("_nin", json!("c"), json!(["a", "b"]), true),
        ("_nin", json!("a"), json!("a,b"), false),
        ("_nin", json!(null), json!(["a"]), false),
        ("_nin", json!("c"), json!(["a", null]), false), // NOT IN with a NULL is never true
        ("_nin", json!(null), json!([]), true),          // knex: 1 = 1
        ("_null", json!(null), json!(true), true),
        ("_null", json!("a"), json!(true), false),
        ("_null", json!("a"), json!(false), true), // _null: false is IS NOT NULL
        ("_null", json!(null), json!(""), true),
        ("_nnull", json!("a"), json!(true), true),
        ("_nnull", json!(null), json!(true), false),
        ("_nnull", json!(null), json!(false), true),
        ("_empty", json!(""), json!(true), true),
        ("_empty", json!(null), json!(true), true),
        ("_empty", json!("a"), json!(true), false),
        ("_empty", json!("a"), json!(false), true),
        ("_nempty", json!("a"), json!(true), true),
        ("_nempty", json!(""), json!(true), false),
        ("_nempty", json!(null), json!(true), false),
        ("_nempty", json!(null), json!(false), true),
        ("_contains", json!("Hello World"), json!("lo W"), true),
        ("_contains", json!("Hello World"), json!("hello"), false), // case-sensitive (PostgreSQL)
        ("_contains", json!("a_b"), json!("_"), true),
        ("_contains", json!("axb"), json!("a_b"), false), // no LIKE wildcards
        ("_contains", json!("a5"), json!(5), true),
        ("_contains", json!(null), json!("a"), false),
        ("_ncontains", json!("Hello"), json!("x"), true),
        ("_ncontains", json!("Hello"), json!("ell"), false),
        ("_ncontains", json!(null), json!("x"), false),
        ("_icontains", json!("Hello"), json!("ELL"), true),
        ("_icontains", json!("ÜBER"), json!("über"), true),
        ("_icontains", json!(null), json!("x"), false),
        ("_nicontains", json!("Hello"), json!("ELL"), false),
        ("_nicontains", json!("Hello"), json!("X"), true),
        ("_nicontains", json!(null), json!("x"), false),
        ("_starts_with", json!("Hello"), json!("He"), true),
        ("_starts_with", json!("Hello"), json!("he"), false),
        ("_nstarts_with", json!("Hello"), json!("he"), true),
        ("_nstarts_with", json!(null), json!("he"), false),
        ("_istarts_with", json!("Hello"), json!("hE"), true),
        ("_nistarts_with", json!("Hello"), json!("hE"), false),
        ("_nistarts_with", json!(null), json!("x"), false),
        (
            "_ends_with",
            json!("a@example.com"),
            json!("@example.com"),
            true,
        ),
        (
            "_ends_with",
            json!("a@example.com"),
            json!("@Example.com"),
            false,
        ),
        ("_nends_with", json!("a@example.com"), json!("@x.com"), true),
        ("_nends_with", json!(null), json!("@x.com"), false),
        (
            "_iends_with",
            json!("a@EXAMPLE.com"),
            json!("@example.COM"),
            true,
        ),
        (
            "_niends_with",
            json!("a@EXAMPLE.com"),
            json!("@example.COM"),
            false,
        ),
        ("_niends_with", json!(null), json!("x"), false),
        ("_gt", json!(5), json!(4), true),
        ("_gt", json!(5), json!(5), false),
        ("_gt", json!(null), json!(4), false),
        ("_gte", json!(5), json!(5), true),
        ("_lt", json!(5), json!(6), true),
        ("_lt", json!(null), json!(6), false),
        ("_lte", json!(5), json!(5), true),
        ("_lte", json!(5), json!(4), false),
        ("_between", json!(5), json!([1, 5]), true),
        ("_between", json!(6), json!([1, 5]), false),
        ("_between", json!(5), json!("1,7"), true),
        ("_between", json!(5), json!([7, 1]), false), // BETWEEN is not symmetric
        ("_between", json!(null), json!([1, 5]), false),
        ("_between", json!(99), json!([1]), true), // not two values: no condition
        ("_nbetween", json!(6), json!([1, 5]), true),
        ("_nbetween", json!(3), json!([1, 5]), false),
        ("_nbetween", json!(null), json!([1, 5]), false),
    ];
    for (op, row, value, expected) in rows {
        check(op, row.clone(), value.clone(), *expected);
    }
}

#[test]
fn values_compare_as_the_row_column_reads_them() {
    let rows: &[(&str, Value, Value, bool)] = &[
        // Boolean columns: the query string's "true"/"false"/"1"/"0".
        ("_eq", json!(true), json!("true"), true),
        ("_eq", json!(true), json!("1"), true),
        ("_eq", json!(false), json!("0"), true),
        ("_eq", json!(false), json!(0), true),
        ("_eq", json!(true), json!("false"), false),
        ("_neq", json!(true), json!("false"), true),
        ("_eq", json!(true), json!("yes"), false), // PostgreSQL would read it; SQLite not
        ("_neq", json!(true), json!("yes"), false),
        // Number columns: JavaScript's Number(…).
        ("_eq", json!(42), json!("42"), true),
        ("_eq", json!(42), json!(" 42 "), true),
        ("_eq", json!(16), json!("0x10"), true),
        ("_eq", json!(1.5), json!("1.50"), true),
        ("_gt", json!(10), json!("9"), true), // numeric, not text order
        ("_lt", json!(10), json!("9"), false),
        ("_eq", json!(42), json!("abc"), false), // Directus: Invalid numeric value
        ("_neq", json!(42), json!("abc"), false),
        ("_gt", json!(1), json!(null), true), // castToNumber(null) is 0
        ("_in", json!(0), json!([null]), true),
        ("_in", json!(7), json!("5,7"), true),
        // Text columns: numbers and booleans as their text.
        ("_eq", json!("5"), json!(5), true),
        ("_eq", json!("true"), json!("true"), true),
        ("_gt", json!("b"), json!("a"), true),
        ("_gt", json!("B"), json!("a"), false), // code point order
        // Timestamps: instants; a bare date is midnight UTC.
        (
            "_eq",
            json!("2026-01-01T00:00:00.000Z"),
            json!("2026-01-01"),
            true,
        ),
        (
            "_eq",
            json!("2026-01-01T10:00:00.000Z"),
            json!("2026-01-01T11:00:00+01:00"),
            true,
        ),
        (
            "_gt",
            json!("2026-01-01T10:00:00.000Z"),
            json!("2026-01-01"),
            true,
        ),
        (
            "_lt",
            json!("2025-12-31T23:59:59.999Z"),
            json!("2026-01-01"),
            true,
        ),
        (
            "_between",
            json!("2026-06-01T00:00:00.000Z"),
            json!(["2026-01-01", "2027-01-01"]),
            true,
        ),
        (
            "_gt",
            json!("2026-01-01T10:00:00.000Z"),
            json!("garbage"),
            false,
        ),
        (
            "_neq",
            json!("2026-01-01T10:00:00.000Z"),
            json!("garbage"),
            false,
        ),
        (
            "_eq",
            json!("2026-01-01T10:00:00.000Z"),
            json!("2026"),
            false,
        ), // PostgreSQL: no date
        ("_gt", json!("2026-03-01"), json!("2026-02-30"), false), // PostgreSQL: out of range
        (
            "_contains",
            json!("2026-01-01T10:00:00.000Z"),
            json!("2026"),
            false,
        ),
        // Uuids: in any case; a value that is no uuid matches nothing.
        ("_eq", json!(ROLE), json!(ROLE.to_uppercase()), true),
        ("_in", json!(ROLE.to_uppercase()), json!([ROLE]), true),
        ("_neq", json!(ROLE), json!("nope"), false),
        ("_contains", json!(ROLE), json!("2222"), false),
        // JSON columns: only the null tests.
        ("_nnull", json!({"a": 1}), json!(true), true),
        ("_eq", json!(["a"]), json!("a"), false),
    ];
    for (op, row, value, expected) in rows {
        check(op, row.clone(), value.clone(), *expected);
    }
}

#[test]
fn dynamic_values() {
    let rows: &[(Value, Value, bool)] = &[
        (
            json!({"id": {"_eq": "$CURRENT_USER"}}),
            json!({"id": USER}),
            true,
        ),
        (
            json!({"id": {"_neq": "$CURRENT_USER"}}),
            json!({"id": USER}),
            false,
        ),
        (
            json!({"email": {"_eq": "$CURRENT_USER.email"}}),
            json!({"email": "me@example.com"}),
            true,
        ),
        (
            json!({"email": {"_eq": "$CURRENT_USER.email"}}),
            json!({"email": "x@example.com"}),
            false,
        ),
        // A null field is `_eq: null`, IS NULL.
        (
            json!({"title": {"_eq": "$CURRENT_USER.title"}}),
            json!({"title": null}),
            true,
        ),
        (
            json!({"name": {"_eq": "$CURRENT_USER.role.name"}}),
            json!({"name": "Editors"}),
            true,
        ),
        // An expanded relation stands for its id.
        (
            json!({"role": {"_eq": "$CURRENT_USER.role"}}),
            json!({"role": ROLE}),
            true,
        ),
        (
            json!({"id": {"_in": "$CURRENT_USER.policies.policy"}}),
            json!({"id": POLICY}),
            true,
        ),
        (
            json!({"role": {"_eq": "$CURRENT_ROLE"}}),
            json!({"role": ROLE}),
            true,
        ),
        (
            json!({"role": {"_in": "$CURRENT_ROLES"}}),
            json!({"role": PARENT_ROLE}),
            true,
        ),
        (
            json!({"role": {"_in": "$CURRENT_ROLES"}}),
            json!({"role": USER}),
            false,
        ),
        (
            json!({"role": {"_nin": "$CURRENT_ROLES"}}),
            json!({"role": USER}),
            true,
        ),
        (
            json!({"role": {"_in": ["$CURRENT_ROLES", USER]}}),
            json!({"role": USER}),
            true,
        ),
        (
            json!({"id": {"_in": "$CURRENT_POLICIES"}}),
            json!({"id": POLICY}),
            true,
        ),
        (
            json!({"id": {"_nin": "$CURRENT_POLICIES"}}),
            json!({"id": POLICY}),
            false,
        ),
        // $NOW is 2026-12-01T12:00:00Z here.
        (
            json!({"t": {"_gt": "$NOW(-1 day)"}}),
            json!({"t": "2026-11-30T12:00:00.001Z"}),
            true,
        ),
        (
            json!({"t": {"_gt": "$NOW(-1 day)"}}),
            json!({"t": "2026-11-30T11:59:59.999Z"}),
            false,
        ),
        (
            json!({"t": {"_lt": "$NOW"}}),
            json!({"t": "2026-12-01T11:59:59.000Z"}),
            true,
        ),
        (
            json!({"t": {"_gte": "$NOW(+2 weeks)"}}),
            json!({"t": "2026-12-15T12:00:00.000Z"}),
            true,
        ),
        (
            json!({"t": {"_lt": "$NOW(-1 month)"}}),
            json!({"t": "2026-10-31T12:00:00.000Z"}),
            true,
        ),
        (
            json!({"t": {"_lt": "$NOW(-1 month)"}}),
            json!({"t": "2026-11-01T12:00:00.000Z"}),
            false,
        ),
        (
            json!({"t": {"_gt": "$NOW(-36h)"}}),
            json!({"t": "2026-11-30T00:00:00.001Z"}),
            true,
        ),
        // An adjustment adjustDate does not read leaves $NOW as it is.
        (
            json!({"t": {"_eq": "$NOW(yesterday)"}}),
            json!({"t": "2026-12-01T12:00:00.000Z"}),
            true,
        ),
    ];
    for (filter, row, expected) in rows {
        assert_eq!(
            rule(filter).matches(&item(row.clone())),
            *expected,
            "{filter} on {row}"
        );
    }
}

#[test]
fn dynamic_values_of_an_anonymous_caller_are_null() {
    let anonymous = Vars {
        user: None,
        role: None,
        roles: vec![],
        ..vars()
    };
    let parse = |f: Value| Rule::parse(&f, &anonymous).expect("parses");
    let row = item(json!({"id": USER, "role": null}));
    assert!(!parse(json!({"id": {"_eq": "$CURRENT_USER"}})).matches(&row));
    assert!(parse(json!({"role": {"_eq": "$CURRENT_ROLE"}})).matches(&row)); // IS NULL
    assert!(!parse(json!({"id": {"_eq": "$CURRENT_USER.email"}})).matches(&row));
    assert!(!parse(json!({"role": {"_in": "$CURRENT_ROLES"}})).matches(&row));
}

#[test]
fn relations_logic_and_no_op_conditions() {
    let editor =
        json!({"id": 1, "n": 5, "s": "a", "role": {"id": ROLE, "name": "Editors", "parent": null}});
    let nobody = json!({"id": 2, "n": 7, "s": null, "role": null});
    let unexpanded = json!({"id": 3, "n": 5, "s": "a", "role": ROLE});
    let rows: &[(Value, [bool; 3])] = &[
        (
            json!({"role": {"name": {"_eq": "Editors"}}}),
            [true, false, false],
        ),
        (
            json!({"role": {"name": {"_neq": "Editors"}}}),
            [false, false, false],
        ),
        // A missing related row is a row of NULLs (LEFT JOIN).
        (
            json!({"role": {"name": {"_null": true}}}),
            [false, true, false],
        ),
        (
            json!({"role": {"parent": {"name": {"_null": true}}}}),
            [true, true, false],
        ),
        (json!({"role": {"_null": true}}), [false, true, false]),
        (json!({"role": {"_eq": ROLE}}), [true, false, true]),
        (
            json!({"role": {"name": {"_eq": "Editors"}, "id": {"_eq": ROLE}}}),
            [true, false, false],
        ),
        (
            json!({"role": {"_or": [{"name": {"_eq": "x"}}, {"id": {"_eq": ROLE}}]}}),
            [true, false, false],
        ),
        (
            json!({"n": {"_eq": 5}, "s": {"_eq": "a"}}),
            [true, false, true],
        ),
        (json!({"n": {"_eq": 5, "_neq": 7}}), [true, false, true]),
        (
            json!({"_and": [{"n": {"_gt": 4}}, {"s": {"_nnull": true}}]}),
            [true, false, true],
        ),
        (
            json!({"_or": [{"n": {"_eq": 7}}, {"s": {"_eq": "a"}}]}),
            [true, true, true],
        ),
        (
            json!({"n": {"_or": [{"_eq": 7}, {"_eq": 9}]}}),
            [false, true, false],
        ),
        (
            json!({"_or": [{"_and": [{"n": {"_eq": 5}}, {"s": {"_null": true}}]}, {"n": {"_eq": 7}}]}),
            [false, true, false],
        ),
        // Directus writes no SQL for these, so they do not restrict...
        (json!({"s": {}}), [true, true, true]),
        (json!({"_or": []}), [true, true, true]),
        (json!({"_and": []}), [true, true, true]),
        (json!({"_or": [{}, {"n": {"_eq": 7}}]}), [true, true, true]),
        (json!({"n": {"_between": [1]}}), [true, true, true]),
        // ...and in an `_or` they do not match.
        (
            json!({"_or": [{"s": {}}, {"n": {"_eq": 7}}]}),
            [false, true, false],
        ),
        (
            json!({"_or": [{"n": {"_between": [1]}}, {"n": {"_eq": 7}}]}),
            [false, true, false],
        ),
        (json!({"s": "a"}), [true, false, true]),
        (json!({"s": "null"}), [false, true, false]),
    ];
    for (filter, expected) in rows {
        let r = rule(filter);
        let got = [&editor, &nobody, &unexpanded].map(|row| r.matches(&item(row.clone())));
        assert_eq!(got, *expected, "{filter}");
    }
    // A path the row does not carry is not a NULL column.
    assert!(!rule(&json!({"missing": {"_null": true}})).matches(&item(editor)));
}

#[test]
fn empty_filters_match_everything() {
    for f in [
        json!(null),
        json!({}),
        json!({"s": {}}),
        json!({"_or": [{}]}),
    ] {
        let r = rule(&f);
        assert!(r.is_all(), "{f}");
        assert!(r.matches(&item(json!({"s": "x"}))), "{f}");
    }
    assert!(Rule::all().is_all() && Rule::all().matches(&Item::new()));
    assert!(!rule(&json!({"s": {"_eq": "x"}})).is_all());
}

#[test]
fn what_gatehouse_does_not_evaluate_is_refused() {
    let refused = [
        json!({"s": {"_regex": "^a"}}),
        json!({"s": {"_foo": 1}}),
        json!({"tags": {"_json": {"a": {"_eq": 1}}}}),
        json!({"users": {"_some": {"id": {"_eq": 1}}}}),
        json!({"users": {"_none": {"id": {"_eq": 1}}}}),
        json!({"g": {"_intersects": "x"}}),
        json!({"year(date_created)": {"_eq": 2026}}),
        json!({"role.name": {"_eq": "x"}}),
        json!({"_eq": 5}),
        json!({"s": null}),
        json!({"s": ["a"]}),
        json!({"_or": {"s": {"_eq": 1}}}),
        json!({"_or": [null]}),
        json!({"s": {"_eq": ["a"]}}),
        json!({"s": {"_eq": {"a": 1}}}),
        json!({"role": {"_eq": "$CURRENT_ROLES"}}), // a list where one value goes
        json!({"s": {"_icontains": 5}}),            // Directus: toLowerCase is not a function
        json!({"s": {"_eq": "$CURRENT_USER.nonexistent"}}),
        json!({"s": {"_eq": "$CURRENT_ROLE.name"}}),
        json!({"s": {"_in": "$CURRENT_POLICIES.name"}}),
        json!("x"),
        json!([{"s": {"_eq": 1}}]),
    ];
    for f in refused {
        assert!(Rule::parse(&f, &vars()).is_err(), "{f} parsed");
    }
    // A relation of the user that is not expanded is refused, not null.
    let mut v = vars();
    v.user = Some(item(json!({"id": USER, "role": ROLE})));
    assert!(Rule::parse(&json!({"s": {"_eq": "$CURRENT_USER.role.name"}}), &v).is_err());
}

#[test]
fn filters_are_bounded() {
    let mut deep = json!({"_eq": 1});
    for _ in 0..10 {
        deep = json!({ "f": deep });
    }
    assert!(Rule::parse(&deep, &vars()).is_err());
    let mut ok = json!({"_eq": 1});
    for _ in 0..9 {
        ok = json!({ "f": ok });
    }
    assert!(Rule::parse(&ok, &vars()).is_ok());
    let many: Vec<Value> = (0..1001).map(|i| json!({ "n": { "_eq": i } })).collect();
    assert!(Rule::parse(&json!({ "_or": many }), &vars()).is_err());
    let long: Vec<i32> = (0..1001).collect();
    assert!(Rule::parse(&json!({"n": {"_in": long}}), &vars()).is_err());
}

#[test]
fn paths_operators_and_user_paths() {
    let f = json!({"_or": [
        {"email": {"_eq": "$CURRENT_USER.email"}},
        {"role": {"name": {"_in": ["a", "$CURRENT_USER.role.name"]}}},
        {"title": {}},
    ]});
    let r = rule(&f);
    let set = |xs: &[&str]| xs.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
    assert_eq!(r.paths(), set(&["email", "role.name", "title"]));
    assert_eq!(r.fields_at_root(), set(&["email", "role", "title"]));
    assert_eq!(
        r.operators(),
        [
            ("email".to_string(), "_eq"),
            ("role.name".to_string(), "_in")
        ]
        .into()
    );
    assert_eq!(user_paths(&f), set(&["email", "role.name"]));
    assert!(user_paths(&json!({"id": {"_eq": "$CURRENT_USER"}})).is_empty());
}

#[test]
fn operators_by_field_type_as_directus_allows_them() {
    let rows: &[(&str, bool, &str, bool)] = &[
        ("string", false, "_contains", true),
        ("string", false, "_gt", false),
        ("string", false, "_ieq", false), // no field type has _ieq/_nieq in Directus 12.4.0
        ("uuid", false, "_in", true),
        ("uuid", false, "_contains", false),
        ("uuid", false, "_empty", false),
        ("boolean", false, "_in", false),
        ("integer", false, "_between", true),
        ("timestamp", false, "_gt", true),
        ("json", false, "_nnull", true),
        ("hash", false, "_eq", false),
        ("string", true, "_eq", false), // concealed
        ("string", true, "_nnull", true),
    ];
    for (field_type, concealed, op, ok) in rows {
        assert_eq!(
            check_operator(field_type, *concealed, op).is_ok(),
            *ok,
            "{field_type} {op}"
        );
    }
    assert_eq!(
        check_operator("uuid", false, "_contains"),
        Err(Unsupported(
            "\"uuid\" field type does not contain the \"_contains\" filter operator".into()
        ))
    );
}

/// `(validation, payload, failures as Directus's extensions without path)`.
#[test]
fn validation_failures() {
    let rows: &[(Value, Value, Value)] = &[
        (
            json!({"f": {"_eq": "x"}}),
            json!({"f": "y"}),
            json!([{"field": "f", "type": "eq", "valid": "x"}]),
        ),
        (json!({"f": {"_eq": "x"}}), json!({"f": "x"}), json!([])),
        (json!({"f": {"_eq": "x"}}), json!({}), json!([])), // absent fields are not checked
        (json!({"f": {"_eq": 5}}), json!({"f": "5"}), json!([])),
        (
            json!({"f": {"_eq": 5}}),
            json!({"f": 6}),
            json!([{"field": "f", "type": "in", "valid": [5, "5"]}]),
        ),
        (
            json!({"f": {"_eq": null}}),
            json!({"f": 1}),
            json!([{"field": "f", "type": "null"}]),
        ),
        (
            json!({"f": {"_eq": ""}}),
            json!({"f": 1}),
            json!([{"field": "f", "type": "empty"}]),
        ),
        (
            json!({"f": {"_neq": "x"}}),
            json!({"f": "x"}),
            json!([{"field": "f", "type": "neq", "invalid": "x"}]),
        ),
        (
            json!({"f": {"_in": ["a", "b"]}}),
            json!({"f": "c"}),
            json!([{"field": "f", "type": "in", "valid": ["a", "b"]}]),
        ),
        (
            json!({"f": {"_in": ["a"]}}),
            json!({"f": "c"}),
            json!([{"field": "f", "type": "eq", "valid": "a"}]),
        ),
        (json!({"f": {"_in": []}}), json!({"f": "c"}), json!([])),
        (
            json!({"f": {"_nin": ["x", "y"]}}),
            json!({"f": "x"}),
            json!([{"field": "f", "type": "nin", "invalid": ["x", "y"]}]),
        ),
        (
            json!({"f": {"_nin": ["x"]}}),
            json!({"f": "x"}),
            json!([{"field": "f", "type": "neq", "invalid": "x"}]),
        ),
        (
            json!({"f": {"_null": true}}),
            json!({"f": 1}),
            json!([{"field": "f", "type": "null"}]),
        ),
        (
            json!({"f": {"_null": false}}),
            json!({"f": 1}),
            json!([{"field": "f", "type": "null"}]),
        ),
        (
            json!({"f": {"_nnull": true}}),
            json!({"f": null}),
            json!([{"field": "f", "type": "nnull"}]),
        ),
        (json!({"f": {"_nnull": true}}), json!({}), json!([])),
        (
            json!({"f": {"_empty": true}}),
            json!({"f": null}),
            json!([{"field": "f", "type": "empty"}]),
        ),
        (
            json!({"f": {"_nempty": true}}),
            json!({"f": ""}),
            json!([{"field": "f", "type": "nempty"}]),
        ),
        (
            json!({"f": {"_contains": "X"}}),
            json!({"f": "aXb"}),
            json!([]),
        ),
        (
            json!({"f": {"_contains": "X"}}),
            json!({"f": ["b", "aXb"]}),
            json!([]),
        ),
        (
            json!({"f": {"_contains": "X"}}),
            json!({"f": "b"}),
            json!([{"field": "f", "type": "contains", "substring": "X"}]),
        ),
        (
            json!({"f": {"_icontains": "X"}}),
            json!({"f": "b"}),
            json!([{"field": "f", "type": "contains", "substring": "X"}]),
        ),
        (
            json!({"f": {"_icontains": "X"}}),
            json!({"f": "x"}),
            json!([]),
        ),
        (
            json!({"f": {"_ncontains": "X"}}),
            json!({"f": "aXb"}),
            json!([{"field": "f", "type": "ncontains", "substring": "X"}]),
        ),
        (
            json!({"f": {"_contains": 5}}),
            json!({"f": "5"}),
            json!([{"field": "f", "type": "eq", "valid": true}]),
        ),
        (
            json!({"f": {"_starts_with": "x.y/"}}),
            json!({"f": "b"}),
            json!([{"field": "f", "type": "starts_with", "substring": "x\\.y\\/"}]),
        ),
        (
            json!({"f": {"_starts_with": "x"}}),
            json!({"f": 5}),
            json!([{"field": "f", "type": "required"}]),
        ),
        (
            json!({"f": {"_nstarts_with": "x"}}),
            json!({"f": "xy"}),
            json!([{"field": "f", "type": "nstarts_with", "substring": "x"}]),
        ),
        (
            json!({"f": {"_istarts_with": "X"}}),
            json!({"f": "xy"}),
            json!([]),
        ),
        (
            json!({"f": {"_nistarts_with": "X"}}),
            json!({"f": "xy"}),
            json!([{"field": "f", "type": "nistarts_with", "substring": "X"}]),
        ),
        (
            json!({"f": {"_ends_with": "x"}}),
            json!({"f": "b"}),
            json!([{"field": "f", "type": "ends_with", "substring": "x"}]),
        ),
        (
            json!({"f": {"_nends_with": "x"}}),
            json!({"f": "bx"}),
            json!([{"field": "f", "type": "nends_with", "substring": "x"}]),
        ),
        (
            json!({"f": {"_iends_with": "x"}}),
            json!({"f": "b"}),
            json!([{"field": "f", "type": "iends_with", "substring": "x"}]),
        ),
        (
            json!({"f": {"_niends_with": "x"}}),
            json!({"f": "bX"}),
            json!([{"field": "f", "type": "niends_with", "substring": "x"}]),
        ),
        (
            json!({"f": {"_gt": 10}}),
            json!({"f": 5}),
            json!([{"field": "f", "type": "gt", "valid": 10}]),
        ),
        (json!({"f": {"_gt": 10}}), json!({"f": "11"}), json!([])),
        (
            json!({"f": {"_gt": 1}}),
            json!({"f": "abc"}),
            json!([{"field": "f", "type": "required"}]),
        ),
        (
            json!({"f": {"_gt": 1}}),
            json!({"f": "123456789012345678"}),
            json!([{"field": "f", "type": "unsafe"}]),
        ),
        (
            json!({"f": {"_gte": 10}}),
            json!({"f": 5}),
            json!([{"field": "f", "type": "gte", "valid": 10}]),
        ),
        (
            json!({"f": {"_lt": 1}}),
            json!({"f": 5}),
            json!([{"field": "f", "type": "lt", "valid": 1}]),
        ),
        (
            json!({"f": {"_lte": 1}}),
            json!({"f": 5}),
            json!([{"field": "f", "type": "lte", "valid": 1}]),
        ),
        (
            json!({"f": {"_gt": "2026-01-01"}}),
            json!({"f": "2025-01-01"}),
            json!([{"field": "f", "type": "gt", "valid": "2026-01-01T00:00:00.000Z"}]),
        ),
        (
            json!({"f": {"_gt": "2026-01-01"}}),
            json!({"f": "2026-06-01T00:00:00Z"}),
            json!([]),
        ),
        (
            json!({"f": {"_gt": "$NOW(-1 day)"}}),
            json!({"f": "2026-11-01"}),
            json!([{"field": "f", "type": "gt", "valid": "2026-11-30T12:00:00.000Z"}]),
        ),
        (
            json!({"f": {"_between": [1, 10]}}),
            json!({"f": 11}),
            json!([{"field": "f", "type": "lte", "valid": 10}]),
        ),
        (
            json!({"f": {"_between": [1, 10]}}),
            json!({"f": 5}),
            json!([]),
        ),
        // Directus's `_nbetween` asks for less than the first and more than the second.
        (
            json!({"f": {"_nbetween": [1, 10]}}),
            json!({"f": 5}),
            json!([{"field": "f", "type": "lt", "valid": 1}, {"field": "f", "type": "gt", "valid": 10}]),
        ),
        (
            json!({"f": {"_submitted": true}}),
            json!({}),
            json!([{"field": "f", "type": "required"}]),
        ),
        (
            json!({"f": {"_submitted": true}}),
            json!({"f": null}),
            json!([]),
        ),
        (
            json!({"r": {"name": {"_eq": "x"}}}),
            json!({"r": {"name": "y"}}),
            json!([{"field": "r", "type": "eq", "valid": "x"}]),
        ),
        (
            json!({"r": {"name": {"_eq": "x"}}}),
            json!({"r": "id"}),
            json!([{"field": "r", "type": "required"}]),
        ),
        (
            json!({"a": {"_eq": 1}, "b": {"_gt": 5}}),
            json!({"a": 2, "b": 3}),
            json!([{"field": "a", "type": "in", "valid": [1, "1"]}, {"field": "b", "type": "gt", "valid": 5}]),
        ),
        (
            json!({"_or": [{"a": {"_eq": 1}}, {"b": {"_eq": 2}}]}),
            json!({"a": 2, "b": 2}),
            json!([]),
        ),
        (
            json!({"_or": [{"a": {"_eq": 1}}, {"b": {"_eq": 2}}]}),
            json!({"a": 2, "b": 3}),
            json!([{"field": "a", "type": "in", "valid": [1, "1"]}, {"field": "b", "type": "in", "valid": [2, "2"]}]),
        ),
        (
            json!({"a": {"_or": [{"_eq": 1}, {"_eq": 3}]}}),
            json!({"a": 2}),
            json!([{"field": "a", "type": "in", "valid": [1, "1"]}, {"field": "a", "type": "in", "valid": [3, "3"]}]),
        ),
        (
            json!({"email": {"_eq": "$CURRENT_USER.email"}}),
            json!({"email": "x"}),
            json!([{"field": "email", "type": "eq", "valid": "me@example.com"}]),
        ),
        // Where Directus's own translation fails (a 500), gatehouse names the operator.
        (
            json!({"f": {"_contains": "x"}}),
            json!({"f": 5}),
            json!([{"field": "f", "type": "contains", "substring": "x"}]),
        ),
        (
            json!({"f": {"_starts_with": "x"}}),
            json!({"f": ""}),
            json!([{"field": "f", "type": "starts_with", "substring": "x"}]),
        ),
        (
            json!({"f": {"_between": [1]}}),
            json!({"f": 5}),
            json!([{"field": "f", "type": "between"}]),
        ),
        (
            json!({"f": {"_gt": "abc"}}),
            json!({"f": 5}),
            json!([{"field": "f", "type": "gt"}]),
        ),
        // `_ieq` has no Joi rule: it passes.
        (json!({"f": {"_ieq": "x"}}), json!({"f": "y"}), json!([])),
    ];
    for (filter, payload, expected) in rows {
        let got: Vec<Value> = rule(filter)
            .validate(&item(payload.clone()))
            .into_iter()
            .map(|f| {
                let mut m = serde_json::Map::new();
                m.insert("field".into(), json!(f.field));
                m.insert("type".into(), json!(f.kind));
                for (k, v) in [
                    ("valid", f.valid),
                    ("invalid", f.invalid),
                    ("substring", f.substring.map(Value::from)),
                ] {
                    if let Some(v) = v {
                        m.insert(k.into(), v);
                    }
                }
                Value::Object(m)
            })
            .collect();
        assert_eq!(Value::Array(got), *expected, "{filter} on {payload}");
    }
}

fn query(q: &[(&str, &str)]) -> Result<Option<Value>, Unsupported> {
    let pairs: Vec<(String, String)> = q
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    from_query(&pairs)
}

#[test]
fn the_filter_query_parameter() {
    let ok: &[(&[(&str, &str)], Value)] = &[
        (&[("limit", "5")], json!(null)),
        (&[("filter", "")], json!(null)),
        (
            &[("filter[email][_eq]", "a@x.io")],
            json!({"email": {"_eq": "a@x.io"}}),
        ),
        (
            &[("filter", r#"{"email":{"_eq":"a@x.io"}}"#)],
            json!({"email": {"_eq": "a@x.io"}}),
        ),
        (&[("filter", "{}")], json!({})),
        (
            &[
                ("filter[_or][1][id][_eq]", "b"),
                ("filter[_or][0][id][_eq]", "a"),
            ],
            json!({"_or": [{"id": {"_eq": "a"}}, {"id": {"_eq": "b"}}]}),
        ),
        (
            &[("filter[_or][5][id][_eq]", "b")],
            json!({"_or": [{"id": {"_eq": "b"}}]}),
        ),
        (&[("filter[id][_in]", "a,b")], json!({"id": {"_in": "a,b"}})),
        (
            &[("filter[id][_in][]", "a"), ("filter[id][_in][]", "b")],
            json!({"id": {"_in": ["a", "b"]}}),
        ),
        (
            &[("filter[id][_in]", "a"), ("filter[id][_in]", "b")],
            json!({"id": {"_in": ["a", "b"]}}),
        ),
        (
            &[("filter[id][_in][0]", "a"), ("filter[id][_in][1]", "b")],
            json!({"id": {"_in": ["a", "b"]}}),
        ),
        (
            &[
                ("filter[role][name][_eq]", "x"),
                ("filter[status][_eq]", "active"),
            ],
            json!({"role": {"name": {"_eq": "x"}}, "status": {"_eq": "active"}}),
        ),
        (&[("filter[email]", "a@x.io")], json!({"email": "a@x.io"})),
        (
            &[("filter[s][_null]", "true")],
            json!({"s": {"_null": "true"}}),
        ),
        (&[("filter[s][_eq]", "null")], json!({"s": {"_eq": "null"}})),
    ];
    for (pairs, expected) in ok {
        let got = query(pairs).unwrap_or_else(|e| panic!("{pairs:?}: {e:?}"));
        assert_eq!(got.unwrap_or(Value::Null), *expected, "{pairs:?}");
    }
    // Directus's own reasons where it has one.
    let refused: &[(&[(&str, &str)], &str)] = &[
        (&[("filter", "{bad")], "Invalid JSON for filter object"),
        (&[("filter", "null")], "\"filter\" must be of type object"),
        (&[("filter", "5")], "\"filter\" must be of type object"),
        (&[("filter[s][_eq]", "")], "You can't filter for an empty string in \"_eq\". Use \"_empty\" or \"_nempty\" instead"),
        (&[("filter[s][_null]", "1")], "\"_null\" has to be a boolean"),
        (&[("filter", r#"{"n":{"_in":[]}}"#)], "\"_in\" has to be an array of values"),
        (&[("filter[s][_eq]", "a"), ("filter[s][_eq]", "b")], "The filter value for \"_eq\" has to be a string, number, or boolean"),
        (&[("filter", r#"{"n":{"_eq":9007199254740993}}"#)], "The filter value for \"_eq\" is not a valid number"),
        (&[("filter[_or][600][n][_eq]", "5")], "Invalid filter object"),
        (&[("filter[_or][0][n][_eq]", "5"), ("filter[_or][x][n][_eq]", "7")], "Invalid filter object"),
    ];
    for (pairs, reason) in refused {
        assert_eq!(
            query(pairs),
            Err(Unsupported(reason.to_string())),
            "{pairs:?}"
        );
    }
    // Shapes gatehouse refuses with its own reason.
    let malformed: &[&[(&str, &str)]] = &[
        &[("filter", "{}"), ("filter[s][_eq]", "a")],
        &[("filter", "{}"), ("filter", "{}")],
        &[("filter[s]", "a"), ("filter[s][_eq]", "b")],
        &[("filter[s][_eq]", "b"), ("filter[s]", "a")],
        &[("filter[s", "a")],
        &[("filter[s]x", "a")],
        &[("filter[][_eq]", "a")],
        &[("filter[a][b][c][d][e][f][g][h][i][j][_eq]", "1")],
    ];
    for pairs in malformed {
        assert!(query(pairs).is_err(), "{pairs:?}");
    }
    assert!(query(&[("filter[a][b][c][d][e][f][g][h][i][_eq]", "1")]).is_ok());
    let many: Vec<(String, String)> = (0..1001)
        .map(|i| (format!("filter[_or][{}][n][_eq]", i % 400), i.to_string()))
        .collect();
    assert!(from_query(&many).is_err());
}

#[test]
fn a_query_filter_end_to_end() {
    let f = query(&[
        ("filter[_or][0][email][_ends_with]", "@example.com"),
        ("filter[_or][1][role][_in]", "$CURRENT_ROLES"),
        ("filter[status][_neq]", "suspended"),
    ])
    .unwrap()
    .unwrap();
    let r = rule(&f);
    let row = |email: &str, role: &str, status: Value| {
        item(json!({"email": email, "role": role, "status": status}))
    };
    assert!(r.matches(&row("a@example.com", USER, json!("active"))));
    assert!(r.matches(&row("a@other.org", PARENT_ROLE, json!("active"))));
    assert!(!r.matches(&row("a@other.org", USER, json!("active"))));
    assert!(!r.matches(&row("a@example.com", ROLE, json!("suspended"))));
    assert!(!r.matches(&row("a@example.com", ROLE, Value::Null)));
}

#[test]
fn javascript_values() {
    use super::value::{adjust_date, js_number, js_number_string, Adjusted};
    for (n, s) in [
        (5.0, "5"),
        (1e21, "1e+21"),
        (1e-7, "1e-7"),
        (0.000001, "0.000001"),
        (-1.5, "-1.5"),
        (123.456, "123.456"),
        (2f64.powi(53), "9007199254740992"),
        (1.5e300, "1.5e+300"),
    ] {
        assert_eq!(js_number_string(n), s);
    }
    for (s, n) in [
        ("0x1F", 31.0),
        (" 12 ", 12.0),
        ("", 0.0),
        ("1e3", 1000.0),
        ("1.", 1.0),
        (".5", 0.5),
        ("+.5", 0.5),
    ] {
        assert_eq!(js_number(s), n, "{s}");
    }
    for s in ["-0x10", "1_000", "infinity", "nan", "1e", "abc"] {
        assert!(js_number(s).is_nan(), "{s}");
    }
    let now = Utc.with_ymd_and_hms(2026, 1, 31, 10, 0, 0).unwrap();
    let at = |a: &str| match adjust_date(now, a) {
        Adjusted::Date(d) => Some(d.to_rfc3339()),
        _ => None,
    };
    assert_eq!(at("+1 month").as_deref(), Some("2026-02-28T10:00:00+00:00"));
    assert_eq!(at("-1 year").as_deref(), Some("2025-01-31T10:00:00+00:00"));
    assert_eq!(at("2").as_deref(), Some("2026-02-02T10:00:00+00:00")); // days by default
    assert_eq!(
        at("-1.5 days").as_deref(),
        Some("2026-01-29T10:00:00+00:00")
    ); // date-fns cuts the day
    assert_eq!(at("+90 MIN").as_deref(), Some("2026-01-31T11:30:00+00:00"));
    assert_eq!(at("1.5h").as_deref(), Some("2026-01-31T11:30:00+00:00"));
    assert_eq!(at("-2 weeks").as_deref(), Some("2026-01-17T10:00:00+00:00"));
    assert_eq!(
        at("500ms").as_deref(),
        Some("2026-01-31T10:00:00.500+00:00")
    );
    assert_eq!(at(" 1 day"), None);
    assert_eq!(at("1 fortnight"), None);
}
