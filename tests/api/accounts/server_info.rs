//! The public part of `GET /server/info`.

use serde_json::json;

use super::{set_settings, spawn_accounts};

#[tokio::test]
async fn a_login_page_reads_the_project_and_whether_it_may_register() {
    let app = spawn_accounts(&[
        ("RATE_LIMITER_ENABLED", "true"),
        ("RATE_LIMITER_POINTS", "30"),
        ("RATE_LIMITER_DURATION", "2"),
    ])
    .await;
    let r = app.get("/server/info", None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let project = &r.data()["project"];
    assert_eq!(project["project_name"], "Directus");
    assert_eq!(project["project_color"], "#6644FF");
    assert_eq!(project["public_registration"], false);
    assert_eq!(project["public_registration_verify_email"], true);
    assert_eq!(project["default_language"], "en-US");
    assert!(r.data().get("rateLimit").is_none(), "{}", r.text);

    let admin = app.admin_token().await;
    set_settings(&app, &admin, json!({"project_name": "Gatehouse Test", "public_registration": true, "public_registration_verify_email": false})).await;
    let r = app.get("/server/info", None).await;
    assert_eq!(r.data()["project"]["project_name"], "Gatehouse Test");
    assert_eq!(r.data()["project"]["public_registration"], true);
    assert_eq!(
        r.data()["project"]["public_registration_verify_email"],
        false
    );
    let r = app.get("/server/info", Some(&admin)).await;
    assert_eq!(r.data()["rateLimit"], json!({"points": 30, "duration": 2}));
    assert_eq!(r.data()["rateLimitGlobal"], false);
    // A bad token fails before the route, as everywhere.
    app.get("/server/info", Some("a.b.c"))
        .await
        .assert_error(401, "INVALID_CREDENTIALS");
}
