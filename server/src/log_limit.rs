//! Log lines that anyone who can reach a port could trigger (a refused peer message, a
//! bad handshake) are written at most once per interval, so a flood of bad input cannot
//! flood the log. The lines held back are counted; the next line written says how many.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The interval most limited lines use.
pub(crate) const LOG_INTERVAL: Duration = Duration::from_secs(5);

#[derive(Debug)]
pub(crate) struct LogLimit {
    interval: Duration,
    /// When the last line was written, and the lines held back since.
    state: Mutex<(Option<Instant>, u64)>,
}

impl LogLimit {
    pub(crate) const fn new(interval: Duration) -> LogLimit {
        LogLimit {
            interval,
            state: Mutex::new((None, 0)),
        }
    }

    /// Some(lines held back since the last one) if a line may be written now.
    pub(crate) fn admit(&self) -> Option<u64> {
        let now = Instant::now();
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let (last, held) = &mut *state;
        if last.is_some_and(|at| now.duration_since(at) < self.interval) {
            *held += 1;
            return None;
        }
        *last = Some(now);
        Some(std::mem::take(held))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_interval_and_the_count_of_those_held_back() {
        let limit = LogLimit::new(Duration::from_millis(50));
        assert_eq!(limit.admit(), Some(0));
        assert_eq!(limit.admit(), None);
        assert_eq!(limit.admit(), None);
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(limit.admit(), Some(2));
        assert_eq!(limit.admit(), None);
    }
}
