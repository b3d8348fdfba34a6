//! Collection permissions on `directus_users` and `directus_roles` for callers without admin
//! access, evaluated as Directus evaluates them: rows by the permission filters, fields by
//! the union the matching permissions allow, updates by update permissions with their
//! validation and presets, and the `filter` query parameter under the same rules.

use std::time::Duration;

use super::*;

/// A role whose policy has no app access; returns (role, policy).
async fn plain_role(app: &TestApp, admin: &str, name: &str) -> (String, String) {
    let policy = app
        .create_policy(admin, &format!("{name} policy"), false, false)
        .await;
    let role = app.role_with_policy(admin, name, &policy).await;
    (role, policy)
}

/// Logs in and returns the access token.
async fn token(app: &TestApp, email: &str, password: &str) -> String {
    let r = app.login(email, password, "json").await;
    assert_eq!(r.status, 200, "login {email}: {}", r.text);
    r.data()["access_token"]
        .as_str()
        .expect("token")
        .to_string()
}

fn reason(r: &Resp) -> String {
    r.body["errors"][0]["extensions"]["reason"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// The frontend setup from the issue: read every field of every user, update a few profile
/// fields of one's own row.
async fn read_all_update_own(app: &TestApp, admin: &str) -> (String, String) {
    let (role, policy) = plain_role(app, admin, "Frontend").await;
    app.grant(&policy, "directus_users", "read", json!({}), "*")
        .await;
    app.grant(
        &policy,
        "directus_users",
        "update",
        json!({"id": {"_eq": "$CURRENT_USER"}}),
        "first_name,last_name",
    )
    .await;
    (role, policy)
}

#[tokio::test]
async fn read_all_and_update_own_permissions_work_as_in_directus() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let (role, _) = read_all_update_own(&app, &admin).await;
    let me_id = app
        .create_user(&admin, "front@example.com", "front-password", Some(&role))
        .await;
    let other = app
        .create_user(&admin, "other@example.com", "other-password", Some(&role))
        .await;
    let t = token(&app, "front@example.com", "front-password").await;

    // Every field the permission allows: all of them, secrets concealed.
    let r = app.get("/users/me", Some(&t)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let d = r.data();
    for f in [
        "id",
        "first_name",
        "last_name",
        "email",
        "password",
        "status",
        "role",
        "token",
        "tfa_secret",
        "provider",
        "last_access",
        "text_direction",
        "email_notifications",
    ] {
        assert!(d.get(f).is_some(), "{f} missing: {}", r.text);
    }
    assert_eq!(d["id"], me_id.as_str());
    assert_eq!(d["password"], "**********");
    assert_eq!(d["role"], role.as_str());
    assert!(!r.text.contains("$argon2"), "{}", r.text);

    // Read all: another user's row is readable too.
    let r = app.get(&format!("/users/{other}"), Some(&t)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.data()["email"], "other@example.com");
    let r = app.get("/users?fields=email", Some(&t)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.data().as_array().expect("list").len(), 3, "{}", r.text);

    // Update own first_name: allowed, and the answer is the row as the caller reads it.
    let r = app
        .patch("/users/me", Some(&t), json!({"first_name": "Front"}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.data()["first_name"], "Front");

    // role and status: not in the update permission's fields.
    for body in [json!({"role": null}), json!({"status": "suspended"})] {
        let r = app.patch("/users/me", Some(&t), body.clone()).await;
        r.assert_error(403, "FORBIDDEN");
        let field = body.as_object().unwrap().keys().next().unwrap().clone();
        assert_eq!(
            reason(&r),
            format!("You don't have permission to access field \"{field}\" in collection \"directus_users\" or it does not exist. Queried in root.")
        );
        assert_eq!(r.body["errors"][0]["message"], reason(&r).as_str());
    }
    // Another user's row: the update permission's filter does not match it.
    let r = app
        .patch(
            &format!("/users/{other}"),
            Some(&t),
            json!({"first_name": "Mallory"}),
        )
        .await;
    r.assert_error(403, "FORBIDDEN");
    assert_eq!(
        reason(&r),
        "You don't have permissions to perform \"update\" for the field(s) \"first_name\" in collection \"directus_users\" or it does not exist."
    );
    let after = app.get(&format!("/users/{other}"), Some(&admin)).await;
    assert!(after.data()["first_name"].is_null(), "{}", after.text);

    // No one filters on a secret, whatever they may read.
    for q in [
        "filter[password][_nnull]=true",
        "filter[token][_starts_with]=a",
        r#"filter={"tfa_secret":{"_null":true}}"#,
        r#"filter={"_or":[{"email":{"_eq":"x"}},{"password":{"_contains":"argon"}}]}"#,
    ] {
        for who in [&t, &admin] {
            let r = app.get(&format!("/users?{q}"), Some(who)).await;
            r.assert_error(403, "FORBIDDEN");
        }
    }
}

#[tokio::test]
async fn a_current_user_filter_keeps_other_rows_unreadable() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let (role, policy) = plain_role(&app, &admin, "Self").await;
    app.grant(
        &policy,
        "directus_users",
        "read",
        json!({"id": {"_eq": "$CURRENT_USER"}}),
        "*",
    )
    .await;
    let me_id = app
        .create_user(&admin, "self@example.com", "self-password", Some(&role))
        .await;
    let other = app
        .create_user(&admin, "other@example.com", "other-password", Some(&role))
        .await;
    let t = token(&app, "self@example.com", "self-password").await;

    let r = app.get("/users/me", Some(&t)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.data()["email"], "self@example.com");
    let r = app.get(&format!("/users/{other}"), Some(&t)).await;
    r.assert_error(403, "FORBIDDEN");
    let r = app.get("/users", Some(&t)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let ids: Vec<&str> = r
        .data()
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![me_id.as_str()], "{}", r.text);
    // A filter cannot reach the other row either.
    let r = app
        .get(&format!("/users?filter[id][_eq]={other}"), Some(&t))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.data(), &json!([]));
    // No update permission: any update is refused.
    let r = app
        .patch("/users/me", Some(&t), json!({"first_name": "x"}))
        .await;
    r.assert_error(403, "FORBIDDEN");
    assert_eq!(
        reason(&r),
        "You don't have permission to access collection \"directus_users\" or it does not exist. Queried in root."
    );
}

#[tokio::test]
async fn fields_are_the_union_and_show_only_where_their_case_matches() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let (role, policy) = plain_role(&app, &admin, "Directory").await;
    // Everyone's id and email; one's own row in full.
    app.grant(&policy, "directus_users", "read", json!({}), "id,email")
        .await;
    app.grant(
        &policy,
        "directus_users",
        "read",
        json!({"id": {"_eq": "$CURRENT_USER"}}),
        "first_name,last_name",
    )
    .await;
    let me_id = app
        .create_user(&admin, "dir@example.com", "dir-password", Some(&role))
        .await;
    app.patch(
        &format!("/users/{me_id}"),
        Some(&admin),
        json!({"first_name": "Me"}),
    )
    .await;
    let other = app
        .create_user(&admin, "colleague@example.com", "col-password", Some(&role))
        .await;
    app.patch(
        &format!("/users/{other}"),
        Some(&admin),
        json!({"first_name": "Them"}),
    )
    .await;
    let t = token(&app, "dir@example.com", "dir-password").await;

    let r = app.get("/users/me", Some(&t)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        keys(r.data()),
        sorted(&["id", "email", "first_name", "last_name"])
    );
    assert_eq!(r.data()["first_name"], "Me");

    let r = app.get(&format!("/users/{other}"), Some(&t)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.data()["email"], "colleague@example.com");
    assert!(
        r.data()["first_name"].is_null(),
        "not this row's case: {}",
        r.text
    );

    // A field no permission allows: 403 when asked for by name, {id} from /users/me.
    let r = app.get("/users?fields=id,status", Some(&t)).await;
    r.assert_error(403, "FORBIDDEN");
    assert_eq!(
        reason(&r),
        "You don't have permission to access field \"status\" in collection \"directus_users\" or it does not exist. Queried in root."
    );
    let r = app.get("/users/me?fields=status", Some(&t)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.data(), &json!({"id": me_id}));
    // Filtering on a field one may not read is refused the same way.
    let r = app.get("/users?filter[status][_eq]=active", Some(&t)).await;
    r.assert_error(403, "FORBIDDEN");
    // A field that does not exist: 403 as well, as Directus answers.
    let r = app.get("/users?fields=nope", Some(&t)).await;
    r.assert_error(403, "FORBIDDEN");
}

#[tokio::test]
async fn validation_and_presets_apply_to_updates() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let (role, policy) = plain_role(&app, &admin, "Validated").await;
    app.grant(
        &policy,
        "directus_users",
        "read",
        json!({"id": {"_eq": "$CURRENT_USER"}}),
        "*",
    )
    .await;
    app.grant_full(
        &policy,
        "directus_users",
        "update",
        json!({"id": {"_eq": "$CURRENT_USER"}}),
        json!({"first_name": {"_starts_with": "A"}}),
        json!({"title": "Member"}),
        "first_name,title",
    )
    .await;
    app.create_user(&admin, "val@example.com", "val-password", Some(&role))
        .await;
    let t = token(&app, "val@example.com", "val-password").await;

    let r = app
        .patch("/users/me", Some(&t), json!({"first_name": "Bob"}))
        .await;
    r.assert_error(400, "FAILED_VALIDATION");
    assert_eq!(r.body["errors"][0]["extensions"]["field"], "first_name");
    let r = app
        .patch("/users/me", Some(&t), json!({"first_name": "Alice"}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.data()["first_name"], "Alice");
    assert_eq!(
        r.data()["title"],
        "Member",
        "the preset was applied: {}",
        r.text
    );
    // The payload wins over the preset.
    let r = app
        .patch(
            "/users/me",
            Some(&t),
            json!({"first_name": "Ann", "title": "Lead"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.data()["title"], "Lead");
}

#[tokio::test]
async fn a_filter_gatehouse_cannot_evaluate_denies() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let (role, policy) = plain_role(&app, &admin, "Odd").await;
    app.grant(
        &policy,
        "directus_users",
        "read",
        json!({"email": {"_regex": ".*"}}),
        "*",
    )
    .await;
    let me_id = app
        .create_user(&admin, "odd@example.com", "odd-password", Some(&role))
        .await;
    let t = token(&app, "odd@example.com", "odd-password").await;
    let r = app.get("/users/me", Some(&t)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.data(), &json!({"id": me_id}));
    let r = app.get("/users", Some(&t)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.data(), &json!([]));
}

#[tokio::test]
async fn nested_role_fields_follow_the_roles_permissions() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let (role, policy) = plain_role(&app, &admin, "Nested").await;
    app.grant(
        &policy,
        "directus_users",
        "read",
        json!({"id": {"_eq": "$CURRENT_USER"}}),
        "*",
    )
    .await;
    app.create_user(&admin, "nest@example.com", "nest-password", Some(&role))
        .await;
    let t = token(&app, "nest@example.com", "nest-password").await;
    // No read permission on roles: Directus leaves the relation out.
    let r = app.get("/users/me?fields=id,role.name", Some(&t)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.data().get("role").is_none(), "{}", r.text);
    // With one, the role object shows the fields it allows.
    app.grant(
        &policy,
        "directus_roles",
        "read",
        json!({"id": {"_in": "$CURRENT_ROLES"}}),
        "id,name",
    )
    .await;
    let r = app.get("/users/me?fields=id,role.name", Some(&t)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.data()["role"], json!({"name": "Nested"}));
    let r = app.get("/users/me?fields=id,role.icon", Some(&t)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.data(),
        &json!({"id": r.data()["id"]}),
        "a forbidden role field: {}",
        r.text
    );
    // The role itself through /roles: its own, not the admin's.
    let r = app.get("/roles", Some(&t)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.data(), &json!([{"id": role, "name": "Nested"}]));
}

#[tokio::test]
async fn a_user_without_a_role_gets_the_public_policy() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let public = "abf8a154-5b1c-4a46-ac9c-7300570f4f17";
    app.grant(
        public,
        "directus_users",
        "read",
        json!({"id": {"_eq": "$CURRENT_USER"}}),
        "id,email",
    )
    .await;
    let id = app
        .create_user(&admin, "norole@example.com", "norole-password", None)
        .await;
    let t = token(&app, "norole@example.com", "norole-password").await;
    let r = app.get("/users/me", Some(&t)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.data(), &json!({"id": id, "email": "norole@example.com"}));
    // A user with a role does not get the public policy.
    let (role, _) = plain_role(&app, &admin, "Empty").await;
    let id2 = app
        .create_user(
            &admin,
            "withrole@example.com",
            "withrole-password",
            Some(&role),
        )
        .await;
    let t2 = token(&app, "withrole@example.com", "withrole-password").await;
    let r = app.get("/users/me", Some(&t2)).await;
    assert_eq!(r.data(), &json!({"id": id2}));
}

#[tokio::test]
async fn dynamic_values_and_operators_in_permission_rules() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let (role, policy) = plain_role(&app, &admin, "Team").await;
    // Rows of users in one's own role who logged in within a day, plus one's own row.
    app.grant(
        &policy,
        "directus_users",
        "read",
        json!({"_or": [
            {"id": {"_eq": "$CURRENT_USER"}},
            {"_and": [
                {"role": {"_eq": "$CURRENT_USER.role"}},
                {"last_access": {"_gte": "$NOW(-1 day)"}}
            ]}
        ]}),
        "id,email",
    )
    .await;
    app.create_user(&admin, "lead@example.com", "lead-password", Some(&role))
        .await;
    app.create_user(&admin, "mate@example.com", "mate-password", Some(&role))
        .await;
    app.create_user(&admin, "idle@example.com", "idle-password", Some(&role))
        .await;
    app.create_user(&admin, "outsider@example.com", "out-password", None)
        .await;
    token(&app, "mate@example.com", "mate-password").await;
    token(&app, "outsider@example.com", "out-password").await;
    let t = token(&app, "lead@example.com", "lead-password").await;
    let list = |r: &Resp| {
        let mut v: Vec<String> = r
            .data()
            .as_array()
            .unwrap_or_else(|| panic!("{}", r.text))
            .iter()
            .map(|u| u["email"].as_str().unwrap().to_string())
            .collect();
        v.sort();
        v
    };
    let r = app.get("/users", Some(&t)).await;
    assert_eq!(
        list(&r),
        vec!["lead@example.com", "mate@example.com"],
        "{}",
        r.text
    );
    // Two days later the mate's last login is too old.
    app.advance(Duration::from_secs(2 * 86_400));
    let t = token(&app, "lead@example.com", "lead-password").await;
    let r = app.get("/users", Some(&t)).await;
    assert_eq!(list(&r), vec!["lead@example.com"], "{}", r.text);
}

#[tokio::test]
async fn app_users_without_an_update_permission_cannot_change_their_profile() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let role = app.create_role(&admin, "Bare app", false, true).await;
    let id = app
        .create_user(&admin, "bare@example.com", "bare-password", Some(&role))
        .await;
    let t = token(&app, "bare@example.com", "bare-password").await;
    // Directus's minimal app permissions: read one's own row (these fields), no update.
    let r = app.get("/users/me", Some(&t)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.data()["id"], id.as_str());
    assert!(r.data().get("token").is_none(), "{}", r.text);
    let r = app
        .patch("/users/me", Some(&t), json!({"first_name": "x"}))
        .await;
    r.assert_error(403, "FORBIDDEN");
    let r = app.get("/users", Some(&t)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.data().as_array().unwrap().len(), 1, "{}", r.text);
}

#[tokio::test]
async fn admin_filters_use_every_operator() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    for (email, first) in [
        ("ann@example.com", "Ann"),
        ("bob@example.org", "Bob"),
        ("cy@example.com", ""),
    ] {
        let id = app.create_user(&admin, email, "some-password", None).await;
        app.patch(
            &format!("/users/{id}"),
            Some(&admin),
            json!({"first_name": first}),
        )
        .await;
    }
    let emails = |q: &str| {
        let q = q.to_string();
        let app = &app;
        let admin = admin.clone();
        async move {
            let r = app
                .get(&format!("/users?fields=email&{q}"), Some(&admin))
                .await;
            assert_eq!(r.status, 200, "{q}: {}", r.text);
            let mut v: Vec<String> = r
                .data()
                .as_array()
                .unwrap()
                .iter()
                .map(|u| u["email"].as_str().unwrap().to_string())
                .collect();
            v.sort();
            v
        }
    };
    assert_eq!(
        emails("filter[email][_ends_with]=.org").await,
        vec!["bob@example.org"]
    );
    assert_eq!(
        emails("filter[email][_contains]=example.com&filter[first_name][_nempty]=true").await,
        vec!["ann@example.com"]
    );
    assert_eq!(
        emails(r#"filter={"_or":[{"first_name":{"_eq":"Bob"}},{"first_name":{"_empty":true}}]}"#)
            .await,
        vec!["bob@example.org", "cy@example.com"]
    );
    assert_eq!(
        emails("filter[first_name][_in]=Ann,Bob&filter[email][_nstarts_with]=b").await,
        vec!["ann@example.com"]
    );
    assert_eq!(
        emails("filter[id][_eq]=$CURRENT_USER").await,
        vec![ADMIN_EMAIL]
    );
    // An operator gatehouse does not know: 400 INVALID_QUERY, never a silent match.
    let r = app
        .get("/users?filter[email][_regex]=.*", Some(&admin))
        .await;
    r.assert_error(400, "INVALID_QUERY");
}
