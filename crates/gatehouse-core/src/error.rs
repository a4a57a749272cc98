//! The one error type of gatehouse's rules. The HTTP layer maps each variant to a status
//! and a stable code; internal causes are logged there and never shown to a client.

use serde_json::Value;

type Cause = Box<dyn std::error::Error + Send + Sync>;

/// What can go wrong in a gatehouse operation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A field failed validation; `details` says which and why.
    #[error("{message}")]
    Validation { message: String, details: Value },
    /// The password does not meet the policy; `reasons` are among `length`,
    /// `characters`, `pwned`, `similar`.
    #[error("the password is too weak: {reasons:?}")]
    WeakPassword { reasons: Vec<&'static str> },
    /// The email or username is taken.
    #[error("a user with this {field} already exists")]
    UserAlreadyExists { field: &'static str },
    /// Sign-in failed. Never says whether the account exists.
    #[error("invalid credentials")]
    InvalidCredentials,
    /// The current password given to change it is wrong.
    #[error("the current password is not correct")]
    CurrentPasswordInvalid,
    /// A password or email change came with no proof: no current password, and the
    /// session's last sign-in is older than the reauthentication window.
    #[error("this change needs the current password or a recent sign-in")]
    ReauthenticationNeeded,
    /// No usable access token: missing, malformed, forged, expired, or its session ended.
    #[error("unauthorized: {0}")]
    Unauthorized(&'static str),
    /// The access token is fine but its session has ended (logged out, revoked, expired).
    #[error("the session has ended")]
    SessionEnded,
    /// The account is banned until a time (Supabase's `ban_duration`).
    #[error("the account is banned")]
    UserBanned,
    /// The account hit the hard stop of consecutive failed sign-ins; an admin must unlock
    /// it. Only said to a caller who gave the right password.
    #[error("the account is locked")]
    AccountLocked,
    /// The identity provider has not confirmed the account's email yet (Supabase mode,
    /// a project that confirms sign-ups).
    #[error("the email address is not confirmed")]
    EmailNotConfirmed,
    /// The account is deactivated or deleted.
    #[error("the account is inactive")]
    UserInactive,
    /// The refresh token is missing, unknown, revoked or its session has ended.
    #[error("invalid refresh token")]
    RefreshTokenInvalid,
    /// A refresh token was presented again after its grace interval: the session has been
    /// revoked as stolen.
    #[error("refresh token reused; the session has been revoked")]
    RefreshTokenReused,
    /// The CSRF token or the Origin did not check out.
    #[error("CSRF check failed: {0}")]
    CsrfFailed(&'static str),
    /// Too many requests for this bucket; retry after this many seconds.
    #[error("rate limited; retry after {retry_after} s")]
    RateLimited { retry_after: u64 },
    /// The password-hashing queue is full; the caller should retry shortly.
    #[error("too many password operations in progress")]
    Overloaded,
    /// A query parameter (filter, cursor, limit) is malformed: a 400, unlike a body field.
    #[error("{message}")]
    InvalidQuery { message: String, details: Value },
    /// The caller is authenticated but not allowed.
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
    /// The request conflicts with a rule (`cannot_modify_self`, `last_admin`).
    #[error("{message}")]
    Conflict {
        code: &'static str,
        message: &'static str,
    },
    /// Nothing with that id.
    #[error("not found")]
    NotFound,
    /// The configuration cannot work (a key that does not open, a missing secret).
    #[error("configuration: {0}")]
    Config(String),
    /// A dependency (the database) is not answering; the caller may retry later.
    #[error("service unavailable: {0}")]
    Unavailable(#[source] Cause),
    /// The upstream Auth API (Supabase mode) is unreachable, failing, too slow or
    /// answering nonsense, or its circuit is open; the reason is for the log only.
    #[error("the identity provider is unavailable: {0}")]
    UpstreamUnavailable(&'static str),
    /// A one-time code or link is unknown, used, voided or expired (all alike: GoTrue's
    /// 403 `otp_expired`).
    #[error("the code or link is invalid or has expired")]
    OtpInvalid,
    /// Too many messages to one address; retry after this many seconds (GoTrue's
    /// `over_email_send_rate_limit`).
    #[error("too many emails to this address; retry after {retry_after} s")]
    EmailRateLimited { retry_after: u64 },
    /// The flow needs mail and this server sends none (`GATEHOUSE_SMTP_URL` unset).
    #[error("this server sends no mail")]
    MailNotConfigured,
    /// The address belongs to a confirmed account (invitations, links, email changes).
    #[error("an account with this email address exists")]
    EmailExists,
    /// The reauthentication nonce is wrong, used or expired.
    #[error("the reauthentication code is invalid or has expired")]
    ReauthenticationInvalid,
    /// No PKCE flow has this auth code (or it was used).
    #[error("no flow state for this auth code")]
    FlowStateNotFound,
    /// The PKCE auth code is older than five minutes.
    #[error("the flow state has expired")]
    FlowStateExpired,
    /// The PKCE verifier does not answer the challenge.
    #[error("the code verifier does not match the challenge")]
    BadCodeVerifier,
    /// A bug or an unexpected failure; logged, answered opaquely.
    #[error("internal error: {0}")]
    Internal(#[source] Cause),
}

impl Error {
    /// A validation failure of one field.
    pub fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        let reason = reason.into();
        Self::Validation {
            message: format!("{field}: {reason}"),
            details: serde_json::json!({ "field": field, "reason": reason }),
        }
    }
}

impl Error {
    /// A malformed query parameter.
    pub fn invalid_query(param: &'static str, reason: impl Into<String>) -> Self {
        let reason = reason.into();
        Self::InvalidQuery {
            message: format!("{param}: {reason}"),
            details: serde_json::json!({ "param": param, "reason": reason }),
        }
    }
}

impl From<gatehouse_store::StoreError> for Error {
    fn from(err: gatehouse_store::StoreError) -> Self {
        match err {
            gatehouse_store::StoreError::Constraint { ref constraint }
                if constraint == "users_email_key" =>
            {
                Self::UserAlreadyExists { field: "email" }
            }
            gatehouse_store::StoreError::Constraint { ref constraint }
                if constraint == "users_username_key" =>
            {
                Self::UserAlreadyExists { field: "username" }
            }
            gatehouse_store::StoreError::Connect { .. } => Self::Unavailable(Box::new(err)),
            gatehouse_store::StoreError::Database(sqlx_err) if is_unavailable(&sqlx_err) => {
                Self::Unavailable(Box::new(sqlx_err))
            }
            other => Self::Internal(Box::new(other)),
        }
    }
}

fn is_unavailable(err: &gatehouse_store::sqlx::Error) -> bool {
    use gatehouse_store::sqlx::Error as E;
    matches!(err, E::PoolTimedOut | E::PoolClosed | E::Io(_))
}
