//! Abuse resistance: rate limits (per IP, per account and IP, shared through Redis),
//! the client IP behind trusted proxies, security headers, CORS, and request bounds.

use std::time::Duration;

use gatehouse_core::ratelimit::{Rate, RateLimits};
use gatehouse_core::store::Backend;
use gatehouse_core::Settings;
use serde_json::json;

use crate::helpers::{assert_error, TestApp, PASSWORD};

fn tight(limits: impl FnOnce(&mut RateLimits)) -> Settings {
    let mut rate_limits = RateLimits::default();
    limits(&mut rate_limits);
    Settings {
        rate_limits,
        ..Settings::default()
    }
}

/// A server that believes X-Forwarded-For from the loopback peer, so tests can speak from
/// many addresses.
async fn behind_proxy(settings: Settings) -> TestApp {
    TestApp::spawn_configured(Backend::Sqlite, settings, |http| {
        http.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await
}

async fn signin_from(app: &TestApp, ip: &str, email: &str, password: &str) -> reqwest::Response {
    app.signin_from(ip, email, password).await
}

#[tokio::test]
async fn hammering_one_account_from_one_ip_is_throttled_while_its_owner_signs_in_elsewhere() {
    let app = behind_proxy(tight(|l| {
        l.signin_account_ip = Rate::per(3, Duration::from_secs(60))
    }))
    .await;
    app.signup("ada@example.com", None).await;
    for _ in 0..3 {
        assert_error(
            signin_from(&app, "198.51.100.66", "ada@example.com", "wrong-Guess-1!").await,
            401,
            "auth_invalid_credentials",
        )
        .await;
    }
    let limited = signin_from(&app, "198.51.100.66", "ada@example.com", PASSWORD).await;
    assert_eq!(
        limited.headers()["retry-after"],
        "20",
        "one token comes back every 60/3 s"
    );
    let body = assert_error(limited, 429, "rate_limited").await;
    assert_eq!(body["details"]["retryAfter"], 20);
    assert_eq!(
        signin_from(&app, "203.0.113.7", "ada@example.com", PASSWORD)
            .await
            .status(),
        200,
        "the owner, elsewhere, is not locked out"
    );
    app.clock.advance(Duration::from_secs(20));
    assert_eq!(
        signin_from(&app, "198.51.100.66", "ada@example.com", PASSWORD)
            .await
            .status(),
        200,
        "the bucket refills"
    );
}

#[tokio::test]
async fn a_spray_over_many_accounts_from_one_ip_is_throttled() {
    let app = behind_proxy(tight(|l| {
        l.signin_ip = Rate::per(5, Duration::from_secs(60))
    }))
    .await;
    for i in 0..5 {
        let response = signin_from(
            &app,
            "198.51.100.9",
            &format!("victim{i}@example.com"),
            PASSWORD,
        )
        .await;
        assert_eq!(response.status(), 401);
    }
    assert_error(
        signin_from(&app, "198.51.100.9", "victim9@example.com", PASSWORD).await,
        429,
        "rate_limited",
    )
    .await;
    assert_eq!(
        signin_from(&app, "198.51.100.10", "victim9@example.com", PASSWORD)
            .await
            .status(),
        401,
        "other addresses are unaffected"
    );
}

#[tokio::test]
async fn a_client_cannot_choose_its_address_when_no_proxy_is_trusted() {
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        tight(|l| l.signin_ip = Rate::per(2, Duration::from_secs(60))),
    )
    .await;
    for i in 0..2 {
        assert_eq!(
            signin_from(&app, &format!("10.9.9.{i}"), "x@example.com", PASSWORD)
                .await
                .status(),
            401
        );
    }
    assert_error(
        signin_from(&app, "10.9.9.99", "x@example.com", PASSWORD).await,
        429,
        "rate_limited",
    )
    .await;
}

#[tokio::test]
async fn sign_ups_refreshes_and_password_changes_are_limited_too() {
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        tight(|l| {
            l.signup_ip = Rate::per(2, Duration::from_secs(3600));
            l.refresh_ip = Rate::per(2, Duration::from_secs(60));
            l.password_account = Rate::per(1, Duration::from_secs(900));
        }),
    )
    .await;
    app.signup("a@example.com", None).await;
    app.signup("b@example.com", None).await;
    let third = app
        .post_json(
            "/auth/signup",
            json!({"email": "c@example.com", "password": PASSWORD}),
        )
        .await;
    assert_error(third, 429, "rate_limited").await;
    let signed = app.signin_ok("a@example.com").await;
    let second = crate::helpers::TestApp::signed(app.refresh(&signed.refresh).await).await;
    let third = crate::helpers::TestApp::signed(app.refresh(&second.refresh).await).await;
    assert_error(app.refresh(&third.refresh).await, 429, "rate_limited").await;
    let change = |new: &str| {
        app.client
            .post(app.url("/auth/password"))
            .bearer_auth(&signed.access)
            .json(&json!({"currentPassword": PASSWORD, "newPassword": new}))
            .send()
    };
    // A weak password is refused before the limit is consulted (the whole request is
    // validated first, on both surfaces): it costs no attempt. The first real change goes
    // through; the next is over the limit.
    assert_error(change("short").await.unwrap(), 422, "weak_password").await;
    assert_eq!(change("orbit-Meadow-93!").await.unwrap().status(), 200);
    assert_error(
        change("orbit-Meadow-94!").await.unwrap(),
        429,
        "rate_limited",
    )
    .await;
    let gotrue = app
        .client
        .post(app.url("/auth/v1/signup"))
        .header("x-supabase-api-version", "2024-01-01")
        .json(&json!({"email": "d@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(gotrue.status(), 429);
    assert!(gotrue.headers().contains_key("retry-after"));
    assert_eq!(
        gotrue.json::<serde_json::Value>().await.unwrap()["code"],
        "over_request_rate_limit"
    );
}

/// A TCP relay to the local Redis that the test can cut, as an outage would.
async fn redis_relay() -> (String, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let mut conns = Vec::new();
        loop {
            tokio::select! {
                _ = &mut stop_rx => break,
                accepted = listener.accept() => {
                    let Ok((mut inbound, _)) = accepted else { break };
                    conns.push(tokio::spawn(async move {
                        if let Ok(mut outbound) = tokio::net::TcpStream::connect("127.0.0.1:6379").await {
                            let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                        }
                    }));
                }
            }
        }
        for conn in conns {
            conn.abort();
        }
    });
    (format!("redis://{addr}"), stop_tx)
}

#[tokio::test]
async fn two_instances_sharing_redis_enforce_one_limit_and_fall_back_to_their_own_when_it_goes() {
    let (relay, cut) = redis_relay().await;
    let prefix = format!("gatehouse-test-{}", uuid::Uuid::new_v4().simple());
    let settings = || {
        tight(|l| {
            l.signin_ip = Rate::per(4, Duration::from_secs(60));
            l.redis_url = Some(relay.clone().into());
            l.redis_prefix = prefix.clone();
        })
    };
    let a = behind_proxy(settings()).await;
    let b = behind_proxy(settings()).await;
    // Both instances read one clock's time in Redis: keep them together.
    a.clock
        .advance(Duration::try_from(b.gatehouse.now() - a.gatehouse.now()).unwrap());
    for (i, app) in [&a, &b, &a, &b].into_iter().enumerate() {
        assert_eq!(
            signin_from(app, "198.51.100.1", &format!("n{i}@example.com"), PASSWORD)
                .await
                .status(),
            401
        );
    }
    assert_error(
        signin_from(&a, "198.51.100.1", "n@example.com", PASSWORD).await,
        429,
        "rate_limited",
    )
    .await;
    assert_error(
        signin_from(&b, "198.51.100.1", "n@example.com", PASSWORD).await,
        429,
        "rate_limited",
    )
    .await;

    // Redis goes away: each instance limits on its own, it does not fail open.
    let _ = cut.send(());
    for i in 0..4 {
        assert_eq!(
            signin_from(&a, "198.51.100.2", &format!("m{i}@example.com"), PASSWORD)
                .await
                .status(),
            401
        );
    }
    assert_error(
        signin_from(&a, "198.51.100.2", "n@example.com", PASSWORD).await,
        429,
        "rate_limited",
    )
    .await;
}

#[tokio::test]
async fn responses_carry_security_headers_and_hsts_only_over_https() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    for path in ["/health", "/auth/me", "/nope"] {
        let response = app.get(path).await;
        let h = response.headers();
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["x-frame-options"], "DENY");
        assert_eq!(h["referrer-policy"], "no-referrer");
        assert!(h["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("frame-ancestors 'none'"));
        assert!(
            !h.contains_key("strict-transport-security"),
            "not over plain http"
        );
    }
    let docs = app.get("/docs/").await;
    let csp = docs.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("http"),
        "{csp}"
    );
    let https = TestApp::spawn_configured(Backend::Sqlite, Settings::default(), |http| {
        http.hsts = true
    })
    .await;
    assert!(
        https.get("/health").await.headers()["strict-transport-security"]
            .to_str()
            .unwrap()
            .starts_with("max-age=")
    );
}

#[tokio::test]
async fn cors_answers_listed_origins_only_with_what_supabase_js_needs() {
    let app = TestApp::spawn_configured(Backend::Sqlite, Settings::default(), |http| {
        http.cors_origins = vec!["https://app.example.com".to_owned()];
    })
    .await;
    let preflight = app
        .client
        .request(reqwest::Method::OPTIONS, app.url("/auth/v1/token"))
        .header("origin", "https://app.example.com")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "apikey, authorization, content-type, x-client-info, x-supabase-api-version",
        )
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success());
    let h = preflight.headers();
    assert_eq!(h["access-control-allow-origin"], "https://app.example.com");
    assert_eq!(h["access-control-allow-credentials"], "true");
    assert_eq!(h["access-control-max-age"], "600");
    let allowed = h["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_lowercase();
    for needed in [
        "apikey",
        "authorization",
        "x-client-info",
        "x-supabase-api-version",
        "x-csrf-token",
    ] {
        assert!(allowed.contains(needed), "{needed} not allowed: {allowed}");
    }
    let simple = app
        .client
        .get(app.url("/health"))
        .header("origin", "https://app.example.com")
        .send()
        .await
        .unwrap();
    let exposed = simple.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_lowercase();
    for needed in ["x-total-count", "link", "x-supabase-api-version"] {
        assert!(exposed.contains(needed), "{needed} not exposed: {exposed}");
    }
    let foreign = app
        .client
        .get(app.url("/health"))
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert!(
        !foreign
            .headers()
            .contains_key("access-control-allow-origin"),
        "unlisted origins get no CORS headers"
    );
}

#[tokio::test]
async fn oversized_urls_headers_and_nesting_are_refused_in_our_shape() {
    let app = TestApp::spawn_configured(Backend::Sqlite, Settings::default(), |http| {
        http.limits.max_url_bytes = 1024;
        http.limits.max_header_bytes = 4096;
    })
    .await;
    assert_error(
        app.get(&format!("/health?{}", "a".repeat(2000))).await,
        414,
        "uri_too_long",
    )
    .await;
    let response = app
        .client
        .get(app.url("/health"))
        .header("x-padding", "b".repeat(5000))
        .send()
        .await
        .unwrap();
    assert_error(response, 431, "headers_too_large").await;
    let deep = format!("{}1{}", "[".repeat(40), "]".repeat(40));
    let response = app
        .client
        .post(app.url("/auth/signup"))
        .header("content-type", "application/json")
        .body(deep.clone())
        .send()
        .await
        .unwrap();
    assert_error(response, 400, "validation_failed").await;
    let response = app
        .client
        .post(app.url("/auth/v1/signup"))
        .header("content-type", "application/json")
        .body(deep)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
}

#[tokio::test]
async fn requests_beyond_the_concurrency_limit_or_the_timeout_get_a_fast_503() {
    let app = TestApp::spawn_configured(Backend::Sqlite, Settings::default(), |http| {
        http.limits.max_concurrent_requests = 1;
        http.limits.request_timeout = Duration::from_secs(1);
    })
    .await;
    let slow = {
        let (client, url) = (app.client.clone(), app.url("/__test/slow?ms=600"));
        tokio::spawn(async move { client.get(url).send().await.unwrap().status() })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let refused = app.get("/health").await;
    assert_eq!(refused.headers()["retry-after"], "1");
    assert_error(refused, 503, "overloaded").await;
    assert_eq!(slow.await.unwrap(), 200);
    assert_error(app.get("/__test/slow?ms=3000").await, 503, "timeout").await;
}

fn loose_rates() -> RateLimits {
    RateLimits {
        enabled: false,
        ..RateLimits::default()
    }
}

#[tokio::test]
async fn failures_slow_down_one_source_progressively_and_not_the_others() {
    let app = behind_proxy(Settings {
        rate_limits: loose_rates(),
        ..Settings::default()
    })
    .await;
    app.signup("ada@example.com", None).await;
    for (identifier, exists) in [("ada@example.com", true), ("nobody@example.com", false)] {
        for _ in 0..3 {
            assert_eq!(
                signin_from(&app, "198.51.100.5", identifier, "wrong-Guess-1!")
                    .await
                    .status(),
                401
            );
        }
        let early = signin_from(&app, "198.51.100.5", identifier, PASSWORD).await;
        assert_eq!(
            early.headers()["retry-after"],
            "1",
            "{identifier}: known and unknown accounts answer alike"
        );
        assert_error(early, 429, "rate_limited").await;
        let elsewhere = signin_from(&app, "203.0.113.5", identifier, PASSWORD).await;
        assert_eq!(
            elsewhere.status(),
            if exists { 200 } else { 401 },
            "another source is not slowed"
        );
        app.clock.advance(Duration::from_secs(1));
        assert_eq!(
            signin_from(&app, "198.51.100.5", identifier, "wrong-Guess-1!")
                .await
                .status(),
            401,
            "after the delay"
        );
        let doubled = signin_from(&app, "198.51.100.5", identifier, PASSWORD).await;
        assert_eq!(doubled.headers()["retry-after"], "2", "the delay doubles");
        app.clock.advance(Duration::from_secs(2));
    }
}

#[tokio::test]
async fn ten_failures_lock_the_source_for_a_while_but_not_the_owner() {
    let app = behind_proxy(Settings {
        rate_limits: loose_rates(),
        ..Settings::default()
    })
    .await;
    app.signup("ada@example.com", None).await;
    for _ in 0..10 {
        assert_eq!(
            signin_from(&app, "198.51.100.5", "ada@example.com", "wrong-Guess-1!")
                .await
                .status(),
            401
        );
        app.clock.advance(Duration::from_secs(61));
    }
    let locked = signin_from(&app, "198.51.100.5", "ada@example.com", PASSWORD).await;
    let retry: u64 = locked.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (800..=900).contains(&retry),
        "locked for about 15 minutes: {retry}"
    );
    assert_error(locked, 429, "rate_limited").await;
    assert_eq!(
        signin_from(&app, "203.0.113.5", "ada@example.com", PASSWORD)
            .await
            .status(),
        200,
        "the owner signs in from elsewhere"
    );
    assert!(app
        .audit_actions()
        .await
        .contains(&"user.signin_locked_from_source".to_owned()));
    app.clock.advance(Duration::from_secs(15 * 60));
    assert_eq!(
        signin_from(&app, "198.51.100.5", "ada@example.com", PASSWORD)
            .await
            .status(),
        200,
        "the lock ends"
    );
}

#[tokio::test]
async fn the_hard_stop_locks_the_account_until_an_admin_unlocks_it() {
    let protection = gatehouse_core::Protection {
        hard_cap: 5,
        ..gatehouse_core::Protection::default()
    };
    let app = behind_proxy(Settings {
        rate_limits: loose_rates(),
        protection,
        ..Settings::default()
    })
    .await;
    let id = app.create_account("ada@example.com", "user").await;
    let (_, admin) = app.admin("admin@example.com").await;
    for i in 0..5 {
        let ip = format!("198.51.100.{i}");
        assert_eq!(
            signin_from(&app, &ip, "ada@example.com", "wrong-Guess-1!")
                .await
                .status(),
            401
        );
    }
    // From a source nothing vouches for, the lock answers first: alike for a wrong and the
    // right password, so it says nothing about the password.
    for password in ["wrong-Guess-1!", PASSWORD] {
        assert_error(
            signin_from(&app, "203.0.113.9", "ada@example.com", password).await,
            403,
            "account_locked",
        )
        .await;
    }
    let user: serde_json::Value = app
        .authed(reqwest::Method::GET, &format!("/users/{id}"), &admin.access)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(user["user"]["locked"], true);
    let unlocked = app
        .authed(
            reqwest::Method::DELETE,
            &format!("/users/{id}/lock"),
            &admin.access,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(unlocked.status(), 200);
    assert_eq!(
        unlocked.json::<serde_json::Value>().await.unwrap()["user"]["locked"],
        false
    );
    assert_eq!(
        signin_from(&app, "198.51.100.1", "ada@example.com", PASSWORD)
            .await
            .status(),
        200
    );
    let actions = app.audit_actions().await;
    assert!(
        actions.contains(&"user.locked".to_owned())
            && actions.contains(&"admin.user_unlocked".to_owned()),
        "{actions:?}"
    );
}
