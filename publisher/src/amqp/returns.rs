//! Returned messages given back to their own publishes.
//!
//! RabbitMQ sends `basic.return` for an unroutable `mandatory` message before that message's
//! `basic.ack`, but the return names no delivery tag, so nothing on the wire says which publish
//! it belongs to. lapin (4.12) hands each return it has queued to the next confirmation it
//! resolves, and one `basic.ack` with `multiple` resolves many confirmations at once, in
//! hash-map order. A return can thus come back attached to another message. The message it
//! belongs to then looks delivered: a held message would be confirmed to its caller although no
//! queue took it (lost), and a routable one would be held and published twice. CI caught it once,
//! in `held_messages_wait_for_a_binding_without_blocking_other_routing_keys`.
//!
//! Every message we publish carries its `message_id`, and a return carries the message's
//! properties. The [`Ledger`] gives each return to the publish with its `message_id`, whichever
//! confirmation carried it. It answers a publish only when every confirmation that could carry
//! its return has been looked at: those lapin resolved with it, in one acknowledgement. The
//! writer (`connection::write_publishes`) waits for lapin to finish that acknowledgement, then
//! [seals](Ledger::seal) what it has seen with the last publish sent by then; a sealed publish
//! is answered once every publish up to that one has reached the writer's confirm half (a
//! publish still on its way there may have been resolved in the same acknowledgement).
//!
//! The common case (no return at all) costs a slot in a ring per publish: no allocation, no
//! hashing beyond the id's. A return (rare: only while no queue is bound) is matched by a scan
//! of the publishes in flight, at most the window.

use std::collections::VecDeque;
use std::hash::{DefaultHasher, Hash, Hasher};

/// The key of a `message_id`. Two different ids in flight at once with one key (a 64-bit
/// collision among at most a window of ids) would only swap two returns between themselves.
pub(crate) fn id_key(id: &str) -> u64 {
    let mut h = DefaultHasher::new();
    id.hash(&mut h);
    h.finish()
}

/// Where a return went.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Delivered<R> {
    /// To the publish it belongs to (or to the one that carried it, when it has no id).
    Matched,
    /// Nobody in flight has its `message_id`: its message was answered already. It cannot
    /// happen while RabbitMQ sends a return before its message's ack; the caller logs it.
    Stray(R),
}

/// The publishes in flight on one channel, by sequence number (the order they were sent,
/// consecutive).
///
/// `T` is what answers a caller, `O` a confirmation without its return, `R` a return.
#[derive(Debug)]
pub(crate) struct Ledger<T, O, R> {
    /// Publishes `base`, `base + 1`, …; answered and withdrawn ones leave from the front.
    slots: VecDeque<Slot<T, O, R>>,
    base: u64,
    /// Resolved, not sealed yet.
    unsealed: Vec<u64>,
    /// The last publish registered with [`Ledger::sent`].
    last_sent: u64,
    /// Every publish up to this one has reached the confirm half, or was withdrawn.
    submitted: u64,
}

#[derive(Debug)]
struct Slot<T, O, R> {
    id: Option<u64>,
    /// `None` once withdrawn.
    reply: Option<T>,
    outcome: Option<O>,
    returned: Option<R>,
    /// Sealed: answerable once every publish up to this one is submitted.
    sealed: Option<u64>,
}

impl<T, O, R> Default for Ledger<T, O, R> {
    fn default() -> Self {
        Self {
            slots: VecDeque::new(),
            base: 1,
            unsealed: Vec::new(),
            last_sent: 0,
            submitted: 0,
        }
    }
}

impl<T, O, R> Ledger<T, O, R> {
    fn slot(&mut self, seq: u64) -> Option<&mut Slot<T, O, R>> {
        let i = usize::try_from(seq.checked_sub(self.base)?).ok()?;
        self.slots.get_mut(i)
    }

    /// A publish about to be sent as number `seq` (one more than the last), with the key of
    /// its `message_id`. Registered before its frames leave: its return may come back on
    /// another message's confirmation before `basic_publish` returns.
    pub(crate) fn sent(&mut self, seq: u64, id: Option<u64>, reply: T) {
        if self.slots.is_empty() {
            self.base = seq;
        }
        debug_assert_eq!(seq, self.base + self.slots.len() as u64);
        self.last_sent = seq;
        self.slots.push_back(Slot {
            id,
            reply: Some(reply),
            outcome: None,
            returned: None,
            sealed: None,
        });
    }

    /// Takes publish `seq` back unanswered: it never reached the broker.
    pub(crate) fn withdraw(&mut self, seq: u64) -> Option<T> {
        self.slot(seq)?.reply.take()
    }

    /// Publish `seq` reached the confirm half (or was withdrawn); publishes arrive in order.
    pub(crate) fn submitted(&mut self, seq: u64) {
        self.submitted = self.submitted.max(seq);
    }

    /// Publish `seq` is confirmed (or failed) with `outcome`; `returned` is the return lapin
    /// attached to it, with the key of that return's `message_id`.
    pub(crate) fn resolved(
        &mut self,
        seq: u64,
        outcome: O,
        returned: Option<(Option<u64>, R)>,
    ) -> Delivered<R> {
        if let Some(slot) = self.slot(seq) {
            slot.outcome = Some(outcome);
            self.unsealed.push(seq);
        }
        let Some((id, message)) = returned else {
            return Delivered::Matched;
        };
        let owner = match id {
            // Returns come in publish order: the oldest publish of that id without one.
            Some(id) => self
                .slots
                .iter_mut()
                .find(|s| s.reply.is_some() && s.id == Some(id) && s.returned.is_none()),
            // Without an id, lapin's guess is all there is.
            None => self
                .slot(seq)
                .filter(|s| s.reply.is_some() && s.returned.is_none()),
        };
        match owner {
            Some(slot) => {
                slot.returned = Some(message);
                Delivered::Matched
            }
            None => Delivered::Stray(message),
        }
    }

    /// Whether some resolved publish waits to be sealed.
    pub(crate) fn has_unsealed(&self) -> bool {
        !self.unsealed.is_empty()
    }

    /// Call once lapin has finished every acknowledgement whose confirmations went through
    /// [`Ledger::resolved`] so far: each of those publishes is answered once every publish sent
    /// by now has been submitted (any of them could carry its return).
    pub(crate) fn seal(&mut self) {
        let upto = self.last_sent;
        for seq in std::mem::take(&mut self.unsealed) {
            if let Some(slot) = self.slot(seq) {
                slot.sealed = Some(upto);
            }
        }
    }

    /// Moves into `out`, in publish order, every sealed publish whose possible carriers have
    /// all been seen, with its outcome and the return that belongs to it. A publish waits for
    /// the ones before it.
    pub(crate) fn answers(&mut self, out: &mut Vec<(T, O, Option<R>)>) {
        while let Some(front) = self.slots.front() {
            let due = front.reply.is_none() || front.sealed.is_some_and(|u| u <= self.submitted);
            if !due {
                break;
            }
            let Some(slot) = self.slots.pop_front() else {
                break;
            };
            self.base += 1;
            if let (Some(reply), Some(outcome)) = (slot.reply, slot.outcome) {
                out.push((reply, outcome, slot.returned));
            }
        }
    }

    /// Publishes sent and not yet answered or withdrawn.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.slots.iter().filter(|s| s.reply.is_some()).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One step of a channel's life.
    #[derive(Clone, Copy)]
    enum Step {
        /// A publish registered and at once submitted to the confirm half.
        Sent(u64, &'static str),
        /// A publish registered, still inside `basic_publish`.
        Pending(u64, &'static str),
        /// That publish reached the confirm half.
        Submit(u64),
        /// A confirmation resolved, with the return (by `message_id`) lapin attached to it.
        Resolved(u64, Option<&'static str>),
        /// lapin is done with its acknowledgement: seal, and take the answers due.
        Answer,
    }
    use Step::{Answer, Pending, Resolved, Sent, Submit};

    /// Replays `steps`; gives every answer as (message_id, the return's message_id) in the
    /// order answered, and the strays.
    fn replay(steps: &[Step]) -> (Vec<(String, Option<String>)>, Vec<String>) {
        let mut ledger: Ledger<String, (), String> = Ledger::default();
        let (mut answers, mut strays) = (Vec::new(), Vec::new());
        for step in steps {
            match *step {
                Sent(seq, id) => {
                    ledger.sent(seq, Some(id_key(id)), id.to_owned());
                    ledger.submitted(seq);
                }
                Pending(seq, id) => ledger.sent(seq, Some(id_key(id)), id.to_owned()),
                Submit(seq) => ledger.submitted(seq),
                Resolved(seq, returned) => {
                    let returned = returned.map(|id| (Some(id_key(id)), id.to_owned()));
                    if let Delivered::Stray(r) = ledger.resolved(seq, (), returned) {
                        strays.push(r);
                    }
                }
                Answer => {
                    ledger.seal();
                    let mut out = Vec::new();
                    ledger.answers(&mut out);
                    answers.extend(out.into_iter().map(|(t, (), r)| (t, r)));
                }
            }
        }
        (answers, strays)
    }

    fn answered(pairs: &[(&str, Option<&str>)]) -> Vec<(String, Option<String>)> {
        pairs
            .iter()
            .map(|(a, r)| ((*a).to_owned(), r.map(str::to_owned)))
            .collect()
    }

    #[test]
    fn each_return_reaches_its_own_publish() {
        type Case = (
            &'static str,
            Vec<Step>,
            Vec<(&'static str, Option<&'static str>)>,
        );
        let cases: &[Case] = &[
            (
                "single acks, returns where lapin put them",
                vec![
                    Sent(1, "a"),
                    Sent(2, "b"),
                    Resolved(1, Some("a")),
                    Answer,
                    Resolved(2, None),
                    Answer,
                ],
                vec![("a", Some("a")), ("b", None)],
            ),
            (
                // One ack with `multiple` for 1..=3, resolved in hash-map order: b's return
                // rode on a, a's on c.
                "a multiple ack swaps returns",
                vec![
                    Sent(1, "a"),
                    Sent(2, "b"),
                    Sent(3, "c"),
                    Resolved(3, Some("a")),
                    Resolved(1, Some("b")),
                    Resolved(2, None),
                    Answer,
                ],
                vec![("a", Some("a")), ("b", Some("b")), ("c", None)],
            ),
            (
                // The held message's return rode on a routable message acked earlier (an ack
                // for it came between the return and the held message's own ack).
                "a return rides on an earlier ack",
                vec![
                    Sent(1, "routable"),
                    Sent(2, "held"),
                    Resolved(1, Some("held")),
                    Answer,
                    Resolved(2, None),
                    Answer,
                ],
                vec![("routable", None), ("held", Some("held"))],
            ),
            (
                // b was resolved in the same ack as a, and carries a's return, but reached the
                // confirm half only after a was resolved: a waits for it.
                "a return rides on a publish still on its way",
                vec![
                    Sent(1, "a"),
                    Pending(2, "b"),
                    Resolved(1, None),
                    Answer,
                    Submit(2),
                    Resolved(2, Some("a")),
                    Answer,
                ],
                vec![("a", Some("a")), ("b", None)],
            ),
            (
                "a publish sent after the seal holds nothing up",
                vec![
                    Sent(1, "a"),
                    Resolved(1, None),
                    Answer,
                    Pending(2, "b"),
                    Answer,
                ],
                vec![("a", None)],
            ),
            (
                // Answers go in publish order: b waits for a.
                "nothing answered before it and those before it are resolved",
                vec![
                    Sent(1, "a"),
                    Sent(2, "b"),
                    Resolved(2, None),
                    Answer,
                    Resolved(1, None),
                    Answer,
                ],
                vec![("a", None), ("b", None)],
            ),
            (
                // The same event twice in flight (the id is derived from the event): each
                // return goes to the oldest without one, as returns come in publish order.
                "one id twice in flight",
                vec![
                    Sent(1, "a"),
                    Sent(2, "a"),
                    Sent(3, "b"),
                    Resolved(3, Some("a")),
                    Resolved(2, Some("a")),
                    Resolved(1, None),
                    Answer,
                ],
                vec![("a", Some("a")), ("a", Some("a")), ("b", None)],
            ),
            (
                "an id used again after its answer is a new publish",
                vec![
                    Sent(1, "a"),
                    Resolved(1, Some("a")),
                    Answer,
                    Sent(2, "a"),
                    Resolved(2, None),
                    Answer,
                ],
                vec![("a", Some("a")), ("a", None)],
            ),
        ];
        for (name, steps, want) in cases {
            let (got, strays) = replay(steps);
            assert_eq!(got, answered(want), "{name}");
            assert!(strays.is_empty(), "{name}: {strays:?}");
        }
    }

    #[test]
    fn a_return_for_a_message_already_answered_is_a_stray() {
        let (got, strays) = replay(&[
            Sent(1, "a"),
            Sent(2, "b"),
            Resolved(1, None),
            Answer,
            Resolved(2, Some("a")),
            Answer,
        ]);
        assert_eq!(got, answered(&[("a", None), ("b", None)]));
        assert_eq!(strays, ["a"]);
    }

    #[test]
    fn a_return_without_an_id_stays_where_lapin_put_it() {
        let mut ledger: Ledger<&str, (), &str> = Ledger::default();
        ledger.sent(1, None, "a");
        ledger.sent(2, None, "b");
        ledger.submitted(2);
        assert_eq!(
            ledger.resolved(2, (), Some((None, "ret"))),
            Delivered::Matched
        );
        ledger.resolved(1, (), None);
        ledger.seal();
        let mut got = Vec::new();
        ledger.answers(&mut got);
        assert_eq!(got, [("a", (), None), ("b", (), Some("ret"))]);
        assert_eq!(ledger.len(), 0);
    }
}
