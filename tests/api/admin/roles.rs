//! `/roles`, nested policies and role trees.

use super::*;

// ----- /roles -----

#[tokio::test]
async fn roles_created_with_nested_policies_grant_their_flags() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;

    // Array form.
    let r = app
        .post("/roles", Some(&admin), json!({"name": "Admins 2", "policies": [{"policy": {"name": "Admin 2", "admin_access": true, "app_access": true}}]}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.data()["name"], "Admins 2");
    let admins = r.data()["id"].as_str().unwrap().to_string();
    let t = role_user_token(&app, &admin, &admins, "a2@example.com").await;
    let c = claims(&t);
    assert_eq!(
        (
            c["admin_access"].clone(),
            c["app_access"].clone(),
            c["role"].clone()
        ),
        (json!(true), json!(true), json!(admins))
    );
    assert!(c.get("enforce_tfa").is_none(), "{c}");
    assert_eq!(app.get("/users", Some(&t)).await.status, 200);

    // `{create: [...]}` form.
    let r = app
        .post("/roles", Some(&admin), json!({"name": "App only", "policies": {"create": [{"policy": {"name": "App", "app_access": true}}]}}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let app_only = r.data()["id"].as_str().unwrap().to_string();
    let t = role_user_token(&app, &admin, &app_only, "app@example.com").await;
    let c = claims(&t);
    assert_eq!(
        (c["admin_access"].clone(), c["app_access"].clone()),
        (json!(false), json!(true))
    );
    // Not an admin: the list holds only the user's own row (Directus's app permissions).
    let own = app.get("/users?fields=email", Some(&t)).await;
    assert_eq!(
        own.data(),
        &json!([{"email": "app@example.com"}]),
        "{}",
        own.text
    );

    // An existing policy by id.
    let p = app
        .post(
            "/policies",
            Some(&admin),
            json!({"name": "Shared admin", "admin_access": true}),
        )
        .await;
    assert_eq!(p.status, 200, "{}", p.text);
    let pid = p.data()["id"].as_str().unwrap().to_string();
    let r = app
        .post(
            "/roles",
            Some(&admin),
            json!({"name": "By id", "policies": [{"policy": pid}]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let by_id = r.data()["id"].as_str().unwrap().to_string();
    let t = role_user_token(&app, &admin, &by_id, "byid@example.com").await;
    let c = claims(&t);
    // app = admin || app_access.
    assert_eq!(
        (c["admin_access"].clone(), c["app_access"].clone()),
        (json!(true), json!(true))
    );
    assert_eq!(app.get("/users", Some(&t)).await.status, 200);

    // No policies: neither flag.
    let r = app
        .post("/roles", Some(&admin), json!({"name": "Bare"}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let bare = r.data()["id"].as_str().unwrap().to_string();
    let t = role_user_token(&app, &admin, &bare, "bare@example.com").await;
    let c = claims(&t);
    assert_eq!(
        (c["admin_access"].clone(), c["app_access"].clone()),
        (json!(false), json!(false))
    );
}

#[tokio::test]
async fn role_payloads_are_validated() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    app.post("/roles", Some(&admin), json!({"icon": "x"}))
        .await
        .assert_error(400, "INVALID_PAYLOAD");
    let r = app
        .post(
            "/roles",
            Some(&admin),
            json!({"name": "Bad", "policies": [{"policy": RANDOM_ID}]}),
        )
        .await;
    assert_eq!(r.status, 400, "unknown policy: {}", r.text);
    app.post(
        "/roles",
        Some(&admin),
        json!({"name": "Bad", "parent": "nope"}),
    )
    .await
    .assert_error(400, "INVALID_PAYLOAD");
    let r = app
        .post("/roles", Some(&admin), json!({"name": "Self"}))
        .await;
    let id = r.data()["id"].as_str().unwrap().to_string();
    app.patch(&format!("/roles/{id}"), Some(&admin), json!({"parent": id}))
        .await
        .assert_error(400, "INVALID_PAYLOAD");
}

#[tokio::test]
async fn a_parent_role_policy_gives_admin_to_child_role_users() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let parent = app.create_role(&admin, "Parent", true, true).await;
    let r = app
        .post(
            "/roles",
            Some(&admin),
            json!({"name": "Child", "parent": parent}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.data()["parent"], parent);
    let child = r.data()["id"].as_str().unwrap().to_string();
    let r = app
        .post(
            "/roles",
            Some(&admin),
            json!({"name": "Grandchild", "parent": child}),
        )
        .await;
    let grandchild = r.data()["id"].as_str().unwrap().to_string();

    let t = role_user_token(&app, &admin, &child, "child@example.com").await;
    assert_eq!(claims(&t)["admin_access"], true);
    assert_eq!(claims(&t)["role"], child);
    assert_eq!(app.get("/users", Some(&t)).await.status, 200);
    let t = role_user_token(&app, &admin, &grandchild, "grandchild@example.com").await;
    assert_eq!(claims(&t)["admin_access"], true);
    assert_eq!(app.get("/roles", Some(&t)).await.status, 200);

    // Detaching the child from the parent removes the rights, at once (flags are recomputed).
    let r = app
        .patch(
            &format!("/roles/{child}"),
            Some(&admin),
            json!({"parent": null}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    app.get("/users", Some(&t))
        .await
        .assert_error(403, "FORBIDDEN");
}

#[tokio::test]
async fn roles_are_read_renamed_and_deleted() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let role = app.create_role(&admin, "Temp", true, true).await;
    let path = format!("/roles/{role}");

    let g = app.get(&path, Some(&admin)).await;
    assert_eq!(g.status, 200, "{}", g.text);
    assert_eq!(g.data()["name"], "Temp");
    assert_eq!(g.data()["id"], role);
    let list = app.get("/roles", Some(&admin)).await;
    assert_eq!(list.data().as_array().unwrap().len(), 2, "{}", list.text);
    let r = app
        .get("/roles?filter[name][_eq]=Temp&fields=id", Some(&admin))
        .await;
    assert_eq!(r.data(), &json!([{"id": role}]));

    let r = app
        .patch(
            &path,
            Some(&admin),
            json!({"name": "Renamed", "description": "d"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.data()["name"], "Renamed");
    assert_eq!(r.data()["description"], "d");
    assert_eq!(app.get(&path, Some(&admin)).await.data()["name"], "Renamed");

    let uid = app
        .create_user(&admin, "member@example.com", "user-password", Some(&role))
        .await;
    let (t, _) = tokens(&app, "member@example.com", "user-password").await;
    assert_eq!(app.get("/users", Some(&t)).await.status, 200);

    let r = app.delete(&path, Some(&admin)).await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert!(r.text.is_empty());
    app.get(&path, Some(&admin))
        .await
        .assert_error(403, "FORBIDDEN");
    app.delete(&path, Some(&admin))
        .await
        .assert_error(403, "FORBIDDEN");
    app.patch(&path, Some(&admin), json!({"name": "x"}))
        .await
        .assert_error(403, "FORBIDDEN");
    // Its users lose the role (and its rights).
    assert!(app.get(&format!("/users/{uid}"), Some(&admin)).await.data()["role"].is_null());
    app.get("/users", Some(&t))
        .await
        .assert_error(403, "FORBIDDEN");
    app.get(&format!("/roles/{RANDOM_ID}"), Some(&admin))
        .await
        .assert_error(403, "FORBIDDEN");
}

#[tokio::test]
async fn a_role_parent_must_exist_and_must_not_close_a_cycle() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let fk_error = json!({"errors": [{
        "message": format!("Invalid foreign key \"{RANDOM_ID}\" for field \"parent\" in collection \"directus_roles\"."),
        "extensions": {"collection": "directus_roles", "field": "parent", "value": RANDOM_ID, "code": "INVALID_FOREIGN_KEY"}
    }]});
    let r = app
        .post(
            "/roles",
            Some(&admin),
            json!({"name": "Orphan", "parent": RANDOM_ID}),
        )
        .await;
    r.assert_error(400, "INVALID_FOREIGN_KEY");
    assert_eq!(r.body, fk_error);
    assert_eq!(
        count(&app.get("/roles", Some(&admin)).await),
        1,
        "nothing created"
    );

    let a = app.create_role(&admin, "A", false, true).await;
    let r = app
        .patch(
            &format!("/roles/{a}"),
            Some(&admin),
            json!({"parent": RANDOM_ID}),
        )
        .await;
    r.assert_error(400, "INVALID_FOREIGN_KEY");
    assert_eq!(r.body, fk_error);

    // A <- B <- C: neither B nor C may become A's parent.
    let child = |name: &str, parent: &str| json!({"name": name, "parent": parent});
    let b = app.post("/roles", Some(&admin), child("B", &a)).await;
    assert_eq!(b.status, 200, "{}", b.text);
    let b = b.data()["id"].as_str().expect("id").to_string();
    let c = app.post("/roles", Some(&admin), child("C", &b)).await;
    assert_eq!(c.status, 200, "{}", c.text);
    let c = c.data()["id"].as_str().expect("id").to_string();
    let descendant = "A role cannot have a parent that is already a descendant of itself";
    for (parent, reason) in [
        (&b, descendant),
        (&c, descendant),
        (&a, "A role cannot be a parent of itself"),
    ] {
        let r = app
            .patch(
                &format!("/roles/{a}"),
                Some(&admin),
                json!({"parent": parent}),
            )
            .await;
        r.assert_error(400, "INVALID_PAYLOAD");
        assert_eq!(r.body["errors"][0]["extensions"]["reason"], reason);
    }
    assert!(app.get(&format!("/roles/{a}"), Some(&admin)).await.data()["parent"].is_null());

    // The tree is intact, so its users still log in; a move that keeps it a tree is fine.
    app.create_user(&admin, "c@example.com", "user-password", Some(&c))
        .await;
    assert_eq!(
        app.login("c@example.com", "user-password", "json")
            .await
            .status,
        200
    );
    let r = app
        .patch(&format!("/roles/{c}"), Some(&admin), json!({"parent": a}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.data()["parent"], a);
}

#[tokio::test]
async fn deleting_a_parent_role_detaches_its_children() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let parent = app.create_role(&admin, "parent", false, true).await;
    let child = app.create_role(&admin, "child", false, false).await;
    let r = app
        .patch(
            &format!("/roles/{child}"),
            Some(&admin),
            json!({"parent": parent}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = app.delete(&format!("/roles/{parent}"), Some(&admin)).await;
    assert_eq!(r.status, 204, "{}", r.text);
    let r = app.get(&format!("/roles/{child}"), Some(&admin)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.data()["parent"], Value::Null);
    app.get(&format!("/roles/{parent}"), Some(&admin))
        .await
        .assert_error(403, "FORBIDDEN");
}
