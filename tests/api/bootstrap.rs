//! First start: nodes starting together on one empty database bootstrap one admin.

use std::sync::Arc;

use gatehouse::clock::OffsetClock;
use gatehouse::config::{Config, Vars};
use gatehouse::store::{Filter, ListQuery, ACCESS, POLICIES, ROLES, USERS};
use serde_json::{json, Value};
use sqlx::Connection;

use crate::helpers::*;

const NODES: usize = 5;

/// Creates the `gh_schema` the URL names, so the nodes do not race on `CREATE SCHEMA`
/// (a test-only parameter; a deployment's schema exists before gatehouse starts).
async fn create_schema(vars: &[(String, String)]) {
    let Some((_, url)) = vars.iter().find(|(k, _)| k == "DB_CONNECTION_STRING") else {
        return;
    };
    let (base, query) = url.split_once('?').expect("test URL has a query");
    let schema = query
        .split('&')
        .find_map(|p| p.strip_prefix("gh_schema="))
        .expect("gh_schema");
    let kept: Vec<&str> = query
        .split('&')
        .filter(|p| !p.starts_with("gh_schema="))
        .collect();
    let base = if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    let mut conn = sqlx::PgConnection::connect(&base).await.unwrap();
    sqlx::raw_sql(&format!("CREATE SCHEMA \"{schema}\""))
        .execute(&mut conn)
        .await
        .unwrap();
}

/// Five nodes built at once on one empty database (SQLite: one file; PostgreSQL: one
/// schema) all start and serve, and exactly one admin, role and admin policy exist.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nodes_starting_together_bootstrap_one_admin() {
    let dir = tempfile::tempdir().unwrap();
    let vars = base_vars(dir.path());
    create_schema(&vars).await;
    let builds = (0..NODES).map(|_| {
        let config = Config::from_vars(&Vars::from_pairs(vars.clone()).unwrap()).unwrap();
        gatehouse::App::build(config, Arc::new(OffsetClock::default()))
    });
    let mut stops = Vec::new();
    let mut nodes = Vec::new();
    for (i, built) in futures::future::join_all(builds)
        .await
        .into_iter()
        .enumerate()
    {
        let app = built.unwrap_or_else(|e| panic!("node {i} failed to start: {e:#}"));
        let base = format!("http://{}", app.addr());
        let store = app.auth().store.clone();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(app.serve(async move {
            let _ = rx.await;
        }));
        stops.push(tx);
        nodes.push((base, store));
    }

    let client = reqwest::Client::new();
    for (base, _) in &nodes {
        let r = read(
            client
                .get(format!("{base}/server/ping"))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!((r.status, r.text.as_str()), (200, "pong"), "{base}");
        let login = json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD, "mode": "json"});
        let r = read(
            client
                .post(format!("{base}/auth/login"))
                .json(&login)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(r.status, 200, "admin login through {base}: {}", r.text);
        assert!(r.data()["access_token"].is_string(), "{}", r.text);
    }

    let store = &nodes[0].1;
    let users = store
        .items
        .items_list(&USERS, &ListQuery::default())
        .await
        .unwrap();
    assert_eq!(users.len(), 1, "{users:?}");
    assert_eq!(users[0]["email"], json!(ADMIN_EMAIL));
    let roles = store
        .items
        .items_list(&ROLES, &ListQuery::default())
        .await
        .unwrap();
    assert_eq!(roles.len(), 1, "{roles:?}");
    assert_eq!(users[0]["role"], roles[0]["id"]);
    let admin_policies = ListQuery {
        filters: vec![Filter {
            field: "admin_access",
            value: Value::Bool(true),
        }],
        ..ListQuery::default()
    };
    let policies = store
        .items
        .items_list(&POLICIES, &admin_policies)
        .await
        .unwrap();
    assert_eq!(policies.len(), 1, "{policies:?}");
    // The public policy's row and the Administrator role's.
    assert_eq!(store.items.items_count(&ACCESS).await.unwrap(), 2);
    drop(stops);
}
