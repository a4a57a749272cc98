//! The app API (backend-for-frontend): sign-up, sign-in, refresh, logout, CSRF, the
//! current user and password change, plus the seeds' spellings of the same routes.

mod account;
mod aliases;
pub(crate) mod cookies;
pub(crate) mod dto;
mod mail;
mod session;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(session::csrf))
        .routes(routes!(account::signup))
        .routes(routes!(session::signin))
        .routes(routes!(session::refresh))
        .routes(routes!(session::logout))
        .routes(routes!(account::me, account::update_me))
        .routes(routes!(account::change_password))
        .routes(routes!(mail::forgot_password))
        .routes(routes!(mail::reset_password))
        .routes(routes!(mail::verify_email))
        .routes(routes!(mail::resend_confirmation))
        .routes(routes!(mail::magic_link))
        .routes(routes!(mail::verify_otp))
        .routes(routes!(mail::request_unlock))
        .routes(routes!(aliases::register))
        .routes(routes!(aliases::login))
        .routes(routes!(aliases::signup_root))
        .routes(routes!(aliases::login_root))
        .routes(routes!(aliases::me_root))
}
