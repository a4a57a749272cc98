//! The mail flows against a real SMTP server on loopback: every test reads the code and
//! the link out of the message the server received. GoTrue's surface first, then the app
//! API, then the outbox's guarantees.

use std::time::Duration;

use gatehouse_core::api_keys::ApiRole;
use gatehouse_core::store::Backend;
use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{assert_error, TestApp, PASSWORD};

/// Emits a `sqlite` and a `postgres` test for each body, each with a `TestApp` whose
/// mailer delivers to its own SMTP sink.
macro_rules! with_mail_on_both_backends {
    ($(async fn $name:ident($app:ident: TestApp) $body:block)*) => {$(
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            async fn run(#[allow(unused_mut)] mut $app: TestApp) $body
            #[tokio::test]
            async fn sqlite() {
                run(TestApp::spawn_mail(Backend::Sqlite, |_| {}).await).await
            }
            #[tokio::test]
            async fn postgres() {
                run(TestApp::spawn_mail(Backend::Postgres, |_| {}).await).await
            }
        }
    )*};
}

async fn body(response: reqwest::Response) -> Value {
    response.json().await.unwrap()
}

/// A GoTrue call and its JSON.
async fn v1(app: &TestApp, path: &str, payload: Value) -> (u16, Value) {
    let response = app.post_json(&format!("/auth/v1{path}"), payload).await;
    let status = response.status().as_u16();
    (status, body(response).await)
}

/// The `token` of a mailed link.
fn link_token(link: &str) -> String {
    let url = url::Url::parse(link).unwrap();
    url.query_pairs()
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.into_owned())
        .expect("the link has a token")
}

/// Follows a mailed link as a browser does: the page, then its button's POST. Returns
/// the page's status and the redirect's `Location`.
async fn click(app: &TestApp, link: &str) -> String {
    let page = app.client.get(link).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("<form method=\"post\""), "{html}");
    post_link(app, link).await
}

/// The POST of a link's page, without the page.
async fn post_link(app: &TestApp, link: &str) -> String {
    let url = url::Url::parse(link).unwrap();
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let form: String = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = no_redirects
        .post(app.url("/auth/v1/verify/link"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    response.headers()["location"].to_str().unwrap().to_owned()
}

/// The access token a redirect's fragment carries.
fn fragment_param(location: &str, key: &str) -> Option<String> {
    let fragment = location.split_once('#')?.1;
    url::form_urlencoded::parse(fragment.as_bytes())
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

async fn password_grant(app: &TestApp, email: &str, password: &str) -> (u16, Value) {
    v1(
        app,
        "/token?grant_type=password",
        json!({"email": email, "password": password}),
    )
    .await
}

with_mail_on_both_backends! {
    async fn a_sign_up_is_confirmed_by_its_code_before_it_can_sign_in(app: TestApp) {
        let settings = body(app.get("/auth/v1/settings").await).await;
        assert_eq!(settings["mailer_autoconfirm"], false);
        let (status, user) = v1(&app, "/signup", json!({"email": "ada@example.com", "password": PASSWORD, "data": {"name": "Ada"}})).await;
        assert_eq!(status, 200, "{user}");
        assert!(user.get("access_token").is_none(), "no session before confirmation: {user}");
        assert_eq!(user["email"], "ada@example.com");
        assert_eq!(user["identities"].as_array().unwrap().len(), 1);
        assert!(user.get("email_confirmed_at").is_none());

        let (status, refused) = password_grant(&app, "ada@example.com", PASSWORD).await;
        assert_eq!((status, refused["error_code"].as_str()), (400, Some("email_not_confirmed")), "{refused}");
        // A wrong password is not told the account is unconfirmed.
        let (status, wrong) = password_grant(&app, "ada@example.com", "wrong-Password-1").await;
        assert_eq!((status, wrong["error_code"].as_str()), (400, Some("invalid_credentials")));

        let mail = app.mail("ada@example.com", 1).await;
        assert_eq!(mail.from, "gatehouse@example.com");
        let code = mail.code().expect("a code");
        let link = mail.link().expect("a link");
        assert!(link.starts_with(&app.url("/auth/v1/verify?token=")), "{link}");
        assert!(mail.html.contains(&code), "both parts carry the code");

        let (status, session) = v1(&app, "/verify", json!({"type": "signup", "email": "ada@example.com", "token": code})).await;
        assert_eq!(status, 200, "{session}");
        assert!(session["access_token"].is_string() && session["refresh_token"].is_string());
        assert!(session["user"]["email_confirmed_at"].is_string());
        let (status, again) = v1(&app, "/verify", json!({"type": "signup", "email": "ada@example.com", "token": code})).await;
        assert_eq!((status, again["error_code"].as_str()), (403, Some("otp_expired")), "single use");
        let (status, _) = password_grant(&app, "ada@example.com", PASSWORD).await;
        assert_eq!(status, 200);
    }

    async fn a_taken_address_answers_like_a_new_one_and_its_owner_is_told(app: TestApp) {
        app.create_account("grace@example.com", "user").await;
        let (status, fresh) = v1(&app, "/signup", json!({"email": "new@example.com", "password": PASSWORD})).await;
        assert_eq!(status, 200);
        let (status, taken) = v1(&app, "/signup", json!({"email": "grace@example.com", "password": PASSWORD, "data": {"x": 1}})).await;
        assert_eq!(status, 200, "{taken}");
        let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
        assert_eq!(keys(&fresh), keys(&taken), "the same shape");
        assert_eq!(taken["identities"], json!([]), "GoTrue's tell for apps");
        assert_eq!(taken["user_metadata"], json!({"x": 1}));
        let users = app.gatehouse.store().find_user_by_email("grace@example.com").await.unwrap().unwrap();
        assert_ne!(taken["id"], users.id.to_string(), "a stand-in id, not the account's");
        let mail = app.mail("grace@example.com", 1).await;
        assert!(mail.text.to_lowercase().contains("already"), "{}", mail.text);
        // The app API answers alike: 201 both times.
        let fresh = app.post_json("/auth/signup", json!({"email": "new2@example.com", "password": PASSWORD})).await;
        assert_eq!(fresh.status(), 201);
        let taken = app.post_json("/auth/signup", json!({"email": "grace@example.com", "password": PASSWORD})).await;
        assert_eq!(taken.status(), 201);
    }

    async fn every_sign_up_is_checked_alike_whoever_has_the_address(app: TestApp) {
        app.create_account("grace@example.com", "user").await;
        for email in ["grace@example.com", "new@example.com"] {
            let (status, weak) = v1(&app, "/signup", json!({"email": email, "password": "a"})).await;
            assert_eq!((status, weak["error_code"].as_str()), (422, Some("weak_password")), "{email}: {weak}");
        }
        // The app API echoes the profile for both.
        for email in ["grace@example.com", "new2@example.com"] {
            let made = app.post_json("/auth/signup", json!({"email": email, "password": PASSWORD, "username": email.split('@').next(), "profile": {"displayName": "G"}})).await;
            assert_eq!(made.status(), 201);
            let user = body(made).await["user"].clone();
            assert_eq!(user["username"], email.split('@').next().unwrap(), "{user}");
            assert_eq!(user["profile"]["displayName"], "G", "{user}");
        }
    }

    async fn whoever_pre_registers_an_address_keeps_no_password_in_it(app: TestApp) {
        // Mallory signs the victim's address up with her password and never confirms.
        let (status, _) = v1(&app, "/signup", json!({"email": "victim@example.com", "password": "mallory-Knows-This-1"})).await;
        assert_eq!(status, 200);
        // The victim signs up too, and confirms the mail their own sign-up sent.
        let (status, answer) = v1(&app, "/signup", json!({"email": "victim@example.com", "password": PASSWORD})).await;
        assert_eq!(status, 200);
        assert_eq!(answer["identities"].as_array().unwrap().len(), 1, "like a new account: {answer}");
        let mail = app.mail("victim@example.com", 2).await;
        let (status, _) = v1(&app, "/verify", json!({"type": "signup", "email": "victim@example.com", "token": mail.code().unwrap()})).await;
        assert_eq!(status, 200);
        assert_eq!(password_grant(&app, "victim@example.com", PASSWORD).await.0, 200);
        assert_eq!(password_grant(&app, "victim@example.com", "mallory-Knows-This-1").await.0, 400, "Mallory's password is gone");

        // A magic link that first proves an address leaves no unproven password behind.
        v1(&app, "/signup", json!({"email": "other@example.com", "password": "mallory-Knows-This-1"})).await;
        app.mail("other@example.com", 1).await;
        v1(&app, "/otp", json!({"email": "other@example.com"})).await;
        let link = app.mail("other@example.com", 2).await;
        let (status, _) = v1(&app, "/verify", json!({"type": "email", "email": "other@example.com", "token": link.code().unwrap()})).await;
        assert_eq!(status, 200);
        assert_eq!(password_grant(&app, "other@example.com", "mallory-Knows-This-1").await.0, 400);
    }

    async fn a_signed_in_caller_cannot_test_addresses_by_changing_email(app: TestApp) {
        app.create_account("ada@example.com", "user").await;
        app.create_account("grace@example.com", "user").await;
        let (_, session) = password_grant(&app, "ada@example.com", PASSWORD).await;
        let access = session["access_token"].as_str().unwrap().to_owned();
        app.clock.advance(Duration::from_secs(11 * 60));
        for email in ["grace@example.com", "nobody@example.com"] {
            let r = app.authed(Method::PUT, "/auth/v1/user", &access).json(&json!({"email": email})).send().await.unwrap();
            assert_eq!(r.status(), 400, "{email}");
            assert_eq!(body(r).await["error_code"], "reauthentication_needed", "{email}");
        }
    }

    async fn a_cross_site_form_cannot_redeem_a_link(app: TestApp) {
        app.create_account("ada@example.com", "user").await;
        v1(&app, "/otp", json!({"email": "ada@example.com"})).await;
        let token = link_token(&app.mail("ada@example.com", 1).await.link().unwrap());
        let no_redirects = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        for (header, value) in [("origin", "https://evil.test"), ("sec-fetch-site", "cross-site")] {
            let refused = no_redirects.post(app.url("/auth/v1/verify/link")).header(header, value)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(format!("token={token}&type=magiclink")).send().await.unwrap();
            assert_eq!(refused.status(), 403, "{header}");
        }
        let ours = no_redirects.post(app.url("/auth/v1/verify/link")).header("origin", &app.base)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("token={token}&type=magiclink")).send().await.unwrap();
        assert_eq!(ours.status(), 303, "the link was not spent by the refused posts");
        assert!(fragment_param(ours.headers()["location"].to_str().unwrap(), "access_token").is_some());
    }

    async fn a_link_opens_a_page_and_only_its_button_redeems_it(app: TestApp) {
        v1(&app, "/signup", json!({"email": "ada@example.com", "password": PASSWORD})).await;
        let link = app.mail("ada@example.com", 1).await.link().unwrap();
        // Scanners follow GETs: any number of them consume nothing.
        for _ in 0..3 {
            let page = app.client.get(&link).send().await.unwrap();
            assert_eq!(page.status(), 200);
            let csp = page.headers()["content-security-policy"].to_str().unwrap().to_owned();
            assert!(csp.contains("default-src 'none'") && csp.contains("form-action 'self'"), "{csp}");
            assert!(!page.text().await.unwrap().contains("<script"));
        }
        let location = click(&app, &link).await;
        assert!(location.starts_with(&app.base), "{location}");
        let access = fragment_param(&location, "access_token").expect("a session in the fragment");
        assert_eq!(fragment_param(&location, "type").as_deref(), Some("signup"));
        let user = app.authed(Method::GET, "/auth/v1/user", &access).send().await.unwrap();
        assert_eq!(user.status(), 200);
        let page = app.client.get(&link).send().await.unwrap().text().await.unwrap();
        assert!(!page.contains("<form"), "a used link's page has no button: {page}");
        let again = post_link(&app, &link).await;
        assert_eq!(fragment_param(&again, "error_code").as_deref(), Some("otp_expired"), "{again}");
        assert!(fragment_param(&again, "access_token").is_none());
    }

    async fn a_forgotten_password_is_reset_through_supabase_s_recovery_flow(app: TestApp) {
        app.create_account("ada@example.com", "user").await;
        let (status, empty) = v1(&app, "/recover", json!({"email": "nobody@example.com"})).await;
        assert_eq!((status, empty), (200, json!({})));
        let (status, empty) = v1(&app, "/recover", json!({"email": "ada@example.com"})).await;
        assert_eq!((status, empty), (200, json!({})));
        let mail = app.mail("ada@example.com", 1).await;
        let (status, session) = v1(&app, "/verify", json!({"type": "recovery", "email": "ada@example.com", "token": mail.code().unwrap()})).await;
        assert_eq!(status, 200, "{session}");
        let access = session["access_token"].as_str().unwrap();
        let changed = app.authed(Method::PUT, "/auth/v1/user", access).json(&json!({"password": "orbit-Meadow-93!"})).send().await.unwrap();
        assert_eq!(changed.status(), 200, "a recovery counts as a recent authentication");
        assert_eq!(password_grant(&app, "ada@example.com", "orbit-Meadow-93!").await.0, 200);
        assert_eq!(password_grant(&app, "ada@example.com", PASSWORD).await.0, 400);
        // Nobody was mailed for the unknown address.
        assert!(app.sink().messages().iter().all(|m| m.to.iter().all(|t| t != "nobody@example.com")));
    }

    async fn a_magic_link_and_a_code_sign_in(app: TestApp) {
        app.create_account("ada@example.com", "user").await;
        let (status, _) = v1(&app, "/otp", json!({"email": "ada@example.com", "create_user": false})).await;
        assert_eq!(status, 200);
        let first = app.mail("ada@example.com", 1).await;
        let location = click(&app, &first.link().unwrap()).await;
        assert!(fragment_param(&location, "access_token").is_some(), "{location}");
        assert_eq!(fragment_param(&location, "type").as_deref(), Some("magiclink"));

        v1(&app, "/otp", json!({"email": "ada@example.com"})).await;
        let second = app.mail("ada@example.com", 2).await;
        let (status, session) = v1(&app, "/verify", json!({"type": "email", "email": "ADA@example.com", "token": second.code().unwrap()})).await;
        assert_eq!(status, 200, "{session}");
        assert!(session["access_token"].is_string());

        // An unknown address with create_user gets an account, confirmed by its code.
        v1(&app, "/otp", json!({"email": "new@example.com", "data": {"plan": "free"}})).await;
        let welcome = app.mail("new@example.com", 1).await;
        let (status, session) = v1(&app, "/verify", json!({"type": "email", "email": "new@example.com", "token": welcome.code().unwrap()})).await;
        assert_eq!(status, 200, "{session}");
        assert_eq!(session["user"]["user_metadata"]["plan"], "free");
        // Without create_user, nobody is made and nothing is sent, yet the answer is the same.
        let (status, empty) = v1(&app, "/otp", json!({"email": "ghost@example.com", "create_user": false})).await;
        assert_eq!((status, empty), (200, json!({})));
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(app.gatehouse.store().find_user_by_email("ghost@example.com").await.unwrap().is_none());
    }

    async fn five_wrong_codes_void_a_token_and_expiry_ends_it(app: TestApp) {
        app.create_account("ada@example.com", "user").await;
        v1(&app, "/otp", json!({"email": "ada@example.com"})).await;
        let code = app.mail("ada@example.com", 1).await.code().unwrap();
        let wrong = if code == "000000" { "111111" } else { "000000" };
        for _ in 0..5 {
            let (status, refused) = v1(&app, "/verify", json!({"type": "email", "email": "ada@example.com", "token": wrong})).await;
            assert_eq!((status, refused["error_code"].as_str()), (403, Some("otp_expired")));
        }
        let (status, _) = v1(&app, "/verify", json!({"type": "email", "email": "ada@example.com", "token": code})).await;
        assert_eq!(status, 403, "the right code no longer works after five wrong ones");

        v1(&app, "/otp", json!({"email": "ada@example.com"})).await;
        let code = app.mail("ada@example.com", 2).await.code().unwrap();
        app.clock.advance(Duration::from_secs(10 * 60 + 1));
        let (status, _) = v1(&app, "/verify", json!({"type": "email", "email": "ada@example.com", "token": code})).await;
        assert_eq!(status, 403, "expired after GATEHOUSE_OTP_TTL");
    }

    async fn a_day_s_guessing_budget_holds_across_new_mail(app: TestApp) {
        app.create_account("ada@example.com", "user").await;
        for n in 1..=4 {
            v1(&app, "/otp", json!({"email": "ada@example.com"})).await;
            let code = app.mail("ada@example.com", n).await.code().unwrap();
            let wrong = if code == "000000" { "111111" } else { "000000" };
            for _ in 0..5 {
                v1(&app, "/verify", json!({"type": "email", "email": "ada@example.com", "token": wrong})).await;
            }
        }
        v1(&app, "/otp", json!({"email": "ada@example.com"})).await;
        let fifth = app.mail("ada@example.com", 5).await;
        let (status, _) = v1(&app, "/verify", json!({"type": "email", "email": "ada@example.com", "token": fifth.code().unwrap()})).await;
        assert_eq!(status, 403, "20 wrong codes in a day: codes are refused");
        let (status, _) = v1(&app, "/verify", json!({"type": "magiclink", "token_hash": link_token(&fifth.link().unwrap())})).await;
        assert_eq!(status, 200, "the link still works");
    }

    async fn the_sweep_forgets_spent_tokens_and_old_flows_but_not_live_ones(app: TestApp) {
        app.create_account("ada@example.com", "user").await;
        v1(&app, "/otp", json!({"email": "ada@example.com", "code_challenge": "a".repeat(43), "code_challenge_method": "plain"})).await;
        let spent = app.mail("ada@example.com", 1).await;
        v1(&app, "/verify", json!({"type": "email", "email": "ada@example.com", "token": spent.code().unwrap()})).await;
        let count = |table: &'static str| {
            let store = app.gatehouse.store().clone();
            async move {
                let sql = format!("SELECT count(*) FROM {table}");
                let n: i64 = gatehouse_core::store::with_pool!(&store, pool => gatehouse_core::store::sqlx::query_scalar(&sql).fetch_one(pool).await.unwrap());
                n
            }
        };
        assert_eq!((count("one_time_tokens").await, count("flow_states").await), (1, 1));
        app.clock.advance(Duration::from_secs(8 * 24 * 3600));
        v1(&app, "/otp", json!({"email": "ada@example.com"})).await;
        app.mail("ada@example.com", 2).await;
        let now = app.gatehouse.now();
        // The courier sweeps hourly by the clock, so it may have done it already.
        app.gatehouse.store().sweep_mail((now - time::Duration::days(7)).into()).await.unwrap();
        assert_eq!(count("flow_states").await, 0, "the old flow is gone");
        assert_eq!(count("one_time_tokens").await, 1, "the spent token is gone, the live one stays");
    }

    async fn only_the_latest_mail_of_a_kind_works(app: TestApp) {
        v1(&app, "/signup", json!({"email": "ada@example.com", "password": PASSWORD})).await;
        let first = app.mail("ada@example.com", 1).await;
        let (status, _) = v1(&app, "/resend", json!({"type": "signup", "email": "ada@example.com"})).await;
        assert_eq!(status, 200);
        let second = app.mail("ada@example.com", 2).await;
        assert_ne!(first.code(), second.code());
        let (status, _) = v1(&app, "/verify", json!({"type": "signup", "token_hash": link_token(&first.link().unwrap())})).await;
        assert_eq!(status, 403, "the resent mail voids the first");
        let (status, _) = v1(&app, "/verify", json!({"type": "signup", "token_hash": link_token(&second.link().unwrap())})).await;
        assert_eq!(status, 200);
    }

    async fn redirects_go_only_to_the_allowlist(app: TestApp) {
        app.create_account("ada@example.com", "user").await;
        // Each mail voids the one before: click each before asking for the next.
        for (n, evil) in ["https://evil.test/", "https://127.0.0.1.evil.test/", "javascript:alert(1)"].into_iter().enumerate() {
            let (status, _) = v1(&app, &format!("/recover?redirect_to={}", url::form_urlencoded::byte_serialize(evil.as_bytes()).collect::<String>()), json!({"email": "ada@example.com"})).await;
            assert_eq!(status, 200);
            let location = click(&app, &app.mail("ada@example.com", n + 1).await.link().unwrap()).await;
            let site = url::Url::parse(&location).unwrap();
            assert_eq!((site.origin(), site.path()), (url::Url::parse(&app.base).unwrap().origin(), "/"), "falls back to the site URL: {location}");
        }
        let back = format!("{}/welcome", app.base);
        v1(&app, &format!("/recover?redirect_to={}", url::form_urlencoded::byte_serialize(back.as_bytes()).collect::<String>()), json!({"email": "ada@example.com"})).await;
        let location = click(&app, &app.mail("ada@example.com", 4).await.link().unwrap()).await;
        assert!(location.starts_with(&format!("{back}#")), "{location}");
    }

    async fn a_pkce_flow_trades_its_code_once(app: TestApp) {
        use base64::Engine;
        app.create_account("ada@example.com", "user").await;
        let verifier = "a-verifier-of-enough-length-0123456789-abcdefghij";
        let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes()));
        let (status, _) = v1(&app, "/otp", json!({"email": "ada@example.com", "code_challenge": challenge, "code_challenge_method": "s256"})).await;
        assert_eq!(status, 200);
        let location = click(&app, &app.mail("ada@example.com", 1).await.link().unwrap()).await;
        assert!(fragment_param(&location, "access_token").is_none(), "no tokens in the URL: {location}");
        let code = url::Url::parse(&location).unwrap().query_pairs().find(|(k, _)| k == "code").unwrap().1.into_owned();
        let (status, bad) = v1(&app, "/token?grant_type=pkce", json!({"auth_code": code, "code_verifier": format!("{verifier}x")})).await;
        assert_eq!((status, bad["error_code"].as_str()), (400, Some("bad_code_verifier")), "{bad}");
        let (status, gone) = v1(&app, "/token?grant_type=pkce", json!({"auth_code": code, "code_verifier": verifier})).await;
        assert_eq!((status, gone["error_code"].as_str()), (404, Some("flow_state_not_found")), "one try per code: {gone}");

        v1(&app, "/otp", json!({"email": "ada@example.com", "code_challenge": challenge, "code_challenge_method": "S256"})).await;
        let location = click(&app, &app.mail("ada@example.com", 2).await.link().unwrap()).await;
        let code = url::Url::parse(&location).unwrap().query_pairs().find(|(k, _)| k == "code").unwrap().1.into_owned();
        let (status, session) = v1(&app, "/token?grant_type=pkce", json!({"auth_code": code, "code_verifier": verifier})).await;
        assert_eq!(status, 200, "{session}");
        assert_eq!(session["user"]["email"], "ada@example.com");

        v1(&app, "/otp", json!({"email": "ada@example.com", "code_challenge": challenge, "code_challenge_method": "s256"})).await;
        let location = click(&app, &app.mail("ada@example.com", 3).await.link().unwrap()).await;
        let code = url::Url::parse(&location).unwrap().query_pairs().find(|(k, _)| k == "code").unwrap().1.into_owned();
        app.clock.advance(Duration::from_secs(301));
        let (status, expired) = v1(&app, "/token?grant_type=pkce", json!({"auth_code": code, "code_verifier": verifier})).await;
        assert_eq!((status, expired["error_code"].as_str()), (422, Some("flow_state_expired")));
    }

    async fn an_email_change_needs_both_addresses(app: TestApp) {
        app.create_account("ada@example.com", "user").await;
        let (_, session) = password_grant(&app, "ada@example.com", PASSWORD).await;
        let access = session["access_token"].as_str().unwrap().to_owned();
        let back = format!("{}/changed", app.base);
        let changed = app
            .authed(Method::PUT, &format!("/auth/v1/user?redirect_to={}", url::form_urlencoded::byte_serialize(back.as_bytes()).collect::<String>()), &access)
            .json(&json!({"email": "ada@new.example"})).send().await.unwrap();
        assert_eq!(changed.status(), 200);
        let user = body(changed).await;
        assert_eq!(user["email"], "ada@example.com", "not yet");
        assert_eq!(user["new_email"], "ada@new.example");
        let to_current = app.mail("ada@example.com", 1).await;
        let to_new = app.mail("ada@new.example", 1).await;
        let leads_to = url::Url::parse(&to_new.link().unwrap()).unwrap().query_pairs().find(|(k, _)| k == "redirect_to").map(|(_, v)| v.into_owned());
        assert_eq!(leads_to.as_deref(), Some(back.as_str()), "?redirect_to= of PUT /user (supabase-js emailRedirectTo)");
        let (status, first) = v1(&app, "/verify", json!({"type": "email_change", "token_hash": link_token(&to_current.link().unwrap())})).await;
        assert_eq!(status, 200);
        assert_eq!(first["code"], "200", "GoTrue's string: {first}");
        assert!(first["msg"].as_str().unwrap().contains("other email"));
        assert_eq!(password_grant(&app, "ada@new.example", PASSWORD).await.0, 400, "one confirmation is not enough");
        let (status, session) = v1(&app, "/verify", json!({"type": "email_change", "email": "ada@new.example", "token": to_new.code().unwrap()})).await;
        assert_eq!(status, 200, "{session}");
        assert_eq!(session["user"]["email"], "ada@new.example");
        assert_eq!(password_grant(&app, "ada@new.example", PASSWORD).await.0, 200);
        assert_eq!(password_grant(&app, "ada@example.com", PASSWORD).await.0, 400);
    }

    async fn a_reauthentication_code_is_the_nonce_of_a_password_change(app: TestApp) {
        app.create_account("ada@example.com", "user").await;
        let (_, session) = password_grant(&app, "ada@example.com", PASSWORD).await;
        let access = session["access_token"].as_str().unwrap().to_owned();
        app.clock.advance(Duration::from_secs(11 * 60));
        let (status, refused) = {
            let r = app.authed(Method::PUT, "/auth/v1/user", &access).json(&json!({"password": "orbit-Meadow-93!"})).send().await.unwrap();
            (r.status().as_u16(), body(r).await)
        };
        assert_eq!((status, refused["error_code"].as_str()), (400, Some("reauthentication_needed")));
        let asked = app.authed(Method::GET, "/auth/v1/reauthenticate", &access).send().await.unwrap();
        assert_eq!(asked.status(), 200);
        let nonce = app.mail("ada@example.com", 1).await.code().unwrap();
        let wrong = app.authed(Method::PUT, "/auth/v1/user", &access).json(&json!({"password": "orbit-Meadow-93!", "nonce": "000001"})).send().await.unwrap();
        assert_eq!(wrong.status(), 422);
        assert_eq!(body(wrong).await["error_code"], "reauthentication_not_valid");
        let ok = app.authed(Method::PUT, "/auth/v1/user", &access).json(&json!({"password": "orbit-Meadow-93!", "nonce": nonce})).send().await.unwrap();
        assert_eq!(ok.status(), 200);
        let again = app.authed(Method::PUT, "/auth/v1/user", &access).json(&json!({"password": "other-Meadow-94!", "nonce": nonce})).send().await.unwrap();
        assert_eq!(again.status(), 422, "a nonce proves one change");
        assert_eq!(password_grant(&app, "ada@example.com", "orbit-Meadow-93!").await.0, 200);
    }

    async fn an_invitation_signs_its_user_in_to_set_a_password(app: TestApp) {
        let service = app.gatehouse.keys.issue_api_key(ApiRole::ServiceRole).unwrap();
        let anon = app.gatehouse.keys.issue_api_key(ApiRole::Anon).unwrap();
        let refused = app.authed(Method::POST, "/auth/v1/invite", &anon).json(&json!({"email": "grace@example.com"})).send().await.unwrap();
        assert_eq!(refused.status(), 403);
        let invited = app.authed(Method::POST, "/auth/v1/invite", &service).json(&json!({"email": "grace@example.com", "data": {"team": "compilers"}})).send().await.unwrap();
        assert_eq!(invited.status(), 200);
        let user = body(invited).await;
        assert_eq!(user["user_metadata"]["team"], "compilers");
        let mail = app.mail("grace@example.com", 1).await;
        let (status, session) = v1(&app, "/verify", json!({"type": "invite", "token_hash": link_token(&mail.link().unwrap())})).await;
        assert_eq!(status, 200, "{session}");
        let access = session["access_token"].as_str().unwrap();
        let set = app.authed(Method::PUT, "/auth/v1/user", access).json(&json!({"password": PASSWORD})).send().await.unwrap();
        assert_eq!(set.status(), 200);
        assert_eq!(password_grant(&app, "grace@example.com", PASSWORD).await.0, 200);
        let again = app.authed(Method::POST, "/auth/v1/invite", &service).json(&json!({"email": "grace@example.com"})).send().await.unwrap();
        assert_eq!(again.status(), 422);
        assert_eq!(body(again).await["error_code"], "email_exists");
    }

    async fn generate_link_hands_the_token_to_the_service_role_and_mails_nothing(app: TestApp) {
        app.create_account("ada@example.com", "user").await;
        let service = app.gatehouse.keys.issue_api_key(ApiRole::ServiceRole).unwrap();
        let made = app.authed(Method::POST, "/auth/v1/admin/generate_link", &service).json(&json!({"type": "magiclink", "email": "ada@example.com"})).send().await.unwrap();
        assert_eq!(made.status(), 200);
        let link = body(made).await;
        assert_eq!(link["email"], "ada@example.com");
        assert_eq!(link["verification_type"], "magiclink");
        assert_eq!(link["email_otp"].as_str().unwrap().len(), 6);
        assert!(link["action_link"].as_str().unwrap().contains("/auth/v1/verify?token="));
        let (status, session) = v1(&app, "/verify", json!({"type": "magiclink", "token_hash": link["hashed_token"]})).await;
        assert_eq!(status, 200, "{session}");
        let unknown = app.authed(Method::POST, "/auth/v1/admin/generate_link", &service).json(&json!({"type": "recovery", "email": "nobody@example.com"})).send().await.unwrap();
        assert_eq!(unknown.status(), 404);
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(app.sink().messages().is_empty(), "generate_link sends nothing");
    }

    async fn the_app_api_resets_a_password_and_ends_every_session(app: TestApp) {
        app.create_account("ada@example.com", "user").await;
        let signed = app.signin_ok("ada@example.com").await;
        let accepted = app.post_json("/auth/password/forgot", json!({"email": "ada@example.com"})).await;
        assert_eq!(accepted.status(), 202);
        let unknown = app.post_json("/auth/password/forgot", json!({"email": "nobody@example.com"})).await;
        assert_eq!(unknown.status(), 202);
        let code = app.mail("ada@example.com", 1).await.code().unwrap();
        let weak = app.post_json("/auth/password/reset", json!({"email": "ada@example.com", "code": code, "newPassword": "short"})).await;
        assert_error(weak, 422, "weak_password").await;
        let reset = app.post_json("/auth/password/reset", json!({"email": "ada@example.com", "code": code, "newPassword": "orbit-Meadow-93!"})).await;
        assert_eq!(reset.status(), 200, "a weak password did not burn the code");
        assert_error(app.refresh(&signed.refresh).await, 401, "refresh_token_invalid").await;
        assert_eq!(app.signin("ada@example.com", "orbit-Meadow-93!").await.status(), 200);
        let reused = app.post_json("/auth/password/reset", json!({"email": "ada@example.com", "code": code, "newPassword": "other-Meadow-94!"})).await;
        assert_error(reused, 400, "otp_invalid").await;
        assert!(app.audit_actions().await.contains(&"user.password_reset".to_owned()));
    }

    async fn the_app_api_confirms_and_signs_in_by_code(app: TestApp) {
        let created = app.post_json("/auth/signup", json!({"email": "ada@example.com", "password": PASSWORD})).await;
        assert_eq!(created.status(), 201);
        assert_error(app.signin("ada@example.com", PASSWORD).await, 403, "email_not_confirmed").await;
        let code = app.mail("ada@example.com", 1).await.code().unwrap();
        let confirmed = app.cookie_post("/auth/email/verify", None, Some(json!({"email": "ada@example.com", "code": code}))).await;
        assert_eq!(confirmed.status(), 200);
        let signed = TestApp::signed(confirmed).await;
        assert_eq!(app.me(&signed.access).await.status(), 200);

        assert_eq!(app.post_json("/auth/magic-link", json!({"email": "ada@example.com"})).await.status(), 202);
        let mail = app.mail("ada@example.com", 2).await;
        let without_csrf = app.post_json("/auth/otp/verify", json!({"email": "ada@example.com", "code": mail.code().unwrap()})).await;
        assert_error(without_csrf, 403, "csrf_failed").await;
        let signed_in = app.cookie_post("/auth/otp/verify", None, Some(json!({"token": link_token(&mail.link().unwrap())}))).await;
        assert_eq!(signed_in.status(), 200);
        assert!(crate::helpers::cookie_value(&signed_in, "sb_refresh_token").is_some(), "the refresh cookie, as at sign-in");
        let body = body(signed_in).await;
        assert!(body.get("refreshToken").is_none() && body.get("refresh_token").is_none(), "{body}");
    }

    async fn an_account_at_the_hard_stop_is_unlocked_from_a_mailed_link(app: TestApp) {
        let id = app.create_account("ada@example.com", "user").await;
        app.sql("UPDATE users SET locked_at = created_at, failed_sign_ins = 100 WHERE id = $1", &id.to_string()).await;
        assert_error(app.signin("ada@example.com", PASSWORD).await, 403, "account_locked").await;
        assert_eq!(app.post_json("/auth/unlock", json!({"email": "ada@example.com"})).await.status(), 202);
        assert_eq!(app.post_json("/auth/unlock", json!({"email": "nobody@example.com"})).await.status(), 202);
        let mail = app.mail("ada@example.com", 1).await;
        let location = click(&app, &mail.link().unwrap()).await;
        assert!(fragment_param(&location, "message").is_some_and(|m| m.contains("unlocked")), "{location}");
        assert_eq!(app.signin("ada@example.com", PASSWORD).await.status(), 200);
    }

    async fn nothing_queued_is_lost_while_smtp_is_down_or_across_a_restart(app: TestApp) {
        app.create_account("ada@example.com", "user").await;
        app.sink().pause().await;
        let (status, _) = v1(&app, "/recover", json!({"email": "ada@example.com"})).await;
        assert_eq!(status, 200, "the request does not wait for SMTP");
        // The courier tries, fails and backs off; the message stays queued.
        let mut depth = app.gatehouse.mail.outbox_depth().await.unwrap();
        for _ in 0..50 {
            if depth.pending == 1 { break; }
            tokio::time::sleep(Duration::from_millis(100)).await;
            depth = app.gatehouse.mail.outbox_depth().await.unwrap();
        }
        assert_eq!(depth.pending, 1);
        let ready = body(app.get("/ready").await).await;
        assert_eq!(ready["mail_outbox"]["pending"], 1, "{ready}");
        tokio::time::sleep(Duration::from_millis(1500)).await;
        // A restart while it waits: the next server's courier sends it once SMTP is back.
        let sink = app.sink.take().unwrap();
        let settings = gatehouse_core::Settings { mail: Some(crate::helpers::mail_settings()), ..Default::default() };
        let mut app = app.restart(settings).await.map_err(|(e, _)| e).unwrap();
        sink.resume().await.unwrap();
        app.start_courier(sink);
        // Past the backoff, within the code's lifetime (older mail is given up on).
        app.clock.advance(Duration::from_secs(120));
        let mail = app.mail("ada@example.com", 1).await;
        assert!(mail.code().is_some());
        for _ in 0..50 {
            if app.gatehouse.mail.outbox_depth().await.unwrap().pending == 0 { break; }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(app.gatehouse.mail.outbox_depth().await.unwrap().pending, 0);
        tokio::time::sleep(Duration::from_millis(1200)).await;
        assert_eq!(app.sink().wait_for("ada@example.com", 1, Duration::from_millis(10)).await.unwrap().len(), 1, "sent once");
    }

    async fn a_sender_that_dies_mid_send_has_its_mail_sent_after_the_lease(app: TestApp) {
        app.create_account("ada@example.com", "user").await;
        app.stop_courier().await;
        v1(&app, "/recover", json!({"email": "ada@example.com"})).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        // A sender claims the message and dies before it is marked sent.
        let now = app.gatehouse.now();
        let claimed = app.gatehouse.store().claim_due_mail(now.into(), (now + time::Duration::minutes(2)).into(), 10).await.unwrap();
        assert_eq!(claimed.len(), 1);
        let sink = app.sink.take().unwrap();
        app.start_courier(sink);
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert!(app.sink().messages().is_empty(), "held by the dead sender's lease");
        app.clock.advance(Duration::from_secs(121));
        let mail = app.mail("ada@example.com", 1).await;
        assert!(mail.message_id.contains(&claimed[0].id.to_string()), "the outbox row's id is the Message-ID: {}", mail.message_id);
    }
}

mod without_a_mailer {
    use super::*;

    on_both_backends! {
        async fn the_mail_flows_are_off_and_sign_ups_confirm_at_once(app: TestApp) {
            let settings = body(app.get("/auth/v1/settings").await).await;
            assert_eq!(settings["mailer_autoconfirm"], true);
            let (status, refused) = v1(&app, "/recover", json!({"email": "ada@example.com"})).await;
            assert_eq!((status, refused["error_code"].as_str()), (404, Some("mail_not_configured")));
            assert_error(app.post_json("/auth/password/forgot", json!({"email": "ada@example.com"})).await, 404, "mail_not_configured").await;
            let (status, session) = v1(&app, "/signup", json!({"email": "ada@example.com", "password": PASSWORD})).await;
            assert_eq!(status, 200);
            assert!(session["access_token"].is_string());
        }
    }
}

#[tokio::test]
async fn autoconfirm_signs_up_at_once_even_with_a_mailer() {
    let app = TestApp::spawn_mail(Backend::Sqlite, |s| {
        s.mail.as_mut().unwrap().autoconfirm = true;
    })
    .await;
    let settings = body(app.get("/auth/v1/settings").await).await;
    assert_eq!(settings["mailer_autoconfirm"], true);
    let (status, session) = v1(
        &app,
        "/signup",
        json!({"email": "ada@example.com", "password": PASSWORD}),
    )
    .await;
    assert_eq!(status, 200);
    assert!(session["access_token"].is_string(), "{session}");
    // The mail flows work all the same.
    v1(&app, "/recover", json!({"email": "ada@example.com"})).await;
    assert!(app.mail("ada@example.com", 1).await.code().is_some());
}
