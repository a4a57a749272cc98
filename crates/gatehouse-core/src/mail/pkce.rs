//! PKCE flows (RFC 7636), as supabase-js's `flowType: 'pkce'` uses them: a request that
//! mails a link carries a challenge; verifying the link redirects with a one-time auth
//! code; `POST /token?grant_type=pkce` trades the code and the verifier for a session,
//! once, within [`FLOW_TTL`] of the code (GoTrue's 300 s).

use std::time::Duration;

use gatehouse_store::FlowStateRecord;
use serde_json::json;

use crate::audit::RequestMeta;
use crate::crypto::{b64url, constant_time_eq, sha256};
use crate::identity::check_usable;
use crate::sessions::SessionGrant;
use crate::shared::Shared;
use crate::{new_id, Error};

/// How long an auth code can be exchanged.
pub const FLOW_TTL: Duration = Duration::from_secs(300);

/// How the challenge was derived from the verifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    S256,
    Plain,
}

impl Method {
    fn as_str(self) -> &'static str {
        match self {
            Self::S256 => "s256",
            Self::Plain => "plain",
        }
    }
}

/// A client's challenge.
#[derive(Debug, Clone)]
pub struct Pkce {
    challenge: String,
    method: Method,
}

/// 43 to 128 characters of `[A-Za-z0-9._~-]` (RFC 7636 §4.1), for verifiers and
/// challenges alike.
fn well_formed(s: &str) -> bool {
    (43..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'~' | b'-'))
}

impl Pkce {
    /// The challenge of a request: both fields or neither (`None`); the method in any case.
    pub fn from_request(
        challenge: Option<&str>,
        method: Option<&str>,
    ) -> Result<Option<Self>, Error> {
        let challenge = challenge.map(str::trim).filter(|c| !c.is_empty());
        let method = method.map(str::trim).filter(|m| !m.is_empty());
        match (challenge, method) {
            (None, None) => Ok(None),
            (Some(challenge), Some(method)) => {
                let method = match method.to_ascii_lowercase().as_str() {
                    "s256" => Method::S256,
                    "plain" => Method::Plain,
                    _ => {
                        return Err(Error::invalid(
                            "code_challenge_method",
                            "must be s256 or plain",
                        ))
                    }
                };
                if !well_formed(challenge) {
                    return Err(Error::invalid(
                        "code_challenge",
                        "must be 43 to 128 characters of A-Z a-z 0-9 . _ ~ -",
                    ));
                }
                Ok(Some(Self {
                    challenge: challenge.to_owned(),
                    method,
                }))
            }
            _ => Err(Error::invalid(
                "code_challenge",
                "code_challenge and code_challenge_method go together",
            )),
        }
    }
}

/// Whether `verifier` answers the flow's challenge.
fn verifies(flow: &FlowStateRecord, verifier: &str) -> bool {
    let derived = match flow.code_challenge_method.as_str() {
        "s256" => b64url(&sha256(verifier.as_bytes())),
        _ => verifier.to_owned(),
    };
    constant_time_eq(derived.as_bytes(), flow.code_challenge.as_bytes())
}

/// Stores a new flow for a request that mails a link for `method`.
pub(crate) async fn start(shared: &Shared, pkce: &Pkce, method: &str) -> Result<uuid::Uuid, Error> {
    let now = shared.now();
    let flow = FlowStateRecord {
        id: new_id(now),
        user_id: None,
        code_challenge: pkce.challenge.clone(),
        code_challenge_method: pkce.method.as_str().to_owned(),
        authentication_method: method.to_owned(),
        created_at: now.into(),
        auth_code_issued_at: None,
    };
    let mut tx = shared.store.begin().await?;
    tx.insert_flow_state(&flow).await?;
    tx.commit().await?;
    Ok(flow.id)
}

/// Trades an auth code and its verifier for a session. The flow is gone after the first
/// try, right or wrong (a guessed verifier gets one chance).
pub(crate) async fn exchange(
    shared: &Shared,
    auth_code: &str,
    verifier: &str,
    meta: &RequestMeta,
) -> Result<SessionGrant, Error> {
    shared
        .limit(crate::ratelimit::Bucket::VerifyIp, meta.source.as_deref())
        .await?;
    let (auth_code, verifier) = (auth_code.trim(), verifier.trim());
    if auth_code.is_empty() || verifier.is_empty() {
        return Err(Error::invalid(
            "auth_code",
            "auth_code and code_verifier are required",
        ));
    }
    if auth_code.len() > 128 {
        return Err(Error::FlowStateNotFound);
    }
    let now = shared.now();
    let mut tx = shared.store.begin().await?;
    let flow = tx
        .take_flow_state(&sha256(auth_code.as_bytes()))
        .await?
        .ok_or(Error::FlowStateNotFound)?;
    // The flow is spent whatever follows.
    let issued = flow.auth_code_issued_at.unwrap_or(flow.created_at);
    let ttl = time::Duration::try_from(FLOW_TTL).unwrap_or(time::Duration::minutes(5));
    if now - issued.get() > ttl {
        tx.commit().await?;
        return Err(Error::FlowStateExpired);
    }
    if !well_formed(verifier) || !verifies(&flow, verifier) {
        tx.commit().await?;
        return Err(Error::BadCodeVerifier);
    }
    let user_id = flow.user_id.ok_or(Error::FlowStateNotFound)?;
    let mut user = tx
        .get_user(user_id)
        .await?
        .ok_or(Error::FlowStateNotFound)?;
    check_usable(&user, now)?;
    let at = now.into();
    tx.record_sign_in(user.id, at).await?;
    user.last_sign_in_at = Some(at);
    let event = shared.audit_record(
        "user.signin",
        Some(user.id),
        Some(user.id),
        meta,
        json!({ "by": "pkce", "method": flow.authentication_method }),
    );
    tx.insert_audit_event(&event).await?;
    let method = match flow.authentication_method.as_str() {
        "signup" => "email/signup",
        "magiclink" => "magiclink",
        "recovery" => "recovery",
        "invite" => "invite",
        _ => "otp",
    };
    let grant = shared
        .identity
        .start_session(&mut tx, user, method, meta, None)
        .await?;
    tx.commit().await?;
    Ok(grant)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_are_checked_for_form() {
        let ok = "a".repeat(43);
        assert!(Pkce::from_request(Some(&ok), Some("S256"))
            .unwrap()
            .is_some());
        assert!(Pkce::from_request(Some(&ok), Some("plain"))
            .unwrap()
            .is_some());
        assert!(Pkce::from_request(None, None).unwrap().is_none());
        assert!(Pkce::from_request(Some("short"), Some("s256")).is_err());
        assert!(Pkce::from_request(Some(&ok), Some("md5")).is_err());
        assert!(Pkce::from_request(Some(&ok), None).is_err());
        assert!(Pkce::from_request(Some(&"a".repeat(129)), Some("s256")).is_err());
        assert!(Pkce::from_request(Some(&format!("{}!", "a".repeat(42))), Some("s256")).is_err());
    }

    #[test]
    fn s256_is_the_unpadded_base64url_sha256_of_the_verifier() {
        // Computed independently: base64url(sha256(verifier)) with Python's hashlib.
        let flow = FlowStateRecord {
            id: uuid::Uuid::nil(),
            user_id: None,
            code_challenge: "4ASqA8Ai-bwdVFxkhE9GzIGkvwom07NpfN9U8ci40FM".to_owned(),
            code_challenge_method: "s256".to_owned(),
            authentication_method: "magiclink".to_owned(),
            created_at: time::OffsetDateTime::UNIX_EPOCH.into(),
            auth_code_issued_at: None,
        };
        assert!(verifies(
            &flow,
            "dBjftJeZ4CQP-1JgFWVkYhDeeWErJsM1lAVvR9b1Ezs"
        ));
        assert!(!verifies(
            &flow,
            "dBjftJeZ4CQP-1JgFWVkYhDeeWErJsM1lAVvR9b1Ezt"
        ));
    }
}
