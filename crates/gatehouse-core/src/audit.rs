//! Recording what happened: who, to whom, from where, and what changed. Never a secret.

use gatehouse_store::{AuditRecord, Json};
use serde_json::Value;
use uuid::Uuid;

use crate::{Error, Gatehouse};

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

impl Gatehouse {
    /// Appends an audit event.
    pub(crate) async fn audit(
        &self,
        action: &str,
        actor: Option<Uuid>,
        target: Option<Uuid>,
        meta: &RequestMeta,
        details: Value,
    ) -> Result<(), Error> {
        let event = self.audit_record(action, actor, target, meta, details);
        self.store.insert_audit_event(&event).await?;
        Ok(())
    }

    /// An audit event to write with the change it records, in its transaction.
    pub(crate) fn audit_record(
        &self,
        action: &str,
        actor: Option<Uuid>,
        target: Option<Uuid>,
        meta: &RequestMeta,
        details: Value,
    ) -> AuditRecord {
        let now = self.now();
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

    /// Records a refused admin request (ASVS 16.3.2): who asked (the user behind a token,
    /// or none for a key or an invalid token), with what, for what. Past 60 a minute from
    /// one source, refusals are logged instead of written.
    pub async fn audit_denied(
        &self,
        actor: Option<Uuid>,
        meta: &RequestMeta,
        details: Value,
    ) -> Result<(), Error> {
        let source = meta.source.clone().unwrap_or_default();
        if self
            .limit(crate::ratelimit::Bucket::DeniedAudit, Some(&source))
            .await
            .is_err()
        {
            tracing::warn!(actor = ?actor, "refused admin request not audited: over the audit rate for this source");
            return Ok(());
        }
        self.audit("authz.denied", actor, None, meta, details).await
    }
}
