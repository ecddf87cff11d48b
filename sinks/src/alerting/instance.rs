//! One alert instance's state machine.

use std::collections::BTreeMap;

/// Where an instance is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Condition false.
    Inactive,
    /// Condition true since `since`, not yet for long enough.
    Pending { since: i64 },
    /// Firing since `since`.
    Firing { since: i64 },
    /// Firing since `since`, condition false since `clear_since`, not yet for long enough.
    Clearing { since: i64, clear_since: i64 },
}

/// A change worth a notification.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transition {
    /// The alert fires; the condition started at `started`.
    Fire { started: i64 },
    /// The alert resolves.
    Resolve { started: i64, ended: i64 },
}

/// The durations a rule asks for, in ms.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    /// Window length: a window at `t` covers `[t, t + window)`.
    pub window: i64,
    /// `for`.
    pub hold: i64,
    /// `keep_firing_for`.
    pub keep: i64,
}

/// One rule and group: which series are in trouble, and the phase.
#[derive(Debug)]
pub struct Instance {
    phase: Phase,
    /// Latest window time evaluated; older updates (corrections) do not move the state back.
    last_time: i64,
    troubled: BTreeMap<String, f64>,
    /// The group labels.
    pub labels: BTreeMap<String, String>,
}

impl Instance {
    /// A new, inactive instance.
    pub fn new(labels: BTreeMap<String, String>) -> Self {
        Instance {
            phase: Phase::Inactive,
            last_time: i64::MIN,
            troubled: BTreeMap::new(),
            labels,
        }
    }

    /// Whether it holds no state worth keeping.
    pub fn is_idle(&self) -> bool {
        self.phase == Phase::Inactive && self.troubled.is_empty()
    }

    /// The series currently in trouble and their values.
    pub fn troubled(&self) -> &BTreeMap<String, f64> {
        &self.troubled
    }

    /// Records whether `series` meets the condition in the window at `time`, and advances the
    /// state machine with the group's truth (any series in trouble).
    pub fn observe(&mut self, series: &str, truth: bool, value: f64, time: i64, timing: Timing) -> Option<Transition> {
        if time < self.last_time {
            return None;
        }
        self.last_time = time;
        if truth {
            self.troubled.insert(series.to_owned(), value);
        } else {
            self.troubled.remove(series);
        }
        self.step(!self.troubled.is_empty(), time, timing)
    }

    fn step(&mut self, truth: bool, time: i64, timing: Timing) -> Option<Transition> {
        let end = time + timing.window;
        let (phase, transition) = match (self.phase, truth) {
            (Phase::Inactive, false) => (Phase::Inactive, None),
            (Phase::Inactive, true) | (Phase::Pending { .. }, true) => {
                let since = match self.phase {
                    Phase::Pending { since } => since,
                    _ => time,
                };
                if end - since >= timing.hold {
                    (Phase::Firing { since }, Some(Transition::Fire { started: since }))
                } else {
                    (Phase::Pending { since }, None)
                }
            }
            (Phase::Pending { .. }, false) => (Phase::Inactive, None),
            (Phase::Firing { since }, true) | (Phase::Clearing { since, .. }, true) => (Phase::Firing { since }, None),
            (Phase::Firing { since }, false) | (Phase::Clearing { since, .. }, false) => {
                let clear_since = match self.phase {
                    Phase::Clearing { clear_since, .. } => clear_since,
                    _ => time,
                };
                if end - clear_since >= timing.keep {
                    (
                        Phase::Inactive,
                        Some(Transition::Resolve {
                            started: since,
                            ended: end,
                        }),
                    )
                } else {
                    (Phase::Clearing { since, clear_since }, None)
                }
            }
        };
        self.phase = phase;
        transition
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: i64 = 60_000;
    const TIMING: Timing = Timing {
        window: MINUTE,
        hold: 2 * MINUTE,
        keep: 3 * MINUTE,
    };

    fn run(truths: &[bool]) -> Vec<(usize, Transition)> {
        let mut instance = Instance::new(BTreeMap::new());
        truths
            .iter()
            .enumerate()
            .filter_map(|(i, t)| {
                instance
                    .observe("s", *t, 1.0, i as i64 * MINUTE, TIMING)
                    .map(|tr| (i, tr))
            })
            .collect()
    }

    #[test]
    fn fires_only_after_holding_for_the_duration() {
        // true at minutes 3 and 4: held for windows [3m, 5m) = 2 minutes → fires at minute 4.
        assert_eq!(
            run(&[false, false, false, true, true]),
            vec![(4, Transition::Fire { started: 3 * MINUTE })]
        );
        // one true window is not enough
        assert_eq!(run(&[true, false, true, false]), vec![]);
    }

    #[test]
    fn resolves_only_after_staying_clear_and_does_not_flap() {
        // fires at 1; false at 2 and 3 (not yet 3 minutes), true at 4 (back to firing, no event),
        // false from 5: clear for [5m, 8m) at minute 7 → resolves with end 8m.
        let got = run(&[true, true, false, false, true, false, false, false, false]);
        assert_eq!(
            got,
            vec![
                (1, Transition::Fire { started: 0 }),
                (
                    7,
                    Transition::Resolve {
                        started: 0,
                        ended: 8 * MINUTE
                    }
                )
            ]
        );
    }

    #[test]
    fn a_noisy_series_around_the_threshold_fires_once() {
        let noisy: Vec<bool> = (0..60).map(|i| i % 3 != 0).collect();
        let events = run(&noisy);
        assert_eq!(events.len(), 1, "{events:?}");
    }

    #[test]
    fn older_updates_do_not_move_the_state_back() {
        let mut instance = Instance::new(BTreeMap::new());
        let timing = Timing {
            window: MINUTE,
            hold: 0,
            keep: 0,
        };
        assert!(instance.observe("s", true, 1.0, 5 * MINUTE, timing).is_some());
        assert_eq!(instance.observe("s", false, 1.0, 2 * MINUTE, timing), None);
        // still firing: another true window is no new event
        assert_eq!(instance.observe("s", true, 1.0, 6 * MINUTE, timing), None);
    }
}
