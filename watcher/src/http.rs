//! The HTTP endpoints: liveness, readiness (see [`crate::health`] for what it means), a JSON
//! status, and Prometheus metrics.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;

use crate::health::Health;

/// Everything the handlers read.
pub struct HttpState {
    /// Readiness and the health facts.
    pub health: Arc<Health>,
    /// The metrics registry.
    pub registry: Registry,
}

impl std::fmt::Debug for HttpState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpState")
            .field("health", &self.health)
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

/// Serves on `listener` (bound by [`crate::config::Config::bind_http`] before start-up went
/// further) until `cancel` fires.
///
/// # Errors
/// When the listener cannot be handed to the runtime.
pub fn serve(
    listener: std::net::TcpListener,
    state: Arc<HttpState>,
    cancel: CancellationToken,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::from_std(listener)?;
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

async fn ready(State(s): State<Arc<HttpState>>) -> Response {
    let r = s.health.readiness();
    (status_code(r.ready), Json(r.body)).into_response()
}

fn status_code(ready: bool) -> StatusCode {
    if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    }
}

async fn health(State(s): State<Arc<HttpState>>) -> Response {
    let h = &s.health;
    let r = h.readiness();
    let mut body = r.body;
    if let Some(obj) = body.as_object_mut() {
        let st = &h.stats;
        obj.insert(
            "status".into(),
            if r.ready { "ok" } else { "not_ready" }.into(),
        );
        obj.insert("instance_id".into(), h.instance_id.clone().into());
        obj.insert("watched_directory".into(), h.data_dir.clone().into());
        obj.insert("version".into(), env!("CARGO_PKG_VERSION").into());
        obj.insert("events_published".into(), st.events_total().into());
        obj.insert("pending_paths".into(), st.pending.get().into());
        obj.insert("in_flight_events".into(), st.in_flight.get().into());
        obj.insert("hashed_files".into(), st.hashed_files.get().into());
        obj.insert(
            "scan".into(),
            serde_json::json!({
                "running": st.scan_running.get() == 1,
                "files_seen": st.scan_files_seen.get(),
                "files_todo": st.scan_files_todo.get(),
            }),
        );
    }
    (status_code(r.ready), Json(body)).into_response()
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
