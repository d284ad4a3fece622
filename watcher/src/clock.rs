//! The pipeline's clock: the one place its parts learn what time it is.
//!
//! Every timing rule of the pipeline (settle delays, the limbo's holds, the scan's pruning
//! interval, the root cache, progress lines, the commit age) compares times taken from here, so a
//! test can drive them with [`Clock::manual`] and [`Clock::advance`] instead of sleeping. In the
//! service the clock is [`Clock::system`], which reads the real clocks and costs nothing more.
//!
//! Two readings are kept together because the rules use both: a monotonic [`Instant`] for
//! intervals, and the wall-clock [`SystemTime`] to compare with file mtimes.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// Where `now` comes from: the real clocks, or a hand-driven one shared by clones.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    manual: Option<Arc<Mutex<(Instant, SystemTime)>>>,
}

impl Clock {
    /// The real clocks.
    pub fn system() -> Self {
        Self::default()
    }

    /// A clock that stands still until [`Clock::advance`] moves it; it starts at the real time.
    #[cfg(test)]
    pub fn manual() -> Self {
        Self {
            manual: Some(Arc::new(Mutex::new((Instant::now(), SystemTime::now())))),
        }
    }

    /// Monotonic now.
    pub fn now(&self) -> Instant {
        match &self.manual {
            None => Instant::now(),
            Some(m) => lock(m).0,
        }
    }

    /// Wall-clock now, for comparisons with file times.
    pub fn wall(&self) -> SystemTime {
        match &self.manual {
            None => SystemTime::now(),
            Some(m) => lock(m).1,
        }
    }

    /// Moves a manual clock (and every clone of it) forward by `d`; the real clock ignores it.
    #[cfg(test)]
    pub fn advance(&self, d: Duration) {
        if let Some(m) = &self.manual {
            let mut t = lock(m);
            t.0 += d;
            t.1 += d;
        }
    }

    /// How long ago `since` was, by this clock (zero for a time in its future).
    pub fn since(&self, since: Instant) -> Duration {
        self.now().saturating_duration_since(since)
    }
}

/// A poisoned lock only means a test panicked while advancing; the times are still valid.
fn lock(m: &Mutex<(Instant, SystemTime)>) -> std::sync::MutexGuard<'_, (Instant, SystemTime)> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_advanced_and_its_clones_move_with_it() {
        let c = Clock::manual();
        let (t0, w0) = (c.now(), c.wall());
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(c.now(), t0, "a manual clock stands still");
        let twin = c.clone();
        twin.advance(Duration::from_secs(3));
        assert_eq!(c.now(), t0 + Duration::from_secs(3));
        assert_eq!(c.wall(), w0 + Duration::from_secs(3));
        assert_eq!(c.since(t0), Duration::from_secs(3));
        assert_eq!(c.since(t0 + Duration::from_secs(10)), Duration::ZERO);
    }

    #[test]
    fn the_system_clock_runs() {
        let c = Clock::system();
        let t0 = c.now();
        c.advance(Duration::from_secs(3600));
        assert!(c.since(t0) < Duration::from_secs(3600));
        assert!(c.wall() > SystemTime::UNIX_EPOCH);
    }
}
