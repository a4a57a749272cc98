//! The findings of the security review (issue 11), each reproduced as an attacker would
//! try it, through the real HTTP server, on both databases.

use gatehouse_core::api_keys::ApiRole;
use gatehouse_core::ratelimit::{Rate, RateLimits};
use gatehouse_core::store::Backend;
use gatehouse_core::Settings;
use serde_json::{json, Value};

use crate::helpers::{assert_error, TestApp, PASSWORD};

/// A server that believes X-Forwarded-For from the loopback peer, so a test can speak from
/// many addresses.
async fn behind_proxy(backend: Backend, settings: Settings) -> TestApp {
    TestApp::spawn_configured(backend, settings, |http| {
        http.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await
}

async fn json_of(response: reqwest::Response) -> Value {
    response.json().await.unwrap()
}

impl TestApp {
    /// `PUT /auth/v1/admin/users/{id}` with the service-role key.
    async fn supabase_admin_put(&self, id: &str, body: Value) -> reqwest::Response {
        let service = self
            .gatehouse
            .keys
            .issue_api_key(ApiRole::ServiceRole)
            .unwrap();
        self.client
            .put(self.url(&format!("/auth/v1/admin/users/{id}")))
            .bearer_auth(service)
            .header("x-supabase-api-version", "2024-01-01")
            .json(&body)
            .send()
            .await
            .unwrap()
    }
}

/// Limits loose enough that only account protection answers.
fn loose() -> RateLimits {
    RateLimits {
        enabled: false,
        ..RateLimits::default()
    }
}

on_both_backends! {
    // Finding 4: every address of one /64 was a fresh source.
    async fn every_address_of_one_ipv6_64_is_one_source(app: TestApp) {
        let backend = app.gatehouse.store().backend();
        drop(app);
        let limits = RateLimits {
            signin_ip: Rate::per(3, std::time::Duration::from_secs(60)),
            ..RateLimits::default()
        };
        let app = behind_proxy(backend, Settings { rate_limits: limits, ..Settings::default() }).await;
        app.signup("ada@example.com", None).await;
        for host in 1..=3 {
            let ip = format!("2001:db8:1:2::{host:x}");
            assert_eq!(app.signin_from(&ip, "ada@example.com", PASSWORD).await.status(), 200, "{ip}");
        }
        let rotated = app.signin_from("2001:db8:1:2:ffff:1234:5678:9abc", "ada@example.com", PASSWORD).await;
        assert_error(rotated, 429, "rate_limited").await;
        assert_eq!(
            app.signin_from("2001:db8:1:3::1", "ada@example.com", PASSWORD).await.status(), 200,
            "the next /64 is another source"
        );

        // Account protection counts the /64 as one source too: three failures from three
        // addresses of it, and the fourth address waits.
        let app = behind_proxy(backend, Settings { rate_limits: loose(), ..Settings::default() }).await;
        app.signup("ada@example.com", None).await;
        for host in 1..=3 {
            let ip = format!("2001:db8:9:9::{host:x}");
            assert_eq!(app.signin_from(&ip, "ada@example.com", "wrong-Guess-1!").await.status(), 401);
        }
        let waits = app.signin_from("2001:db8:9:9::77", "ada@example.com", PASSWORD).await;
        assert_error(waits, 429, "rate_limited").await;
        assert_eq!(app.signin_from("2001:db8:9:a::1", "ada@example.com", PASSWORD).await.status(), 200);
    }

    // Finding 6: the role was written before the email was found invalid.
    async fn a_bad_field_in_an_admin_update_writes_nothing_of_the_request(app: TestApp) {
        let id = app.create_account("ada@example.com", "user").await.to_string();
        let audit_before = app.audit_actions().await.len();
        let response = app
            .supabase_admin_put(&id, json!({"app_metadata": {"role": "admin", "tier": "gold"}, "email": "not an email"}))
            .await;
        assert_eq!(response.status(), 400);
        assert_eq!(json_of(response).await["code"], "validation_failed");
        let user = app.gatehouse.admin.get_user(id.parse().unwrap()).await.unwrap();
        assert_eq!(user.role, "user", "the role is untouched");
        assert!(user.app_metadata.0.get("tier").is_none(), "app_metadata untouched");
        assert_eq!(app.audit_actions().await.len(), audit_before, "nothing audited");

        // A password the policy refuses, next to a role and a ban: nothing either.
        let response = app
            .supabase_admin_put(&id, json!({"app_metadata": {"role": "admin"}, "ban_duration": "24h", "password": "short"}))
            .await;
        assert_eq!(response.status(), 422);
        let user = app.gatehouse.admin.get_user(id.parse().unwrap()).await.unwrap();
        assert_eq!((user.role.as_str(), user.banned_until), ("user", None));

        // The good request still does all of it, in one go.
        let response = app
            .supabase_admin_put(&id, json!({"app_metadata": {"role": "admin"}, "email": "ada@example.org"}))
            .await;
        assert_eq!(response.status(), 200);
        let user = app.gatehouse.admin.get_user(id.parse().unwrap()).await.unwrap();
        assert_eq!((user.role.as_str(), user.email.as_deref()), ("admin", Some("ada@example.org")));
        let actions = app.audit_actions().await;
        assert_eq!(&actions[actions.len() - 2..], ["admin.user_role_changed", "admin.user_updated"]);
    }

    // Finding 6, the app API: a refused deactivation (the last admin) ends no session.
    async fn a_refused_admin_change_ends_no_session_and_audits_nothing(app: TestApp) {
        let (admin_id, admin) = app.admin("root@example.com").await;
        let service = app.gatehouse.keys.issue_api_key(ApiRole::ServiceRole).unwrap();
        let audit_before = app.audit_actions().await.len();
        // The service key may deactivate anyone but the last active admin.
        let response = app.client.put(app.url(&format!("/auth/v1/admin/users/{admin_id}")))
            .bearer_auth(&service).json(&json!({"app_metadata": {"role": "user"}, "password": "a-New-Secret-93"})).send().await.unwrap();
        assert_eq!(response.status(), 409);
        assert_eq!(app.me(&admin.access).await.status(), 200, "the admin's session lives");
        assert_eq!(app.audit_actions().await.len(), audit_before);
        let user = app.gatehouse.admin.get_user(admin_id).await.unwrap();
        assert_eq!(user.role, "admin");
    }

    // Finding 7: a huge ban overflowed the date arithmetic (a 500 and a panic).
    async fn a_ban_beyond_a_hundred_years_is_a_validation_error_not_a_panic(app: TestApp) {
        let id = app.create_account("ada@example.com", "user").await.to_string();
        for huge in ["100000000h", "876700h", "9999999999999h"] {
            let response = app.supabase_admin_put(&id, json!({"ban_duration": huge})).await;
            assert_eq!(response.status(), 400, "{huge}");
            let body = json_of(response).await;
            assert_eq!(body["code"], "validation_failed", "{huge}: {body}");
            assert!(body["message"].as_str().unwrap().contains("ban_duration"));
        }
        let user = app.gatehouse.admin.get_user(id.parse().unwrap()).await.unwrap();
        assert_eq!(user.banned_until, None);
        // createUser checks the ban before it creates anyone.
        let service = app.gatehouse.keys.issue_api_key(ApiRole::ServiceRole).unwrap();
        let response = app.client.post(app.url("/auth/v1/admin/users")).bearer_auth(&service)
            .json(&json!({"email": "grace@example.com", "password": PASSWORD, "ban_duration": "100000000h"}))
            .send().await.unwrap();
        assert_eq!(response.status(), 400);
        assert!(app.gatehouse.store().find_user_by_email("grace@example.com").await.unwrap().is_none(),
            "no user is left behind by a refused createUser");
        let fine = app.supabase_admin_put(&id, json!({"ban_duration": "876000h"})).await;
        assert_eq!(fine.status(), 200);
        assert_error(app.signin("ada@example.com", PASSWORD).await, 401, "user_banned").await;
    }
}

/// Every row of `instance_secrets`: name, bytes, sealed.
async fn secret_rows(app: &TestApp) -> Vec<(String, Vec<u8>, bool)> {
    use gatehouse_core::store::sqlx;
    const SQL: &str = "SELECT name, secret, sealed FROM instance_secrets ORDER BY name";
    gatehouse_core::store::with_pool!(app.gatehouse.store(), pool => {
        sqlx::query_as(SQL).fetch_all(pool).await.unwrap()
    })
}

/// Whether any 32 bytes of `row` are the HMAC key that signed `data` with `tag`: what a
/// database reader could do with a plain secret.
fn signs_with(row: &[u8], data: &[u8], tag: &[u8]) -> bool {
    row.windows(32)
        .any(|key| gatehouse_core::crypto::hmac_sha256(key, data)[..] == *tag)
}

/// A CSRF token's signed part and tag; an API key's signing input and signature.
fn signed_parts(csrf: &str, api_key: &str) -> [(Vec<u8>, Vec<u8>); 2] {
    use gatehouse_core::crypto::b64url_decode;
    let (nonce, tag) = csrf.split_once('.').unwrap();
    let (input, signature) = api_key.rsplit_once('.').unwrap();
    [
        (b64url_decode(nonce).unwrap(), b64url_decode(tag).unwrap()),
        (input.as_bytes().to_vec(), b64url_decode(signature).unwrap()),
    ]
}

fn with_kek(kek: &str) -> Settings {
    Settings {
        key_encryption_key: Some(secrecy::SecretString::from(kek.to_owned())),
        ..Settings::default()
    }
}

const KEK: &str = "a key-encryption key of enough length, 0123456789";

on_both_backends! {
    // Finding 5: with a KEK the CSRF and API-key secrets were still plain bytes, so a read
    // of the database minted a service_role key.
    async fn with_a_kek_no_instance_secret_is_stored_in_the_clear(app: TestApp) {
        let app = app.restart(with_kek(KEK)).await.map_err(|(e, _)| e).unwrap();
        let csrf = app.csrf().await;
        let service = app.gatehouse.keys.issue_api_key(ApiRole::ServiceRole).unwrap();
        let rows = secret_rows(&app).await;
        assert_eq!(rows.len(), 2, "{:?}", rows.iter().map(|r| &r.0).collect::<Vec<_>>());
        for (name, bytes, sealed) in &rows {
            assert!(sealed, "{name} is sealed");
            for (data, tag) in signed_parts(&csrf, &service) {
                assert!(!signs_with(bytes, &data, &tag), "{name} holds a usable secret");
            }
        }
        // Restarted with the same KEK, what was issued before still checks out.
        let app = app.restart(with_kek(KEK)).await.map_err(|(e, _)| e).unwrap();
        let admin_list = app.client.get(app.url("/auth/v1/admin/users")).bearer_auth(&service).send().await.unwrap();
        assert_eq!(admin_list.status(), 200, "the service key from before the restart");
        app.signup("ada@example.com", None).await;
        let signin = app.client.post(app.url("/auth/signin"))
            .header("x-csrf-token", &csrf)
            .header("cookie", format!("{}={csrf}", crate::helpers::CSRF_COOKIE))
            .json(&json!({"email": "ada@example.com", "password": PASSWORD})).send().await.unwrap();
        assert_eq!(signin.status(), 200, "the CSRF token from before the restart");
    }

    async fn plain_secrets_are_sealed_at_the_first_start_with_a_kek_and_a_wrong_kek_stops_start_up(app: TestApp) {
        app.signup("ada@example.com", None).await;
        let before = app.signin_ok("ada@example.com").await;
        let csrf = app.csrf().await;
        let service = app.gatehouse.keys.issue_api_key(ApiRole::ServiceRole).unwrap();
        let plain = secret_rows(&app).await;
        assert!(plain.iter().all(|(_, _, sealed)| !sealed), "no KEK: stored plain");
        assert!(plain.iter().any(|(_, bytes, _)| {
            signed_parts(&csrf, &service).iter().any(|(d, t)| signs_with(bytes, d, t))
        }), "the check above can see a plain secret");

        let app = app.restart(with_kek(KEK)).await.map_err(|(e, _)| e).unwrap();
        for (name, bytes, sealed) in secret_rows(&app).await {
            assert!(sealed, "{name} sealed at start-up");
            for (data, tag) in signed_parts(&csrf, &service) {
                assert!(!signs_with(&bytes, &data, &tag), "{name}");
            }
        }
        let listed = app.client.get(app.url("/auth/v1/admin/users")).bearer_auth(&service).send().await.unwrap();
        assert_eq!(listed.status(), 200, "keys issued before sealing still work");
        let keys = app.gatehouse.store().list_signing_keys().await.unwrap();
        assert!(!keys.is_empty() && keys.iter().all(|k| k.private_key_sealed), "signing keys made before the KEK are sealed too");
        assert_eq!(app.me(&before.access).await.status(), 200, "a token signed before sealing verifies");
        assert_eq!(app.signin("ada@example.com", PASSWORD).await.status(), 200, "the sealed key signs");

        let (err, db) = match app.restart(with_kek("another key-encryption key, 9876543210")).await {
            Err(refused) => refused,
            Ok(_) => panic!("a KEK that cannot open the secrets must stop start-up"),
        };
        assert!(matches!(err, gatehouse_core::Error::Config(_)), "{err:?}");
        assert!(err.to_string().contains("GATEHOUSE_KEY_ENCRYPTION_KEY"), "{err}");
        drop(db);
    }
}

impl TestApp {
    /// `PUT /auth/v1/user` with `token`.
    async fn put_user(&self, token: &str, body: Value) -> reqwest::Response {
        self.client
            .put(self.url("/auth/v1/user"))
            .bearer_auth(token)
            .header("x-supabase-api-version", "2024-01-01")
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// A password-grant session on `/auth/v1`: (access token, refresh token).
    async fn supabase_session(&self, email: &str) -> (String, String) {
        let response = self
            .post_json(
                "/auth/v1/token?grant_type=password",
                json!({"email": email, "password": PASSWORD}),
            )
            .await;
        assert_eq!(response.status(), 200);
        let body = json_of(response).await;
        (
            body["access_token"].as_str().unwrap().to_owned(),
            body["refresh_token"].as_str().unwrap().to_owned(),
        )
    }
}

const NEW_PASSWORD: &str = "orbit-Meadow-93!";

on_both_backends! {
    // Finding 1: PUT /auth/v1/user changed the password or the email on a bearer token
    // alone, and the change then ended the owner's other sessions.
    async fn a_stolen_access_token_cannot_change_the_password_or_the_email(app: TestApp) {
        app.signup("ada@example.com", None).await;
        let owner = app.signin_ok("ada@example.com").await;
        let (stolen, refresh) = app.supabase_session("ada@example.com").await;
        // Past the reauthentication window; refreshing gives a new token, not a new proof.
        app.clock.advance(std::time::Duration::from_secs(11 * 60));
        let refreshed = app.post_json("/auth/v1/token?grant_type=refresh_token", json!({"refresh_token": refresh})).await;
        let refreshed = json_of(refreshed).await["access_token"].as_str().unwrap().to_owned();
        // (Five tries: the sixth would meet the password-change limit, 5 per 15 minutes.)
        let attempts = [
            (&stolen, json!({"password": NEW_PASSWORD})),
            (&stolen, json!({"email": "mallory@example.com"})),
            (&stolen, json!({"email": "mallory@example.com", "password": NEW_PASSWORD, "data": {"x": 1}})),
            (&refreshed, json!({"password": NEW_PASSWORD})),
        ];
        {
            for (token, body) in attempts {
                let response = app.put_user(token, body.clone()).await;
                assert_eq!(response.status(), 400, "{body}");
                assert_eq!(response.headers()["x-sb-error-code"], "reauthentication_needed");
                let err = json_of(response).await;
                assert_eq!(err["code"], "reauthentication_needed", "{err}");
                assert_eq!(err["message"], "Password update requires reauthentication");
            }
        }
        let wrong = app.put_user(&stolen, json!({"password": NEW_PASSWORD, "current_password": "wrong-Guess-1!"})).await;
        assert_eq!(wrong.status(), 400);
        assert_eq!(json_of(wrong).await["code"], "current_password_mismatch");
        let user = app.gatehouse.store().find_user_by_email("ada@example.com").await.unwrap().unwrap();
        assert!(user.user_metadata.0.get("x").is_none(), "nothing of a refused request is written");
        assert_eq!(app.me(&owner.access).await.status(), 200, "the owner's session lives");
        assert_eq!(app.signin("ada@example.com", PASSWORD).await.status(), 200, "the password is unchanged");
        assert!(app.gatehouse.store().find_user_by_email("mallory@example.com").await.unwrap().is_none());
        assert!(app.audit_actions().await.contains(&"user.password_change_failed".to_owned()));

        app.clock.advance(std::time::Duration::from_secs(16 * 60));
        // Metadata alone needs no proof.
        assert_eq!(app.put_user(&stolen, json!({"data": {"theme": "dark"}})).await.status(), 200);
        // The current password is a proof at any age.
        let changed = app.put_user(&stolen, json!({"password": NEW_PASSWORD, "current_password": PASSWORD})).await;
        assert_eq!(changed.status(), 200);
        assert_eq!(app.signin("ada@example.com", NEW_PASSWORD).await.status(), 200);
    }

    async fn a_fresh_sign_in_may_change_the_password_or_email_without_the_current_one(app: TestApp) {
        app.signup("ada@example.com", None).await;
        let (token, _) = app.supabase_session("ada@example.com").await;
        app.clock.advance(std::time::Duration::from_secs(9 * 60));
        let moved = app.put_user(&token, json!({"email": "ada@example.org"})).await;
        assert_eq!(moved.status(), 200);
        assert_eq!(json_of(moved).await["email"], "ada@example.org");
        let other = app.supabase_session("ada@example.org").await;
        let changed = app.put_user(&token, json!({"password": NEW_PASSWORD})).await;
        assert_eq!(changed.status(), 200);
        // The new hash, the other session's end and the audit row were one transaction.
        let event = recent_events(&app, 1).await.remove(0);
        assert_eq!(event.action, "user.password_changed");
        assert_eq!(event.details.0["sessions_ended"], 1);
        assert_eq!(app.put_user(&other.0, json!({"data": {}})).await.status(), 403, "the other session ended");
        assert_eq!(app.put_user(&token, json!({"data": {}})).await.status(), 200, "this one lives");
        assert_eq!(app.signin("ada@example.org", NEW_PASSWORD).await.status(), 200);
    }

    async fn the_app_api_asks_for_the_current_password_after_the_window(app: TestApp) {
        app.signup("ada@example.com", None).await;
        let session = app.signin_ok("ada@example.com").await;
        let change = |body: Value| app.authed(reqwest::Method::POST, "/auth/password", &session.access).json(&body).send();
        app.clock.advance(std::time::Duration::from_secs(11 * 60));
        assert_error(change(json!({"newPassword": NEW_PASSWORD})).await.unwrap(), 401, "reauthentication_needed").await;
        assert_error(change(json!({"currentPassword": "wrong-Guess-1!", "newPassword": NEW_PASSWORD})).await.unwrap(), 400, "current_password_invalid").await;
        assert_eq!(app.signin("ada@example.com", PASSWORD).await.status(), 200, "unchanged");
        let ok = change(json!({"currentPassword": PASSWORD, "newPassword": NEW_PASSWORD})).await.unwrap();
        assert_eq!(ok.status(), 200);

        // Within the window of a new sign-in, the current password may be left out.
        let fresh = TestApp::signed(app.signin("ada@example.com", NEW_PASSWORD).await).await;
        let ok = app.authed(reqwest::Method::POST, "/auth/password", &fresh.access)
            .json(&json!({"newPassword": "third-Pass-word-71"})).send().await.unwrap();
        assert_eq!(ok.status(), 200);
        assert_eq!(app.signin("ada@example.com", "third-Pass-word-71").await.status(), 200);
    }
}

/// Account protection that reaches the hard stop after 30 failures, with rate limits off.
fn hard_stop_at_30() -> Settings {
    Settings {
        rate_limits: loose(),
        protection: gatehouse_core::Protection {
            hard_cap: 30,
            ..gatehouse_core::Protection::default()
        },
        ..Settings::default()
    }
}

impl TestApp {
    /// An app-API sign-in from `ip`, with `device` as the device cookie if given.
    async fn signin_with_device(
        &self,
        ip: &str,
        password: &str,
        device: Option<&str>,
    ) -> reqwest::Response {
        let csrf = self.csrf().await;
        let mut cookies = format!("{}={csrf}", crate::helpers::CSRF_COOKIE);
        if let Some(device) = device {
            cookies.push_str(&format!("; __Host-gatehouse_device={device}"));
        }
        self.client
            .post(self.url("/auth/signin"))
            .header("x-forwarded-for", ip)
            .header("x-csrf-token", &csrf)
            .header("cookie", cookies)
            .json(&json!({"email": "ada@example.com", "password": password}))
            .send()
            .await
            .unwrap()
    }

    /// `/auth/v1` password grant from `ip`.
    async fn grant_from(&self, ip: &str, password: &str) -> reqwest::Response {
        self.client
            .post(self.url("/auth/v1/token?grant_type=password"))
            .header("x-forwarded-for", ip)
            .header("x-supabase-api-version", "2024-01-01")
            .json(&json!({"email": "ada@example.com", "password": password}))
            .send()
            .await
            .unwrap()
    }

    /// A distributed spray: `sources` addresses, ten wrong passwords each, waiting out
    /// every delay, until each source is locked for the pair.
    async fn spray(&self, sources: u8) {
        for i in 0..sources {
            let ip = format!("203.0.113.{}", i + 1);
            for _ in 0..10 {
                let response = self
                    .signin_from(&ip, "ada@example.com", "wrong-Guess-1!")
                    .await;
                assert!(
                    matches!(response.status().as_u16(), 401 | 403),
                    "{}",
                    response.status()
                );
                self.clock.advance(std::time::Duration::from_secs(61));
            }
        }
    }
}

fn device_of(response: &reqwest::Response) -> String {
    crate::helpers::cookie_value(response, "__Host-gatehouse_device").expect("a device cookie")
}

on_both_backends! {
    // Finding 2: 34 sources × 3 wrong passwords locked any account, and its owner with it.
    async fn a_distributed_spray_stops_its_sources_but_not_the_owner(app: TestApp) {
        let backend = app.gatehouse.store().backend();
        drop(app);
        let app = behind_proxy(backend, hard_stop_at_30()).await;
        app.signup("ada@example.com", None).await;
        // The owner signs in at home (a known source from now on) with a browser that keeps
        // its device cookie.
        let home = app.signin_with_device("198.51.100.1", PASSWORD, None).await;
        assert_eq!(home.status(), 200);
        let device = device_of(&home);
        let set = crate::helpers::set_cookie(&home, "__Host-gatehouse_device").unwrap();
        assert!(set.contains("HttpOnly") && set.contains("Secure") && set.contains("SameSite=Strict") && set.contains("Path=/"), "{set}");

        app.spray(3).await;
        let user = app.gatehouse.store().find_user_by_email("ada@example.com").await.unwrap().unwrap();
        assert!(user.locked_at.is_some(), "30 failures reached the hard stop");
        // The attacker's sources are locked for this account; a fresh one is stopped too,
        // even with the right password.
        // (The last one sprayed is still within its 15-minute lock.)
        assert_error(app.signin_from("203.0.113.3", "ada@example.com", PASSWORD).await, 429, "rate_limited").await;
        assert_error(app.signin_from("192.0.2.77", "ada@example.com", PASSWORD).await, 403, "account_locked").await;
        let stopped = app.grant_from("192.0.2.78", PASSWORD).await;
        assert_eq!(stopped.status(), 400);
        assert_eq!(json_of(stopped).await["code"], "account_locked");

        // The owner: from home (a known source, no cookie: /auth/v1), and from anywhere with
        // the device cookie.
        assert_eq!(app.grant_from("198.51.100.1", PASSWORD).await.status(), 200, "a known source");
        let cafe = app.signin_with_device("192.0.2.200", PASSWORD, Some(&device)).await;
        assert_eq!(cafe.status(), 200, "the device cookie vouches from a new address");
        let rotated = device_of(&cafe);
        assert_ne!(rotated, device, "the device cookie rotates on use");
        // The rotated-out cookie vouches no more; the new one does.
        assert_error(app.signin_with_device("192.0.2.201", PASSWORD, Some(&device)).await, 403, "account_locked").await;
        assert_eq!(app.signin_with_device("192.0.2.202", PASSWORD, Some(&rotated)).await.status(), 200);
        let actions = app.audit_actions().await;
        assert!(actions.contains(&"user.locked".to_owned()));
    }

    async fn a_device_is_limited_on_its_own_and_a_forged_cookie_vouches_for_nothing(app: TestApp) {
        let backend = app.gatehouse.store().backend();
        drop(app);
        let app = behind_proxy(backend, hard_stop_at_30()).await;
        app.signup("ada@example.com", None).await;
        let device = device_of(&app.signin_with_device("198.51.100.1", PASSWORD, None).await);
        app.spray(3).await;
        // Ten wrong passwords through the device lock the device (for the pair), not more.
        for _ in 0..10 {
            let response = app.signin_with_device("192.0.2.9", "wrong-Guess-1!", Some(&device)).await;
            assert_error(response, 401, "auth_invalid_credentials").await;
            app.clock.advance(std::time::Duration::from_secs(61));
        }
        assert_error(app.signin_with_device("192.0.2.9", PASSWORD, Some(&device)).await, 429, "rate_limited").await;
        // A cookie we did not sign, or one signed for another user, is no voucher.
        let forged = format!("{}x", &device[..device.len() - 1]);
        assert_error(app.signin_with_device("192.0.2.10", PASSWORD, Some(&forged)).await, 403, "account_locked").await;
        app.create_account("bob@example.com", "user").await;
        let csrf = app.csrf().await;
        let bob = app.client.post(app.url("/auth/signin")).header("x-forwarded-for", "192.0.2.11")
            .header("x-csrf-token", &csrf).header("cookie", format!("{}={csrf}", crate::helpers::CSRF_COOKIE))
            .json(&json!({"email": "bob@example.com", "password": PASSWORD})).send().await.unwrap();
        let bobs = device_of(&bob);
        assert_error(app.signin_with_device("192.0.2.12", PASSWORD, Some(&bobs)).await, 403, "account_locked").await;
        // An admin unlock lets everyone back in.
        let id = app.gatehouse.store().find_user_by_email("ada@example.com").await.unwrap().unwrap().id;
        app.gatehouse.admin.unlock_user(gatehouse_core::admin::Actor::Operator, id, &gatehouse_core::RequestMeta::default()).await.unwrap();
        assert_eq!(app.signin_with_device("192.0.2.13", PASSWORD, None).await.status(), 200);
    }

    // Finding 3: on a locked account the right password answered 403 and a wrong one 401.
    async fn a_locked_account_answers_alike_for_right_and_wrong_passwords(app: TestApp) {
        let backend = app.gatehouse.store().backend();
        drop(app);
        let app = behind_proxy(backend, hard_stop_at_30()).await;
        app.signup("ada@example.com", None).await;
        app.spray(3).await;
        let mut answers = Vec::new();
        for (i, password) in [PASSWORD, "wrong-Guess-1!", PASSWORD, "wrong-Guess-2!"].into_iter().enumerate() {
            let verified = app.gatehouse.password_verifications();
            let started = std::time::Instant::now();
            let response = app.signin_from(&format!("192.0.2.{}", 50 + i), "ada@example.com", password).await;
            let took = started.elapsed();
            assert_eq!(app.gatehouse.password_verifications() - verified, 1,
                "one hash verification, whatever the password: the same cost");
            let status = response.status().as_u16();
            let body = json_of(response).await;
            eprintln!("locked account, {}: {status} in {took:?}", if i % 2 == 0 { "right" } else { "wrong" });
            answers.push((status, body));
        }
        assert!(answers.windows(2).all(|w| w[0] == w[1]), "{answers:?}");
        assert_eq!(answers[0].0, 403);
        assert_eq!(answers[0].1["code"], "account_locked");
        // An unknown account costs one verification too, and says nothing of locks.
        let verified = app.gatehouse.password_verifications();
        let response = app.signin_from("192.0.2.60", "nobody@example.com", PASSWORD).await;
        assert_error(response, 401, "auth_invalid_credentials").await;
        assert_eq!(app.gatehouse.password_verifications() - verified, 1);
    }
}

/// The newest audit events, newest first.
async fn recent_events(app: &TestApp, n: i64) -> Vec<gatehouse_core::store::AuditRecord> {
    app.gatehouse.store().recent_audit_events(n).await.unwrap()
}

on_both_backends! {
    // Finding 9: failed sign-ins had no target, and a refused admin request left no trace.
    async fn failed_sign_ins_name_the_account_and_never_store_what_was_typed(app: TestApp) {
        let id = app.create_account("ada@example.com", "user").await;
        assert_error(app.signin("ada@example.com", "wrong-Guess-1!").await, 401, "auth_invalid_credentials").await;
        let event = &recent_events(&app, 1).await[0];
        assert_eq!((event.action.as_str(), event.target_id), ("user.signin_failed", Some(id)));
        assert_eq!(event.details.0["reason"], "wrong password");

        // Someone types their password into the email field.
        let typed = "Zebra-Typed-Secret-481";
        for surface in ["app", "supabase"] {
            let response = match surface {
                "app" => app.signin(typed, PASSWORD).await,
                _ => app.post_json("/auth/v1/token?grant_type=password", json!({"email": typed, "password": PASSWORD})).await,
            };
            assert!(matches!(response.status().as_u16(), 400 | 401), "{surface}");
            let event = &recent_events(&app, 1).await[0];
            assert_eq!((event.action.as_str(), event.target_id), ("user.signin_failed", None));
            let digest = event.details.0["identifier_digest"].as_str().unwrap().to_owned();
            assert!(digest.len() >= 40, "a keyed digest: {digest}");
            let all = format!("{:?}", recent_events(&app, 1000).await);
            assert!(!all.to_lowercase().contains(&typed.to_lowercase()), "the typed text is nowhere in the audit log");
        }
        // The same typed text gives the same digest (failures can be correlated).
        let digests: Vec<String> = recent_events(&app, 2).await.iter().map(|e| e.details.0["identifier_digest"].as_str().unwrap().to_owned()).collect();
        assert_eq!(digests[0], digests[1]);
    }

    async fn every_refused_admin_request_is_audited_with_its_actor(app: TestApp) {
        app.signup("ada@example.com", None).await;
        let ada = app.signin_ok("ada@example.com").await;
        let ada_id = app.gatehouse.store().find_user_by_email("ada@example.com").await.unwrap().unwrap().id;
        assert_error(app.authed(reqwest::Method::GET, "/users", &ada.access).send().await.unwrap(), 403, "forbidden").await;
        let event = &recent_events(&app, 1).await[0];
        assert_eq!((event.action.as_str(), event.actor_id), ("authz.denied", Some(ada_id)));
        assert_eq!(event.details.0["path"], "/users");
        assert_eq!(event.details.0["method"], "GET");

        let anon = app.gatehouse.keys.issue_api_key(ApiRole::Anon).unwrap();
        let forged = format!("{}x", ada.access);
        for (token, actor, credential) in [(anon.as_str(), None, "anon key"), (ada.access.as_str(), Some(ada_id), "user token"), (forged.as_str(), None, "invalid token")] {
            let response = app.client.delete(app.url(&format!("/auth/v1/admin/users/{ada_id}"))).bearer_auth(token)
                .header("x-supabase-api-version", "2024-01-01").send().await.unwrap();
            assert_eq!(response.status(), 403, "{credential}");
            let event = &recent_events(&app, 1).await[0];
            assert_eq!((event.action.as_str(), event.actor_id), ("authz.denied", actor), "{credential}");
            assert_eq!(event.details.0["credential"], credential);
            assert_eq!(event.details.0["method"], "DELETE");
        }
        assert!(app.gatehouse.admin.get_user(ada_id).await.is_ok(), "nothing was deleted");

        // A flood of refusals is answered in full but cannot flood the trail: 60 a minute
        // per source are written.
        for _ in 0..70 {
            let response = app.client.get(app.url("/auth/v1/admin/users")).bearer_auth(&forged).send().await.unwrap();
            assert_eq!(response.status(), 403);
        }
        let denied = app.audit_actions().await.iter().filter(|a| *a == "authz.denied").count();
        assert_eq!(denied, 60, "the audit rate per source");
    }
}

on_both_backends! {
    async fn each_account_remembers_a_bounded_number_of_devices(app: TestApp) {
        let backend = app.gatehouse.store().backend();
        drop(app);
        let app = TestApp::spawn_with(backend, Settings { rate_limits: loose(), ..Settings::default() }).await;
        app.signup("ada@example.com", None).await;
        // A client that never keeps its cookie gets a new device each time.
        for _ in 0..25 {
            assert_eq!(app.signin("ada@example.com", PASSWORD).await.status(), 200);
        }
        let sql = "SELECT kind, count(*) FROM sign_in_trust GROUP BY kind ORDER BY kind";
        let counts: Vec<(String, i64)> = gatehouse_core::store::with_pool!(app.gatehouse.store(), pool => {
            gatehouse_core::store::sqlx::query_as(sql).fetch_all(pool).await.unwrap()
        });
        assert_eq!(counts, [("device".to_owned(), 20), ("source".to_owned(), 1)],
            "20 devices (Protection::devices_per_account), one source seen 25 times");
    }
}

on_both_backends! {
    // Whoever signed in with the old password (a thief included) is trusted no more once the
    // password changes; the owner's source, where the change was made, is.
    async fn a_new_password_forgets_what_the_old_one_vouched_for(app: TestApp) {
        let backend = app.gatehouse.store().backend();
        drop(app);
        let app = behind_proxy(backend, hard_stop_at_30()).await;
        app.signup("ada@example.com", None).await;
        let home = app.signin_with_device("198.51.100.1", PASSWORD, None).await;
        let owner = TestApp::signed(home).await;
        let thief = app.signin_with_device("203.0.113.200", PASSWORD, None).await;
        let thiefs_device = device_of(&thief);
        let changed = app.authed(reqwest::Method::POST, "/auth/password", &owner.access)
            .header("x-forwarded-for", "198.51.100.1")
            .json(&json!({"newPassword": NEW_PASSWORD})).send().await.unwrap();
        assert_eq!(changed.status(), 200);
        app.spray(3).await;
        assert_error(app.signin_with_device("203.0.113.200", NEW_PASSWORD, Some(&thiefs_device)).await, 403, "account_locked").await;
        assert_eq!(app.signin_with_device("198.51.100.1", NEW_PASSWORD, None).await.status(), 200,
            "the source of the change vouches");

        // An admin's reset is a recovery: nothing vouches afterwards (the admin unlocks).
        let id = app.gatehouse.store().find_user_by_email("ada@example.com").await.unwrap().unwrap().id;
        let reset = app.supabase_admin_put(&id.to_string(), json!({"password": "reset-Password-55"})).await;
        assert_eq!(reset.status(), 200);
        assert_error(app.signin_with_device("198.51.100.1", "reset-Password-55", None).await, 403, "account_locked").await;
    }
}

on_both_backends! {
    // Issue 12: sign-in counted failures under the identifier as typed and an admin unlock
    // cleared them under the stored one, lowercased by Rust's rules. Where the database
    // finds an account by a typed form whose Rust lowercase differs from the stored one's
    // (Postgres folds a final capital sigma to σ, Rust to ς), the per-source lock
    // survived the unlock.
    async fn an_admin_unlock_clears_failures_however_the_identifier_was_typed(app: TestApp) {
        let backend = app.gatehouse.store().backend();
        drop(app);
        let app = behind_proxy(backend, Settings::default()).await;
        app.signup("οδοσ@example.com", None).await;
        // SQLite folds only ASCII case, so only the stored form finds the account there.
        let typed = match backend {
            Backend::Postgres => "ΟΔΟΣ@example.com",
            Backend::Sqlite => "οδοσ@example.com",
        };
        for _ in 0..10 {
            let response = app.signin_from("192.0.2.9", typed, "wrong-Guess-1!").await;
            assert_error(response, 401, "auth_invalid_credentials").await;
            app.clock.advance(std::time::Duration::from_secs(61));
        }
        assert_error(app.signin_from("192.0.2.9", typed, PASSWORD).await, 429, "rate_limited").await;
        let id = app.gatehouse.store().find_user_by_email("οδοσ@example.com").await.unwrap().unwrap().id;
        let meta = gatehouse_core::RequestMeta::default();
        app.gatehouse.admin.unlock_user(gatehouse_core::admin::Actor::Operator, id, &meta).await.unwrap();
        assert_eq!(app.signin_from("192.0.2.9", typed, PASSWORD).await.status(), 200, "the unlock lifted the lock of this source");
    }
}
