//! How the process ends when something goes wrong: one line per failure, each cause once, an
//! exit code per kind of fix, and no panic that ends in a silent success.

use std::cell::Cell;
use std::panic::AssertUnwindSafe;

use crate::config::ConfigError;
use crate::store::StoreError;

/// Exit code of a setting to fix (also what clap uses for a bad argument).
pub const EXIT_CONFIG: u8 = 2;
/// Exit code of a second live instance with the same INSTANCE_ID (`ON_DUPLICATE=exit`).
pub const EXIT_DUPLICATE: u8 = 3;
/// Exit code of a damaged state store: restarting cannot help, moving the file aside can. Its
/// own code so that a supervisor can stop restarting (systemd's `RestartPreventExitStatus`).
pub const EXIT_STORE_DAMAGED: u8 = 4;
/// Exit code after a panic: Rust's own code for it, kept for any thread's panic.
pub const EXIT_PANIC: u8 = 101;

/// `e` and its causes as one line, `outer: cause: root`, each cause once. Many errors print
/// their source inside their own message as well as returning it as `source()` (thiserror's
/// `"{source}"`, redb's and lapin's errors): anyhow's `{:#}` then says "No space left on device"
/// twice. A cause whose text the line already holds adds nothing, so it is left out.
pub fn one_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if text.is_empty() || line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

/// The store's error in `cause`, bare or inside the engine's (which is transparent, so the
/// chain shows the engine's error in its place).
fn store_error<'a>(cause: &'a (dyn std::error::Error + 'static)) -> Option<&'a StoreError> {
    cause.downcast_ref::<StoreError>().or_else(|| {
        match cause.downcast_ref::<crate::engine::EngineError>() {
            Some(crate::engine::EngineError::Store(s)) => Some(s),
            _ => None,
        }
    })
}

/// The sink's error in `cause`, bare (at start-up) or inside the engine's (while running).
fn sink_error<'a>(
    cause: &'a (dyn std::error::Error + 'static),
) -> Option<&'a publisher::SinkError> {
    cause.downcast_ref::<publisher::SinkError>().or_else(|| {
        match cause.downcast_ref::<crate::engine::EngineError>() {
            Some(crate::engine::EngineError::Sink(s)) => Some(s),
            _ => None,
        }
    })
}

/// The exit code for a failure, from the first cause that decides it.
pub fn exit_code(e: &anyhow::Error) -> u8 {
    for cause in e.chain() {
        if store_error(cause).is_some_and(StoreError::is_damaged) {
            return EXIT_STORE_DAMAGED;
        }
        match sink_error(cause) {
            Some(publisher::SinkError::Duplicate { .. }) => return EXIT_DUPLICATE,
            Some(publisher::SinkError::QueueMismatch { .. }) => return EXIT_CONFIG,
            _ => {}
        }
        // A config error found late (STATE_DIR, INSTANCE_ID, HTTP_ADDR) is still a config error.
        if cause.downcast_ref::<ConfigError>().is_some() {
            return EXIT_CONFIG;
        }
    }
    1
}

/// Whether a failure is best said as its innermost message alone: a duplicate instance, a
/// queue mismatch and a damaged store carry the whole story and the fix in one sentence, which
/// the context around them would only lengthen.
pub fn headline(e: &anyhow::Error) -> Option<String> {
    e.chain().find_map(|cause| {
        if let Some(s) = store_error(cause).filter(|s| s.is_damaged()) {
            return Some(s.to_string());
        }
        match sink_error(cause) {
            Some(s @ publisher::SinkError::Duplicate { .. })
            | Some(s @ publisher::SinkError::QueueMismatch { .. }) => Some(s.to_string()),
            _ => None,
        }
    })
}

thread_local! {
    /// Set while [`catch_panic`] runs on this thread: the hook then leaves the panic to it.
    static CATCHING: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` and turns a panic into `Err(message)`: for calls into code that may panic on bad
/// input rather than return an error (redb on a damaged file), where the caller can say
/// something better than the panic.
///
/// # Errors
/// The panic's message.
pub fn catch_panic<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    let was = CATCHING.replace(true);
    let result = std::panic::catch_unwind(AssertUnwindSafe(f));
    CATCHING.set(was);
    result.map_err(|payload| payload_text(payload.as_ref()))
}

fn payload_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned())
}

/// Makes a panic on any thread end the process with [`EXIT_PANIC`] and one line saying where.
/// Without it, a panic on a blocking thread (a scan, a store commit) or in a spawned task ends
/// only that thread, and the process may go on, or even exit 0, having reported nothing.
/// `RUST_BACKTRACE=1` still prints Rust's own report with the backtrace before the exit.
pub fn install_panic_hook() {
    let rust_report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if CATCHING.get() {
            return;
        }
        let text = payload_text(info.payload());
        let place = info
            .location()
            .map_or_else(String::new, |l| format!(" at {}:{}", l.file(), l.line()));
        let thread = std::thread::current()
            .name()
            .map_or_else(String::new, |n| format!(" on thread {n}"));
        say(&format!(
            "internal error: panicked{thread}{place}: {text}; this is a bug, please report it \
             with this line (RUST_BACKTRACE=1 adds a backtrace); exiting with code {EXIT_PANIC}"
        ));
        if std::env::var_os("RUST_BACKTRACE").is_some_and(|v| v != "0") {
            rust_report(info);
        }
        std::process::exit(i32::from(EXIT_PANIC));
    }));
}

/// Says `message` as the last line on stderr, `file-watcher: …`, whatever LOG_FORMAT is: the
/// one line a person, a cron mail or `kubectl logs --previous` reads to learn why the process
/// ended. It is not logged as well, so that it is said once.
pub fn say(message: &str) {
    eprintln!("file-watcher: {message}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("state store /s/state.redb: {source}")]
    struct Repeats {
        source: std::io::Error,
    }

    #[test]
    fn one_line_says_each_cause_once() {
        let enospc = || std::io::Error::from_raw_os_error(28);
        let cases: Vec<(anyhow::Error, &str)> = vec![
            (
                anyhow::Error::new(Repeats { source: enospc() }).context("cannot commit"),
                "cannot commit: state store /s/state.redb: No space left on device (os error 28)",
            ),
            (
                anyhow::Error::new(enospc()).context("writing /s/x"),
                "writing /s/x: No space left on device (os error 28)",
            ),
            (anyhow::anyhow!("alone"), "alone"),
            (
                anyhow::anyhow!("root").context("middle").context("outer"),
                "outer: middle: root",
            ),
        ];
        for (e, want) in cases {
            assert_eq!(one_line(&e), want);
        }
    }

    #[test]
    fn exit_codes_follow_the_fix() {
        let damaged = || StoreError::Damaged {
            path: "/s/state.redb".into(),
            detail: "checksum".into(),
        };
        let config = || ConfigError {
            setting: "HTTP_ADDR",
            problem: "in use".into(),
        };
        let cases: Vec<(anyhow::Error, u8)> = vec![
            (anyhow::Error::new(damaged()).context("scan"), 4),
            (
                anyhow::Error::new(crate::engine::EngineError::Store(damaged())),
                4,
            ),
            (anyhow::Error::new(config()).context("start"), 2),
            (
                anyhow::Error::new(publisher::SinkError::InvalidConfig("x".into())),
                1,
            ),
            (anyhow::anyhow!("anything else"), 1),
        ];
        for (e, want) in cases {
            assert_eq!(exit_code(&e), want, "{e:#}");
        }
        let h = headline(&anyhow::Error::new(damaged()).context("cannot open")).unwrap();
        assert!(h.starts_with("state store /s/state.redb is damaged"), "{h}");
        assert!(headline(&anyhow::anyhow!("x")).is_none());
    }

    /// The hook ends the whole process, so it is tried in a child: this test binary again,
    /// running only this test, with a marker that makes it the child.
    #[test]
    fn a_panic_on_any_thread_ends_the_process_with_101_and_one_line() {
        const NAME: &str =
            "failure::tests::a_panic_on_any_thread_ends_the_process_with_101_and_one_line";
        if std::env::var_os("FW_PANIC_CHILD").is_some() {
            install_panic_hook();
            let worker = std::thread::Builder::new()
                .name("scan".into())
                .spawn(|| panic!("boom"))
                .unwrap();
            let _ = worker.join();
            // Only reached if the hook let the process go on: the parent sees exit 0.
            std::process::exit(0);
        }
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([NAME, "--exact", "--nocapture", "--test-threads=1"])
            .env("FW_PANIC_CHILD", "1")
            .env_remove("RUST_BACKTRACE")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(i32::from(EXIT_PANIC)), "{err}");
        let said: Vec<_> = err
            .lines()
            .filter(|l| l.starts_with("file-watcher: "))
            .collect();
        assert_eq!(said.len(), 1, "{err}");
        for part in [
            "internal error: panicked on thread scan at",
            "failure.rs",
            ": boom;",
        ] {
            assert!(said[0].contains(part), "{:?} lacks {part:?}", said[0]);
        }
        assert!(!err.contains("stack backtrace"), "{err}");
    }

    #[test]
    fn catch_panic_returns_the_message_and_the_value() {
        assert_eq!(catch_panic(|| 7), Ok(7));
        let got = catch_panic(|| -> u8 { panic!("redb: unreachable") });
        assert_eq!(got, Err("redb: unreachable".to_owned()));
        assert!(!CATCHING.get(), "the flag is restored");
    }
}
