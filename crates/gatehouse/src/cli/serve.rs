//! `gatehouse serve`: migrate, then serve HTTP until a signal; finish requests in flight
//! (bounded by `GATEHOUSE_SHUTDOWN_TIMEOUT`), close the pool, exit 0.

use std::sync::Arc;

use anyhow::Context;
use gatehouse_http::AppState;
use tokio::net::TcpListener;

use crate::config::Config;

pub fn run(config: Config) -> anyhow::Result<()> {
    crate::telemetry::init(&config, crate::telemetry::Output::Stdout);
    super::runtime()?.block_on(serve(config))
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let gatehouse = super::start_gatehouse(&config).await?;
    let store = gatehouse.store().clone();
    // The outbox's sender runs beside the server and stops after it.
    let (stop_courier, courier_stop) = tokio::sync::watch::channel(false);
    let courier = match &config.mail {
        Some(mail) => {
            let transport = mail
                .transport()
                .map_err(|e| anyhow::anyhow!("GATEHOUSE_SMTP_URL: {e}"))?;
            gatehouse.courier(transport).map(|courier| {
                tracing::info!(mailer = %courier.describe(), "mail outbox sender started");
                tokio::spawn(courier.run(courier_stop))
            })
        }
        None => None,
    };
    let state = AppState {
        gatehouse,
        config: Arc::new(config.http_config()),
    };
    let listener = TcpListener::bind(config.http.addr)
        .await
        .with_context(|| format!("GATEHOUSE_ADDR: cannot listen on {}", config.http.addr))?;
    let addr = listener.local_addr()?;
    tracing::info!(backend = %store.backend(), database = %config.storage.database_url, mode = %config.mode(), "listening on http://{addr}");
    gatehouse_http::serve(
        listener,
        gatehouse_http::router(state),
        shutdown_signal(),
        config.http.shutdown_timeout,
    )
    .await?;
    let _ = stop_courier.send(true);
    if let Some(courier) = courier {
        // A send in flight finishes (bounded by the SMTP timeout); what is left waits in
        // the outbox for the next start.
        let _ = tokio::time::timeout(config.http.shutdown_timeout, courier).await;
    }
    store.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// Completes on SIGTERM or SIGINT (Ctrl-C).
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("received SIGINT"),
        () = terminate => tracing::info!("received SIGTERM"),
    }
}
