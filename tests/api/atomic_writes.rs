//! Writes of more than one row are all or nothing, and an email stays unique
//! (case-insensitively) when users change theirs at the same moment.

use gatehouse::store::{ListQuery, ACCESS, POLICIES, ROLES, USERS};
use serde_json::json;

use crate::helpers::*;

/// Rows of users, roles, policies and access, read through the store.
async fn counts(app: &TestApp) -> [i64; 4] {
    let s = &app.auth.store;
    [
        s.items.items_count(&USERS).await.unwrap(),
        s.items.items_count(&ROLES).await.unwrap(),
        s.items.items_count(&POLICIES).await.unwrap(),
        s.items.items_count(&ACCESS).await.unwrap(),
    ]
}

#[tokio::test]
async fn a_role_whose_second_nested_policy_is_invalid_creates_nothing() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let before = counts(&app).await;

    // The second policy has no name.
    let r = app
        .post(
            "/roles",
            Some(&admin),
            json!({"name": "Half", "policies": [
                {"policy": {"name": "Half valid", "app_access": true}},
                {"policy": {"app_access": true}},
            ]}),
        )
        .await;
    r.assert_error(400, "INVALID_PAYLOAD");
    assert_eq!(counts(&app).await, before, "no role, policy or access row");

    // The second names a policy that does not exist.
    let r = app
        .post(
            "/roles",
            Some(&admin),
            json!({"name": "Dangling", "policies": {"create": [
                {"policy": {"name": "Dangling valid"}},
                {"policy": "3f2c9d1e-7b4a-4c8e-9a61-0d5e2f7b8c90"},
            ]}}),
        )
        .await;
    r.assert_error(400, "INVALID_FOREIGN_KEY");
    assert_eq!(counts(&app).await, before);

    // PATCH with nested policies: neither the rename nor the first policy lands.
    let role = app.create_role(&admin, "Kept", false, true).await;
    let before = counts(&app).await;
    let r = app
        .patch(
            &format!("/roles/{role}"),
            Some(&admin),
            json!({"name": "Renamed", "policies": [
                {"policy": {"name": "Patch valid"}},
                {"policy": {"name": 7}},
            ]}),
        )
        .await;
    r.assert_error(400, "INVALID_PAYLOAD");
    assert_eq!(counts(&app).await, before);
    let r = app.get(&format!("/roles/{role}"), Some(&admin)).await;
    assert_eq!(r.data()["name"], "Kept", "{}", r.text);
}

#[tokio::test]
async fn an_array_whose_later_item_conflicts_creates_none() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    app.create_user(&admin, "taken@example.com", "pw-123456", None)
        .await;
    let before = counts(&app).await;

    // The second item's email belongs to an existing user.
    let r = app
        .post(
            "/users",
            Some(&admin),
            json!([
                {"email": "first@example.com", "password": "pw-123456"},
                {"email": "Taken@example.com", "password": "pw-123456"},
            ]),
        )
        .await;
    r.assert_error(400, "RECORD_NOT_UNIQUE");
    assert_eq!(counts(&app).await, before, "neither user created");

    // The second item's email is the first's, in another case: only the store sees it.
    let r = app
        .post(
            "/users",
            Some(&admin),
            json!([
                {"email": "twin@example.com"},
                {"email": "TWIN@example.com"},
            ]),
        )
        .await;
    r.assert_error(400, "RECORD_NOT_UNIQUE");
    assert_eq!(
        r.body["errors"][0]["extensions"]["field"], "email",
        "{}",
        r.text
    );
    assert_eq!(counts(&app).await, before);

    // Roles and policies: a repeated id fails the whole array.
    let id = "7d3c1f0a-2b4e-4f6a-8c9d-0e1f2a3b4c5d";
    let r = app
        .post(
            "/policies",
            Some(&admin),
            json!([{"id": id, "name": "One"}, {"id": id, "name": "Two"}]),
        )
        .await;
    r.assert_error(400, "RECORD_NOT_UNIQUE");
    let r = app
        .post(
            "/roles",
            Some(&admin),
            json!([{"name": "Fine"}, {"name": "Broken", "icon": 3}]),
        )
        .await;
    r.assert_error(400, "INVALID_PAYLOAD");
    assert_eq!(counts(&app).await, before);

    // A valid array lands whole.
    let r = app
        .post(
            "/users",
            Some(&admin),
            json!([{"email": "a1@example.com"}, {"email": "a2@example.com"}]),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.data().as_array().map(Vec::len), Some(2), "{}", r.text);
    assert_eq!(counts(&app).await[0], before[0] + 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_email_changes_never_both_take_one_address() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let a = app
        .create_user(&admin, "a@example.com", "pw-123456", None)
        .await;
    let b = app
        .create_user(&admin, "b@example.com", "pw-123456", None)
        .await;
    let (path_a, path_b) = (format!("/users/{a}"), format!("/users/{b}"));
    for round in 0..20 {
        let (ra, rb) = tokio::join!(
            app.patch(
                &path_a,
                Some(&admin),
                json!({"email": format!("Tx{round}@example.com")})
            ),
            app.patch(
                &path_b,
                Some(&admin),
                json!({"email": format!("tx{round}@example.com")})
            ),
        );
        assert!(
            !(ra.status == 200 && rb.status == 200),
            "round {round}: both took the address"
        );
        for r in [&ra, &rb] {
            if r.status != 200 {
                r.assert_error(400, "RECORD_NOT_UNIQUE");
            }
        }
    }
    let users = app
        .auth
        .store
        .items
        .items_list(&USERS, &ListQuery::default())
        .await
        .unwrap();
    let email = |id: &str| {
        users
            .iter()
            .find(|u| u["id"] == id)
            .and_then(|u| u["email"].as_str())
            .unwrap_or_default()
            .to_lowercase()
    };
    assert_ne!(email(&a), email(&b));
}
