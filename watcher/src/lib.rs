//! The file-watcher service: it reports every regular file under DATA_DIR, and every later
//! change, with SHA-256 and XXH3-128 of the settled content.
//!
//! `main` only parses arguments and calls [`run`]. The pipeline lives in [`engine`]; each stage
//! has its own module: [`scan`], [`hints`], [`settle`], [`store`], and the sinks in `publisher`.
#![deny(missing_docs)]

pub mod change;
pub mod config;
pub mod engine;
pub mod filter;
pub mod handoff;
pub mod health;
pub mod healthcheck;
pub mod hints;
pub mod http;
pub mod identity;
pub mod logging;
pub mod paths;
pub mod root;
pub mod scan;
pub mod settle;
pub mod stats;
pub mod store;

use std::sync::Arc;

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, SinkKind, WatchMode};

/// How often DATA_DIR is checked for being the directory the instance started on: often enough
/// for readiness to turn within seconds of an unmount, rarely enough to cost nothing.
const ROOT_CHECK_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Runs the service until SIGTERM/SIGINT (or, with `--once`, until the scan is reported).
///
/// # Errors
/// Start-up failures (state store, watcher, sink) and infrastructure failures while running.
pub async fn run(cfg: Config) -> anyhow::Result<()> {
    let id = identity::establish(
        &cfg.data_dir,
        cfg.state_dir.as_deref(),
        cfg.instance_id.as_deref(),
    )?;
    logging::init(cfg.log_level, cfg.log_format, &id.instance_id);
    if let Some(notice) = &id.notice {
        tracing::info!("{notice}");
    }
    let sink_kind = cfg.resolved_sink();
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        data_dir = %cfg.data_dir.display(),
        state_dir = %id.state_dir.display(),
        sink = ?sink_kind,
        watch_mode = ?cfg.watch_mode,
        settle_delay_ms = cfg.settle_delay.as_millis() as u64,
        hash_threads = cfg.hash_threads(),
        once = cfg.once,
        "file-watcher starting"
    );

    let stats = Arc::new(stats::Stats::default());
    let store = Arc::new(store::Store::open(&id.state_dir).context("cannot open the state store")?);
    stats
        .store_ok
        .store(true, std::sync::atomic::Ordering::Relaxed);
    let pool = Arc::new(
        hasher::HashPool::new(hasher::PoolConfig {
            threads: cfg.hash_threads(),
            capacity: 256,
            ..hasher::PoolConfig::default()
        })
        .context("cannot start the hashing threads")?,
    );
    // The publisher has its own token, cancelled only after the pipeline has drained, so
    // outstanding confirms are still awaited during shutdown.
    let publisher_cancel = CancellationToken::new();
    let sink = match sink_kind {
        SinkKind::Amqp => {
            let amqp = amqp_config(&cfg, &id.instance_id)?;
            tracing::info!(
                broker = %amqp.redacted(),
                exchange = %amqp.exchange,
                connection_name = %amqp.connection_name(),
                window = amqp.window,
                "publishing to RabbitMQ"
            );
            publisher::Sink::Amqp(publisher::AmqpPublisher::start(
                amqp,
                publisher_cancel.clone(),
            ))
        }
        SinkKind::Stdout | SinkKind::Auto => publisher::Sink::Stdout(publisher::StdoutSink::new()),
    };
    let sink = Arc::new(sink);

    let cancel = CancellationToken::new();
    spawn_signal_handler(cancel.clone());

    let root = Arc::new(
        root::RootState::record(&cfg.data_dir)
            .with_context(|| format!("cannot stat DATA_DIR {}", cfg.data_dir.display()))?,
    );
    root::watch(Arc::clone(&root), ROOT_CHECK_EVERY, cancel.clone());
    if let Some(addr) = cfg.http_socket_addr() {
        let health = Arc::new(health::Health {
            instance_id: id.instance_id.clone(),
            data_dir: cfg.data_dir.display().to_string(),
            watch_mode: cfg.watch_mode.as_str(),
            sink_kind: match sink_kind {
                SinkKind::Amqp => "amqp",
                SinkKind::Stdout | SinkKind::Auto => "stdout",
            },
            stats: Arc::clone(&stats),
            sink: Arc::clone(&sink),
            root,
        });
        let mut registry = prometheus_client::registry::Registry::default();
        stats.register(&mut registry);
        registry.register_collector(Box::new(Arc::clone(&health)));
        let state = Arc::new(http::HttpState { health, registry });
        http::serve(addr, state, cancel.clone())
            .await
            .with_context(|| {
                format!("cannot serve HTTP on HTTP_ADDR={addr} (set HTTP_ADDR=off to disable)")
            })?;
    }

    let (hint_tx, hint_rx) = tokio::sync::mpsc::channel(cfg.hint_queue as usize);
    let rescan = Arc::new(hints::RescanFlag::default());
    let mut rescan_every = cfg.reconcile_interval;
    let mut polling = false;
    let _watcher = if cfg.once {
        None
    } else {
        match cfg.watch_mode {
            WatchMode::Poll => {
                rescan_every = cfg.poll_interval;
                polling = true;
                stats
                    .polling
                    .store(true, std::sync::atomic::Ordering::Relaxed);
                tracing::info!(
                    interval_ms = cfg.poll_interval.as_millis() as u64,
                    "polling for changes"
                );
                None
            }
            WatchMode::Native => Some(hints::start_native(
                &cfg.data_dir,
                hint_tx,
                Arc::clone(&rescan),
                stats.hint_overflows.clone(),
            )?),
            WatchMode::Auto => {
                match hints::start_native(
                    &cfg.data_dir,
                    hint_tx,
                    Arc::clone(&rescan),
                    stats.hint_overflows.clone(),
                ) {
                    Ok(w) => Some(w),
                    Err(e @ hints::HintError::WatchLimit { .. }) => {
                        tracing::warn!(error = %e, interval_ms = cfg.poll_interval.as_millis() as u64, "falling back to polling");
                        rescan_every = cfg.poll_interval;
                        polling = true;
                        stats
                            .polling
                            .store(true, std::sync::atomic::Ordering::Relaxed);
                        None
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        }
    };

    let engine = engine::Engine::new(
        engine::EngineConfig {
            instance_id: id.instance_id.clone(),
            data_dir: cfg.data_dir.clone(),
            settle_delay: cfg.settle_delay,
            filter: filter::Filter::new(&cfg.include, &cfg.exclude, &cfg.extensions)
                .map_err(|e| anyhow::anyhow!("invalid setting {}: {}", e.setting, e.problem))?,
            once: cfg.once,
            polling,
            window: cfg.publish_window as usize,
            max_pending: 200_000,
            rescan_every,
            shutdown_timeout: cfg.shutdown_timeout,
        },
        store,
        pool,
        sink,
        hint_rx,
        rescan,
        Arc::clone(&stats),
    );
    let result = engine.run(cancel).await;
    publisher_cancel.cancel();
    result?;
    tracing::info!(events = stats.events_total(), "file-watcher stopped");
    Ok(())
}

/// Builds the broker settings from AMQP_URL or the RABBITMQ_* settings.
fn amqp_config(cfg: &Config, instance_id: &str) -> anyhow::Result<publisher::AmqpConfig> {
    let mut amqp = match &cfg.amqp_url {
        Some(url) => publisher::AmqpConfig::from_url(url, instance_id)?,
        None => {
            let password = match &cfg.rabbitmq_pass_file {
                Some(path) => std::fs::read_to_string(path)
                    .map(|s| s.trim_end_matches(['\r', '\n']).to_owned())
                    .map_err(|e| config::ConfigError {
                        setting: "RABBITMQ_PASS_FILE",
                        problem: format!("{}: {e}", path.display()),
                    })?,
                None => cfg.rabbitmq_pass.clone(),
            };
            publisher::AmqpConfig::from_parts(
                &cfg.rabbitmq_host,
                cfg.rabbitmq_port,
                &cfg.rabbitmq_user,
                password,
                &cfg.rabbitmq_vhost,
                instance_id,
            )?
        }
    };
    amqp.exchange = cfg.exchange.clone();
    amqp.watched_directory = cfg.data_dir.display().to_string();
    amqp.window = cfg.publish_window as usize;
    Ok(amqp)
}

fn spawn_signal_handler(cancel: CancellationToken) {
    tokio::spawn(async move {
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            () = term => {}
        }
        tracing::info!("shutdown requested: draining");
        cancel.cancel();
    });
}
