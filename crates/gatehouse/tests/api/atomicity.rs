//! One unit of work per action: when the audit row of an action cannot be written, nothing
//! of the action remains. A trigger installed by the test makes the database refuse the
//! audit insert of one action (`RAISE(ABORT)` on SQLite, `RAISE EXCEPTION` on Postgres);
//! the request then fails with an opaque 500, and every table reads as it did before.

use gatehouse_core::api_keys::ApiRole;
use gatehouse_core::store::{sqlx, with_pool, Backend};
use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{TestApp, PASSWORD};

const TABLES: [&str; 7] = [
    "users",
    "profiles",
    "sessions",
    "refresh_tokens",
    "sign_in_failures",
    "sign_in_trust",
    "audit_log",
];

impl TestApp {
    /// From now on the database refuses to write an audit event of `action` (and only of
    /// it): a trigger looks the action up in a table the test fills.
    async fn refuse_audit_of(&self, action: &str) {
        let store = self.gatehouse.store();
        let setup: &[&str] = match store.backend() {
            Backend::Sqlite => &[
                "CREATE TABLE IF NOT EXISTS refused_actions (action TEXT NOT NULL)",
                "CREATE TRIGGER IF NOT EXISTS refuse_audit BEFORE INSERT ON audit_log \
                 WHEN NEW.action IN (SELECT action FROM refused_actions) \
                 BEGIN SELECT RAISE(ABORT, 'audit refused'); END",
            ],
            Backend::Postgres => &[
                "CREATE TABLE IF NOT EXISTS refused_actions (action TEXT NOT NULL)",
                "CREATE OR REPLACE FUNCTION refuse_audit() RETURNS trigger AS $$ BEGIN \
                 IF EXISTS (SELECT 1 FROM refused_actions WHERE action = NEW.action) THEN \
                 RAISE EXCEPTION 'audit refused'; END IF; RETURN NEW; END $$ LANGUAGE plpgsql",
                "CREATE OR REPLACE TRIGGER refuse_audit BEFORE INSERT ON audit_log \
                 FOR EACH ROW EXECUTE FUNCTION refuse_audit()",
            ],
        };
        with_pool!(store, pool => {
            for sql in setup {
                sqlx::query(sql).execute(pool).await.unwrap();
            }
            sqlx::query("DELETE FROM refused_actions").execute(pool).await.unwrap();
            sqlx::query("INSERT INTO refused_actions (action) VALUES ($1)").bind(action).execute(pool).await.unwrap();
        });
    }

    /// Every row count, and every live user and their sessions as the store reads them.
    async fn snapshot(&self) -> String {
        let store = self.gatehouse.store();
        let mut out = String::new();
        for table in TABLES {
            let sql = format!("SELECT count(*) FROM {table}");
            let n: i64 =
                with_pool!(store, pool => sqlx::query_scalar(&sql).fetch_one(pool).await.unwrap());
            out.push_str(&format!("{table}: {n}\n"));
        }
        for user in store.list_users_by_offset(0, 1000).await.unwrap() {
            out.push_str(&format!("{user:?}\n"));
            for session in store.list_user_sessions(user.id).await.unwrap() {
                out.push_str(&format!("  {session:?}\n"));
            }
        }
        out
    }

    /// Refuses the audit row of `action`, runs `request`, and asserts a 500 that changed
    /// nothing.
    async fn refused(&self, action: &str, request: reqwest::RequestBuilder) {
        self.refuse_audit_of(action).await;
        let before = self.snapshot().await;
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 500, "{action}");
        // Opaque, in the surface's own words.
        let body: Value = response.json().await.unwrap();
        let code = body["error_code"].as_str().or(body["code"].as_str());
        assert!(
            matches!(code, Some("internal_error" | "unexpected_failure")),
            "{action}: {body}"
        );
        assert_eq!(
            self.snapshot().await,
            before,
            "{action}: the action left rows behind"
        );
    }

    fn service_role(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let key = self
            .gatehouse
            .keys
            .issue_api_key(ApiRole::ServiceRole)
            .unwrap();
        self.authed(method, path, &key)
    }

    /// A request through a cookie route, with CSRF.
    async fn with_csrf(
        &self,
        path: &str,
        refresh: Option<&str>,
        body: Value,
    ) -> reqwest::RequestBuilder {
        let csrf = self.csrf().await;
        let mut cookies = format!("{}={csrf}", crate::helpers::CSRF_COOKIE);
        if let Some(refresh) = refresh {
            cookies.push_str(&format!("; sb_refresh_token={refresh}"));
        }
        self.client
            .post(self.url(path))
            .header("x-csrf-token", &csrf)
            .header("cookie", cookies)
            .json(&body)
    }
}

on_both_backends! {
    async fn sign_up_and_sign_in_leave_nothing_when_their_audit_row_fails(app: TestApp) {
        let body = json!({"email": "grace@example.com", "password": PASSWORD});
        app.refused("user.signup", app.client.post(app.url("/auth/signup")).json(&body)).await;
        // GoTrue's sign-up also starts a session: neither the user nor the session remains.
        app.refused("user.signup", app.client.post(app.url("/auth/v1/signup")).json(&body)).await;

        app.refuse_audit_of("no.such_action").await;
        app.signup("ada@example.com", None).await;
        // A failure first, so that the sign-in has a counter to reset and a source to trust.
        assert_eq!(app.signin("ada@example.com", "wrong-Password-1").await.status(), 401);
        let signin = app.with_csrf("/auth/signin", None, json!({"email": "ada@example.com", "password": PASSWORD})).await;
        app.refused("user.signin", signin).await;
        let signin = app.with_csrf("/auth/signin", None, json!({"email": "ada@example.com", "password": "wrong-Password-2"})).await;
        app.refused("user.signin_failed", signin).await;
        // With the trigger gone, the same sign-in works: the refused ones were undone, not
        // half-done.
        app.refuse_audit_of("no.such_action").await;
        assert_eq!(app.signin("ada@example.com", PASSWORD).await.status(), 200);
    }

    async fn own_changes_and_sign_out_leave_nothing_when_their_audit_row_fails(app: TestApp) {
        app.signup("ada@example.com", None).await;
        let other = app.signin_ok("ada@example.com").await;
        let this = app.signin_ok("ada@example.com").await;
        let change = app
            .authed(Method::POST, "/auth/password", &this.access)
            .json(&json!({"currentPassword": PASSWORD, "newPassword": "orbit-Meadow-93!"}));
        app.refused("user.password_changed", change).await;
        let update = app
            .authed(Method::PUT, "/auth/v1/user", &this.access)
            .json(&json!({"email": "ada@example.org", "data": {"theme": "dark"}, "current_password": PASSWORD}));
        app.refused("user.updated", update).await;
        let logout = app.authed(Method::POST, "/auth/v1/logout?scope=global", &this.access);
        app.refused("session.logout", logout).await;
        let logout = app.with_csrf("/auth/logout", Some(&this.refresh), json!({})).await;
        app.refused("session.logout", logout).await;
        // Every session still works, with the old password.
        assert_eq!(app.me(&other.access).await.status(), 200);
        assert_eq!(app.me(&this.access).await.status(), 200);
        assert_eq!(app.signin("ada@example.com", PASSWORD).await.status(), 200);
    }

    async fn a_reused_refresh_token_keeps_its_session_when_the_audit_row_fails(app: TestApp) {
        app.signup("ada@example.com", None).await;
        let first = app.signin_ok("ada@example.com").await;
        let second = TestApp::signed(app.refresh(&first.refresh).await).await;
        app.clock.advance(std::time::Duration::from_secs(60));
        let reuse = app.with_csrf("/auth/refresh", Some(&first.refresh), json!({})).await;
        app.refused("session.refresh_token_reused", reuse).await;
        app.refuse_audit_of("no.such_action").await;
        assert_eq!(app.refresh(&second.refresh).await.status(), 200, "the session was not revoked");
    }

    async fn admin_changes_leave_nothing_when_their_audit_row_fails(app: TestApp) {
        let (_, admin) = app.admin("root@example.com").await;
        let target = app.create_account("ada@example.com", "admin").await;
        let ada = app.signin_ok("ada@example.com").await;
        let path = format!("/users/{target}");
        app.refused("admin.user_updated", app.authed(Method::PATCH, &path, &admin.access).json(&json!({"isActive": false, "email": "ada@example.org"}))).await;
        app.refused("admin.user_role_changed", app.authed(Method::PUT, &format!("{path}/role"), &admin.access).json(&json!({"role": "user"}))).await;
        app.refused("admin.user_deleted", app.authed(Method::DELETE, &path, &admin.access)).await;
        app.refused("admin.user_deleted", app.authed(Method::DELETE, &format!("{path}?hard=true"), &admin.access)).await;
        app.refused("admin.user_sessions_revoked", app.authed(Method::DELETE, &format!("{path}/sessions"), &admin.access)).await;
        app.refused("admin.user_unlocked", app.authed(Method::DELETE, &format!("{path}/lock"), &admin.access)).await;
        let gotrue = format!("/auth/v1/admin/users/{target}");
        let body = json!({"password": "orbit-Meadow-93!", "user_metadata": {"plan": "pro"}, "app_metadata": {"role": "user"}, "ban_duration": "24h"});
        app.refused("admin.user_role_changed", app.service_role(Method::PUT, &gotrue).json(&body)).await;
        app.refused("admin.user_updated", app.service_role(Method::PUT, &gotrue).json(&json!({"password": "orbit-Meadow-93!"}))).await;
        let create = json!({"email": "grace@example.com", "password": PASSWORD, "user_metadata": {"name": "Grace"}, "app_metadata": {"role": "admin"}});
        app.refused("admin.user_created", app.service_role(Method::POST, "/auth/v1/admin/users").json(&create)).await;
        // createUser with a ban is one write too: refused, no user; allowed, the user is
        // banned from its first row, with one audit event.
        let banned = json!({"email": "mallory@example.com", "password": PASSWORD, "ban_duration": "24h"});
        app.refused("admin.user_created", app.service_role(Method::POST, "/auth/v1/admin/users").json(&banned)).await;
        app.refuse_audit_of("no.such_action").await;
        let before = app.audit_actions().await.len();
        let created = app.service_role(Method::POST, "/auth/v1/admin/users").json(&banned).send().await.unwrap();
        assert_eq!(created.status(), 200);
        let created: Value = created.json().await.unwrap();
        assert!(created["banned_until"].is_string(), "{created}");
        assert_eq!(app.audit_actions().await[before..], ["admin.user_created"]);
        // Ada is still an active admin, signed in, with her password.
        assert_eq!(app.me(&ada.access).await.status(), 200);
        let user = app.gatehouse.admin.get_user(target).await.unwrap();
        assert_eq!((user.role.as_str(), user.is_active, user.banned_until), ("admin", true, None));
    }
}
