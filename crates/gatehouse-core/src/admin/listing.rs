//! Listing for the admin: keyset-paginated pages of users and of audit events, with
//! opaque cursors bound to the order they were issued for.

use gatehouse_store::{
    user_sort_key, AuditQuery, AuditRecord, SortKey, Timestamp, UserFilter, UserPageQuery,
    UserRecord, UserSort,
};
use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{Admin, DEFAULT_PAGE, MAX_PAGE, ROLES};
use crate::crypto::{b64url, b64url_decode};
use crate::Error;

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

pub(crate) fn parse_time(raw: &str) -> Option<Timestamp> {
    OffsetDateTime::parse(raw, &Rfc3339)
        .ok()
        .map(Timestamp::new)
}

impl Admin {
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
        let mut users = self.shared.store.list_users(&page).await?;
        let more = users.len() > usize::try_from(limit).unwrap_or(usize::MAX);
        users.truncate(usize::try_from(limit).unwrap_or(0));
        let next_cursor = match users.last() {
            Some(last) if more => Some(user_cursor(last, sort, query.descending)),
            _ => None,
        };
        let total = if query.count {
            Some(self.shared.store.count_users(&query.filter).await?)
        } else {
            None
        };
        Ok(UserPage {
            users,
            next_cursor,
            total,
        })
    }

    /// Live users, newest first, by page number (GoTrue's `page`/`per_page`); and how
    /// many there are.
    pub async fn list_users_by_page(
        &self,
        page: i64,
        per_page: i64,
    ) -> Result<(Vec<UserRecord>, i64), Error> {
        let store = &self.shared.store;
        let offset = (page - 1).saturating_mul(per_page);
        let users = store.list_users_by_offset(offset, per_page).await?;
        let total = store.count_users(&UserFilter::default()).await?;
        Ok((users, total))
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
        let mut events = self.shared.store.list_audit_events(&query).await?;
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
}
