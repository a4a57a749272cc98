//! `cargo run -p protected-api`: see README.md for the environment it reads.

use protected_api::{router, Config};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(message) => {
            tracing::error!("{message}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), String> {
    let config = Config::from_env()?;
    let verifier = config.verifier().map_err(|e| e.to_string())?;
    // Not fatal: a project on a legacy HS256 secret may publish no keys, and the keys are
    // fetched again on the first token that needs them.
    match verifier.prefetch().await {
        Ok(()) => tracing::info!(jwks = verifier.jwks_url(), "signing keys loaded"),
        Err(err) => tracing::warn!("{err}; will try again on the first request"),
    }
    let listener = tokio::net::TcpListener::bind(config.addr)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", config.addr))?;
    tracing::info!(addr = %config.addr, issuer = verifier.issuer(), "protected-api listening");
    axum::serve(listener, router(verifier))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .map_err(|e| format!("server error: {e}"))
}
