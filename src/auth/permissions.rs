//! Collection permissions (`directus_permissions`) as Directus evaluates them for the
//! collections gatehouse serves: which rows and fields of `directus_users` and
//! `directus_roles` a caller without admin access may read and update. Directus:
//! `api/src/permissions/**`.

pub mod filter;
