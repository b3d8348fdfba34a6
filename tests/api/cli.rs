//! The command line, run in-process on the database a server uses.

use clap::Parser;
use serde_json::json;

use crate::helpers::*;

/// Runs one command line on the database of `vars`; returns what it printed.
async fn gatehouse(vars: &[(String, String)], args: &[&str]) -> anyhow::Result<String> {
    let config = gatehouse::config::Config::from_vars(
        &gatehouse::config::Vars::from_pairs(vars.to_vec()).expect("vars"),
    )
    .expect("config");
    let cli = gatehouse::cli::Cli::try_parse_from(
        std::iter::once("gatehouse").chain(args.iter().copied()),
    )
    .expect("arguments");
    let mut out = Vec::new();
    gatehouse::cli::run(cli, config, &mut out).await?;
    Ok(String::from_utf8(out).expect("utf-8"))
}

#[tokio::test]
async fn set_status_undoes_a_suspension_without_sql() {
    let dir = tempfile::tempdir().unwrap();
    let vars = base_vars(dir.path());
    gatehouse(&vars, &["bootstrap"]).await.unwrap();
    let out = gatehouse(
        &vars,
        &[
            "users",
            "create",
            "--email",
            "s@example.com",
            "--password",
            "user-password",
        ],
    )
    .await
    .unwrap();
    assert!(out.starts_with("created user "), "{out}");

    // Suspended by the attempt limit, through a server on the same database.
    let config = gatehouse::config::Config::from_vars(
        &gatehouse::config::Vars::from_pairs(vars.clone()).unwrap(),
    )
    .unwrap();
    let app = gatehouse::App::build(config, std::sync::Arc::new(gatehouse::clock::SystemClock))
        .await
        .unwrap();
    let base = format!("http://{}", app.addr());
    let auth = app.auth().clone();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.serve(async move {
        let _ = rx.await;
    }));
    let client = reqwest::Client::new();
    let login = |password: &'static str| {
        let (client, base) = (client.clone(), base.clone());
        async move {
            let r = client
                .post(format!("{base}/auth/login"))
                .json(&json!({"email": "s@example.com", "password": password}))
                .send()
                .await
                .unwrap();
            read(r).await
        }
    };
    let r = client
        .post(format!("{base}/auth/login"))
        .json(&json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}))
        .send()
        .await
        .unwrap();
    let admin = read(r).await.data()["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let r = client
        .patch(format!("{base}/settings"))
        .bearer_auth(&admin)
        .json(&json!({"auth_login_attempts": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    login("wrong")
        .await
        .assert_error(401, "INVALID_CREDENTIALS");
    login("user-password")
        .await
        .assert_error(401, "INVALID_CREDENTIALS");
    let user = auth
        .find_user_by_email("s@example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(user["status"], "suspended");

    let out = gatehouse(&vars, &["users", "set-status", "s@example.com", "active"])
        .await
        .unwrap();
    assert_eq!(out.trim(), "status of s@example.com set to active");
    let id: uuid::Uuid = user["id"].as_str().unwrap().parse().unwrap();
    assert_eq!(auth.store.counters.login_failures(id).await.unwrap(), 0);
    let r = login("user-password").await;
    assert_eq!(r.status, 200, "{}", r.text);

    // The last admin cannot be suspended from the command line either, and a bad status is refused.
    let err = gatehouse(&vars, &["users", "set-status", ADMIN_EMAIL, "suspended"])
        .await
        .unwrap_err();
    assert!(format!("{err:#}").contains("last admin"), "{err:#}");
    let err = gatehouse(&vars, &["users", "set-status", "s@example.com", "asleep"])
        .await
        .unwrap_err();
    assert!(
        format!("{err:#}").contains("\"status\" must be one of"),
        "{err:#}"
    );
    let err = gatehouse(
        &vars,
        &["users", "set-status", "nobody@example.com", "active"],
    )
    .await
    .unwrap_err();
    assert!(format!("{err:#}").contains("no user with email"), "{err:#}");
    let _ = tx.send(());
}
