//! The kinds of value a setting can hold — durations, booleans, bounded numbers, secrets,
//! http(s) URLs, comma-separated lists — each parsed with the message that names the
//! variable, its flag and what is wrong. The subsystems build their settings from these.

use std::fmt;
use std::time::Duration;

use secrecy::SecretString;

use super::{err, ConfigError};

pub(super) fn duration(
    variable: &'static str,
    flag: &'static str,
    raw: &str,
    min: Duration,
    max: Duration,
) -> Result<Duration, ConfigError> {
    let value = humantime::parse_duration(raw.trim()).map_err(|_| {
        err(
            variable,
            flag,
            format!("{raw:?} is not a duration; write e.g. 30s, 15m, 1h or 7d"),
        )
    })?;
    if value < min || value > max {
        return Err(err(
            variable,
            flag,
            format!(
                "{raw:?} is out of range; it must be between {} and {}",
                humantime::format_duration(min),
                humantime::format_duration(max)
            ),
        ));
    }
    Ok(value)
}

pub(super) fn boolean(
    variable: &'static str,
    flag: &'static str,
    raw: &str,
) -> Result<bool, ConfigError> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" | "" => Ok(false),
        _ => Err(err(
            variable,
            flag,
            format!("{raw:?} is not a boolean; write true or false"),
        )),
    }
}

pub(super) fn number<T: std::str::FromStr + PartialOrd + fmt::Display>(
    variable: &'static str,
    flag: &'static str,
    raw: &str,
    min: T,
    max: T,
) -> Result<T, ConfigError> {
    let value: T = raw
        .trim()
        .parse()
        .map_err(|_| err(variable, flag, format!("{raw:?} is not a whole number")))?;
    if value < min || value > max {
        return Err(err(
            variable,
            flag,
            format!("{raw:?} is out of range; it must be between {min} and {max}"),
        ));
    }
    Ok(value)
}

pub(super) fn secret(
    variable: &'static str,
    flag: &'static str,
    raw: Option<&String>,
    min_bytes: usize,
) -> Result<Option<SecretString>, ConfigError> {
    match raw {
        None => Ok(None),
        Some(value) if value.len() < min_bytes => Err(err(
            variable,
            flag,
            format!("must be at least {min_bytes} bytes (it has {}); generate one with `openssl rand -base64 48`", value.len()),
        )),
        Some(value) => Ok(Some(SecretString::from(value.clone()))),
    }
}

pub(super) fn http_url(
    variable: &'static str,
    flag: &'static str,
    raw: &str,
) -> Result<url::Url, ConfigError> {
    let url = url::Url::parse(raw.trim())
        .map_err(|e| err(variable, flag, format!("{raw:?} is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(err(
            variable,
            flag,
            format!("{raw:?} must be an http:// or https:// URL with a host"),
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(err(
            variable,
            flag,
            format!("{raw:?} must not have a query or fragment"),
        ));
    }
    Ok(url)
}

/// The non-empty items of a comma-separated list, each parsed by `item`; unset is empty.
pub(super) fn list<T>(
    raw: Option<&String>,
    item: impl Fn(&str) -> Result<T, ConfigError>,
) -> Result<Vec<T>, ConfigError> {
    match raw {
        None => Ok(Vec::new()),
        Some(list) => list
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(item)
            .collect(),
    }
}
