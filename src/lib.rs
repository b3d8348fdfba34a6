//! gatehouse: a standalone authentication server that speaks Directus's auth API.
//!
//! Layers (the README's "Code tour"): `http` (axum: serving connections, routes, extractors,
//! cookies, error responses) calls `auth` (use cases: login and `start_session`, refresh,
//! logout, who a token belongs to, the admin API; no axum, no sqlx types), which calls `store`
//! (one module per backend), `providers` (the SSO driver seam and the mailer) and the plain
//! domain modules (`password`, `tokens`, `totp`, `email`, `clock`, `config`, `metrics`). Only `store`
//! names sqlx (PostgreSQL) and rusqlite (SQLite); only `http` names axum. `cli` is the command line.

pub mod app;
pub mod auth;
pub mod cli;
pub mod clock;
pub mod config;
pub mod email;
pub mod error;
pub mod http;
pub mod metrics;
pub mod password;
pub mod providers;
pub mod store;
pub mod telemetry;
pub mod tokens;
pub mod totp;
pub mod urls;

pub use app::App;
