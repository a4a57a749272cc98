//! Graceful shutdown: stop accepting, finish what is in flight, then return.

use std::time::Duration;

use crate::helpers::TestApp;

on_both_backends! {
    async fn shutdown_finishes_a_request_in_flight_and_refuses_new_connections(app: TestApp) {
        let slow = {
            let client = app.client.clone();
            let url = app.url("/__test/slow?ms=1500");
            tokio::spawn(async move { client.get(url).send().await })
        };
        tokio::time::sleep(Duration::from_millis(300)).await;
        app.begin_shutdown();
        let response = slow.await.unwrap().expect("the request in flight completes");
        assert_eq!(response.status(), 200);
        assert_eq!(response.text().await.unwrap(), "done");
        let server = app.server.take().unwrap();
        tokio::time::timeout(Duration::from_secs(5), server).await.expect("server stops").unwrap().unwrap();
        let fresh = reqwest::Client::new();
        assert!(fresh.get(app.url("/health")).send().await.is_err(), "a stopped server accepts nothing");
    }
}
