//! Failures the framework itself produces answer in our `{code, message, details}` shape,
//! and every response carries a request id.

use crate::helpers::{assert_error, TestApp, TEST_BODY_LIMIT};

on_both_backends! {
    async fn an_unknown_route_is_404_not_found(app: TestApp) {
        let body = assert_error(app.get("/no/such/route?token=abc").await, 404, "not_found").await;
        assert!(!body.to_string().contains("token=abc"), "the query string is not echoed");
    }

    async fn a_wrong_method_is_405_method_not_allowed(app: TestApp) {
        let response = app.client.delete(app.url("/health")).send().await.unwrap();
        assert_error(response, 405, "method_not_allowed").await;
    }

    async fn malformed_json_is_400_validation_failed(app: TestApp) {
        let response = app.client.post(app.url("/__test/echo"))
            .header("content-type", "application/json")
            .body(r#"{"name": "ada", "count": "#)
            .send().await.unwrap();
        assert_error(response, 400, "validation_failed").await;
    }

    async fn a_body_of_the_wrong_content_type_is_415_validation_failed(app: TestApp) {
        let response = app.client.post(app.url("/__test/echo"))
            .header("content-type", "text/plain")
            .body(r#"{"name": "ada", "count": 1}"#)
            .send().await.unwrap();
        assert_error(response, 415, "validation_failed").await;
        let response = app.client.post(app.url("/__test/echo")).body("{}").send().await.unwrap();
        assert_error(response, 415, "validation_failed").await;
    }

    async fn json_of_the_wrong_shape_is_422_validation_failed_naming_the_field(app: TestApp) {
        let response = app.client.post(app.url("/__test/echo"))
            .json(&serde_json::json!({"name": "ada", "count": "three"}))
            .send().await.unwrap();
        let body = assert_error(response, 422, "validation_failed").await;
        assert!(body["details"]["reason"].as_str().unwrap().contains("count"), "{body}");
    }

    async fn invalid_utf8_in_a_json_body_is_400(app: TestApp) {
        let response = app.client.post(app.url("/__test/echo"))
            .header("content-type", "application/json")
            .body(b"{\"name\": \"\xff\xfe\", \"count\": 1}".to_vec())
            .send().await.unwrap();
        assert_error(response, 400, "validation_failed").await;
    }

    async fn a_body_over_the_limit_is_413_payload_too_large(app: TestApp) {
        let big = "a".repeat(TEST_BODY_LIMIT + 1);
        let response = app.client.post(app.url("/__test/echo"))
            .json(&serde_json::json!({"name": big, "count": 1}))
            .send().await.unwrap();
        assert_error(response, 413, "payload_too_large").await;
        // Just under the limit is fine: the limit is the configured one, not another.
        let fits = "a".repeat(TEST_BODY_LIMIT - 64);
        let response = app.client.post(app.url("/__test/echo"))
            .json(&serde_json::json!({"name": fits, "count": 1}))
            .send().await.unwrap();
        assert_eq!(response.status(), 200);
    }

    async fn a_panicking_handler_is_an_opaque_500_and_the_server_keeps_serving(app: TestApp) {
        let body = assert_error(app.get("/__test/panic").await, 500, "internal_error").await;
        assert!(!body.to_string().contains("secret-internal-detail"), "{body}");
        assert_eq!(app.get("/health").await.status(), 200);
    }

    async fn a_request_id_is_generated_when_none_is_sent(app: TestApp) {
        let response = app.get("/health").await;
        let id = response.headers()["x-request-id"].to_str().unwrap();
        assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
        let other = app.get("/health").await;
        assert_ne!(other.headers()["x-request-id"].to_str().unwrap(), id, "ids are per request");
    }

    async fn a_sane_request_id_is_echoed_and_an_odd_one_replaced(app: TestApp) {
        let response = app.client.get(app.url("/health")).header("x-request-id", "lb-7f3a.42").send().await.unwrap();
        assert_eq!(response.headers()["x-request-id"], "lb-7f3a.42");
        for odd in ["has spaces", &"x".repeat(200), "<script>"] {
            let response = app.client.get(app.url("/health")).header("x-request-id", odd).send().await.unwrap();
            let echoed = response.headers()["x-request-id"].to_str().unwrap();
            assert_ne!(echoed, odd);
            assert!(uuid::Uuid::parse_str(echoed).is_ok(), "{echoed}");
        }
    }
}
