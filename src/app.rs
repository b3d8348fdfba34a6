//! Start-up: connect and migrate the store, settle the SECRET, bootstrap the first admin,
//! bind (port 0 allowed), and serve until shutdown. Tests and benchmarks start the real
//! server through `App::build`.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::auth::bootstrap::{resolve_secret, Bootstrapped};
use crate::auth::Auth;
use crate::clock::Clock;
use crate::config::{Config, DbConfig};
use crate::password::Hasher;
use crate::providers::mail::{Mailer, Outbox};
use crate::store::{postgres::PostgresStore, sqlite::SqliteStore, Store, Stores};
use crate::tokens::Tokens;

/// How often expired sessions and lineage rows are deleted.
const PURGE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(60);

pub async fn connect_store(config: &Config) -> anyhow::Result<Stores> {
    let store: Arc<dyn Store> = match &config.db {
        DbConfig::Sqlite { filename } => Arc::new(
            SqliteStore::connect(
                filename,
                config.db_max_connections,
                config.db_acquire_timeout,
            )
            .await
            .with_context(|| {
                format!(
                    "cannot open the SQLite database at DB_FILENAME={}",
                    filename.display()
                )
            })?,
        ),
        DbConfig::Postgres { .. } => Arc::new(connect_postgres(config).await?),
    };
    store.migrate().await.context("database migration failed")?;
    if config.user_cache_ttl.is_zero() {
        return Ok(Stores::direct(store));
    }
    Ok(Stores::cached(store, config.user_cache_ttl))
}

/// The first wait between tries to reach PostgreSQL at start; it doubles up to `MAX_BACKOFF`.
const FIRST_BACKOFF: std::time::Duration = std::time::Duration::from_millis(250);
const MAX_BACKOFF: std::time::Duration = std::time::Duration::from_secs(5);

/// Connects to PostgreSQL, waiting for it with back-off for up to `GATEHOUSE_DB_START_TIMEOUT`
/// when it does not answer yet, so the order in which an orchestrator starts the database and
/// the nodes does not matter.
async fn connect_postgres(config: &Config) -> anyhow::Result<PostgresStore> {
    let hint = "cannot connect to PostgreSQL (check DB_CONNECTION_STRING or DB_HOST/DB_PORT/DB_DATABASE/DB_USER/DB_PASSWORD)";
    let start = std::time::Instant::now();
    let mut backoff = FIRST_BACKOFF;
    loop {
        let tried = PostgresStore::connect(
            postgres_url(config),
            config.db_max_connections,
            config.db_acquire_timeout,
        )
        .await;
        let e = match tried {
            Ok(store) => return Ok(store),
            Err(e) => e,
        };
        let waited = start.elapsed();
        let left = config.db_start_timeout.saturating_sub(waited);
        // Only an unreachable server is waited for; a wrong password or database is final.
        if left.is_zero() || !e.is_unreachable() {
            let waited = if waited.as_millis() >= 1 {
                format!(
                    " (waited {:.1} s, GATEHOUSE_DB_START_TIMEOUT)",
                    waited.as_secs_f64()
                )
            } else {
                String::new()
            };
            return Err(anyhow::Error::new(e).context(format!("{hint}{waited}")));
        }
        let wait = backoff.min(left);
        tracing::warn!(
            error = %e,
            retry_in_ms = wait.as_millis() as u64,
            waited_s = waited.as_secs(),
            "PostgreSQL does not answer yet; trying again (until GATEHOUSE_DB_START_TIMEOUT)"
        );
        tokio::time::sleep(wait).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

fn postgres_url(config: &Config) -> &str {
    match &config.db {
        DbConfig::Postgres { url } => url,
        DbConfig::Sqlite { .. } => "",
    }
}

/// Builds the use-case service on a migrated store with the settled SECRET.
pub async fn init(config: Config, clock: Arc<dyn Clock>) -> anyhow::Result<Auth> {
    init_with(config, clock, None).await
}

/// [`init`] with the mail transport given instead of the configured one (tests record mail).
pub async fn init_with(
    config: Config,
    clock: Arc<dyn Clock>,
    mailer: Option<Arc<dyn Mailer>>,
) -> anyhow::Result<Auth> {
    // Templates first: a broken custom template stops the start before the database is touched.
    let metrics = crate::metrics::Metrics::new();
    let mail = Outbox::from_config(&config.email, mailer, metrics.clone())?;
    let store = connect_store(&config).await?;
    let secret = resolve_secret(config.secret.as_deref(), store.meta.as_ref())
        .await
        .context("cannot read or store the generated SECRET")?;
    Ok(Auth {
        tokens: Tokens::new(&secret),
        hasher: Hasher::observed(config.hash.clone(), metrics.clone()),
        metrics,
        store,
        clock,
        config: Arc::new(config),
        providers: crate::providers::Providers::default(),
        mail,
    })
}

pub fn announce(b: &Bootstrapped) {
    match &b.generated_password {
        // Printed once to the console, never through the logger.
        Some(pw) => println!("gatehouse: created the first admin {} with the generated password: {pw}\n(set ADMIN_PASSWORD to choose it; this is shown once)", b.email),
        None => println!("gatehouse: created the first admin {} (password from ADMIN_PASSWORD)", b.email),
    }
}

pub struct App {
    listener: TcpListener,
    addr: SocketAddr,
    auth: Auth,
}

impl App {
    pub async fn build(config: Config, clock: Arc<dyn Clock>) -> anyhow::Result<App> {
        Self::build_with(config, clock, None).await
    }

    /// [`App::build`] with the mail transport given instead of the configured one.
    pub async fn build_with(
        config: Config,
        clock: Arc<dyn Clock>,
        mailer: Option<Arc<dyn Mailer>>,
    ) -> anyhow::Result<App> {
        let bind = format!("{}:{}", config.host, config.port);
        if mailer.is_none() {
            Outbox::announce(&config.email);
        }
        let auth = init_with(config, clock, mailer).await?;
        if let Some(b) = auth
            .bootstrap()
            .await
            .context("bootstrap of the first admin failed")?
        {
            announce(&b);
        }
        let listener = TcpListener::bind(&bind)
            .await
            .with_context(|| format!("cannot listen on {bind} (HOST/PORT)"))?;
        let addr = listener.local_addr()?;
        // Expired sessions and lineage rows are purged here, off the request path (Directus
        // purges on every login and refresh); reads already refuse expired rows.
        let purger = auth.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(PURGE_INTERVAL);
            loop {
                tick.tick().await;
                if let Err(e) = purger
                    .store
                    .sessions
                    .sessions_purge_expired(None, purger.now())
                    .await
                {
                    tracing::warn!(error = %e, "purging expired sessions failed");
                }
            }
        });
        // Make the dummy hash now, so the first unknown-email login is not slower.
        let hasher = auth.hasher.clone();
        tokio::spawn(async move {
            let _ = hasher.dummy().await;
        });
        Ok(App {
            listener,
            addr,
            auth,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn auth(&self) -> &Auth {
        &self.auth
    }

    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let server = self.auth.config.server.clone();
        let db_connections = self.auth.config.db_max_connections;
        let router = crate::http::router(crate::http::AppState::new(self.auth));
        crate::http::serve::serve(self.listener, router, server, db_connections, shutdown).await
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}
