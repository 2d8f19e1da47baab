//! Graceful shutdown: readiness turns 503 first, in-flight calls finish, then the server stops.

use std::time::Duration;

use partner_gateway::app::Shutdown;
use partner_gateway::sandbox::{Fault, FaultKind};
use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn sigterm_flips_readiness_then_drains_in_flight_calls() {
    let mut options = Options::default();
    options.settings.server.shutdown_delay_ms = 1_000;
    let mut app = spawn_app_with(options).await;
    // An allocation that takes a while upstream.
    app.fault(Fault::once(
        Some("AllocateCustomerCredit"),
        FaultKind::Delay { ms: 1_500 },
    ));
    let in_flight = {
        let request = app.post(&format!("/customers/{CUSTOMER}/credit"));
        tokio::spawn(async move {
            request
                .header("content-type", "application/json")
                .body(json!({"amount": 5}).to_string())
                .send()
                .await
        })
    };
    // Wait until the simulator has the call (an observable condition, not a guess at timing).
    while app
        .sandbox
        .stats()
        .action("AllocateCustomerCredit")
        .arrivals
        == 0
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let server = app.begin_shutdown(Shutdown::Terminate);
    // Within the shutdown delay the listener still answers, and readiness is 503.
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status, 503);
    assert_eq!(ready.json()["checks"]["shutdown"], "shutting down");
    // The in-flight allocation completes normally.
    let response = in_flight.await.unwrap().expect("in-flight call answered");
    assert_eq!(response.status(), 200);
    // Then the server stops by itself and refuses new connections.
    server.await.unwrap().unwrap();
    assert!(app.client.get(app.url("/livez")).send().await.is_err());
}

#[tokio::test]
async fn sigint_stops_accepting_at_once() {
    let mut app = spawn_app().await;
    assert_eq!(app.get("/livez").await.status, 200);
    let server = app.begin_shutdown(Shutdown::Interrupt);
    server.await.unwrap().unwrap();
    assert!(app.client.get(app.url("/livez")).send().await.is_err());
}
