//! The SQL both backends run, written once over a small `Dialect` seam: the item layer
//! (select lists, filters, item CRUD, decoding), the session and lineage rows, and the
//! user lookups. Statements travel as `Sql` (text plus neutral `SqlValue`s) and rows come
//! back as neutral values; each backend only binds `SqlValue`s to its driver and turns its
//! driver's row into `SqlValue`s (`sqlite`: `ToSql for SqlValue` and `row_values`;
//! `postgres`: `bind` and `row_values`). `store` is the one `Store` implementation over them.

pub mod store;

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

use super::{
    parse_ts, Collection, Item, Kind, Lineage, ListQuery, Session, StoreError, WriteOp, POLICIES,
    USERS,
};

/// What differs between the SQL of the two backends.
#[derive(Debug)]
pub struct Dialect {
    /// `?` (SQLite's numbered `?NNN`) or `$` (PostgreSQL's `$n`).
    pub param: char,
    /// Uuid columns are typed (PostgreSQL): values are bound as uuids, and a malformed uuid
    /// matches no row instead of failing the statement's cast. SQLite stores uuids as text.
    pub typed_uuid: bool,
    /// Json columns are bound as text cast with this suffix (PostgreSQL: `::json`).
    pub json_param: &'static str,
    /// How a column of each kind is selected, so every driver reads one type per kind:
    /// `{c}` is the quoted, prefixed column.
    pub select: fn(Kind) -> &'static str,
    /// A json column compared as text (json has no equality operator on PostgreSQL).
    pub json_text: &'static str,
    /// The null-safe "differs" operator.
    pub is_distinct: &'static str,
    /// `crate::email::key` of the `email` column, in SQL (Unicode lower case, then NFC).
    pub email_key: &'static str,
    /// The comma-joined ids of the user's `directus_access` rows in `sort` order (unsorted
    /// rows last, ties by id, as Directus orders the `policies` alias), for the user row
    /// aliased `u`.
    pub access_ids: &'static str,
    /// The instant a second before `{t}` (a bound timestamp).
    pub second_before: &'static str,
    /// How a timestamp read back is shown (Directus's own form on each backend).
    pub show_ts: fn(DateTime<Utc>) -> Value,
}

/// One value bound to a statement or read from a row, whatever the driver.
#[derive(Debug, Clone, PartialEq)]
pub enum SqlValue {
    /// A NULL of this column kind (PostgreSQL wants typed NULLs).
    Null(Kind),
    Text(String),
    Int(i64),
    Bool(bool),
    Uuid(Uuid),
    /// JSON as text.
    Json(String),
    Ts(DateTime<Utc>),
}

impl SqlValue {
    pub fn text(s: &str) -> SqlValue {
        SqlValue::Text(s.to_string())
    }

    pub fn opt_text(s: &Option<String>) -> SqlValue {
        s.as_deref()
            .map_or(SqlValue::Null(Kind::Text), SqlValue::text)
    }

    pub fn opt_uuid(u: Option<Uuid>) -> SqlValue {
        u.map_or(SqlValue::Null(Kind::Uuid), SqlValue::Uuid)
    }

    pub fn opt_ts(t: Option<DateTime<Utc>>) -> SqlValue {
        t.map_or(SqlValue::Null(Kind::Timestamp), SqlValue::Ts)
    }

    pub fn as_text(&self) -> Option<&str> {
        match self {
            SqlValue::Text(s) | SqlValue::Json(s) => Some(s),
            _ => None,
        }
    }

    /// A text or uuid value as a uuid (None for NULL; an error for anything else).
    pub fn as_uuid(&self, what: &str) -> Result<Option<Uuid>, StoreError> {
        match self {
            SqlValue::Null(_) => Ok(None),
            SqlValue::Uuid(u) => Ok(Some(*u)),
            SqlValue::Text(s) => Uuid::parse_str(s)
                .map(Some)
                .map_err(|_| StoreError::Decode(what.into())),
            _ => Err(StoreError::Decode(what.into())),
        }
    }

    /// A timestamp however the backend stores it: timestamptz, epoch milliseconds (knex's
    /// JS dates on SQLite), or text in either form.
    pub fn as_ts(&self, what: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        let bad = || StoreError::Decode(what.into());
        match self {
            SqlValue::Null(_) => Ok(None),
            SqlValue::Ts(t) => Ok(Some(*t)),
            SqlValue::Int(n) => DateTime::from_timestamp_millis(*n)
                .map(Some)
                .ok_or_else(bad),
            SqlValue::Text(s) => parse_text_ts(s).map(Some).ok_or_else(bad),
            _ => Err(bad()),
        }
    }

    pub fn as_int(&self, what: &str) -> Result<Option<i64>, StoreError> {
        match self {
            SqlValue::Null(_) => Ok(None),
            SqlValue::Int(n) => Ok(Some(*n)),
            _ => Err(StoreError::Decode(what.into())),
        }
    }

    pub fn as_bool(&self, what: &str) -> Result<Option<bool>, StoreError> {
        match self {
            SqlValue::Null(_) => Ok(None),
            SqlValue::Bool(b) => Ok(Some(*b)),
            SqlValue::Int(n) => Ok(Some(*n != 0)),
            _ => Err(StoreError::Decode(what.into())),
        }
    }
}

/// Epoch milliseconds (as SQLite stores them) or an ISO / SQL timestamp text.
pub fn parse_text_ts(s: &str) -> Option<DateTime<Utc>> {
    match s.parse::<i64>() {
        Ok(n) => DateTime::from_timestamp_millis(n),
        Err(_) => parse_ts(&Value::String(s.to_string())),
    }
}

/// A statement and its values, in placeholder order.
#[derive(Debug, Clone)]
pub struct Sql {
    pub text: String,
    pub values: Vec<SqlValue>,
}

/// A `WriteOp` as SQL, built before the transaction starts.
#[derive(Debug)]
pub struct WriteSql {
    pub c: &'static Collection,
    /// None when the key can match no row (the op writes nothing).
    pub sql: Option<Sql>,
    /// An update with no columns: `sql` selects the row with the key instead.
    pub counts: bool,
    /// The columns written, to name a unique or foreign-key violation.
    pub item: Item,
    /// The email check to run first: a user's email must be unique ignoring case.
    pub email_taken: Option<(String, Sql)>,
    /// An insert whose key the database assigns (`Collection::generated_key`): `sql` ends in
    /// `RETURNING` the key, read back as one integer.
    pub returns_key: bool,
}

/// What one op of `Driver::apply` wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wrote {
    /// No row had the op's key.
    Nothing,
    /// The row was written.
    Row,
    /// The row was inserted with this key, assigned by the database (`WriteSql::returns_key`).
    Generated(i64),
}

impl Wrote {
    /// `Row` when a row had the op's key, else `Nothing`.
    pub fn found(found: bool) -> Wrote {
        if found {
            Wrote::Row
        } else {
            Wrote::Nothing
        }
    }
}

impl Dialect {
    /// A shared statement written with `$n` placeholders, in this dialect.
    pub fn sql<'a>(&self, template: &'a str) -> Cow<'a, str> {
        if self.param == '$' {
            Cow::Borrowed(template)
        } else {
            Cow::Owned(template.replace('$', &self.param.to_string()))
        }
    }

    fn placeholder(&self, n: usize, v: &SqlValue) -> String {
        match v {
            SqlValue::Json(_) | SqlValue::Null(Kind::Json) => {
                format!("{}{n}{}", self.param, self.json_param)
            }
            _ => format!("{}{n}", self.param),
        }
    }

    /// Pushes `v` and returns its placeholder.
    fn push(&self, values: &mut Vec<SqlValue>, v: SqlValue) -> String {
        values.push(v);
        self.placeholder(values.len(), &values[values.len() - 1])
    }

    /// A JSON value of an item as the value bound for a column of this kind.
    pub fn value(
        &self,
        c: &Collection,
        field: &str,
        kind: Kind,
        v: &Value,
    ) -> Result<SqlValue, StoreError> {
        let wrong = || StoreError::Decode(format!("{}.{field}", c.name));
        Ok(match (kind, v) {
            (_, Value::Null) => SqlValue::Null(kind),
            (Kind::Text, Value::String(s)) => SqlValue::Text(s.clone()),
            (Kind::Uuid, Value::String(s)) if self.typed_uuid => {
                SqlValue::Uuid(Uuid::parse_str(s).map_err(|_| wrong())?)
            }
            (Kind::Uuid, Value::String(s)) => SqlValue::Text(s.clone()),
            (Kind::Json, v) => SqlValue::Json(v.to_string()),
            (Kind::Bool, Value::Bool(b)) => SqlValue::Bool(*b),
            (Kind::Int, Value::Number(n)) => SqlValue::Int(n.as_i64().ok_or_else(wrong)?),
            (Kind::Timestamp, v) => SqlValue::Ts(parse_ts(v).ok_or_else(wrong)?),
            _ => return Err(wrong()),
        })
    }

    /// As `value`, for a lookup (`col = value`): None when no row can match, as a malformed
    /// uuid never equals a stored one.
    fn lookup(
        &self,
        c: &Collection,
        field: &str,
        v: &Value,
    ) -> Result<Option<SqlValue>, StoreError> {
        let kind = c.kind(field).unwrap_or(Kind::Text);
        match (kind, v) {
            (Kind::Uuid, Value::String(s)) if self.typed_uuid && Uuid::parse_str(s).is_err() => {
                Ok(None)
            }
            _ => self.value(c, field, kind, v).map(Some),
        }
    }

    /// The columns of `c` as `decode` reads them; `prefix` is a table alias with its dot.
    pub fn select_list(&self, c: &Collection, prefix: &str) -> String {
        use std::fmt::Write;
        let mut out = String::with_capacity(c.fields.len() * 32);
        for (i, (f, k)) in c.fields.iter().enumerate() {
            let expr = (self.select)(*k);
            let (before, after) = expr.split_once("{c}").unwrap_or(("", ""));
            let sep = if i == 0 { "" } else { ", " };
            let _ = write!(out, "{sep}{before}{prefix}\"{f}\"{after} AS \"{f}\"");
        }
        out
    }

    /// The kinds of the columns `select_list(c)` reads, followed by `extra`.
    pub fn kinds(c: &Collection, extra: &[Kind]) -> Vec<Kind> {
        c.fields
            .iter()
            .map(|(_, k)| *k)
            .chain(extra.iter().copied())
            .collect()
    }

    /// An item from the first `c.fields.len()` values of a row read with `select_list(c)`.
    pub fn decode(&self, c: &Collection, row: &[SqlValue]) -> Result<Item, StoreError> {
        let mut item = Item::new();
        for ((f, kind), v) in c.fields.iter().zip(row) {
            let what = || format!("{}.{f}", c.name);
            let out = match (kind, v) {
                (_, SqlValue::Null(_)) => Value::Null,
                (Kind::Text, SqlValue::Text(s)) => Value::String(s.clone()),
                (Kind::Uuid, SqlValue::Text(s)) => Value::String(s.clone()),
                (Kind::Uuid, SqlValue::Uuid(u)) => Value::String(u.to_string()),
                (Kind::Json, SqlValue::Text(s) | SqlValue::Json(s)) => {
                    serde_json::from_str(s).unwrap_or_else(|_| Value::String(s.clone()))
                }
                (Kind::Bool, v) => v.as_bool(&what())?.map_or(Value::Null, Value::Bool),
                (Kind::Int, SqlValue::Int(n)) => Value::from(*n),
                // An unreadable stored timestamp shows as null, as before.
                (Kind::Timestamp, v) => v
                    .as_ts(&what())
                    .ok()
                    .flatten()
                    .map_or(Value::Null, self.show_ts),
                _ => return Err(StoreError::Decode(what())),
            };
            item.insert(f.to_string(), out);
        }
        Ok(item)
    }

    /// `SELECT` of the items matching `q`, ordered by `q.sort` (the database's own order for
    /// nulls) then by key; None when a filter can match no row.
    pub fn items_list(&self, c: &Collection, q: &ListQuery) -> Result<Option<Sql>, StoreError> {
        let mut values = Vec::new();
        let mut parts = Vec::new();
        for f in &q.filters {
            let kind = c.kind(f.field).unwrap_or(Kind::Text);
            if let (Value::Array(any), false) = (&f.value, kind == Kind::Json) {
                let mut ps = Vec::with_capacity(any.len());
                for v in any {
                    if let Some(v) = self.lookup(c, f.field, v)? {
                        ps.push(self.push(&mut values, v));
                    }
                }
                if ps.is_empty() {
                    return Ok(None);
                }
                parts.push(format!("\"{}\" IN ({})", f.field, ps.join(", ")));
            } else if f.value.is_null() {
                parts.push(format!("\"{}\" IS NULL", f.field));
            } else if kind == Kind::Json {
                let col = self.json_text.replace("{c}", &format!("\"{}\"", f.field));
                let p = self.push(&mut values, SqlValue::Text(f.value.to_string()));
                parts.push(format!("{col} = {p}"));
            } else {
                let Some(v) = self.lookup(c, f.field, &f.value)? else {
                    return Ok(None);
                };
                let p = self.push(&mut values, v);
                parts.push(format!("\"{}\" = {p}", f.field));
            }
        }
        if let Some((field, v)) = &q.ci_filter {
            let p = self.push(&mut values, SqlValue::Text(v.clone()));
            parts.push(format!("LOWER(\"{field}\") = LOWER({p})"));
        }
        let mut text = format!("SELECT {} FROM \"{}\"", self.select_list(c, ""), c.name);
        if !parts.is_empty() {
            text.push_str(" WHERE ");
            text.push_str(&parts.join(" AND "));
        }
        // No limit is the largest one (SQLite wants a LIMIT before an OFFSET).
        let limit = SqlValue::Int(q.limit.unwrap_or(i64::MAX));
        let l = self.push(&mut values, limit);
        let o = self.push(&mut values, SqlValue::Int(q.offset.unwrap_or(0)));
        let order = match q.sort {
            Some(col) if col != c.pk => format!("\"{col}\", \"{}\"", c.pk),
            _ => format!("\"{}\"", c.pk),
        };
        text.push_str(&format!(" ORDER BY {order} LIMIT {l} OFFSET {o}"));
        Ok(Some(Sql { text, values }))
    }

    pub fn items_count(&self, c: &Collection) -> String {
        format!("SELECT COUNT(*) FROM \"{}\"", c.name)
    }

    /// `SELECT` of the item with this key; None when the key can match no row.
    pub fn item_get(&self, c: &Collection, id: &Value) -> Result<Option<Sql>, StoreError> {
        let Some(key) = self.lookup(c, c.pk, id)? else {
            return Ok(None);
        };
        let mut values = Vec::new();
        let p = self.push(&mut values, key);
        let text = format!(
            "SELECT {} FROM \"{}\" WHERE \"{}\" = {p}",
            self.select_list(c, ""),
            c.name,
            c.pk
        );
        Ok(Some(Sql { text, values }))
    }

    /// A user by exact, active static token.
    pub fn user_by_static_token(&self, token: &str) -> Sql {
        let text = format!(
            "SELECT {} FROM \"directus_users\" WHERE \"token\" = {p}1 AND \"status\" = 'active'",
            self.select_list(&USERS, ""),
            p = self.param
        );
        Sql {
            text,
            values: vec![SqlValue::text(token)],
        }
    }

    /// The user whose email has this comparison key; the lowest id wins.
    pub fn user_by_email(&self, key: &str) -> Sql {
        let text = format!(
            "SELECT {} FROM \"directus_users\" WHERE {} = {p}1 ORDER BY \"id\" LIMIT 1",
            self.select_list(&USERS, ""),
            self.email_key,
            p = self.param
        );
        Sql {
            text,
            values: vec![SqlValue::text(key)],
        }
    }

    /// The user's columns, then (`Kind::Text`) the comma-joined ids of its own access rows.
    pub fn user_with_access(&self, id: Uuid) -> Sql {
        let text = format!(
            "SELECT {}, {} AS \"gh_access\" FROM \"directus_users\" u WHERE u.\"id\" = {p}1",
            self.select_list(&USERS, "u."),
            self.access_ids,
            p = self.param
        );
        Sql {
            text,
            values: vec![SqlValue::Uuid(id)],
        }
    }

    /// The policies' columns, then (`Kind::Uuid`) the role each came through. NULLS FIRST
    /// is SQLite's own order for unsorted rows.
    pub fn policies_for(&self, roles: &[Uuid], user: Option<Uuid>) -> Sql {
        let mut values = Vec::new();
        let roles = if roles.is_empty() {
            "NULL".to_string()
        } else {
            roles
                .iter()
                .map(|r| self.push(&mut values, SqlValue::Uuid(*r)))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let u = self.push(&mut values, SqlValue::opt_uuid(user));
        let text = format!(
            "SELECT {}, a.\"role\" AS \"gh_via_role\" FROM \"directus_access\" a JOIN \"directus_policies\" p ON p.\"id\" = a.\"policy\" \
             WHERE a.\"role\" IN ({roles}) OR (a.\"user\" IS NOT NULL AND a.\"user\" = {u}) ORDER BY a.\"sort\" NULLS FIRST",
            self.select_list(&POLICIES, "p.")
        );
        Sql { text, values }
    }

    /// One op's statement (see `WriteSql`).
    pub fn write(&self, op: &WriteOp) -> Result<WriteSql, StoreError> {
        let c = op.collection();
        let email_taken = match op.user_email() {
            Some(email) => {
                let mut values = vec![SqlValue::Text(crate::email::key(email))];
                values.push(match op.key() {
                    Some(id) => self
                        .lookup(c, c.pk, id)?
                        .unwrap_or(SqlValue::Null(Kind::Uuid)),
                    None => SqlValue::Null(Kind::Uuid),
                });
                let text = format!(
                    "SELECT EXISTS (SELECT 1 FROM \"directus_users\" WHERE {} = {p}1 AND (\"id\" {} {p}2))",
                    self.email_key,
                    self.is_distinct,
                    p = self.param
                );
                Some((email.to_string(), Sql { text, values }))
            }
            None => None,
        };
        let mut values = Vec::new();
        let mut counts = false;
        let returns_key = op.generates_key();
        let text = match op {
            WriteOp::Insert { item, .. } => {
                let (mut cols, mut ps) = (Vec::new(), Vec::new());
                for (f, k) in c.fields.iter().filter(|(f, _)| item.contains_key(*f)) {
                    if returns_key && *f == c.pk {
                        // A null key is left to the database (PostgreSQL refuses an explicit NULL).
                        continue;
                    }
                    cols.push(format!("\"{f}\""));
                    ps.push(self.push(&mut values, self.value(c, f, *k, &item[*f])?));
                }
                let mut text = format!(
                    "INSERT INTO \"{}\" ({}) VALUES ({})",
                    c.name,
                    cols.join(", "),
                    ps.join(", ")
                );
                if returns_key {
                    // SQLite ≥ 3.35 and PostgreSQL both return the assigned key.
                    let key = (self.select)(Kind::Int).replace("{c}", &format!("\"{}\"", c.pk));
                    text.push_str(&format!(" RETURNING {key}"));
                }
                Some(text)
            }
            WriteOp::Update { id, patch, .. } => {
                let mut sets = Vec::new();
                for (f, k) in c
                    .fields
                    .iter()
                    .filter(|(f, _)| patch.contains_key(*f) && *f != c.pk)
                {
                    let p = self.push(&mut values, self.value(c, f, *k, &patch[*f])?);
                    sets.push(format!("\"{f}\" = {p}"));
                }
                counts = sets.is_empty();
                self.lookup(c, c.pk, id)?.map(|key| {
                    let p = self.push(&mut values, key);
                    if counts {
                        // Nothing to set: only whether the row exists.
                        format!("SELECT 1 FROM \"{}\" WHERE \"{}\" = {p}", c.name, c.pk)
                    } else {
                        let sets = sets.join(", ");
                        format!("UPDATE \"{}\" SET {sets} WHERE \"{}\" = {p}", c.name, c.pk)
                    }
                })
            }
            WriteOp::Delete { id, .. } => self.lookup(c, c.pk, id)?.map(|key| {
                let p = self.push(&mut values, key);
                format!("DELETE FROM \"{}\" WHERE \"{}\" = {p}", c.name, c.pk)
            }),
        };
        Ok(WriteSql {
            c,
            sql: text.map(|text| Sql { text, values }),
            counts,
            item: op.columns().cloned().unwrap_or_default(),
            email_taken,
            returns_key,
        })
    }

    /// Sets the user's `last_access`, at most once a second: a burst of refreshes of one
    /// user would otherwise queue on that user's row.
    pub fn touch_last_access(&self, user: Uuid, now: DateTime<Utc>) -> Sql {
        let text = format!(
            r#"UPDATE "directus_users" SET "last_access" = $1 WHERE "id" = $2 AND ("last_access" IS NULL OR "last_access" < {})"#,
            self.second_before.replace("{t}", "$1")
        );
        Sql {
            text: self.sql(&text).into_owned(),
            values: vec![SqlValue::Ts(now), SqlValue::Uuid(user)],
        }
    }

    pub fn insert_session(&self, s: &Session) -> Sql {
        Sql {
            text: self.sql(INSERT_SESSION).into_owned(),
            values: vec![
                SqlValue::text(&s.token),
                SqlValue::opt_uuid(s.user),
                SqlValue::Ts(s.expires),
                SqlValue::opt_text(&s.ip),
                SqlValue::opt_text(&s.user_agent),
                SqlValue::opt_text(&s.origin),
                SqlValue::opt_uuid(s.share),
                SqlValue::opt_text(&s.next_token),
            ],
        }
    }

    pub fn insert_lineage(&self, l: &Lineage) -> Sql {
        Sql {
            text: self.sql(INSERT_LINEAGE).into_owned(),
            values: vec![
                SqlValue::text(&l.token_hash),
                SqlValue::Uuid(l.family),
                SqlValue::opt_uuid(l.user),
                SqlValue::opt_ts(l.rotated_at),
                SqlValue::Ts(l.expires),
            ],
        }
    }

    /// `SELECT` of a session row, read back with `session_from`.
    pub fn session_get(&self, token: &str) -> Sql {
        let ts = (self.select)(Kind::Timestamp).replace("{c}", "\"expires\"");
        Sql {
            text: format!(
                "SELECT \"token\", \"user\", {ts}, \"ip\", \"user_agent\", \"origin\", \"share\", \"next_token\" FROM \"directus_sessions\" WHERE \"token\" = {}1",
                self.param
            ),
            values: vec![SqlValue::text(token)],
        }
    }

    /// `SELECT` of a lineage row, read back with `lineage_from`.
    pub fn lineage_get(&self, token_hash: &str) -> Sql {
        Sql {
            text: self.sql(LINEAGE_GET).into_owned(),
            values: vec![SqlValue::text(token_hash)],
        }
    }
}

const INSERT_SESSION: &str = r#"INSERT INTO "directus_sessions" ("token", "user", "expires", "ip", "user_agent", "origin", "share", "next_token")
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"#;

const INSERT_LINEAGE: &str = r#"INSERT INTO "gatehouse_session_lineage" ("token_hash", "family", "user", "rotated_at", "expires")
           VALUES ($1, $2, $3, $4, $5)
           ON CONFLICT ("token_hash") DO UPDATE SET "rotated_at" = excluded."rotated_at", "expires" = excluded."expires""#;

const LINEAGE_GET: &str = r#"SELECT "token_hash", "family", "user", "rotated_at", "expires" FROM "gatehouse_session_lineage" WHERE "token_hash" = $1"#;

/// The kinds of `session_get`'s columns.
pub const SESSION_KINDS: &[Kind] = &[
    Kind::Text,
    Kind::Uuid,
    Kind::Timestamp,
    Kind::Text,
    Kind::Text,
    Kind::Text,
    Kind::Uuid,
    Kind::Text,
];

/// The kinds of `lineage_get`'s columns.
pub const LINEAGE_KINDS: &[Kind] = &[
    Kind::Text,
    Kind::Uuid,
    Kind::Uuid,
    Kind::Timestamp,
    Kind::Timestamp,
];

fn text_at(row: &[SqlValue], i: usize, what: &str) -> Result<Option<String>, StoreError> {
    match row.get(i) {
        Some(SqlValue::Null(_)) => Ok(None),
        Some(v) => v
            .as_text()
            .map(|s| Some(s.to_string()))
            .ok_or_else(|| StoreError::Decode(what.into())),
        None => Err(StoreError::Decode(what.into())),
    }
}

fn at<'r>(row: &'r [SqlValue], i: usize, what: &str) -> Result<&'r SqlValue, StoreError> {
    row.get(i).ok_or_else(|| StoreError::Decode(what.into()))
}

/// A session from the values of `session_get`'s columns, from index `i`.
pub fn session_from(row: &[SqlValue], i: usize) -> Result<Session, StoreError> {
    const T: &str = "directus_sessions";
    Ok(Session {
        token: text_at(row, i, T)?.ok_or_else(|| StoreError::Decode(format!("{T}.token")))?,
        user: at(row, i + 1, T)?.as_uuid("directus_sessions.user")?,
        expires: at(row, i + 2, T)?
            .as_ts("directus_sessions.expires")?
            .ok_or_else(|| StoreError::Decode("directus_sessions.expires".into()))?,
        ip: text_at(row, i + 3, T)?,
        user_agent: text_at(row, i + 4, T)?,
        origin: text_at(row, i + 5, T)?,
        share: at(row, i + 6, T)?.as_uuid("directus_sessions.share")?,
        next_token: text_at(row, i + 7, T)?,
    })
}

/// A lineage row from the values of `lineage_get`'s columns.
pub fn lineage_from(row: &[SqlValue]) -> Result<Lineage, StoreError> {
    const T: &str = "gatehouse_session_lineage";
    let bad = || StoreError::Decode(T.into());
    Ok(Lineage {
        token_hash: text_at(row, 0, T)?.ok_or_else(bad)?,
        family: at(row, 1, T)?.as_uuid(T)?.ok_or_else(bad)?,
        // An unreadable user reads as none, as before.
        user: at(row, 2, T)?.as_uuid(T).ok().flatten(),
        rotated_at: at(row, 3, T)?.as_ts(T)?,
        expires: at(row, 4, T)?.as_ts(T)?.ok_or_else(bad)?,
    })
}

/// Parses the comma-joined access ids of `user_with_access`.
pub fn access_ids(joined: Option<&str>) -> Vec<Uuid> {
    joined
        .unwrap_or_default()
        .split(',')
        .filter_map(|s| Uuid::parse_str(s.trim()).ok())
        .collect()
}
