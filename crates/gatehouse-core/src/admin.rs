//! Roles and user management: the admin's view of users, one guarded update for every
//! surface (the admin API, `/auth/v1/admin`, the CLI) so that an admin cannot lock
//! themself out and the deployment always keeps an active admin, and the audit trail of
//! every change with what it was before and after — written in the change's transaction.

pub mod import;
mod listing;

#[cfg(feature = "fuzzing")]
pub(crate) use listing::decode_cursor;
pub use listing::{user_cursor, AuditPage, UserListQuery, UserPage};

use std::sync::Arc;

use gatehouse_store::{ChangeOutcome, Timestamp, Transaction, UserChange, UserRecord};
use secrecy::SecretString;
use serde_json::{json, Map, Value};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::audit::RequestMeta;
use crate::crypto::{b64url, random_bytes};
use crate::identity::IdentityProvider;
use crate::ratelimit::Bucket;
use crate::sessions::Principal;
use crate::shared::Shared;
use crate::{validate, Error};

/// The roles gatehouse knows.
pub const ROLES: [&str; 2] = ["user", "admin"];
/// Largest page.
pub const MAX_PAGE: i64 = 100;
/// Page size when none is asked for.
pub const DEFAULT_PAGE: i64 = 20;

/// Who makes an admin change: an admin through the API, or an operator through the CLI.
#[derive(Debug, Clone, Copy)]
pub enum Actor {
    Admin(Uuid),
    Operator,
    /// The service-role API key (Supabase's admin API).
    ServiceKey,
}

impl Actor {
    pub(crate) fn id(self) -> Option<Uuid> {
        match self {
            Self::Admin(id) => Some(id),
            Self::Operator | Self::ServiceKey => None,
        }
    }

    pub(crate) fn via(self) -> &'static str {
        match self {
            Self::Admin(_) => "api",
            Self::Operator => "cli",
            Self::ServiceKey => "service_role",
        }
    }
}

/// A change an admin makes to a user's account, from any surface. `None` leaves a field as
/// it is.
#[derive(Debug, Default)]
pub struct UserPatch {
    /// `user` or `admin`, under the role rules: an admin cannot demote themself, and the
    /// last active admin cannot be demoted.
    pub role: Option<String>,
    /// Deactivation ends the user's sessions, under the same rules.
    pub is_active: Option<bool>,
    pub email: Option<String>,
    pub username: Option<Option<String>>,
    pub email_confirmed: Option<bool>,
    /// The new user metadata, whole.
    pub user_metadata: Option<Value>,
    /// The new app metadata, whole (its `role` key is ignored: the role is `role`).
    pub app_metadata: Option<Value>,
    /// Banned until then; `Some(None)` lifts a ban.
    pub banned_until: Option<Option<OffsetDateTime>>,
    /// A new password (a recovery): every session ends and nothing the old one vouched for
    /// stays trusted.
    pub password: Option<SecretString>,
}

/// An account an admin or operator creates.
#[derive(Debug)]
pub struct NewAccount {
    pub email: String,
    pub username: Option<String>,
    /// `None` generates one, returned once.
    pub password: Option<SecretString>,
    pub role: String,
    pub display_name: Option<String>,
    pub user_metadata: Option<Value>,
    pub app_metadata: Option<Value>,
    pub email_confirmed: bool,
    /// Banned from the start until then (GoTrue's `createUser` with `ban_duration`).
    pub banned_until: Option<OffsetDateTime>,
}

fn is_active_admin(user: &UserRecord) -> bool {
    user.role == "admin" && user.is_active && user.deleted_at.is_none()
}

/// What a change did to the fields an admin cares about, before and after.
fn changes(before: &UserRecord, after: &UserRecord) -> Value {
    let view = |u: &UserRecord| {
        json!({
            "role": u.role, "isActive": u.is_active, "email": u.email, "username": u.username,
            "emailConfirmed": u.email_confirmed_at.is_some(), "deleted": u.deleted_at.is_some(),
        })
    };
    let (b, a) = (view(before), view(after));
    let (mut old, mut new) = (Map::new(), Map::new());
    if let (Value::Object(b), Value::Object(a)) = (b, a) {
        for (key, value) in a {
            if b.get(&key) != Some(&value) {
                old.insert(key.clone(), b.get(&key).cloned().unwrap_or(Value::Null));
                new.insert(key, value);
            }
        }
    }
    json!({ "before": old, "after": new })
}

fn check_role(role: &str) -> Result<(), Error> {
    if ROLES.contains(&role) {
        Ok(())
    } else {
        Err(Error::invalid("role", "must be user or admin"))
    }
}

/// Checks an admin's patch against the user as it is and turns it into one change, writing
/// nothing: every field's error comes before the first write. The password is checked by
/// the caller, who hashes it.
pub fn plan_user_patch(
    before: &UserRecord,
    patch: &UserPatch,
    at: Timestamp,
) -> Result<UserChange, Error> {
    if let Some(role) = &patch.role {
        check_role(role)?;
    }
    let email = patch.email.as_deref().map(validate::email).transpose()?;
    let username = match &patch.username {
        Some(Some(name)) => Some(Some(validate::username(name)?)),
        Some(None) => Some(None),
        None => None,
    };
    if let Some(metadata) = &patch.user_metadata {
        validate::user_metadata(metadata)?;
    }
    let app_metadata = match &patch.app_metadata {
        Some(app) => {
            validate::metadata("app_metadata", app)?;
            let mut app = app.clone();
            if let Some(map) = app.as_object_mut() {
                map.remove("role");
            }
            Some(app)
        }
        None => None,
    };
    Ok(UserChange {
        role: patch.role.clone().filter(|role| *role != before.role),
        is_active: patch.is_active,
        email,
        username,
        email_confirmed_at: patch.email_confirmed.map(|c| c.then_some(at)),
        user_metadata: patch.user_metadata.clone(),
        app_metadata,
        banned_until: patch.banned_until.map(|b| b.map(Timestamp::from)),
        ..UserChange::default()
    })
}

/// Maps the outcome of a guarded write to its error.
fn outcome(outcome: ChangeOutcome) -> Result<(), Error> {
    match outcome {
        ChangeOutcome::Changed => Ok(()),
        ChangeOutcome::NotFound => Err(Error::NotFound),
        ChangeOutcome::LastAdmin => Err(Error::Conflict {
            code: "last_admin",
            message: "this would leave no active admin",
        }),
    }
}

fn refuse_self(actor: Actor, target: Uuid, what: &'static str) -> Result<(), Error> {
    if actor.id() == Some(target) {
        return Err(Error::Conflict {
            code: "cannot_modify_self",
            message: what,
        });
    }
    Ok(())
}

/// The admin service.
#[derive(Clone)]
pub struct Admin {
    shared: Arc<Shared>,
}

impl Admin {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    fn identity(&self) -> &IdentityProvider {
        &self.shared.identity
    }

    /// Admits only a caller whose role, as the database has it now, is `admin`.
    pub fn require_admin(&self, principal: &Principal) -> Result<Actor, Error> {
        if is_active_admin(&principal.user) {
            Ok(Actor::Admin(principal.user.id))
        } else {
            Err(Error::Forbidden("this needs the admin role"))
        }
    }

    /// Admin writes are rate-limited per admin (and for the service-role key as one);
    /// operators at the CLI are not.
    async fn limit(&self, actor: Actor) -> Result<(), Error> {
        let key = match actor {
            Actor::Admin(id) => Some(id.to_string()),
            Actor::ServiceKey => Some("service_role".to_owned()),
            Actor::Operator => None,
        };
        self.shared.limit(Bucket::AdminWrite, key.as_deref()).await
    }

    /// A live user.
    pub async fn get_user(&self, id: Uuid) -> Result<UserRecord, Error> {
        self.shared
            .store
            .get_user(id)
            .await?
            .filter(|u| u.deleted_at.is_none())
            .ok_or(Error::NotFound)
    }

    /// Finds a live user by id or email (for the CLI).
    pub async fn find_user(&self, email_or_id: &str) -> Result<UserRecord, Error> {
        match Uuid::parse_str(email_or_id) {
            Ok(id) => self.get_user(id).await,
            Err(_) => self
                .shared
                .store
                .find_user_by_email(email_or_id)
                .await?
                .ok_or(Error::NotFound),
        }
    }

    /// Sets a user's role: [`Admin::update_user`] with only the role.
    pub async fn set_role(
        &self,
        actor: Actor,
        id: Uuid,
        role: &str,
        meta: &RequestMeta,
    ) -> Result<UserRecord, Error> {
        check_role(role)?;
        let patch = UserPatch {
            role: Some(role.to_owned()),
            ..UserPatch::default()
        };
        self.update_user(actor, id, patch, meta).await
    }

    /// Changes a user's account: the one admin update of every surface. The whole patch
    /// is checked first; then the change, what it brings (deactivation or a new password
    /// ends the user's sessions) and its audit rows are one transaction. An admin cannot
    /// demote or deactivate themself; the last active admin can be neither demoted nor
    /// deactivated.
    pub async fn update_user(
        &self,
        actor: Actor,
        id: Uuid,
        patch: UserPatch,
        meta: &RequestMeta,
    ) -> Result<UserRecord, Error> {
        self.limit(actor).await?;
        let before = self.get_user(id).await?;
        let at: Timestamp = self.shared.now().into();
        let mut change = plan_user_patch(&before, &patch, at)?;
        if let Some(password) = &patch.password {
            let email = change.email.as_deref().or(before.email.as_deref());
            self.shared
                .check_password(password, email, before.username.as_deref())?;
        }
        let demotes = change.role.as_deref().is_some_and(|role| role != "admin");
        if demotes {
            refuse_self(actor, id, "admins cannot demote themselves")?;
        }
        let deactivates = patch.is_active == Some(false);
        if deactivates {
            refuse_self(actor, id, "admins cannot deactivate themselves")?;
        }
        if let Some(password) = &patch.password {
            change.password_hash = self.identity().new_password(password).await?;
        }
        let role_only = patch.role.is_some()
            && patch.is_active.is_none()
            && patch.email.is_none()
            && patch.username.is_none()
            && patch.email_confirmed.is_none()
            && patch.user_metadata.is_none()
            && patch.app_metadata.is_none()
            && patch.banned_until.is_none()
            && patch.password.is_none();
        let mut audit = Vec::new();
        // A role change is audited as one; so is setting a role the user already has
        // (an admin action, if a no-op).
        if change.role.is_some() || role_only {
            let role_change = UserChange {
                role: change.role.clone(),
                ..UserChange::default()
            };
            let mut details = changes(&before, &role_change.applied_to(&before, at));
            details["via"] = json!(actor.via());
            audit.push(("admin.user_role_changed", details));
        }
        let after = change.applied_to(&before, at);
        if !role_only {
            let mut details = changes(&before, &after);
            details["via"] = json!(actor.via());
            details["password_changed"] = json!(patch.password.is_some());
            details["metadata_changed"] =
                json!(change.user_metadata.is_some() || change.app_metadata.is_some());
            if let Some(ban) = change.banned_until {
                details["banned_until"] = json!(ban.map(|b| b.to_string()));
            }
            audit.push(("admin.user_updated", details));
        }
        let ends_sessions = if deactivates {
            Some("deactivated")
        } else {
            patch.password.is_some().then_some("password_set_by_admin")
        };
        let keep_an_admin = (demotes || deactivates) && is_active_admin(&before);
        let mut tx = self.shared.store.begin().await?;
        let written = self
            .identity()
            .change_user(
                &mut tx,
                id,
                &change,
                patch.password.as_ref(),
                keep_an_admin,
                at,
            )
            .await?;
        outcome(written)?;
        if let Some(reason) = ends_sessions {
            self.identity()
                .end_sessions(&mut tx, id, None, reason)
                .await?;
        }
        if patch.password.is_some() {
            // A password an admin sets is a recovery: nothing the old one vouched for stays.
            tx.forget_trust(id).await?;
        }
        self.write_audit(&mut tx, actor, id, meta, audit).await?;
        tx.commit().await?;
        Ok(after)
    }

    async fn write_audit(
        &self,
        tx: &mut Transaction,
        actor: Actor,
        target: Uuid,
        meta: &RequestMeta,
        events: Vec<(&str, Value)>,
    ) -> Result<(), Error> {
        for (action, details) in events {
            let event = self
                .shared
                .audit_record(action, actor.id(), Some(target), meta, details);
            tx.insert_audit_event(&event).await?;
        }
        Ok(())
    }

    /// Deletes a user: softly by default (marked deleted, sessions ended, email and
    /// username freed), or with `hard` the rows themselves. Never the last active admin.
    pub async fn delete_user(
        &self,
        actor: Actor,
        id: Uuid,
        hard: bool,
        meta: &RequestMeta,
    ) -> Result<(), Error> {
        self.limit(actor).await?;
        let before = self.get_user(id).await?;
        refuse_self(actor, id, "admins cannot delete themselves")?;
        let at: Timestamp = self.shared.now().into();
        let details = json!({
            "hard": hard, "via": actor.via(),
            "before": { "email": before.email, "username": before.username, "role": before.role },
        });
        let keep_an_admin = is_active_admin(&before);
        let mut tx = self.shared.store.begin().await?;
        if hard {
            // The cascade takes the sessions with the row.
            outcome(
                self.identity()
                    .delete_user(&mut tx, id, keep_an_admin)
                    .await?,
            )?;
        } else {
            let change = UserChange {
                deleted_at: Some(at),
                ..UserChange::default()
            };
            let written = self
                .identity()
                .change_user(&mut tx, id, &change, None, keep_an_admin, at)
                .await?;
            outcome(written)?;
            self.identity()
                .end_sessions(&mut tx, id, None, "deleted")
                .await?;
        }
        let events = vec![("admin.user_deleted", details)];
        self.write_audit(&mut tx, actor, id, meta, events).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Ends every session of a user.
    pub async fn end_user_sessions(
        &self,
        actor: Actor,
        id: Uuid,
        meta: &RequestMeta,
    ) -> Result<u64, Error> {
        self.limit(actor).await?;
        self.get_user(id).await?;
        let mut tx = self.shared.store.begin().await?;
        let ended = self
            .identity()
            .end_sessions(&mut tx, id, None, "admin")
            .await?;
        let details = json!({ "sessions_ended": ended, "via": actor.via() });
        let events = vec![("admin.user_sessions_revoked", details)];
        self.write_audit(&mut tx, actor, id, meta, events).await?;
        tx.commit().await?;
        Ok(ended)
    }

    /// Creates an account with a role; generates a password when none is given and
    /// returns it, once. The user, its profile and the audit row are one transaction.
    pub async fn create_account(
        &self,
        actor: Actor,
        input: NewAccount,
        meta: &RequestMeta,
    ) -> Result<(UserRecord, Option<SecretString>), Error> {
        self.limit(actor).await?;
        check_role(&input.role)?;
        let mut input = input;
        let generated = match input.password {
            Some(_) => None,
            None => {
                // 128 random bits, with the digit and symbol the default policy asks for.
                let digit = random_bytes::<1>()?[0] % 10;
                let password =
                    SecretString::from(format!("{}-{digit}", b64url(&random_bytes::<16>()?)));
                input.password = Some(password.clone());
                Some(password)
            }
        };
        let new = self
            .shared
            .plan_account(input, generated.is_none(), true, false)
            .await?;
        let mut details = json!({ "role": new.role, "via": actor.via(), "generated_password": generated.is_some() });
        if let Some(until) = new.banned_until {
            details["banned_until"] = json!(until.to_string());
        }
        let written = async {
            let mut tx = self.shared.store.begin().await?;
            let user = tx.create_user(&new).await?;
            let events = vec![("admin.user_created", details)];
            self.write_audit(&mut tx, actor, user.id, meta, events)
                .await?;
            tx.commit().await?;
            Ok::<_, Error>(user)
        }
        .await;
        if written.is_err() {
            self.identity().unregister(new.id).await;
        }
        Ok((written?, generated))
    }

    /// Lifts the lock of the hard stop and forgets the user's failed sign-ins, under
    /// every identifier the user signs in with.
    pub async fn unlock_user(
        &self,
        actor: Actor,
        id: Uuid,
        meta: &RequestMeta,
    ) -> Result<UserRecord, Error> {
        self.limit(actor).await?;
        let user = self.get_user(id).await?;
        let details = json!({ "was_locked": user.locked_at.is_some(), "failed_sign_ins": user.failed_sign_ins, "via": actor.via() });
        let mut tx = self.shared.store.begin().await?;
        crate::protection::lift_hard_stop(&mut tx, &user).await?;
        let events = vec![("admin.user_unlocked", details)];
        self.write_audit(&mut tx, actor, id, meta, events).await?;
        tx.commit().await?;
        let mut after = user;
        after.failed_sign_ins = 0;
        after.locked_at = None;
        Ok(after)
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
            .shared
            .limit(Bucket::DeniedAudit, Some(&source))
            .await
            .is_err()
        {
            tracing::warn!(actor = ?actor, "refused admin request not audited: over the audit rate for this source");
            return Ok(());
        }
        self.shared
            .audit("authz.denied", actor, None, meta, details)
            .await
    }
}
