//! Filter values as Directus's JavaScript reads them: `Number(…)` and `String(…)` of a number,
//! `new Date(…)` of a string, and `$NOW(<adjustment>)` (`packages/utils/shared/adjust-date.ts`,
//! which runs date-fns on the server's local time; gatehouse takes UTC).

use std::sync::LazyLock;

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, TimeZone, Utc};
use regex::Regex;
use serde_json::Value;

/// A filter value once its dynamic variables are resolved and `parseFilter`'s coercion ran
/// (`"true"`, `"false"`, `"null"` and `"NULL"` become `true`, `false` and `null`).
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Lit {
    Null,
    Bool(bool),
    Num(f64),
    Str(String),
    /// `$NOW`: a JavaScript `Date` in Directus.
    Date(DateTime<Utc>),
}

impl Lit {
    /// A JSON scalar after `parseFilter`'s coercion (`packages/utils/shared/parse-filter.ts`).
    pub(super) fn from_scalar(v: &Value) -> Option<Lit> {
        Some(match v {
            Value::Null => Lit::Null,
            Value::Bool(b) => Lit::Bool(*b),
            Value::Number(n) => Lit::Num(n.as_f64()?),
            Value::String(s) => match s.as_str() {
                "true" => Lit::Bool(true),
                "false" => Lit::Bool(false),
                "null" | "NULL" => Lit::Null,
                _ => Lit::Str(s.clone()),
            },
            Value::Array(_) | Value::Object(_) => return None,
        })
    }

    /// JavaScript's `Number(value)`.
    pub(super) fn to_number(&self) -> f64 {
        match self {
            Lit::Null => 0.0,
            Lit::Bool(b) => f64::from(u8::from(*b)),
            Lit::Num(n) => *n,
            Lit::Str(s) => js_number(s),
            Lit::Date(d) => d.timestamp_millis() as f64,
        }
    }

    /// How Directus's error extensions print the value (`JSON.stringify`; a `Date` is its ISO
    /// string, a non-finite number `null`).
    pub(super) fn to_json(&self) -> Value {
        match self {
            Lit::Null => Value::Null,
            Lit::Bool(b) => Value::Bool(*b),
            Lit::Num(n) => num_json(*n),
            Lit::Str(s) => Value::String(s.clone()),
            Lit::Date(d) => Value::String(iso(*d)),
        }
    }
}

/// A number as JSON: integral values without a fraction, as JavaScript prints them.
pub(super) fn num_json(n: f64) -> Value {
    const SAFE: f64 = 9_007_199_254_740_991.0;
    if n.fract() == 0.0 && n.abs() <= SAFE {
        Value::from(n as i64)
    } else {
        serde_json::Number::from_f64(n).map_or(Value::Null, Value::Number)
    }
}

/// `Date.prototype.toISOString`.
pub(super) fn iso(d: DateTime<Utc>) -> String {
    d.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// JavaScript's `Number(string)`: surrounding white space ignored, `""` is 0, `0x`/`0o`/`0b`
/// integers, `Infinity`; anything else NaN. (Rust's `f64::from_str` also takes `inf` and `nan`.)
pub(super) fn js_number(s: &str) -> f64 {
    let t = s.trim_matches(|c: char| c.is_whitespace() || c == '\u{feff}');
    if t.is_empty() {
        return 0.0;
    }
    for (prefix, radix) in [
        ("0x", 16),
        ("0X", 16),
        ("0o", 8),
        ("0O", 8),
        ("0b", 2),
        ("0B", 2),
    ] {
        if let Some(digits) = t.strip_prefix(prefix) {
            if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
                return f64::NAN;
            }
            return digits
                .chars()
                .filter_map(|c| c.to_digit(radix))
                .fold(0.0, |acc, d| acc * f64::from(radix) + f64::from(d));
        }
    }
    let unsigned = t.strip_prefix(['+', '-']).unwrap_or(t);
    if unsigned == "Infinity" {
        return if t.starts_with('-') {
            f64::NEG_INFINITY
        } else {
            f64::INFINITY
        };
    }
    if is_decimal_literal(unsigned) {
        t.parse().unwrap_or(f64::NAN)
    } else {
        f64::NAN
    }
}

/// `digits[.digits][e[+-]digits]` or `.digits[…]`, the unsigned StrDecimalLiteral.
fn is_decimal_literal(s: &str) -> bool {
    let (mantissa, exponent) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = |p: &str| p.chars().all(|c| c.is_ascii_digit());
    let mantissa_ok = digits(int) && digits(frac) && !(int.is_empty() && frac.is_empty());
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['+', '-']).unwrap_or(e);
        !e.is_empty() && digits(e)
    });
    mantissa_ok && exponent_ok
}

/// JavaScript's `String(number)` (Number::toString): exponent form from 1e21 and below 1e-6.
pub(super) fn js_number_string(n: f64) -> String {
    if n.is_nan() {
        return "NaN".into();
    }
    if n.is_infinite() {
        return if n > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    if n == 0.0 {
        return "0".into();
    }
    // Rust's `{:e}` gives the shortest digits that round-trip, as JavaScript does.
    let sci = format!("{:e}", n.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let k = digits.len() as i64;
    let point = exp.parse::<i64>().unwrap_or(0) + 1;
    let body = if k <= point && point <= 21 {
        format!("{digits}{}", "0".repeat((point - k) as usize))
    } else if 0 < point && point <= 21 {
        format!(
            "{}.{}",
            &digits[..point as usize],
            &digits[point as usize..]
        )
    } else if -6 < point && point <= 0 {
        format!("0.{}{digits}", "0".repeat((-point) as usize))
    } else {
        let e = point - 1;
        let sign = if e < 0 { '-' } else { '+' };
        match digits.split_at(1) {
            (first, "") => format!("{first}e{sign}{}", e.abs()),
            (first, rest) => format!("{first}.{rest}e{sign}{}", e.abs()),
        }
    };
    if n < 0.0 {
        format!("-{body}")
    } else {
        body
    }
}

/// `new Date(string)` for the ISO forms JavaScript and PostgreSQL both read:
/// `YYYY[-MM[-DD]]`, then optionally `T` (or a space) and `HH:mm[:ss[.fff…]]`, then
/// optionally `Z` or `±HH:mm`. A bare date is midnight UTC; a date-time without an offset is
/// local time in JavaScript and the session's zone in PostgreSQL; gatehouse reads it as UTC.
/// As V8 does, a day up to 31 rolls over into the next month (`2026-02-30` is 2 March).
pub(super) fn parse_date(s: &str) -> Option<DateTime<Utc>> {
    parse_iso(s, false)
}

/// A date the database reads: as `parse_date`, but with the day (`2026` and `2026-01` are
/// no dates to PostgreSQL) and within its month (PostgreSQL refuses `2026-02-30`).
pub(super) fn parse_sql_date(s: &str) -> Option<DateTime<Utc>> {
    parse_iso(s, true)
}

fn parse_iso(s: &str, strict: bool) -> Option<DateTime<Utc>> {
    static ISO: LazyLock<Option<Regex>> = LazyLock::new(|| {
        Regex::new(concat!(
            r"^([+-][0-9]{6}|[0-9]{4})(?:-([0-9]{2})(?:-([0-9]{2}))?)?",
            r"(?:[Tt ]([0-9]{2}):([0-9]{2})(?::([0-9]{2})(?:\.([0-9]+))?)?",
            r"(Z|z|[+-][0-9]{2}:?[0-9]{2})?)?$"
        ))
        .ok()
    });
    let caps = ISO.as_ref()?.captures(s.trim())?;
    let num = |i: usize| caps.get(i).map(|m| m.as_str().parse::<i64>());
    let year: i32 = caps.get(1)?.as_str().parse().ok()?;
    let month = num(2).transpose().ok()?.unwrap_or(1);
    let day = num(3).transpose().ok()?.unwrap_or(1);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    if strict
        && (caps.get(3).is_none()
            || NaiveDate::from_ymd_opt(year, month as u32, day as u32).is_none())
    {
        return None;
    }
    let (hour, minute) = (
        num(4).transpose().ok()?.unwrap_or(0),
        num(5).transpose().ok()?.unwrap_or(0),
    );
    let second = num(6).transpose().ok()?.unwrap_or(0);
    // `24:00[:00[.000]]` is the end of the day; other fields are bounded.
    let end_of_day = hour == 24 && minute == 0 && second == 0;
    if (hour > 23 && !end_of_day) || minute > 59 || second > 59 {
        return None;
    }
    let millis: i64 = caps.get(7).map_or(0, |m| {
        let f = m.as_str();
        let f3: String = f.chars().chain("00".chars()).take(3).collect();
        f3.parse().unwrap_or(0)
    });
    if end_of_day && millis != 0 {
        return None;
    }
    let offset_minutes = match caps.get(8).map(|m| m.as_str()) {
        None | Some("Z" | "z") => 0,
        Some(o) => {
            let sign = if o.starts_with('-') { -1 } else { 1 };
            let digits: String = o.chars().filter(char::is_ascii_digit).collect();
            let (h, m) = digits.split_at(2);
            let (h, m): (i64, i64) = (h.parse().ok()?, m.parse().ok()?);
            if h > 23 || m > 59 {
                return None;
            }
            sign * (h * 60 + m)
        }
    };
    let first = NaiveDate::from_ymd_opt(year, month as u32, 1)?;
    let date = first.checked_add_signed(Duration::days(day - 1))?;
    let at = date.and_time(NaiveTime::MIN).and_utc()
        + Duration::hours(hour)
        + Duration::minutes(minute - offset_minutes)
        + Duration::seconds(second)
        + Duration::milliseconds(millis);
    Some(at)
}

/// A row's string that is a date or a timestamp (`YYYY-MM-DD` at least), as the store writes
/// `date`, `dateTime` and `timestamp` columns.
pub(super) fn row_date(s: &str) -> Option<DateTime<Utc>> {
    let b = s.as_bytes();
    let shaped = b.len() >= 10
        && b[..4].iter().all(u8::is_ascii_digit)
        && b[4] == b'-'
        && b[7] == b'-'
        && (b.len() == 10 || matches!(b[10], b'T' | b't' | b' '));
    if shaped {
        parse_sql_date(s)
    } else {
        None
    }
}

/// Joi's `date()` conversion (`joi/lib/types/date.js` internals.parse): a number is epoch
/// milliseconds, a numeric string too, anything else goes through `new Date(…)`.
pub(super) fn joi_date(v: &Value) -> Option<DateTime<Utc>> {
    match v {
        Value::Number(n) => millis(n.as_f64()?),
        Value::String(s) if s.trim().is_empty() => None,
        Value::String(s) => {
            static NUMERIC: LazyLock<Option<Regex>> =
                LazyLock::new(|| Regex::new(r"^[+-]?[0-9]+(\.[0-9]+)?$").ok());
            if NUMERIC.as_ref().is_some_and(|r| r.is_match(s)) {
                millis(s.parse().ok()?)
            } else {
                parse_date(s)
            }
        }
        _ => None,
    }
}

/// A filter value as Joi's `date()` limit reads it (`Number`s and booleans as epoch
/// milliseconds).
pub(super) fn joi_date_of(l: &Lit) -> Option<DateTime<Utc>> {
    match l {
        Lit::Date(d) => Some(*d),
        Lit::Str(s) => joi_date(&Value::String(s.clone())),
        other => millis(other.to_number()),
    }
}

/// `new Date(ms)`: truncated to whole milliseconds; out of range is an invalid date.
fn millis(ms: f64) -> Option<DateTime<Utc>> {
    if !ms.is_finite() || ms.abs() > 8.64e15 {
        return None;
    }
    DateTime::from_timestamp_millis(ms.trunc() as i64)
}

/// `parseNow` (`packages/utils/shared/parse-now.ts`): `$NOW`, or `$NOW(<adjustment>)` with the
/// text between the first parentheses; an adjustment `adjustDate` does not read leaves `$NOW`
/// as it is. None when the adjusted date is out of range (JavaScript's Invalid Date).
pub(super) fn parse_now(value: &str, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    static PARENS: LazyLock<Option<Regex>> = LazyLock::new(|| Regex::new(r"\(([^()]+)\)").ok());
    if value.contains('(') && value.contains(')') {
        if let Some(adjustment) = PARENS
            .as_ref()
            .and_then(|r| r.captures(value))
            .and_then(|c| c.get(1))
        {
            return match adjust_date(now, adjustment.as_str()) {
                Adjusted::Date(d) => Some(d),
                Adjusted::NotRead => Some(now),
                Adjusted::OutOfRange => None,
            };
        }
    }
    Some(now)
}

pub(super) enum Adjusted {
    Date(DateTime<Utc>),
    /// `adjustDate` returned undefined: the text is not an adjustment.
    NotRead,
    /// JavaScript's Invalid Date.
    OutOfRange,
}

/// `adjustDate` (`packages/utils/shared/adjust-date.ts`, the syntax of Vercel's `ms`): an
/// optional sign, a number, optional spaces and a unit (days when none), case-insensitive.
/// As date-fns does, days, weeks, months and years move the calendar (a fraction is cut off
/// the resulting day or month), hours and smaller move the clock.
pub(super) fn adjust_date(date: DateTime<Utc>, adjustment: &str) -> Adjusted {
    static ADJUSTMENT: LazyLock<Option<Regex>> = LazyLock::new(|| {
        Regex::new(concat!(
            r"^(-?(?:[0-9]+)?\.?[0-9]+) *(milliseconds?|msecs?|ms|seconds?|secs?|s|minutes?|mins?|m|",
            r"hours?|hrs?|h|days?|d|weeks?|w|months?|mth|mo|years?|yrs?|y)?$"
        ))
        .ok()
    });
    let subtract = adjustment.starts_with('-');
    let rest = adjustment
        .strip_prefix(['-', '+'])
        .unwrap_or(adjustment)
        // JavaScript's /i only folds ASCII letters onto the ASCII pattern.
        .to_ascii_lowercase();
    let Some(caps) = ADJUSTMENT.as_ref().and_then(|r| r.captures(&rest)) else {
        return Adjusted::NotRead;
    };
    let Some(amount) = caps.get(1).and_then(|m| m.as_str().parse::<f64>().ok()) else {
        return Adjusted::NotRead;
    };
    let amount = if subtract { -amount } else { amount };
    let unit = caps.get(2).map_or("days", |m| m.as_str());
    let moved = match unit {
        "years" | "year" | "yrs" | "yr" | "y" => add_months(date, amount * 12.0),
        "months" | "month" | "mth" | "mo" => add_months(date, amount),
        "weeks" | "week" | "w" => add_days(date, amount * 7.0),
        "days" | "day" | "d" => add_days(date, amount),
        "hours" | "hour" | "hrs" | "hr" | "h" => add_millis(date, amount * 3_600_000.0),
        "minutes" | "minute" | "mins" | "min" | "m" => add_millis(date, amount * 60_000.0),
        "seconds" | "second" | "secs" | "sec" | "s" => add_millis(date, amount * 1000.0),
        "milliseconds" | "millisecond" | "msecs" | "msec" | "ms" => add_millis(date, amount),
        _ => return Adjusted::NotRead,
    };
    moved.map_or(Adjusted::OutOfRange, Adjusted::Date)
}

/// date-fns `addMilliseconds`: `new Date(+date + amount)`.
fn add_millis(date: DateTime<Utc>, amount: f64) -> Option<DateTime<Utc>> {
    millis(date.timestamp_millis() as f64 + amount)
}

/// date-fns `addDays`: `date.setDate(date.getDate() + amount)`, the sum cut to an integer.
fn add_days(date: DateTime<Utc>, amount: f64) -> Option<DateTime<Utc>> {
    if amount == 0.0 {
        return Some(date);
    }
    let day = (f64::from(date.day()) + amount).trunc();
    if day.abs() > 1e9 {
        return None;
    }
    let first = date.with_day(1)?;
    first.checked_add_signed(Duration::days(day as i64 - 1))
}

/// date-fns `addMonths`: the same day in the target month, or that month's last day.
fn add_months(date: DateTime<Utc>, amount: f64) -> Option<DateTime<Utc>> {
    if amount == 0.0 {
        return Some(date);
    }
    // `setMonth(month + amount + 1, 0)`: the month argument is cut to an integer.
    let next = (f64::from(date.month0()) + amount + 1.0).trunc();
    if next.abs() > 1e7 {
        return None;
    }
    let target = i64::from(date.year()) * 12 + next as i64 - 1;
    let (year, month0) = (target.div_euclid(12), target.rem_euclid(12));
    let year = i32::try_from(year).ok()?;
    let first = NaiveDate::from_ymd_opt(year, month0 as u32 + 1, 1)?;
    let last_day = first
        .checked_add_months(chrono::Months::new(1))?
        .pred_opt()?
        .day();
    let day = date.day().min(last_day);
    let d = NaiveDate::from_ymd_opt(year, month0 as u32 + 1, day)?;
    Some(Utc.from_utc_datetime(&d.and_time(date.time())))
}

/// lodash's `escapeRegExp` as `RegExp.prototype.toString` prints it: what Directus reports as
/// the `substring` of a failed `_starts_with`/`_ends_with` validation.
pub(super) fn regex_source(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 2);
    for c in s.chars() {
        match c {
            '\\' | '^' | '$' | '.' | '*' | '+' | '?' | '(' | ')' | '[' | ']' | '{' | '}' | '|' => {
                out.push('\\');
                out.push(c);
            }
            '/' => out.push_str("\\/"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            _ => out.push(c),
        }
    }
    out
}
