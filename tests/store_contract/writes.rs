//! `items_write` (all or nothing, case-insensitive email uniqueness) and
//! `items_write_if_no_users` (bootstrap).

use gatehouse::store::WriteOp;

use super::*;

fn insert(c: &'static gatehouse::store::Collection, v: Value) -> WriteOp {
    WriteOp::Insert { c, item: item(v) }
}

pub async fn items_write_is_all_or_nothing(s: Arc<dyn Store>) -> R {
    let user = add_user(&s, "kept@example.com", json!({ "first_name": "Kept" })).await?;
    let (role, policy) = (Uuid::new_v4(), Uuid::new_v4());
    let key = json!(user.to_string());

    // The last op fails (the user's key is taken): nothing before it stays.
    let ops = [
        insert(&ROLES, json!({ "id": role.to_string(), "name": "Undone" })),
        insert(
            &POLICIES,
            json!({ "id": policy.to_string(), "name": "Undone" }),
        ),
        WriteOp::Update {
            c: &USERS,
            id: key.clone(),
            patch: item(json!({ "first_name": "Changed" })),
        },
        insert(
            &USERS,
            json!({ "id": user.to_string(), "email": "dup@example.com" }),
        ),
    ];
    let (collection, field, _) = conflict(s.items_write(&ops).await);
    assert_eq!(
        (collection.as_str(), field.as_str()),
        ("directus_users", "id")
    );
    assert_eq!(s.item_get(&ROLES, &json!(role.to_string())).await?, None);
    assert_eq!(
        s.item_get(&POLICIES, &json!(policy.to_string())).await?,
        None
    );
    let u = s.item_get(&USERS, &key).await?.expect("user still there");
    assert_eq!(u["first_name"], json!("Kept"));

    // A value that cannot be stored fails the whole write too.
    let ops = [
        insert(&ROLES, json!({ "id": role.to_string(), "name": "Undone" })),
        insert(
            &ACCESS,
            json!({ "id": Uuid::new_v4().to_string(), "sort": "not a number" }),
        ),
    ];
    assert!(s.items_write(&ops).await.is_err());
    assert_eq!(s.item_get(&ROLES, &json!(role.to_string())).await?, None);

    // What each op wrote.
    let missing = json!(Uuid::new_v4().to_string());
    let ops = [
        insert(&ROLES, json!({ "id": role.to_string(), "name": "Done" })),
        insert(
            &POLICIES,
            json!({ "id": policy.to_string(), "name": "Done" }),
        ),
        insert(
            &ACCESS,
            json!({ "id": Uuid::new_v4().to_string(), "role": role.to_string(), "policy": policy.to_string(), "sort": 1 }),
        ),
        WriteOp::Update {
            c: &USERS,
            id: key.clone(),
            patch: item(json!({ "role": role.to_string() })),
        },
        WriteOp::Update {
            c: &USERS,
            id: missing.clone(),
            patch: item(json!({ "first_name": "X" })),
        },
        WriteOp::Update {
            c: &USERS,
            id: key.clone(),
            patch: Item::new(),
        },
        WriteOp::Delete {
            c: &ROLES,
            id: missing,
        },
    ];
    assert_eq!(
        s.items_write(&ops).await?,
        vec![true, true, true, true, false, true, false]
    );
    let got = s.policies_for(&[role], None).await?;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0["id"], json!(policy.to_string()));
    assert_eq!(
        s.item_get(&USERS, &key).await?.expect("user")["role"],
        json!(role.to_string())
    );
    assert_eq!(s.items_write(&[]).await?, Vec::<bool>::new());
    Ok(())
}

pub async fn items_write_keeps_emails_unique_ignoring_case(s: Arc<dyn Store>) -> R {
    let a = add_user(&s, "Tx@example.com", json!({})).await?;
    let b = add_user(&s, "other@example.com", json!({})).await?;

    // Another user's address in another case: refused, by insert and by update.
    let ops = [insert(
        &USERS,
        json!({ "id": Uuid::new_v4().to_string(), "email": "tx@EXAMPLE.com" }),
    )];
    assert_eq!(
        conflict(s.items_write(&ops).await),
        (
            "directus_users".into(),
            "email".into(),
            "tx@EXAMPLE.com".into()
        )
    );
    let r = s
        .item_update(
            &USERS,
            &json!(b.to_string()),
            &item(json!({ "email": "TX@example.com" })),
        )
        .await;
    assert_eq!(
        conflict(r),
        (
            "directus_users".into(),
            "email".into(),
            "TX@example.com".into()
        )
    );
    // Two new users in one write, the second the first's address.
    let ops = [
        insert(
            &USERS,
            json!({ "id": Uuid::new_v4().to_string(), "email": "new@example.com" }),
        ),
        insert(
            &USERS,
            json!({ "id": Uuid::new_v4().to_string(), "email": "NEW@example.com" }),
        ),
    ];
    let (_, field, _) = conflict(s.items_write(&ops).await);
    assert_eq!(field, "email");
    assert_eq!(s.items_count(&USERS).await?, 2);

    // A user's own address in another case, and a cleared email, are fine.
    assert!(
        s.item_update(
            &USERS,
            &json!(a.to_string()),
            &item(json!({ "email": "TX@example.com" }))
        )
        .await?
    );
    assert!(
        s.item_update(
            &USERS,
            &json!(b.to_string()),
            &item(json!({ "email": null }))
        )
        .await?
    );
    add_user(&s, "free@example.com", json!({})).await?;

    // Concurrent changes to one address in two cases: at most one lands.
    let (c, d) = (
        add_user(&s, "c@example.com", json!({})).await?,
        add_user(&s, "d@example.com", json!({})).await?,
    );
    for round in 0..10 {
        let tasks = [
            (c, format!("Race{round}@example.com")),
            (d, format!("race{round}@example.com")),
        ]
        .map(|(id, email)| {
            let s = s.clone();
            tokio::spawn(async move {
                s.item_update(
                    &USERS,
                    &json!(id.to_string()),
                    &item(json!({ "email": email })),
                )
                .await
            })
        });
        let mut landed = 0;
        for t in futures::future::join_all(tasks).await {
            match t.expect("task panicked") {
                Ok(true) => landed += 1,
                Err(StoreError::Conflict { .. }) => {}
                other => panic!("round {round}: {other:?}"),
            }
        }
        assert_eq!(landed, 1, "round {round}");
    }
    Ok(())
}

fn bootstrap_ops(email: &str) -> Vec<WriteOp> {
    let role = Uuid::new_v4().to_string();
    vec![
        insert(&ROLES, json!({ "id": role, "name": "Administrator" })),
        insert(
            &USERS,
            json!({ "id": Uuid::new_v4().to_string(), "email": email, "role": role }),
        ),
    ]
}

pub async fn items_write_if_no_users_applies_once(s: Arc<dyn Store>) -> R {
    assert!(
        s.items_write_if_no_users(&bootstrap_ops("first@example.com"))
            .await?
    );
    assert!(
        !s.items_write_if_no_users(&bootstrap_ops("second@example.com"))
            .await?
    );
    let users = s.items_list(&USERS, &ListQuery::default()).await?;
    assert_eq!(users.len(), 1);
    assert_eq!(users[0]["email"], json!("first@example.com"));
    assert_eq!(
        s.items_count(&ROLES).await?,
        1,
        "the second role was not written"
    );
    Ok(())
}

/// Nodes bootstrapping together on one migrated database: exactly one applies.
pub async fn nodes_bootstrap_concurrently(db: Database) {
    let first = db.migrated().await;
    let mut stores = vec![first];
    for _ in 0..4 {
        stores.push(db.open().await);
    }
    let runs = stores.iter().enumerate().map(|(i, s)| {
        let s = s.clone();
        tokio::spawn(async move {
            s.items_write_if_no_users(&bootstrap_ops(&format!("admin{i}@example.com")))
                .await
        })
    });
    let mut applied = 0;
    for r in futures::future::join_all(runs).await {
        if r.expect("task panicked").expect("concurrent bootstrap") {
            applied += 1;
        }
    }
    assert_eq!(applied, 1);
    assert_eq!(stores[0].items_count(&USERS).await.expect("count"), 1);
    assert_eq!(stores[0].items_count(&ROLES).await.expect("count"), 1);
    drop(stores);
    db.finish().await;
}
