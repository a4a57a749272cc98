//! A client of a Supabase project's Auth API (GoTrue, under `<project>/auth/v1`), for
//! gatehouse's Supabase mode: the calls gatehouse forwards (password and refresh grants,
//! sign-up, sign-out, own-account updates) and the admin calls it makes with the
//! service-role key.
//!
//! Three promises, whatever the upstream does:
//! - **Bounded.** Every request has a timeout; after [`CIRCUIT_FAILURES`] failures in a
//!   row the circuit opens and calls fail at once for [`CIRCUIT_COOLDOWN`], then one
//!   request tries the upstream again.
//! - **Opaque.** An [`UpstreamError`] carries the upstream's status and error *code*, never
//!   its body, headers or message: nothing an upstream says reaches a client or a log.
//! - **Secret.** The keys and tokens travel as [`SecretString`]s, go only into request
//!   headers and bodies, and never appear in a `Debug` output.

mod circuit;
mod types;

pub use circuit::{CIRCUIT_COOLDOWN, CIRCUIT_FAILURES};
pub use types::{AdminUserAttributes, SignOutScope, UpstreamSession, UpstreamUser, UserUpdate};

use std::time::Duration;

use reqwest::{Method, RequestBuilder, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use uuid::Uuid;

use circuit::Circuit;

/// What went wrong with a call upstream. Says nothing the upstream said but its code.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// Unreachable, timed out, a 5xx, an answer that is not what the API answers, or the
    /// circuit is open. The caller answers 503.
    #[error("the upstream Auth API is unavailable: {0}")]
    Unavailable(&'static str),
    /// The upstream refused the request (a 4xx), with GoTrue's error code when it gave
    /// one and, for `weak_password`, its reasons.
    #[error("the upstream Auth API refused the request: {status} {code}")]
    Refused {
        status: u16,
        code: String,
        reasons: Vec<String>,
    },
    /// The call needs the service-role key, which is not configured.
    #[error("this needs SUPABASE_SERVICE_ROLE_KEY, which is not set")]
    NoServiceKey,
}

impl UpstreamError {
    /// GoTrue's error code of a refusal.
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Refused { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// Where the project is and the keys to call it with.
#[derive(Clone)]
pub struct ClientConfig {
    /// The project's URL (`https://<ref>.supabase.co`); the Auth API is under `/auth/v1`.
    pub url: url::Url,
    /// The anon (publishable) key: sent as `apikey` with the user-facing calls.
    pub anon_key: SecretString,
    /// The service-role key: for the admin calls only.
    pub service_role_key: Option<SecretString>,
    /// How long one request may take.
    pub timeout: Duration,
}

impl std::fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientConfig")
            .field("url", &self.url.as_str())
            .field("service_role_key", &self.service_role_key.is_some())
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// The Auth API client. Cloning is cheap.
#[derive(Clone)]
pub struct AuthClient {
    http: reqwest::Client,
    base: url::Url,
    anon_key: SecretString,
    service_role_key: Option<SecretString>,
    circuit: std::sync::Arc<Circuit>,
}

impl std::fmt::Debug for AuthClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthClient")
            .field("base", &self.base.as_str())
            .finish_non_exhaustive()
    }
}

/// The version of GoTrue's error format asked for: `{code, message}` bodies.
const API_VERSION: &str = "2024-01-01";

/// The largest answer read from the upstream; more is treated as garbage.
const MAX_ANSWER_BYTES: usize = 256 * 1024;

impl AuthClient {
    /// A client for the project at `config.url`.
    pub fn new(config: ClientConfig) -> Result<Self, String> {
        let mut base = config.url.clone();
        let path = format!("{}/auth/v1/", base.path().trim_end_matches('/'));
        base.set_path(&path);
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("gatehouse/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|err| format!("cannot build the HTTP client: {err}"))?;
        Ok(Self {
            http,
            base,
            anon_key: config.anon_key,
            service_role_key: config.service_role_key,
            circuit: std::sync::Arc::new(Circuit::default()),
        })
    }

    /// Whether admin calls can be made (the service-role key is set).
    pub fn has_service_key(&self) -> bool {
        self.service_role_key.is_some()
    }

    /// The Auth API's base URL (ending in `/auth/v1/`).
    pub fn base(&self) -> &url::Url {
        &self.base
    }

    /// A request with the anon key as `apikey` and `bearer` (the anon key or a user's
    /// access token) as the `Authorization`.
    fn request(&self, method: Method, path: &str, bearer: &SecretString) -> RequestBuilder {
        self.build(method, path, &self.anon_key, bearer)
    }

    fn build(
        &self,
        method: Method,
        path: &str,
        apikey: &SecretString,
        bearer: &SecretString,
    ) -> RequestBuilder {
        let mut url = self.base.clone();
        let full = format!("{}{}", self.base.path(), path);
        url.set_path(&full);
        self.http
            .request(method, url)
            .header("apikey", apikey.expose_secret())
            .header(
                "authorization",
                format!("Bearer {}", bearer.expose_secret()),
            )
            .header("x-supabase-api-version", API_VERSION)
    }

    /// A request with the service-role key as `apikey` and `Authorization`.
    fn admin(&self, method: Method, path: &str) -> Result<RequestBuilder, UpstreamError> {
        let key = self
            .service_role_key
            .as_ref()
            .ok_or(UpstreamError::NoServiceKey)?;
        Ok(self.build(method, path, key, key))
    }

    /// Sends a request through the circuit and reads a JSON answer of type `T` (or, for
    /// `T = ()`, any 2xx).
    async fn send<T: DeserializeOwned>(&self, request: RequestBuilder) -> Result<T, UpstreamError> {
        self.circuit.admit()?;
        // A call abandoned midway (its caller went away) counts as a failure, so that a
        // half-open circuit's trial never stays in flight forever.
        let mut guard = circuit::Pending::new(&self.circuit);
        let outcome = self.exchange(request).await;
        match &outcome {
            Err(UpstreamError::Unavailable(_)) => guard.failed(),
            _ => guard.succeeded(),
        }
        outcome
    }

    async fn exchange<T: DeserializeOwned>(
        &self,
        request: RequestBuilder,
    ) -> Result<T, UpstreamError> {
        let response = request.send().await.map_err(|err| {
            let what = if err.is_timeout() {
                "timed out"
            } else if err.is_connect() {
                "unreachable"
            } else {
                "request failed"
            };
            tracing::warn!(reason = what, "upstream Auth API call failed");
            UpstreamError::Unavailable(what)
        })?;
        let status = response.status();
        let body = read_limited(response).await?;
        if status.is_server_error() || status == StatusCode::BAD_GATEWAY {
            tracing::warn!(
                status = status.as_u16(),
                "upstream Auth API answered a server error"
            );
            return Err(UpstreamError::Unavailable("server error"));
        }
        if status.is_client_error() {
            return Err(refusal(status, &body));
        }
        if !status.is_success() {
            return Err(UpstreamError::Unavailable("unexpected status"));
        }
        let body = if body.is_empty() {
            b"null".to_vec()
        } else {
            body
        };
        serde_json::from_slice(&body).map_err(|_| {
            tracing::warn!(
                status = status.as_u16(),
                "upstream Auth API answered something unexpected"
            );
            UpstreamError::Unavailable("unexpected answer")
        })
    }

    /// `POST /token?grant_type=password`: signs in with an email and a password.
    pub async fn sign_in_with_password(
        &self,
        email: &str,
        password: &SecretString,
    ) -> Result<UpstreamSession, UpstreamError> {
        let request = self
            .request(Method::POST, "token", &self.anon_key)
            .query(&[("grant_type", "password")])
            .json(&json!({ "email": email, "password": password.expose_secret() }));
        self.send(request).await
    }

    /// `POST /token?grant_type=refresh_token`: exchanges a refresh token (rotating it).
    pub async fn refresh(&self, refresh: &SecretString) -> Result<UpstreamSession, UpstreamError> {
        let request = self
            .request(Method::POST, "token", &self.anon_key)
            .query(&[("grant_type", "refresh_token")])
            .json(&json!({ "refresh_token": refresh.expose_secret() }));
        self.send(request).await
    }

    /// `POST /logout?scope=…` with the user's access token.
    pub async fn sign_out(
        &self,
        access_token: &SecretString,
        scope: SignOutScope,
    ) -> Result<(), UpstreamError> {
        let request = self
            .request(Method::POST, "logout", access_token)
            .query(&[("scope", scope.as_str())]);
        let _: Value = self.send(request).await?;
        Ok(())
    }

    /// `PUT /user` with the user's access token: their password, email or metadata.
    pub async fn update_user(
        &self,
        access_token: &SecretString,
        update: &UserUpdate,
    ) -> Result<UpstreamUser, UpstreamError> {
        let request = self
            .request(Method::PUT, "user", access_token)
            .json(&update.to_json());
        self.send(request).await
    }

    /// `POST /signup` with the anon key: a public sign-up, subject to the project's
    /// settings (confirmation, sign-ups disabled). Answers the user and, when the project
    /// also started a session, its access token (to end it, if the caller does not want it).
    pub async fn sign_up(
        &self,
        email: &str,
        password: &SecretString,
        data: &Value,
    ) -> Result<(UpstreamUser, Option<SecretString>), UpstreamError> {
        let request = self
            .request(Method::POST, "signup", &self.anon_key)
            .json(&json!({ "email": email, "password": password.expose_secret(), "data": data }));
        let answer: Value = self.send(request).await?;
        let unexpected = || UpstreamError::Unavailable("unexpected answer");
        match answer.get("user") {
            Some(user) => {
                let user = serde_json::from_value(user.clone()).map_err(|_| unexpected())?;
                let access = answer
                    .get("access_token")
                    .and_then(Value::as_str)
                    .map(|t| SecretString::from(t.to_owned()));
                Ok((user, access))
            }
            None => Ok((
                serde_json::from_value(answer).map_err(|_| unexpected())?,
                None,
            )),
        }
    }

    /// `POST /admin/users` with the service-role key.
    pub async fn admin_create_user(
        &self,
        attributes: &AdminUserAttributes,
    ) -> Result<UpstreamUser, UpstreamError> {
        let request = self
            .admin(Method::POST, "admin/users")?
            .json(&attributes.to_json());
        self.send(request).await
    }

    /// `PUT /admin/users/{id}` with the service-role key.
    pub async fn admin_update_user(
        &self,
        id: Uuid,
        attributes: &AdminUserAttributes,
    ) -> Result<UpstreamUser, UpstreamError> {
        let request = self
            .admin(Method::PUT, &format!("admin/users/{id}"))?
            .json(&attributes.to_json());
        self.send(request).await
    }

    /// `GET /admin/users/{id}` with the service-role key.
    pub async fn admin_get_user(&self, id: Uuid) -> Result<UpstreamUser, UpstreamError> {
        let request = self.admin(Method::GET, &format!("admin/users/{id}"))?;
        self.send(request).await
    }

    /// `DELETE /admin/users/{id}` with the service-role key; `soft` keeps the row
    /// upstream (GoTrue's `should_soft_delete`).
    pub async fn admin_delete_user(&self, id: Uuid, soft: bool) -> Result<(), UpstreamError> {
        let request = self
            .admin(Method::DELETE, &format!("admin/users/{id}"))?
            .json(&json!({ "should_soft_delete": soft }));
        let _: Value = self.send(request).await?;
        Ok(())
    }
}

async fn read_limited(mut response: reqwest::Response) -> Result<Vec<u8>, UpstreamError> {
    if response
        .content_length()
        .is_some_and(|len| len > MAX_ANSWER_BYTES as u64)
    {
        return Err(UpstreamError::Unavailable("answer too large"));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|err| {
        UpstreamError::Unavailable(if err.is_timeout() {
            "timed out"
        } else {
            "answer cut short"
        })
    })? {
        if body.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Err(UpstreamError::Unavailable("answer too large"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// GoTrue's error code of a 4xx: `code` (a string, in the 2024-01-01 format), else
/// `error_code`, else the OAuth-style `error`; the reasons of a weak password.
fn refusal(status: StatusCode, body: &[u8]) -> UpstreamError {
    let parsed: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let code = ["code", "error_code", "error"]
        .iter()
        .find_map(|key| parsed.get(key).and_then(Value::as_str))
        .filter(|code| {
            code.len() <= 64 && code.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
        .unwrap_or("unknown")
        .to_owned();
    let reasons = parsed
        .pointer("/weak_password/reasons")
        .and_then(Value::as_array)
        .map(|reasons| {
            reasons
                .iter()
                .filter_map(Value::as_str)
                .filter(|r| r.len() <= 32)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    UpstreamError::Refused {
        status: status.as_u16(),
        code,
        reasons,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_keeps_the_code_and_reasons_and_nothing_else() {
        let body = br#"{"code":"weak_password","message":"Password should be at least 6 characters. secret-ish","weak_password":{"reasons":["length","pwned"]}}"#;
        let err = refusal(StatusCode::UNPROCESSABLE_ENTITY, body);
        let UpstreamError::Refused {
            status,
            code,
            reasons,
        } = &err
        else {
            panic!("{err:?}")
        };
        assert_eq!((*status, code.as_str()), (422, "weak_password"));
        assert_eq!(reasons, &["length", "pwned"]);
        assert!(!format!("{err} {err:?}").contains("secret-ish"));
    }

    #[test]
    fn legacy_and_oauth_error_shapes_give_their_codes() {
        let legacy = refusal(
            StatusCode::BAD_REQUEST,
            br#"{"code":400,"error_code":"invalid_credentials","msg":"Invalid login credentials"}"#,
        );
        assert_eq!(legacy.code(), Some("invalid_credentials"));
        let oauth = refusal(StatusCode::BAD_REQUEST, br#"{"error":"invalid_grant"}"#);
        assert_eq!(oauth.code(), Some("invalid_grant"));
        let garbage = refusal(StatusCode::BAD_REQUEST, b"<html>nope</html>");
        assert_eq!(garbage.code(), Some("unknown"));
        let injected = refusal(
            StatusCode::BAD_REQUEST,
            br#"{"code":"bad code\nwith newline"}"#,
        );
        assert_eq!(injected.code(), Some("unknown"));
    }

    #[test]
    fn debug_output_shows_no_key() {
        let config = ClientConfig {
            url: url::Url::parse("https://abc.supabase.co").unwrap(),
            anon_key: SecretString::from("anon-key-value"),
            service_role_key: Some(SecretString::from("service-key-value")),
            timeout: Duration::from_secs(1),
        };
        let client = AuthClient::new(config.clone()).unwrap();
        let printed = format!("{config:?} {client:?}");
        assert!(!printed.contains("key-value"), "{printed}");
        assert_eq!(client.base().as_str(), "https://abc.supabase.co/auth/v1/");
    }
}
