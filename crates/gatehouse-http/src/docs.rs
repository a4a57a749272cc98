//! The API's own description: `/openapi.json`, and Swagger UI at `/docs`, served from
//! the binary (vendored assets, no CDN, no call to the online validator).

use std::sync::Arc;

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Router};
use utoipa::openapi::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use utoipa_swagger_ui::{Config, SwaggerUi};

use crate::AppState;

/// The rendered document, shared by the handler.
#[derive(Debug, Clone)]
pub(crate) struct OpenApiJson(pub Arc<String>);

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(openapi_json))
}

/// Swagger UI at `/docs`, reading `/openapi.json`.
pub(crate) fn swagger_ui() -> Router<AppState> {
    let config = Config::from("/openapi.json")
        .validator_url("none")
        .try_it_out_enabled(true);
    Router::from(SwaggerUi::new("/docs").config(config))
}

pub(crate) fn render(doc: &OpenApi) -> OpenApiJson {
    // Serializing a utoipa document cannot fail: it is plain data with string keys.
    OpenApiJson(Arc::new(doc.to_pretty_json().unwrap_or_default()))
}

/// This document: the OpenAPI 3.1 description of every route.
#[utoipa::path(
    get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "The OpenAPI document", content_type = "application/json"))
)]
pub async fn openapi_json(Extension(doc): Extension<OpenApiJson>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        doc.0.as_str().to_owned(),
    )
        .into_response()
}
