//! The `RATE_LIMITER_*` and `REDIS*` variables: the per-IP, global and registration request
//! limiters (Directus: `api/src/middleware/rate-limiter-ip.ts`, `rate-limiter-global.ts`,
//! `rate-limiter-registration.ts`, defaults in `packages/env/src/constants/defaults.ts`) and
//! where their counts are kept. The login-attempt counter is not here: it lives in the database
//! (src/auth/session.rs).

use std::time::Duration;

use super::{bad, ConfigError, Vars};

/// One limiter: `points` requests per `duration`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub points: u32,
    /// Whole seconds, as rate-limiter-flexible reads `duration`.
    pub duration: Duration,
}

/// Where the limiters keep their counts.
#[derive(Clone, PartialEq, Eq)]
pub enum RateLimitStore {
    /// Per process (`RATE_LIMITER_STORE=memory`, the default).
    Memory,
    /// Shared by every node (`RATE_LIMITER_STORE=redis`): a `redis://` URL built from `REDIS`
    /// or `REDIS_HOST`/`REDIS_PORT`/`REDIS_USERNAME`/`REDIS_PASSWORD`/`REDIS_DB`.
    Redis { url: String },
}

/// The URL may carry a password: never shown.
impl std::fmt::Debug for RateLimitStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RateLimitStore::Memory => f.write_str("Memory"),
            RateLimitStore::Redis { .. } => f.write_str("Redis { url: [set] }"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct RateLimitConfig {
    /// `RATE_LIMITER_ENABLED`: every request, per client IP; `None` when off.
    pub ip: Option<Limit>,
    /// `RATE_LIMITER_GLOBAL_ENABLED`: every request, one bucket for all clients.
    pub global: Option<Limit>,
    /// `RATE_LIMITER_REGISTRATION_ENABLED` (on by default): `POST /users/register`, per IP.
    pub registration: Option<Limit>,
    pub store: RateLimitStore,
    /// `RATE_LIMITER_KEY_PREFIX` (rate-limiter-flexible's `keyPrefix`, default `rlflx`): Redis
    /// keys are `<prefix>:<ip>`, `<prefix>:global-rate-limit` and `<prefix>:registration:<ip>`.
    pub key_prefix: String,
}

fn limit(
    v: &Vars,
    prefix: &str,
    enabled: bool,
    points: u32,
    duration: u64,
) -> Result<Option<Limit>, ConfigError> {
    if !v.bool(&format!("{prefix}_ENABLED"), enabled)? {
        return Ok(None);
    }
    let points_var = format!("{prefix}_POINTS");
    let points = v.number::<u32>(&points_var, points)?;
    if points == 0 {
        return Err(bad(&points_var, "0", "use at least 1"));
    }
    let duration_var = format!("{prefix}_DURATION");
    let duration = v.number::<u64>(&duration_var, duration)?;
    // rate-limiter-flexible reads 0 as "never expires", which would lock a client out for the
    // life of the process; gatehouse refuses it (docs/compatibility.md).
    if duration == 0 || duration > 366 * 86400 {
        return Err(bad(
            &duration_var,
            &duration.to_string(),
            "use a whole number of seconds from 1 to 31622400",
        ));
    }
    Ok(Some(Limit {
        points,
        duration: Duration::from_secs(duration),
    }))
}

fn redis_url(v: &Vars) -> Result<String, ConfigError> {
    let url = match v.get("REDIS") {
        Some(url) => url.to_string(),
        None => {
            let enc = |s: &str| {
                percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC)
                    .to_string()
            };
            let user = v.get("REDIS_USERNAME").map(enc).unwrap_or_default();
            let auth = match v.get("REDIS_PASSWORD") {
                Some(p) => format!("{user}:{}@", enc(p)),
                None if !user.is_empty() => format!("{user}@"),
                None => String::new(),
            };
            let host = v.get("REDIS_HOST").unwrap_or("127.0.0.1");
            let host = if host.contains(':') && !host.starts_with('[') {
                format!("[{host}]")
            } else {
                host.to_string()
            };
            format!(
                "redis://{auth}{host}:{}/{}",
                v.number::<u16>("REDIS_PORT", 6379)?,
                v.number::<u32>("REDIS_DB", 0)?
            )
        }
    };
    // SECURITY: the value may hold a password, so the error never repeats it.
    if redis::Client::open(url.as_str()).is_err() {
        let var = if v.get("REDIS").is_some() {
            "REDIS"
        } else {
            "REDIS_HOST/REDIS_PORT/REDIS_DB"
        };
        return Err(ConfigError(format!(
            "{var} does not make a valid Redis address: use redis://[user:password@]host:port[/db]"
        )));
    }
    Ok(url)
}

pub fn read(v: &Vars) -> Result<RateLimitConfig, ConfigError> {
    let ip = limit(v, "RATE_LIMITER", false, 50, 1)?;
    let global = limit(v, "RATE_LIMITER_GLOBAL", false, 1000, 1)?;
    let registration = limit(v, "RATE_LIMITER_REGISTRATION", true, 5, 60)?;
    // Directus exits at start on both (`api/src/middleware/rate-limiter-global.ts`).
    if let Some(g) = global {
        let Some(i) = ip else {
            return Err(ConfigError(
                "RATE_LIMITER_GLOBAL_ENABLED=true needs the per-IP limiter as well: set RATE_LIMITER_ENABLED=true (the IP based rate limiter needs to be enabled when using the global rate limiter)".into(),
            ));
        };
        let per_second = |l: Limit| f64::from(l.points) / l.duration.as_secs().max(1) as f64;
        if per_second(g) <= per_second(i) {
            return Err(ConfigError(format!(
                "the global rate limiter needs to allow more requests per second than the IP based one: RATE_LIMITER_GLOBAL_POINTS/RATE_LIMITER_GLOBAL_DURATION is {}/{} s, RATE_LIMITER_POINTS/RATE_LIMITER_DURATION is {}/{} s; raise the global points or lower the per-IP ones",
                g.points,
                g.duration.as_secs(),
                i.points,
                i.duration.as_secs()
            )));
        }
    }
    let store = match v
        .get("RATE_LIMITER_STORE")
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None | Some("memory") => RateLimitStore::Memory,
        Some("redis") => RateLimitStore::Redis { url: redis_url(v)? },
        Some(other) => return Err(bad("RATE_LIMITER_STORE", other, "use memory or redis")),
    };
    let key_prefix = v.string("RATE_LIMITER_KEY_PREFIX", "rlflx");
    if key_prefix.len() > 128 {
        return Err(bad(
            "RATE_LIMITER_KEY_PREFIX",
            &key_prefix,
            "use at most 128 characters",
        ));
    }
    Ok(RateLimitConfig {
        ip,
        global,
        registration,
        store,
        key_prefix,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn read_pairs(pairs: &[(&str, &str)]) -> Result<RateLimitConfig, ConfigError> {
        read(&Vars::from_pairs(pairs.iter().copied()).unwrap())
    }

    #[test]
    fn defaults_are_directus_defaults() {
        let c = read_pairs(&[]).unwrap();
        assert_eq!(c.ip, None);
        assert_eq!(c.global, None);
        assert_eq!(
            c.registration,
            Some(Limit {
                points: 5,
                duration: Duration::from_secs(60)
            })
        );
        assert_eq!(c.store, RateLimitStore::Memory);
        assert_eq!(c.key_prefix, "rlflx");
        let c = read_pairs(&[
            ("RATE_LIMITER_ENABLED", "true"),
            ("RATE_LIMITER_GLOBAL_ENABLED", "true"),
        ])
        .unwrap();
        assert_eq!(
            (c.ip.unwrap().points, c.ip.unwrap().duration.as_secs()),
            (50, 1)
        );
        assert_eq!(c.global.unwrap().points, 1000);
    }

    #[test]
    fn global_needs_the_ip_limiter_and_a_higher_rate() {
        let e = read_pairs(&[("RATE_LIMITER_GLOBAL_ENABLED", "true")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("RATE_LIMITER_ENABLED=true"), "{e}");
        for (gp, gd) in [("50", "1"), ("100", "10")] {
            let e = read_pairs(&[
                ("RATE_LIMITER_ENABLED", "true"),
                ("RATE_LIMITER_GLOBAL_ENABLED", "true"),
                ("RATE_LIMITER_GLOBAL_POINTS", gp),
                ("RATE_LIMITER_GLOBAL_DURATION", gd),
            ])
            .unwrap_err()
            .to_string();
            assert!(e.contains("more requests per second"), "{e}");
        }
        assert!(read_pairs(&[
            ("RATE_LIMITER_ENABLED", "true"),
            ("RATE_LIMITER_GLOBAL_ENABLED", "true"),
            ("RATE_LIMITER_GLOBAL_POINTS", "51"),
        ])
        .is_ok());
    }

    #[test]
    fn bad_values_name_the_variable() {
        for (var, value) in [
            ("RATE_LIMITER_POINTS", "0"),
            ("RATE_LIMITER_DURATION", "0"),
            ("RATE_LIMITER_DURATION", "1s"),
            ("RATE_LIMITER_STORE", "memcached"),
        ] {
            let e = read_pairs(&[("RATE_LIMITER_ENABLED", "true"), (var, value)])
                .unwrap_err()
                .to_string();
            assert!(e.contains(var), "{var}={value}: {e}");
        }
    }

    #[test]
    fn redis_address_from_parts_hides_the_password() {
        let c = read_pairs(&[
            ("RATE_LIMITER_STORE", "redis"),
            ("REDIS_HOST", "cache.internal"),
            ("REDIS_PORT", "6380"),
            ("REDIS_USERNAME", "gate"),
            ("REDIS_PASSWORD", "p@ss word"),
        ])
        .unwrap();
        let RateLimitStore::Redis { url } = &c.store else {
            panic!("redis store");
        };
        assert_eq!(url, "redis://gate:p%40ss%20word@cache.internal:6380/0");
        assert!(!format!("{c:?}").contains("word"));
        let c = read_pairs(&[
            ("RATE_LIMITER_STORE", "redis"),
            ("REDIS", "redis://:secret@10.0.0.1:6379/2"),
        ])
        .unwrap();
        assert!(matches!(c.store, RateLimitStore::Redis { ref url } if url.ends_with("/2")));
        let e = read_pairs(&[
            ("RATE_LIMITER_STORE", "redis"),
            ("REDIS", "http://:hunter2@x"),
        ])
        .unwrap_err()
        .to_string();
        assert!(e.contains("REDIS") && !e.contains("hunter2"), "{e}");
    }
}
