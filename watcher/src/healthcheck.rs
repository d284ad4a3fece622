//! `file-watcher healthcheck`: asks a running instance's `/health/ready` and turns the answer
//! into an exit code, so container images need no curl (Docker `HEALTHCHECK`, Compose
//! `healthcheck:`, Kubernetes `exec` probes).
//!
//! The request is one `GET` on loopback, written by hand over a `TcpStream`: an HTTP client
//! crate (hyper's client with its connection pool, or reqwest) would add a dozen dependencies to
//! the image for one request per interval, and the server's answer is ours and simple (a
//! `Content-Length` body, then close).

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use clap::Parser;

/// file-watcher healthcheck: exits 0 when the instance at HTTP_ADDR is ready or a healthy
/// standby (ON_DUPLICATE=standby), 1 when it is not or does not answer, printing one line that
/// says why.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "file-watcher healthcheck",
    bin_name = "file-watcher healthcheck",
    version,
    max_term_width = 100
)]
pub struct HealthcheckArgs {
    /// The instance's HTTP address, as it was started with; 0.0.0.0 and [::] are asked on
    /// loopback.
    // The doc comment is the --help text, not markdown: `[::]` is an address, not a link.
    #[allow(rustdoc::broken_intra_doc_links)]
    #[arg(long, env = "HTTP_ADDR", default_value = "0.0.0.0:8080")]
    pub http_addr: String,

    /// How long to wait for the answer, e.g. 3s.
    #[arg(long, default_value = "3s", value_parser = crate::config::parse_duration)]
    pub timeout: Duration,
}

/// Where to ask: the listen address, with an unspecified IP (listen on all) replaced by the
/// loopback address of its family.
///
/// # Errors
/// When HTTP_ADDR is "off" or not an address.
pub fn target(http_addr: &str) -> Result<SocketAddr, String> {
    if http_addr.eq_ignore_ascii_case("off") {
        return Err(
            "HTTP_ADDR is off, so there is no health endpoint to ask; set HTTP_ADDR \
                    (e.g. 0.0.0.0:8080) on the instance and here"
                .into(),
        );
    }
    let mut addr: SocketAddr = http_addr.parse().map_err(|_| {
        format!("HTTP_ADDR {http_addr:?} is not an address like 0.0.0.0:8080 or [::1]:8080")
    })?;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr.ip() {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
        });
    }
    Ok(addr)
}

/// The verdict on a raw HTTP response from `/health/ready`: `Ok` with a summary when ready,
/// `Err` with the reasons the instance gave when not.
///
/// # Errors
/// Not ready, or an answer that is not the ready endpoint's.
pub fn verdict(response: &str) -> Result<String, String> {
    let status: u16 = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| "the answer is not HTTP; is HTTP_ADDR the file-watcher's?".to_owned())?;
    let body = response.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    let json: Option<serde_json::Value> = serde_json::from_str(body).ok();
    match (status, json) {
        (200, Some(v)) if v["ready"] == true => {
            let scan = if v["initial_scan_done"] == true {
                "initial scan done"
            } else {
                "initial scan running"
            };
            Ok(format!("ready ({scan})"))
        }
        (503, Some(v)) => {
            let reasons: Vec<&str> = v["reasons"]
                .as_array()
                .map(|a| a.iter().filter_map(|r| r.as_str()).collect())
                .unwrap_or_default();
            // A standby is healthy: it does what it should, waiting to take over. Anything
            // besides standing by is a problem as usual.
            if v["standby"] == true
                && !reasons.is_empty()
                && reasons.iter().all(|r| r.starts_with("standby"))
            {
                Ok(reasons.join("; "))
            } else if reasons.is_empty() {
                Err("not ready".into())
            } else {
                Err(format!("not ready: {}", reasons.join("; ")))
            }
        }
        (code, _) => Err(format!(
            "unexpected answer from /health/ready: HTTP {code}; is HTTP_ADDR the file-watcher's?"
        )),
    }
}

/// Asks `/health/ready` at `addr` within `timeout`.
///
/// # Errors
/// Nothing listens, no answer in time, or not ready.
pub fn check(addr: SocketAddr, timeout: Duration) -> Result<String, String> {
    let deadline = Instant::now() + timeout;
    let mut stream = TcpStream::connect_timeout(&addr, timeout)
        .map_err(|e| format!("nothing answers at {addr} ({e}); is file-watcher running?"))?;
    let io = |e: std::io::Error| format!("no answer from {addr} within {timeout:?} ({e})");
    stream.set_write_timeout(Some(timeout)).map_err(io)?;
    write!(
        stream,
        "GET /health/ready HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .map_err(io)?;
    let mut response = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!("no answer from {addr} within {timeout:?}"));
        }
        stream.set_read_timeout(Some(left)).map_err(io)?;
        match stream.read(&mut chunk).map_err(io)? {
            0 => break,
            n => response.extend_from_slice(&chunk[..n]),
        }
        // The body is a few hundred bytes; anything this large is not our endpoint.
        if response.len() > 1 << 20 {
            return Err(format!(
                "the answer from {addr} is too large to be /health/ready"
            ));
        }
    }
    verdict(&String::from_utf8_lossy(&response))
}

/// Runs the subcommand: prints one line and returns the exit code (0 ready, 1 not, 2 bad
/// arguments).
pub fn main<I, T>(args: I) -> u8
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let args = match HealthcheckArgs::try_parse_from(args) {
        Ok(a) => a,
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            return 0;
        }
        Err(e) => {
            let _ = e.print();
            return 2;
        }
    };
    let addr = match target(&args.http_addr) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("file-watcher healthcheck: {e}");
            return 2;
        }
    };
    match check(addr, args.timeout) {
        Ok(summary) => {
            println!("file-watcher healthcheck: {summary}");
            0
        }
        Err(why) => {
            println!("file-watcher healthcheck: {why}");
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        let cases = [
            ("0.0.0.0:8080", Ok("127.0.0.1:8080")),
            ("[::]:9000", Ok("[::1]:9000")),
            ("10.1.2.3:8081", Ok("10.1.2.3:8081")),
            ("[::1]:8080", Ok("[::1]:8080")),
            ("off", Err("HTTP_ADDR is off")),
            ("localhost", Err("not an address")),
        ];
        for (input, want) in cases {
            match (target(input), want) {
                (Ok(got), Ok(w)) => assert_eq!(got.to_string(), w, "{input}"),
                (Err(got), Err(w)) => assert!(got.contains(w), "{input}: {got}"),
                (got, _) => panic!("{input}: {got:?}"),
            }
        }
    }

    #[test]
    fn verdicts() {
        let http = |code: &str, body: &str| {
            format!("HTTP/1.1 {code}\r\ncontent-type: application/json\r\n\r\n{body}")
        };
        let cases = [
            (
                http("200 OK", r#"{"ready":true,"initial_scan_done":false}"#),
                Ok("ready (initial scan running)"),
            ),
            (
                http("200 OK", r#"{"ready":true,"initial_scan_done":true}"#),
                Ok("ready (initial scan done)"),
            ),
            (
                http(
                    "503 Service Unavailable",
                    r#"{"ready":false,"reasons":["not connected to RabbitMQ","DATA_DIR /d is missing"]}"#,
                ),
                Err("not ready: not connected to RabbitMQ; DATA_DIR /d is missing"),
            ),
            (
                http(
                    "503 Service Unavailable",
                    r#"{"ready":false,"standby":true,"reasons":["standby: STATE_DIR /s is in use"]}"#,
                ),
                Ok("standby: STATE_DIR /s is in use"),
            ),
            // Standing by does not hide another problem.
            (
                http(
                    "503 Service Unavailable",
                    r#"{"ready":false,"standby":true,"reasons":["standby: claim held","DATA_DIR /d is missing"]}"#,
                ),
                Err("not ready: standby: claim held; DATA_DIR /d is missing"),
            ),
            (
                http(
                    "503 Service Unavailable",
                    r#"{"ready":false,"standby":false,"reasons":["standby-ish words"]}"#,
                ),
                Err("not ready: standby-ish words"),
            ),
            (http("404 Not Found", "nope"), Err("HTTP 404")),
            ("SSH-2.0-OpenSSH".to_owned(), Err("not HTTP")),
        ];
        for (response, want) in cases {
            match (verdict(&response), want) {
                (Ok(got), Ok(w)) => assert_eq!(got, w),
                (Err(got), Err(w)) => assert!(got.contains(w), "{got}"),
                (got, _) => panic!("{response}: {got:?}"),
            }
        }
    }

    #[test]
    fn nothing_listening_is_not_ready() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let err = check(addr, Duration::from_secs(1)).unwrap_err();
        assert!(err.contains("nothing answers"), "{err}");
    }
}
