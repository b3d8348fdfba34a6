//! The admin API's items as Directus 12.4.0 shapes them (compared side by side): the
//! one-to-many alias fields every default read carries, what `fields` does with them, their
//! order and caps, the refusal of unknown fields, and `FORBIDDEN` with Directus's reason for
//! callers without admin access (Directus: `api/src/database/run-ast/`,
//! `api/src/permissions/modules/process-ast/utils/validate-path/create-error.ts`).

use reqwest::Method;
use serde_json::{json, Value};

use gatehouse::store::{Item, ACCESS, PERMISSIONS, ROLES, USERS};

use crate::helpers::*;

const ROLE_KEYS: &[&str] = &[
    "id",
    "name",
    "icon",
    "description",
    "parent",
    "children",
    "policies",
    "users",
];
const POLICY_KEYS: &[&str] = &[
    "id",
    "name",
    "icon",
    "description",
    "ip_access",
    "enforce_tfa",
    "admin_access",
    "app_access",
    "permissions",
    "users",
    "roles",
];
const ACCESS_KEYS: &[&str] = &["id", "role", "user", "policy", "sort"];

/// The keys of a JSON object, in answer order.
fn keys(v: &Value) -> Vec<String> {
    v.as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .cloned()
        .collect()
}

fn strs(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn id(n: u32) -> String {
    format!("00000000-0000-4000-8000-{n:012x}")
}

async fn insert(app: &TestApp, c: &'static gatehouse::store::Collection, row: Value) {
    let Value::Object(row) = row else {
        panic!("row must be an object")
    };
    let row: Item = row;
    app.auth
        .store
        .items
        .item_insert(c, &row)
        .await
        .expect("store insert");
}

/// The access rows of a role (ids), as the store holds them.
async fn access_of_role(app: &TestApp, role: &str) -> Vec<String> {
    let q = gatehouse::store::ListQuery {
        filters: vec![gatehouse::store::Filter {
            field: "role",
            value: json!(role),
        }],
        ..Default::default()
    };
    app.auth
        .store
        .items
        .items_list(&ACCESS, &q)
        .await
        .expect("access rows")
        .iter()
        .map(|r| r["id"].as_str().expect("id").to_string())
        .collect()
}

fn forbidden_reason(r: &Resp) -> &str {
    r.assert_error(403, "FORBIDDEN");
    let reason = r.body["errors"][0]["extensions"]["reason"]
        .as_str()
        .unwrap_or_else(|| panic!("no reason: {}", r.text));
    assert_eq!(r.body["errors"][0]["message"], reason, "{}", r.text);
    reason
}

#[tokio::test]
async fn default_reads_carry_the_alias_fields() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let role = app.create_role(&admin, "Editors", false, true).await;
    let user = app
        .create_user(&admin, "ed@example.com", "pw-123456", Some(&role))
        .await;
    let access = access_of_role(&app, &role).await;
    assert_eq!(access.len(), 1);

    // Get one, list, create and update answers all carry them.
    let one = app.get(&format!("/roles/{role}"), Some(&admin)).await;
    assert_eq!(keys(one.data()), strs(ROLE_KEYS), "{}", one.text);
    assert_eq!(one.data()["children"], json!([]));
    assert_eq!(one.data()["policies"], json!(access));
    assert_eq!(one.data()["users"], json!([user]));
    let list = app.get("/roles", Some(&admin)).await;
    let listed = list.data().as_array().expect("list");
    assert!(
        listed.iter().all(|r| keys(r) == strs(ROLE_KEYS)),
        "{}",
        list.text
    );
    assert!(listed.contains(one.data()), "{}", list.text);

    let policy = app.get("/policies", Some(&admin)).await;
    let ours = policy
        .data()
        .as_array()
        .expect("list")
        .iter()
        .find(|p| p["name"] == "Editors policy")
        .expect("the role's policy")
        .clone();
    assert_eq!(keys(&ours), strs(POLICY_KEYS), "{}", policy.text);
    // Both aliases are every access row of the policy, as Directus's two relations share
    // the column `policy`.
    assert_eq!(ours["users"], json!(access));
    assert_eq!(ours["roles"], json!(access));
    assert_eq!(ours["permissions"], json!([]));

    let u = app.get(&format!("/users/{user}"), Some(&admin)).await;
    assert_eq!(u.data()["policies"], json!([]), "{}", u.text);
    assert_eq!(keys(u.data()).last().map(String::as_str), Some("policies"));
    let users = app.get("/users", Some(&admin)).await;
    assert!(users
        .data()
        .as_array()
        .expect("list")
        .iter()
        .all(|u| u["policies"].is_array()));

    let created = app
        .post(
            "/roles",
            Some(&admin),
            json!([{"name": "child", "parent": role}, {"name": "other"}]),
        )
        .await;
    assert_eq!(created.status, 200, "{}", created.text);
    let created = created.data().as_array().expect("array").clone();
    assert_eq!(created.len(), 2);
    assert_eq!(
        created[0]["name"], "child",
        "created rows keep the order sent"
    );
    for r in &created {
        assert_eq!(keys(r), strs(ROLE_KEYS));
    }
    let child = created[0]["id"].as_str().expect("id").to_string();
    let patched = app
        .patch(
            &format!("/roles/{role}"),
            Some(&admin),
            json!({"description": "d"}),
        )
        .await;
    assert_eq!(
        patched.data()["children"],
        json!([child]),
        "{}",
        patched.text
    );
    assert_eq!(patched.data()["users"], json!([user]));
    let policy_created = app
        .post("/policies", Some(&admin), json!({"name": "lone"}))
        .await;
    assert_eq!(keys(policy_created.data()), strs(POLICY_KEYS));
    assert_eq!(policy_created.data()["users"], json!([]));
}

#[tokio::test]
async fn aliases_are_ordered_as_directus_orders_them() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let me = app.get("/users/me", Some(&admin)).await;
    let admin_id = me.data()["id"].as_str().expect("id").to_string();
    let policy = app
        .post("/policies", Some(&admin), json!({"name": "p"}))
        .await;
    let policy = policy.data()["id"].as_str().expect("id").to_string();
    insert(&app, &ROLES, json!({"id": id(0xa0), "name": "parent"})).await;
    // Children and users in insertion order c, a, b: read back by key.
    for n in [0xc1, 0xa1, 0xb1] {
        insert(
            &app,
            &ROLES,
            json!({"id": id(n), "name": format!("r{n:x}"), "parent": id(0xa0)}),
        )
        .await;
    }
    for n in [0xf0, 0xe0] {
        insert(
            &app,
            &USERS,
            json!({"id": id(n), "email": format!("u{n:x}@example.com"), "status": "active", "role": id(0xa0), "provider": "default"}),
        )
        .await;
    }
    // The role's access rows by `sort`, nulls last, whatever the key order.
    for (n, sort) in [(0x103, json!(2)), (0x101, Value::Null), (0x102, json!(1))] {
        insert(
            &app,
            &ACCESS,
            json!({"id": id(n), "role": id(0xa0), "policy": policy, "sort": sort}),
        )
        .await;
    }
    // The user's own access rows, likewise.
    for (n, sort) in [(0x203, json!(3)), (0x202, Value::Null), (0x201, json!(1))] {
        insert(
            &app,
            &ACCESS,
            json!({"id": id(n), "user": admin_id, "policy": policy, "sort": sort}),
        )
        .await;
    }
    let role = app.get(&format!("/roles/{}", id(0xa0)), Some(&admin)).await;
    assert_eq!(
        role.data()["children"],
        json!([id(0xa1), id(0xb1), id(0xc1)]),
        "{}",
        role.text
    );
    assert_eq!(role.data()["users"], json!([id(0xe0), id(0xf0)]));
    assert_eq!(
        role.data()["policies"],
        json!([id(0x102), id(0x103), id(0x101)])
    );
    let me = app.get("/users/me", Some(&admin)).await;
    assert_eq!(
        me.data()["policies"],
        json!([id(0x201), id(0x203), id(0x202)]),
        "{}",
        me.text
    );
    // A policy's `users` and `roles` follow `directus_access.sort` as the database orders it
    // (nulls first on SQLite, last on PostgreSQL) unless `sort` is read, when Directus moves
    // the nulls last.
    let p = app.get(&format!("/policies/{policy}"), Some(&admin)).await;
    let sorted = [id(0x102), id(0x201), id(0x103), id(0x203)];
    let nulls = [id(0x101), id(0x202)];
    let on_pg = std::env::var("TEST_DATABASE_URL").is_ok_and(|u| !u.is_empty());
    let expected: Vec<&String> = if on_pg {
        sorted.iter().chain(&nulls).collect()
    } else {
        nulls.iter().chain(&sorted).collect()
    };
    assert_eq!(p.data()["users"], json!(expected), "{}", p.text);
    assert_eq!(p.data()["roles"], json!(expected));
    let with_sort = app
        .get(
            &format!("/policies/{policy}?fields=users.id,users.sort"),
            Some(&admin),
        )
        .await;
    let ids: Vec<&Value> = with_sort.data()["users"]
        .as_array()
        .expect("users")
        .iter()
        .map(|u| &u["id"])
        .collect();
    let last: Vec<&String> = sorted.iter().chain(&nulls).collect();
    assert_eq!(json!(ids), json!(last), "{}", with_sort.text);
}

#[tokio::test]
async fn fields_select_and_expand_the_aliases() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let role = app.create_role(&admin, "Crew", false, true).await;
    let user = app
        .create_user(&admin, "crew@example.com", "pw-123456", Some(&role))
        .await;
    let access = access_of_role(&app, &role).await;

    let r = app
        .get(&format!("/roles/{role}?fields=policies"), Some(&admin))
        .await;
    assert_eq!(r.body, json!({"data": {"policies": access}}));
    let r = app
        .get(&format!("/roles/{role}?fields=policies.*"), Some(&admin))
        .await;
    let items = r.data()["policies"].as_array().expect("policies");
    assert_eq!(items.len(), 1, "{}", r.text);
    assert_eq!(keys(&items[0]), strs(ACCESS_KEYS));
    assert_eq!(items[0]["role"], json!(role));
    let r = app
        .get(
            &format!("/roles/{role}?fields=users.email,policies.policy.name"),
            Some(&admin),
        )
        .await;
    assert_eq!(
        r.body,
        json!({"data": {"users": [{"email": "crew@example.com"}], "policies": [{"policy": {"name": "Crew policy"}}]}}),
    );

    // `*.*`: relations first (avatar stays a key), each expanded with its own aliases.
    let r = app
        .get(&format!("/users/{user}?fields=*.*"), Some(&admin))
        .await;
    let d = r.data();
    assert_eq!(
        keys(d)[..3],
        strs(&["avatar", "role", "policies"]),
        "{}",
        r.text
    );
    assert_eq!(d["avatar"], Value::Null);
    assert_eq!(keys(&d["role"]), strs(ROLE_KEYS));
    assert_eq!(d["role"]["users"], json!([user]));
    assert_eq!(d["policies"], json!([]));
    assert_eq!(d["password"], "**********");
    let r = app.get("/roles?fields=*.*", Some(&admin)).await;
    let crew = r
        .data()
        .as_array()
        .expect("roles")
        .iter()
        .find(|x| x["id"] == json!(role))
        .expect("crew")
        .clone();
    assert_eq!(crew["users"][0]["email"], "crew@example.com", "{}", r.text);
    assert_eq!(
        crew["users"][0]["password"], "**********",
        "users stay concealed"
    );
    assert_eq!(keys(&crew["policies"][0]), strs(ACCESS_KEYS));

    // A dotted path through a column that is no relation names nothing; with no field left,
    // Directus answers the keys.
    let r = app
        .get(&format!("/roles/{role}?fields=name,name.x"), Some(&admin))
        .await;
    assert_eq!(r.body, json!({"data": {"name": "Crew"}}));
    let r = app
        .get(&format!("/roles/{role}?fields=name.x"), Some(&admin))
        .await;
    assert_eq!(r.body, json!({"data": role}));

    // `permissions` on policies, `fields` read as Directus's cast-csv.
    let policy = app
        .get(
            &format!("/roles/{role}?fields=policies.policy"),
            Some(&admin),
        )
        .await;
    let policy = policy.data()["policies"][0]["policy"]
        .as_str()
        .expect("policy id")
        .to_string();
    for n in [7, 3] {
        insert(
            &app,
            &PERMISSIONS,
            json!({"id": n, "collection": "directus_users", "action": "read", "fields": "id,email", "policy": policy}),
        )
        .await;
    }
    let p = app.get(&format!("/policies/{policy}"), Some(&admin)).await;
    assert_eq!(p.data()["permissions"], json!([3, 7]), "{}", p.text);
    let p = app
        .get(
            &format!("/policies/{policy}?fields=permissions.fields,permissions.action"),
            Some(&admin),
        )
        .await;
    assert_eq!(
        p.data()["permissions"],
        json!([{"fields": ["id", "email"], "action": "read"}, {"fields": ["id", "email"], "action": "read"}])
    );
}

#[tokio::test]
async fn unknown_fields_are_forbidden_with_directus_reason() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let r = app.get("/roles?fields=nope", Some(&admin)).await;
    assert_eq!(
        forbidden_reason(&r),
        "You don't have permission to access field \"nope\" in collection \"directus_roles\" or it does not exist. Queried in root."
    );
    let r = app.get("/users?fields=id,a,b", Some(&admin)).await;
    assert_eq!(
        forbidden_reason(&r),
        "You don't have permission to access fields \"a\", \"b\" in collection \"directus_users\" or they do not exist. Queried in root."
    );
    let r = app
        .get("/users?fields=role.policies.nope", Some(&admin))
        .await;
    assert_eq!(
        forbidden_reason(&r),
        "You don't have permission to access field \"nope\" in collection \"directus_access\" or it does not exist. Queried in \"role.policies\"."
    );
    let r = app.get("/policies?fields=*,nope", Some(&admin)).await;
    forbidden_reason(&r);
    // `/users/me` answers a refused selection with the id alone, as Directus does.
    let r = app.get("/users/me?fields=nope", Some(&admin)).await;
    assert_eq!(keys(r.data()), ["id"], "{}", r.text);
    // Directus's MAX_RELATIONAL_DEPTH.
    let deep = ["role"; 11].join(".");
    let r = app
        .get(&format!("/users?fields={deep}"), Some(&admin))
        .await;
    r.assert_error(400, "INVALID_QUERY");
    assert_eq!(
        r.body["errors"][0]["message"],
        "Invalid query. Max relational depth exceeded."
    );
}

#[tokio::test]
async fn lists_and_aliases_are_capped_as_directus_caps_them() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let role = app.create_role(&admin, "Many", false, false).await;
    let users: Vec<Value> = (0..101)
        .map(|i| json!({"email": format!("m{i:03}@example.com"), "role": role}))
        .collect();
    let r = app.post("/users", Some(&admin), Value::Array(users)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.data().as_array().map(Vec::len), Some(101));
    // `QUERY_LIMIT_DEFAULT` (100) caps a one-to-many alias per row and a list without `limit`.
    let one = app.get(&format!("/roles/{role}"), Some(&admin)).await;
    assert_eq!(one.data()["users"].as_array().map(Vec::len), Some(100));
    let list = app.get("/users?fields=id", Some(&admin)).await;
    assert_eq!(list.data().as_array().map(Vec::len), Some(100));
    let all = app.get("/users?fields=id&limit=-1", Some(&admin)).await;
    assert_eq!(all.data().as_array().map(Vec::len), Some(102));
    let page = app
        .get(
            "/users?fields=email,role.name&limit=3&offset=100",
            Some(&admin),
        )
        .await;
    let rows = page.data().as_array().expect("page");
    assert_eq!(rows.len(), 2, "{}", page.text);
    assert!(
        rows.iter().all(|u| u["role"]["name"].is_string()),
        "{}",
        page.text
    );
}

#[tokio::test]
async fn callers_without_admin_access_get_directus_reason() {
    let app = spawn_app().await;
    app.app_user("app@example.com", "pw-123456").await;
    let user = app.login("app@example.com", "pw-123456", "json").await;
    let token = user.data()["access_token"]
        .as_str()
        .expect("token")
        .to_string();
    let reason = |c: &str| {
        format!(
            "You don't have permission to access collection \"{c}\" or it does not exist. Queried in root."
        )
    };
    let random = "3f2c9d1e-7b4a-4c8e-9a61-0d5e2f7b8c90";
    // (method, path, collection, also for the app user): an app user reads its own role and
    // some settings through Directus's minimal app permissions, an anonymous caller nothing.
    for (method, path, c, app_user) in [
        (Method::GET, "/roles".to_string(), "directus_roles", false),
        (Method::POST, "/roles".to_string(), "directus_roles", true),
        (
            Method::GET,
            "/policies".to_string(),
            "directus_policies",
            true,
        ),
        (
            Method::POST,
            "/policies".to_string(),
            "directus_policies",
            true,
        ),
        (
            Method::GET,
            format!("/policies/{random}"),
            "directus_policies",
            true,
        ),
        (
            Method::DELETE,
            format!("/policies/{random}"),
            "directus_policies",
            true,
        ),
        (
            Method::GET,
            "/settings".to_string(),
            "directus_settings",
            false,
        ),
        (
            Method::PATCH,
            "/settings".to_string(),
            "directus_settings",
            true,
        ),
    ] {
        let body =
            (method != Method::GET && method != Method::DELETE).then(|| json!({"name": "x"}));
        let callers = if app_user {
            vec![Some(token.as_str()), None]
        } else {
            vec![None]
        };
        for t in callers {
            let r = app
                .request(method.clone(), &path, t, body.clone(), None)
                .await;
            assert_eq!(forbidden_reason(&r), reason(c), "{method} {path} as {t:?}");
        }
    }
    // An admin asking for an unknown id still gets the plain FORBIDDEN.
    let admin = app.admin_token().await;
    let r = app.get(&format!("/roles/{random}"), Some(&admin)).await;
    r.assert_error(403, "FORBIDDEN");
    assert_eq!(
        r.body["errors"][0]["extensions"],
        json!({"code": "FORBIDDEN"})
    );
}

#[tokio::test]
async fn items_read_with_their_aliases_can_be_saved_back() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let role = app.create_role(&admin, "Round", false, true).await;
    app.create_user(&admin, "round@example.com", "pw-123456", Some(&role))
        .await;
    let child = app
        .post(
            "/roles",
            Some(&admin),
            json!({"name": "kid", "parent": role}),
        )
        .await;
    assert_eq!(child.status, 200, "{}", child.text);
    // An admin UI reads the role and saves the whole object back: the aliases are unchanged.
    let read = app.get(&format!("/roles/{role}"), Some(&admin)).await;
    let mut object = read.data().clone();
    object.as_object_mut().expect("object").remove("id");
    object["description"] = json!("saved back");
    let saved = app
        .patch(&format!("/roles/{role}"), Some(&admin), object.clone())
        .await;
    assert_eq!(saved.status, 200, "{}", saved.text);
    assert_eq!(saved.data()["description"], "saved back");
    for alias in ["children", "policies", "users"] {
        assert_eq!(saved.data()[alias], read.data()[alias], "{alias}");
    }
    // A copy made from it, with empty aliases, is a new role.
    object["name"] = json!("copy");
    for alias in ["children", "policies", "users"] {
        object[alias] = json!([]);
    }
    object["parent"] = Value::Null;
    let copy = app.post("/roles", Some(&admin), object).await;
    assert_eq!(copy.status, 200, "{}", copy.text);
    assert_eq!(copy.data()["users"], json!([]));
    // The same for a policy.
    let policies = app.get("/policies?fields=*", Some(&admin)).await;
    let mut policy = policies.data()[0].clone();
    let pid = policy["id"].as_str().expect("id").to_string();
    policy.as_object_mut().expect("object").remove("id");
    let saved = app
        .patch(&format!("/policies/{pid}"), Some(&admin), policy)
        .await;
    assert_eq!(saved.status, 200, "{}", saved.text);
}
