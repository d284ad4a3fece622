//! The claim of the instance's id: an exclusive queue named after `INSTANCE_ID`, which one live
//! connection owns cluster-wide and which vanishes with it. A fresh connection takes the claim
//! before anything is published on it; while another connection holds it, this one stands by
//! and tries again ([`OnDuplicate::Standby`]), or stops for good ([`OnDuplicate::Exit`]).
//!
//! What an answer of the broker means is [`judge`], a function of plain values; [`hold_claim`]
//! only asks, waits and carries the answer out.

use std::sync::Arc;
use std::time::Duration;

use tracing::{info, warn};

use super::config::{claim_queue, OnDuplicate};
use super::connection::Link;
use super::publisher::{lock, AmqpPublisher, Shared};
use crate::error::SinkError;

/// How often a standby tries to take the claim of its `INSTANCE_ID`: the bound on how long a
/// takeover takes once the active instance's connection is gone.
pub const STANDBY_RETRY: Duration = Duration::from_secs(2);

/// How holding the claim on a fresh connection ended.
#[derive(Debug)]
pub(super) enum Claim {
    /// This connection holds it: go on and publish.
    Held,
    /// The cancel token fired while standing by.
    Cancelled,
    /// Stop for good: a duplicate in `exit` mode, or a refused declare.
    Fatal(SinkError),
    /// The connection failed while claiming or standing by.
    Lost(String),
}

/// What one answer to a claim attempt means.
#[derive(Debug)]
enum Answer {
    /// This connection holds the claim now; `took_over` when it stood by first.
    Held { took_over: bool },
    /// Another live connection holds it, and `exit` mode stops for good.
    Duplicate,
    /// Another live connection holds it: wait and ask again. `first` when this connection had
    /// not stood by yet, so the standby is announced once.
    StandBy { first: bool },
    /// The broker refused the declare for another reason: running unclaimed would allow
    /// duplicates, so this is not retried.
    Fatal(SinkError),
    /// The connection failed: reconnect.
    Lost(String),
}

/// What the broker's answer to a claim means, in `mode`, on a connection that has
/// (`waiting`) or has not stood by yet.
fn judge(answer: Result<bool, SinkError>, mode: OnDuplicate, waiting: bool) -> Answer {
    match answer {
        Ok(true) => Answer::Held { took_over: waiting },
        Ok(false) if mode == OnDuplicate::Exit => Answer::Duplicate,
        Ok(false) => Answer::StandBy { first: !waiting },
        Err(error @ SinkError::ClaimRefused { .. }) => Answer::Fatal(error),
        Err(error) => Answer::Lost(error.to_string()),
    }
}

/// Why a standby waits: what `standby_reason` and `/health` show.
fn standby_reason(instance_id: &str) -> String {
    let queue = claim_queue(instance_id);
    format!(
        "standby: another live instance holds INSTANCE_ID {instance_id} (queue {queue}); this one \
         takes over when that one goes away"
    )
}

/// Claims the instance's id on `link`, standing by as long as another connection holds it
/// (in `standby` mode).
pub(super) async fn hold_claim(
    shared: &Shared,
    link: &Link,
    index: usize,
    mode: OnDuplicate,
) -> Claim {
    let config = &shared.config;
    let instance_id = shared.instance_id.as_str();
    let mut waiting = false;
    loop {
        match judge(link.claim(config, index).await, mode, waiting) {
            Answer::Held { took_over } => {
                if took_over {
                    info!(
                        instance_id,
                        address = %link.address,
                        "the other instance released INSTANCE_ID; taking over as the active instance"
                    );
                }
                shared.state.send_modify(|s| s.standby = None);
                return Claim::Held;
            }
            Answer::Duplicate => {
                return Claim::Fatal(SinkError::Duplicate {
                    instance_id: instance_id.to_owned(),
                    queue: claim_queue(instance_id),
                    url: config.redacted_at(index),
                });
            }
            Answer::StandBy { first } => {
                if first {
                    waiting = true;
                    let reason = standby_reason(instance_id);
                    warn!(
                        instance_id,
                        address = %link.address,
                        retry_s = STANDBY_RETRY.as_secs(),
                        "{reason}; not scanning or publishing meanwhile"
                    );
                    shared
                        .state
                        .send_modify(|s| s.standby = Some(Arc::from(reason.as_str())));
                }
                tokio::select! {
                    () = shared.cancel.cancelled() => return Claim::Cancelled,
                    () = tokio::time::sleep(STANDBY_RETRY) => {}
                }
                if !link.connection.status().connected() {
                    return Claim::Lost("the connection closed while standing by".into());
                }
            }
            Answer::Fatal(error) => return Claim::Fatal(error),
            Answer::Lost(reason) => return Claim::Lost(reason),
        }
    }
}

impl AmqpPublisher {
    /// Waits until a connection is in place and holds the claim (when
    /// [`AmqpConfig::claim`](crate::AmqpConfig::claim) is set): the moment an instance may start
    /// scanning. A standby waits here until the active instance goes away.
    ///
    /// It also returns once a whole round of addresses has failed to connect: with no broker,
    /// nothing can be published anyway, and an instance may scan ahead and hold its work back
    /// (bounded) as before. The claim is still taken before the first publish: a duplicate found
    /// once a broker answers stands by, or stops ([`AmqpPublisher::failure`]), before it
    /// publishes anything.
    ///
    /// # Errors
    /// What stopped the publisher for good ([`SinkError::Duplicate`],
    /// [`SinkError::ClaimRefused`]), or [`SinkError::Closed`] after the cancel token fired.
    pub async fn claimed(&self) -> Result<(), SinkError> {
        let mut state = self.shared.state.subscribe();
        let failed = tokio::select! {
            biased;
            () = self.shared.cancel.cancelled() => return Err(SinkError::Closed),
            s = state.wait_for(|s| s.link.is_some() || s.failed || s.unreachable) => {
                s.map_or(true, |s| s.failed)
            }
        };
        if failed {
            return Err(self.take_failure());
        }
        Ok(())
    }

    /// Resolves once the publisher has stopped for good, with the reason: in `exit` mode, a
    /// claim found held by another instance after a reconnect. Pending otherwise (also after
    /// cancel), so it can sit in a `select!` beside the pipeline.
    pub async fn failure(&self) -> SinkError {
        let mut state = self.shared.state.subscribe();
        if state.wait_for(|s| s.failed).await.is_ok() {
            return self.take_failure();
        }
        std::future::pending().await
    }

    fn take_failure(&self) -> SinkError {
        lock(&self.shared.failure)
            .take()
            .unwrap_or(SinkError::Closed)
    }

    /// Why this instance stands by (another one holds its claim), while it does.
    pub fn standby_reason(&self) -> Option<String> {
        self.shared
            .state
            .borrow()
            .standby
            .as_deref()
            .map(str::to_owned)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused() -> SinkError {
        SinkError::ClaimRefused {
            queue: claim_queue("w"),
            url: "amqp://broker".into(),
            reason: "ACCESS_REFUSED".into(),
        }
    }

    /// Every answer in both modes, before and after standing by: (broker's answer, mode,
    /// waiting, what it means as `Debug`).
    #[test]
    fn what_an_answer_to_the_claim_means() {
        use OnDuplicate::{Exit, Standby};
        type Case = (
            fn() -> Result<bool, SinkError>,
            OnDuplicate,
            bool,
            &'static str,
        );
        let cases: [Case; 10] = [
            (|| Ok(true), Standby, false, "Held { took_over: false }"),
            (|| Ok(true), Standby, true, "Held { took_over: true }"),
            (|| Ok(true), Exit, false, "Held { took_over: false }"),
            (|| Ok(false), Exit, false, "Duplicate"),
            (|| Ok(false), Standby, false, "StandBy { first: true }"),
            (|| Ok(false), Standby, true, "StandBy { first: false }"),
            (|| Err(refused()), Standby, false, "Fatal(ClaimRefused"),
            (|| Err(refused()), Exit, true, "Fatal(ClaimRefused"),
            (
                || Err(SinkError::Closed),
                Standby,
                true,
                "Lost(\"sink is shutting down\")",
            ),
            (
                || Err(SinkError::InvalidConfig("x".into())),
                Exit,
                false,
                "Lost(\"invalid AMQP setting: x\")",
            ),
        ];
        for (i, (answer, mode, waiting, want)) in cases.into_iter().enumerate() {
            let got = format!("{:?}", judge(answer(), mode, waiting));
            assert!(got.starts_with(want), "case {i}: {got} is not {want}");
        }
    }

    #[test]
    fn the_standby_reason_names_the_id_and_its_queue() {
        let reason = standby_reason("watcher-music");
        assert!(reason.starts_with("standby: "), "{reason}");
        assert!(reason.contains("INSTANCE_ID watcher-music"), "{reason}");
        assert!(
            reason.contains("file_watcher.claim.watcher-music"),
            "{reason}"
        );
    }
}
