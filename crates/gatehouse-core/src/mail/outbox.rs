//! The outbox's sender. Messages are written to `mail_outbox` in the transaction of the
//! token they carry; the [`Courier`] claims due ones for a lease, sends each, and deletes
//! it once the mail server has accepted it.
//!
//! **The guarantee is at-least-once.** Nothing queued is lost: a message leaves the outbox
//! only after the server said 250 to it, and a claim is a lease, so a sender that dies
//! mid-send has its messages sent again by the next (after a restart, or by another
//! instance) once the lease is over. A crash between the server's 250 and the delete
//! therefore sends that one message twice — with the same `Message-ID`, so mail clients
//! and most servers show it once. (The other choice, at-most-once, would lose the message
//! in that window; a user waiting for a code would rather get it twice.)
//!
//! Failures back off: 5 s, 10 s, 20 s … capped at an hour, and a message is given up on
//! after [`MAX_ATTEMPTS`] attempts (about a day) or a permanent refusal (a 5xx reply),
//! kept with its last error and counted in the depth as failed.

use std::sync::Arc;
use std::time::Duration;

use gatehouse_mail::{SendError, Transport};
use gatehouse_store::{OutboxDepth, OutboxRecord, Store, Timestamp};
use tokio::sync::{watch, Notify};

use super::Postbox;
use crate::clock::Clock;
use crate::crypto::Sealer;
use crate::Error;

/// Attempts before a message is given up on.
pub const MAX_ATTEMPTS: i32 = 30;
/// How long a claim holds a message: longer than one send can take (the transport's
/// timeout is at most 5 minutes), so no other sender takes it while it is in flight.
const LEASE: Duration = Duration::from_secs(600);
/// How often the outbox is looked at when nothing woke the courier.
const POLL: Duration = Duration::from_secs(1);
/// Messages claimed and sent at once, each on its own connection and within its lease.
const BATCH: i64 = 8;

pub(super) fn sealer(secret: &[u8]) -> Result<Sealer, Error> {
    Sealer::new(secret, "gatehouse outbox v1")
}

/// The delay before attempt `attempts + 1`.
pub fn backoff(attempts: i32) -> Duration {
    let exp = u32::try_from(attempts.clamp(0, 20)).unwrap_or(20);
    Duration::from_secs(5u64.saturating_mul(1u64 << exp)).min(Duration::from_secs(3600))
}

/// Delivers the outbox through a transport. One per process is enough; several
/// instances may each run one over the same database.
#[derive(Clone)]
pub struct Courier {
    store: Store,
    clock: Arc<dyn Clock>,
    postbox: Arc<Postbox>,
    transport: Arc<Transport>,
}

impl std::fmt::Debug for Courier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Courier")
            .field("transport", &self.transport.describe())
            .finish_non_exhaustive()
    }
}

/// What came of one message.
enum Delivery {
    Sent,
    Retried,
    Failed,
}

/// What one pass over the outbox did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pass {
    pub sent: usize,
    pub retried: usize,
    pub failed: usize,
}

impl Courier {
    pub(crate) fn new(
        store: Store,
        clock: Arc<dyn Clock>,
        postbox: Arc<Postbox>,
        transport: Transport,
    ) -> Self {
        Self {
            store,
            clock,
            postbox,
            transport: Arc::new(transport),
        }
    }

    /// Where mail goes, for the log (no password).
    pub fn describe(&self) -> String {
        self.transport.describe()
    }

    /// Sends what is due until `stop` turns true. A pass that fails (the database is
    /// down) is logged and retried at the next poll.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let wake: Arc<Notify> = self.postbox.wake.clone();
        let mut last_sweep: Option<time::OffsetDateTime> = None;
        loop {
            if *stop.borrow() {
                return;
            }
            let now = self.clock.now();
            if last_sweep.is_none_or(|at| now - at > time::Duration::HOUR) {
                last_sweep = Some(now);
                match self
                    .store
                    .sweep_mail(Timestamp::from(now - time::Duration::DAY * 7))
                    .await
                {
                    Ok(0) => {}
                    Ok(removed) => {
                        tracing::info!(removed, "swept old one-time tokens, flows and failed mail")
                    }
                    Err(err) => tracing::warn!(error = %err, "mail sweep failed"),
                }
            }
            match self.pass().await {
                Ok(pass) if pass.sent + pass.retried + pass.failed > 0 => {
                    tracing::debug!(
                        sent = pass.sent,
                        retried = pass.retried,
                        failed = pass.failed,
                        "outbox pass"
                    );
                    // There may be more due: look again at once.
                    if pass.sent + pass.retried + pass.failed
                        >= usize::try_from(BATCH).unwrap_or(20)
                    {
                        continue;
                    }
                }
                Ok(_) => {}
                Err(err) => tracing::warn!(error = %err, "outbox pass failed"),
            }
            tokio::select! {
                () = wake.notified() => {}
                () = tokio::time::sleep(POLL) => {}
                _ = stop.changed() => {}
            }
        }
    }

    /// One pass: claims what is due and sends it, [`BATCH`] messages at once, each on
    /// its own connection (lettre's SMTP client waits ~40 ms per message on Nagle and the
    /// server's delayed ACK, so one at a time caps a sender near 23 messages a second).
    pub async fn pass(&self) -> Result<Pass, Error> {
        let now = self.clock.now();
        let lease = time::Duration::try_from(LEASE).unwrap_or(time::Duration::MINUTE);
        let claimed = self
            .store
            .claim_due_mail(now.into(), (now + lease).into(), BATCH)
            .await?;
        let mut sends = tokio::task::JoinSet::new();
        for row in claimed {
            let courier = self.clone();
            sends.spawn(async move { courier.deliver(row, now).await });
        }
        let mut pass = Pass::default();
        let mut first_error = None;
        while let Some(done) = sends.join_next().await {
            match done {
                Ok(Ok(Delivery::Sent)) => pass.sent += 1,
                Ok(Ok(Delivery::Retried)) => pass.retried += 1,
                Ok(Ok(Delivery::Failed)) => pass.failed += 1,
                Ok(Err(err)) => {
                    first_error.get_or_insert(err);
                }
                Err(join) => {
                    first_error.get_or_insert(Error::Internal(Box::new(join)));
                }
            }
        }
        match first_error {
            Some(err) => Err(err),
            None => Ok(pass),
        }
    }

    /// Sends one claimed message and records what came of it.
    async fn deliver(
        &self,
        row: OutboxRecord,
        now: time::OffsetDateTime,
    ) -> Result<Delivery, Error> {
        let ttl = time::Duration::try_from(self.postbox.settings.otp_ttl)
            .unwrap_or(time::Duration::MINUTE * 10);
        if row.created_at.get() + ttl < now {
            // Its code and link have expired: delivering it now would only confuse.
            tracing::warn!(id = %row.id, kind = %row.kind, "mail expired before it could be delivered; giving up on it");
            self.store
                .mail_attempt_failed(row.id, "expired before delivery", None, now.into())
                .await?;
            return Ok(Delivery::Failed);
        }
        let Some(message) = self.postbox.open(row.id, &row.sealed) else {
            // Sealed under another instance secret (a restored database?): it can never
            // be sent.
            tracing::error!(id = %row.id, kind = %row.kind, "outbox message does not open; giving up on it");
            self.store
                .mail_attempt_failed(row.id, "does not open", None, now.into())
                .await?;
            return Ok(Delivery::Failed);
        };
        match self.transport.send(&message).await {
            Ok(()) => {
                self.store.mail_sent(row.id).await?;
                tracing::info!(id = %row.id, kind = %row.kind, attempt = row.attempts + 1, "mail sent");
                Ok(Delivery::Sent)
            }
            Err(err) => {
                let attempts = row.attempts + 1;
                let (give_up, reason) = match &err {
                    SendError::Permanent(reason) => (true, reason.clone()),
                    SendError::Transient(reason) => (attempts >= MAX_ATTEMPTS, reason.clone()),
                };
                let now = self.clock.now();
                let retry_at = (!give_up).then(|| {
                    let delay = time::Duration::try_from(backoff(row.attempts))
                        .unwrap_or(time::Duration::HOUR);
                    Timestamp::from(now + delay)
                });
                self.store
                    .mail_attempt_failed(row.id, &reason, retry_at, now.into())
                    .await?;
                if give_up {
                    tracing::error!(id = %row.id, kind = %row.kind, attempts, error = %reason, "mail given up on");
                    Ok(Delivery::Failed)
                } else {
                    tracing::warn!(id = %row.id, kind = %row.kind, attempts, error = %reason, "mail not sent; will retry");
                    Ok(Delivery::Retried)
                }
            }
        }
    }

    /// How many messages wait.
    pub async fn depth(&self) -> Result<OutboxDepth, Error> {
        Ok(self.store.mail_outbox_depth().await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_an_hour() {
        assert_eq!(backoff(0), Duration::from_secs(5));
        assert_eq!(backoff(1), Duration::from_secs(10));
        assert_eq!(backoff(3), Duration::from_secs(40));
        assert_eq!(backoff(12), Duration::from_secs(3600));
        assert_eq!(backoff(1000), Duration::from_secs(3600));
    }
}
