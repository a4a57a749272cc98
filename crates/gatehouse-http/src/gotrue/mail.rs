//! The mail flows of `/auth/v1`, as GoTrue answers them: `POST /recover`, `POST /otp`,
//! `POST /verify` and the emailed link (`GET /verify`, a page whose button POSTs to
//! `/verify/link`), `POST /resend`, `GET /reauthenticate`, `POST /invite` and
//! `POST /admin/generate_link`. Without a mailer each is 404 `mail_not_configured`.

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use gatehouse_core::mail::pkce::Pkce;
use gatehouse_core::mail::{CodeOrLink, LinkType, VerifyOutcome};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use super::dto::{Empty, Session, User};
use super::{GoTrue, GoTrueError, ServiceRole, UserJwt};
use crate::extract::{ClientMeta, Json};
use crate::AppState;

/// `?redirect_to=`: where the emailed link sends the browser once verified (only an
/// allowed URL; anything else falls back to the site URL).
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RedirectParams {
    pub redirect_to: Option<String>,
}

fn pkce_of(challenge: Option<&str>, method: Option<&str>) -> Result<Option<Pkce>, GoTrueError> {
    Ok(Pkce::from_request(challenge, method)?)
}

fn required(value: Option<String>, message: &'static str) -> Result<String, GoTrueError> {
    value
        .filter(|v| !v.trim().is_empty())
        .ok_or_else(|| GoTrueError::new(StatusCode::BAD_REQUEST, "validation_failed", message))
}

/// `POST /recover`.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"email": "ada@example.com"}))]
pub struct RecoverBody {
    pub email: Option<String>,
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<String>,
}

/// Mail a password-reset link and code (supabase-js `resetPasswordForEmail`). `{}` for
/// every address, known or not.
#[utoipa::path(
    operation_id = "supabase_recover", post, path = "/recover", tag = "supabase", params(RedirectParams), request_body = RecoverBody,
    responses(
        (status = 200, description = "`{}` whether or not the address has an account", body = Empty),
        (status = 400, description = "validation_failed"),
        (status = 404, description = "mail_not_configured"),
        (status = 429, description = "over_email_send_rate_limit, over_request_rate_limit"),
    )
)]
pub async fn recover(
    State(state): State<AppState>,
    ClientMeta(meta): ClientMeta,
    query: Query<RedirectParams>,
    Json(body, _): Json<RecoverBody, GoTrue>,
) -> Result<axum::Json<Empty>, GoTrueError> {
    let email = required(body.email, "Password recovery requires an email")?;
    let pkce = pkce_of(
        body.code_challenge.as_deref(),
        body.code_challenge_method.as_deref(),
    )?;
    state
        .gatehouse
        .mail
        .request_recovery(&email, query.redirect_to.as_deref(), pkce, &meta)
        .await?;
    Ok(axum::Json(Empty {}))
}

/// `POST /otp`.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"email": "ada@example.com", "create_user": true, "data": {}}))]
pub struct OtpBody {
    pub email: Option<String>,
    pub phone: Option<String>,
    /// Make an account for an unknown address (default true).
    pub create_user: Option<bool>,
    #[schema(value_type = Option<Object>)]
    pub data: Option<Value>,
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<String>,
}

/// Mail a sign-in link and code (supabase-js `signInWithOtp`). `{}` for every address.
#[utoipa::path(
    operation_id = "supabase_otp", post, path = "/otp", tag = "supabase", params(RedirectParams), request_body = OtpBody,
    responses(
        (status = 200, description = "`{}`", body = Empty),
        (status = 400, description = "validation_failed, phone_provider_disabled"),
        (status = 404, description = "mail_not_configured"),
        (status = 429, description = "over_email_send_rate_limit, over_request_rate_limit"),
    )
)]
pub async fn otp(
    State(state): State<AppState>,
    ClientMeta(meta): ClientMeta,
    query: Query<RedirectParams>,
    Json(body, _): Json<OtpBody, GoTrue>,
) -> Result<axum::Json<Empty>, GoTrueError> {
    if body.email.is_none() && body.phone.is_some() {
        return Err(GoTrueError::new(
            StatusCode::BAD_REQUEST,
            "phone_provider_disabled",
            "Unsupported phone provider",
        ));
    }
    let email = required(body.email, "An email address is required")?;
    let pkce = pkce_of(
        body.code_challenge.as_deref(),
        body.code_challenge_method.as_deref(),
    )?;
    state
        .gatehouse
        .mail
        .request_magic_link(
            &email,
            body.create_user.unwrap_or(true),
            body.data,
            query.redirect_to.as_deref(),
            pkce,
            &meta,
        )
        .await?;
    Ok(axum::Json(Empty {}))
}

/// `POST /verify`.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"type": "email", "email": "ada@example.com", "token": "123456"}))]
pub struct VerifyBody {
    /// `signup`, `invite`, `magiclink`, `recovery`, `email_change` or `email`.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// The 6-digit code (with `email`).
    pub token: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    /// The link's token instead of a code.
    pub token_hash: Option<String>,
}

fn link_type(kind: Option<&str>) -> Result<LinkType, GoTrueError> {
    kind.and_then(LinkType::parse).ok_or_else(|| {
        GoTrueError::new(
            StatusCode::BAD_REQUEST,
            "validation_failed",
            "Verify requires a verification type",
        )
    })
}

/// The first half of a secure email change.
#[derive(Debug, Serialize, ToSchema)]
pub struct EmailChangeAccepted {
    pub msg: &'static str,
    /// `"200"`, a string, as GoTrue sends it (supabase-py tells this answer by it).
    pub code: &'static str,
}

const EMAIL_CHANGE_ACCEPTED: &str =
    "Confirmation link accepted. Please proceed to confirm link sent to the other email";

/// Redeem a code or a link's token (supabase-js `verifyOtp`): a session; the first
/// confirmation of an email change answers `{msg, code: 200}`.
#[utoipa::path(
    operation_id = "supabase_verify", post, path = "/verify", tag = "supabase", request_body = VerifyBody,
    responses(
        (status = 200, description = "A session, or `{msg, code}` after the first of two email-change confirmations", body = Session),
        (status = 400, description = "validation_failed"),
        (status = 403, description = "otp_expired: unknown, used, expired or wrong (five wrong codes void it)", content_type = "application/json",
            example = json!({"code": 403, "error_code": "otp_expired", "msg": "Token has expired or is invalid"})),
        (status = 404, description = "mail_not_configured"),
        (status = 429, description = "over_request_rate_limit"),
    )
)]
pub async fn verify(
    State(state): State<AppState>,
    ClientMeta(meta): ClientMeta,
    Json(body, _): Json<VerifyBody, GoTrue>,
) -> Result<Response, GoTrueError> {
    let kind = link_type(body.kind.as_deref())?;
    let presented = match (
        body.token_hash.filter(|t| !t.is_empty()),
        body.token,
        body.email,
    ) {
        (Some(hash), _, _) => CodeOrLink::Link {
            token: SecretString::from(hash),
        },
        (None, Some(code), Some(email)) => CodeOrLink::Code {
            email,
            code: SecretString::from(code),
        },
        _ => {
            return Err(if body.phone.is_some() {
                GoTrueError::new(
                    StatusCode::BAD_REQUEST,
                    "phone_provider_disabled",
                    "Unsupported phone provider",
                )
            } else {
                GoTrueError::new(
                    StatusCode::BAD_REQUEST,
                    "validation_failed",
                    "Only an email address or phone number should be provided on verify",
                )
            })
        }
    };
    let outcome = state
        .gatehouse
        .mail
        .verify(kind, presented, false, &meta)
        .await?;
    Ok(match outcome {
        VerifyOutcome::Session { grant, .. } => axum::Json(Session::of(&grant)).into_response(),
        VerifyOutcome::EmailChangePending { .. } => axum::Json(EmailChangeAccepted {
            msg: EMAIL_CHANGE_ACCEPTED,
            code: "200",
        })
        .into_response(),
        VerifyOutcome::Unlocked { .. } => axum::Json(Empty {}).into_response(),
        VerifyOutcome::AuthCode { .. } => {
            return Err(GoTrueError::from(gatehouse_core::Error::OtpInvalid));
        }
    })
}

/// `GET /verify` (the emailed link).
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LinkParams {
    pub token: Option<String>,
    #[serde(rename = "type")]
    #[param(rename = "type")]
    pub kind: Option<String>,
}

/// The page an emailed link opens: one button, which POSTs to `/verify/link`. Opening
/// the link consumes nothing, so mail scanners that follow links cannot burn it. No
/// script, no external asset; the CSP allows the form only to post here.
#[utoipa::path(
    operation_id = "supabase_verify_page", get, path = "/verify", tag = "supabase", params(LinkParams),
    responses((status = 200, description = "An HTML page with one button", content_type = "text/html"))
)]
pub async fn verify_page(State(state): State<AppState>, query: Query<LinkParams>) -> Response {
    let token = query.token.as_deref().unwrap_or_default();
    let kind = query.kind.as_deref().unwrap_or_default();
    // Where the button's POST will redirect: the token's own (allowed) redirect, so the
    // CSP's form-action lets the browser follow it. Looking it up consumes nothing.
    let redirect = match state.gatehouse.mail.link_redirect(token).await {
        Ok(redirect) => redirect,
        Err(err) => return GoTrueError::from(err).into_response(),
    };
    let (title, button) = match (LinkType::parse(kind), &redirect) {
        (_, None) | (None, _) => ("This link has expired", ""),
        (Some(LinkType::Signup | LinkType::Confirmation), _) => {
            ("Confirm your email", "Confirm my email")
        }
        (Some(LinkType::Recovery), _) => ("Reset your password", "Continue"),
        (Some(LinkType::Invite), _) => ("Accept the invitation", "Accept"),
        (Some(LinkType::EmailChange), _) => ("Confirm the email change", "Confirm"),
        (Some(LinkType::Unlock), _) => ("Unlock your account", "Unlock"),
        (Some(LinkType::MagicLink | LinkType::Email), _) => ("Sign in", "Sign in"),
    };
    let form = if button.is_empty() {
        "<p>This link is not valid any more: it was used, replaced by a newer one, or it \
         expired. Ask for a new one.</p>"
            .to_owned()
    } else {
        format!(
            "<form method=\"post\" action=\"{action}\">\
             <input type=\"hidden\" name=\"token\" value=\"{token}\">\
             <input type=\"hidden\" name=\"type\" value=\"{kind}\">\
             <button type=\"submit\">{button}</button></form>",
            action = super::PREFIX.to_owned() + "/verify/link",
            token = escape(token),
            kind = escape(kind),
        )
    };
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <meta name=\"robots\" content=\"noindex\"><title>{title}</title>\
         <style>body{{font:16px system-ui,sans-serif;max-width:28rem;margin:15vh auto;padding:0 1rem;color:#222}}\
         button{{font:inherit;padding:.7rem 1.4rem;border:0;border-radius:.4rem;background:#1f6feb;color:#fff;cursor:pointer}}</style>\
         </head><body><h1>{title}</h1>{form}</body></html>"
    );
    let csp = format!(
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self' {}; frame-ancestors 'none'; base-uri 'none'",
        redirect.as_deref().map(origin_of).unwrap_or_default()
    );
    let mut response = (StatusCode::OK, html).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(value) = HeaderValue::from_str(&csp) {
        headers.insert(header::CONTENT_SECURITY_POLICY, value);
    }
    response
}

/// The origin of `url`, for the CSP (after a form POST the browser follows our redirect
/// there); empty when it has none.
fn origin_of(url: &str) -> String {
    match url::Url::parse(url).map(|u| u.origin()) {
        Ok(origin) if origin.is_tuple() => origin.ascii_serialization(),
        _ => String::new(),
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// The form of the link's page (read field by field: anything else is ignored).
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct VerifyLinkForm {
    /// The link's token.
    token: String,
    /// The link's type.
    #[schema(rename = "type")]
    kind: String,
    /// Where to go after an error when the token is unknown.
    redirect_to: Option<String>,
}

/// The button of the link's page: redeems the token and sends the browser on (303) to
/// the allowed redirect — with the session in the fragment (implicit flow), a `?code=`
/// for a PKCE flow, or the error in the fragment, as GoTrue's `GET /verify` does.
#[utoipa::path(
    operation_id = "supabase_verify_link", post, path = "/verify/link", tag = "supabase",
    request_body(content = VerifyLinkForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "To redirect_to with #access_token=…, ?code=…, or #error=…"),
        (status = 400, description = "validation_failed: no token or type in the form"),
        (status = 404, description = "mail_not_configured"),
    )
)]
pub async fn verify_link(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    ClientMeta(meta): ClientMeta,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(rejection) => {
            let status = rejection.status();
            let (status, code, message) = if status == StatusCode::PAYLOAD_TOO_LARGE {
                (status, "request_entity_too_large", "Request body too large")
            } else {
                (
                    StatusCode::BAD_REQUEST,
                    "validation_failed",
                    "Could not read the form",
                )
            };
            return GoTrueError::new(status, code, message).into_response();
        }
    };
    let mut token = String::new();
    let mut kind = String::new();
    let mut requested = None;
    for (key, value) in url::form_urlencoded::parse(&body) {
        match key.as_ref() {
            "token" => token = value.into_owned(),
            "type" => kind = value.into_owned(),
            "redirect_to" => requested = Some(value.into_owned()),
            _ => {}
        }
    }
    // Only our page posts here: a cross-site form (login CSRF: signing the victim's
    // browser into the attacker's account with the attacker's own link) is refused.
    if cross_site(&headers, &state.gatehouse.settings().public_url) {
        return GoTrueError::new(
            StatusCode::FORBIDDEN,
            "csrf_failed",
            "This form is only accepted from gatehouse's own page",
        )
        .into_response();
    }
    let mail = &state.gatehouse.mail;
    // What did not come from our page is an API error, not a redirect.
    if token.is_empty() || kind.is_empty() {
        return GoTrueError::new(
            StatusCode::BAD_REQUEST,
            "validation_failed",
            "A form with token and type is required",
        )
        .into_response();
    }
    if !mail.enabled() {
        return GoTrueError::from(gatehouse_core::Error::MailNotConfigured).into_response();
    }
    let fallback = mail.redirect(requested.as_deref());
    let outcome = match LinkType::parse(&kind) {
        Some(kind) => {
            mail.verify(
                kind,
                CodeOrLink::Link {
                    token: SecretString::from(token),
                },
                true,
                &meta,
            )
            .await
        }
        None => Err(gatehouse_core::Error::OtpInvalid),
    };
    let location = match outcome {
        Ok(VerifyOutcome::Session {
            grant,
            purpose,
            redirect_to,
        }) => {
            let fragment: String = url::form_urlencoded::Serializer::new(String::new())
                .append_pair("access_token", &grant.access_token)
                .append_pair("expires_at", &grant.expires_at.to_string())
                .append_pair("expires_in", &grant.expires_in.to_string())
                .append_pair("refresh_token", grant.refresh_token.expose_secret())
                .append_pair("token_type", "bearer")
                .append_pair("type", purpose.verification_type())
                .finish();
            format!("{}#{fragment}", strip_fragment(&redirect_to))
        }
        Ok(VerifyOutcome::AuthCode { code, redirect_to }) => {
            with_query(&redirect_to, "code", code.expose_secret())
        }
        Ok(VerifyOutcome::EmailChangePending { redirect_to }) => {
            let fragment: String = url::form_urlencoded::Serializer::new(String::new())
                .append_pair("message", EMAIL_CHANGE_ACCEPTED)
                .finish();
            format!("{}#{fragment}", strip_fragment(&redirect_to))
        }
        Ok(VerifyOutcome::Unlocked { redirect_to }) => {
            let fragment: String = url::form_urlencoded::Serializer::new(String::new())
                .append_pair("message", "Account unlocked. Sign in again.")
                .finish();
            format!("{}#{fragment}", strip_fragment(&redirect_to))
        }
        Err(err) => {
            let err = GoTrueError::from(err);
            let fragment: String = url::form_urlencoded::Serializer::new(String::new())
                .append_pair("error", "access_denied")
                .append_pair("error_code", &err.code)
                .append_pair("error_description", &err.message)
                .finish();
            format!("{}#{fragment}", strip_fragment(&fallback))
        }
    };
    let mut response = StatusCode::SEE_OTHER.into_response();
    let location = HeaderValue::from_str(&location)
        .or_else(|_| HeaderValue::from_str(strip_fragment(&fallback)));
    if let Ok(value) = location {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// A browser's cross-site POST: an `Origin` other than ours, or `Sec-Fetch-Site:
/// cross-site`. (Browsers send both on form posts; other clients send neither.)
fn cross_site(headers: &axum::http::HeaderMap, public_url: &str) -> bool {
    let ours = origin_of(public_url);
    let foreign_origin = headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|origin| origin != ours);
    let fetch_site = headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|site| site.eq_ignore_ascii_case("cross-site"));
    foreign_origin || fetch_site
}

fn strip_fragment(url: &str) -> &str {
    url.split('#').next().unwrap_or(url)
}

fn with_query(url: &str, key: &str, value: &str) -> String {
    let base = strip_fragment(url);
    let pair: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair(key, value)
        .finish();
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}{pair}")
}

/// `POST /resend`.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"type": "signup", "email": "ada@example.com"}))]
pub struct ResendBody {
    /// `signup` or `email_change`.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
}

/// Mail a pending confirmation again (supabase-js `resend`). `{}` for every address.
#[utoipa::path(
    operation_id = "supabase_resend", post, path = "/resend", tag = "supabase", params(RedirectParams), request_body = ResendBody,
    responses(
        (status = 200, description = "`{}`", body = Empty),
        (status = 400, description = "validation_failed"),
        (status = 404, description = "mail_not_configured"),
        (status = 429, description = "over_email_send_rate_limit"),
    )
)]
pub async fn resend(
    State(state): State<AppState>,
    ClientMeta(meta): ClientMeta,
    query: Query<RedirectParams>,
    Json(body, _): Json<ResendBody, GoTrue>,
) -> Result<axum::Json<Empty>, GoTrueError> {
    let kind = match body.kind.as_deref() {
        Some("signup") => LinkType::Signup,
        Some("email_change") => LinkType::EmailChange,
        _ => {
            return Err(GoTrueError::new(
                StatusCode::BAD_REQUEST,
                "validation_failed",
                "Missing one of these types: signup, email_change",
            ))
        }
    };
    if body.email.is_none() && body.phone.is_some() {
        return Err(GoTrueError::new(
            StatusCode::BAD_REQUEST,
            "phone_provider_disabled",
            "Unsupported phone provider",
        ));
    }
    let email = required(body.email, "An email address is required")?;
    state
        .gatehouse
        .mail
        .resend(kind, &email, query.redirect_to.as_deref(), &meta)
        .await?;
    Ok(axum::Json(Empty {}))
}

/// Mail the signed-in user a code to pass as the `nonce` of a password change
/// (supabase-js `reauthenticate`).
#[utoipa::path(
    operation_id = "supabase_reauthenticate", get, path = "/reauthenticate", tag = "supabase", security(("bearer" = [])),
    responses(
        (status = 200, description = "`{}`", body = Empty),
        (status = 401, description = "no_authorization"), (status = 403, description = "bad_jwt"),
        (status = 404, description = "mail_not_configured"),
        (status = 422, description = "email_not_confirmed"),
        (status = 429, description = "over_email_send_rate_limit"),
    )
)]
pub async fn reauthenticate(
    State(state): State<AppState>,
    UserJwt(principal): UserJwt,
    ClientMeta(meta): ClientMeta,
) -> Result<axum::Json<Empty>, GoTrueError> {
    state
        .gatehouse
        .mail
        .reauthenticate(&principal, &meta)
        .await
        .map_err(|err| match err {
            gatehouse_core::Error::EmailNotConfirmed => GoTrueError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "email_not_confirmed",
                "Please verify your email first.",
            ),
            other => other.into(),
        })?;
    Ok(axum::Json(Empty {}))
}

/// `POST /invite`.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"email": "grace@example.com", "data": {"team": "compilers"}}))]
pub struct InviteBody {
    pub email: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub data: Option<Value>,
}

/// Invite a user by email (supabase-js `auth.admin.inviteUserByEmail`; the service role
/// only): an account with no password, and a mail whose link signs them in.
#[utoipa::path(
    operation_id = "supabase_invite", post, path = "/invite", tag = "supabase", security(("bearer" = [])), params(RedirectParams), request_body = InviteBody,
    responses(
        (status = 200, description = "The invited user", body = User),
        (status = 403, description = "not_admin"),
        (status = 404, description = "mail_not_configured"),
        (status = 422, description = "email_exists: the address belongs to a confirmed account"),
    )
)]
pub async fn invite(
    State(state): State<AppState>,
    _: ServiceRole,
    ClientMeta(meta): ClientMeta,
    query: Query<RedirectParams>,
    Json(body, _): Json<InviteBody, GoTrue>,
) -> Result<axum::Json<User>, GoTrueError> {
    let email = required(body.email, "An email address is required")?;
    let user = state
        .gatehouse
        .mail
        .invite(&email, body.data, query.redirect_to.as_deref(), &meta)
        .await?;
    Ok(axum::Json(User::from(&user)))
}

/// `POST /admin/generate_link`.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"type": "magiclink", "email": "ada@example.com"}))]
pub struct GenerateLinkBody {
    /// `signup`, `invite`, `magiclink`, `recovery`, `email_change_current`, `email_change_new`.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub email: Option<String>,
    pub password: Option<String>,
    pub new_email: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub data: Option<Value>,
    pub redirect_to: Option<String>,
}

/// What `generate_link` answers: the user's fields and the link's.
#[derive(Debug, Serialize, ToSchema)]
pub struct GeneratedLink {
    #[serde(flatten)]
    pub user: User,
    pub action_link: String,
    pub email_otp: String,
    pub hashed_token: String,
    pub verification_type: &'static str,
    pub redirect_to: String,
}

/// Make a link and code as a mail would carry them, without sending (supabase-js
/// `auth.admin.generateLink`; the service role only).
#[utoipa::path(
    operation_id = "supabase_generate_link", post, path = "/admin/generate_link", tag = "supabase", security(("bearer" = [])), params(RedirectParams), request_body = GenerateLinkBody,
    responses(
        (status = 200, description = "The user with action_link, email_otp, hashed_token, verification_type, redirect_to", body = GeneratedLink),
        (status = 400, description = "validation_failed"),
        (status = 403, description = "not_admin"),
        (status = 404, description = "user_not_found, mail_not_configured"),
        (status = 422, description = "email_exists"),
    )
)]
pub async fn generate_link(
    State(state): State<AppState>,
    _: ServiceRole,
    ClientMeta(meta): ClientMeta,
    query: Query<RedirectParams>,
    Json(body, _): Json<GenerateLinkBody, GoTrue>,
) -> Result<axum::Json<GeneratedLink>, GoTrueError> {
    let kind = required(body.kind, "A link type is required")?;
    let email = required(body.email, "An email address is required")?;
    let link = state
        .gatehouse
        .mail
        .generate_link(
            &state.gatehouse.accounts,
            &kind,
            &email,
            body.password.map(SecretString::from),
            body.new_email.as_deref(),
            body.data,
            // The clients send it as the query parameter; the body's is GoTrue's too.
            query.redirect_to.as_deref().or(body.redirect_to.as_deref()),
            &meta,
        )
        .await
        .map_err(GoTrueError::at_admin)?;
    Ok(axum::Json(GeneratedLink {
        user: User::from(&link.user),
        action_link: link.action_link,
        email_otp: link.email_otp.expose_secret().to_owned(),
        hashed_token: link.hashed_token.expose_secret().to_owned(),
        verification_type: link.verification_type,
        redirect_to: link.redirect_to,
    }))
}
