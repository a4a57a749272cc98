//! Sessions: refresh rotation, the grace interval, reuse detection, logout, password
//! change, idle and absolute lifetimes, and bcrypt imports. Time moves with the clock.

use std::time::Duration;

use gatehouse_core::store::{Backend, NewUser};
use gatehouse_core::Settings;
use serde_json::json;

use crate::helpers::{assert_error, cookie_value, set_cookie, TestApp, PASSWORD};

on_both_backends! {
    async fn refresh_rotates_the_cookie_and_issues_a_new_access_token(app: TestApp) {
        app.signup("ada@example.com", None).await;
        let first = app.signin_ok("ada@example.com").await;
        app.clock.advance(Duration::from_secs(60));
        let response = app.refresh(&first.refresh).await;
        assert_eq!(response.status(), 200);
        assert!(set_cookie(&response, "sb_refresh_token").unwrap().contains("HttpOnly"));
        let second = TestApp::signed(response).await;
        assert_ne!(second.refresh, first.refresh, "rotated");
        assert_ne!(second.access, first.access);
        assert_eq!(app.me(&second.access).await.status(), 200);
        let third = TestApp::signed(app.refresh(&second.refresh).await).await;
        assert_ne!(third.refresh, second.refresh);
    }

    async fn a_rotated_token_within_the_grace_returns_the_same_successor(app: TestApp) {
        app.signup("ada@example.com", None).await;
        let first = app.signin_ok("ada@example.com").await;
        let second = TestApp::signed(app.refresh(&first.refresh).await).await;
        app.clock.advance(Duration::from_secs(9));
        let again = app.refresh(&first.refresh).await;
        assert_eq!(again.status(), 200);
        assert_eq!(cookie_value(&again, "sb_refresh_token").unwrap(), second.refresh, "the same successor");
        assert_eq!(app.refresh(&second.refresh).await.status(), 200, "the successor still works");
    }

    async fn two_concurrent_refreshes_with_the_same_token_both_succeed(app: TestApp) {
        app.signup("ada@example.com", None).await;
        let first = app.signin_ok("ada@example.com").await;
        let (a, b) = tokio::join!(app.refresh(&first.refresh), app.refresh(&first.refresh));
        assert_eq!((a.status().as_u16(), b.status().as_u16()), (200, 200));
        let (a, b) = (cookie_value(&a, "sb_refresh_token").unwrap(), cookie_value(&b, "sb_refresh_token").unwrap());
        assert_eq!(a, b, "both tabs hold the same successor");
        assert_eq!(app.refresh(&a).await.status(), 200);
    }

    async fn reuse_after_the_grace_revokes_the_whole_session_and_is_audited(app: TestApp) {
        app.signup("ada@example.com", None).await;
        let first = app.signin_ok("ada@example.com").await;
        let second = TestApp::signed(app.refresh(&first.refresh).await).await;
        let other_session = app.signin_ok("ada@example.com").await;
        app.clock.advance(Duration::from_secs(11));
        let stolen = app.refresh(&first.refresh).await;
        let cleared = set_cookie(&stolen, "sb_refresh_token").unwrap();
        assert!(cleared.contains("Max-Age=0"), "{cleared}");
        assert_error(stolen, 401, "refresh_token_reused").await;
        assert_error(app.refresh(&second.refresh).await, 401, "refresh_token_invalid").await;
        assert_error(app.me(&second.access).await, 401, "unauthorized").await;
        assert_eq!(app.refresh(&other_session.refresh).await.status(), 200, "other sessions are untouched");
        assert!(app.audit_actions().await.contains(&"session.refresh_token_reused".to_owned()));
    }

    async fn logout_ends_the_session_and_clears_the_cookie(app: TestApp) {
        app.signup("ada@example.com", None).await;
        let signed = app.signin_ok("ada@example.com").await;
        let response = app.cookie_post("/auth/logout", Some(&signed.refresh), None).await;
        assert_eq!(response.status(), 200);
        let cleared = set_cookie(&response, "sb_refresh_token").unwrap();
        assert!(cleared.starts_with("sb_refresh_token=;") && cleared.contains("Max-Age=0"), "{cleared}");
        assert_eq!(response.json::<serde_json::Value>().await.unwrap(), json!({"ok": true}));
        assert_error(app.refresh(&signed.refresh).await, 401, "refresh_token_invalid").await;
        assert_error(app.me(&signed.access).await, 401, "unauthorized").await;
        let again = app.cookie_post("/auth/logout", Some(&signed.refresh), None).await;
        assert_eq!(again.status(), 200, "logout is idempotent");
        assert_eq!(app.audit_actions().await.iter().filter(|a| *a == "session.logout").count(), 1);
    }

    async fn refresh_without_a_cookie_or_with_a_made_up_one_is_401(app: TestApp) {
        assert_error(app.cookie_post("/auth/refresh", None, None).await, 401, "refresh_token_invalid").await;
        for fake in ["x", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", &"y".repeat(5000), "%00%01"] {
            assert_error(app.refresh(fake).await, 401, "refresh_token_invalid").await;
        }
    }

    async fn an_access_token_expires_with_the_clock_and_refresh_renews_it(app: TestApp) {
        app.signup("ada@example.com", None).await;
        let signed = app.signin_ok("ada@example.com").await;
        app.clock.advance(Duration::from_secs(30 * 60 + 6));
        assert_error(app.me(&signed.access).await, 401, "unauthorized").await;
        let renewed = TestApp::signed(app.refresh(&signed.refresh).await).await;
        assert_eq!(app.me(&renewed.access).await.status(), 200);
    }

    async fn changing_the_password_needs_the_current_one_and_ends_every_other_session(app: TestApp) {
        app.signup("ada@example.com", Some("ada")).await;
        let here = app.signin_ok("ada@example.com").await;
        let elsewhere = app.signin_ok("ada@example.com").await;
        let change = |current: &str, new: &str| {
            app.client.post(app.url("/auth/password")).bearer_auth(&here.access)
                .json(&json!({"currentPassword": current, "newPassword": new})).send()
        };
        assert_error(change("wrong-Password-1", "orbit-Meadow-93!").await.unwrap(), 400, "current_password_invalid").await;
        let weak = assert_error(change(PASSWORD, "short").await.unwrap(), 422, "weak_password").await;
        assert!(weak["details"]["reasons"].as_array().unwrap().contains(&json!("length")));
        let response = change(PASSWORD, "orbit-Meadow-93!").await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.json::<serde_json::Value>().await.unwrap(), json!({"ok": true, "sessionsEnded": 1}));
        assert_error(app.refresh(&elsewhere.refresh).await, 401, "refresh_token_invalid").await;
        assert_error(app.me(&elsewhere.access).await, 401, "unauthorized").await;
        assert_eq!(app.me(&here.access).await.status(), 200, "this session stays");
        assert_error(app.signin("ada@example.com", PASSWORD).await, 401, "auth_invalid_credentials").await;
        assert_eq!(app.signin("ada@example.com", "orbit-Meadow-93!").await.status(), 200);
        let actions = app.audit_actions().await;
        assert!(actions.contains(&"user.password_changed".to_owned()) && actions.contains(&"user.password_change_failed".to_owned()));
    }

    async fn a_bcrypt_hash_imported_from_supabase_verifies_and_becomes_argon2id(app: TestApp) {
        let now = app.gatehouse.now();
        let hash = bcrypt::hash("imported-Pass-1!", 4).unwrap().replacen("$2b$", "$2a$", 1);
        app.gatehouse.store().import_users(&[NewUser {
            id: uuid::Uuid::new_v4(),
            email: "imported@example.com".into(),
            username: None,
            password_hash: Some(hash),
            role: "user".into(),
            app_metadata: json!({"provider": "email", "providers": ["email"]}),
            user_metadata: json!({}),
            email_confirmed_at: Some(now.into()),
            banned_until: None,
            display_name: None,
            created_at: now.into(),
        }]).await.unwrap();
        assert_error(app.signin("imported@example.com", "imported-pass-1!").await, 401, "auth_invalid_credentials").await;
        let stored = app.gatehouse.store().find_user_by_email("imported@example.com").await.unwrap().unwrap();
        assert!(stored.password_hash.unwrap().starts_with("$2a$"), "a failed sign-in changes nothing");
        assert_eq!(app.signin("imported@example.com", "imported-Pass-1!").await.status(), 200);
        let stored = app.gatehouse.store().find_user_by_email("imported@example.com").await.unwrap().unwrap();
        assert!(stored.password_hash.unwrap().starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert_eq!(app.signin("imported@example.com", "imported-Pass-1!").await.status(), 200);
    }
}

async fn short_sessions(backend: Backend) -> TestApp {
    let settings = Settings {
        session_idle_timeout: Duration::from_secs(3600),
        session_max_lifetime: Duration::from_secs(2 * 3600),
        ..Settings::default()
    };
    TestApp::spawn_with(backend, settings).await
}

async fn idle_and_absolute_lifetimes(app: TestApp) {
    app.signup("ada@example.com", None).await;
    let idle = app.signin_ok("ada@example.com").await;
    let mut active = app.signin_ok("ada@example.com").await;
    let cookie = set_cookie(
        &app.signin("ada@example.com", PASSWORD).await,
        "sb_refresh_token",
    )
    .unwrap();
    assert!(
        cookie.contains("Max-Age=3600"),
        "the cookie lives as long as the idle timeout: {cookie}"
    );
    for _ in 0..2 {
        app.clock.advance(Duration::from_secs(50 * 60));
        active = TestApp::signed(app.refresh(&active.refresh).await).await;
    }
    assert_error(
        app.refresh(&idle.refresh).await,
        401,
        "refresh_token_invalid",
    )
    .await;
    app.clock.advance(Duration::from_secs(21 * 60));
    assert_error(
        app.refresh(&active.refresh).await,
        401,
        "refresh_token_invalid",
    )
    .await;
}

mod a_session_ends_after_its_idle_timeout_and_its_absolute_lifetime {
    use super::*;

    #[tokio::test]
    async fn sqlite() {
        idle_and_absolute_lifetimes(short_sessions(Backend::Sqlite).await).await;
    }

    #[tokio::test]
    async fn postgres() {
        idle_and_absolute_lifetimes(short_sessions(Backend::Postgres).await).await;
    }
}
