//! Recording what happened: where a request came from, as the audit trail and the rate
//! limits see it, and the audit event of an action, written in the action's transaction.
//! Never a secret.

use gatehouse_store::{AuditRecord, Json};
use serde_json::Value;
use time::OffsetDateTime;
use uuid::Uuid;

/// Where a request came from, as the HTTP layer saw it.
#[derive(Debug, Clone, Default)]
pub struct RequestMeta {
    /// The client's address, as recorded in the audit trail.
    pub ip: Option<String>,
    /// What rate limits and account protection count the client by: the address, or for
    /// IPv6 its network (see [`source_key`](crate::ratelimit::source_key)).
    pub source: Option<String>,
    pub user_agent: Option<String>,
}

impl RequestMeta {
    /// A request with no address (the CLI); bounds what is stored of a user agent.
    pub fn new(ip: Option<String>, user_agent: Option<&str>) -> Self {
        let user_agent =
            user_agent.map(|ua| ua.chars().filter(|c| !c.is_control()).take(512).collect());
        Self {
            source: ip.clone(),
            ip,
            user_agent,
        }
    }

    /// A request from `ip`, counted by its source key.
    pub fn from_client(ip: std::net::IpAddr, ipv6_prefix: u8, user_agent: Option<&str>) -> Self {
        let mut meta = Self::new(Some(ip.to_string()), user_agent);
        meta.source = Some(crate::ratelimit::source_key(ip, ipv6_prefix));
        meta
    }
}

/// The audit event of `action` at `now`.
pub(crate) fn record(
    now: OffsetDateTime,
    action: &str,
    actor: Option<Uuid>,
    target: Option<Uuid>,
    meta: &RequestMeta,
    details: Value,
) -> AuditRecord {
    AuditRecord {
        id: crate::new_id(now),
        created_at: now.into(),
        action: action.to_owned(),
        actor_id: actor,
        target_id: target,
        ip: meta.ip.clone(),
        user_agent: meta.user_agent.clone(),
        details: Json(details),
    }
}
