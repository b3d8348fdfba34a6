//! `directus_policies` through the admin API: `ip_access` as Directus's `cast-csv` field shows
//! it, and the public policy that cannot go (Directus: `api/src/services/policies.ts`).

use serde_json::{Map, Value};

use super::super::Error;
use crate::error::ApiError;
use crate::store::Item;

/// The public policy's fixed id (Directus: `api/src/database/migrations/20240806A-permissions-policies.ts`).
pub const PUBLIC_POLICY: &str = "abf8a154-5b1c-4a46-ac9c-7300570f4f17";

/// A payload's `ip_access` given as an array becomes the CSV column.
pub(super) fn ip_access_in(body: &mut Map<String, Value>) -> Result<(), Error> {
    if let Some(Value::Array(list)) = body.get("ip_access") {
        let parts: Option<Vec<&str>> = list.iter().map(Value::as_str).collect();
        let joined = parts
            .ok_or_else(|| ApiError::payload("\"ip_access\" must be a list of strings"))?
            .join(",");
        body.insert("ip_access".into(), Value::from(joined));
    }
    Ok(())
}

/// How a policy reads back: the CSV column as an array.
pub(super) fn present(mut item: Item) -> Item {
    if let Some(Value::String(csv)) = item.get("ip_access") {
        let list: Vec<Value> = csv
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(Value::from)
            .collect();
        item.insert("ip_access".into(), Value::Array(list));
    }
    item
}
