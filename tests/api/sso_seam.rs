//! The SSO seam every driver shares: `GET /auth` lists the configured providers, and
//! `Auth::sso_login` finds, creates and updates users as Directus's drivers do.

use gatehouse::auth::sso::{Provisioning, RoleRule};
use gatehouse::auth::{Mode, RequestMeta};
use gatehouse::providers::Identity;
use serde_json::json;

use crate::helpers::*;

const GH: &[(&str, &str)] = &[
    ("AUTH_PROVIDERS", "GitHub,corp"),
    ("AUTH_GITHUB_DRIVER", "oauth2"),
    ("AUTH_GITHUB_CLIENT_ID", "cid"),
    ("AUTH_GITHUB_CLIENT_SECRET", "csecret"),
    ("AUTH_GITHUB_AUTHORIZE_URL", "http://127.0.0.1:9/authorize"),
    ("AUTH_GITHUB_ACCESS_URL", "http://127.0.0.1:9/token"),
    ("AUTH_GITHUB_PROFILE_URL", "http://127.0.0.1:9/user"),
    ("AUTH_GITHUB_LABEL", "GitHub"),
    ("AUTH_CORP_DRIVER", "oauth2"),
    ("AUTH_CORP_MODE", "json"),
    ("AUTH_CORP_ICON", "key"),
    ("AUTH_CORP_CLIENT_ID", "cid"),
    ("AUTH_CORP_CLIENT_SECRET", "csecret"),
    ("AUTH_CORP_AUTHORIZE_URL", "http://127.0.0.1:9/authorize"),
    ("AUTH_CORP_ACCESS_URL", "http://127.0.0.1:9/token"),
    ("AUTH_CORP_PROFILE_URL", "http://127.0.0.1:9/user"),
];

fn rules(allow: bool, roles: RoleRule) -> Provisioning {
    Provisioning {
        allow_registration: allow,
        default_role: None,
        roles,
        sync_user_info: false,
        lower_identifier: false,
    }
}

fn who(id: &str, email: &str) -> Identity {
    Identity {
        external_id: id.into(),
        email: Some(email.into()),
        first_name: Some("Ada".into()),
        last_name: Some("Lovelace".into()),
        groups: vec![],
        auth_data: Some(json!({"refreshToken": "rt-1"})),
    }
}

async fn user_row(app: &TestApp, admin: &str, email: &str) -> serde_json::Value {
    let r = app
        .get(
            &format!("/users?filter[email][_eq]={email}&fields=*"),
            Some(admin),
        )
        .await;
    r.data()[0].clone()
}

#[tokio::test]
async fn get_auth_lists_providers_in_order_without_unset_fields() {
    let app = spawn_with(GH).await;
    let r = app.get("/auth", None).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.text,
        r#"{"data":[{"name":"github","label":"GitHub","driver":"oauth2"},{"name":"corp","driver":"oauth2","icon":"key"}],"disableDefault":false}"#
    );
    let r = app.get("/auth?sessionOnly", None).await;
    assert_eq!(r.data().as_array().unwrap().len(), 1);
    assert_eq!(r.data()[0]["name"], "github");
}

#[tokio::test]
async fn sso_login_registers_then_finds_the_user_case_insensitively() {
    let app = spawn_with(GH).await;
    let admin = app.admin_token().await;
    let meta = RequestMeta::default();
    let off = rules(false, RoleRule::Keep);
    let e = app
        .auth
        .sso_login(
            "github",
            who("Ada-1", "ada@example.com"),
            &off,
            Mode::Json,
            None,
            &meta,
        )
        .await
        .unwrap_err();
    assert_eq!(e.code(), "INVALID_CREDENTIALS");
    let on = rules(true, RoleRule::Keep);
    let issued = app
        .auth
        .sso_login(
            "github",
            who("Ada-1", "ada@example.com"),
            &on,
            Mode::Json,
            None,
            &meta,
        )
        .await
        .unwrap();
    let me = app.get("/users/me", Some(&issued.access_token)).await;
    assert_eq!(me.status, 200, "{}", me.text);
    let row = user_row(&app, &admin, "ada@example.com").await;
    assert_eq!(me.data()["id"], row["id"]);
    assert_eq!(row["provider"], "github");
    assert_eq!(row["external_identifier"], "Ada-1");
    assert_eq!(row["auth_data"], json!({"refreshToken": "rt-1"}));
    // Second login, another case, registration off: the same account.
    let mut again = who("ADA-1", "changed@example.com");
    again.auth_data = Some(json!({"refreshToken": "rt-2"}));
    let issued2 = app
        .auth
        .sso_login("github", again, &off, Mode::Json, None, &meta)
        .await
        .unwrap();
    let me2 = app.get("/users/me", Some(&issued2.access_token)).await;
    assert_eq!(me2.data()["id"], me.data()["id"]);
    // Without SYNC_USER_INFO the email stays; auth_data always follows the provider.
    let row = user_row(&app, &admin, "ada@example.com").await;
    assert_eq!(row["id"], me.data()["id"]);
    assert_eq!(row["auth_data"], json!({"refreshToken": "rt-2"}));
}

#[tokio::test]
async fn another_provider_cannot_take_over_an_account_and_taken_emails_are_invalid_provider() {
    let app = spawn_with(GH).await;
    let meta = RequestMeta::default();
    let on = rules(true, RoleRule::Keep);
    app.auth
        .sso_login(
            "github",
            who("x1", "x@example.com"),
            &on,
            Mode::Json,
            None,
            &meta,
        )
        .await
        .unwrap();
    let e = app
        .auth
        .sso_login(
            "corp",
            who("X1", "other@example.com"),
            &on,
            Mode::Json,
            None,
            &meta,
        )
        .await
        .unwrap_err();
    assert_eq!(e.code(), "INVALID_CREDENTIALS");
    // The admin's email belongs to a local account.
    let e = app
        .auth
        .sso_login(
            "corp",
            who("new", ADMIN_EMAIL),
            &on,
            Mode::Json,
            None,
            &meta,
        )
        .await
        .unwrap_err();
    assert_eq!(e.code(), "INVALID_PROVIDER");
    assert_eq!(e.api().status(), 403);
    let e = app
        .auth
        .sso_login(
            "corp",
            who("", "e@example.com"),
            &on,
            Mode::Json,
            None,
            &meta,
        )
        .await
        .unwrap_err();
    assert_eq!(e.code(), "INVALID_CREDENTIALS");
}

#[tokio::test]
async fn role_mapping_applies_at_creation_and_on_every_login_and_sync_updates_the_profile() {
    let app = spawn_with(GH).await;
    let admin = app.admin_token().await;
    let staff = app.create_role(&admin, "Staff", false, true).await;
    let editors = app.create_role(&admin, "Editors", false, true).await;
    let staff_id = uuid::Uuid::parse_str(&staff).unwrap();
    let editors_id = uuid::Uuid::parse_str(&editors).unwrap();
    let meta = RequestMeta::default();
    let mut r = rules(
        true,
        RoleRule::Mapping(vec![
            ("staff".into(), staff_id),
            ("editors".into(), editors_id),
        ]),
    );
    r.sync_user_info = true;
    let mut id = who("m1", "m@example.com");
    id.groups = vec!["editors".into(), "staff".into()];
    app.auth
        .sso_login("github", id.clone(), &r, Mode::Json, None, &meta)
        .await
        .unwrap();
    assert_eq!(user_row(&app, &admin, "m@example.com").await["role"], staff);
    id.groups = vec!["editors".into()];
    id.first_name = Some("Grace".into());
    app.auth
        .sso_login("github", id.clone(), &r, Mode::Json, None, &meta)
        .await
        .unwrap();
    let row = user_row(&app, &admin, "m@example.com").await;
    assert_eq!(row["role"], editors);
    assert_eq!(row["first_name"], "Grace");
    // No mapped group and no default role: the role is cleared.
    id.groups = vec![];
    app.auth
        .sso_login("github", id, &r, Mode::Json, None, &meta)
        .await
        .unwrap();
    assert!(user_row(&app, &admin, "m@example.com").await["role"].is_null());
    // GROUP_DN-style rule: role names compared lower-cased.
    let mut id = who("g1", "g@example.com");
    id.groups = vec!["EDITORS".into()];
    app.auth
        .sso_login(
            "github",
            id,
            &rules(true, RoleRule::GroupNames),
            Mode::Json,
            None,
            &meta,
        )
        .await
        .unwrap();
    assert_eq!(
        user_row(&app, &admin, "g@example.com").await["role"],
        editors
    );
}

#[tokio::test]
async fn a_suspended_sso_user_is_refused() {
    let app = spawn_with(GH).await;
    let admin = app.admin_token().await;
    let meta = RequestMeta::default();
    let on = rules(true, RoleRule::Keep);
    app.auth
        .sso_login(
            "github",
            who("s1", "s@example.com"),
            &on,
            Mode::Json,
            None,
            &meta,
        )
        .await
        .unwrap();
    let id = user_row(&app, &admin, "s@example.com").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = app
        .patch(
            &format!("/users/{id}"),
            Some(&admin),
            json!({"status": "suspended"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let e = app
        .auth
        .sso_login(
            "github",
            who("s1", "s@example.com"),
            &on,
            Mode::Json,
            None,
            &meta,
        )
        .await
        .unwrap_err();
    assert_eq!(e.code(), "INVALID_CREDENTIALS");
}
