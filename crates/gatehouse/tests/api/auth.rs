//! The app API end to end: sign-up, sign-in, the current user, CSRF, aliases, and every
//! error path with its status and `{code, message, details}` body.

use serde_json::json;

use crate::helpers::{assert_error, cookie_value, set_cookie, TestApp, PASSWORD};

async fn user_count(app: &TestApp) -> i64 {
    gatehouse_core::store::with_pool!(app.gatehouse.store(), pool => {
        gatehouse_core::store::sqlx::query_scalar("SELECT count(*) FROM users").fetch_one(pool).await.unwrap()
    })
}

on_both_backends! {
    async fn signup_creates_the_user_and_its_profile(app: TestApp) {
        let response = app.post_json("/auth/signup", json!({
            "email": "  Ada@Example.com ", "password": PASSWORD, "username": "Ada_L",
            "profile": {"displayName": "Ada Lovelace"}
        })).await;
        assert_eq!(response.status(), 201);
        assert_eq!(response.headers()["cache-control"], "no-store");
        let body: serde_json::Value = response.json().await.unwrap();
        let user = &body["user"];
        assert_eq!(user["email"], "Ada@Example.com", "trimmed, case kept");
        assert_eq!(user["username"], "Ada_L");
        assert_eq!(user["role"], "user");
        assert_eq!(user["isActive"], true);
        assert_eq!(user["profile"]["displayName"], "Ada Lovelace");
        assert!(user["createdAt"].as_str().unwrap().ends_with('Z'));
        assert!(!body.to_string().contains(PASSWORD) && !body.to_string().contains("argon2"));
        let stored = app.gatehouse.store().find_user_by_email("ada@example.com").await.unwrap().unwrap();
        assert_eq!(stored.display_name.as_deref(), Some("Ada Lovelace"), "the profile row was written");
        assert!(stored.password_hash.unwrap().starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(app.audit_actions().await.contains(&"user.signup".to_owned()));
    }

    async fn a_taken_email_or_username_is_409_regardless_of_case(app: TestApp) {
        app.signup("ada@example.com", Some("ada")).await;
        let response = app.post_json("/auth/signup", json!({"email": "ADA@example.COM", "password": PASSWORD})).await;
        let body = assert_error(response, 409, "user_already_exists").await;
        assert_eq!(body["details"]["field"], "email");
        let response = app.post_json("/auth/signup", json!({"email": "other@example.com", "password": PASSWORD, "username": "ADA"})).await;
        let body = assert_error(response, 409, "user_already_exists").await;
        assert_eq!(body["details"]["field"], "username");
        assert_eq!(user_count(&app).await, 1, "nothing was written");
    }

    async fn weak_passwords_are_422_with_their_reasons(app: TestApp) {
        let cases: &[(&str, &[&str])] = &[
            ("x7!k", &["length", "pwned"]),
            ("quartzlanternorbit", &["characters"]),
            ("Password1!", &["pwned"]),
            ("ada-lovelace-1815!", &["similar"]),
            (&format!("quartz-Lantern-47-orbit-{}", "x".repeat(1001)), &["length"]),
        ];
        for (password, reasons) in cases {
            let response = app.post_json("/auth/signup", json!({"email": "ada-lovelace@example.com", "password": password})).await;
            let body = assert_error(response, 422, "weak_password").await;
            assert_eq!(body["details"]["reasons"], json!(reasons), "{password}");
        }
        assert_eq!(user_count(&app).await, 0);
    }

    async fn invalid_fields_are_422_naming_the_field_and_change_nothing(app: TestApp) {
        let cases = [
            (json!({"email": "not-an-email", "password": PASSWORD}), "email"),
            (json!({"email": "ada@exa mple.com", "password": PASSWORD}), "email"),
            (json!({"email": "ada\u{0}@example.com", "password": PASSWORD}), "email"),
            (json!({"email": format!("{}@example.com", "a".repeat(65)), "password": PASSWORD}), "email"),
            (json!({"email": "ada@example.com", "password": PASSWORD, "username": "a b"}), "username"),
            (json!({"email": "ada@example.com", "password": PASSWORD, "username": "ab"}), "username"),
            (json!({"email": "ada@example.com", "password": PASSWORD, "profile": {"displayName": "x".repeat(101)}}), "displayName"),
        ];
        for (body, field) in cases {
            let response = app.post_json("/auth/signup", body.clone()).await;
            let error = assert_error(response, 422, "validation_failed").await;
            assert_eq!(error["details"]["field"], field, "{body}");
        }
        for (body, status) in [
            (json!({"email": 42, "password": PASSWORD}), 422),
            (json!({"password": PASSWORD}), 422),
            (json!(["ada@example.com"]), 422),
            (json!({"email": "ada@example.com", "password": null}), 422),
        ] {
            let response = app.post_json("/auth/signup", body).await;
            assert_error(response, status, "validation_failed").await;
        }
        assert_eq!(user_count(&app).await, 0);
    }

    async fn signin_sets_an_httponly_lax_refresh_cookie_and_returns_an_access_token(app: TestApp) {
        app.signup("ada@example.com", None).await;
        let response = app.signin("ADA@example.com", PASSWORD).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["cache-control"], "no-store");
        let cookie = set_cookie(&response, "sb_refresh_token").unwrap();
        for attribute in ["HttpOnly", "SameSite=Lax", "Path=/auth", "Secure", "Max-Age=604800"] {
            assert!(cookie.split("; ").any(|a| a == attribute), "{attribute} missing from {cookie}");
        }
        let refresh = cookie_value(&response, "sb_refresh_token").unwrap();
        assert!(refresh.len() >= 43, "at least 256 bits");
        let text = response.text().await.unwrap();
        assert!(!text.contains(&refresh), "the refresh token never appears in a body");
        let body: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(body["tokenType"], "bearer");
        assert_eq!(body["expiresIn"], 1800);
        assert_eq!(body["user"]["email"], "ada@example.com");
        assert_eq!(body.as_object().unwrap().len(), 4, "accessToken, tokenType, expiresIn, user: {body}");
        let me = app.me(body["accessToken"].as_str().unwrap()).await;
        assert_eq!(me.status(), 200);
        let me: serde_json::Value = me.json().await.unwrap();
        assert_eq!(me["user"]["id"], body["user"]["id"]);
        assert!(me["user"]["lastSignInAt"].is_string());
        let actions = app.audit_actions().await;
        assert!(actions.contains(&"user.signin".to_owned()), "{actions:?}");
    }

    async fn signin_by_username_works(app: TestApp) {
        app.signup("ada@example.com", Some("ada")).await;
        let response = app.cookie_post("/auth/signin", None, Some(json!({"username": "ADA", "password": PASSWORD}))).await;
        assert_eq!(response.status(), 200);
        let response = app.cookie_post("/auth/signin", None, Some(json!({"username": "ada", "email": "ada@example.com", "password": PASSWORD}))).await;
        assert_error(response, 422, "validation_failed").await;
    }

    async fn a_wrong_password_and_an_unknown_user_get_the_same_answer(app: TestApp) {
        app.signup("ada@example.com", Some("ada")).await;
        let wrong = app.signin("ada@example.com", "quartz-Lantern-48").await;
        let unknown = app.signin("nobody@example.com", PASSWORD).await;
        let by_name = app.cookie_post("/auth/signin", None, Some(json!({"username": "nobody", "password": PASSWORD}))).await;
        let case = app.signin("ada@example.com", &PASSWORD.to_uppercase()).await;
        assert!(set_cookie(&wrong, "sb_refresh_token").is_none());
        let wrong = assert_error(wrong, 401, "auth_invalid_credentials").await;
        assert_eq!(assert_error(unknown, 401, "auth_invalid_credentials").await, wrong);
        assert_eq!(assert_error(by_name, 401, "auth_invalid_credentials").await, wrong);
        assert_eq!(assert_error(case, 401, "auth_invalid_credentials").await, wrong, "passwords are not case-folded");
        let actions = app.audit_actions().await;
        assert_eq!(actions.iter().filter(|a| *a == "user.signin_failed").count(), 4);
        let events = app.gatehouse.store().recent_audit_events(100).await.unwrap();
        assert!(!format!("{events:?}").contains("quartz"), "no password in the audit log");
    }

    async fn cookie_routes_require_a_signed_csrf_token_matching_the_cookie(app: TestApp) {
        app.signup("ada@example.com", None).await;
        let body = json!({"email": "ada@example.com", "password": PASSWORD});
        let token = app.csrf().await;
        let other = app.csrf().await;
        let forged = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
        let cases: Vec<(Option<&str>, Option<String>)> = vec![
            (None, None),
            (Some(token.as_str()), None),
            (None, Some(format!("{}={token}", crate::helpers::CSRF_COOKIE))),
            (Some(token.as_str()), Some(format!("{}={other}", crate::helpers::CSRF_COOKIE))),
            (Some(forged), Some(format!("{}={forged}", crate::helpers::CSRF_COOKIE))),
        ];
        for path in ["/auth/signin", "/auth/refresh", "/auth/logout"] {
            for (header, cookie) in &cases {
                let mut request = app.client.post(app.url(path)).json(&body);
                if let Some(header) = header {
                    request = request.header("x-csrf-token", *header);
                }
                if let Some(cookie) = cookie {
                    request = request.header("cookie", cookie);
                }
                let response = request.send().await.unwrap();
                assert!(set_cookie(&response, "sb_refresh_token").is_none());
                assert_error(response, 403, "csrf_failed").await;
            }
        }
        assert!(!app.audit_actions().await.contains(&"user.signin".to_owned()), "no sign-in happened");
    }

    async fn a_foreign_origin_is_refused_even_with_a_valid_csrf_token(app: TestApp) {
        app.signup("ada@example.com", None).await;
        let body = json!({"email": "ada@example.com", "password": PASSWORD});
        for (origin, allowed) in [("https://evil.example", false), ("null", false), ("https://app.example.com", true)] {
            let token = app.csrf().await;
            let response = app.client.post(app.url("/auth/signin"))
                .header("origin", origin)
                .header("x-csrf-token", &token)
                .header("cookie", format!("{}={token}", crate::helpers::CSRF_COOKIE))
                .json(&body).send().await.unwrap();
            if allowed {
                assert_eq!(response.status(), 200, "{origin}");
            } else {
                assert_error(response, 403, "csrf_failed").await;
            }
        }
    }

    async fn the_csrf_cookie_is_strict_and_readable_by_scripts(app: TestApp) {
        let response = app.get("/auth/csrf").await;
        let cookie = set_cookie(&response, crate::helpers::CSRF_COOKIE).unwrap();
        assert!(cookie.contains("SameSite=Strict") && cookie.contains("Secure") && cookie.contains("Path=/"), "{cookie}");
        assert!(!cookie.contains("HttpOnly"), "{cookie}");
        assert!(!cookie.to_ascii_lowercase().contains("domain="), "__Host- cookies carry no Domain: {cookie}");
        assert_eq!(response.headers()["cache-control"], "no-store");
    }

    // Security review finding 10: a sibling subdomain could plant `csrf_token`; with secure
    // cookies only the `__Host-` cookie counts, so a planted unprefixed one is refused.
    async fn with_secure_cookies_the_csrf_cookie_is_host_prefixed_and_the_bare_name_is_ignored(app: TestApp) {
        let response = app.get("/auth/csrf").await;
        assert!(set_cookie(&response, "__Host-csrf_token").is_some());
        assert!(set_cookie(&response, "csrf_token").is_none(), "no unprefixed cookie is set");
        app.signup("ada@example.com", None).await;
        let token = app.csrf().await;
        let planted = app.client.post(app.url("/auth/signin"))
            .header("x-csrf-token", &token)
            .header("cookie", format!("csrf_token={token}"))
            .json(&json!({"email": "ada@example.com", "password": PASSWORD})).send().await.unwrap();
        assert_error(planted, 403, "csrf_failed").await;
    }

    async fn me_without_or_with_a_bad_token_is_401_with_www_authenticate(app: TestApp) {
        let response = app.get("/auth/me").await;
        assert_eq!(response.headers()["www-authenticate"], "Bearer");
        assert_error(response, 401, "unauthorized").await;
        for token in ["garbage", "a.b.c", &"x".repeat(10_000)] {
            let response = app.me(token).await;
            assert!(response.headers()["www-authenticate"].to_str().unwrap().starts_with("Bearer"));
            assert_error(response, 401, "unauthorized").await;
        }
        let response = app.client.get(app.url("/auth/me")).header("authorization", "Basic YWRhOnB3").send().await.unwrap();
        assert_error(response, 401, "unauthorized").await;
    }

    async fn a_deactivated_or_deleted_user_gets_user_inactive_with_an_unexpired_token(app: TestApp) {
        let user = app.signup("ada@example.com", None).await;
        let id = user["id"].as_str().unwrap();
        let signed = app.signin_ok("ada@example.com").await;
        app.sql("UPDATE users SET is_active = FALSE WHERE id = $1", id).await;
        assert_error(app.me(&signed.access).await, 401, "user_inactive").await;
        assert_error(app.refresh(&signed.refresh).await, 401, "user_inactive").await;
        assert_error(app.signin("ada@example.com", PASSWORD).await, 401, "user_inactive").await;
        app.sql("UPDATE users SET is_active = TRUE, deleted_at = '2026-01-01T00:00:00.000000Z' WHERE id = $1", id).await;
        assert_error(app.me(&signed.access).await, 401, "user_inactive").await;
        assert_error(app.signin("ada@example.com", PASSWORD).await, 401, "auth_invalid_credentials").await;
    }

    async fn patch_me_updates_the_profile_and_metadata_and_validates_them(app: TestApp) {
        app.signup("ada@example.com", None).await;
        let signed = app.signin_ok("ada@example.com").await;
        let patch = |body: serde_json::Value| {
            app.client.patch(app.url("/auth/me")).bearer_auth(&signed.access).json(&body).send()
        };
        let response = patch(json!({"profile": {"displayName": "Ada King", "avatarUrl": "https://img.example.com/ada.png"}, "userMetadata": {"theme": "dark"}})).await.unwrap();
        assert_eq!(response.status(), 200);
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["user"]["profile"], json!({"displayName": "Ada King", "avatarUrl": "https://img.example.com/ada.png"}));
        assert_eq!(body["user"]["userMetadata"], json!({"theme": "dark"}));
        let response = patch(json!({"profile": {"avatarUrl": null}})).await.unwrap();
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["user"]["profile"], json!({"displayName": "Ada King", "avatarUrl": null}), "null clears, absent keeps");
        assert_eq!(body["user"]["userMetadata"], json!({"theme": "dark"}));
        let deep = (0..9).fold(json!(1), |v, _| json!({"k": v}));
        for (bad, field) in [
            (json!({"profile": {"avatarUrl": "javascript:alert(1)"}}), "avatarUrl"),
            (json!({"profile": {"displayName": "a\u{7}b"}}), "displayName"),
            (json!({"userMetadata": [1, 2]}), "userMetadata"),
            (json!({"userMetadata": deep}), "userMetadata"),
        ] {
            let error = assert_error(patch(bad).await.unwrap(), 422, "validation_failed").await;
            assert_eq!(error["details"]["field"], field);
        }
        let me: serde_json::Value = app.me(&signed.access).await.json().await.unwrap();
        assert_eq!(me["user"]["profile"]["displayName"], "Ada King", "a refused patch changes nothing");
        let response = app.client.patch(app.url("/auth/me")).json(&json!({})).send().await.unwrap();
        assert_error(response, 401, "unauthorized").await;
    }

    async fn the_seed_aliases_serve_the_same_contract(app: TestApp) {
        let response = app.post_json("/auth/register", json!({"email": "ada@example.com", "password": PASSWORD})).await;
        assert_eq!(response.status(), 201);
        let response = app.post_json("/signup", json!({"email": "bob@example.com", "password": PASSWORD})).await;
        assert_eq!(response.status(), 201);
        for path in ["/auth/login", "/login"] {
            let response = app.cookie_post(path, None, Some(json!({"email": "ada@example.com", "password": PASSWORD}))).await;
            assert_eq!(response.status(), 200, "{path}");
            assert!(set_cookie(&response, "sb_refresh_token").unwrap().contains("HttpOnly"));
            let signed = TestApp::signed(response).await;
            let me = app.client.get(app.url("/me")).bearer_auth(&signed.access).send().await.unwrap();
            assert_eq!(me.status(), 200);
        }
        let response = app.client.post(app.url("/login")).json(&json!({"email": "ada@example.com", "password": PASSWORD})).send().await.unwrap();
        assert_error(response, 403, "csrf_failed").await;
        assert_error(app.get("/me").await, 401, "unauthorized").await;
    }
}
