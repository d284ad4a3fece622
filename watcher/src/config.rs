//! Configuration: every setting is a `--flag` and an environment variable, with the names from
//! the deployment guide (`INSTANCE_ID`, `DATA_DIR`, `RABBITMQ_HOST`, …).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

/// Log verbosity, as the deployment guide spells it (case-insensitive).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "UPPER")]
pub enum LogLevel {
    /// Everything, including each settled path.
    Debug,
    /// Start-up, progress and every reported change.
    Info,
    /// Only problems.
    #[value(alias = "WARN")]
    Warning,
    /// Only failures.
    Error,
}

impl LogLevel {
    /// The matching `tracing` level.
    pub fn as_tracing(self) -> tracing::Level {
        match self {
            Self::Debug => tracing::Level::DEBUG,
            Self::Info => tracing::Level::INFO,
            Self::Warning => tracing::Level::WARN,
            Self::Error => tracing::Level::ERROR,
        }
    }
}

/// How log lines are written to stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One JSON object per line, each with `instance_id` (for Loki, ELK, …).
    Json,
    /// Human-readable lines.
    Text,
}

/// How changes are noticed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum WatchMode {
    /// inotify, falling back to polling when inotify watches run out.
    Auto,
    /// inotify only.
    Native,
    /// Polling only: for NFS, SMB and Docker Desktop volumes, where inotify never fires.
    Poll,
}

impl WatchMode {
    /// The setting's spelling, for logs and the `file_watcher_info` metric.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Native => "native",
            Self::Poll => "poll",
        }
    }
}

/// What a second live instance with the same INSTANCE_ID does (the claim on the broker).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnDuplicate {
    /// Wait without scanning or publishing, report not ready, and take over within seconds
    /// when the active instance goes away. The default: `docker compose up --scale` and a
    /// Deployment whose old pod is still terminating then never publish twice, and never loop
    /// on restarts.
    Standby,
    /// Exit with code 3 and one line naming the ID and how to fix it.
    Exit,
}

impl OnDuplicate {
    /// The publisher's own spelling.
    pub fn to_publisher(self) -> publisher::OnDuplicate {
        match self {
            Self::Standby => publisher::OnDuplicate::Standby,
            Self::Exit => publisher::OnDuplicate::Exit,
        }
    }
}

/// The type of the declared queue (`QUEUE_TYPE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum QueueType {
    /// A classic queue, on one node: RabbitMQ's default, right for a single broker.
    Classic,
    /// A quorum queue, replicated over a cluster's nodes: what a cluster should use.
    Quorum,
}

impl QueueType {
    /// The publisher's own spelling.
    pub fn to_publisher(self) -> publisher::QueueType {
        match self {
            Self::Classic => publisher::QueueType::Classic,
            Self::Quorum => publisher::QueueType::Quorum,
        }
    }
}

/// What happens to a message RabbitMQ returns as unroutable (`ON_UNROUTABLE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnUnroutable {
    /// Keep it and publish it again, with backoff, until a queue is bound for it; it is not
    /// recorded as delivered meanwhile, and readiness says which routing keys wait.
    Hold,
    /// Count it, log the first per routing key, and record it as delivered: for deliberate
    /// partial topologies where some event types have no consumer.
    Drop,
}

impl OnUnroutable {
    /// The publisher's own spelling.
    pub fn to_publisher(self) -> publisher::OnUnroutable {
        match self {
            Self::Hold => publisher::OnUnroutable::Hold,
            Self::Drop => publisher::OnUnroutable::Drop,
        }
    }
}

/// Where envelopes go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SinkKind {
    /// `amqp` when `AMQP_URL` or `RABBITMQ_HOST` is set, else `stdout`.
    Auto,
    /// JSON lines on stdout, no infrastructure needed.
    Stdout,
    /// RabbitMQ, with publisher confirms.
    Amqp,
}

/// file-watcher: reports every regular file under DATA_DIR, with SHA-256 and XXH3-128 of its
/// settled content, to RabbitMQ or stdout.
///
/// Every option can also be set by the environment variable shown with it.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "file-watcher",
    version,
    max_term_width = 100,
    args_override_self = true,
    allow_negative_numbers = true,
    after_help = "Subcommand:\n  file-watcher healthcheck [--http-addr ADDR] [--timeout 3s]\n      \
Asks a running instance's /health/ready; exits 0 when ready, 1 when not.\n      \
For Docker HEALTHCHECK, Compose health checks and Kubernetes exec probes."
)]
pub struct Config {
    /// Identifies this instance in messages, logs and the broker connection name. When unset,
    /// one is generated once and kept in STATE_DIR.
    #[arg(long, env = "INSTANCE_ID")]
    pub instance_id: Option<String>,

    /// The directory tree to watch. It is only ever read.
    #[arg(long, env = "DATA_DIR")]
    pub data_dir: PathBuf,

    /// Where the state store and instance lock live; must be writable and outside DATA_DIR.
    /// Default: one directory per DATA_DIR under $XDG_STATE_HOME/file-watcher or
    /// ~/.local/state/file-watcher (the container image sets /var/lib/file-watcher).
    #[arg(long, env = "STATE_DIR")]
    pub state_dir: Option<PathBuf>,

    /// DEBUG, INFO, WARNING (or WARN) or ERROR.
    #[arg(long, env = "LOG_LEVEL", default_value = "INFO", ignore_case = true)]
    pub log_level: LogLevel,

    /// json or text.
    #[arg(long, env = "LOG_FORMAT", default_value = "json", ignore_case = true)]
    pub log_format: LogFormat,

    /// Hashing threads. Default: the number of cores.
    #[arg(long, env = "HASH_THREADS", value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub hash_threads: Option<u16>,

    /// Threads each scan walks directories on (listing and stating files). Default: the
    /// number of cores.
    #[arg(long, env = "SCAN_THREADS", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub scan_threads: Option<u16>,

    /// How long a file must be quiet (no events, same size and mtime) before it is hashed,
    /// e.g. 2s or 500ms; 1ms to 1h.
    #[arg(long, env = "SETTLE_DELAY", default_value = "2s", value_parser = settle_delay)]
    pub settle_delay: Duration,

    /// The fast path: a file whose writer has closed it is reported after SETTLE_FAST_DELAY
    /// instead of SETTLE_DELAY, when a lease probe shows no process still has it open for
    /// writing. auto (on wherever the probe works), on (also without the probe) or off.
    #[arg(long, env = "SETTLE_FAST", default_value = "auto", ignore_case = true)]
    pub settle_fast: crate::fast::Setting,

    /// The grace window of the fast path after a writer's last close (any later event restarts
    /// it), e.g. 100ms; 1ms to 10s, shorter than SETTLE_DELAY.
    #[arg(long, env = "SETTLE_FAST_DELAY", default_value = "100ms", value_parser = settle_fast_delay)]
    pub settle_fast_delay: Duration,

    /// Only report files matching one of these globs (relative to DATA_DIR, comma-separated),
    /// e.g. "music/**,*.flac". Default: every file.
    #[arg(long, env = "INCLUDE", value_delimiter = ',')]
    pub include: Vec<String>,

    /// Never report files matching these globs (relative to DATA_DIR, comma-separated),
    /// e.g. "**/.partial/**,*.tmp".
    #[arg(long, env = "EXCLUDE", value_delimiter = ',')]
    pub exclude: Vec<String>,

    /// Leave out temporary names as well: downloads in progress (*.part, *.crdownload, *.!qB,
    /// ...), rsync's .NAME.XXXXXX, editors' swap, lock and backup files, Office lock files and
    /// Syncthing's temporary files; Safari's *.download and rsync's .~tmp~ directories are not
    /// walked. The file a tool renames into place is reported as usual. true/false.
    #[arg(long, env = "EXCLUDE_DEFAULTS", default_value_t = true, action = clap::ArgAction::Set, value_parser = boolish)]
    pub exclude_defaults: bool,

    /// Only report these extensions (comma-separated, case-insensitive), e.g. for audio:
    /// mp3,flac,m4a,aac,ogg,opus,wav,aiff,wma,alac. Default: every extension.
    #[arg(long, env = "EXTENSIONS", value_delimiter = ',')]
    pub extensions: Vec<String>,

    /// auto (inotify, polling if watches run out), native (inotify) or poll.
    #[arg(long, env = "WATCH_MODE", default_value = "auto", ignore_case = true)]
    pub watch_mode: WatchMode,

    /// How often poll mode walks the tree, e.g. 30s; 100ms to 24h.
    #[arg(long, env = "POLL_INTERVAL", default_value = "30s", value_parser = poll_interval)]
    pub poll_interval: Duration,

    /// How often a full reconciliation scan runs to catch anything the watcher missed, e.g. 1h;
    /// 1s to 30 days, or 0 to turn it off.
    #[arg(long, env = "RECONCILE_INTERVAL", default_value = "1h", value_parser = reconcile_interval)]
    pub reconcile_interval: Duration,

    /// Capacity of the queue between the filesystem watcher and the pipeline; 1 to 1,000,000.
    /// When it is full, a reconciliation scan replaces the events that did not fit.
    #[arg(long, env = "HINT_QUEUE", default_value_t = 16_384, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub hint_queue: u32,

    /// Where envelopes go: auto, stdout or amqp.
    #[arg(long, env = "SINK", default_value = "auto", ignore_case = true)]
    pub sink: SinkKind,

    /// Scan, report what changed since the last run, and exit: for batch jobs and benchmarks.
    /// As a variable: true/false, 1/0, yes/no or on/off.
    #[arg(long, env = "ONCE", action = clap::ArgAction::SetTrue, value_parser = boolish)]
    pub once: bool,

    /// Accept DATA_DIR although it is another directory than the state store describes, or
    /// empty while the store knows files, and report what changed (deletions included). Without
    /// it such a DATA_DIR is taken for a volume that is not mounted, and nothing is reported until
    /// the right one is back. Use it once, after really moving or emptying the library.
    /// As a variable: true/false, 1/0, yes/no or on/off.
    #[arg(long, env = "ACCEPT_NEW_DATA_DIR", action = clap::ArgAction::SetTrue, value_parser = boolish)]
    pub accept_new_data_dir: bool,

    /// Address of the HTTP server for /health and /metrics; "off" disables it. Default:
    /// 0.0.0.0:8080, but off with --once (a batch run has no one to answer), unless set.
    #[arg(long, env = "HTTP_ADDR")]
    pub http_addr: Option<String>,

    /// RabbitMQ host, or the nodes of a cluster as a comma-separated list of host or host:port
    /// (IPv6 as [::1]:5672), e.g. "rabbit-0,rabbit-1,rabbit-2". The instance connects to the
    /// first that answers (see RABBITMQ_SHUFFLE) and fails over to the next when its node dies
    /// or stays blocked.
    // The doc comment is the --help text, not markdown: `[::1]` is an address, not a link.
    #[allow(rustdoc::broken_intra_doc_links)]
    #[arg(long, env = "RABBITMQ_HOST", default_value = "localhost")]
    pub rabbitmq_host: String,

    /// Try the broker addresses (RABBITMQ_HOST or AMQP_URL lists) in a random order, so that
    /// instances spread over a cluster's nodes: true/false (1/0, yes/no, on/off). False: in the
    /// order given.
    #[arg(long, env = "RABBITMQ_SHUFFLE", default_value_t = true, action = clap::ArgAction::Set, value_parser = boolish)]
    pub rabbitmq_shuffle: bool,

    /// When another live instance already holds this INSTANCE_ID on the broker: standby (wait,
    /// not ready, take over when it goes away) or exit (code 3). Only with the amqp sink: with
    /// --sink stdout there is no broker to claim the ID on, so nothing detects a duplicate.
    #[arg(
        long,
        env = "ON_DUPLICATE",
        default_value = "standby",
        ignore_case = true
    )]
    pub on_duplicate: OnDuplicate,

    /// RabbitMQ port: the port of every RABBITMQ_HOST entry that names none.
    #[arg(long, env = "RABBITMQ_PORT", default_value_t = 5672, value_parser = clap::value_parser!(u16).range(1..))]
    pub rabbitmq_port: u16,

    /// RabbitMQ user.
    #[arg(long, env = "RABBITMQ_USER", default_value = "guest")]
    pub rabbitmq_user: String,

    /// RabbitMQ password. Prefer RABBITMQ_PASS_FILE in production.
    #[arg(
        long,
        env = "RABBITMQ_PASS",
        default_value = "guest",
        hide_env_values = true
    )]
    pub rabbitmq_pass: String,

    /// File holding the RabbitMQ password (a mounted secret); wins over RABBITMQ_PASS.
    #[arg(long, env = "RABBITMQ_PASS_FILE")]
    pub rabbitmq_pass_file: Option<PathBuf>,

    /// RabbitMQ virtual host.
    #[arg(long, env = "RABBITMQ_VHOST", default_value = "/")]
    pub rabbitmq_vhost: String,

    /// An amqp:// or amqps:// URL instead of the RABBITMQ_* settings, or a comma-separated list
    /// of them, one per cluster node.
    #[arg(long, env = "AMQP_URL", hide_env_values = true)]
    pub amqp_url: Option<String>,

    /// The topic exchange events are published to.
    #[arg(long, env = "EXCHANGE", default_value = "file_events")]
    pub exchange: String,

    /// Messages published but not yet confirmed by the broker, at most.
    #[arg(long, env = "PUBLISH_WINDOW", default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=65_535))]
    pub publish_window: u32,

    /// The durable queue declared and bound to EXCHANGE with `file.#` before the first publish,
    /// so that the events of a first run wait in it for their consumers. Every instance declares
    /// it with the same arguments. Empty: declare nothing (you manage the queues and bindings).
    #[arg(long, env = "QUEUE", default_value = "file_events")]
    pub queue: String,

    /// The declared queue's type: classic (one broker) or quorum (a cluster: replicated). A
    /// queue that already exists with another type is an error naming both (exit 2).
    #[arg(
        long,
        env = "QUEUE_TYPE",
        default_value = "classic",
        ignore_case = true
    )]
    pub queue_type: QueueType,

    /// A message no queue is bound for: hold (publish it again until one is, and report not
    /// ready meanwhile) or drop (count and log it, and record it as delivered).
    #[arg(
        long,
        env = "ON_UNROUTABLE",
        default_value = "hold",
        ignore_case = true
    )]
    pub on_unroutable: OnUnroutable,

    /// With --once: how long the run waits for the broker without any confirmation before it
    /// gives up (exit 1, saying how many events were not confirmed and why), e.g. 60s.
    #[arg(long, env = "ONCE_TIMEOUT", default_value = "60s", value_parser = once_timeout)]
    pub once_timeout: Duration,

    /// How long shutdown waits for outstanding confirms before giving up, e.g. 30s; 0 to 1h.
    #[arg(long, env = "SHUTDOWN_TIMEOUT", default_value = "30s", value_parser = shutdown_timeout)]
    pub shutdown_timeout: Duration,
}

/// One line for a setting clap refused, naming the environment variable (the name users set in
/// compose files and env files) and the flag: `invalid setting HINT_QUEUE (--hint-queue):
/// "0": 0 is not in 1..=1000000`. Anything else keeps clap's own first line.
pub fn setting_error(e: &clap::Error) -> String {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    let arg = match e.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(a)) => Some(a.clone()),
        Some(ContextValue::Strings(a)) => a.first().cloned(),
        _ => None,
    };
    // clap names an argument as `--flag <VALUE>`, or `--flag` for a switch: its variable is
    // found by the flag.
    let named = arg.as_deref().and_then(|a| {
        let flag = a.split_once(" <").map_or(a, |(f, _)| f);
        let long = flag.strip_prefix("--")?;
        let command = <Config as clap::CommandFactory>::command();
        let env = command
            .get_arguments()
            .find(|x| x.get_long() == Some(long))?
            .get_env()?
            .to_string_lossy()
            .into_owned();
        Some((flag.to_owned(), env))
    });
    match (e.kind(), named) {
        (ErrorKind::MissingRequiredArgument, Some((flag, env))) => {
            format!(
                "invalid setting {env}: not set; set {env} (or {flag}) to the directory to watch"
            )
        }
        (ErrorKind::InvalidValue | ErrorKind::ValueValidation, Some((flag, env))) => {
            let value = match e.get(ContextKind::InvalidValue) {
                Some(ContextValue::String(v)) => v.clone(),
                _ => String::new(),
            };
            let why = std::error::Error::source(e).map_or_else(
                || match e.get(ContextKind::ValidValue) {
                    Some(ContextValue::Strings(v)) => format!("use one of {}", v.join(", ")),
                    _ => "not a valid value".to_owned(),
                },
                ToString::to_string,
            );
            format!("invalid setting {env} ({flag}): {value:?}: {why}")
        }
        _ => {
            let text = e.render().to_string();
            text.lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("invalid arguments")
                .to_owned()
        }
    }
}

/// A yes-or-no setting as people type it: `true/false`, `1/0`, `yes/no` or `on/off`, in any
/// case. One parser for every boolean, so `ONCE=yes` and `RABBITMQ_SHUFFLE=YES` mean the same.
///
/// # Errors
/// A message listing the accepted words.
pub fn boolish(s: &str) -> Result<bool, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err("use true/false, 1/0, yes/no or on/off".into()),
    }
}

/// A duration as `500ms`, `2s`, `5m`, `1h`, or plain seconds.
///
/// # Errors
/// A message saying which forms are accepted.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if s.starts_with('-') {
        return Err("must not be negative (use e.g. 500ms, 2s, 5m, 1h)".into());
    }
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    humantime::parse_duration(s).map_err(|e| format!("{e} (use e.g. 500ms, 2s, 5m, 1h)"))
}

/// A duration within `min..=max`, or zero when `zero_ok` (a setting that 0 turns off). The
/// bounds keep every later `Instant + duration` from overflowing, and say what makes sense.
fn duration_in(s: &str, min: Duration, max: Duration, zero_ok: bool) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if (zero_ok && d.is_zero()) || (min..=max).contains(&d) {
        return Ok(d);
    }
    let range = format!(
        "{} to {}",
        humantime::format_duration(min),
        humantime::format_duration(max)
    );
    Err(if zero_ok {
        format!("must be {range}, or 0 to turn it off")
    } else {
        format!("must be {range}")
    })
}

/// Where the HTTP endpoints listen when HTTP_ADDR is not set.
const DEFAULT_HTTP_ADDR: std::net::SocketAddr = std::net::SocketAddr::V4(
    std::net::SocketAddrV4::new(std::net::Ipv4Addr::UNSPECIFIED, 8080),
);

const HOUR: Duration = Duration::from_secs(3600);

fn settle_delay(s: &str) -> Result<Duration, String> {
    duration_in(s, Duration::from_millis(1), HOUR, false)
}

fn settle_fast_delay(s: &str) -> Result<Duration, String> {
    duration_in(s, Duration::from_millis(1), Duration::from_secs(10), false)
}

fn poll_interval(s: &str) -> Result<Duration, String> {
    duration_in(s, Duration::from_millis(100), 24 * HOUR, false)
}

fn reconcile_interval(s: &str) -> Result<Duration, String> {
    duration_in(s, Duration::from_secs(1), 30 * 24 * HOUR, true)
}

fn shutdown_timeout(s: &str) -> Result<Duration, String> {
    duration_in(s, Duration::ZERO, HOUR, false)
}

fn once_timeout(s: &str) -> Result<Duration, String> {
    duration_in(s, Duration::from_secs(1), 24 * HOUR, false)
}

/// A setting that parsed but makes no sense. It names the variable and the flag, like clap's
/// refusals (see [`setting_error`]): people set one or the other.
#[derive(Debug, thiserror::Error)]
#[error("invalid setting {setting} (--{}): {problem}", setting.to_ascii_lowercase().replace('_', "-"))]
pub struct ConfigError {
    /// The environment variable name of the setting.
    pub setting: &'static str,
    /// What is wrong and how to fix it.
    pub problem: String,
}

impl Config {
    /// Checks what clap cannot: that DATA_DIR is a readable directory, that INSTANCE_ID is
    /// usable, and that globs compile. Returns DATA_DIR in canonical form.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the setting.
    pub fn validate(&mut self) -> Result<(), ConfigError> {
        let bad = |setting, problem: String| ConfigError { setting, problem };
        let dir = &self.data_dir;
        let meta = std::fs::metadata(dir).map_err(|e| {
            bad(
                "DATA_DIR",
                format!(
                    "{}: {e}; mount or create the directory to watch",
                    dir.display()
                ),
            )
        })?;
        if !meta.is_dir() {
            return Err(bad(
                "DATA_DIR",
                format!("{} is not a directory", dir.display()),
            ));
        }
        std::fs::read_dir(dir).map_err(|e| {
            bad(
                "DATA_DIR",
                format!(
                    "{}: cannot list it: {e}; check permissions and the volume mount",
                    dir.display()
                ),
            )
        })?;
        self.data_dir = dir
            .canonicalize()
            .map_err(|e| bad("DATA_DIR", format!("{}: {e}", dir.display())))?;
        if self.watch_mode == WatchMode::Native && !self.once {
            if let Some((at, fs)) = crate::fstype::remote_under(&self.data_dir) {
                return Err(bad(
                    "WATCH_MODE",
                    format!(
                        "native: {} is on {fs}, where inotify does not see changes made by \
                         other machines or the filesystem's daemon; use WATCH_MODE=poll, or \
                         auto, which polls such a tree",
                        at.display()
                    ),
                ));
            }
        }
        if let Some(id) = &self.instance_id {
            if id.is_empty()
                || id.len() > 200
                || !id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c))
            {
                return Err(bad(
                    "INSTANCE_ID",
                    format!("{id:?}: use 1 to 200 characters from A-Z a-z 0-9 - _ . :"),
                ));
            }
        }
        if let Some(addr) = &self.http_addr {
            if !addr.eq_ignore_ascii_case("off") && addr.parse::<std::net::SocketAddr>().is_err() {
                return Err(bad(
                    "HTTP_ADDR",
                    format!("{addr:?} is not an address like 0.0.0.0:8080 (or \"off\")"),
                ));
            }
        }
        crate::filter::Filter::new(&self.include, &self.exclude, &self.extensions)
            .map_err(|e| bad(e.setting, e.problem))?;
        // Broker address lists, checked before anything starts.
        if self.resolved_sink() == SinkKind::Amqp {
            match &self.amqp_url {
                Some(urls) => {
                    if let Err(publisher::SinkError::InvalidConfig(m)) =
                        publisher::AmqpConfig::from_urls(urls, "check")
                    {
                        let m = m.strip_prefix("AMQP_URL: ").unwrap_or(&m).to_owned();
                        return Err(bad("AMQP_URL", m));
                    }
                }
                None => {
                    publisher::parse_hosts(&self.rabbitmq_host, self.rabbitmq_port)
                        .map_err(|e| bad("RABBITMQ_HOST", e))?;
                }
            }
        }
        Ok(())
    }

    /// The sink actually used, resolving `auto`.
    pub fn resolved_sink(&self) -> SinkKind {
        match self.sink {
            SinkKind::Auto => {
                let set = |k| std::env::var_os(k).is_some_and(|v| !v.is_empty());
                if self.amqp_url.is_some() || set("RABBITMQ_HOST") {
                    SinkKind::Amqp
                } else {
                    SinkKind::Stdout
                }
            }
            other => other,
        }
    }

    /// The HTTP listen address, or `None` when HTTP_ADDR is "off", or unset with `--once`.
    pub fn http_socket_addr(&self) -> Option<std::net::SocketAddr> {
        match &self.http_addr {
            Some(addr) => addr.parse().ok(),
            None if self.once => None,
            None => Some(DEFAULT_HTTP_ADDR),
        }
    }

    /// Binds the HTTP listener, before anything is created on disk, so that a port in use is
    /// one line and exit 2 rather than a failure half-way through start-up.
    ///
    /// # Errors
    /// A [`ConfigError`] for HTTP_ADDR saying what holds the address and how to fix it.
    pub fn bind_http(&self) -> Result<Option<std::net::TcpListener>, ConfigError> {
        let Some(addr) = self.http_socket_addr() else {
            return Ok(None);
        };
        let listener = std::net::TcpListener::bind(addr).and_then(|l| {
            l.set_nonblocking(true)?;
            Ok(l)
        });
        listener.map(Some).map_err(|e| ConfigError {
            setting: "HTTP_ADDR",
            problem: if e.kind() == std::io::ErrorKind::AddrInUse {
                format!(
                    "{addr} is already in use (another instance, or another service); give each \
                     instance its own port, e.g. HTTP_ADDR=0.0.0.0:{}, or HTTP_ADDR=off",
                    addr.port().wrapping_add(1).max(1)
                )
            } else {
                format!("cannot listen on {addr}: {e}; choose another address, or HTTP_ADDR=off")
            },
        })
    }

    /// Hashing threads, resolving the default.
    pub fn hash_threads(&self) -> usize {
        self.hash_threads.map_or_else(
            || std::thread::available_parallelism().map_or(1, |n| n.get()),
            usize::from,
        )
    }

    /// Scan threads, resolving the default.
    pub fn scan_threads(&self) -> usize {
        self.scan_threads.map_or_else(
            || std::thread::available_parallelism().map_or(1, |n| n.get()),
            usize::from,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Config, clap::Error> {
        Config::try_parse_from(std::iter::once("file-watcher").chain(args.iter().copied()))
    }

    #[test]
    fn log_level_accepts_the_guide_spellings_in_any_case() {
        for (s, want) in [
            ("DEBUG", LogLevel::Debug),
            ("info", LogLevel::Info),
            ("WARNING", LogLevel::Warning),
            ("warn", LogLevel::Warning),
            ("Error", LogLevel::Error),
        ] {
            let c = parse(&["--data-dir", "/", "--log-level", s]).unwrap();
            assert_eq!(c.log_level, want, "{s}");
        }
        let err = parse(&["--data-dir", "/", "--log-level", "LOUD"]).unwrap_err();
        assert!(err.to_string().contains("--log-level"), "{err}");
    }

    #[test]
    fn durations_take_units_or_seconds() {
        let c = parse(&[
            "--data-dir",
            "/",
            "--settle-delay",
            "750ms",
            "--reconcile-interval",
            "90",
        ])
        .unwrap();
        assert_eq!(c.settle_delay, Duration::from_millis(750));
        assert_eq!(c.reconcile_interval, Duration::from_secs(90));
        assert!(parse(&["--data-dir", "/", "--settle-delay", "soon"]).is_err());
    }

    #[test]
    fn missing_data_dir_names_the_setting() {
        let mut c = parse(&["--data-dir", "/definitely/not/here"]).unwrap();
        let err = c.validate().unwrap_err();
        assert_eq!(err.setting, "DATA_DIR");
        assert!(err.to_string().contains("/definitely/not/here"), "{err}");
    }

    #[test]
    fn file_as_data_dir_is_refused() {
        let f = tempfile::NamedTempFile::new().unwrap();
        let mut c = parse(&["--data-dir", f.path().to_str().unwrap()]).unwrap();
        let err = c.validate().unwrap_err();
        assert!(err.to_string().contains("not a directory"), "{err}");
    }

    #[test]
    fn bad_instance_id_is_refused() {
        let mut c = parse(&["--data-dir", "/", "--instance-id", "has space"]).unwrap();
        assert_eq!(c.validate().unwrap_err().setting, "INSTANCE_ID");
    }

    #[test]
    fn cluster_settings_parse() {
        let c = parse(&["--data-dir", "/"]).unwrap();
        assert_eq!(c.on_duplicate, OnDuplicate::Standby);
        assert!(c.rabbitmq_shuffle);
        let c = parse(&[
            "--data-dir",
            "/",
            "--on-duplicate",
            "EXIT",
            "--rabbitmq-shuffle",
            "false",
            "--rabbitmq-host",
            "a,b:5673,[::1]:5674",
        ])
        .unwrap();
        assert_eq!(c.on_duplicate, OnDuplicate::Exit);
        assert!(!c.rabbitmq_shuffle);
        assert_eq!(c.rabbitmq_host, "a,b:5673,[::1]:5674");
        assert!(parse(&["--data-dir", "/", "--on-duplicate", "both"]).is_err());
        assert!(parse(&["--data-dir", "/", "--rabbitmq-shuffle", "maybe"]).is_err());
    }

    #[test]
    fn booleans_read_the_words_people_type() {
        for (input, want) in [
            ("true", Some(true)),
            ("TRUE", Some(true)),
            ("1", Some(true)),
            ("yes", Some(true)),
            ("Yes", Some(true)),
            ("on", Some(true)),
            ("ON", Some(true)),
            (" on ", Some(true)),
            ("false", Some(false)),
            ("False", Some(false)),
            ("0", Some(false)),
            ("no", Some(false)),
            ("NO", Some(false)),
            ("off", Some(false)),
            ("Off", Some(false)),
            ("", None),
            ("y", None),
            ("2", None),
            ("maybe", None),
            ("truee", None),
        ] {
            assert_eq!(boolish(input).ok(), want, "{input:?}");
        }
        // Every boolean setting goes through it.
        for (value, want) in [("YES", true), ("0", false), ("Off", false), ("on", true)] {
            let c = parse(&["--data-dir", "/", "--rabbitmq-shuffle", value]).unwrap();
            assert_eq!(c.rabbitmq_shuffle, want, "{value}");
        }
        let bools: Vec<_> = Config::command()
            .get_arguments()
            .filter(|a| {
                matches!(
                    a.get_action(),
                    clap::ArgAction::SetTrue | clap::ArgAction::SetFalse
                ) || a.get_id() == "rabbitmq_shuffle"
            })
            .filter_map(|a| a.get_env().map(|e| e.to_string_lossy().into_owned()))
            .collect();
        assert_eq!(bools, ["ONCE", "ACCEPT_NEW_DATA_DIR", "RABBITMQ_SHUFFLE"]);
    }

    /// Every setting that can refuse a value names its variable and its flag when it does.
    #[test]
    fn every_refused_value_names_the_variable_and_the_flag() {
        let huge = u64::MAX.to_string();
        let mut refused = Vec::new();
        for arg in Config::command().get_arguments() {
            let (Some(long), Some(env)) = (arg.get_long(), arg.get_env()) else {
                continue;
            };
            let env = env.to_string_lossy().into_owned();
            let flag = format!("--{long}");
            for bad in ["garbage", "-1", "0", huge.as_str(), ""] {
                let Err(e) = parse(&["--data-dir", "/", &flag, bad]) else {
                    continue;
                };
                if !matches!(
                    e.kind(),
                    clap::error::ErrorKind::InvalidValue | clap::error::ErrorKind::ValueValidation
                ) {
                    continue;
                }
                let line = setting_error(&e);
                assert!(
                    line.starts_with(&format!("invalid setting {env} ({flag}): ")),
                    "{flag} {bad:?}: {line}"
                );
                assert!(!line.contains('\n'), "{line}");
                if !refused.contains(&env) {
                    refused.push(env.clone());
                }
            }
        }
        for typed in [
            "LOG_LEVEL",
            "LOG_FORMAT",
            "HASH_THREADS",
            "SCAN_THREADS",
            "SETTLE_DELAY",
            "WATCH_MODE",
            "POLL_INTERVAL",
            "RECONCILE_INTERVAL",
            "HINT_QUEUE",
            "SINK",
            "RABBITMQ_SHUFFLE",
            "ON_DUPLICATE",
            "RABBITMQ_PORT",
            "PUBLISH_WINDOW",
            "QUEUE_TYPE",
            "ON_UNROUTABLE",
            "ONCE_TIMEOUT",
            "SHUTDOWN_TIMEOUT",
        ] {
            assert!(
                refused.iter().any(|r| r == typed),
                "{typed} refused nothing"
            );
        }
    }

    #[test]
    fn once_listens_only_when_told_to() {
        let addr = |args: &[&str]| {
            let mut all = vec!["--data-dir", "/"];
            all.extend(args);
            parse(&all)
                .unwrap()
                .http_socket_addr()
                .map(|a| a.to_string())
        };
        assert_eq!(addr(&[]).as_deref(), Some("0.0.0.0:8080"));
        assert_eq!(addr(&["--once"]), None);
        assert_eq!(
            addr(&["--once", "--http-addr", "127.0.0.1:9"]).as_deref(),
            Some("127.0.0.1:9")
        );
        assert_eq!(addr(&["--http-addr", "OFF"]), None);
    }

    #[test]
    fn a_port_in_use_is_a_setting_error_naming_it() {
        let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let at = held.local_addr().unwrap().to_string();
        let c = parse(&["--data-dir", "/", "--http-addr", &at]).unwrap();
        let e = c.bind_http().unwrap_err();
        assert_eq!(e.setting, "HTTP_ADDR");
        assert!(
            e.problem.contains(&at) && e.problem.contains("in use"),
            "{e}"
        );
        drop(held);
        assert!(c.bind_http().unwrap().is_some());
    }

    #[test]
    fn broker_address_lists_are_validated_up_front() {
        let cases = [
            (vec!["--rabbitmq-host", "a,b:0"], "RABBITMQ_HOST", "entry 2"),
            (
                vec!["--rabbitmq-host", "[::1"],
                "RABBITMQ_HOST",
                "closing ]",
            ),
            (
                vec!["--amqp-url", "amqp://a,http://b"],
                "AMQP_URL",
                "entry 2: scheme",
            ),
        ];
        // `AMQP_URL` from the environment (scripts/test exports one) would replace the
        // `RABBITMQ_*` settings under test: only the command line counts here.
        let from_args = |args: &[&str]| {
            let mut c = parse(args).unwrap();
            if !args.contains(&"--amqp-url") {
                c.amqp_url = None;
            }
            c
        };
        for (args, setting, words) in cases {
            let mut all = vec!["--data-dir", "/", "--sink", "amqp"];
            all.extend(args);
            let err = from_args(&all).validate().unwrap_err();
            assert_eq!(err.setting, setting, "{err}");
            assert!(err.to_string().contains(words), "{err}");
        }
        let mut ok = from_args(&[
            "--data-dir",
            "/",
            "--sink",
            "amqp",
            "--rabbitmq-host",
            "a,[::1]:5673",
        ]);
        assert!(ok.validate().is_ok());
    }
}
