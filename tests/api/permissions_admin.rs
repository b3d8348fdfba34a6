//! `/permissions`: the admin CRUD of `directus_permissions` in Directus 12.4.0's shapes
//! (integer ids, `fields` as an array, the filters as objects), its validation, the batch
//! forms, the refusal for callers without admin access, the policy cascade and the bounds on
//! what a row may hold (Directus: `api/src/controllers/permissions.ts`,
//! `api/src/services/permissions.ts`).

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::*;

/// Directus's refusal of `directus_permissions` to a caller without admin access.
const REFUSED: &str = "You don't have permission to access collection \"directus_permissions\" or it does not exist. Queried in root.";

async fn policy(app: &TestApp, admin: &str, name: &str) -> String {
    app.create_policy(admin, name, false, false).await
}

/// Creates one permission through the API; returns the row.
async fn create(app: &TestApp, admin: &str, body: Value) -> Value {
    let r = app.post("/permissions", Some(admin), body).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.data().clone()
}

fn id_of(row: &Value) -> i64 {
    row["id"]
        .as_i64()
        .unwrap_or_else(|| panic!("integer id: {row}"))
}

/// The ids of a list answer.
fn ids(r: &Resp) -> Vec<i64> {
    r.data()
        .as_array()
        .unwrap_or_else(|| panic!("a list: {}", r.text))
        .iter()
        .map(id_of)
        .collect()
}

async fn count(app: &TestApp, admin: &str) -> usize {
    let r = app.get("/permissions?limit=-1", Some(admin)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.data().as_array().map_or(0, Vec::len)
}

fn reason(r: &Resp) -> Option<&str> {
    r.body["errors"][0]["extensions"]["reason"].as_str()
}

async fn send(app: &TestApp, method: Method, path: &str, token: Option<&str>, body: Value) -> Resp {
    app.request(method, path, token, Some(body), None).await
}

#[tokio::test]
async fn rows_read_back_in_directus_shapes() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let p = policy(&app, &admin, "Readers").await;
    let row = create(
        &app,
        &admin,
        json!({
            "collection": "articles",
            "action": "read",
            "policy": p,
            "permissions": {"status": {"_eq": "published"}},
            "presets": {"status": "draft"},
            "fields": ["id", "title"],
        }),
    )
    .await;
    // Field by field, as Directus 12.4.0 answered the same POST (docs/compatibility.md).
    let mut keys: Vec<&str> = row
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "action",
            "collection",
            "fields",
            "id",
            "permissions",
            "policy",
            "presets",
            "validation"
        ]
    );
    assert!(row["id"].is_i64(), "{row}");
    assert_eq!(row["collection"], "articles");
    assert_eq!(row["action"], "read");
    assert_eq!(row["permissions"], json!({"status": {"_eq": "published"}}));
    assert_eq!(row["validation"], Value::Null);
    assert_eq!(row["presets"], json!({"status": "draft"}));
    assert_eq!(row["fields"], json!(["id", "title"]));
    assert_eq!(row["policy"], json!(p));
    let id = id_of(&row);
    let path = format!("/permissions/{id}");
    assert_eq!(app.get(&path, Some(&admin)).await.data(), &row);
    // Stored as Directus stores it: the CSV text and JSON.
    let stored = app
        .auth
        .store
        .items
        .item_get(&gatehouse::store::PERMISSIONS, &json!(id))
        .await
        .unwrap()
        .expect("row");
    assert_eq!(stored["fields"], "id,title");

    // `fields` forms: `*`, a CSV string kept as given (split without trimming on read, as
    // Directus's cast-csv does), an empty list, null.
    for (given, shown) in [
        (json!(["*"]), json!(["*"])),
        (json!("*"), json!(["*"])),
        (json!("id,email"), json!(["id", "email"])),
        (json!("id, email"), json!(["id", " email"])),
        (json!([]), json!([])),
        (Value::Null, Value::Null),
    ] {
        let r = app
            .patch(&path, Some(&admin), json!({ "fields": given }))
            .await;
        assert_eq!(r.status, 200, "{given}: {}", r.text);
        assert_eq!(r.data()["fields"], shown, "{given}");
    }
    // A PATCH does not change the key; it sets what it names and keeps the rest.
    let r = app
        .patch(
            &path,
            Some(&admin),
            json!({"id": id + 100, "validation": {"title": {"_nnull": true}}, "presets": null}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(id_of(r.data()), id);
    assert_eq!(r.data()["validation"], json!({"title": {"_nnull": true}}));
    assert_eq!(r.data()["presets"], Value::Null);
    assert_eq!(
        r.data()["permissions"],
        json!({"status": {"_eq": "published"}})
    );
    // `fields` selection.
    let r = app
        .get(&format!("{path}?fields=id,collection"), Some(&admin))
        .await;
    assert_eq!(r.data(), &json!({"id": id, "collection": "articles"}));

    // Delete: 204, then the row is gone; deleting it again is 204, as Directus answers.
    assert_eq!(app.delete(&path, Some(&admin)).await.status, 204);
    app.get(&path, Some(&admin))
        .await
        .assert_error(403, "FORBIDDEN");
    app.patch(&path, Some(&admin), json!({"fields": ["*"]}))
        .await
        .assert_error(403, "FORBIDDEN");
    assert_eq!(app.delete(&path, Some(&admin)).await.status, 204);
}

/// Five rows for any collection on two policies; returns (policy a, policy b, ids).
async fn five_rows(app: &TestApp, admin: &str) -> (String, String, Vec<i64>) {
    let (a, b) = (policy(app, admin, "A").await, policy(app, admin, "B").await);
    let mut made = Vec::new();
    for (collection, action, p) in [
        ("articles", "read", &a),
        ("directus_users", "update", &a),
        ("directus_files", "create", &b),
        ("comments", "delete", &b),
        ("articles", "share", &b),
    ] {
        let row = create(
            app,
            admin,
            json!({"collection": collection, "action": action, "policy": p, "fields": "*"}),
        )
        .await;
        made.push(id_of(&row));
    }
    (a, b, made)
}

#[tokio::test]
async fn any_collection_is_listed_with_limit_offset_and_fields() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let (_, _, made) = five_rows(&app, &admin).await;
    let r = app.get("/permissions", Some(&admin)).await;
    assert_eq!(ids(&r), made, "every row, in id order: {}", r.text);
    let r = app.get("/permissions?limit=2&offset=1", Some(&admin)).await;
    assert_eq!(ids(&r), made[1..3].to_vec());
    let r = app
        .get("/permissions?fields=id,action&limit=1", Some(&admin))
        .await;
    assert_eq!(
        r.data(),
        &json!([{"id": made[0], "action": "read"}]),
        "{}",
        r.text
    );
}

/// The `filter` query parameter, through the evaluator the other collections share
/// (`auth::permissions::filter`); like the cases in `admin::permissions`, this one needs it.
#[tokio::test]
async fn filters_select_permission_rows() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let (a, _, made) = five_rows(&app, &admin).await;
    let r = app
        .get(
            &format!("/permissions?filter[policy][_eq]={a}"),
            Some(&admin),
        )
        .await;
    assert_eq!(ids(&r), made[..2].to_vec(), "{}", r.text);
    let filter = json!({"collection": {"_eq": "articles"}}).to_string();
    let r = app
        .get(
            &format!(
                "/permissions?fields=id,action&filter={}",
                urlencode(&filter)
            ),
            Some(&admin),
        )
        .await;
    assert_eq!(
        r.data(),
        &json!([{"id": made[0], "action": "read"}, {"id": made[4], "action": "share"}]),
        "{}",
        r.text
    );
    let r = app
        .get(
            &format!("/permissions?filter[id][_eq]={}", made[2]),
            Some(&admin),
        )
        .await;
    assert_eq!(ids(&r), vec![made[2]], "{}", r.text);
    app.get("/permissions?filter[nope][_eq]=1", Some(&admin))
        .await
        .assert_error(403, "FORBIDDEN");
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn an_array_is_created_all_or_nothing() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let p = policy(&app, &admin, "Batch").await;
    let item = |c: &str| json!({"collection": c, "action": "read", "policy": p, "fields": ["*"]});
    let r = app
        .post(
            "/permissions",
            Some(&admin),
            json!([item("a"), item("b"), item("c")]),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let made = ids(&r);
    assert_eq!(made.len(), 3);
    assert!(made.windows(2).all(|w| w[0] < w[1]), "{made:?}");
    let collections: Vec<&Value> = r
        .data()
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["collection"])
        .collect();
    assert_eq!(collections, [&json!("a"), &json!("b"), &json!("c")]);
    assert_eq!(r.data()[1]["fields"], json!(["*"]));
    assert_eq!(count(&app, &admin).await, 3);

    // One bad item (third): nothing of the array is written.
    let missing = "3f2c9d1e-7b4a-4c8e-9a61-0d5e2f7b8c90";
    let bad = json!({"collection": "d", "action": "read", "policy": missing});
    app.post(
        "/permissions",
        Some(&admin),
        json!([item("x"), item("y"), bad]),
    )
    .await
    .assert_error(400, "INVALID_FOREIGN_KEY");
    let bad = json!({"collection": "d", "action": "read"});
    app.post("/permissions", Some(&admin), json!([item("x"), bad]))
        .await
        .assert_error(400, "FAILED_VALIDATION");
    assert_eq!(count(&app, &admin).await, 3);
    // The ids continue after the batch.
    let next = create(&app, &admin, item("e")).await;
    assert!(id_of(&next) > made[2]);
    // An empty array creates nothing.
    let r = app.post("/permissions", Some(&admin), json!([])).await;
    assert_eq!((r.status, r.data()), (200, &json!([])), "{}", r.text);
}

#[tokio::test]
async fn payloads_are_validated_as_directus_answers() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let p = policy(&app, &admin, "Checked").await;
    let post = |body: Value| app.post("/permissions", Some(&admin), body);

    // Missing columns: one FAILED_VALIDATION error each, in Directus's order and wording.
    let r = post(json!({})).await;
    r.assert_error(400, "FAILED_VALIDATION");
    let errors = r.body["errors"].as_array().unwrap();
    let fields: Vec<&Value> = errors.iter().map(|e| &e["extensions"]["field"]).collect();
    assert_eq!(
        fields,
        [&json!("collection"), &json!("action"), &json!("policy")]
    );
    assert_eq!(
        errors[0],
        json!({"message": "Validation failed for field \"collection\". Value is required.",
               "extensions": {"field": "collection", "path": [], "type": "required", "code": "FAILED_VALIDATION"}})
    );
    let r = post(json!({"collection": null, "action": "read", "policy": p})).await;
    r.assert_error(400, "FAILED_VALIDATION");
    assert_eq!(
        r.body["errors"][0]["message"],
        "Validation failed for field \"collection\". Value can't be null."
    );
    assert_eq!(r.body["errors"][0]["extensions"]["type"], "nnull");
    assert_eq!(r.body["errors"].as_array().unwrap().len(), 1);

    // Actions: the five Directus grants; anything else would grant nothing.
    for action in ["create", "read", "update", "delete", "share"] {
        let r = post(json!({"collection": "c", "action": action, "policy": p})).await;
        assert_eq!(r.status, 200, "{action}: {}", r.text);
        assert_eq!(r.data()["fields"], Value::Null);
    }
    let r = post(json!({"collection": "c", "action": "bogus", "policy": p})).await;
    r.assert_error(400, "FAILED_VALIDATION");
    assert_eq!(r.body["errors"][0]["extensions"]["type"], "in");
    assert_eq!(
        r.body["errors"][0]["extensions"]["valid"],
        json!(["create", "read", "update", "delete", "share"])
    );

    // The policy must exist: INVALID_FOREIGN_KEY naming it.
    let missing = "3f2c9d1e-7b4a-4c8e-9a61-0d5e2f7b8c90";
    let r = post(json!({"collection": "c", "action": "read", "policy": missing})).await;
    r.assert_error(400, "INVALID_FOREIGN_KEY");
    assert_eq!(
        r.body["errors"][0]["extensions"],
        json!({"collection": "directus_permissions", "field": "policy", "value": missing, "code": "INVALID_FOREIGN_KEY"})
    );
    let before = count(&app, &admin).await;
    // Everything else is INVALID_PAYLOAD, and nothing is written.
    for body in [
        json!({"collection": "c", "action": "read", "policy": "not-a-uuid"}),
        json!({"collection": 5, "action": "read", "policy": p}),
        json!({"collection": "c", "action": "read", "policy": p, "permissions": [1, 2]}),
        json!({"collection": "c", "action": "read", "policy": p, "permissions": "{\"a\":1}"}),
        json!({"collection": "c", "action": "read", "policy": p, "validation": 5}),
        json!({"collection": "c", "action": "read", "policy": p, "presets": true}),
        json!({"collection": "c", "action": "read", "policy": p, "fields": 5}),
        json!({"collection": "c", "action": "read", "policy": p, "fields": [1, "x"]}),
        json!({"collection": "c", "action": "read", "policy": p, "fields": {"x": 1}}),
        json!({"collection": "c", "action": "read", "policy": p, "system": true}),
        json!({"collection": "c", "action": "read", "policy": p, "id": 100}),
        json!("a string"),
        json!([1]),
    ] {
        post(body.clone())
            .await
            .assert_error(400, "INVALID_PAYLOAD");
    }
    assert_eq!(count(&app, &admin).await, before);

    // Updates check what they set.
    let row = create(
        &app,
        &admin,
        json!({"collection": "c", "action": "read", "policy": p}),
    )
    .await;
    let path = format!("/permissions/{}", id_of(&row));
    let r = app
        .patch(&path, Some(&admin), json!({"action": null, "policy": null}))
        .await;
    r.assert_error(400, "FAILED_VALIDATION");
    let types: Vec<&Value> = r.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["extensions"]["type"])
        .collect();
    assert_eq!(types, [&json!("nnull"), &json!("nnull")]);
    app.patch(&path, Some(&admin), json!({"policy": missing}))
        .await
        .assert_error(400, "INVALID_FOREIGN_KEY");
    app.patch(&path, Some(&admin), json!({"permissions": [1]}))
        .await
        .assert_error(400, "INVALID_PAYLOAD");
    app.patch(&path, Some(&admin), json!({"action": "bogus"}))
        .await
        .assert_error(400, "FAILED_VALIDATION");
    assert_eq!(app.get(&path, Some(&admin)).await.data(), &row);
}

#[tokio::test]
async fn keys_are_integers() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let p = policy(&app, &admin, "Keys").await;
    let row = create(
        &app,
        &admin,
        json!({"collection": "c", "action": "read", "policy": p}),
    )
    .await;
    for bad in ["abc", "2.5", "me", "99999999999999999999"] {
        let path = format!("/permissions/{bad}");
        let r = app.get(&path, Some(&admin)).await;
        r.assert_error(403, "FORBIDDEN");
        // The plain refusal, as Directus's validateKeys gives it.
        assert_eq!(reason(&r), None, "{}", r.text);
        app.patch(&path, Some(&admin), json!({"fields": ["*"]}))
            .await
            .assert_error(403, "FORBIDDEN");
        app.delete(&path, Some(&admin))
            .await
            .assert_error(403, "FORBIDDEN");
    }
    // A key with no row.
    let missing = format!("/permissions/{}", id_of(&row) + 1000);
    app.get(&missing, Some(&admin))
        .await
        .assert_error(403, "FORBIDDEN");
    app.patch(&missing, Some(&admin), json!({"fields": ["*"]}))
        .await
        .assert_error(403, "FORBIDDEN");
    assert_eq!(count(&app, &admin).await, 1);
}

#[tokio::test]
async fn callers_without_admin_access_get_directus_refusal() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let p = policy(&app, &admin, "Target").await;
    let row = create(
        &app,
        &admin,
        json!({"collection": "c", "action": "read", "policy": p, "fields": "*"}),
    )
    .await;
    let id = id_of(&row);
    // A user with app access whose policy even grants reading directus_permissions:
    // gatehouse keeps the collection admin-only.
    let granted = app
        .create_policy(&admin, "Reads permissions", false, true)
        .await;
    app.grant(&granted, "directus_permissions", "read", json!({}), "*")
        .await;
    let role = app.role_with_policy(&admin, "Curious", &granted).await;
    app.create_user(&admin, "app@example.com", "app-password-1", Some(&role))
        .await;
    let user = app
        .login("app@example.com", "app-password-1", "json")
        .await
        .data()["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let body = json!({"collection": "x", "action": "read", "policy": p});
    for token in [Some(user.as_str()), None] {
        let cases = [
            (Method::GET, "/permissions".to_string(), None),
            (Method::GET, format!("/permissions/{id}"), None),
            (Method::POST, "/permissions".to_string(), Some(body.clone())),
            (Method::POST, "/permissions".to_string(), Some(json!({}))),
            (
                Method::PATCH,
                format!("/permissions/{id}"),
                Some(json!({"fields": null})),
            ),
            (Method::DELETE, format!("/permissions/{id}"), None),
            (
                Method::PATCH,
                "/permissions".to_string(),
                Some(json!({"keys": [id], "data": {"fields": null}})),
            ),
            (
                Method::DELETE,
                "/permissions".to_string(),
                Some(json!([id])),
            ),
        ];
        for (method, path, body) in cases {
            let r = app.request(method.clone(), &path, token, body, None).await;
            r.assert_error(403, "FORBIDDEN");
            assert_eq!(reason(&r), Some(REFUSED), "{method} {path}: {}", r.text);
            assert_eq!(r.body["errors"][0]["message"], REFUSED);
        }
        // A key that is not an integer is refused before the access check, plainly.
        let r = app
            .request(Method::GET, "/permissions/abc", token, None, None)
            .await;
        r.assert_error(403, "FORBIDDEN");
        assert_eq!(reason(&r), None);
    }
    // Nothing changed.
    assert_eq!(
        app.get(&format!("/permissions/{id}"), Some(&admin))
            .await
            .data(),
        &row
    );
    assert_eq!(count(&app, &admin).await, 2);
}

#[tokio::test]
async fn batch_updates_and_deletes_by_keys() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let p = policy(&app, &admin, "Batch").await;
    let mut made = Vec::new();
    for c in ["a", "b", "c", "d"] {
        let row = create(
            &app,
            &admin,
            json!({"collection": c, "action": "read", "policy": p}),
        )
        .await;
        made.push(id_of(&row));
    }
    let (a, b, c, d) = (made[0], made[1], made[2], made[3]);
    let patch = |body: Value| send(&app, Method::PATCH, "/permissions", Some(&admin), body);

    // An array of items with their ids.
    let r =
        patch(json!([{"id": a, "fields": ["x"]}, {"id": b.to_string(), "action": "delete"}])).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(ids(&r), vec![a, b]);
    assert_eq!(r.data()[0]["fields"], json!(["x"]));
    assert_eq!(r.data()[1]["action"], "delete");
    // One bad item: none of them is written.
    let missing = "3f2c9d1e-7b4a-4c8e-9a61-0d5e2f7b8c90";
    patch(json!([{"id": a, "fields": ["y"]}, {"id": b, "policy": missing}]))
        .await
        .assert_error(400, "INVALID_FOREIGN_KEY");
    let r = app.get(&format!("/permissions/{a}"), Some(&admin)).await;
    assert_eq!(r.data()["fields"], json!(["x"]));
    patch(json!([{"fields": ["y"]}]))
        .await
        .assert_error(400, "INVALID_PAYLOAD");

    // `keys` and `data`: the rows that exist, in key order.
    let r = patch(json!({"keys": [c, a, 9999], "data": {"presets": {"q": 1}}})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(ids(&r), vec![a, c]);
    assert!(r
        .data()
        .as_array()
        .unwrap()
        .iter()
        .all(|row| row["presets"] == json!({"q": 1})));
    let r = patch(json!({"keys": [a], "data": {"fields": "*"}})).await;
    assert_eq!(r.data()[0]["fields"], json!(["*"]));
    for bad in [
        json!({"data": {"fields": null}}),
        json!({"keys": [a]}),
        json!({"keys": a, "data": {}}),
        json!({"keys": [{}], "data": {}}),
        json!({"query": {"filter": {}}, "data": {"fields": null}}),
        json!("keys"),
    ] {
        patch(bad).await.assert_error(400, "INVALID_PAYLOAD");
    }
    patch(json!({"keys": ["x"], "data": {}}))
        .await
        .assert_error(403, "FORBIDDEN");

    // Deletes: an array of keys, or `keys`; keys with no row are fine.
    let delete = |body: Value| send(&app, Method::DELETE, "/permissions", Some(&admin), body);
    delete(json!(["x"])).await.assert_error(403, "FORBIDDEN");
    delete(json!({})).await.assert_error(400, "INVALID_PAYLOAD");
    delete(json!({"query": {}}))
        .await
        .assert_error(400, "INVALID_PAYLOAD");
    assert_eq!(count(&app, &admin).await, 4);
    assert_eq!(delete(json!([a, b.to_string()])).await.status, 204);
    assert_eq!(delete(json!({"keys": [c, 9999]})).await.status, 204);
    let r = app.get("/permissions", Some(&admin)).await;
    assert_eq!(ids(&r), vec![d]);
}

#[tokio::test]
async fn deleting_a_policy_deletes_its_permissions() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let (gone, kept) = (
        policy(&app, &admin, "Gone").await,
        policy(&app, &admin, "Kept").await,
    );
    let mut of_gone = Vec::new();
    for c in ["a", "b"] {
        let row = create(
            &app,
            &admin,
            json!({"collection": c, "action": "read", "policy": gone}),
        )
        .await;
        of_gone.push(id_of(&row));
    }
    let row = create(
        &app,
        &admin,
        json!({"collection": "a", "action": "read", "policy": kept}),
    )
    .await;
    let of_kept = id_of(&row);
    let by_policy = app
        .auth
        .permission_ids_of_policies(&[gone.parse().unwrap(), kept.parse().unwrap()])
        .await
        .unwrap();
    assert_eq!(by_policy[&gone.parse().unwrap()], of_gone);
    assert_eq!(by_policy[&kept.parse().unwrap()], vec![of_kept]);

    let r = app.delete(&format!("/policies/{gone}"), Some(&admin)).await;
    assert_eq!(r.status, 204, "{}", r.text);
    // The foreign key's ON DELETE CASCADE (SQLite: foreign_keys=ON on gatehouse's connection).
    let r = app.get("/permissions", Some(&admin)).await;
    assert_eq!(ids(&r), vec![of_kept]);
    for id in of_gone {
        app.get(&format!("/permissions/{id}"), Some(&admin))
            .await
            .assert_error(403, "FORBIDDEN");
    }
    let by_policy = app
        .auth
        .permission_ids_of_policies(&[gone.parse().unwrap()])
        .await
        .unwrap();
    assert_eq!(by_policy[&gone.parse().unwrap()], Vec::<i64>::new());
}

#[tokio::test]
async fn nul_characters_are_refused() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let p = policy(&app, &admin, "Nul").await;
    let row = create(
        &app,
        &admin,
        json!({"collection": "c", "action": "read", "policy": p}),
    )
    .await;
    let id = id_of(&row);
    for body in [
        json!({"collection": "c\u{0}", "action": "read", "policy": p}),
        json!({"collection": "c", "action": "read", "policy": p, "permissions": {"a\u{0}": {"_eq": 1}}}),
        json!({"collection": "c", "action": "read", "policy": p, "presets": {"a": "x\u{0}"}}),
        json!({"collection": "c", "action": "read", "policy": p, "fields": ["id\u{0}"]}),
        json!([{"collection": "c", "action": "read", "policy": p}, {"collection": "\u{0}", "action": "read", "policy": p}]),
    ] {
        app.post("/permissions", Some(&admin), body)
            .await
            .assert_error(400, "INVALID_PAYLOAD");
    }
    app.patch(
        &format!("/permissions/{id}"),
        Some(&admin),
        json!({"fields": "a\u{0}"}),
    )
    .await
    .assert_error(400, "INVALID_PAYLOAD");
    send(
        &app,
        Method::PATCH,
        "/permissions",
        Some(&admin),
        json!({"keys": [id], "data": {"collection": "\u{0}"}}),
    )
    .await
    .assert_error(400, "INVALID_PAYLOAD");
    app.get("/permissions?filter[collection][_eq]=c%00", Some(&admin))
        .await
        .assert_error(400, "INVALID_PAYLOAD");
    assert_eq!(
        app.get(&format!("/permissions/{id}"), Some(&admin))
            .await
            .data(),
        &row
    );
    assert_eq!(count(&app, &admin).await, 1);
}

#[tokio::test]
async fn what_a_row_holds_is_bounded() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let p = policy(&app, &admin, "Big").await;
    let base = |extra: Value| {
        let mut b = json!({"collection": "c", "action": "read", "policy": p});
        for (k, v) in extra.as_object().unwrap() {
            b[k] = v.clone();
        }
        b
    };
    // A field list as long as the column takes is fine; one name more is not.
    let names: Vec<String> = (0..9362).map(|i| format!("f{i:05}")).collect();
    let csv_len = names.join(",").len();
    assert!(csv_len <= 65_535 && csv_len + 7 > 65_535, "{csv_len}");
    let r = app
        .post("/permissions", Some(&admin), base(json!({"fields": names})))
        .await;
    assert_eq!(r.status, 200, "{}", &r.text[..r.text.len().min(300)]);
    assert_eq!(r.data()["fields"].as_array().unwrap().len(), 9362);
    let mut more = names.clone();
    more.push("f99999".into());
    app.post("/permissions", Some(&admin), base(json!({"fields": more})))
        .await
        .assert_error(400, "INVALID_PAYLOAD");
    app.post(
        "/permissions",
        Some(&admin),
        base(json!({"fields": more.join(",")})),
    )
    .await
    .assert_error(400, "INVALID_PAYLOAD");
    // JSON filters up to 64 KiB.
    let big = |n: usize| json!({"_or": (0..n).map(|i| json!({"title": {"_eq": format!("value-{i:06}")}})).collect::<Vec<_>>()});
    let small = big(1000);
    assert!(small.to_string().len() < 65_535);
    let r = app
        .post(
            "/permissions",
            Some(&admin),
            base(json!({"permissions": small})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", &r.text[..r.text.len().min(300)]);
    for field in ["permissions", "validation", "presets"] {
        let huge = big(3000);
        assert!(huge.to_string().len() > 65_535);
        app.post("/permissions", Some(&admin), base(json!({ field: huge })))
            .await
            .assert_error(400, "INVALID_PAYLOAD");
    }
    // `collection` is varchar(64).
    app.post(
        "/permissions",
        Some(&admin),
        base(json!({"collection": "c".repeat(65)})),
    )
    .await
    .assert_error(400, "INVALID_PAYLOAD");
    let r = app
        .post(
            "/permissions",
            Some(&admin),
            base(json!({"collection": "c".repeat(64)})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    // The body limit (MAX_PAYLOAD_SIZE, 1 MB by default) bounds an array.
    let many: Vec<Value> = (0..20_000)
        .map(|i| base(json!({"collection": format!("c{i}")})))
        .collect();
    app.post("/permissions", Some(&admin), Value::Array(many))
        .await
        .assert_error(400, "INVALID_PAYLOAD");
    assert_eq!(count(&app, &admin).await, 3);
}

#[tokio::test]
async fn a_permissions_write_drops_the_nodes_cached_access() {
    // A TTL far longer than the test: only a write clears an entry.
    let nodes = spawn_nodes(2, &[("GATEHOUSE_USER_CACHE_TTL", "1h")]).await;
    let (a, b) = (&nodes[0], &nodes[1]);
    let admin = a.admin_token().await;
    let p = a.create_policy(&admin, "Ops", true, true).await;
    let role = a.role_with_policy(&admin, "Ops", &p).await;
    a.create_user(&admin, "ops@example.com", "ops-password-1", Some(&role))
        .await;
    let ops = b
        .login("ops@example.com", "ops-password-1", "json")
        .await
        .data()["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(b.get("/policies", Some(&ops)).await.status, 200);
    // Node a takes the policy's admin access away: node b still answers from its cache.
    let r = a
        .patch(
            &format!("/policies/{p}"),
            Some(&admin),
            json!({"admin_access": false}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        b.get("/policies", Some(&ops)).await.status,
        200,
        "node b read the database"
    );
    // A permissions write through node b drops what a policy write drops.
    let r = b
        .post(
            "/permissions",
            Some(&admin),
            json!({"collection": "c", "action": "read", "policy": p}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    b.get("/policies", Some(&ops))
        .await
        .assert_error(403, "FORBIDDEN");
}

#[tokio::test]
async fn a_deleted_policy_takes_its_cached_permission_rows_with_it() {
    let app = spawn_with(&[("GATEHOUSE_USER_CACHE_TTL", "1h")]).await;
    let admin = app.admin_token().await;
    let p = app.create_policy(&admin, "Directory", false, false).await;
    let role = app.role_with_policy(&admin, "Directory", &p).await;
    app.create_user(&admin, "dir@example.com", "dir-password-1", Some(&role))
        .await;
    let r = app
        .post("/permissions", Some(&admin), json!({"collection": "directus_users", "action": "read", "policy": p, "fields": ["id"]}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let user = app
        .login("dir@example.com", "dir-password-1", "json")
        .await
        .data()["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(app.get("/users?fields=id", Some(&user)).await.status, 200);
    // The policy goes (its permission rows with it) and comes back under the same id,
    // attached again: its old rows must not be served from the cache.
    assert_eq!(
        app.delete(&format!("/policies/{p}"), Some(&admin))
            .await
            .status,
        204
    );
    let r = app
        .post(
            "/policies",
            Some(&admin),
            json!({"id": p, "name": "Directory", "app_access": false, "admin_access": false}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = app
        .patch(
            &format!("/roles/{role}"),
            Some(&admin),
            json!({"policies": [{"policy": p}]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = app.get("/users?fields=id", Some(&user)).await;
    r.assert_error(403, "FORBIDDEN");
}
