//! API tests: each test starts its own server on a random port with a fresh database
//! (SQLite in a temp folder, or a fresh PostgreSQL schema when TEST_DATABASE_URL is set).

#![allow(clippy::unwrap_used)]

mod helpers;

mod admin;
mod connections;
mod login;
mod refresh;
mod server;
mod tokens;
