//! Reconnect delays: exponential, capped, with jitter so that many instances restarted together
//! do not hammer a recovering broker in lockstep. A pure state machine: the random draw is a
//! parameter, so tests need neither sleeps nor a seeded generator.

use std::time::Duration;

/// Exponential backoff with "equal jitter": each delay is drawn from `[d/2, d]`, where `d`
/// doubles from `initial` up to `max`.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    initial: Duration,
    max: Duration,
    /// The `d` of the next failed attempt.
    next: Duration,
}

impl Backoff {
    pub(crate) fn new(initial: Duration, max: Duration) -> Self {
        let initial = initial.max(Duration::from_millis(1));
        let max = max.max(initial);
        Self {
            initial,
            max,
            next: initial,
        }
    }

    /// The delay after one more failed attempt; `unit` is a random draw in `[0, 1)`.
    pub(crate) fn next_delay(&mut self, unit: f64) -> Duration {
        let d = self.next;
        self.next = (d * 2).min(self.max);
        jitter(d, unit)
    }

    /// The slow pace, for failures that retrying soon cannot fix (wrong credentials).
    pub(crate) fn slow_delay(&mut self, unit: f64) -> Duration {
        self.next = self.max;
        jitter(self.max, unit)
    }

    /// A connection worked: the next failure starts from `initial` again.
    pub(crate) fn reset(&mut self) {
        self.next = self.initial;
    }
}

fn jitter(d: Duration, unit: f64) -> Duration {
    let unit = if unit.is_finite() {
        unit.clamp(0.0, 1.0)
    } else {
        0.0
    };
    d / 2 + d.mul_f64(unit / 2.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn doubles_up_to_the_cap_within_jitter_bounds() {
        let mut b = Backoff::new(100 * MS, 1000 * MS);
        // (draw, expected) with draws at both ends of the range.
        let cases = [
            (0.0, 50 * MS),
            (1.0, 200 * MS),
            (0.0, 200 * MS),
            (1.0, 800 * MS),
            (1.0, 1000 * MS),
            (0.0, 500 * MS),
            (0.5, 750 * MS),
        ];
        for (i, (unit, want)) in cases.into_iter().enumerate() {
            assert_eq!(b.next_delay(unit), want, "attempt {i}");
        }
    }

    #[test]
    fn reset_starts_over_and_slow_stays_at_the_cap() {
        let mut b = Backoff::new(100 * MS, 1000 * MS);
        for _ in 0..10 {
            b.next_delay(0.3);
        }
        b.reset();
        assert_eq!(b.next_delay(1.0), 100 * MS);
        assert_eq!(b.slow_delay(1.0), 1000 * MS);
        assert_eq!(b.slow_delay(0.0), 500 * MS);
        assert_eq!(b.next_delay(1.0), 1000 * MS);
    }

    #[test]
    fn odd_inputs_are_tamed() {
        let mut b = Backoff::new(Duration::ZERO, Duration::ZERO);
        assert_eq!(b.next_delay(f64::NAN), Duration::from_micros(500));
        let mut b = Backoff::new(10 * MS, 20 * MS);
        assert_eq!(b.next_delay(7.0), 10 * MS);
    }
}
