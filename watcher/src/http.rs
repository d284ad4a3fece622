//! The HTTP endpoints: liveness, readiness, a JSON status, and Prometheus metrics.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;

use crate::stats::Stats;

/// What the sink says about itself: can it take messages right now, and details for `/health`.
pub type SinkHealth = Arc<dyn Fn() -> (bool, serde_json::Value) + Send + Sync>;

/// Everything the handlers read.
pub struct HttpState {
    /// INSTANCE_ID.
    pub instance_id: String,
    /// DATA_DIR.
    pub data_dir: String,
    /// Pipeline counters.
    pub stats: Arc<Stats>,
    /// Sink readiness.
    pub sink: SinkHealth,
    /// The metrics registry.
    pub registry: Registry,
}

impl std::fmt::Debug for HttpState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpState")
            .field("instance_id", &self.instance_id)
            .finish_non_exhaustive()
    }
}

/// The router, separate from the listener so tests can serve it on port 0.
pub fn router(state: Arc<HttpState>) -> Router {
    Router::new()
        .route("/health/live", get(|| async { "ok\n" }))
        .route("/health/ready", get(ready))
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .with_state(state)
}

/// Binds `addr` and serves until `cancel` fires.
///
/// # Errors
/// When the address cannot be bound (in use, or not permitted).
pub async fn serve(
    addr: SocketAddr,
    state: Arc<HttpState>,
    cancel: CancellationToken,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(addr = %listener.local_addr()?, "HTTP endpoints at /health, /health/live, /health/ready, /metrics");
    tokio::spawn(async move {
        let shutdown = async move { cancel.cancelled().await };
        if let Err(e) = axum::serve(listener, router(state))
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::error!(error = %e, "HTTP server failed");
        }
    });
    Ok(())
}

fn readiness(s: &HttpState) -> (bool, serde_json::Value) {
    let scanned = s.stats.initial_scan_done.load(Ordering::Relaxed);
    let store = s.stats.store_ok.load(Ordering::Relaxed);
    let (sink_ok, sink) = (s.sink)();
    let ready = scanned && store && sink_ok;
    (
        ready,
        serde_json::json!({
            "ready": ready,
            "initial_scan_done": scanned,
            "store_open": store,
            "sink": sink,
        }),
    )
}

async fn ready(State(s): State<Arc<HttpState>>) -> Response {
    let (ok, body) = readiness(&s);
    let code = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body)).into_response()
}

async fn health(State(s): State<Arc<HttpState>>) -> Response {
    let (ok, mut body) = readiness(&s);
    if let Some(obj) = body.as_object_mut() {
        obj.insert(
            "status".into(),
            if ok { "ok" } else { "starting_or_degraded" }.into(),
        );
        obj.insert("instance_id".into(), s.instance_id.clone().into());
        obj.insert("watched_directory".into(), s.data_dir.clone().into());
        obj.insert("version".into(), env!("CARGO_PKG_VERSION").into());
        obj.insert("events_published".into(), s.stats.events_total().into());
        obj.insert("pending_paths".into(), s.stats.pending.get().into());
        obj.insert("in_flight_events".into(), s.stats.in_flight.get().into());
        obj.insert("hashed_files".into(), s.stats.hashed_files.get().into());
    }
    let code = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body)).into_response()
}

async fn metrics(State(s): State<Arc<HttpState>>) -> Response {
    let mut text = String::new();
    match prometheus_client::encoding::text::encode(&mut text, &s.registry) {
        Ok(()) => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}
