//! The item layer: Directus's collections read and written as JSON maps.

use super::*;

pub async fn items_insert_get_update_delete(s: Arc<dyn Store>) -> R {
    let role = add_role(&s, "Editors").await?;
    let r = s
        .item_get(&ROLES, &json!(role.to_string()))
        .await?
        .expect("role stored");
    assert_eq!(r["name"], json!("Editors"));
    assert_eq!(
        r["icon"],
        json!("supervised_user_circle"),
        "column default applies"
    );
    assert_eq!(
        (&r["description"], &r["parent"]),
        (&Value::Null, &Value::Null)
    );

    let before = s.items_count(&USERS).await?;
    let user = add_user(
        &s,
        "ed@example.com",
        json!({ "role": role.to_string(), "first_name": "Ed" }),
    )
    .await?;
    assert_eq!(s.items_count(&USERS).await?, before + 1);
    let key = json!(user.to_string());
    let u = s.item_get(&USERS, &key).await?.expect("user stored");
    assert_eq!(u["id"], key);
    assert_eq!(u["email"], json!("ed@example.com"));
    assert_eq!(u["role"], json!(role.to_string()));
    assert_eq!(
        (&u["status"], &u["provider"], &u["text_direction"]),
        (&json!("active"), &json!("default"), &json!("auto"))
    );
    assert_eq!(u["email_notifications"], json!(true));
    assert_eq!(
        u.len(),
        USERS.fields.len(),
        "every known column is returned"
    );

    assert!(
        s.item_update(
            &USERS,
            &key,
            &item(json!({ "first_name": "Ada", "role": null }))
        )
        .await?
    );
    let u = s.item_get(&USERS, &key).await?.expect("user still there");
    assert_eq!(
        (&u["first_name"], &u["role"], &u["email"]),
        (&json!("Ada"), &Value::Null, &json!("ed@example.com"))
    );

    let missing = json!(Uuid::new_v4().to_string());
    assert!(
        !s.item_update(&USERS, &missing, &item(json!({ "first_name": "X" })))
            .await?
    );
    assert!(
        s.item_update(&USERS, &key, &Item::new()).await?,
        "empty patch on an existing row"
    );
    assert!(
        !s.item_update(&USERS, &missing, &Item::new()).await?,
        "empty patch on a missing row"
    );
    assert!(
        s.item_update(&USERS, &key, &item(json!({ "id": missing })))
            .await?,
        "the key itself is never patched"
    );
    assert!(s.item_get(&USERS, &key).await?.is_some());

    // A malformed key matches nothing (no error) on every backend.
    let bad = json!("not-a-uuid");
    assert_eq!(s.item_get(&USERS, &bad).await?, None);
    assert!(
        !s.item_update(&USERS, &bad, &item(json!({ "first_name": "X" })))
            .await?
    );
    assert!(!s.item_delete(&USERS, &bad).await?);

    assert!(s.item_delete(&USERS, &key).await?);
    assert!(!s.item_delete(&USERS, &key).await?);
    assert_eq!(s.item_get(&USERS, &key).await?, None);
    assert_eq!(s.items_count(&USERS).await?, before);
    Ok(())
}

pub async fn items_list_filters(s: Arc<dyn Store>) -> R {
    let r1 = add_role(&s, "One").await?;
    let r2 = add_role(&s, "Two").await?;
    let a = add_user(&s, "Alice@Example.com", json!({ "role": r1.to_string() }))
        .await?
        .to_string();
    let b = add_user(
        &s,
        "bob@example.com",
        json!({ "role": r1.to_string(), "status": "suspended" }),
    )
    .await?
    .to_string();
    let c = add_user(&s, "carol@example.com", json!({}))
        .await?
        .to_string();
    let d = add_user(
        &s,
        "dan@example.com",
        json!({ "role": r2.to_string(), "email_notifications": false }),
    )
    .await?
    .to_string();
    let eq = |field, value: Value| Filter { field, value };
    let list = |filters: Vec<Filter>, ci: Option<(&'static str, &str)>, limit, offset| ListQuery {
        filters,
        ci_filter: ci.map(|(f, v)| (f, v.to_string())),
        limit,
        offset,
        ..ListQuery::default()
    };

    let all = s.items_list(&USERS, &ListQuery::default()).await?;
    assert_eq!(
        ids(&all),
        sorted(vec![a.clone(), b.clone(), c.clone(), d.clone()]),
        "ordered by primary key"
    );

    let q = list(vec![eq("role", json!(r1.to_string()))], None, None, None);
    assert_eq!(
        ids(&s.items_list(&USERS, &q).await?),
        sorted(vec![a.clone(), b.clone()])
    );
    let q = list(vec![eq("role", Value::Null)], None, None, None);
    assert_eq!(
        ids(&s.items_list(&USERS, &q).await?),
        vec![c.clone()],
        "null filter is IS NULL"
    );
    let q = list(vec![], Some(("email", "alice@EXAMPLE.com")), None, None);
    assert_eq!(
        ids(&s.items_list(&USERS, &q).await?),
        vec![a.clone()],
        "case-insensitive filter"
    );
    let q = list(vec![], Some(("email", "alice@example.co")), None, None);
    assert!(
        s.items_list(&USERS, &q).await?.is_empty(),
        "ci filter is equality, not a prefix match"
    );
    let q = list(
        vec![eq("role", json!(r1.to_string()))],
        Some(("email", "ALICE@example.com")),
        None,
        None,
    );
    assert_eq!(ids(&s.items_list(&USERS, &q).await?), vec![a.clone()]);
    let q = list(
        vec![eq("role", json!(r2.to_string()))],
        Some(("email", "alice@example.com")),
        None,
        None,
    );
    assert!(s.items_list(&USERS, &q).await?.is_empty());
    let q = list(vec![eq("status", json!("suspended"))], None, None, None);
    assert_eq!(ids(&s.items_list(&USERS, &q).await?), vec![b.clone()]);
    let q = list(
        vec![eq("email_notifications", json!(false))],
        None,
        None,
        None,
    );
    assert_eq!(ids(&s.items_list(&USERS, &q).await?), vec![d.clone()]);
    let q = list(vec![eq("role", json!("not-a-uuid"))], None, None, None);
    assert!(
        s.items_list(&USERS, &q).await?.is_empty(),
        "a malformed uuid matches nothing"
    );

    let q = list(vec![], None, Some(2), Some(1));
    assert_eq!(ids(&s.items_list(&USERS, &q).await?), ids(&all[1..3]));
    let q = list(vec![], None, None, Some(3));
    assert_eq!(
        ids(&s.items_list(&USERS, &q).await?),
        ids(&all[3..]),
        "offset without limit"
    );
    assert_eq!(s.items_count(&USERS).await?, 4);
    Ok(())
}

pub async fn unique_violations_name_the_column(s: Arc<dyn Store>) -> R {
    let first = add_user(
        &s,
        "taken@example.com",
        json!({ "token": "static-1", "external_identifier": "ext-1" }),
    )
    .await?;

    let dup = item(json!({ "id": Uuid::new_v4().to_string(), "email": "taken@example.com" }));
    let (collection, field, value) = conflict(s.item_insert(&USERS, &dup).await);
    assert_eq!(
        (collection.as_str(), field.as_str(), value.as_str()),
        ("directus_users", "email", "taken@example.com")
    );

    let dup = item(
        json!({ "id": Uuid::new_v4().to_string(), "email": "free@example.com", "token": "static-1" }),
    );
    let (_, field, value) = conflict(s.item_insert(&USERS, &dup).await);
    assert_eq!((field.as_str(), value.as_str()), ("token", "static-1"));
    assert_eq!(s.items_count(&USERS).await?, 1, "nothing inserted");

    let second = add_user(&s, "second@example.com", json!({})).await?;
    let patch = item(json!({ "external_identifier": "ext-1" }));
    let (_, field, value) = conflict(
        s.item_update(&USERS, &json!(second.to_string()), &patch)
            .await,
    );
    assert_eq!(
        (field.as_str(), value.as_str()),
        ("external_identifier", "ext-1")
    );

    let patch = item(json!({ "email": "taken@example.com", "first_name": "Sneaky" }));
    let (_, field, _) = conflict(
        s.item_update(&USERS, &json!(second.to_string()), &patch)
            .await,
    );
    assert_eq!(field, "email");
    let u = s
        .item_get(&USERS, &json!(second.to_string()))
        .await?
        .expect("second user");
    assert_eq!(
        (&u["email"], &u["first_name"]),
        (&json!("second@example.com"), &Value::Null),
        "failed update changed nothing"
    );

    // Several users may have no email, token or identifier.
    add_user(&s, "third@example.com", json!({ "email": null })).await?;
    add_user(&s, "fourth@example.com", json!({ "email": null })).await?;
    assert!(s
        .item_get(&USERS, &json!(first.to_string()))
        .await?
        .is_some());
    Ok(())
}

pub async fn values_round_trip(s: Arc<dyn Store>) -> R {
    let id = add_user(
        &s,
        "types@example.com",
        json!({
            "last_access": "2024-05-06T07:08:09.123Z",
            "tags": ["a", "b"],
            "auth_data": { "k": { "n": 1, "s": "x" } },
            "email_notifications": false,
            "theme_light_overrides": null,
        }),
    )
    .await?;
    let key = json!(id.to_string());
    let u = s.item_get(&USERS, &key).await?.expect("user");
    // The instant survives (SQLite shows it to the second, as Directus does there).
    assert_same_instant(&u["last_access"], &json!("2024-05-06T07:08:09.123Z"));
    assert_eq!(u["tags"], json!(["a", "b"]));
    assert_eq!(u["auth_data"], json!({ "k": { "n": 1, "s": "x" } }));
    assert_eq!(u["email_notifications"], json!(false));
    assert_eq!(u["theme_light_overrides"], Value::Null);

    // Any offset and epoch milliseconds are accepted; read back as the same instant in UTC.
    let patch = item(
        json!({ "last_access": "2024-05-06T09:08:09.5+02:00", "auth_data": "plain", "email_notifications": true }),
    );
    assert!(s.item_update(&USERS, &key, &patch).await?);
    let u = s.item_get(&USERS, &key).await?.expect("user");
    assert_same_instant(&u["last_access"], &json!("2024-05-06T07:08:09.500Z"));
    assert_eq!(
        u["auth_data"],
        json!("plain"),
        "a JSON string stays a string"
    );
    assert_eq!(u["email_notifications"], json!(true));
    assert!(
        s.item_update(
            &USERS,
            &key,
            &item(json!({ "last_access": 1_714_979_289_123_i64, "tags": null }))
        )
        .await?
    );
    let u = s.item_get(&USERS, &key).await?.expect("user");
    assert_same_instant(&u["last_access"], &json!("2024-05-06T07:08:09.123Z"));
    assert_eq!(u["tags"], Value::Null);

    s.touch_last_access(id, t0()).await?;
    let u = s.item_get(&USERS, &key).await?.expect("user");
    assert_same_instant(&u["last_access"], &format_ts(t0()));

    let bad = item(json!({ "last_access": "yesterday" }));
    assert!(
        matches!(
            s.item_update(&USERS, &key, &bad).await,
            Err(StoreError::Decode(_))
        ),
        "unreadable timestamp"
    );

    // Integer keys and columns, and defaults, in directus_settings.
    let filter = json!({ "_and": [{ "email": { "_ends_with": "@example.com" } }] });
    let settings = json!({
        "id": 1,
        "project_name": "Gatehouse",
        "auth_login_attempts": 5,
        "public_registration": true,
        "public_registration_email_filter": filter,
    });
    s.item_insert(&SETTINGS, &item(settings)).await?;
    let st = s
        .item_get(&SETTINGS, &json!(1))
        .await?
        .expect("settings row");
    assert_eq!(
        (&st["id"], &st["auth_login_attempts"]),
        (&json!(1), &json!(5))
    );
    assert_eq!(
        (
            &st["public_registration"],
            &st["public_registration_verify_email"]
        ),
        (&json!(true), &json!(true))
    );
    assert_eq!(
        (&st["project_name"], &st["project_color"]),
        (&json!("Gatehouse"), &json!("#6644FF"))
    );
    assert_eq!(st["public_registration_email_filter"], filter);
    assert!(
        s.item_update(
            &SETTINGS,
            &json!(1),
            &item(json!({ "auth_login_attempts": null }))
        )
        .await?
    );
    let st = s
        .item_get(&SETTINGS, &json!(1))
        .await?
        .expect("settings row");
    assert_eq!(st["auth_login_attempts"], Value::Null);
    assert_eq!(s.item_get(&SETTINGS, &json!(2)).await?, None);
    Ok(())
}

/// A filter whose value is an array is `IN` (an empty one, or keys the column cannot hold,
/// match nothing), and `sort` orders by that column as the database orders nulls, then by key.
pub async fn items_list_any_of_and_sort(s: Arc<dyn Store>) -> R {
    let policy = add_policy(&s, "p", json!({})).await?;
    let (r1, r2, r3) = (
        add_role(&s, "one").await?,
        add_role(&s, "two").await?,
        add_role(&s, "three").await?,
    );
    let mut access = Vec::new();
    for (role, sort) in [(r1, json!(2)), (r2, Value::Null), (r3, json!(1))] {
        let id = Uuid::new_v4();
        let row = json!({"id": id.to_string(), "role": role.to_string(), "policy": policy.to_string(), "sort": sort});
        s.item_insert(&ACCESS, &item(row)).await?;
        access.push(id.to_string());
    }
    let any = |values: Vec<Value>, sort| ListQuery {
        filters: vec![Filter {
            field: "role",
            value: Value::Array(values),
        }],
        sort,
        ..ListQuery::default()
    };
    let ids = |rows: &[Item]| -> Vec<String> {
        rows.iter()
            .map(|r| r["id"].as_str().expect("id").to_string())
            .collect()
    };
    let two = s
        .items_list(
            &ACCESS,
            &any(vec![json!(r1.to_string()), json!(r3.to_string())], None),
        )
        .await?;
    assert_eq!(
        ids(&two),
        sorted(vec![access[0].clone(), access[2].clone()])
    );
    assert!(s.items_list(&ACCESS, &any(vec![], None)).await?.is_empty());
    assert!(s
        .items_list(&ACCESS, &any(vec![json!("not-a-uuid")], None))
        .await?
        .is_empty());
    let all = vec![r1, r2, r3]
        .into_iter()
        .map(|r| json!(r.to_string()))
        .collect();
    let by_sort = s.items_list(&ACCESS, &any(all, Some("sort"))).await?;
    // SQLite puts nulls first, PostgreSQL last; each backend's case sees its own.
    assert!(
        ids(&by_sort) == vec![access[2].clone(), access[0].clone(), access[1].clone()]
            || ids(&by_sort) == vec![access[1].clone(), access[2].clone(), access[0].clone()],
        "sorted by `sort`, nulls at one end: {:?}",
        ids(&by_sort)
    );
    Ok(())
}
