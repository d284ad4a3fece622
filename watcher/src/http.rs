//! The HTTP endpoints: liveness, readiness (see [`crate::health`] for what it means), a JSON
//! status, and Prometheus metrics.
//!
//! They answer from the moment HTTP_ADDR is bound, before STATE_DIR's lock is taken: a standby
//! replica on a shared state volume (`docker compose up --scale`) waits for that lock, and an
//! orchestrator must see it alive and standing by, not dead. Until the lock is taken the
//! answers come from [`Waiting`]; after it, from the instance's [`Health`].

use std::sync::{Arc, Mutex, OnceLock};

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;

use crate::health::{self, Health};

/// Everything the handlers read.
pub struct HttpState {
    /// Set once the instance holds STATE_DIR and its pipeline exists.
    running: OnceLock<Running>,
    /// What is answered until then.
    waiting: Arc<Waiting>,
    /// The metrics of the waiting phase.
    waiting_registry: Registry,
}

/// The running instance's facts.
struct Running {
    health: Arc<Health>,
    registry: Registry,
}

/// What an instance knows before it holds STATE_DIR: its settings, and why it waits.
#[derive(Debug)]
struct Waiting {
    /// INSTANCE_ID as configured; empty when it is generated and kept in STATE_DIR.
    instance_id: String,
    data_dir: String,
    watch_mode: &'static str,
    sink: &'static str,
    /// Why it stands by; `None` while it is still taking the lock for the first time.
    standby: Mutex<Option<String>>,
}

impl Waiting {
    fn standby(&self) -> Option<String> {
        self.standby
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The `/health/ready` body: never ready, with the reason.
    fn body(&self) -> serde_json::Value {
        let standby = self.standby();
        let reason = standby
            .clone()
            .unwrap_or_else(|| "starting: opening STATE_DIR and the state store".to_owned());
        serde_json::json!({
            "ready": false,
            "standby": standby.is_some(),
            "reasons": [reason],
            "store_open": false,
            "data_dir": { "path": self.data_dir },
        })
    }
}

/// The series of the waiting phase: `file_watcher_info`, `file_watcher_standby` and
/// `file_watcher_ready`, so a standby is told apart from a dead instance by any scrape setup.
#[derive(Debug)]
struct WaitingMetrics(Arc<Waiting>);

impl Collector for WaitingMetrics {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let w = &self.0;
        health::encode_info(&mut e, &w.instance_id, w.watch_mode, w.sink)?;
        health::encode_gauge(
            &mut e,
            health::STANDBY_METRIC.0,
            health::STANDBY_METRIC.1,
            self.0.standby().is_some(),
        )?;
        health::encode_gauge(
            &mut e,
            health::READY_METRIC.0,
            health::READY_METRIC.1,
            false,
        )
    }
}

impl HttpState {
    /// The state of an instance that has not taken STATE_DIR's lock yet: its INSTANCE_ID as
    /// configured (if it is), DATA_DIR, and the labels of `file_watcher_info`.
    pub fn waiting(
        instance_id: Option<&str>,
        data_dir: &std::path::Path,
        watch_mode: &'static str,
        sink: &'static str,
    ) -> Self {
        let waiting = Arc::new(Waiting {
            instance_id: instance_id.unwrap_or_default().to_owned(),
            data_dir: data_dir.display().to_string(),
            watch_mode,
            sink,
            standby: Mutex::new(None),
        });
        let mut waiting_registry = Registry::default();
        waiting_registry.register_collector(Box::new(WaitingMetrics(Arc::clone(&waiting))));
        Self {
            running: OnceLock::new(),
            waiting,
            waiting_registry,
        }
    }

    /// Answers as a standby waiting for another process's STATE_DIR lock, saying why.
    pub fn stand_by(&self, reason: String) {
        *self
            .waiting
            .standby
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(reason);
    }

    /// From now on, answers from the running instance.
    pub fn run(&self, health: Arc<Health>, registry: Registry) {
        // Called once, after the lock is taken; a second call would change nothing.
        let _ = self.running.set(Running { health, registry });
    }
}

impl std::fmt::Debug for HttpState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpState")
            .field("running", &self.running.get().map(|r| &r.health))
            .field("waiting", &self.waiting)
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
    match s.running.get() {
        Some(r) => {
            let r = r.health.readiness();
            (status_code(r.ready), Json(r.body)).into_response()
        }
        None => (StatusCode::SERVICE_UNAVAILABLE, Json(s.waiting.body())).into_response(),
    }
}

fn status_code(ready: bool) -> StatusCode {
    if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    }
}

/// `ok`, `standby` or `not_ready`: a standby is healthy, but not ready to do the work.
fn status_word(ready: bool, standby: bool) -> &'static str {
    match (ready, standby) {
        (true, _) => "ok",
        (false, true) => "standby",
        (false, false) => "not_ready",
    }
}

async fn health(State(s): State<Arc<HttpState>>) -> Response {
    let Some(run) = s.running.get() else {
        let w = &s.waiting;
        let mut body = w.body();
        if let Some(obj) = body.as_object_mut() {
            let standby = w.standby().is_some();
            obj.insert("status".into(), status_word(false, standby).into());
            obj.insert("instance_id".into(), w.instance_id.clone().into());
            obj.insert("watched_directory".into(), w.data_dir.clone().into());
            obj.insert("version".into(), env!("CARGO_PKG_VERSION").into());
        }
        return (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
    };
    let h = &run.health;
    let r = h.readiness();
    let mut body = r.body;
    if let Some(obj) = body.as_object_mut() {
        let st = &h.stats;
        let standby = obj.get("standby").and_then(serde_json::Value::as_bool) == Some(true);
        obj.insert("status".into(), status_word(r.ready, standby).into());
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
    // While starting (the store being opened, for a moment) there is no full set of series
    // yet: a failed scrape then, rather than a partial one that drops families. A standby
    // waits for as long as the active instance lives, so it answers with its own series.
    let registry = match s.running.get() {
        Some(r) => &r.registry,
        None if s.waiting.standby().is_some() => &s.waiting_registry,
        None => return StatusCode::SERVICE_UNAVAILABLE.into_response(),
    };
    let mut text = String::new();
    match prometheus_client::encoding::text::encode(&mut text, registry) {
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
