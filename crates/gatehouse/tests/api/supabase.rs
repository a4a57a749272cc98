//! The `/auth/v1` surface from Rust: API keys and their rotation, the error formats, and
//! that both surfaces are one system (same users, roles and audit trail). The official
//! clients run against a live server in `compat/`.

use gatehouse_core::api_keys::ApiRole;
use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{assert_error, TestApp, PASSWORD};

async fn json_of(response: reqwest::Response) -> Value {
    response.json().await.unwrap()
}

on_both_backends! {
    async fn api_keys_open_what_their_role_allows_until_rotated(app: TestApp) {
        let anon = app.gatehouse.keys.issue_api_key(ApiRole::Anon).unwrap();
        let service = app.gatehouse.keys.issue_api_key(ApiRole::ServiceRole).unwrap();
        let list = |key: String| app.client.get(app.url("/auth/v1/admin/users")).bearer_auth(key).header("x-supabase-api-version", "2024-01-01").send();
        assert_eq!(list(service.clone()).await.unwrap().status(), 200);
        let refused = list(anon.clone()).await.unwrap();
        assert_eq!(refused.status(), 403);
        assert_eq!(json_of(refused).await["code"], "not_admin");
        // An API key is not a user: the app API and /user refuse it.
        assert_error(app.me(&service).await, 401, "unauthorized").await;
        let user = app.client.get(app.url("/auth/v1/user")).bearer_auth(&anon).header("x-supabase-api-version", "2024-01-01").send().await.unwrap();
        assert_eq!(user.status(), 403);
        assert_eq!(json_of(user).await["code"], "bad_jwt");

        app.gatehouse.keys.rotate_api_keys().await.unwrap();
        app.gatehouse.keys.reload_api_keys().await.unwrap();
        let stale = list(service).await.unwrap();
        assert_eq!(stale.status(), 403, "a rotated-out service key opens nothing");
        assert_eq!(json_of(stale).await["code"], "bad_jwt");
        let fresh = app.gatehouse.keys.issue_api_key(ApiRole::ServiceRole).unwrap();
        assert_eq!(list(fresh).await.unwrap().status(), 200);
    }

    async fn errors_follow_the_requested_api_version(app: TestApp) {
        let weak = json!({"email": "ada@example.com", "password": "short"});
        let current = app.client.post(app.url("/auth/v1/signup")).header("x-supabase-api-version", "2024-01-01").json(&weak).send().await.unwrap();
        assert_eq!(current.status(), 422);
        assert_eq!(current.headers()["x-supabase-api-version"], "2024-01-01");
        assert_eq!(current.headers()["x-sb-error-code"], "weak_password");
        let body = json_of(current).await;
        assert_eq!(body["code"], "weak_password");
        assert!(body["message"].is_string());
        assert!(body["weak_password"]["reasons"].as_array().unwrap().contains(&json!("length")));
        let legacy = json_of(app.post_json("/auth/v1/signup", weak).await).await;
        assert_eq!(legacy["code"], 422);
        assert_eq!(legacy["error_code"], "weak_password");
        assert!(legacy["msg"].is_string());
        assert!(legacy["weak_password"]["reasons"].is_array());
        let unknown = app.client.post(app.url("/auth/v1/token?grant_type=magic")).json(&json!({})).send().await.unwrap();
        assert_eq!(unknown.status(), 400);
        let body = json_of(unknown).await;
        assert_eq!(body["error_code"], "invalid_credentials");
        assert_eq!(body["error"], "invalid_credentials");
        assert_eq!(body["error_description"], "unsupported_grant_type");
        let missing = app.get("/auth/v1/nope").await;
        assert_eq!(missing.status(), 404);
        assert_eq!(json_of(missing).await["error_code"], "not_found");
        let no_auth = app.get("/auth/v1/user").await;
        assert_eq!(no_auth.status(), 401);
        assert_eq!(json_of(no_auth).await["error_code"], "no_authorization");
        for bad in ["garbage", "{\"refresh_token\": 5}"] {
            let response = app.client.post(app.url("/auth/v1/token?grant_type=refresh_token"))
                .header("content-type", "application/json").body(bad).send().await.unwrap();
            assert_eq!(response.status(), 400, "{bad}");
            assert_eq!(json_of(response).await["error_code"], "bad_json");
        }
        let response = app.client.post(app.url("/auth/v1/token?grant_type=refresh_token")).json(&json!({"refresh_token": "x".repeat(5000)})).send().await.unwrap();
        assert_eq!(response.status(), 400, "a bad refresh token is a 4xx, never a 5xx");
        assert_eq!(json_of(response).await["error_code"], "refresh_token_not_found");
    }

    async fn both_surfaces_are_one_system(app: TestApp) {
        // Signed up through /auth/v1, signed in through the app API, and back.
        let signup = app.post_json("/auth/v1/signup", json!({"email": "ada@example.com", "password": PASSWORD, "data": {"n": 1}})).await;
        assert_eq!(signup.status(), 200);
        let session = json_of(signup).await;
        assert!(session["refresh_token"].as_str().unwrap().len() >= 43);
        let app_side = app.signin_ok("ada@example.com").await;
        assert_eq!(json_of(app.me(&app_side.access).await).await["user"]["userMetadata"], json!({"n": 1}));
        let user = app.client.get(app.url("/auth/v1/user")).bearer_auth(&app_side.access).send().await.unwrap();
        assert_eq!(json_of(user).await["email"], "ada@example.com", "an app-API token works on /auth/v1");

        // A role set through the Supabase admin API is the RBAC role, audited like any other.
        let (_, admin) = app.admin("admin@example.com").await;
        let id = session["user"]["id"].as_str().unwrap().to_owned();
        let service = app.gatehouse.keys.issue_api_key(ApiRole::ServiceRole).unwrap();
        let updated = app.client.put(app.url(&format!("/auth/v1/admin/users/{id}"))).bearer_auth(&service)
            .json(&json!({"app_metadata": {"role": "admin"}})).send().await.unwrap();
        assert_eq!(json_of(updated).await["app_metadata"]["role"], "admin");
        let viewed = json_of(app.authed(Method::GET, &format!("/users/{id}"), &admin.access).send().await.unwrap()).await;
        assert_eq!(viewed["user"]["role"], "admin");
        let audit = json_of(app.authed(Method::GET, &format!("/audit?user={id}&action=admin.user_role_changed"), &admin.access).send().await.unwrap()).await;
        assert_eq!(audit["events"][0]["details"]["via"], "service_role");
        assert_eq!(audit["events"][0]["details"]["after"]["role"], "admin");
        let claims = app.client.post(app.url("/auth/v1/token?grant_type=password")).json(&json!({"email": "ada@example.com", "password": PASSWORD})).send().await.unwrap();
        let token = json_of(claims).await["access_token"].as_str().unwrap().to_owned();
        assert_eq!(app.authed(Method::GET, "/users", &token).send().await.unwrap().status(), 200, "the promoted user is an admin on the app API");
    }
}

/// The keys of a JSON object, sorted.
fn keys(value: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = value
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    keys
}

on_both_backends! {
    async fn the_surface_answers_unknown_routes_wrong_methods_and_refusals_in_its_own_format(app: TestApp) {
        let legacy = app.get("/auth/v1/nope").await;
        assert_eq!(legacy.status(), 404);
        assert_eq!(legacy.headers()["x-sb-error-code"], "not_found");
        assert_eq!(legacy.headers()["x-content-type-options"], "nosniff", "the legacy format keeps the security headers");
        assert_eq!(legacy.headers()["cache-control"], "no-store");
        assert_eq!(json_of(legacy).await, json!({"code": 404, "error_code": "not_found", "msg": "no route for GET /auth/v1/nope"}));
        let current = app.client.get(app.url("/auth/v1/nope")).header("x-supabase-api-version", "2024-01-01").send().await.unwrap();
        assert_eq!(current.headers()["x-supabase-api-version"], "2024-01-01");
        assert_eq!(json_of(current).await, json!({"code": "not_found", "message": "no route for GET /auth/v1/nope"}));
        assert_eq!(json_of(app.get("/auth/v1/").await).await["error_code"], "not_found");
        assert_eq!(json_of(app.get("/auth/v1").await).await["error_code"], "not_found");

        let wrong = app.client.delete(app.url("/auth/v1/settings")).send().await.unwrap();
        assert_eq!(wrong.status(), 405);
        assert_eq!(json_of(wrong).await, json!({"code": 405, "error_code": "method_not_allowed", "msg": "DELETE is not allowed on /auth/v1/settings"}));

        // What the middleware refuses before a handler runs is GoTrue's here, ours elsewhere.
        let long = format!("?x={}", "a".repeat(9000));
        let refused = app.get(&format!("/auth/v1/settings{long}")).await;
        assert_eq!(refused.status(), 414);
        assert_eq!(json_of(refused).await["error_code"], "uri_too_long");
        assert_error(app.get(&format!("/health{long}")).await, 414, "uri_too_long").await;
        assert_error(app.get("/auth/v2/nope").await, 404, "not_found").await;
    }

    async fn gotrue_bodies_keep_gotrues_fields_and_quirks(app: TestApp) {
        let user_keys = ["app_metadata", "aud", "created_at", "email", "id", "identities", "is_anonymous", "phone", "role", "updated_at", "user_metadata"];
        let session_keys = ["access_token", "expires_at", "expires_in", "refresh_token", "token_type", "user"];
        let signup = json_of(app.post_json("/auth/v1/signup", json!({"email": "ada@example.com", "password": PASSWORD, "data": {"n": 1}})).await).await;
        assert_eq!(keys(&signup), session_keys, "no weak_password outside the password grant");
        assert!(signup["expires_in"].is_u64() && signup["expires_at"].is_i64());
        let user = &signup["user"];
        assert_eq!((user["phone"].as_str(), user["aud"].as_str(), user["role"].as_str()), (Some(""), Some("authenticated"), Some("authenticated")));
        assert_eq!(user["user_metadata"], json!({"n": 1}));
        assert!(user.get("banned_until").is_none());
        let identity = &user["identities"][0];
        assert_eq!(identity["identity_data"]["sub"], user["id"]);
        assert_eq!(identity["identity_data"]["email_verified"], json!(user.get("email_confirmed_at").is_some()));

        let password = json_of(app.post_json("/auth/v1/token?grant_type=password", json!({"email": "ada@example.com", "password": PASSWORD})).await).await;
        assert_eq!(password["weak_password"], Value::Null);
        assert!(password.as_object().unwrap().contains_key("weak_password"), "present, null, on the password grant");
        assert!(password["user"]["last_sign_in_at"].is_string());
        let refresh = password["refresh_token"].as_str().unwrap();
        let refreshed = json_of(app.post_json("/auth/v1/token?grant_type=refresh_token", json!({"refresh_token": refresh})).await).await;
        assert_eq!(keys(&refreshed), session_keys);

        let service = app.gatehouse.keys.issue_api_key(ApiRole::ServiceRole).unwrap();
        let created = app.client.post(app.url("/auth/v1/admin/users")).bearer_auth(&service)
            .json(&json!({"email": "grace@example.com", "password": PASSWORD})).send().await.unwrap();
        let created = json_of(created).await;
        assert_eq!(keys(&created), user_keys, "unset timestamps are left out, never null");
        assert_eq!(created["identities"][0]["last_sign_in_at"], Value::Null, "but an identity's is null");
        let id = created["id"].as_str().unwrap();
        let listed = json_of(app.client.get(app.url("/auth/v1/admin/users")).bearer_auth(&service).send().await.unwrap()).await;
        assert_eq!(keys(&listed), ["aud", "users"]);
        let deleted = app.client.delete(app.url(&format!("/auth/v1/admin/users/{id}"))).bearer_auth(&service).send().await.unwrap();
        assert_eq!(json_of(deleted).await, json!({}));

        let settings = json_of(app.get("/auth/v1/settings").await).await;
        assert_eq!((settings["external"]["email"].as_bool(), settings["external"]["google"].as_bool()), (Some(true), Some(false)));
        assert_eq!(settings["sms_provider"], "");
        assert_eq!(json_of(app.get("/auth/v1/health").await).await["name"], "GoTrue");
    }
}
