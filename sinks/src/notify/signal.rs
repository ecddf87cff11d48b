//! How `accept` and `shutdown` reach a delivery thread without a queue.
//!
//! The outbox directory is the queue; the thread only needs to hear "there may be new files"
//! and "stop by this deadline". Both fit in one flag and one instant behind a mutex, so
//! `accept` never blocks on a busy or retrying thread and memory stays the same however many
//! alerts wait.

use std::sync::{Condvar, Mutex};
use std::time::Instant;

#[derive(Default)]
struct State {
    work: bool,
    stop_at: Option<Instant>,
}

/// Wake-ups for one delivery thread.
#[derive(Default)]
pub struct Signal {
    state: Mutex<State>,
    changed: Condvar,
}

impl Signal {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// New files may be waiting.
    pub fn nudge(&self) {
        self.lock().work = true;
        self.changed.notify_all();
    }

    /// Deliver what can be delivered until `deadline`, then stop.
    pub fn stop(&self, deadline: Instant) {
        let mut state = self.lock();
        state.stop_at = Some(state.stop_at.map_or(deadline, |earlier| earlier.min(deadline)));
        self.changed.notify_all();
    }

    /// Whether a stop was asked for (the thread then exits once the outbox is empty).
    pub fn stopping(&self) -> bool {
        self.lock().stop_at.is_some()
    }

    /// Whether the stop deadline has passed (the thread then exits at once).
    pub fn expired(&self) -> bool {
        self.lock().stop_at.is_some_and(|at| Instant::now() >= at)
    }

    /// Waits for a nudge or a stop. A nudge that came while the thread was busy is not lost:
    /// it is still set, and this returns at once.
    pub fn wait_for_work(&self) {
        let mut state = self.lock();
        while !state.work && state.stop_at.is_none() {
            state = self
                .changed
                .wait(state)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
        state.work = false;
    }

    /// Sleeps until `until` or the stop deadline, whichever comes first; nudges do not cut it
    /// short (a new alert does not make a down receiver come back). Returns `false` when the
    /// stop deadline has passed.
    pub fn pause(&self, until: Instant) -> bool {
        let mut state = self.lock();
        loop {
            let now = Instant::now();
            let end = state.stop_at.map_or(until, |at| at.min(until));
            if now >= end {
                return state.stop_at.is_none_or(|at| now < at);
            }
            state = self
                .changed
                .wait_timeout(state, end - now)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn a_nudge_before_the_wait_is_kept_and_a_stop_cuts_a_pause_short() {
        let signal = Arc::new(Signal::default());
        signal.nudge();
        signal.wait_for_work();
        assert!(signal.pause(Instant::now() + Duration::from_millis(5)));

        let stopper = signal.clone();
        let started = Instant::now();
        let thread = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            stopper.stop(Instant::now());
        });
        assert!(!signal.pause(started + Duration::from_secs(30)));
        assert!(started.elapsed() < Duration::from_secs(10));
        thread.join().unwrap();
        assert!(signal.stopping() && signal.expired());
        signal.wait_for_work();
    }

    #[test]
    fn a_stop_with_grace_lets_short_pauses_finish() {
        let signal = Signal::default();
        signal.stop(Instant::now() + Duration::from_secs(30));
        assert!(signal.pause(Instant::now() + Duration::from_millis(5)));
        assert!(signal.stopping() && !signal.expired());
    }
}
