//! Roles and user management: the admin's view of users, changes guarded so that an admin
//! cannot lock themself out and the deployment always keeps an active admin, and the
//! audit trail of every change with what it was before and after.

use gatehouse_store::{
    user_sort_key, AuditQuery, AuditRecord, ChangeOutcome, SortKey, Timestamp, UserChange,
    UserEffects, UserFilter, UserPageQuery, UserRecord, UserSort,
};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::audit::RequestMeta;
use crate::crypto::{b64url, b64url_decode, random_bytes};
use crate::sessions::Principal;
use crate::{validate, Error, Gatehouse};

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

/// A request for one page of users.
#[derive(Debug, Clone, Default)]
pub struct UserListQuery {
    pub limit: Option<i64>,
    pub cursor: Option<String>,
    pub filter: UserFilter,
    pub sort: Option<UserSort>,
    pub descending: bool,
    pub count: bool,
}

/// One page of users.
#[derive(Debug, Clone)]
pub struct UserPage {
    pub users: Vec<UserRecord>,
    pub next_cursor: Option<String>,
    pub total: Option<i64>,
}

/// One page of audit events.
#[derive(Debug, Clone)]
pub struct AuditPage {
    pub events: Vec<AuditRecord>,
    pub next_cursor: Option<String>,
}

/// A change an admin makes to a user's account.
#[derive(Debug, Clone, Default)]
pub struct UserPatch {
    pub is_active: Option<bool>,
    pub email: Option<String>,
    pub username: Option<Option<String>>,
    pub email_confirmed: Option<bool>,
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
}

#[derive(Serialize, Deserialize)]
struct Cursor {
    s: String,
    d: bool,
    k: String,
    i: Uuid,
}

fn sort_name(sort: UserSort) -> &'static str {
    match sort {
        UserSort::CreatedAt => "createdAt",
        UserSort::Email => "email",
    }
}

fn encode_cursor(sort: &str, descending: bool, key: String, id: Uuid) -> String {
    let cursor = Cursor {
        s: sort.to_owned(),
        d: descending,
        k: key,
        i: id,
    };
    b64url(
        serde_json::to_string(&cursor)
            .unwrap_or_default()
            .as_bytes(),
    )
}

/// The cursor of the page that starts after `user` in this order: what `list_users` hands
/// out as `next_cursor`. Public so that tools (the benchmark's deep-page scenario) can
/// start anywhere in a list without paging to it.
pub fn user_cursor(user: &UserRecord, sort: UserSort, descending: bool) -> String {
    let key = match user_sort_key(user, sort) {
        SortKey::Time(t) => t.to_string(),
        SortKey::Text(s) => s,
    };
    encode_cursor(sort_name(sort), descending, key, user.id)
}

pub(crate) fn decode_cursor(
    raw: &str,
    sort: &str,
    descending: bool,
) -> Result<(String, Uuid), Error> {
    let bad = || Error::invalid_query("cursor", "is not a cursor this list issued");
    let bytes = b64url_decode(raw)
        .filter(|b| b.len() <= 1024)
        .ok_or_else(bad)?;
    let cursor: Cursor = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    if cursor.s != sort || cursor.d != descending {
        return Err(Error::invalid_query(
            "cursor",
            "was issued for another sort order; start again without it",
        ));
    }
    Ok((cursor.k, cursor.i))
}

fn parse_time(raw: &str) -> Option<Timestamp> {
    OffsetDateTime::parse(raw, &Rfc3339)
        .ok()
        .map(Timestamp::new)
}

fn is_active_admin(user: &UserRecord) -> bool {
    user.role == "admin" && user.is_active && user.deleted_at.is_none()
}

pub(crate) fn changes(before: &UserRecord, after: &UserRecord) -> Value {
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

/// Checks an admin's patch and turns it into one change, writing nothing.
pub fn plan_user_patch(patch: &UserPatch, at: Timestamp) -> Result<UserChange, Error> {
    let email = patch.email.as_deref().map(validate::email).transpose()?;
    let username = match &patch.username {
        Some(Some(name)) => Some(Some(validate::username(name)?)),
        Some(None) => Some(None),
        None => None,
    };
    Ok(UserChange {
        is_active: patch.is_active,
        email,
        username,
        email_confirmed_at: patch.email_confirmed.map(|c| c.then_some(at)),
        ..UserChange::default()
    })
}

impl Gatehouse {
    /// Admits only a caller whose role, as the database has it now, is `admin`.
    pub fn require_admin(&self, principal: &Principal) -> Result<Actor, Error> {
        if is_active_admin(&principal.user) {
            Ok(Actor::Admin(principal.user.id))
        } else {
            Err(Error::Forbidden("this needs the admin role"))
        }
    }

    /// One page of live users.
    pub async fn list_users(&self, query: UserListQuery) -> Result<UserPage, Error> {
        let limit = query.limit.unwrap_or(DEFAULT_PAGE);
        if !(1..=MAX_PAGE).contains(&limit) {
            return Err(Error::invalid_query("limit", "must be between 1 and 100"));
        }
        if let Some(role) = &query.filter.role {
            if !ROLES.contains(&role.as_str()) {
                return Err(Error::invalid_query("role", "must be user or admin"));
            }
        }
        if query
            .filter
            .q
            .as_ref()
            .is_some_and(|q| q.chars().count() > 320)
        {
            return Err(Error::invalid_query("q", "must be at most 320 characters"));
        }
        let sort = query.sort.unwrap_or(UserSort::CreatedAt);
        let name = sort_name(sort);
        let after = match &query.cursor {
            None => None,
            Some(raw) => {
                let (key, id) = decode_cursor(raw, name, query.descending)?;
                let key = match sort {
                    UserSort::CreatedAt => SortKey::Time(parse_time(&key).ok_or_else(|| {
                        Error::invalid_query("cursor", "is not a cursor this list issued")
                    })?),
                    UserSort::Email => SortKey::Text(key),
                };
                Some((key, id))
            }
        };
        let page = UserPageQuery {
            filter: query.filter.clone(),
            sort,
            descending: query.descending,
            after,
            limit: limit + 1,
        };
        let mut users = self.store.list_users(&page).await?;
        let more = users.len() > usize::try_from(limit).unwrap_or(usize::MAX);
        users.truncate(usize::try_from(limit).unwrap_or(0));
        let next_cursor = match users.last() {
            Some(last) if more => Some(user_cursor(last, sort, query.descending)),
            _ => None,
        };
        let total = if query.count {
            Some(self.store.count_users(&query.filter).await?)
        } else {
            None
        };
        Ok(UserPage {
            users,
            next_cursor,
            total,
        })
    }

    /// A live user.
    pub async fn get_user(&self, id: Uuid) -> Result<UserRecord, Error> {
        self.store
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
                .store
                .find_user_by_email(email_or_id)
                .await?
                .ok_or(Error::NotFound),
        }
    }

    /// Writes `change` with its `effects` in one transaction; a guard that refuses it
    /// (the last admin, a user deleted meanwhile) leaves nothing written.
    pub(crate) async fn apply(
        &self,
        target: &UserRecord,
        change: &UserChange,
        removes_admin: bool,
        at: Timestamp,
        effects: &UserEffects,
    ) -> Result<(), Error> {
        let keep_an_admin = removes_admin && is_active_admin(target);
        match self
            .store
            .change_user_with(target.id, change, keep_an_admin, at, effects)
            .await?
            .0
        {
            ChangeOutcome::Changed => Ok(()),
            ChangeOutcome::NotFound => Err(Error::NotFound),
            ChangeOutcome::LastAdmin => Err(Error::Conflict {
                code: "last_admin",
                message: "this would leave no active admin",
            }),
        }
    }

    pub(crate) fn refuse_self(actor: Actor, target: Uuid, what: &'static str) -> Result<(), Error> {
        if actor.id() == Some(target) {
            return Err(Error::Conflict {
                code: "cannot_modify_self",
                message: what,
            });
        }
        Ok(())
    }

    /// Sets a user's role. An admin cannot demote themself; the last active admin cannot
    /// be demoted.
    pub async fn set_role(
        &self,
        actor: Actor,
        id: Uuid,
        role: &str,
        meta: &RequestMeta,
    ) -> Result<UserRecord, Error> {
        self.limit_admin(actor).await?;
        if !ROLES.contains(&role) {
            return Err(Error::invalid("role", "must be user or admin"));
        }
        let before = self.get_user(id).await?;
        if role != "admin" {
            Self::refuse_self(actor, id, "admins cannot demote themselves")?;
        }
        let change = UserChange {
            role: Some(role.to_owned()),
            ..UserChange::default()
        };
        let at: Timestamp = self.now().into();
        let mut details = changes(&before, &change.applied_to(&before, at));
        details["via"] = json!(actor.via());
        let effects = UserEffects {
            end_sessions: None,
            audit: vec![self.audit_record(
                "admin.user_role_changed",
                actor.id(),
                Some(id),
                meta,
                details,
            )],
            ..UserEffects::default()
        };
        self.apply(&before, &change, role != "admin", at, &effects)
            .await?;
        self.get_user(id).await
    }

    /// Changes a user's account. Deactivation ends the user's sessions; an admin cannot
    /// deactivate themself; the last active admin cannot be deactivated.
    pub async fn update_user(
        &self,
        actor: Actor,
        id: Uuid,
        patch: UserPatch,
        meta: &RequestMeta,
    ) -> Result<UserRecord, Error> {
        self.limit_admin(actor).await?;
        let before = self.get_user(id).await?;
        let at: Timestamp = self.now().into();
        let change = plan_user_patch(&patch, at)?;
        let deactivates = patch.is_active == Some(false);
        if deactivates {
            Self::refuse_self(actor, id, "admins cannot deactivate themselves")?;
        }
        let mut details = changes(&before, &change.applied_to(&before, at));
        details["via"] = json!(actor.via());
        let effects = UserEffects {
            end_sessions: deactivates.then_some("deactivated"),
            audit: vec![self.audit_record(
                "admin.user_updated",
                actor.id(),
                Some(id),
                meta,
                details,
            )],
            ..UserEffects::default()
        };
        self.apply(&before, &change, deactivates, at, &effects)
            .await?;
        self.get_user(id).await
    }

    /// Deletes a user: softly by default (marked deleted, sessions ended, email and
    /// username freed), or with `hard` the rows themselves.
    pub async fn delete_user(
        &self,
        actor: Actor,
        id: Uuid,
        hard: bool,
        meta: &RequestMeta,
    ) -> Result<(), Error> {
        self.limit_admin(actor).await?;
        let before = self.get_user(id).await?;
        Self::refuse_self(actor, id, "admins cannot delete themselves")?;
        let at: Timestamp = self.now().into();
        let details = json!({
            "hard": hard, "via": actor.via(),
            "before": { "email": before.email, "username": before.username, "role": before.role },
        });
        let audit =
            vec![self.audit_record("admin.user_deleted", actor.id(), Some(id), meta, details)];
        if hard {
            // The cascade takes the sessions with the row.
            let effects = UserEffects {
                end_sessions: None,
                audit,
                ..UserEffects::default()
            };
            match self
                .store
                .delete_user(id, is_active_admin(&before), at, &effects)
                .await?
            {
                ChangeOutcome::Changed => {}
                ChangeOutcome::NotFound => return Err(Error::NotFound),
                ChangeOutcome::LastAdmin => {
                    return Err(Error::Conflict {
                        code: "last_admin",
                        message: "this would leave no active admin",
                    })
                }
            }
        } else {
            let change = UserChange {
                deleted_at: Some(at),
                ..UserChange::default()
            };
            let effects = UserEffects {
                end_sessions: Some("deleted"),
                audit,
                ..UserEffects::default()
            };
            self.apply(&before, &change, true, at, &effects).await?;
        }
        Ok(())
    }

    /// Ends every session of a user.
    pub async fn end_user_sessions(
        &self,
        actor: Actor,
        id: Uuid,
        meta: &RequestMeta,
    ) -> Result<u64, Error> {
        self.limit_admin(actor).await?;
        self.get_user(id).await?;
        let ended = self
            .store
            .revoke_user_sessions(id, None, self.now().into(), "admin")
            .await?;
        self.audit(
            "admin.user_sessions_revoked",
            actor.id(),
            Some(id),
            meta,
            json!({ "sessions_ended": ended, "via": actor.via() }),
        )
        .await?;
        Ok(ended)
    }

    /// Creates an account with a role; generates a password when none is given and
    /// returns it, once.
    pub async fn create_account(
        &self,
        actor: Actor,
        input: NewAccount,
        meta: &RequestMeta,
    ) -> Result<(UserRecord, Option<SecretString>), Error> {
        self.limit_admin(actor).await?;
        if !ROLES.contains(&input.role.as_str()) {
            return Err(Error::invalid("role", "must be user or admin"));
        }
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
        let user = self.insert_account(input, generated.is_none()).await?;
        let details = json!({ "role": user.role, "via": actor.via(), "generated_password": generated.is_some() });
        self.audit(
            "admin.user_created",
            actor.id(),
            Some(user.id),
            meta,
            details,
        )
        .await?;
        Ok((user, generated))
    }

    /// One page of audit events, newest first.
    pub async fn list_audit(
        &self,
        mut query: AuditQuery,
        limit: Option<i64>,
        cursor: Option<&str>,
    ) -> Result<AuditPage, Error> {
        let limit = limit.unwrap_or(DEFAULT_PAGE);
        if !(1..=MAX_PAGE).contains(&limit) {
            return Err(Error::invalid_query("limit", "must be between 1 and 100"));
        }
        if let Some(raw) = cursor {
            let (key, id) = decode_cursor(raw, "audit", true)?;
            let at = parse_time(&key).ok_or_else(|| {
                Error::invalid_query("cursor", "is not a cursor this list issued")
            })?;
            query.cursor = Some((at, id));
        }
        query.limit = limit + 1;
        let mut events = self.store.list_audit_events(&query).await?;
        let more = events.len() > usize::try_from(limit).unwrap_or(usize::MAX);
        events.truncate(usize::try_from(limit).unwrap_or(0));
        let next_cursor = match events.last() {
            Some(last) if more => Some(encode_cursor(
                "audit",
                true,
                last.created_at.to_string(),
                last.id,
            )),
            _ => None,
        };
        Ok(AuditPage {
            events,
            next_cursor,
        })
    }

    /// Parses an RFC 3339 time of a query parameter.
    pub fn parse_query_time(param: &'static str, raw: &str) -> Result<Timestamp, Error> {
        parse_time(raw).ok_or_else(|| {
            Error::invalid_query(param, "must be an RFC 3339 time, e.g. 2026-11-21T00:00:00Z")
        })
    }

    /// A password given on the command line's standard input.
    pub fn password_from(raw: &str) -> SecretString {
        SecretString::from(raw.trim_end_matches(['\r', '\n']).to_owned())
    }

    /// The exposed value of a generated password, for printing it once.
    pub fn reveal(password: &SecretString) -> &str {
        password.expose_secret()
    }
}

impl Gatehouse {
    /// Admin writes are rate-limited per admin (and for the service-role key as one);
    /// operators at the CLI are not.
    pub(crate) async fn limit_admin(&self, actor: Actor) -> Result<(), Error> {
        let key = match actor {
            Actor::Admin(id) => Some(id.to_string()),
            Actor::ServiceKey => Some("service_role".to_owned()),
            Actor::Operator => None,
        };
        self.limit(crate::ratelimit::Bucket::AdminWrite, key.as_deref())
            .await
    }
}

impl Gatehouse {
    /// Lifts the lock of the hard stop and forgets the user's failed sign-ins.
    pub async fn unlock_user(
        &self,
        actor: Actor,
        id: Uuid,
        meta: &RequestMeta,
    ) -> Result<UserRecord, Error> {
        self.limit_admin(actor).await?;
        let user = self.get_user(id).await?;
        self.store.reset_user_failures(id, true).await?;
        let mut identifiers = Vec::new();
        if let Some(email) = &user.email {
            identifiers.push(format!("email:{}", email.to_lowercase()));
        }
        if let Some(username) = &user.username {
            identifiers.push(format!("username:{}", username.to_lowercase()));
        }
        self.store.clear_all_sign_in_failures(&identifiers).await?;
        let details = json!({ "was_locked": user.locked_at.is_some(), "failed_sign_ins": user.failed_sign_ins, "via": actor.via() });
        self.audit("admin.user_unlocked", actor.id(), Some(id), meta, details)
            .await?;
        self.get_user(id).await
    }
}
