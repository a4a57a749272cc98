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
    // Not fatal: HS256 tokens need no keys, and the keys are fetched again by the first
    // token that needs them once the verifier's min_refetch_interval (30 s) has passed;
    // until then such requests get 503 keys_unavailable.
    match verifier.prefetch().await {
        Ok(()) => tracing::info!(jwks = verifier.jwks_url(), "signing keys loaded"),
        Err(err) => tracing::warn!("{err}; tokens needing them get 503 until they load"),
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
