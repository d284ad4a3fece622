//! Which broker address to try next: a pure state machine over the connect order, so the
//! failover choice is tested as data, without brokers or clocks.

/// What the supervisor does after an address failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Next {
    /// Try the next address now: a node died, but another may well be up.
    Now,
    /// Every address failed in a row: wait the backoff delay before the next round, so a
    /// cluster that is down as a whole is not hammered.
    Backoff,
}

/// The connect order (drawn once, shuffled or not) and where in it we are.
#[derive(Debug, Clone)]
pub(crate) struct Rotation {
    /// Indices into the configured addresses, in the order they are tried.
    order: Vec<usize>,
    /// Position in `order` of the address in use or about to be tried.
    pos: usize,
    /// Failures since the last connection that worked.
    failed_in_a_row: usize,
}

impl Rotation {
    /// `order` must not be empty (the config always has an address).
    pub(crate) fn new(order: Vec<usize>) -> Self {
        let order = if order.is_empty() { vec![0] } else { order };
        Self {
            order,
            pos: 0,
            failed_in_a_row: 0,
        }
    }

    /// The address to use now.
    pub(crate) fn current(&self) -> usize {
        self.order.get(self.pos).copied().unwrap_or(0)
    }

    /// The address in use could not be reached, or its connection was lost or stayed blocked:
    /// move to the next one in the order.
    pub(crate) fn failed(&mut self) -> Next {
        self.pos = (self.pos + 1) % self.order.len();
        self.failed_in_a_row += 1;
        if self.failed_in_a_row >= self.order.len() {
            self.failed_in_a_row = 0;
            Next::Backoff
        } else {
            Next::Now
        }
    }

    /// A connection worked: a later failure starts a new round from this address.
    pub(crate) fn connected(&mut self) {
        self.failed_in_a_row = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Steps: `C` connected, `F` failed (with the expected answer). Each row checks the
    /// address in use after every step.
    #[test]
    fn failover_walks_the_order_and_backs_off_after_a_full_round() {
        enum Step {
            C,
            F(Next),
        }
        use Next::{Backoff, Now};
        use Step::{C, F};
        /// (name, connect order, steps with the address in use after each).
        type Case = (&'static str, Vec<usize>, Vec<(Step, usize)>);
        let cases: Vec<Case> = vec![
            (
                "one address: every failure backs off",
                vec![0],
                vec![(F(Backoff), 0), (C, 0), (F(Backoff), 0)],
            ),
            (
                "node in use dies: next one at once",
                vec![2, 0, 1],
                vec![(C, 2), (F(Now), 0), (C, 0), (F(Now), 1)],
            ),
            (
                "all down at start: one round, then backoff",
                vec![1, 2, 0],
                vec![(F(Now), 2), (F(Now), 0), (F(Backoff), 1), (F(Now), 2)],
            ),
            (
                "first address down at start: the second is used",
                vec![0, 1, 2],
                vec![(F(Now), 1), (C, 1)],
            ),
            (
                "a success mid-round starts a new round",
                vec![0, 1],
                vec![(F(Now), 1), (C, 1), (F(Now), 0), (F(Backoff), 1)],
            ),
        ];
        for (name, order, steps) in cases {
            let mut r = Rotation::new(order);
            for (i, (step, want_current)) in steps.into_iter().enumerate() {
                match step {
                    C => r.connected(),
                    F(want) => assert_eq!(r.failed(), want, "{name}: step {i}"),
                }
                assert_eq!(r.current(), want_current, "{name}: step {i}");
            }
        }
    }

    #[test]
    fn an_empty_order_still_has_an_address() {
        let mut r = Rotation::new(Vec::new());
        assert_eq!(r.current(), 0);
        assert_eq!(r.failed(), Next::Backoff);
    }
}
