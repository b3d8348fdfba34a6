//! The per-node user cache (GATEHOUSE_USER_CACHE_TTL), observed from outside: a change made
//! behind a node's back (by another node on the same database) stays unseen on that node
//! until its entry expires or the node itself writes.

use serde_json::{json, Value};

use crate::helpers::*;

#[tokio::test]
async fn a_node_serves_users_me_from_its_cache_until_its_own_write() {
    // A TTL far longer than the test: nothing expires while it runs, however slow the machine.
    let nodes = spawn_nodes(2, &[("GATEHOUSE_USER_CACHE_TTL", "1h")]).await;
    let (a, b) = (&nodes[0], &nodes[1]);
    let admin = a.admin_token().await;
    let name = |r: &Resp| r.data()["first_name"].clone();
    assert_eq!(name(&b.get("/users/me", Some(&admin)).await), Value::Null);

    // Written through node a: node b still answers from its cache.
    let r = a
        .patch("/users/me", Some(&admin), json!({"first_name": "Ada"}))
        .await;
    assert_eq!(name(&r), "Ada", "{}", r.text);
    assert_eq!(
        name(&b.get("/users/me", Some(&admin)).await),
        Value::Null,
        "node b read the database instead of its cache"
    );
    // Node b's own write drops its entry: it reads the database again and sees both.
    let r = b
        .patch("/users/me", Some(&admin), json!({"last_name": "Lovelace"}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let me = b.get("/users/me", Some(&admin)).await;
    assert_eq!(
        (name(&me), me.data()["last_name"].clone()),
        (json!("Ada"), json!("Lovelace"))
    );
}
