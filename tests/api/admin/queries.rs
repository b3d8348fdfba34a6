//! Malformed or loosely typed admin queries answer 400 or are coerced as Directus coerces them,
//! never 500: filter values against the column's kind, `limit`/`offset` bounds, wildcard
//! `fields`, and foreign keys the database refuses.

use super::*;

/// The emails of a list answer, sorted.
fn emails(r: &Resp) -> Vec<String> {
    assert_eq!(r.status, 200, "{}", r.text);
    let mut out: Vec<String> = r
        .data()
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {}", r.text))
        .iter()
        .map(|u| u["email"].as_str().expect("email").to_string())
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn filter_values_are_coerced_to_the_column_kind() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let r = app
        .post(
            "/users",
            Some(&admin),
            json!({"email": "f@example.com", "password": "user-password", "first_name": "42", "email_notifications": false}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let all = app
        .get("/users?fields=email,email_notifications", Some(&admin))
        .await;
    let notified: Vec<String> = all
        .data()
        .as_array()
        .expect("list")
        .iter()
        .filter(|u| u["email_notifications"] == true)
        .map(|u| u["email"].as_str().expect("email").to_string())
        .collect();
    assert_eq!(notified, [ADMIN_EMAIL], "{}", all.text);

    // Booleans from query strings (and 1/0), and from the JSON form.
    for (query, want) in [
        ("filter[email_notifications][_eq]=true", vec![ADMIN_EMAIL]),
        ("filter[email_notifications][_eq]=1", vec![ADMIN_EMAIL]),
        (
            "filter[email_notifications][_eq]=false",
            vec!["f@example.com"],
        ),
        ("filter[email_notifications][_eq]=0", vec!["f@example.com"]),
        (
            r#"filter={"email_notifications":{"_eq":true}}"#,
            vec![ADMIN_EMAIL],
        ),
        (
            r#"filter={"email_notifications":{"_eq":0}}"#,
            vec!["f@example.com"],
        ),
        // Numbers and booleans against a text column compare as their text.
        (r#"filter={"first_name":{"_eq":42}}"#, vec!["f@example.com"]),
        (r#"filter={"email":{"_eq":1}}"#, vec![]),
        (r#"filter={"first_name":{"_eq":true}}"#, vec![]),
        // A number is no UUID: nothing matches.
        (r#"filter={"role":{"_eq":1}}"#, vec![]),
        (r#"filter={"id":{"_eq":false}}"#, vec![]),
    ] {
        let r = app
            .get(&format!("/users?{query}&fields=email"), Some(&admin))
            .await;
        assert_eq!(emails(&r), want, "{query}");
    }

    for query in [
        "filter[email_notifications][_eq]=maybe",
        r#"filter={"email_notifications":{"_eq":"yes"}}"#,
        r#"filter={"email_notifications":{"_eq":2}}"#,
        r#"filter={"email":{"_eq":{"nested":1}}}"#,
        r#"filter={"email":{"_eq":[1]}}"#,
    ] {
        let r = app.get(&format!("/users?{query}"), Some(&admin)).await;
        r.assert_error(400, "INVALID_QUERY");
        let reason = r.body["errors"][0]["extensions"]["reason"]
            .as_str()
            .expect("reason")
            .to_string();
        assert_eq!(
            r.body["errors"][0]["message"],
            format!("Invalid query. {reason}."),
            "{query}"
        );
    }
}

#[tokio::test]
async fn timestamp_filters_take_dates_and_refuse_garbage() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let id = app
        .create_user(&admin, "t@example.com", "user-password", None)
        .await;
    store_set_user(
        &app,
        &id,
        json!({"last_access": "2001-02-03T00:00:00.000Z"}),
    )
    .await;

    for date in [
        "2001-02-03",
        "2001-02-03T00:00:00Z",
        "2001-02-03T00:00:00.000Z",
        "2001-02-03 00:00:00",
    ] {
        let r = app
            .get(
                &format!("/users?filter[last_access][_eq]={date}&fields=email"),
                Some(&admin),
            )
            .await;
        assert_eq!(emails(&r), ["t@example.com"], "{date}");
    }
    let r = app
        .get(
            "/users?filter[last_access][_eq]=2001-02-04&fields=email",
            Some(&admin),
        )
        .await;
    assert_eq!(emails(&r), Vec::<String>::new());
    let r = app
        .get(
            r#"/users?filter={"last_access":{"_eq":981158400000}}&fields=email"#,
            Some(&admin),
        )
        .await;
    assert_eq!(emails(&r), ["t@example.com"], "epoch milliseconds");

    for query in [
        "filter[last_access][_eq]=garbage",
        r#"filter={"last_access":{"_eq":true}}"#,
    ] {
        let r = app.get(&format!("/users?{query}"), Some(&admin)).await;
        r.assert_error(400, "INVALID_QUERY");
        assert_eq!(
            r.body["errors"][0]["extensions"]["reason"],
            "The filter value for \"last_access\" has to be a date",
            "{query}"
        );
    }
}

#[tokio::test]
async fn negative_offsets_and_limits_below_minus_one_are_refused() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let r = app.get("/users?offset=-1", Some(&admin)).await;
    r.assert_error(400, "INVALID_QUERY");
    assert_eq!(
        r.body,
        json!({"errors": [{
            "message": "Invalid query. \"offset\" must be greater than or equal to 0.",
            "extensions": {"reason": "\"offset\" must be greater than or equal to 0", "code": "INVALID_QUERY"}
        }]})
    );
    app.get("/roles?limit=-2", Some(&admin))
        .await
        .assert_error(400, "INVALID_QUERY");
    let r = app.get("/users?limit=-1&offset=0", Some(&admin)).await;
    assert_eq!(count(&r), 1, "{}", r.text);
}

/// A role as Directus 12.4.0 reads it: the columns and the one-to-many aliases.
const ROLE_FIELDS: &[&str] = &[
    "id",
    "name",
    "icon",
    "description",
    "parent",
    "children",
    "policies",
    "users",
];

/// Every user column plus the `policies` alias, as Directus reads a user for an admin.
fn user_fields() -> Vec<String> {
    let mut with_alias = USER_COLUMNS.to_vec();
    with_alias.push("policies");
    sorted(&with_alias)
}

#[tokio::test]
async fn wildcard_fields_expand_the_role_of_users() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let admin_role = claims(&admin)["role"].clone();
    let plain = app
        .create_user(&admin, "plain@example.com", "user-password", None)
        .await;

    for fields in ["*.*", "*,role.*", "*.*.*"] {
        let r = app
            .get(&format!("/users?fields={fields}"), Some(&admin))
            .await;
        assert_eq!(r.status, 200, "{fields}: {}", r.text);
        for u in r.data().as_array().expect("list") {
            assert_eq!(keys(u), user_fields(), "{fields}: {}", r.text);
            assert_eq!(u["password"], "**********");
            if u["email"] == ADMIN_EMAIL {
                assert_eq!(
                    keys(&u["role"]),
                    sorted(ROLE_FIELDS),
                    "{fields}: {}",
                    r.text
                );
                assert_eq!(u["role"]["id"], admin_role);
                assert_eq!(u["role"]["name"], "Administrator");
            } else {
                assert!(u["role"].is_null(), "{fields}: {}", r.text);
            }
        }

        let one = app
            .get(&format!("/users/{plain}?fields={fields}"), Some(&admin))
            .await;
        assert_eq!(one.status, 200, "{fields}: {}", one.text);
        assert_eq!(keys(one.data()), user_fields());
        assert_eq!(one.data()["email"], "plain@example.com");

        let me = app
            .get(&format!("/users/me?fields={fields}"), Some(&admin))
            .await;
        assert_eq!(me.status, 200, "{fields}: {}", me.text);
        assert_eq!(keys(me.data()), user_fields(), "{fields}: {}", me.text);
        assert_eq!(keys(&me.data()["role"]), sorted(ROLE_FIELDS));
        assert_eq!(me.data()["role"]["id"], admin_role);
    }

    // A wildcard inside the relation only: just the role object, aliases as keys.
    let r = app.get("/users/me?fields=role.*", Some(&admin)).await;
    assert_eq!(keys(r.data()), ["role"]);
    assert_eq!(keys(&r.data()["role"]), sorted(ROLE_FIELDS));
    assert!(r.data()["role"]["users"].is_array(), "{}", r.text);
}

#[tokio::test]
async fn wildcard_fields_give_every_field_of_roles_and_policies() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let parent = app.create_role(&admin, "Parent", false, true).await;
    let r = app
        .post(
            "/roles",
            Some(&admin),
            json!({"name": "Child", "parent": parent}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let child = r.data()["id"].as_str().expect("id").to_string();

    let r = app.get("/roles?fields=*.*", Some(&admin)).await;
    assert_eq!(count(&r), 3, "{}", r.text);
    for role in r.data().as_array().expect("list") {
        assert_eq!(keys(role), sorted(ROLE_FIELDS), "{}", r.text);
    }
    let one = app
        .get(&format!("/roles/{child}?fields=*.*"), Some(&admin))
        .await;
    assert_eq!(one.data()["name"], "Child");
    // `*.*` expands every relation, the parent included (Directus 12.4.0, side by side).
    assert_eq!(one.data()["parent"]["id"], parent, "{}", one.text);
    assert_eq!(keys(&one.data()["parent"]), sorted(ROLE_FIELDS));
    assert_eq!(one.data()["parent"]["children"], json!([child]));

    let all = app.get("/policies", Some(&admin)).await;
    let wild = app.get("/policies?fields=*.*", Some(&admin)).await;
    assert_eq!(wild.status, 200, "{}", wild.text);
    assert_eq!(count(&wild), count(&all));
    assert!(count(&wild) >= 2, "{}", wild.text);
    for (w, a) in wild
        .data()
        .as_array()
        .expect("list")
        .iter()
        .zip(all.data().as_array().expect("list"))
    {
        assert_eq!(keys(w), keys(a), "{}", wild.text);
        assert_eq!(w["name"], a["name"]);
        // The aliases' keys become the access rows themselves.
        let ids: Vec<&Value> = w["users"]
            .as_array()
            .expect("users")
            .iter()
            .map(|x| &x["id"])
            .collect();
        assert_eq!(json!(ids), a["users"], "{}", wild.text);
    }
}

/// The API checks the foreign keys it knows first; whatever still reaches the database is
/// mapped from its error, never a 500.
#[tokio::test]
async fn foreign_key_violations_from_the_database_are_400() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let role = app.create_role(&admin, "Store", false, true).await;

    let mut patch = gatehouse::store::Item::new();
    patch.insert("parent".into(), json!(RANDOM_ID));
    let err = app
        .auth
        .store
        .items
        .item_update(&gatehouse::store::ROLES, &json!(role), &patch)
        .await
        .expect_err("unknown parent");
    let api = gatehouse::error::ApiError::from(err);
    assert_eq!(api.status(), 400);
    let body = api.body();
    let ext = &body["errors"][0]["extensions"];
    assert_eq!(ext["code"], "INVALID_FOREIGN_KEY", "{body}");
    assert_eq!(ext["collection"], "directus_roles", "{body}");
    if std::env::var("TEST_DATABASE_URL").is_ok() {
        // PostgreSQL names the column; SQLite's error does not.
        assert_eq!(ext["field"], "parent", "{body}");
        assert_eq!(ext["value"], RANDOM_ID, "{body}");
    }

    // Through the API, where no check comes first (the settings' registration role).
    let r = app
        .patch(
            "/settings",
            Some(&admin),
            json!({"public_registration_role": RANDOM_ID}),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(
        ["INVALID_FOREIGN_KEY", "INVALID_PAYLOAD"].contains(&r.code()),
        "{}",
        r.text
    );
}
