//! The NAB scorer, standard profile, following NAB v1.1's `sweeper.py` rule for rule.
//!
//! Every scored row gets a *sweep weight*: inside a labelled window, the scaled sigmoid of its
//! relative position (earlier is worth more, the window's first row is worth `A_tp`); outside,
//! `A_fp` times the scaled sigmoid of its distance past the previous window (a false alarm just
//! after a window costs almost nothing, one far from any window costs the full `A_fp`). The
//! first `min(⌊0.15·n⌋, 750)` rows of every file are probationary and not scored. One threshold
//! is chosen for the whole corpus: rows at or above it are detections; a window is worth its
//! best (earliest) detection or `−A_fn` when it has none, and false alarms add their weights.
//! The raw score is normalised so that the null detector scores 0 and a perfect one 100.

use std::cmp::Ordering;

/// The standard profile's costs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Costs {
    /// Weight of a detected window (`A_tp`).
    pub tp: f64,
    /// Weight of a false alarm (`A_fp`).
    pub fp: f64,
    /// Cost of a missed window (`A_fn`).
    pub fn_: f64,
}

/// NAB's standard profile: `A_tp = 1`, `A_fp = 0.11`, `A_fn = 1`.
pub const STANDARD: Costs = Costs {
    tp: 1.0,
    fp: 0.11,
    fn_: 1.0,
};

/// The fraction of every file that is probationary.
const PROBATION_FRACTION: f64 = 0.15;
/// NAB caps the probationary period at 15 % of 5000 rows.
const PROBATION_CAP: f64 = PROBATION_FRACTION * 5000.0;

/// One scored row: its anomaly score, its sweep weight and the window it lies in.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Row {
    /// The detector's anomaly score.
    pub score: f64,
    /// What a detection here adds (windows: the best one counts; elsewhere: all add up).
    pub weight: f64,
    /// The corpus-wide index of its window, if it lies in one.
    pub window: Option<usize>,
}

/// A labelled window as row indices of one file, both ends inclusive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    /// First row.
    pub first: usize,
    /// Last row.
    pub last: usize,
}

/// NAB's scaled sigmoid of a relative position: `2·σ(−5x) − 1`, and `−1` beyond `x > 3`.
pub fn scaled_sigmoid(position: f64) -> f64 {
    if position > 3.0 {
        -1.0
    } else {
        2.0 / (1.0 + (5.0 * position).exp()) - 1.0
    }
}

/// Rows of a file of `rows` rows that NAB does not score.
pub fn probationary_length(rows: usize) -> usize {
    let length = (PROBATION_FRACTION * rows as f64).floor().min(PROBATION_CAP);
    length.ceil() as usize
}

/// The scored rows of one file (probationary rows left out). `windows` must be in order and
/// disjoint; `first_window` is the corpus-wide index of the file's first window.
pub fn sweep(scores: &[f64], windows: &[Window], first_window: usize, costs: Costs) -> Vec<Row> {
    let max_tp = scaled_sigmoid(-1.0);
    let probation = probationary_length(scores.len());
    let mut next = 0;
    let mut current: Option<(usize, Window)> = None;
    let mut previous: Option<Window> = None;
    let mut rows = Vec::with_capacity(scores.len().saturating_sub(probation));
    for (i, &score) in scores.iter().enumerate() {
        if current.is_none() && windows.get(next).is_some_and(|w| w.first == i) {
            current = Some((first_window + next, windows[next]));
            next += 1;
        }
        let (weight, window) = match current {
            Some((id, w)) => {
                let width = (w.last - w.first + 1) as f64;
                let position = -((w.last + 1 - i) as f64) / width;
                (scaled_sigmoid(position) * costs.tp / max_tp, Some(id))
            }
            None => {
                let unweighted = match previous {
                    None => -1.0,
                    Some(w) => {
                        let width = (w.last - w.first + 1) as f64;
                        scaled_sigmoid((i - w.last) as f64 / (width - 1.0))
                    }
                };
                (unweighted * costs.fp, None)
            }
        };
        if i >= probation {
            rows.push(Row { score, weight, window });
        }
        if let Some((_, w)) = current
            && w.last == i
        {
            previous = Some(w);
            current = None;
        }
    }
    rows
}

/// The corpus score at one threshold, and the counts behind it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ThresholdScore {
    /// Rows scoring at or above this are detections.
    pub threshold: f64,
    /// The raw (not normalised) score.
    pub score: f64,
    /// Windows with a detection.
    pub detected_windows: usize,
    /// Scorable windows.
    pub windows: usize,
    /// Detections outside every window.
    pub false_positives: usize,
}

/// The best threshold over the whole corpus, as NAB's optimiser picks it: every distinct anomaly
/// score is tried (plus 1.1, where nothing is detected) from the top down, and the first best
/// score wins.
pub fn best_threshold(rows: &[Row], costs: Costs) -> ThresholdScore {
    let mut sorted: Vec<&Row> = rows.iter().collect();
    sorted.sort_by(|a, b| b.score.partial_cmp(&a.score).unwrap_or(Ordering::Equal));
    let window_count = rows.iter().filter_map(|r| r.window).max().map_or(0, |m| m + 1);
    let mut scorable = vec![false; window_count];
    for row in rows {
        if let Some(w) = row.window {
            scorable[w] = true;
        }
    }
    let windows = scorable.iter().filter(|&&s| s).count();
    let mut window_value = vec![-costs.fn_; window_count];
    let mut detected = vec![false; window_count];
    let mut state = ThresholdScore {
        threshold: 1.1,
        score: -(windows as f64) * costs.fn_,
        detected_windows: 0,
        windows,
        false_positives: 0,
    };
    let mut fp_sum = 0.0;
    let mut window_sum = state.score;
    let mut best = state;
    for row in sorted {
        if row.score != state.threshold {
            state.score = fp_sum + window_sum;
            if state.score > best.score {
                best = state;
            }
            state.threshold = row.score;
        }
        match row.window {
            None => {
                fp_sum += row.weight;
                state.false_positives += 1;
            }
            Some(w) => {
                if !detected[w] {
                    detected[w] = true;
                    state.detected_windows += 1;
                }
                let value = window_value[w].max(row.weight);
                window_sum += value - window_value[w];
                window_value[w] = value;
            }
        }
    }
    state.score = fp_sum + window_sum;
    if state.score > best.score {
        best = state;
    }
    best
}

/// The raw score at a given threshold (rows at or above it are detections).
pub fn score_at(rows: &[Row], threshold: f64, costs: Costs) -> f64 {
    let window_count = rows.iter().filter_map(|r| r.window).max().map_or(0, |m| m + 1);
    let mut window_value = vec![None; window_count];
    let mut total = 0.0;
    for row in rows {
        match row.window {
            Some(w) => {
                let value = window_value[w].get_or_insert(-costs.fn_);
                if row.score >= threshold {
                    *value = f64::max(*value, row.weight);
                }
            }
            None if row.score >= threshold => total += row.weight,
            None => {}
        }
    }
    total += window_value.iter().flatten().sum::<f64>();
    total
}

/// NAB's normalisation: `100 · (raw − null) / (perfect − null)`.
pub fn normalise(raw: f64, null: f64, perfect: f64) -> f64 {
    100.0 * (raw - null) / (perfect - null)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-4
    }

    #[test]
    fn scaled_sigmoid_matches_nab() {
        // 2·σ(5) − 1 = tanh(2.5) = 0.98661: the window's first row.
        assert!(close(scaled_sigmoid(-1.0), 0.98661));
        // Halfway into a window: tanh(1.25) = 0.84828.
        assert!(close(scaled_sigmoid(-0.5), 0.84828));
        assert_eq!(scaled_sigmoid(0.0), 0.0);
        assert!(close(scaled_sigmoid(1.0), -0.98661));
        assert_eq!(scaled_sigmoid(3.5), -1.0);
    }

    #[test]
    fn probation_is_fifteen_percent_capped_at_750_rows() {
        assert_eq!(probationary_length(100), 15);
        assert_eq!(probationary_length(4032), 604);
        assert_eq!(probationary_length(22_695), 750);
    }

    /// Twenty rows, probation ⌊0.15·20⌋ = 3, one window over rows 10..=13 (width 4).
    fn tiny(scores: &[f64]) -> Vec<Row> {
        sweep(scores, &[Window { first: 10, last: 13 }], 0, STANDARD)
    }

    #[test]
    fn sweep_weights_follow_the_window_rules() {
        let rows = tiny(&[0.0; 20]);
        assert_eq!(rows.len(), 17);
        // Row 5 (index 2 after probation), before any window: −A_fp = −0.11.
        assert!(close(rows[2].weight, -0.11));
        // Row 10, the window's first row: position −4/4 = −1, so A_tp exactly.
        assert!(close(rows[7].weight, 1.0));
        // Row 11: position −(13 − 11 + 1)/4 = −0.75: tanh(1.875)/tanh(2.5) = 0.95400/0.98661.
        assert!(close(rows[8].weight, 0.954_00 / 0.986_61));
        // Row 16: (16 − 13)/(4 − 1) = 1 past the window: −0.98661 · 0.11 = −0.10853.
        assert!(close(rows[13].weight, -0.108_53));
        assert_eq!(rows[8].window, Some(0));
        assert_eq!(rows[13].window, None);
    }

    #[test]
    fn the_best_threshold_counts_the_earliest_detection_and_every_false_alarm() {
        let mut scores = [0.0; 20];
        scores[11] = 0.9;
        scores[12] = 0.95;
        scores[16] = 0.8;
        scores[5] = 0.7;
        let rows = tiny(&scores);
        // At 0.95 only row 12 is detected: position −2/4, tanh(1.25)/tanh(2.5) = 0.85979.
        assert!(close(score_at(&rows, 0.95, STANDARD), 0.848_28 / 0.986_61));
        // At 0.9 row 11 counts instead (earlier): 0.96695; row 12 adds nothing.
        assert!(close(score_at(&rows, 0.9, STANDARD), 0.954_00 / 0.986_61));
        // At 0.8 the false alarm at row 16 costs 0.10853: 0.85842.
        assert!(close(score_at(&rows, 0.8, STANDARD), 0.954_00 / 0.986_61 - 0.108_53));
        // Nothing detected: the window is missed, −A_fn.
        assert!(close(score_at(&rows, 1.1, STANDARD), -1.0));
        let best = best_threshold(&rows, STANDARD);
        assert_eq!(best.threshold, 0.9);
        assert!(close(best.score, 0.954_00 / 0.986_61));
        assert_eq!((best.detected_windows, best.windows, best.false_positives), (1, 1, 0));
        // Null −1, perfect 1: 100·(0.96699 + 1)/2 = 98.3495.
        assert!(close(normalise(best.score, -1.0, 1.0), 98.349_5));
    }

    #[test]
    fn a_window_inside_the_probation_is_not_scored() {
        let rows = sweep(&[1.0; 20], &[Window { first: 0, last: 2 }], 0, STANDARD);
        assert!(rows.iter().all(|r| r.window.is_none()));
        let best = best_threshold(&rows, STANDARD);
        // No scorable window and only false alarms: detecting nothing (score 0) is best.
        assert_eq!((best.threshold, best.score, best.windows), (1.1, 0.0, 0));
    }
}
