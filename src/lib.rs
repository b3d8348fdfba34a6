//! gatehouse: a standalone authentication server that speaks Directus's auth API.
//!
//! Layers (DESIGN.md): `http` (axum: routes, extractors, cookies, error responses) calls
//! `auth` (use cases: login, refresh, logout, users and access; no axum, no sqlx types),
//! which calls `store` (sqlx, one module per backend) and the plain domain modules
//! (`password`, `tokens`, `totp`, `clock`, `config`). Only `store` names sqlx; only `http`
//! names axum.

pub mod app;
pub mod auth;
pub mod cli;
pub mod clock;
pub mod config;
pub mod email;
pub mod error;
pub mod http;
pub mod password;
pub mod providers;
pub mod store;
pub mod telemetry;
pub mod tokens;
pub mod totp;

pub use app::App;
