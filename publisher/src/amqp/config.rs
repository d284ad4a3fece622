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
    /// Broker address and credentials; private so the password cannot leak through a field.
    endpoint: Endpoint,
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

/// An IPv6 address is written in brackets in URLs and host settings (`[::1]`), but resolved
/// without them.
fn bare_host(host: &str) -> &str {
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
}

impl AmqpConfig {
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
            Endpoint {
                tls,
                host,
                port,
                user,
                password,
                vhost,
                query,
            },
            instance_id.into(),
        ))
    }

    /// Builds the config from separate settings (`RABBITMQ_HOST`, `RABBITMQ_PORT`,
    /// `RABBITMQ_USER`, `RABBITMQ_PASS` or the content of `RABBITMQ_PASS_FILE`,
    /// `RABBITMQ_VHOST`). Plain `amqp://`; use a URL for TLS.
    ///
    /// # Errors
    /// [`SinkError::InvalidConfig`] when the host or user is empty or the port is 0.
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
        Ok(Self::with_endpoint(
            Endpoint {
                tls: false,
                host: bare_host(host.trim()).to_owned(),
                port,
                user: user.to_owned(),
                password,
                vhost: if vhost.is_empty() {
                    "/".into()
                } else {
                    vhost.into()
                },
                query: AMQPQueryString::default(),
            },
            instance_id.into(),
        ))
    }

    fn with_endpoint(endpoint: Endpoint, instance_id: String) -> Self {
        Self {
            endpoint,
            exchange: DEFAULT_EXCHANGE.into(),
            instance_id,
            watched_directory: String::new(),
            window: DEFAULT_WINDOW,
            backoff_initial: DEFAULT_BACKOFF_INITIAL,
            backoff_max: DEFAULT_BACKOFF_MAX,
        }
    }

    /// The broker URL with the password replaced by `***`, for logs and errors.
    pub fn redacted(&self) -> String {
        let e = &self.endpoint;
        let host = if e.host.contains(':') {
            format!("[{}]", e.host)
        } else {
            e.host.clone()
        };
        format!(
            "{}://{}:***@{}:{}/{}",
            if e.tls { "amqps" } else { "amqp" },
            utf8_percent_encode(&e.user, NON_ALPHANUMERIC),
            host,
            e.port,
            utf8_percent_encode(&e.vhost, NON_ALPHANUMERIC),
        )
    }

    /// Broker host; an IPv6 address without its URL brackets (`::1`), as name resolution takes
    /// it.
    pub fn host(&self) -> &str {
        &self.endpoint.host
    }

    /// Broker port.
    pub fn port(&self) -> u16 {
        self.endpoint.port
    }

    /// User name.
    pub fn user(&self) -> &str {
        &self.endpoint.user
    }

    /// Virtual host.
    pub fn vhost(&self) -> &str {
        &self.endpoint.vhost
    }

    /// The AMQP connection name, `file_watcher_{instance_id}`.
    pub fn connection_name(&self) -> String {
        format!("file_watcher_{}", self.instance_id)
    }

    /// What lapin connects to. Built by hand rather than by lapin's URL parser, which drops IP
    /// hosts and echoes the whole URL (password included) in its errors.
    pub(crate) fn uri(&self) -> AMQPUri {
        let e = &self.endpoint;
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
        let uri = c.uri();
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
        assert_eq!(c.uri().scheme, AMQPScheme::AMQPS);
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
            assert_eq!(c.uri().authority.host, "::1");
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
}
