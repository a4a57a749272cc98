//! The audit trail: append-only events with actor, target, IP, user agent and details.

use serde_json::Value;
use sqlx::types::Json;
use uuid::Uuid;

use crate::transaction::with_tx;
use crate::{with_pool, Store, StoreError, Timestamp, Transaction};

/// An audit event.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AuditRecord {
    pub id: Uuid,
    pub created_at: Timestamp,
    pub action: String,
    pub actor_id: Option<Uuid>,
    pub target_id: Option<Uuid>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub details: Json<Value>,
}

pub(crate) const INSERT_EVENT: &str =
    "INSERT INTO audit_log (id, created_at, action, actor_id, target_id, ip, user_agent, details) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";

/// Binds an event to [`INSERT_EVENT`], on either database.
macro_rules! bind_event {
    ($query:expr, $event:expr) => {
        $query
            .bind($event.id)
            .bind($event.created_at)
            .bind(&$event.action)
            .bind($event.actor_id)
            .bind($event.target_id)
            .bind(&$event.ip)
            .bind(&$event.user_agent)
            .bind(&$event.details)
    };
}

impl Transaction {
    /// Appends an event, to commit with the change it records.
    pub async fn insert_audit_event(&mut self, event: &AuditRecord) -> Result<(), StoreError> {
        with_tx!(self, conn => {
            bind_event!(sqlx::query(INSERT_EVENT), event).execute(&mut *conn).await?;
        });
        Ok(())
    }
}

impl Store {
    /// Appends an event in a transaction of its own (an event that records no change: a
    /// refused request).
    pub async fn insert_audit_event(&self, event: &AuditRecord) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        tx.insert_audit_event(event).await?;
        tx.commit().await
    }

    /// The newest `limit` events, newest first.
    pub async fn recent_audit_events(&self, limit: i64) -> Result<Vec<AuditRecord>, StoreError> {
        const SQL: &str =
            "SELECT id, created_at, action, actor_id, target_id, ip, user_agent, details \
             FROM audit_log ORDER BY created_at DESC, id DESC LIMIT $1";
        Ok(with_pool!(self, pool => sqlx::query_as(SQL).bind(limit).fetch_all(pool).await?))
    }
}
