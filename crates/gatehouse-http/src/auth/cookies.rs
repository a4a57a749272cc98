//! The cookies of the app API and the checks of the cookie routes: the refresh cookie
//! (`sb_refresh_token`, HttpOnly, SameSite=Lax, Path=/auth), the CSRF cookie
//! (`__Host-csrf_token`, readable by scripts, SameSite=Strict; `csrf_token` under
//! `GATEHOUSE_INSECURE_COOKIES`), the device cookie (`__Host-gatehouse_device`, HttpOnly,
//! SameSite=Strict, a year: it vouches for this browser's sign-ins, see
//! `gatehouse_core::Protection`), the signed double-submit check and the Origin check.

use std::time::Duration;

use axum::http::header::{COOKIE, ORIGIN, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue};
use cookie::{Cookie, SameSite};
use secrecy::{ExposeSecret, SecretString};

use crate::error::ApiError;
use crate::AppState;

/// The refresh-token cookie.
pub const REFRESH_COOKIE: &str = "sb_refresh_token";
/// The CSRF cookie with secure cookies: the `__Host-` prefix makes browsers accept it only
/// from this host, over https, at `Path=/` and without a `Domain`, so a sibling subdomain
/// cannot plant one of its choosing.
pub const CSRF_COOKIE: &str = "__Host-csrf_token";
/// The CSRF cookie under `GATEHOUSE_INSECURE_COOKIES` (plain http cannot carry `__Host-`).
pub const CSRF_COOKIE_INSECURE: &str = "csrf_token";
/// The device cookie with secure cookies: HttpOnly, `__Host-`, SameSite=Strict, a year.
/// It vouches for this browser's sign-ins when the account has hit the hard stop.
pub const DEVICE_COOKIE: &str = "__Host-gatehouse_device";
/// The device cookie under `GATEHOUSE_INSECURE_COOKIES`.
pub const DEVICE_COOKIE_INSECURE: &str = "gatehouse_device";
/// The header that must repeat the CSRF cookie.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The value of the cookie called `name`, if the request sent one.
pub fn read(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| Cookie::parse_encoded(pair.trim().to_owned()).ok())
        .find(|c| c.name() == name)
        .map(|c| c.value().to_owned())
}

fn set(headers: &mut HeaderMap, cookie: &Cookie<'_>) {
    if let Ok(value) = HeaderValue::from_str(&cookie.encoded().to_string()) {
        headers.append(SET_COOKIE, value);
    }
}

fn max_age(d: Duration) -> cookie::time::Duration {
    cookie::time::Duration::seconds(i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// A cookie scripts cannot read (HttpOnly), `Secure` unless running insecure.
fn http_only<'c>(
    state: &AppState,
    name: &'static str,
    value: String,
    path: &'static str,
    same_site: SameSite,
) -> cookie::CookieBuilder<'c> {
    Cookie::build((name, value))
        .path(path)
        .http_only(true)
        .same_site(same_site)
        .secure(!state.config.insecure_cookies)
}

/// Sets the refresh cookie.
pub fn set_refresh(headers: &mut HeaderMap, state: &AppState, token: &SecretString, ttl: Duration) {
    let value = token.expose_secret().to_owned();
    let cookie = http_only(state, REFRESH_COOKIE, value, "/auth", SameSite::Lax);
    set(headers, &cookie.max_age(max_age(ttl)).build());
}

/// Expires the refresh cookie.
pub fn clear_refresh(headers: &mut HeaderMap, state: &AppState) {
    let cookie = http_only(state, REFRESH_COOKIE, String::new(), "/auth", SameSite::Lax);
    set(
        headers,
        &cookie.max_age(cookie::time::Duration::ZERO).build(),
    );
}

/// The name of the CSRF cookie on this server.
pub fn csrf_cookie(state: &AppState) -> &'static str {
    if state.config.insecure_cookies {
        CSRF_COOKIE_INSECURE
    } else {
        CSRF_COOKIE
    }
}

/// The name of the device cookie on this server.
pub fn device_cookie(state: &AppState) -> &'static str {
    if state.config.insecure_cookies {
        DEVICE_COOKIE_INSECURE
    } else {
        DEVICE_COOKIE
    }
}

/// Sets the device cookie.
pub fn set_device(headers: &mut HeaderMap, state: &AppState, token: &SecretString, ttl: Duration) {
    let value = token.expose_secret().to_owned();
    let cookie = http_only(state, device_cookie(state), value, "/", SameSite::Strict);
    set(headers, &cookie.max_age(max_age(ttl)).build());
}

/// Sets the CSRF cookie: not HttpOnly (the page's script may read it), Strict.
pub fn set_csrf(headers: &mut HeaderMap, state: &AppState, token: &str) {
    let cookie = Cookie::build((csrf_cookie(state), token.to_owned()))
        .path("/")
        .same_site(SameSite::Strict)
        .secure(!state.config.insecure_cookies)
        .build();
    set(headers, &cookie);
}

/// The checks every cookie route (sign-in, refresh, logout) makes before anything else:
/// an `Origin`, when sent, must be ours or an allowed one; `X-CSRF-Token` must equal the
/// CSRF cookie and carry our signature.
pub fn check_cookie_route(headers: &HeaderMap, state: &AppState) -> Result<(), ApiError> {
    if let Some(origin) = headers.get(ORIGIN) {
        let origin = origin.to_str().unwrap_or("null");
        if !state
            .config
            .allowed_origins
            .iter()
            .any(|allowed| allowed.eq_ignore_ascii_case(origin))
        {
            return Err(gatehouse_core::Error::CsrfFailed(
                "requests from this Origin are not allowed",
            )
            .into());
        }
    }
    let header = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
    let cookie = read(headers, csrf_cookie(state));
    state.gatehouse.check_csrf(header, cookie.as_deref())?;
    Ok(())
}
