//! The command line: serve (the default) or one administrative command (`migrate`,
//! `bootstrap`, `users …`, `config check`). `main.rs` only parses and calls [`run`]; the
//! commands write to the `out` they are given, so tests run them in-process.

use std::io::Write;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use serde_json::{json, Value};

use crate::auth::Auth;
use crate::clock::SystemClock;
use crate::config::Config;
use crate::store::{ListQuery, USERS};

#[derive(Parser)]
#[command(
    name = "gatehouse",
    version,
    about = "An authentication server that speaks Directus's auth API"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run pending database migrations and exit.
    Migrate,
    /// Migrate, then create the first admin if the database has no users.
    Bootstrap,
    /// Manage users.
    Users {
        #[command(subcommand)]
        command: UsersCommand,
    },
    /// Check the configuration and print a summary (secrets hidden).
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
}

#[derive(Subcommand)]
pub enum UsersCommand {
    /// Create a user.
    Create {
        #[arg(long)]
        email: String,
        #[arg(long)]
        password: String,
        /// Role id to assign.
        #[arg(long)]
        role: Option<String>,
    },
    /// List users (id, email, status, role).
    List,
    /// Set a user's password (ends the user's sessions).
    SetPassword {
        #[arg(long)]
        email: String,
        #[arg(long)]
        password: String,
    },
    /// Set a user's status; `active` undoes a suspension and clears its failed logins.
    SetStatus {
        /// The user's email.
        email: String,
        /// One of draft, invited, unverified, active, suspended, archived.
        status: String,
    },
    /// Set (or with an empty value, clear) a user's static token.
    SetToken {
        #[arg(long)]
        email: String,
        #[arg(long)]
        token: String,
    },
}

#[derive(Subcommand)]
pub enum ConfigCommand {
    Check,
}

/// Runs one command line; what a command reports goes to `out`.
pub async fn run(cli: Cli, config: Config, out: &mut (dyn Write + Send)) -> anyhow::Result<()> {
    let clock = Arc::new(SystemClock);
    match cli.command {
        None => {
            let app = crate::App::build(config, clock).await?;
            tracing::info!(addr = %app.addr(), "gatehouse listening");
            app.serve(crate::app::shutdown_signal()).await?;
        }
        Some(Command::Migrate) => {
            crate::app::connect_store(&config).await?;
            writeln!(out, "migrations applied")?;
        }
        Some(Command::Bootstrap) => {
            let auth = crate::app::init(config, clock).await?;
            match auth.bootstrap().await.map_err(anyhow::Error::new)? {
                Some(b) => crate::app::announce(&b),
                None => writeln!(out, "users already exist; nothing to do")?,
            }
        }
        Some(Command::Config {
            command: ConfigCommand::Check,
        }) => {
            // The templates are part of the configuration: a broken one would stop the start.
            crate::providers::mail::Templates::load(Some(&config.email.templates_path))?;
            writeln!(out, "configuration OK")?;
            writeln!(out, "  listen: {}:{}", config.host, config.port)?;
            writeln!(
                out,
                "  database: {}",
                match &config.db {
                    crate::config::DbConfig::Sqlite { filename } =>
                        format!("sqlite3 {}", filename.display()),
                    crate::config::DbConfig::Postgres { .. } =>
                        "pg (connection string hidden)".into(),
                }
            )?;
            writeln!(
                out,
                "  SECRET: {}",
                if config.secret.is_some() {
                    "set"
                } else {
                    "unset (generated and kept in the database)"
                }
            )?;
            writeln!(
                out,
                "  ACCESS_TOKEN_TTL: {:?}, REFRESH_TOKEN_TTL: {:?}",
                config.access_token_ttl, config.refresh_token_ttl
            )?;
            writeln!(
                out,
                "  mail: {}",
                match &config.email.transport {
                    crate::config::EmailTransport::Log => "log (not sent, only logged)".into(),
                    crate::config::EmailTransport::Smtp(s) => format!("smtp {}:{}", s.host, s.port),
                }
            )?;
        }
        Some(Command::Users { command }) => {
            users(command, crate::app::init(config, clock).await?, out).await?
        }
    }
    Ok(())
}

async fn users(
    command: UsersCommand,
    auth: Auth,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<()> {
    let err = anyhow::Error::new;
    let find = |email: String| {
        let auth = auth.clone();
        async move {
            auth.find_user_by_email(&email)
                .await
                .map_err(err)?
                .ok_or_else(|| anyhow::anyhow!("no user with email {email}"))
        }
    };
    match command {
        UsersCommand::Create {
            email,
            password,
            role,
        } => {
            let mut body = json!({"email": email, "password": password});
            if let Some(r) = role {
                body["role"] = Value::from(r);
            }
            let created = auth.create_user_as_system(body).await.map_err(err)?;
            writeln!(
                out,
                "created user {}",
                created["id"].as_str().unwrap_or("?")
            )?;
        }
        UsersCommand::List => {
            for u in auth
                .store
                .items
                .items_list(&USERS, &ListQuery::default())
                .await?
            {
                let s = |k: &str| u.get(k).and_then(Value::as_str).unwrap_or("-").to_string();
                writeln!(
                    out,
                    "{}\t{}\t{}\t{}",
                    s("id"),
                    s("email"),
                    s("status"),
                    s("role")
                )?;
            }
        }
        UsersCommand::SetPassword { email, password } => {
            let user = find(email.clone()).await?;
            auth.update_user_as_system(
                user["id"].as_str().unwrap_or(""),
                json!({"password": password}),
            )
            .await
            .map_err(err)?;
            writeln!(out, "password set for {email}; its sessions were ended")?;
        }
        UsersCommand::SetStatus { email, status } => {
            let user = find(email.clone()).await?;
            let id = user["id"].as_str().unwrap_or("");
            auth.update_user_as_system(id, json!({ "status": status }))
                .await
                .map_err(err)?;
            if status == "active" {
                auth.store
                    .counters
                    .login_attempts_reset(id.parse()?)
                    .await?;
            }
            writeln!(out, "status of {email} set to {status}")?;
        }
        UsersCommand::SetToken { email, token } => {
            if token == crate::auth::admin::MASK {
                anyhow::bail!("the static token cannot be the concealed value {token}");
            }
            let user = find(email.clone()).await?;
            let value = if token.is_empty() {
                Value::Null
            } else {
                Value::from(token)
            };
            auth.update_user_as_system(user["id"].as_str().unwrap_or(""), json!({"token": value}))
                .await
                .map_err(err)?;
            writeln!(out, "static token updated for {email}")?;
        }
    }
    Ok(())
}
