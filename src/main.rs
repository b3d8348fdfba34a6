//! The `gatehouse` binary: parse the command line, load configuration, start logging, and
//! serve (default) or run one administrative command.

use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use serde_json::{json, Value};

use gatehouse::clock::SystemClock;
use gatehouse::config::Config;
use gatehouse::store::{ListQuery, USERS};

#[derive(Parser)]
#[command(
    name = "gatehouse",
    version,
    about = "An authentication server that speaks Directus's auth API"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
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
enum UsersCommand {
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
enum ConfigCommand {
    Check,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::from_process() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("gatehouse: {e}");
            return ExitCode::from(2);
        }
    };
    gatehouse::telemetry::init(&config.log_level, &config.log_style);
    match run(cli, config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gatehouse: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli, config: Config) -> anyhow::Result<()> {
    let clock = Arc::new(SystemClock);
    match cli.command {
        None => {
            let app = gatehouse::App::build(config, clock).await?;
            tracing::info!(addr = %app.addr(), "gatehouse listening");
            app.serve(gatehouse::app::shutdown_signal()).await?;
        }
        Some(Command::Migrate) => {
            gatehouse::app::connect_store(&config).await?;
            println!("migrations applied");
        }
        Some(Command::Bootstrap) => {
            let auth = gatehouse::app::init(config, clock).await?;
            match auth.bootstrap().await.map_err(|e| anyhow::anyhow!("{e}"))? {
                Some(b) => gatehouse::app::announce(&b),
                None => println!("users already exist; nothing to do"),
            }
        }
        Some(Command::Config {
            command: ConfigCommand::Check,
        }) => {
            println!("configuration OK");
            println!("  listen: {}:{}", config.host, config.port);
            println!(
                "  database: {}",
                match &config.db {
                    gatehouse::config::DbConfig::Sqlite { filename } =>
                        format!("sqlite3 {}", filename.display()),
                    gatehouse::config::DbConfig::Postgres { .. } =>
                        "pg (connection string hidden)".into(),
                }
            );
            println!(
                "  SECRET: {}",
                if config.secret.is_some() {
                    "set"
                } else {
                    "unset (generated and kept in the database)"
                }
            );
            println!(
                "  ACCESS_TOKEN_TTL: {:?}, REFRESH_TOKEN_TTL: {:?}",
                config.access_token_ttl, config.refresh_token_ttl
            );
        }
        Some(Command::Users { command }) => {
            users(command, gatehouse::app::init(config, clock).await?).await?
        }
    }
    Ok(())
}

async fn users(command: UsersCommand, auth: gatehouse::auth::Auth) -> anyhow::Result<()> {
    let err = |e: gatehouse::error::ApiError| anyhow::anyhow!("{e}");
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
            let created = auth.create_as_system(&USERS, body).await.map_err(err)?;
            println!("created user {}", created["id"].as_str().unwrap_or("?"));
        }
        UsersCommand::List => {
            for u in auth.store.items_list(&USERS, &ListQuery::default()).await? {
                let s = |k: &str| u.get(k).and_then(Value::as_str).unwrap_or("-").to_string();
                println!(
                    "{}\t{}\t{}\t{}",
                    s("id"),
                    s("email"),
                    s("status"),
                    s("role")
                );
            }
        }
        UsersCommand::SetPassword { email, password } => {
            let user = find(email.clone()).await?;
            auth.update_as_system(
                &USERS,
                user["id"].as_str().unwrap_or(""),
                json!({"password": password}),
            )
            .await
            .map_err(err)?;
            println!("password set for {email}; its sessions were ended");
        }
        UsersCommand::SetStatus { email, status } => {
            let user = find(email.clone()).await?;
            let id = user["id"].as_str().unwrap_or("");
            auth.update_as_system(&USERS, id, json!({ "status": status }))
                .await
                .map_err(err)?;
            if status == "active" {
                auth.store.login_attempts_reset(id.parse()?).await?;
            }
            println!("status of {email} set to {status}");
        }
        UsersCommand::SetToken { email, token } => {
            if token == gatehouse::auth::admin::MASK {
                anyhow::bail!("the static token cannot be the concealed value {token}");
            }
            let user = find(email.clone()).await?;
            let value = if token.is_empty() {
                Value::Null
            } else {
                Value::from(token)
            };
            auth.update_as_system(
                &USERS,
                user["id"].as_str().unwrap_or(""),
                json!({"token": value}),
            )
            .await
            .map_err(err)?;
            println!("static token updated for {email}");
        }
    }
    Ok(())
}
