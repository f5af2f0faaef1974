//! Pacing shared by a batch's workers: a smooth rate limit and a pause the server can ask
//! for on everyone's behalf.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Spaces the attempts of all workers and holds them all while the server asked for a pause.
#[derive(Debug)]
pub(crate) struct Pacer {
    /// The time between two attempts' starts, for a rate limit.
    interval: Option<Duration>,
    /// The most the server's pauses may add up to before the batch stops.
    budget: Duration,
    /// The caller's stop flag (a signal): once set, waits end early and nothing starts.
    stop: Option<Arc<AtomicBool>>,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    /// The earliest start of the next attempt.
    next_slot: Instant,
    /// No attempt starts before this.
    paused_until: Instant,
    /// Why no new request is sent: the server asked everyone to wait this long, beyond what
    /// a batch waits (`true`: its pauses added up past the budget).
    stopped: Option<(Duration, bool)>,
    /// The server's pauses so far, added up.
    paused: Duration,
}

impl Pacer {
    /// A pacer for at most `per_second` attempt starts per second, evenly spaced (none: no
    /// limit).
    /// The server's pauses may add up to `budget`; the one that goes past it stops the batch.
    pub(crate) fn new(
        per_second: Option<f64>,
        budget: Duration,
        stop: Option<Arc<AtomicBool>>,
    ) -> Pacer {
        let now = Instant::now();
        Pacer {
            interval: per_second.map(|r| Duration::from_secs_f64(1.0 / r)),
            budget,
            stop,
            state: Mutex::new(State {
                next_slot: now,
                paused_until: now,
                stopped: None,
                paused: Duration::ZERO,
            }),
        }
    }

    /// Waits until this worker may start an attempt: no pause is on, and (with a rate) its
    /// slot has come. Slots are handed out one interval apart and never saved up, so the
    /// attempts are evenly spaced: no burst after an idle spell or at each second's start.
    /// `false` when the stop flag is set (at once, or during the wait): the attempt must
    /// not start.
    pub(crate) fn before_attempt(&self) -> bool {
        loop {
            if self.stopping() {
                return false;
            }
            let now = Instant::now();
            let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
            if s.paused_until > now {
                let wait = s.paused_until - now;
                drop(s);
                if !self.sleep(wait) {
                    return false;
                }
                continue;
            }
            let Some(interval) = self.interval else {
                return true;
            };
            let slot = s.next_slot.max(now);
            s.next_slot = slot + interval;
            drop(s);
            if !self.sleep(slot.saturating_duration_since(now)) {
                return false;
            }
            // A pause that began meanwhile holds this attempt too (it takes a new slot).
            let s = self.state.lock().unwrap_or_else(|p| p.into_inner());
            if s.paused_until <= Instant::now() {
                return true;
            }
        }
    }

    /// The time between two attempts' starts, with a rate limit.
    pub(crate) fn interval(&self) -> Option<Duration> {
        self.interval
    }

    /// Whether the caller's stop flag is set.
    pub(crate) fn stopping(&self) -> bool {
        self.stop.as_ref().is_some_and(|f| f.load(Ordering::SeqCst))
    }

    /// Sleeps `wait`, in steps of at most 50 ms while a stop flag may end it; `false` when it
    /// did.
    pub(crate) fn sleep(&self, wait: Duration) -> bool {
        if self.stop.is_none() {
            std::thread::sleep(wait);
            return true;
        }
        let until = Instant::now() + wait;
        loop {
            if self.stopping() {
                return false;
            }
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return true;
            }
            std::thread::sleep(left.min(Duration::from_millis(50)));
        }
    }

    /// The server asked everyone to wait `wait`, longer than a batch waits: the batch sends
    /// no new request (those not sent yet are reported as not attempted).
    pub(crate) fn stop(&self, wait: Duration) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.stopped = Some((s.stopped.map_or(wait, |w| w.0.max(wait)), false));
    }

    /// Why the batch stopped, if it did: the wait asked for, and whether it was the budget
    /// of pauses that ran out.
    pub(crate) fn stopped(&self) -> Option<(Duration, bool)> {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).stopped
    }

    /// The server asked to wait `wait` (a 429 or 503): no worker starts an attempt before
    /// then; or, once the pauses add up past the budget, the batch stops.
    pub(crate) fn pause_all(&self, wait: Duration) {
        let until = Instant::now() + wait;
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.paused += wait;
        if s.paused > self.budget {
            let paused = s.paused;
            s.stopped.get_or_insert((paused, true));
            return;
        }
        s.paused_until = s.paused_until.max(until);
        // After the pause, attempts resume evenly spaced rather than all at once.
        s.next_slot = s.next_slot.max(until);
    }
}

impl crate::send::Pace for Pacer {
    fn before_attempt(&self) -> bool {
        Pacer::before_attempt(self)
    }

    fn sleep(&self, wait: Duration) -> bool {
        Pacer::sleep(self, wait)
    }

    /// All wait, or, for longer than a send waits, the batch stops sending.
    fn server_wait(&self, wait: Duration) {
        if wait > crate::wait::MAX_SERVER_WAIT {
            self.stop(wait);
        } else {
            self.pause_all(wait);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_evenly_spaced_and_never_saved_up() {
        let p = Pacer::new(Some(200.0), Duration::MAX, None); // 5 ms apart
        let start = Instant::now();
        for _ in 0..5 {
            p.before_attempt();
        }
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(20), "{took:?}");
        // Idle, then no burst: the next two are still an interval apart.
        std::thread::sleep(Duration::from_millis(30));
        p.before_attempt();
        let t = Instant::now();
        p.before_attempt();
        assert!(t.elapsed() >= Duration::from_millis(4), "{:?}", t.elapsed());
    }

    #[test]
    fn a_pause_holds_every_attempt() {
        let p = Pacer::new(None, Duration::MAX, None);
        p.pause_all(Duration::from_millis(40));
        let t = Instant::now();
        p.before_attempt();
        assert!(
            t.elapsed() >= Duration::from_millis(35),
            "{:?}",
            t.elapsed()
        );
        // A shorter pause asked later does not shorten a longer one.
        p.pause_all(Duration::from_millis(40));
        p.pause_all(Duration::from_millis(1));
        let t = Instant::now();
        p.before_attempt();
        assert!(
            t.elapsed() >= Duration::from_millis(35),
            "{:?}",
            t.elapsed()
        );
    }
}

#[cfg(test)]
mod budget_tests {
    use super::*;

    #[test]
    fn pauses_past_the_budget_stop_the_batch() {
        let p = Pacer::new(None, Duration::from_millis(25), None);
        p.pause_all(Duration::from_millis(10));
        p.pause_all(Duration::from_millis(10));
        assert_eq!(p.stopped(), None);
        p.pause_all(Duration::from_millis(10));
        assert_eq!(p.stopped(), Some((Duration::from_millis(30), true)));
    }
}
