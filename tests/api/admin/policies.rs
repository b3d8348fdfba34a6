//! `/policies`: CRUD, `ip_access` and `enforce_tfa`.

use super::*;

// ----- /policies -----

#[tokio::test]
async fn policies_crud() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let r = app
        .post(
            "/policies",
            Some(&admin),
            json!({"name": "Readers", "app_access": true, "description": "read things"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let d = r.data();
    let id = d["id"].as_str().expect("id").to_string();
    assert_eq!(d["name"], "Readers");
    assert_eq!(d["app_access"], true);
    assert_eq!(d["admin_access"], false);
    assert_eq!(d["enforce_tfa"], false);
    assert_eq!(d["icon"], "badge");
    assert!(d["ip_access"].is_null());
    let path = format!("/policies/{id}");

    assert_eq!(app.get(&path, Some(&admin)).await.data(), d);
    let list = app.get("/policies", Some(&admin)).await;
    assert_eq!(list.status, 200, "{}", list.text);
    // Public, Administrator, Readers.
    assert_eq!(list.data().as_array().unwrap().len(), 3, "{}", list.text);
    assert!(list
        .data()
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["id"] == PUBLIC_POLICY));

    let r = app
        .patch(
            &path,
            Some(&admin),
            json!({"name": "Writers", "admin_access": true}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.data()["name"], "Writers");
    assert_eq!(r.data()["admin_access"], true);
    app.patch(&path, Some(&admin), json!({"admin_access": "yes"}))
        .await
        .assert_error(400, "INVALID_PAYLOAD");
    app.post("/policies", Some(&admin), json!({"app_access": true}))
        .await
        .assert_error(400, "INVALID_PAYLOAD");

    let r = app.delete(&path, Some(&admin)).await;
    assert_eq!(r.status, 204, "{}", r.text);
    app.get(&path, Some(&admin))
        .await
        .assert_error(403, "FORBIDDEN");
    app.delete(&path, Some(&admin))
        .await
        .assert_error(403, "FORBIDDEN");
}

#[tokio::test]
async fn deleting_a_policy_removes_its_rights() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let p = app
        .post(
            "/policies",
            Some(&admin),
            json!({"name": "Grant", "admin_access": true}),
        )
        .await;
    let pid = p.data()["id"].as_str().unwrap().to_string();
    let r = app
        .post(
            "/roles",
            Some(&admin),
            json!({"name": "Granted", "policies": [{"policy": pid}]}),
        )
        .await;
    let role = r.data()["id"].as_str().unwrap().to_string();
    let t = role_user_token(&app, &admin, &role, "g@example.com").await;
    assert_eq!(app.get("/users", Some(&t)).await.status, 200);
    assert_eq!(
        app.delete(&format!("/policies/{pid}"), Some(&admin))
            .await
            .status,
        204
    );
    app.get("/users", Some(&t))
        .await
        .assert_error(403, "FORBIDDEN");
    // The role stays.
    assert_eq!(
        app.get(&format!("/roles/{role}"), Some(&admin))
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn ip_access_restricts_a_policy_to_its_networks() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let r = app
        .post(
            "/roles",
            Some(&admin),
            json!({"name": "Office", "policies": [{"policy": {"name": "Office admin", "admin_access": true, "app_access": true, "ip_access": "10.0.0.0/8"}}]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let role = r.data()["id"].as_str().unwrap().to_string();
    let t = role_user_token(&app, &admin, &role, "office@example.com").await;
    let c = claims(&t);
    assert_eq!(
        (c["admin_access"].clone(), c["app_access"].clone()),
        (json!(false), json!(false)),
        "{c}"
    );
    app.get("/users", Some(&t))
        .await
        .assert_error(403, "FORBIDDEN");

    let pid = app
        .get("/policies?filter[name][_eq]=Office admin", Some(&admin))
        .await
        .data()[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = app
        .patch(
            &format!("/policies/{pid}"),
            Some(&admin),
            json!({"ip_access": ["127.0.0.1"]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    // A CSV column: read back as an array, as Directus's API shows it.
    assert_eq!(r.data()["ip_access"], json!(["127.0.0.1"]));
    // Rights are recomputed per request: the same token now has admin.
    assert_eq!(app.get("/users", Some(&t)).await.status, 200);
    let t = tokens(&app, "office@example.com", "user-password").await.0;
    assert_eq!(claims(&t)["admin_access"], true);

    app.patch(
        &format!("/policies/{pid}"),
        Some(&admin),
        json!({"ip_access": "10.0.0.0/8, 127.0.0.0/8"}),
    )
    .await;
    assert_eq!(app.get("/users", Some(&t)).await.status, 200);
    app.patch(
        &format!("/policies/{pid}"),
        Some(&admin),
        json!({"ip_access": "192.168.0.1,::2"}),
    )
    .await;
    app.get("/users", Some(&t))
        .await
        .assert_error(403, "FORBIDDEN");
}

#[tokio::test]
async fn ip_access_uses_the_ip_custom_header() {
    let app = spawn_with(&[("IP_CUSTOM_HEADER", "X-Real-IP")]).await;
    let admin = app.admin_token().await;
    let r = app
        .post(
            "/roles",
            Some(&admin),
            json!({"name": "Office", "policies": [{"policy": {"name": "Office admin", "admin_access": true, "ip_access": "10.0.0.0/8"}}]}),
        )
        .await;
    let role = r.data()["id"].as_str().unwrap().to_string();
    app.create_user(&admin, "office@example.com", "user-password", Some(&role))
        .await;
    let send =
        |method: Method, path: &str, ip: Option<&str>, token: Option<&str>, body: Option<Value>| {
            let mut req = app.client.request(method, app.url(path));
            if let Some(ip) = ip {
                req = req.header("x-real-ip", ip);
            }
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            if let Some(b) = body {
                req = req.json(&b);
            }
            async move { read(req.send().await.expect("request")).await }
        };
    let login = send(
        Method::POST,
        "/auth/login",
        Some("10.1.2.3"),
        None,
        Some(json!({"email": "office@example.com", "password": "user-password"})),
    )
    .await;
    assert_eq!(login.status, 200, "{}", login.text);
    let t = login.data()["access_token"].as_str().unwrap().to_string();
    assert_eq!(claims(&t)["admin_access"], true);
    assert_eq!(
        send(Method::GET, "/users", Some("10.1.2.3"), Some(&t), None)
            .await
            .status,
        200
    );
    send(Method::GET, "/users", Some("11.1.2.3"), Some(&t), None)
        .await
        .assert_error(403, "FORBIDDEN");
    send(Method::GET, "/users", None, Some(&t), None)
        .await
        .assert_error(403, "FORBIDDEN");
}

#[tokio::test]
async fn enforce_tfa_on_the_direct_role_adds_the_claim() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let r = app
        .post("/roles", Some(&admin), json!({"name": "Strict", "policies": [{"policy": {"name": "Strict", "app_access": true, "enforce_tfa": true}}]}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let strict = r.data()["id"].as_str().unwrap().to_string();
    let id = app
        .create_user(&admin, "strict@example.com", "user-password", Some(&strict))
        .await;

    let t = tokens(&app, "strict@example.com", "user-password").await.0;
    let c = claims(&t);
    assert_eq!(c["enforce_tfa"], true, "{c}");
    let names: Vec<&String> = c.as_object().unwrap().keys().collect();
    assert_eq!(
        names,
        [
            "id",
            "role",
            "app_access",
            "admin_access",
            "enforce_tfa",
            "iat",
            "exp",
            "iss"
        ],
        "claim order"
    );
    // The claim does not block requests.
    assert_eq!(app.get("/users/me", Some(&t)).await.status, 200);

    // The refresh carries it too.
    let (_, rt) = tokens(&app, "strict@example.com", "user-password").await;
    let r = refresh(&app, &rt).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        claims(r.data()["access_token"].as_str().unwrap())["enforce_tfa"],
        true
    );

    // A user with TFA set up does not get it.
    let secret = "JBSWY3DPEHPK3PXP";
    store_set_user(&app, &id, json!({"tfa_secret": secret})).await;
    app.freeze_at_totp_step();
    let otp = gatehouse::totp::generate(secret, app.auth.now()).unwrap();
    let r = app
        .post(
            "/auth/login",
            None,
            json!({"email": "strict@example.com", "password": "user-password", "otp": otp}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(claims(r.data()["access_token"].as_str().unwrap())
        .get("enforce_tfa")
        .is_none());

    // Only the direct role counts, not a parent's.
    let r = app
        .post(
            "/roles",
            Some(&admin),
            json!({"name": "Strict child", "parent": strict}),
        )
        .await;
    let child = r.data()["id"].as_str().unwrap().to_string();
    app.create_user(&admin, "child@example.com", "user-password", Some(&child))
        .await;
    let c = claims(&tokens(&app, "child@example.com", "user-password").await.0);
    assert!(c.get("enforce_tfa").is_none(), "{c}");
    assert_eq!(
        c["app_access"], true,
        "the parent's app access still applies: {c}"
    );
}

#[tokio::test]
async fn the_public_policy_cannot_be_deleted() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    app.delete(&format!("/policies/{PUBLIC_POLICY}"), Some(&admin))
        .await
        .assert_error(400, "INVALID_PAYLOAD");
    let r = app
        .get(&format!("/policies/{PUBLIC_POLICY}"), Some(&admin))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.data()["name"], "$t:public_label");
    assert_eq!(r.data()["admin_access"], false);
}
