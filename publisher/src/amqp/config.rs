//! Where the broker is and how to talk to it. The password lives here and nowhere else: `Debug`
//! and [`AmqpConfig::redacted`] print `***` in its place, and no error built from a config
//! contains it.

use std::fmt;
use std::time::Duration;

use lapin::uri::{
    AMQPAuthority, AMQPQueryString, AMQPScheme, AMQPUri, AMQPUserInfo, SASLMechanism,
};
use percent_encoding::{percent_decode_str, utf8_percent_encode, NON_ALPHANUMERIC};

use crate::error::SinkError;

/// The exchange of the wire contract.
pub const DEFAULT_EXCHANGE: &str = "file_events";
/// Unconfirmed messages allowed on the wire at once.
pub const DEFAULT_WINDOW: usize = 1000;
/// First reconnect delay.
pub const DEFAULT_BACKOFF_INITIAL: Duration = Duration::from_millis(500);
/// Longest reconnect delay, and the pace of retries after `ACCESS_REFUSED`.
pub const DEFAULT_BACKOFF_MAX: Duration = Duration::from_secs(30);
/// TCP connect timeout when the URL does not set `connection_timeout`: a black-holed host must
/// not stall the reconnect loop for the kernel's minutes-long default.
const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 10_000;

/// Settings of the AMQP publisher.
///
/// Build it from one URL ([`AmqpConfig::from_url`]) or from parts ([`AmqpConfig::from_parts`]),
/// then adjust the public fields.
///
/// ```
/// use publisher::AmqpConfig;
///
/// let mut config =
///     AmqpConfig::from_url("amqp://app:s3cret@rabbit:5672/%2f", "watcher-music").unwrap();
/// config.watched_directory = "/data/music".into();
/// assert_eq!(config.redacted(), "amqp://app:***@rabbit:5672/%2F");
/// assert!(!format!("{config:?}").contains("s3cret"));
/// ```
#[derive(Clone)]
pub struct AmqpConfig {
    /// Broker addresses and credentials, never empty: one per cluster node the instance may
    /// use. Private so the password cannot leak through a field.
    endpoints: Vec<Endpoint>,
    /// Try the addresses in a random order (drawn once at start), so that many instances given
    /// the same list spread over the cluster's nodes. Off: in the order given, which tests and
    /// operators who pin a preferred node want.
    pub shuffle: bool,
    /// Claim `INSTANCE_ID` on the broker (an exclusive queue named after it) on every connection,
    /// and what to do when another live connection holds it. `None`: no claim (benches, tools).
    pub claim: Option<OnDuplicate>,
    /// The topic exchange to declare and publish to.
    pub exchange: String,
    /// This instance's id: in the connection name (`file_watcher_{instance_id}`), the client
    /// properties and every log line.
    pub instance_id: String,
    /// The watched directory, shown in the client properties.
    pub watched_directory: String,
    /// Most messages published and not yet confirmed. Bounds memory and the replay after a
    /// reconnect.
    pub window: usize,
    /// First reconnect delay; doubles on each failed attempt.
    pub backoff_initial: Duration,
    /// Cap of the reconnect delay, and the pace of retries after `ACCESS_REFUSED`.
    pub backoff_max: Duration,
    /// The durable queue declared and bound to the exchange on every connection, before the
    /// first publish, so that no event of a first run is lost for want of a consumer's queue.
    /// `None`: the user manages the topology (then returned messages are what
    /// [`AmqpConfig::on_unroutable`] says).
    pub queue: Option<QueueSpec>,
    /// What happens to a message the broker returns as unroutable.
    pub on_unroutable: OnUnroutable,
}

/// The queue the publisher declares: durable, of one type, bound with [`QUEUE_BINDING`].
///
/// Every instance declares it with exactly these arguments, so declaring it again is a no-op;
/// a queue that exists with other arguments is refused by the broker (`PRECONDITION_FAILED`) and
/// reported as [`SinkError::QueueMismatch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueSpec {
    /// The queue's name.
    pub name: String,
    /// Its type (the `x-queue-type` argument).
    pub kind: QueueType,
}

/// The binding key of the declared queue: every event type.
pub const QUEUE_BINDING: &str = "file.#";
/// The default name of the declared queue.
pub const DEFAULT_QUEUE: &str = "file_events";

/// The queue types a durable event queue can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueType {
    /// A classic queue: one node, the broker's default.
    Classic,
    /// A quorum queue: replicated over a cluster's nodes (Raft); what a cluster should use.
    Quorum,
}

impl QueueType {
    /// The value of `x-queue-type`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Classic => "classic",
            Self::Quorum => "quorum",
        }
    }
}

impl QueueSpec {
    /// The arguments as they are declared, for messages: `durable=true, x-queue-type=classic`.
    pub fn describe(&self) -> String {
        format!("durable=true, x-queue-type={}", self.kind.as_str())
    }
}

/// What to do with a message RabbitMQ returns as unroutable (published `mandatory`, and no
/// queue is bound for its routing key).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnUnroutable {
    /// Keep it: publish it again, with backoff, until a queue takes it. It is not confirmed to
    /// the caller meanwhile, so nothing is recorded as delivered that no queue has.
    Hold,
    /// Count it, log the first per routing key, and treat it as delivered: for deliberate
    /// partial topologies, where some event types have no consumer.
    Drop,
}

/// What an instance does when another live connection already claims its `INSTANCE_ID`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnDuplicate {
    /// Stop: [`AmqpPublisher::failure`](crate::AmqpPublisher::failure) yields
    /// [`SinkError::Duplicate`], and nothing is published.
    Exit,
    /// Keep the connection, publish nothing, and try the claim again every
    /// [`STANDBY_RETRY`](crate::STANDBY_RETRY) until the holder goes away.
    Standby,
}

/// The exclusive queue that claims `instance_id` on the broker. Exclusive queues are owned by one
/// connection cluster-wide and vanish with it, which is exactly the lifetime of a claim.
pub fn claim_queue(instance_id: &str) -> String {
    format!("file_watcher.claim.{instance_id}")
}

#[derive(Clone)]
struct Endpoint {
    tls: bool,
    host: String,
    port: u16,
    user: String,
    password: String,
    vhost: String,
    query: AMQPQueryString,
}

/// A host as written in a URL: IPv6 in brackets.
fn url_host(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    }
}

/// An IPv6 address is written in brackets in URLs and host settings (`[::1]`), but resolved
/// without them.
fn bare_host(host: &str) -> &str {
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
}

/// Splits a host list (`RABBITMQ_HOST`): comma-separated `host`, `host:port`, `[v6]`,
/// `[v6]:port`, or a bare IPv6 address (several colons, no port). `default_port` applies where
/// no port is given. Hosts come back without IPv6 brackets.
///
/// # Errors
/// What is wrong with which entry.
pub fn parse_hosts(list: &str, default_port: u16) -> Result<Vec<(String, u16)>, String> {
    let mut out = Vec::new();
    for (i, raw) in list.split(',').enumerate() {
        let entry = raw.trim();
        let which = || format!("entry {} ({entry:?})", i + 1);
        if entry.is_empty() {
            return Err(format!("entry {} is empty", i + 1));
        }
        let (host, port) = if let Some(rest) = entry.strip_prefix('[') {
            let (host, after) = rest
                .split_once(']')
                .ok_or_else(|| format!("{}: an IPv6 address needs its closing ]", which()))?;
            match after {
                "" => (host, None),
                p => (
                    host,
                    Some(p.strip_prefix(':').ok_or_else(|| {
                        format!("{}: expected :port after the IPv6 address", which())
                    })?),
                ),
            }
        } else if entry.matches(':').count() > 1 {
            // A bare IPv6 address: it has no room for a port.
            (entry, None)
        } else {
            match entry.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (entry, None),
            }
        };
        if host.is_empty() {
            return Err(format!("{}: no host", which()));
        }
        let port = match port {
            None => default_port,
            Some(p) => match p.parse::<u16>() {
                Ok(p) if p > 0 => p,
                _ => return Err(format!("{}: the port must be 1 to 65535", which())),
            },
        };
        out.push((host.to_owned(), port));
    }
    Ok(out)
}

/// The order in which `n` addresses are tried: as given, or shuffled with `rng`. Pure apart
/// from the generator the caller passes (seeded in tests).
pub(crate) fn connect_order(n: usize, shuffle: bool, rng: &mut fastrand::Rng) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    if shuffle {
        rng.shuffle(&mut order);
    }
    order
}

impl AmqpConfig {
    /// Parses a comma-separated list of `amqp://` or `amqps://` URLs, one per cluster node
    /// (each parsed as [`AmqpConfig::from_url`] describes for one).
    ///
    /// # Errors
    /// [`SinkError::InvalidConfig`] naming the entry and what is wrong; never the password.
    pub fn from_urls(list: &str, instance_id: impl Into<String>) -> Result<Self, SinkError> {
        let entries: Vec<&str> = list.split(',').map(str::trim).collect();
        let mut endpoints = Vec::with_capacity(entries.len());
        for (i, url) in entries.iter().enumerate() {
            let one = Self::from_url(url, "").map_err(|e| match e {
                SinkError::InvalidConfig(m) if entries.len() > 1 => SinkError::InvalidConfig(
                    m.replacen("AMQP_URL: ", &format!("AMQP_URL: entry {}: ", i + 1), 1),
                ),
                other => other,
            })?;
            endpoints.extend(one.endpoints);
        }
        let mut config = Self::with_endpoint(Vec::new(), instance_id.into());
        config.endpoints = endpoints;
        Ok(config)
    }

    /// Parses an `amqp://` or `amqps://` URL: `amqp://user:password@host:port/vhost`, with the
    /// vhost percent-encoded (`%2f` is `/`; an empty vhost also means `/`). The query parameters
    /// `heartbeat`, `connection_timeout` (ms), `frame_max`, `channel_max` and `auth_mechanism`
    /// are honoured.
    ///
    /// # Errors
    /// [`SinkError::InvalidConfig`] naming what is wrong; the text never contains the password.
    pub fn from_url(url: &str, instance_id: impl Into<String>) -> Result<Self, SinkError> {
        let invalid = |what: String| SinkError::InvalidConfig(format!("AMQP_URL: {what}"));
        // url::ParseError's text never repeats the input, so it is safe to show.
        let parsed = url::Url::parse(url).map_err(|e| invalid(format!("not a URL ({e})")))?;
        let tls = match parsed.scheme() {
            "amqp" => false,
            "amqps" => true,
            other => {
                return Err(invalid(format!(
                    "scheme must be amqp or amqps, not {other:?}"
                )))
            }
        };
        let host = match parsed.host_str() {
            Some(h) if !h.is_empty() => bare_host(h).to_owned(),
            _ => return Err(invalid("no host".into())),
        };
        let port = parsed.port().unwrap_or(if tls { 5671 } else { 5672 });
        let decode = |s: &str, what: &str| {
            percent_decode_str(s)
                .decode_utf8()
                .map(|c| c.into_owned())
                .map_err(|_| invalid(format!("{what} is not valid UTF-8 once percent-decoded")))
        };
        let user = match parsed.username() {
            "" => "guest".to_owned(),
            u => decode(u, "user name")?,
        };
        let password = match parsed.password() {
            None => "guest".to_owned(),
            Some(p) => decode(p, "password")?,
        };
        let vhost = match parsed.path().strip_prefix('/').unwrap_or("") {
            "" => "/".to_owned(),
            v => decode(v, "vhost")?,
        };
        let mut query = AMQPQueryString::default();
        for (key, value) in parsed.query_pairs() {
            let bad = || invalid(format!("query parameter {key} has an invalid value"));
            match &*key {
                "heartbeat" => query.heartbeat = Some(value.parse().map_err(|_| bad())?),
                "connection_timeout" => {
                    query.connection_timeout = Some(value.parse().map_err(|_| bad())?);
                }
                "frame_max" => query.frame_max = Some(value.parse().map_err(|_| bad())?),
                "channel_max" => query.channel_max = Some(value.parse().map_err(|_| bad())?),
                "auth_mechanism" => {
                    query.auth_mechanism = Some(value.parse::<SASLMechanism>().map_err(|_| bad())?);
                }
                _ => {}
            }
        }
        Ok(Self::with_endpoint(
            vec![Endpoint {
                tls,
                host,
                port,
                user,
                password,
                vhost,
                query,
            }],
            instance_id.into(),
        ))
    }

    /// Builds the config from separate settings (`RABBITMQ_HOST`, `RABBITMQ_PORT`,
    /// `RABBITMQ_USER`, `RABBITMQ_PASS` or the content of `RABBITMQ_PASS_FILE`,
    /// `RABBITMQ_VHOST`). Plain `amqp://`; use a URL for TLS. `host` may be a list of cluster
    /// nodes (see [`parse_hosts`]); `port` is the port of those that name none.
    ///
    /// # Errors
    /// [`SinkError::InvalidConfig`] when a host entry is malformed, the user is empty or the
    /// port is 0.
    pub fn from_parts(
        host: &str,
        port: u16,
        user: &str,
        password: String,
        vhost: &str,
        instance_id: impl Into<String>,
    ) -> Result<Self, SinkError> {
        if host.trim().is_empty() {
            return Err(SinkError::InvalidConfig("RABBITMQ_HOST is empty".into()));
        }
        if port == 0 {
            return Err(SinkError::InvalidConfig(
                "RABBITMQ_PORT must not be 0".into(),
            ));
        }
        if user.is_empty() {
            return Err(SinkError::InvalidConfig("RABBITMQ_USER is empty".into()));
        }
        let hosts = parse_hosts(host, port)
            .map_err(|e| SinkError::InvalidConfig(format!("RABBITMQ_HOST: {e}")))?;
        let endpoints = hosts
            .into_iter()
            .map(|(host, port)| Endpoint {
                tls: false,
                host,
                port,
                user: user.to_owned(),
                password: password.clone(),
                vhost: if vhost.is_empty() {
                    "/".into()
                } else {
                    vhost.into()
                },
                query: AMQPQueryString::default(),
            })
            .collect();
        Ok(Self::with_endpoint(endpoints, instance_id.into()))
    }

    fn with_endpoint(endpoints: Vec<Endpoint>, instance_id: String) -> Self {
        Self {
            endpoints,
            shuffle: true,
            claim: None,
            exchange: DEFAULT_EXCHANGE.into(),
            instance_id,
            watched_directory: String::new(),
            window: DEFAULT_WINDOW,
            backoff_initial: DEFAULT_BACKOFF_INITIAL,
            backoff_max: DEFAULT_BACKOFF_MAX,
            // The library declares nothing and drops returns unless asked: benches and tools
            // publish to exchanges of their own. The service's settings default to a queue
            // and to holding.
            queue: None,
            on_unroutable: OnUnroutable::Drop,
        }
    }

    /// The broker URLs with the password replaced by `***`, comma-separated, for logs and
    /// errors.
    pub fn redacted(&self) -> String {
        (0..self.endpoints.len())
            .map(|i| self.redacted_at(i))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// How many broker addresses there are (at least one).
    pub fn address_count(&self) -> usize {
        self.endpoints.len()
    }

    /// Address `i` as `host:port` (IPv6 in brackets): what `/health`, the metric label and the
    /// logs name as the node in use.
    ///
    /// # Panics
    /// When `i` is not below [`AmqpConfig::address_count`].
    pub fn address(&self, i: usize) -> String {
        let e = &self.endpoints[i];
        format!("{}:{}", url_host(&e.host), e.port)
    }

    /// URL `i` without its password.
    pub(crate) fn redacted_at(&self, i: usize) -> String {
        let e = &self.endpoints[i];
        let host = url_host(&e.host);
        format!(
            "{}://{}:***@{}:{}/{}",
            if e.tls { "amqps" } else { "amqp" },
            utf8_percent_encode(&e.user, NON_ALPHANUMERIC),
            host,
            e.port,
            utf8_percent_encode(&e.vhost, NON_ALPHANUMERIC),
        )
    }

    /// The first broker host; an IPv6 address without its URL brackets (`::1`), as name
    /// resolution takes it.
    pub fn host(&self) -> &str {
        &self.first().host
    }

    /// The first broker port.
    pub fn port(&self) -> u16 {
        self.first().port
    }

    /// User name (of the first address).
    pub fn user(&self) -> &str {
        &self.first().user
    }

    /// Virtual host (of the first address).
    pub fn vhost(&self) -> &str {
        &self.first().vhost
    }

    fn first(&self) -> &Endpoint {
        // Every constructor makes at least one endpoint: `parse_hosts` and `split(',')` yield
        // one entry or more, and an empty entry is an error.
        &self.endpoints[0]
    }

    /// The AMQP connection name, `file_watcher_{instance_id}`.
    pub fn connection_name(&self) -> String {
        format!("file_watcher_{}", self.instance_id)
    }

    /// What lapin connects to. Built by hand rather than by lapin's URL parser, which drops IP
    /// hosts and echoes the whole URL (password included) in its errors.
    pub(crate) fn uri(&self, i: usize) -> AMQPUri {
        let e = &self.endpoints[i];
        let mut query = e.query.clone();
        query.connection_timeout = query
            .connection_timeout
            .or(Some(DEFAULT_CONNECT_TIMEOUT_MS));
        AMQPUri {
            scheme: if e.tls {
                AMQPScheme::AMQPS
            } else {
                AMQPScheme::AMQP
            },
            authority: AMQPAuthority {
                userinfo: AMQPUserInfo {
                    username: e.user.clone(),
                    password: e.password.clone(),
                },
                host: e.host.clone(),
                port: e.port,
            },
            vhost: e.vhost.clone(),
            query,
        }
    }
}

impl fmt::Debug for AmqpConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AmqpConfig")
            .field("url", &self.redacted())
            .field("exchange", &self.exchange)
            .field("instance_id", &self.instance_id)
            .field("watched_directory", &self.watched_directory)
            .field("window", &self.window)
            .field("backoff_initial", &self.backoff_initial)
            .field("backoff_max", &self.backoff_max)
            .field("shuffle", &self.shuffle)
            .field("claim", &self.claim)
            .field("queue", &self.queue)
            .field("on_unroutable", &self.on_unroutable)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_with_ip_host_port_and_encoded_vhost() {
        let c =
            AmqpConfig::from_url("amqp://app:p%40ss@10.1.2.3:5673/%2f?heartbeat=15", "i").unwrap();
        assert_eq!(c.host(), "10.1.2.3");
        assert_eq!(c.port(), 5673);
        assert_eq!(c.user(), "app");
        assert_eq!(c.vhost(), "/");
        let uri = c.uri(0);
        assert_eq!(uri.authority.userinfo.password, "p@ss");
        assert_eq!(uri.query.heartbeat, Some(15));
        assert_eq!(
            uri.query.connection_timeout,
            Some(DEFAULT_CONNECT_TIMEOUT_MS)
        );
        assert_eq!(uri.scheme, AMQPScheme::AMQP);
    }

    #[test]
    fn defaults_follow_the_contract() {
        let c = AmqpConfig::from_url("amqps://rabbit", "i").unwrap();
        assert_eq!(c.port(), 5671);
        assert_eq!(c.vhost(), "/");
        assert_eq!(c.user(), "guest");
        assert_eq!(c.exchange, "file_events");
        assert_eq!(c.window, 1000);
        assert_eq!(c.connection_name(), "file_watcher_i");
        assert_eq!(c.uri(0).scheme, AMQPScheme::AMQPS);
        assert_eq!(
            AmqpConfig::from_url("amqp://h/prod", "i").unwrap().vhost(),
            "prod"
        );
    }

    #[test]
    fn ipv6_hosts_lose_their_brackets_for_resolution_and_keep_them_in_urls() {
        for c in [
            AmqpConfig::from_url("amqp://u:p@[::1]:5673/%2f", "i").unwrap(),
            AmqpConfig::from_parts("[::1]", 5673, "u", "p".into(), "/", "i").unwrap(),
            AmqpConfig::from_parts("::1", 5673, "u", "p".into(), "/", "i").unwrap(),
        ] {
            assert_eq!(c.host(), "::1");
            assert_eq!(c.uri(0).authority.host, "::1");
            assert_eq!(c.redacted(), "amqp://u:***@[::1]:5673/%2F");
        }
        let v4 = AmqpConfig::from_parts("10.0.0.1", 5672, "u", "p".into(), "/", "i").unwrap();
        assert_eq!(v4.redacted(), "amqp://u:***@10.0.0.1:5672/%2F");
    }

    #[test]
    fn password_never_shows() {
        let secret = "hunter2-Zq9";
        let from_url = AmqpConfig::from_url(&format!("amqp://bob:{secret}@h:1/v"), "i").unwrap();
        let from_parts = AmqpConfig::from_parts("h", 5672, "bob", secret.into(), "/", "i").unwrap();
        for c in [from_url, from_parts] {
            assert!(!c.redacted().contains(secret), "{}", c.redacted());
            assert!(!format!("{c:?}").contains(secret));
            assert!(c.redacted().contains("bob:***@h:"));
        }
        // Errors about a URL never echo it.
        for bad in [
            format!("http://bob:{secret}@h/"),
            format!("amqp://bob:{secret}@h/?heartbeat=x"),
            format!("amqp://bob:{secret}@/"),
            format!("amqp://bob:{secret}@h:99999/"),
        ] {
            let err = AmqpConfig::from_url(&bad, "i").unwrap_err().to_string();
            assert!(!err.contains(secret), "{err}");
            assert!(err.starts_with("invalid AMQP setting: AMQP_URL"), "{err}");
        }
    }

    #[test]
    fn parts_are_validated() {
        assert!(AmqpConfig::from_parts("", 5672, "u", "p".into(), "/", "i").is_err());
        assert!(AmqpConfig::from_parts("h", 0, "u", "p".into(), "/", "i").is_err());
        assert!(AmqpConfig::from_parts("h", 5672, "", "p".into(), "/", "i").is_err());
        let c = AmqpConfig::from_parts("h", 5672, "u", "p".into(), "", "i").unwrap();
        assert_eq!(c.vhost(), "/");
        assert_eq!(c.redacted(), "amqp://u:***@h:5672/%2F");
    }

    #[test]
    fn host_lists_parse_every_form() {
        let ok: &[(&str, &[(&str, u16)])] = &[
            ("rabbit", &[("rabbit", 5672)]),
            ("a,b:5673, c ", &[("a", 5672), ("b", 5673), ("c", 5672)]),
            ("[::1]:5674,[fe80::1]", &[("::1", 5674), ("fe80::1", 5672)]),
            ("::1", &[("::1", 5672)]),
            (
                "10.0.0.1:1,10.0.0.2:65535",
                &[("10.0.0.1", 1), ("10.0.0.2", 65535)],
            ),
        ];
        for (input, want) in ok {
            let got = parse_hosts(input, 5672).unwrap();
            let want: Vec<(String, u16)> = want.iter().map(|(h, p)| ((*h).into(), *p)).collect();
            assert_eq!(got, want, "{input}");
        }
        let bad = [
            ("a,,b", "entry 2 is empty"),
            ("a,b:0", "entry 2"),
            ("a:x", "port must be 1 to 65535"),
            ("a:70000", "port must be 1 to 65535"),
            ("[::1", "closing ]"),
            ("[::1]5672", "expected :port"),
            (":5672", "no host"),
            ("", "entry 1 is empty"),
        ];
        for (input, want) in bad {
            let err = parse_hosts(input, 5672).unwrap_err();
            assert!(err.contains(want), "{input}: {err}");
        }
    }

    #[test]
    fn url_lists_keep_each_address_and_name_the_bad_entry() {
        let c =
            AmqpConfig::from_urls("amqp://u:p@h1:5672/%2f, amqps://u:p@[::1]:5671/v", "i").unwrap();
        assert_eq!(c.address_count(), 2);
        assert_eq!(c.address(0), "h1:5672");
        assert_eq!(c.address(1), "[::1]:5671");
        assert_eq!(c.uri(1).scheme, AMQPScheme::AMQPS);
        assert_eq!(c.uri(1).authority.host, "::1");
        assert_eq!(
            c.redacted(),
            "amqp://u:***@h1:5672/%2F,amqps://u:***@[::1]:5671/v"
        );
        assert_eq!(c.instance_id, "i");
        assert!(c.shuffle);
        let err = AmqpConfig::from_urls("amqp://h1,http://secret@h2", "i")
            .unwrap_err()
            .to_string();
        assert!(err.contains("AMQP_URL: entry 2: scheme"), "{err}");
        assert!(!err.contains("secret"), "{err}");
        let parts =
            AmqpConfig::from_parts("a,[::1]:5674", 5673, "u", "p".into(), "/", "i").unwrap();
        assert_eq!(parts.address(0), "a:5673");
        assert_eq!(parts.address(1), "[::1]:5674");
        let err = AmqpConfig::from_parts("a,", 5672, "u", "p".into(), "/", "i").unwrap_err();
        assert!(
            err.to_string().contains("RABBITMQ_HOST: entry 2 is empty"),
            "{err}"
        );
    }

    #[test]
    fn connect_order_is_given_or_a_permutation() {
        let mut rng = fastrand::Rng::with_seed(7);
        for n in [1, 2, 3, 5] {
            assert_eq!(
                connect_order(n, false, &mut rng),
                (0..n).collect::<Vec<_>>()
            );
            let mut shuffled = connect_order(n, true, &mut rng);
            shuffled.sort_unstable();
            assert_eq!(shuffled, (0..n).collect::<Vec<_>>());
        }
        // Shuffling spreads instances: over many draws every address comes first sometimes.
        let mut first = [0usize; 3];
        for _ in 0..300 {
            first[connect_order(3, true, &mut rng)[0]] += 1;
        }
        assert!(first.iter().all(|&c| c > 50), "{first:?}");
    }

    #[test]
    fn claim_queue_is_named_after_the_id() {
        assert_eq!(
            claim_queue("watcher-music"),
            "file_watcher.claim.watcher-music"
        );
    }
}
