//! API tests: each test starts its own server on a random port with a fresh database
//! (SQLite in a temp folder, or a fresh PostgreSQL schema when TEST_DATABASE_URL is set).

#![allow(clippy::unwrap_used)]

mod helpers;
mod smtp_sink;

mod accounts;
mod admin;
mod atomic_writes;
mod bootstrap;
mod cli;
mod connections;
mod cors;
mod db_faults;
mod edges;
mod forward_auth;
mod health;
mod health_checks;
mod ldap;
mod lifecycle;
mod login;
mod logs;
mod mail;
mod metrics;
mod permissions_admin;
mod rate_limit;
mod refresh;
#[cfg(feature = "saml")]
mod saml;
mod security;
mod server;
mod shapes;
mod sso_checks;
mod sso_fake_idp;
mod sso_oauth2;
mod sso_oidc;
mod sso_seam;
mod tfa;
mod tokens;
mod user_cache;
