//! Configuration: Directus's variable names, read from built-in defaults, then a config file
//! (`CONFIG_PATH`, or `.env` in the working directory), then the process environment.
//!
//! Every value is a string until a typed getter reads it, so an error always names the variable
//! and says what a valid value looks like. `<NAME>_FILE` reads the value from a file, and
//! Directus's type prefixes (`string:`, `number:`, `boolean:`, `json:`, `array:`, `regex:`)
//! are stripped; values are never split on commas unless the variable is a list.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

mod accounts;
mod cors;
pub use accounts::AccountsConfig;
pub use cors::{CorsConfig, CorsOrigin, OriginRule};
mod rate_limit;
pub use rate_limit::{Limit, RateLimitConfig, RateLimitStore};
mod email;
pub use email::{EmailConfig, EmailRateLimit, EmailTransport, SmtpConfig};
mod forward_auth;
pub use forward_auth::{ForwardAuthConfig, IdentityHeaders};

/// A configuration problem found at start-up; its text names the variable and the fix.
#[derive(Debug, thiserror::Error)]
#[error("configuration error: {0}")]
pub struct ConfigError(pub String);

fn bad(name: &str, value: &str, want: &str) -> ConfigError {
    ConfigError(format!("{name}={value:?} is not valid: {want}"))
}

/// Raw variables after merging every source, with `_FILE` indirection resolved.
#[derive(Clone, Default)]
pub struct Vars(BTreeMap<String, String>);

/// Names only: values may be secrets.
impl std::fmt::Debug for Vars {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

impl Vars {
    /// Reads the config file (if any) and the process environment.
    pub fn from_process() -> Result<Self, ConfigError> {
        let env: BTreeMap<String, String> = std::env::vars().collect();
        let file = match env.get("CONFIG_PATH") {
            Some(p) => Some(PathBuf::from(p)),
            None => Some(PathBuf::from(".env")).filter(|p| p.exists()),
        };
        let mut vars = match file {
            Some(path) => read_config_file(&path)?,
            None => BTreeMap::new(),
        };
        vars.extend(env);
        Self::resolve(vars)
    }

    /// Builds from explicit pairs (tests, embedding); `_FILE` indirection still applies.
    pub fn from_pairs<I, K, V>(pairs: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        Self::resolve(
            pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }

    fn resolve(mut vars: BTreeMap<String, String>) -> Result<Self, ConfigError> {
        let file_keys: Vec<String> = vars
            .keys()
            .filter(|k| k.ends_with("_FILE") && *k != "CONFIG_FILE")
            .cloned()
            .collect();
        for key in file_keys {
            let name = key.trim_end_matches("_FILE").to_string();
            // Only gatehouse's own variables: other programs' `*_FILE` settings are not ours.
            if name.is_empty() || !is_known_variable(&name) {
                continue;
            }
            let path = vars[&key].clone();
            let text = std::fs::read_to_string(&path).map_err(|e| {
                ConfigError(format!("{key}={path:?}: cannot read the file ({e}); point it at a readable file or set {name} directly"))
            })?;
            vars.insert(name, text.trim_end_matches(['\n', '\r']).to_string());
        }
        Ok(Self(vars))
    }

    /// The value with any Directus type prefix removed; empty strings count as unset.
    pub fn get(&self, name: &str) -> Option<&str> {
        let v = self.0.get(name)?.as_str();
        let v = [
            "string:", "number:", "boolean:", "json:", "array:", "regex:",
        ]
        .iter()
        .find_map(|p| v.strip_prefix(p))
        .unwrap_or(v);
        Some(v).filter(|v| !v.is_empty())
    }

    /// Every variable name set.
    fn names(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    fn string(&self, name: &str, default: &str) -> String {
        self.get(name).unwrap_or(default).to_string()
    }

    fn bool(&self, name: &str, default: bool) -> Result<bool, ConfigError> {
        match self.get(name).map(str::to_ascii_lowercase).as_deref() {
            None => Ok(default),
            Some("true" | "1" | "yes" | "on") => Ok(true),
            Some("false" | "0" | "no" | "off") => Ok(false),
            Some(v) => Err(bad(name, v, "use true or false")),
        }
    }

    fn number<T: std::str::FromStr>(&self, name: &str, default: T) -> Result<T, ConfigError> {
        match self.get(name) {
            None => Ok(default),
            Some(v) => v
                .trim()
                .parse()
                .map_err(|_| bad(name, v, "use a whole number")),
        }
    }

    fn positive_duration(&self, name: &str, default: &str) -> Result<Duration, ConfigError> {
        let d = self.duration(name, default)?;
        if d.is_zero() {
            return Err(bad(name, self.get(name).unwrap_or(""), "use at least 1ms"));
        }
        Ok(d)
    }

    fn duration(&self, name: &str, default: &str) -> Result<Duration, ConfigError> {
        let v = self.get(name).unwrap_or(default);
        parse_duration(v).ok_or_else(|| {
            bad(
                name,
                v,
                "use a duration such as 500ms, 10s, 15m, 7d, or a number of milliseconds",
            )
        })
    }
}

/// RFC 6265 §4.1.1: a cookie name is an RFC 9110 token; anything else would let the value
/// add attributes to every `Set-Cookie` (`;`), or split the pair (`=`).
fn is_cookie_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// A host name for the `Domain` attribute: labels of letters, digits and `-`, with an optional
/// leading `.` (which browsers ignore).
fn is_cookie_domain(domain: &str) -> bool {
    let host = domain.strip_prefix('.').unwrap_or(domain);
    !host.is_empty()
        && host.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// Prefixes of the variable families gatehouse reads (Directus's names).
const KNOWN_PREFIXES: &[&str] = &[
    "SERVER_",
    "AUTH_",
    "EMAIL_",
    "DB_",
    "HASH_",
    "RATE_LIMITER_",
    "REDIS",
    "ADMIN_",
    "PASSWORD_RESET_",
    "SESSION_",
    "REFRESH_TOKEN_",
    "ACCESS_TOKEN_",
    "GATEHOUSE_",
    "FORWARD_AUTH_",
    "METRICS_",
    "IP_",
    "LOG_",
];

fn is_known_variable(name: &str) -> bool {
    VARIABLES.iter().any(|(v, _)| *v == name)
        || email::VARIABLES.iter().any(|(v, _)| *v == name)
        || KNOWN_PREFIXES.iter().any(|p| name.starts_with(p))
}

fn read_config_file(path: &Path) -> Result<BTreeMap<String, String>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigError(format!(
            "CONFIG_PATH={}: cannot read the file ({e})",
            path.display()
        ))
    })?;
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    let flatten = |value: serde_json::Value| -> Result<BTreeMap<String, String>, ConfigError> {
        let obj = value.as_object().cloned().ok_or_else(|| {
            ConfigError(format!(
                "{}: the file must hold one object of NAME: value pairs",
                path.display()
            ))
        })?;
        Ok(obj
            .into_iter()
            .map(|(k, v)| {
                let s = match v {
                    serde_json::Value::String(s) => s,
                    serde_json::Value::Null => String::new(),
                    other => other.to_string(),
                };
                (k, s)
            })
            .collect())
    };
    match ext {
        "json" => flatten(
            serde_json::from_str(&text)
                .map_err(|e| ConfigError(format!("{}: not valid JSON ({e})", path.display())))?,
        ),
        "yaml" | "yml" => flatten(
            yaml_value(&text)
                .map_err(|e| ConfigError(format!("{}: not valid YAML ({e})", path.display())))?,
        ),
        _ => dotenvy::from_read_iter(text.as_bytes())
            .map(|r| {
                r.map_err(|e| {
                    ConfigError(format!("{}: not a valid .env file ({e})", path.display()))
                })
            })
            .collect(),
    }
}

/// The first YAML document as JSON, so YAML and JSON files flatten alike. Scalars keep the
/// type YAML 1.2 gives them; a real keeps its text (`1.50` stays `1.50`); an empty file is null.
fn yaml_value(text: &str) -> Result<serde_json::Value, String> {
    use serde_json::Value;
    use yaml_rust2::Yaml;
    fn convert(y: Yaml) -> Result<Value, String> {
        Ok(match y {
            Yaml::Null => Value::Null,
            Yaml::Boolean(b) => Value::Bool(b),
            Yaml::Integer(i) => Value::from(i),
            Yaml::Real(r) => Value::String(r),
            Yaml::String(s) => Value::String(s),
            Yaml::Array(a) => Value::Array(a.into_iter().map(convert).collect::<Result<_, _>>()?),
            Yaml::Hash(h) => {
                let mut map = serde_json::Map::new();
                for (k, v) in h {
                    let key = match k {
                        Yaml::String(s) | Yaml::Real(s) => s,
                        Yaml::Integer(i) => i.to_string(),
                        Yaml::Boolean(b) => b.to_string(),
                        _ => return Err("a key must be a plain name".into()),
                    };
                    map.insert(key, convert(v)?);
                }
                Value::Object(map)
            }
            // Aliases are resolved by the loader; a bad value is an unresolvable one.
            Yaml::Alias(_) | Yaml::BadValue => return Err("unsupported value".into()),
        })
    }
    let mut docs = yaml_rust2::YamlLoader::load_from_str(text).map_err(|e| e.to_string())?;
    if docs.is_empty() {
        return Ok(Value::Null);
    }
    convert(docs.swap_remove(0))
}

/// Parses Directus's duration forms (the `ms` package): a bare number is milliseconds,
/// otherwise a number followed by a unit (`ms`, `s`, `m`, `h`, `d`, `w`, `y`, or their words).
pub fn parse_duration(text: &str) -> Option<Duration> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().ok()?;
    let ms_per = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "ms" | "msec" | "msecs" | "millisecond" | "milliseconds" => 1.0,
        "s" | "sec" | "secs" | "second" | "seconds" => 1e3,
        "m" | "min" | "mins" | "minute" | "minutes" => 60e3,
        "h" | "hr" | "hrs" | "hour" | "hours" => 3600e3,
        "d" | "day" | "days" => 86400e3,
        "w" | "week" | "weeks" => 604800e3,
        "y" | "yr" | "yrs" | "year" | "years" => 31557600e3,
        _ => return None,
    };
    let ms = n * ms_per;
    (ms.is_finite() && (0.0..1e15).contains(&ms)).then(|| Duration::from_millis(ms as u64))
}

/// Parses byte sizes as the `bytes` package does (`1mb`, `512kb`, `100`).
pub fn parse_size(text: &str) -> Option<usize> {
    let t = text.trim().to_ascii_lowercase();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().ok()?;
    let mult = match unit.trim() {
        "" | "b" => 1.0,
        "kb" => 1024.0,
        "mb" => 1024.0 * 1024.0,
        "gb" => 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    let v = n * mult;
    (v.is_finite() && (1.0..1e12).contains(&v)).then_some(v as usize)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SameSite {
    Lax,
    Strict,
    None,
}

impl SameSite {
    pub fn as_str(self) -> &'static str {
        match self {
            SameSite::Lax => "Lax",
            SameSite::Strict => "Strict",
            SameSite::None => "None",
        }
    }
}

/// Attributes of one of the two auth cookies (Directus: `api/src/constants.ts`).
#[derive(Debug, Clone)]
pub struct CookieConfig {
    pub name: String,
    pub domain: Option<String>,
    pub secure: bool,
    pub same_site: SameSite,
    pub ttl: Duration,
}

#[derive(Clone)]
pub enum DbConfig {
    Sqlite { filename: PathBuf },
    Postgres { url: String },
}

/// The PostgreSQL URL may hold a password: never shown.
impl std::fmt::Debug for DbConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DbConfig::Sqlite { filename } => f
                .debug_struct("Sqlite")
                .field("filename", filename)
                .finish(),
            DbConfig::Postgres { .. } => f.debug_struct("Postgres").finish_non_exhaustive(),
        }
    }
}

/// argon2 parameters (Directus: `api/src/utils/generate-hash.ts`); Directus's defaults.
#[derive(Debug, Clone)]
pub struct HashConfig {
    pub memory_cost: u32,
    pub time_cost: u32,
    pub parallelism: u32,
    pub hash_length: usize,
    pub variant: argon2::Algorithm,
    /// How many hashes run at once (default: the core count).
    pub concurrency: usize,
    /// How long a login may wait for a hashing slot before 503.
    pub wait: Duration,
}

/// `Debug` is written by hand below so that secrets never reach a log line.
#[derive(Clone)]
pub struct Config {
    pub host: String,
    pub port: u16,
    pub public_url: String,
    /// `None` until start-up resolves it (generated and kept in the database when unset).
    pub secret: Option<String>,
    pub access_token_ttl: Duration,
    pub refresh_token_ttl: Duration,
    pub session_refresh_grace_period: Duration,
    pub refresh_cookie: CookieConfig,
    pub session_cookie: CookieConfig,
    pub login_stall_time: Duration,
    pub max_payload_size: usize,
    pub auth_disable_default: bool,
    pub db: DbConfig,
    pub db_max_connections: u32,
    /// How long a query waits for a pool connection before 503 `SERVICE_UNAVAILABLE`.
    pub db_acquire_timeout: Duration,
    /// How long a start waits for PostgreSQL to answer, retrying with back-off (0: one try).
    pub db_start_timeout: Duration,
    pub hash: HashConfig,
    pub admin_email: Option<String>,
    pub admin_password: Option<String>,
    pub admin_token: Option<String>,
    pub ip_trust_proxy: bool,
    pub ip_custom_header: Option<String>,
    pub log_level: String,
    pub log_style: String,
    /// How long a node may serve `/users/me` from memory (0 disables the cache).
    pub user_cache_ttl: Duration,
    /// Largest body on `/auth/*` (at most `max_payload_size`).
    pub auth_max_payload_size: usize,
    /// Client connections (src/http/serve.rs).
    pub server: ServerConfig,
    /// `CORS_*`; `None` when CORS is off (src/http/cors.rs).
    pub cors: Option<CorsConfig>,
    /// Reset, invite and registration links and stalls (`config/accounts.rs`).
    pub accounts: AccountsConfig,
    /// `RATE_LIMITER_*` and `REDIS*` (src/http/rate_limit.rs).
    pub rate_limit: RateLimitConfig,
    /// `EMAIL_*`, `RATE_LIMITER_EMAIL_*` (src/providers/mail.rs).
    pub email: EmailConfig,
    /// `FORWARD_AUTH_*` (src/http/forward_auth.rs).
    pub forward_auth: ForwardAuthConfig,
    /// `METRICS_ENABLED`: `/metrics` is served (else 404, as Directus does not mount it).
    pub metrics_enabled: bool,
    /// `METRICS_TOKENS`: tokens that read `/metrics` as `Authorization: Metrics <token>`.
    pub metrics_tokens: Vec<String>,
}

/// How client connections are held and let go (src/http/serve.rs).
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// A request's headers must be complete this long after the connection opened or the
    /// previous answer was written.
    pub headers_timeout: Duration,
    /// A connection with no request in flight that sends nothing for this long is closed;
    /// zero turns keep-alive off.
    pub keep_alive_timeout: Duration,
    /// How long a shutdown waits for requests in flight before it closes their connections.
    pub shutdown_timeout: Duration,
    /// At most this many client connections at once (kept below the open-file limit).
    pub max_connections: usize,
    /// A request body must arrive whole within this time after the handler starts reading it.
    pub request_body_timeout: Duration,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hidden = |v: &Option<String>| if v.is_some() { "[set]" } else { "[unset]" };
        f.debug_struct("Config")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("public_url", &self.public_url)
            .field("secret", &hidden(&self.secret))
            .field("admin_email", &self.admin_email)
            .field("admin_password", &hidden(&self.admin_password))
            .field("admin_token", &hidden(&self.admin_token))
            .field("access_token_ttl", &self.access_token_ttl)
            .field("refresh_token_ttl", &self.refresh_token_ttl)
            .field("db", &self.db)
            .field("cors", &self.cors)
            .field("rate_limit", &self.rate_limit)
            .field("email", &self.email)
            .finish_non_exhaustive()
    }
}

/// Every variable gatehouse reads, with its default; the README's table mirrors this list.
pub const VARIABLES: &[(&str, &str)] = &[
    ("CONFIG_PATH", ".env"),
    ("HOST", "0.0.0.0"),
    ("PORT", "8055"),
    ("PUBLIC_URL", "/"),
    ("SECRET", "generated once, kept in the database"),
    ("ACCESS_TOKEN_TTL", "15m"),
    ("REFRESH_TOKEN_TTL", "7d"),
    ("REFRESH_TOKEN_COOKIE_NAME", "directus_refresh_token"),
    ("REFRESH_TOKEN_COOKIE_DOMAIN", ""),
    ("REFRESH_TOKEN_COOKIE_SECURE", "false"),
    ("REFRESH_TOKEN_COOKIE_SAME_SITE", "lax"),
    ("SESSION_COOKIE_NAME", "directus_session_token"),
    ("SESSION_COOKIE_DOMAIN", ""),
    ("SESSION_COOKIE_SECURE", "false"),
    ("SESSION_COOKIE_SAME_SITE", "lax"),
    ("SESSION_COOKIE_TTL", "1d"),
    ("SESSION_REFRESH_GRACE_PERIOD", "10s"),
    ("LOGIN_STALL_TIME", "500"),
    ("MAX_PAYLOAD_SIZE", "1mb"),
    ("GATEHOUSE_AUTH_MAX_PAYLOAD_SIZE", "16kb"),
    ("SERVER_HEADERS_TIMEOUT", "10s"),
    ("SERVER_KEEP_ALIVE_TIMEOUT", "5s"),
    ("SERVER_SHUTDOWN_TIMEOUT", "10s"),
    ("GATEHOUSE_MAX_CONNECTIONS", "4096"),
    ("GATEHOUSE_REQUEST_BODY_TIMEOUT", "10s"),
    ("AUTH_DISABLE_DEFAULT", "false"),
    ("DB_CLIENT", "sqlite3"),
    ("DB_FILENAME", "./data/gatehouse.db"),
    ("DB_CONNECTION_STRING", ""),
    ("DB_HOST", "127.0.0.1"),
    ("DB_PORT", "5432"),
    ("DB_DATABASE", "directus"),
    ("DB_USER", "postgres"),
    ("DB_PASSWORD", ""),
    ("DB_POOL__MAX", "10"),
    ("DB_POOL__ACQUIRE_TIMEOUT_MILLIS", "5s"),
    ("HASH_MEMORY_COST", "65536"),
    ("HASH_TIME_COST", "3"),
    ("HASH_PARALLELISM", "4"),
    ("HASH_HASH_LENGTH", "32"),
    ("HASH_TYPE", "2"),
    ("GATEHOUSE_HASH_CONCURRENCY", "core count"),
    ("GATEHOUSE_HASH_WAIT", "10s"),
    ("GATEHOUSE_USER_CACHE_TTL", "1s"),
    ("ADMIN_EMAIL", "admin@example.com"),
    ("ADMIN_PASSWORD", "generated and printed once"),
    ("ADMIN_TOKEN", ""),
    ("IP_TRUST_PROXY", "false"),
    ("IP_CUSTOM_HEADER", ""),
    ("LOG_LEVEL", "info"),
    ("LOG_STYLE", "pretty"),
    ("CORS_ENABLED", "false"),
    ("CORS_ORIGIN", "false"),
    ("CORS_METHODS", "GET,POST,PATCH,DELETE"),
    ("CORS_ALLOWED_HEADERS", "Content-Type,Authorization"),
    ("CORS_EXPOSED_HEADERS", "Content-Range"),
    ("CORS_CREDENTIALS", "true"),
    ("CORS_MAX_AGE", "18000"),
    ("PASSWORD_RESET_URL_ALLOW_LIST", ""),
    ("USER_INVITE_URL_ALLOW_LIST", ""),
    ("USER_REGISTER_URL_ALLOW_LIST", ""),
    ("USER_INVITE_TOKEN_TTL", "7d"),
    ("EMAIL_VERIFICATION_TOKEN_TTL", "7d"),
    ("REGISTER_STALL_TIME", "750"),
    ("GATEHOUSE_PASSWORD_RESET_STALL_TIME", "500"),
    // Rate limiting (src/config/rate_limit.rs).
    ("RATE_LIMITER_ENABLED", "false"),
    ("RATE_LIMITER_POINTS", "50"),
    ("RATE_LIMITER_DURATION", "1"),
    ("RATE_LIMITER_GLOBAL_ENABLED", "false"),
    ("RATE_LIMITER_GLOBAL_POINTS", "1000"),
    ("RATE_LIMITER_GLOBAL_DURATION", "1"),
    ("RATE_LIMITER_REGISTRATION_ENABLED", "true"),
    ("RATE_LIMITER_REGISTRATION_POINTS", "5"),
    ("RATE_LIMITER_REGISTRATION_DURATION", "60"),
    ("RATE_LIMITER_STORE", "memory"),
    ("RATE_LIMITER_KEY_PREFIX", "rlflx"),
    ("REDIS", ""),
    ("REDIS_HOST", "127.0.0.1"),
    ("REDIS_PORT", "6379"),
    ("REDIS_USERNAME", ""),
    ("REDIS_PASSWORD", ""),
    ("REDIS_DB", "0"),
    ("FORWARD_AUTH_HEADER_PREFIX", "X-Gatehouse-"),
    ("FORWARD_AUTH_PUBLIC_PATHS", ""),
    ("GATEHOUSE_DB_START_TIMEOUT", "60s"),
    ("METRICS_ENABLED", "false"),
    ("METRICS_TOKENS", ""),
];

impl Config {
    pub fn from_process() -> Result<Self, ConfigError> {
        Self::from_vars(&Vars::from_process()?)
    }

    pub fn from_vars(v: &Vars) -> Result<Self, ConfigError> {
        let cookie = |prefix: &str,
                      default_name: &str,
                      ttl: Duration|
         -> Result<CookieConfig, ConfigError> {
            let ss_name = format!("{prefix}_SAME_SITE");
            let same_site = match v.get(&ss_name).map(str::to_ascii_lowercase).as_deref() {
                None | Some("lax") => SameSite::Lax,
                Some("strict") => SameSite::Strict,
                Some("none") => SameSite::None,
                Some(other) => return Err(bad(&ss_name, other, "use lax, strict or none")),
            };
            let secure = v.bool(&format!("{prefix}_SECURE"), false)?;
            if same_site == SameSite::None && !secure {
                return Err(ConfigError(format!(
                    "{ss_name}=none needs {prefix}_SECURE=true: browsers drop SameSite=None cookies without Secure"
                )));
            }
            let name_var = format!("{prefix}_NAME");
            let name = v.string(&name_var, default_name);
            if !is_cookie_name(&name) {
                return Err(bad(
                    &name_var,
                    &name,
                    "use letters, digits and !#$%&'*+-.^_`|~ only (no spaces, `;` or `=`)",
                ));
            }
            let domain_var = format!("{prefix}_DOMAIN");
            let domain = v.get(&domain_var).map(str::to_string);
            if let Some(d) = domain.as_deref().filter(|d| !is_cookie_domain(d)) {
                return Err(bad(
                    &domain_var,
                    d,
                    "use a host name of letters, digits, `-` and `.`, optionally with a leading `.`",
                ));
            }
            Ok(CookieConfig {
                name,
                domain,
                secure,
                same_site,
                ttl,
            })
        };
        let refresh_token_ttl = v.duration("REFRESH_TOKEN_TTL", "7d")?;
        let session_ttl = v.duration("SESSION_COOKIE_TTL", "1d")?;
        let access_token_ttl = v.duration("ACCESS_TOKEN_TTL", "15m")?;
        if access_token_ttl.as_secs() == 0 {
            return Err(bad(
                "ACCESS_TOKEN_TTL",
                v.get("ACCESS_TOKEN_TTL").unwrap_or(""),
                "use at least one second",
            ));
        }
        let db_acquire_timeout = v.duration("DB_POOL__ACQUIRE_TIMEOUT_MILLIS", "5s")?;
        if db_acquire_timeout.is_zero() {
            return Err(bad(
                "DB_POOL__ACQUIRE_TIMEOUT_MILLIS",
                v.get("DB_POOL__ACQUIRE_TIMEOUT_MILLIS").unwrap_or(""),
                "use a duration above zero, such as 5s or 5000",
            ));
        }
        let db = match v.get("DB_CLIENT").unwrap_or("sqlite3") {
            "sqlite3" | "sqlite" => DbConfig::Sqlite {
                filename: PathBuf::from(v.string("DB_FILENAME", "./data/gatehouse.db")),
            },
            "pg" | "postgres" | "postgresql" => {
                let url = match v.get("DB_CONNECTION_STRING") {
                    Some(url) => url.to_string(),
                    None => {
                        let enc = |s: String| {
                            percent_encoding::utf8_percent_encode(
                                &s,
                                percent_encoding::NON_ALPHANUMERIC,
                            )
                            .to_string()
                        };
                        let user = enc(v.string("DB_USER", "postgres"));
                        let pass = v
                            .get("DB_PASSWORD")
                            .map(|p| format!(":{}", enc(p.to_string())))
                            .unwrap_or_default();
                        format!(
                            "postgres://{user}{pass}@{}:{}/{}",
                            v.string("DB_HOST", "127.0.0.1"),
                            v.number::<u16>("DB_PORT", 5432)?,
                            enc(v.string("DB_DATABASE", "directus"))
                        )
                    }
                };
                DbConfig::Postgres { url }
            }
            other => return Err(bad("DB_CLIENT", other, "use sqlite3 (default) or pg")),
        };
        let variant = match v.number::<u8>("HASH_TYPE", 2)? {
            0 => argon2::Algorithm::Argon2d,
            1 => argon2::Algorithm::Argon2i,
            2 => argon2::Algorithm::Argon2id,
            n => {
                return Err(bad(
                    "HASH_TYPE",
                    &n.to_string(),
                    "use 0 (argon2d), 1 (argon2i) or 2 (argon2id)",
                ))
            }
        };
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        let hash = HashConfig {
            memory_cost: v.number("HASH_MEMORY_COST", 65536)?,
            time_cost: v.number("HASH_TIME_COST", 3)?,
            parallelism: v.number("HASH_PARALLELISM", 4)?,
            hash_length: v.number("HASH_HASH_LENGTH", 32)?,
            variant,
            concurrency: v.number("GATEHOUSE_HASH_CONCURRENCY", cores)?.max(1),
            wait: v.duration("GATEHOUSE_HASH_WAIT", "10s")?,
        };
        argon2::Params::new(
            hash.memory_cost,
            hash.time_cost,
            hash.parallelism,
            Some(hash.hash_length),
        )
        .map_err(|e| {
            ConfigError(format!(
                "HASH_* settings are not valid argon2 parameters: {e}"
            ))
        })?;
        if hash.memory_cost > 1024 * 1024 {
            return Err(bad(
                "HASH_MEMORY_COST",
                &hash.memory_cost.to_string(),
                "use at most 1048576 (KiB, 1 GiB)",
            ));
        }
        let max_payload_size = {
            let raw = v.get("MAX_PAYLOAD_SIZE").unwrap_or("1mb");
            parse_size(raw).ok_or_else(|| {
                bad(
                    "MAX_PAYLOAD_SIZE",
                    raw,
                    "use a size such as 1mb, 512kb or a number of bytes",
                )
            })?
        };
        let auth_max_payload_size = {
            let raw = v.get("GATEHOUSE_AUTH_MAX_PAYLOAD_SIZE").unwrap_or("16kb");
            parse_size(raw)
                .ok_or_else(|| {
                    bad(
                        "GATEHOUSE_AUTH_MAX_PAYLOAD_SIZE",
                        raw,
                        "use a size such as 16kb or a number of bytes",
                    )
                })?
                .min(max_payload_size)
        };
        let server = ServerConfig {
            headers_timeout: v.positive_duration("SERVER_HEADERS_TIMEOUT", "10s")?,
            keep_alive_timeout: v.duration("SERVER_KEEP_ALIVE_TIMEOUT", "5s")?,
            shutdown_timeout: v.duration("SERVER_SHUTDOWN_TIMEOUT", "10s")?,
            max_connections: match v.number::<usize>("GATEHOUSE_MAX_CONNECTIONS", 4096)? {
                0 => return Err(bad("GATEHOUSE_MAX_CONNECTIONS", "0", "use at least 1")),
                n => n,
            },
            request_body_timeout: v.positive_duration("GATEHOUSE_REQUEST_BODY_TIMEOUT", "10s")?,
        };
        let public_url = v.string("PUBLIC_URL", "/");
        let secret = v.get("SECRET").map(str::to_string);
        if let Some(s) = &secret {
            if s.len() < 16 {
                return Err(ConfigError(
                    "SECRET is shorter than 16 characters: use a long random value (e.g. `openssl rand -hex 32`) or leave it unset to have one generated".into(),
                ));
            }
        }
        if let Some(t) = v.get("ADMIN_TOKEN") {
            if let Err(rule) = crate::tokens::check_static_token(t) {
                return Err(ConfigError(format!(
                    "ADMIN_TOKEN {rule}: use a long random value"
                )));
            }
        }
        let log_level = v.string("LOG_LEVEL", "info").to_ascii_lowercase();
        if !["trace", "debug", "info", "warn", "error", "fatal", "silent"]
            .contains(&log_level.as_str())
        {
            return Err(bad(
                "LOG_LEVEL",
                &log_level,
                "use trace, debug, info, warn, error, fatal or silent",
            ));
        }
        Ok(Config {
            host: v.string("HOST", "0.0.0.0"),
            port: v.number("PORT", 8055)?,
            public_url,
            secret,
            access_token_ttl,
            refresh_token_ttl,
            session_refresh_grace_period: v.duration("SESSION_REFRESH_GRACE_PERIOD", "10s")?,
            refresh_cookie: cookie(
                "REFRESH_TOKEN_COOKIE",
                "directus_refresh_token",
                refresh_token_ttl,
            )?,
            session_cookie: cookie("SESSION_COOKIE", "directus_session_token", session_ttl)?,
            login_stall_time: v.duration("LOGIN_STALL_TIME", "500")?,
            max_payload_size,
            auth_disable_default: v.bool("AUTH_DISABLE_DEFAULT", false)?,
            db,
            db_max_connections: v.number("DB_POOL__MAX", 10)?.max(1),
            db_acquire_timeout,
            db_start_timeout: v.duration("GATEHOUSE_DB_START_TIMEOUT", "60s")?,
            hash,
            admin_email: v.get("ADMIN_EMAIL").map(str::to_string),
            admin_password: v.get("ADMIN_PASSWORD").map(str::to_string),
            admin_token: v.get("ADMIN_TOKEN").map(str::to_string),
            ip_trust_proxy: v.bool("IP_TRUST_PROXY", false)?,
            ip_custom_header: v
                .get("IP_CUSTOM_HEADER")
                .filter(|h| *h != "false")
                .map(str::to_ascii_lowercase),
            log_level,
            log_style: v.string("LOG_STYLE", "pretty"),
            user_cache_ttl: v.duration("GATEHOUSE_USER_CACHE_TTL", "1s")?,
            auth_max_payload_size,
            server,
            cors: cors::read(v)?,
            accounts: accounts::read(v)?,
            rate_limit: rate_limit::read(v)?,
            email: email::read(v)?,
            forward_auth: forward_auth::read(v)?,
            metrics_enabled: v.bool("METRICS_ENABLED", false)?,
            metrics_tokens: cors::list(v, "METRICS_TOKENS", "")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_follow_the_ms_package() {
        assert_eq!(parse_duration("15m"), Some(Duration::from_secs(900)));
        assert_eq!(parse_duration("7d"), Some(Duration::from_secs(604800)));
        assert_eq!(parse_duration("500"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5h"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("10 seconds"), Some(Duration::from_secs(10)));
        assert_eq!(parse_duration("abc"), None);
        assert_eq!(parse_duration("-5m"), None);
    }

    #[test]
    fn sizes_follow_the_bytes_package() {
        assert_eq!(parse_size("1mb"), Some(1 << 20));
        assert_eq!(parse_size("512KB"), Some(512 << 10));
        assert_eq!(parse_size("100"), Some(100));
        assert_eq!(parse_size("lots"), None);
    }

    #[test]
    fn errors_name_the_variable() {
        let v = Vars::from_pairs([("ACCESS_TOKEN_TTL", "soon")]).unwrap();
        let err = Config::from_vars(&v).unwrap_err().to_string();
        assert!(err.contains("ACCESS_TOKEN_TTL"), "{err}");
        let v = Vars::from_pairs([("DB_CLIENT", "mysql")]).unwrap();
        assert!(Config::from_vars(&v)
            .unwrap_err()
            .to_string()
            .contains("DB_CLIENT"));
    }

    #[test]
    fn debug_output_hides_secrets() {
        let v = Vars::from_pairs([
            ("SECRET", "super-secret-signing-key"),
            ("ADMIN_PASSWORD", "hunter2-hunter2"),
            ("DB_CLIENT", "pg"),
            ("DB_CONNECTION_STRING", "postgres://u:dbpass@h/db"),
        ])
        .unwrap();
        let text = format!("{:?}", Config::from_vars(&v).unwrap());
        for secret in ["super-secret-signing-key", "hunter2-hunter2", "dbpass"] {
            assert!(!text.contains(secret), "{text}");
        }
        assert!(text.contains("[set]"), "{text}");
    }

    #[test]
    fn weak_admin_tokens_are_refused() {
        for bad in ["short", "a.b.c"] {
            let v = Vars::from_pairs([("ADMIN_TOKEN", bad)]).unwrap();
            assert!(
                Config::from_vars(&v)
                    .unwrap_err()
                    .to_string()
                    .contains("ADMIN_TOKEN"),
                "{bad}"
            );
        }
        let v = Vars::from_pairs([("ADMIN_TOKEN", "a-long-static-token")]).unwrap();
        assert_eq!(
            Config::from_vars(&v).unwrap().admin_token.as_deref(),
            Some("a-long-static-token")
        );
    }

    #[test]
    fn cookie_names_and_domains_cannot_add_attributes() {
        for (var, value) in [
            ("REFRESH_TOKEN_COOKIE_NAME", "a; Domain=evil.example"),
            ("REFRESH_TOKEN_COOKIE_NAME", "a=b"),
            ("SESSION_COOKIE_NAME", "two words"),
            ("SESSION_COOKIE_NAME", "tab\there"),
            ("SESSION_COOKIE_NAME", "n\u{7f}"),
            ("SESSION_COOKIE_NAME", "caf\u{e9}"),
            ("SESSION_COOKIE_NAME", "(paren)"),
            ("REFRESH_TOKEN_COOKIE_DOMAIN", "example.com; SameSite=None"),
            ("REFRESH_TOKEN_COOKIE_DOMAIN", "exa mple.com"),
            ("SESSION_COOKIE_DOMAIN", "example.com\r\nX: y"),
            ("SESSION_COOKIE_DOMAIN", "a..b"),
            ("SESSION_COOKIE_DOMAIN", "."),
            ("SESSION_COOKIE_DOMAIN", "ex_ample.com"),
        ] {
            let v = Vars::from_pairs([(var, value)]).unwrap();
            let err = Config::from_vars(&v).unwrap_err().to_string();
            assert!(err.contains(var), "{var}={value:?}: {err}");
        }
        let v = Vars::from_pairs([
            ("REFRESH_TOKEN_COOKIE_NAME", "__Host-gh_refresh"),
            ("REFRESH_TOKEN_COOKIE_DOMAIN", ".example.com"),
            ("SESSION_COOKIE_NAME", "gh.session~1"),
            ("SESSION_COOKIE_DOMAIN", "auth-1.example.com"),
        ])
        .unwrap();
        let c = Config::from_vars(&v).unwrap();
        assert_eq!(c.refresh_cookie.name, "__Host-gh_refresh");
        assert_eq!(c.refresh_cookie.domain.as_deref(), Some(".example.com"));
        assert_eq!(c.session_cookie.name, "gh.session~1");
        assert_eq!(
            c.session_cookie.domain.as_deref(),
            Some("auth-1.example.com")
        );
    }

    #[test]
    fn connection_settings_have_defaults_and_bounds() {
        let c = Config::from_vars(&Vars::from_pairs([("PORT", "1")]).unwrap()).unwrap();
        assert_eq!(c.server.headers_timeout, Duration::from_secs(10));
        assert_eq!(c.server.keep_alive_timeout, Duration::from_secs(5));
        assert_eq!(c.server.shutdown_timeout, Duration::from_secs(10));
        assert_eq!(c.server.max_connections, 4096);
        assert_eq!(c.server.request_body_timeout, Duration::from_secs(10));
        assert_eq!(c.auth_max_payload_size, 16 << 10);
        // Directus's values are milliseconds.
        let v = Vars::from_pairs([
            ("SERVER_HEADERS_TIMEOUT", "1500"),
            ("SERVER_KEEP_ALIVE_TIMEOUT", "0"),
            ("MAX_PAYLOAD_SIZE", "8kb"),
        ])
        .unwrap();
        let c = Config::from_vars(&v).unwrap();
        assert_eq!(c.server.headers_timeout, Duration::from_millis(1500));
        assert!(c.server.keep_alive_timeout.is_zero());
        // The auth limit never exceeds the general one.
        assert_eq!(c.auth_max_payload_size, 8 << 10);
        for (var, value) in [
            ("SERVER_HEADERS_TIMEOUT", "0"),
            ("GATEHOUSE_REQUEST_BODY_TIMEOUT", "0"),
            ("GATEHOUSE_MAX_CONNECTIONS", "0"),
            ("GATEHOUSE_MAX_CONNECTIONS", "many"),
            ("SERVER_SHUTDOWN_TIMEOUT", "soon"),
            ("GATEHOUSE_AUTH_MAX_PAYLOAD_SIZE", "big"),
        ] {
            let v = Vars::from_pairs([(var, value)]).unwrap();
            let err = Config::from_vars(&v).unwrap_err().to_string();
            assert!(err.contains(var), "{var}={value:?}: {err}");
        }
    }

    #[test]
    fn file_indirection_and_type_prefixes() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("secret");
        std::fs::write(&p, "a-very-long-secret-value\n").unwrap();
        let v = Vars::from_pairs([
            ("SECRET_FILE", p.to_str().unwrap()),
            ("PORT", "number:9000"),
            ("PUBLIC_URL", "string:https://a.example,b"),
        ])
        .unwrap();
        let c = Config::from_vars(&v).unwrap();
        assert_eq!(c.secret.as_deref(), Some("a-very-long-secret-value"));
        assert_eq!(c.port, 9000);
        assert_eq!(c.public_url, "https://a.example,b");
    }

    #[test]
    fn config_files_in_three_formats() {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in [
            ("c.env", "PORT=9001\n# comment\nLOG_LEVEL=debug\n"),
            ("c.json", r#"{"PORT": 9001, "LOG_LEVEL": "debug"}"#),
            ("c.yaml", "PORT: 9001\nLOG_LEVEL: debug\n"),
        ] {
            let p = dir.path().join(name);
            std::fs::write(&p, text).unwrap();
            let vars = read_config_file(&p).unwrap();
            let c = Config::from_vars(&Vars::from_pairs(vars).unwrap()).unwrap();
            assert_eq!((c.port, c.log_level.as_str()), (9001, "debug"), "{name}");
        }
    }

    #[test]
    fn yaml_scalars_flatten_as_json_does() {
        let v = yaml_value(
            "# comment\nA: 'quoted: yes'\nB: true\nC: ~\nD: 1.50\nE: [1, two]\nF: \"\"\n",
        )
        .unwrap();
        assert_eq!(
            v,
            serde_json::json!({"A": "quoted: yes", "B": true, "C": null, "D": "1.50", "E": [1, "two"], "F": ""})
        );
        assert_eq!(yaml_value("").unwrap(), serde_json::Value::Null);
        assert!(yaml_value("A: [unclosed").is_err());
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("list.yml");
        std::fs::write(&p, "- PORT\n").unwrap();
        let e = read_config_file(&p).unwrap_err().to_string();
        assert!(e.contains("one object of NAME: value pairs"), "{e}");
    }
}
