//! Operations: health, readiness, the OpenAPI document and the docs page.

use crate::helpers::TestApp;

on_both_backends! {
    async fn health_answers_status_ok(app: TestApp) {
        let response = app.get("/health").await;
        assert_eq!(response.status(), 200);
        assert!(response.headers()["content-type"].to_str().unwrap().starts_with("application/json"));
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body, serde_json::json!({"status": "ok"}));
    }

    async fn ready_answers_ok_when_the_database_answers(app: TestApp) {
        let response = app.get("/ready").await;
        assert_eq!(response.status(), 200);
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body, serde_json::json!({"status": "ok"}));
    }

    async fn the_openapi_document_is_the_generated_one_and_every_path_answers(app: TestApp) {
        let response = app.get("/openapi.json").await;
        assert_eq!(response.status(), 200);
        let served: serde_json::Value = response.json().await.unwrap();
        assert_eq!(served, serde_json::to_value(gatehouse_http::openapi()).unwrap());
        assert!(served["openapi"].as_str().unwrap().starts_with("3."));
        let paths: Vec<&String> = served["paths"].as_object().unwrap().keys().collect();
        for expected in [
            "/health", "/ready", "/openapi.json",
            "/auth/csrf", "/auth/signup", "/auth/signin", "/auth/refresh", "/auth/logout", "/auth/me", "/auth/password",
            "/auth/register", "/auth/login", "/signup", "/login", "/me",
            "/.well-known/jwks.json", "/auth/v1/.well-known/jwks.json", "/.well-known/openid-configuration",
            "/users", "/users/{id}", "/users/{id}/role", "/users/{id}/sessions", "/users/{id}/lock", "/audit",
            "/auth/v1/signup", "/auth/v1/token", "/auth/v1/user", "/auth/v1/logout", "/auth/v1/settings",
            "/auth/v1/health", "/auth/v1/admin/users", "/auth/v1/admin/users/{id}",
        ] {
            assert!(paths.iter().any(|p| *p == expected), "{expected} missing from {paths:?}");
        }
        for (path, item) in served["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                let response = app
                    .client
                    .request(method.to_uppercase().parse().unwrap(), app.url(path))
                    .send()
                    .await
                    .unwrap();
                assert_ne!(response.status(), 404, "{method} {path} is documented but not served");
                assert_ne!(response.status(), 405, "{method} {path} is documented but not served");
            }
        }
    }

    async fn the_docs_page_loads_with_only_local_assets(app: TestApp) {
        let response = app.get("/docs/").await;
        assert_eq!(response.status(), 200);
        let html = response.text().await.unwrap();
        assert!(html.contains("swagger-ui"), "not the Swagger UI page");
        let mut assets = Vec::new();
        for attr in ["src=\"", "href=\""] {
            for chunk in html.split(attr).skip(1) {
                assets.push(chunk.split('"').next().unwrap().to_owned());
            }
        }
        assert!(assets.iter().any(|a| a.ends_with(".js")), "{assets:?}");
        for asset in &assets {
            assert!(
                !asset.contains("://") && !asset.starts_with("//"),
                "the docs page loads {asset} from elsewhere"
            );
            let url = app.url(&format!("/docs/{}", asset.trim_start_matches("./")));
            let response = app.client.get(&url).send().await.unwrap();
            assert_eq!(response.status(), 200, "{url}");
            assert!(!response.bytes().await.unwrap().is_empty(), "{url}");
        }
        let init = app.get("/docs/swagger-initializer.js").await.text().await.unwrap();
        assert!(init.contains("/openapi.json"), "the UI does not read our document: {init}");
        assert!(init.replace(" ", "").contains("\"validatorUrl\":\"none\""), "the UI would call the online validator: {init}");
    }
}

mod ready_answers_503_when_the_database_goes_away {
    use gatehouse_core::store::Backend;

    use crate::helpers::{assert_error, TestApp};

    #[tokio::test]
    async fn postgres() {
        let mut app = TestApp::spawn(Backend::Postgres).await;
        assert_eq!(app.get("/ready").await.status(), 200);
        app.db.drop_now().await;
        let body = assert_error(app.get("/ready").await, 503, "not_ready").await;
        assert_eq!(body["details"]["database"], "unavailable");
        // Liveness does not depend on the database.
        assert_eq!(app.get("/health").await.status(), 200);
    }
}
