//! Logs on stderr: JSON lines carrying `instance_id` at the top level (what log aggregators
//! filter on), or plain text. stdout is left to the stdout sink.

use std::fmt;

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use crate::config::{LogFormat, LogLevel};

/// The INFO line of a change the sink accepted, one per change, as the deployment guide shows
/// them ("File discovered" with `event_type` and `path`); `LOG_LEVEL=WARNING` silences them.
pub fn reported(
    event: publisher::EventType,
    path: &std::path::Path,
    old: Option<&std::path::PathBuf>,
) {
    let message = event.log_message();
    match old {
        Some(old) => tracing::info!(
            event_type = event.as_str(),
            path = %path.display(),
            old_path = %old.display(),
            "{message}"
        ),
        None => tracing::info!(event_type = event.as_str(), path = %path.display(), "{message}"),
    }
}

/// One JSON object per event: timestamp, level, instance_id, message, then the event's fields.
struct JsonLines {
    instance_id: String,
}

#[derive(Default)]
struct Fields {
    message: Option<String>,
    map: serde_json::Map<String, serde_json::Value>,
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let v = format!("{value:?}");
        if field.name() == "message" {
            self.message = Some(v);
        } else {
            self.map.insert(field.name().to_owned(), v.into());
        }
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = Some(value.to_owned());
        } else {
            self.map.insert(field.name().to_owned(), value.into());
        }
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.map.insert(field.name().to_owned(), value.into());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.map.insert(field.name().to_owned(), value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.map.insert(field.name().to_owned(), value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.map.insert(field.name().to_owned(), value.into());
    }
}

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let level = match *event.metadata().level() {
            tracing::Level::ERROR => "ERROR",
            tracing::Level::WARN => "WARNING",
            tracing::Level::INFO => "INFO",
            tracing::Level::DEBUG => "DEBUG",
            tracing::Level::TRACE => "TRACE",
        };
        let mut obj = serde_json::Map::new();
        obj.insert(
            "timestamp".into(),
            chrono::Utc::now()
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
                .into(),
        );
        obj.insert("level".into(), level.into());
        obj.insert("instance_id".into(), self.instance_id.clone().into());
        obj.insert("target".into(), event.metadata().target().into());
        obj.insert("message".into(), fields.message.unwrap_or_default().into());
        for (k, v) in fields.map {
            obj.entry(k).or_insert(v);
        }
        let line = serde_json::Value::Object(obj).to_string();
        writeln!(w, "{line}")
    }
}

/// Installs the global subscriber. Our crates log at LOG_LEVEL; dependencies only at WARNING and
/// above unless LOG_LEVEL is DEBUG, so their chatter does not drown ours.
pub fn init(level: LogLevel, format: LogFormat, instance_id: &str) {
    use tracing_subscriber::filter::{LevelFilter, Targets};
    use tracing_subscriber::prelude::*;
    let ours = LevelFilter::from_level(level.as_tracing());
    let theirs = if level == LogLevel::Debug {
        ours
    } else {
        LevelFilter::WARN.min(ours)
    };
    let filter = Targets::new()
        .with_default(theirs)
        .with_target("watcher", ours)
        .with_target("file_watcher", ours)
        .with_target("publisher", ours)
        .with_target("hasher", ours)
        // lapin logs every returned message and every closed connection; our publisher reports
        // those itself, once per routing key and once per outage, so lapin speaks only at DEBUG.
        .with_target(
            "lapin",
            if level == LogLevel::Debug {
                ours
            } else {
                LevelFilter::OFF
            },
        );
    let registry = tracing_subscriber::registry().with(filter);
    let result = match format {
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    .event_format(JsonLines {
                        instance_id: instance_id.to_owned(),
                    }),
            )
            .try_init(),
        LogFormat::Text => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_ansi(false)
                    .with_target(false),
            )
            .try_init(),
    };
    // Already installed (tests start several instances in one process): keep the first.
    let _ = result;
}
