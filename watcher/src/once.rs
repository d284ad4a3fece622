//! `--once`'s promise: exit 0 only when every event of the scan was confirmed.
//!
//! A batch job (cron, a Kubernetes Job) records the exit code and nothing else. So a run that
//! could not deliver (broker unreachable, no queue for a routing key, a broker alarm) must not
//! wait forever, and must not end in success: a watchdog stops it once the broker has confirmed
//! nothing for `ONCE_TIMEOUT` while events wait, and [`verdict`] turns the ending into an
//! [`Incomplete`] error that says how many events were not confirmed and why. Nothing of that
//! is lost: what was not confirmed is not in the state store, so the next run reports it.

use std::time::Duration;

use publisher::AmqpStatus;

/// A `--once` run that did not confirm everything it found (exit 1).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", describe(self))]
pub struct Incomplete {
    /// The scan was reported to the end; only confirmations are missing.
    pub finished: bool,
    /// Events handed to the sink and never confirmed.
    pub unconfirmed: u64,
    /// Why the run ended early, one clause.
    pub why: String,
}

fn describe(i: &Incomplete) -> String {
    let events = match i.unconfirmed {
        1 => "1 event".to_owned(),
        n => format!("{n} events"),
    };
    if i.finished {
        format!(
            "--once: {events} not confirmed ({}); the next run sends them again",
            i.why
        )
    } else {
        format!(
            "--once stopped before the end ({}); {events} not confirmed; the next run reports \
             everything this one did not",
            i.why
        )
    }
}

/// Why a run ended, as far as `lib::run` knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// The engine ran to its end (or was stopped by a signal, when `finished` is false).
    Ran {
        /// The engine's verdict: the scan was reported to the end.
        finished: bool,
        /// Events not confirmed.
        unconfirmed: u64,
    },
    /// The watchdog stopped the run: the broker confirmed nothing for `ONCE_TIMEOUT`.
    Stalled {
        /// Everything the scan will report had been handed to the sink.
        scanned: bool,
        /// Events not confirmed.
        unconfirmed: u64,
        /// What the broker's state says.
        why: String,
    },
}

/// Exit 0, or the [`Incomplete`] error, for a `--once` run that ended this way.
///
/// # Errors
/// [`Incomplete`] unless the scan finished and every event was confirmed.
pub fn verdict(ending: Ending) -> Result<(), Incomplete> {
    match ending {
        Ending::Ran {
            finished: true,
            unconfirmed: 0,
        } => Ok(()),
        Ending::Ran {
            finished: true,
            unconfirmed,
        } => Err(Incomplete {
            finished: true,
            unconfirmed,
            why: "the shutdown deadline passed before their confirmations".to_owned(),
        }),
        Ending::Ran {
            finished: false,
            unconfirmed,
        } => Err(Incomplete {
            finished: false,
            unconfirmed,
            why: "stopped by SIGTERM or SIGINT".to_owned(),
        }),
        Ending::Stalled {
            scanned,
            unconfirmed,
            why,
        } => Err(Incomplete {
            finished: scanned,
            unconfirmed,
            why,
        }),
    }
}

/// Why the broker confirmed nothing for `waited`, from the publisher's state: held unroutable
/// messages first (the most specific), then no connection, then an alarm.
pub fn stall_reason(
    status: &AmqpStatus,
    unroutable: &[(&str, u64)],
    broker: &str,
    waited: Duration,
) -> String {
    let waited = humantime::format_duration(waited);
    if let Some(keys) = unroutable_keys(unroutable) {
        format!(
            "unroutable: no queue bound for {keys} for {waited} (bind a queue to the exchange, or \
             set QUEUE to have one declared)"
        )
    } else if !status.connected {
        format!(
            "RabbitMQ unreachable at {broker} for {waited}, {} failed connection attempts; the \
             log says why",
            status.connect_failures
        )
    } else if status.blocked {
        format!(
            "RabbitMQ has blocked the connection (memory or disk alarm) for {waited}; clear the \
             alarm"
        )
    } else {
        format!("RabbitMQ confirmed nothing for {waited}")
    }
}

/// `file.created (3 held), file.deleted (1 held)`, or `None` when nothing is held.
pub fn unroutable_keys(unroutable: &[(&str, u64)]) -> Option<String> {
    let held: Vec<String> = unroutable
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(k, n)| format!("{k} ({n} held)"))
        .collect();
    (!held.is_empty()).then(|| held.join(", "))
}

/// The watchdog's decision: stalled when events wait on the broker and none was confirmed for
/// `timeout`. `quiet_since` is when the last confirmation came, or when the wait began.
pub fn stalled(waiting: bool, quiet_for: Duration, timeout: Duration) -> bool {
    waiting && quiet_for >= timeout
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts() {
        let ran = |finished, unconfirmed| Ending::Ran {
            finished,
            unconfirmed,
        };
        let cases: Vec<(Ending, Option<&[&str]>)> = vec![
            (ran(true, 0), None),
            (
                ran(true, 3),
                Some(&["3 events not confirmed", "shutdown deadline", "next run"]),
            ),
            (
                ran(false, 1),
                Some(&["stopped before the end", "SIGTERM", "1 event not"]),
            ),
            (
                ran(false, 0),
                Some(&["stopped before the end", "0 events not"]),
            ),
            (
                Ending::Stalled {
                    scanned: false,
                    unconfirmed: 7,
                    why: "RabbitMQ unreachable".into(),
                },
                Some(&[
                    "stopped before the end (RabbitMQ unreachable",
                    "7 events not",
                ]),
            ),
            (
                Ending::Stalled {
                    scanned: true,
                    unconfirmed: 2,
                    why: "unroutable".into(),
                },
                Some(&[
                    "--once: 2 events not confirmed (unroutable)",
                    "sends them again",
                ]),
            ),
        ];
        for (ending, want) in cases {
            let got = verdict(ending.clone());
            match (got, want) {
                (Ok(()), None) => {}
                (Err(e), Some(parts)) => {
                    let text = e.to_string();
                    assert!(!text.contains('\n'), "{text}");
                    for p in parts {
                        assert!(text.contains(p), "{ending:?}: {text:?} lacks {p:?}");
                    }
                }
                (got, want) => panic!("{ending:?}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn stall_reasons() {
        let status = |connected, blocked| {
            let mut s = AmqpStatus::default();
            s.connected = connected;
            s.blocked = blocked;
            s.connect_failures = 4;
            s
        };
        let held: &[(&str, u64)] = &[("file.created", 3), ("file.deleted", 0)];
        let w = Duration::from_secs(60);
        type Held<'a> = &'a [(&'a str, u64)];
        let cases: Vec<(AmqpStatus, Held, &[&str])> = vec![
            (
                status(true, false),
                held,
                &["unroutable: no queue bound for file.created (3 held)", "1m"],
            ),
            (
                status(false, false),
                &[],
                &["unreachable at h:5999 for 1m", "4 failed"],
            ),
            (status(true, true), &[], &["blocked"]),
            (status(true, false), &[], &["confirmed nothing for 1m"]),
        ];
        for (st, keys, want) in cases {
            let got = stall_reason(&st, keys, "h:5999", w);
            for p in want {
                assert!(got.contains(p), "{got:?} lacks {p:?}");
            }
            assert!(!got.contains("file.deleted"), "{got}");
        }
    }

    #[test]
    fn stalls_only_while_waiting_past_the_timeout() {
        let t = Duration::from_secs(60);
        let cases = [
            (true, Duration::from_secs(60), true),
            (true, Duration::from_secs(59), false),
            (false, Duration::from_secs(600), false),
        ];
        for (waiting, quiet, want) in cases {
            assert_eq!(stalled(waiting, quiet, t), want, "{waiting} {quiet:?}");
        }
    }
}
