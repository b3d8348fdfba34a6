//! `items_write_keys`: inserts into a table whose integer key the database assigns
//! (`directus_permissions`) return that key, all or nothing with the other ops; and the
//! permissions of a deleted policy go with it (`ON DELETE CASCADE`, which SQLite applies only
//! with `foreign_keys=ON`).

use gatehouse::store::{WriteOp, PERMISSIONS};

use super::*;

fn permission(collection: &str, policy: Uuid) -> WriteOp {
    WriteOp::Insert {
        c: &PERMISSIONS,
        item: item(json!({
            "collection": collection,
            "action": "read",
            "permissions": { "status": { "_eq": "published" } },
            "validation": null,
            "presets": { "status": "draft" },
            "fields": "id,title",
            "policy": policy.to_string(),
        })),
    }
}

fn key(k: &Option<Value>) -> i64 {
    k.as_ref()
        .and_then(Value::as_i64)
        .unwrap_or_else(|| panic!("an integer key, got {k:?}"))
}

pub async fn items_write_keys_returns_generated_keys(s: Arc<dyn Store>) -> R {
    let policy = add_policy(&s, "Readers", json!({})).await?;
    let role = Uuid::new_v4();
    let ops = [
        permission("articles", policy),
        WriteOp::Insert {
            c: &ROLES,
            item: item(json!({ "id": role.to_string(), "name": "Beside" })),
        },
        permission("comments", policy),
    ];
    let keys = s.items_write_keys(&ops).await?;
    assert_eq!(keys.len(), 3);
    let (first, second) = (key(&keys[0]), key(&keys[2]));
    assert!(first < second, "{first} then {second}");
    // An op that names its key answers it.
    assert_eq!(keys[1], Some(json!(role.to_string())));
    // Each row is read back by the key it was given, as written.
    let row = s
        .item_get(&PERMISSIONS, &json!(first))
        .await?
        .expect("first row");
    assert_eq!(
        row,
        item(json!({
            "id": first,
            "collection": "articles",
            "action": "read",
            "permissions": { "status": { "_eq": "published" } },
            "validation": null,
            "presets": { "status": "draft" },
            "fields": "id,title",
            "policy": policy.to_string(),
        }))
    );
    let row = s
        .item_get(&PERMISSIONS, &json!(second))
        .await?
        .expect("second row");
    assert_eq!(row["collection"], json!("comments"));
    // A null key is the database's too.
    let mut op = permission("nulled", policy);
    if let WriteOp::Insert { item, .. } = &mut op {
        item.insert("id".into(), Value::Null);
    }
    let third = key(&s.items_write_keys(&[op]).await?[0]);
    assert!(third > second);
    // `item_insert` (no key returned) takes the database's key as well.
    let WriteOp::Insert { item: plain, .. } = permission("plain", policy) else {
        unreachable!("an insert")
    };
    s.item_insert(&PERMISSIONS, &plain).await?;
    assert_eq!(s.items_count(&PERMISSIONS).await?, 4);

    // Updates and deletes answer their key, or None when no row has it.
    let ops = [
        WriteOp::Update {
            c: &PERMISSIONS,
            id: json!(first),
            patch: item(json!({ "fields": "*" })),
        },
        WriteOp::Update {
            c: &PERMISSIONS,
            id: json!(999_999),
            patch: item(json!({ "fields": "*" })),
        },
        WriteOp::Delete {
            c: &PERMISSIONS,
            id: json!(second),
        },
        WriteOp::Delete {
            c: &PERMISSIONS,
            id: json!(second),
        },
    ];
    assert_eq!(
        s.items_write_keys(&ops).await?,
        vec![Some(json!(first)), None, Some(json!(second)), None]
    );
    assert_eq!(
        s.item_get(&PERMISSIONS, &json!(first)).await?.expect("row")["fields"],
        json!("*")
    );
    assert_eq!(s.item_get(&PERMISSIONS, &json!(second)).await?, None);
    assert_eq!(s.items_write_keys(&[]).await?, Vec::<Option<Value>>::new());
    Ok(())
}

pub async fn generated_key_inserts_are_all_or_nothing(s: Arc<dyn Store>) -> R {
    let policy = add_policy(&s, "Writers", json!({})).await?;
    s.items_write_keys(&[permission("before", policy)]).await?;
    // The third insert names no policy row: the database's foreign key refuses it, and the
    // two before it are undone.
    let ops = [
        permission("a", policy),
        permission("b", policy),
        permission("c", Uuid::new_v4()),
    ];
    match s.items_write_keys(&ops).await {
        Err(StoreError::ForeignKey { collection, .. }) => {
            assert_eq!(collection.as_deref(), Some("directus_permissions"));
        }
        other => panic!("expected a foreign-key violation, got {other:?}"),
    }
    assert_eq!(s.items_count(&PERMISSIONS).await?, 1);
    // A value the column cannot hold fails the whole write too.
    let mut bad = permission("d", policy);
    if let WriteOp::Insert { item, .. } = &mut bad {
        item.insert("collection".into(), json!(5));
    }
    assert!(s
        .items_write_keys(&[permission("e", policy), bad])
        .await
        .is_err());
    assert_eq!(s.items_count(&PERMISSIONS).await?, 1);
    // And then a write goes through, with keys past the undone ones' or reusing them, but
    // distinct and increasing.
    let keys = s
        .items_write_keys(&[permission("f", policy), permission("g", policy)])
        .await?;
    assert!(key(&keys[0]) < key(&keys[1]));
    assert_eq!(s.items_count(&PERMISSIONS).await?, 3);
    Ok(())
}

pub async fn deleting_a_policy_deletes_its_permissions(s: Arc<dyn Store>) -> R {
    let (gone, kept) = (
        add_policy(&s, "Gone", json!({})).await?,
        add_policy(&s, "Kept", json!({})).await?,
    );
    let keys = s
        .items_write_keys(&[
            permission("a", gone),
            permission("b", gone),
            permission("a", kept),
        ])
        .await?;
    assert!(
        s.item_delete(&POLICIES, &json!(gone.to_string())).await?,
        "the policy is deleted"
    );
    let left = s.items_list(&PERMISSIONS, &ListQuery::default()).await?;
    let left: Vec<i64> = left.iter().filter_map(|r| r["id"].as_i64()).collect();
    assert_eq!(left, vec![key(&keys[2])]);
    Ok(())
}
