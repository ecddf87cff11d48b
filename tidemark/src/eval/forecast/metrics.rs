//! Forecast accuracy as the M4 competition defines it, and the seasonal-naive reference.

/// sMAPE over the horizon: mean of `200·|y − f| / (|y| + |f|)` (0 where both are 0).
pub fn smape(actual: &[f64], forecast: &[f64]) -> f64 {
    let terms = actual.iter().zip(forecast).map(|(&y, &f)| {
        let denominator = y.abs() + f.abs();
        if denominator == 0.0 {
            0.0
        } else {
            200.0 * (y - f).abs() / denominator
        }
    });
    terms.sum::<f64>() / actual.len() as f64
}

/// MASE over the horizon: mean `|y − f|` divided by the in-sample mean `|x_t − x_{t−m}|`.
/// `None` when the training series is too short or constant at lag `m`.
pub fn mase(train: &[f64], period: usize, actual: &[f64], forecast: &[f64]) -> Option<f64> {
    let m = period.max(1);
    if train.len() <= m {
        return None;
    }
    let scale = train.windows(m + 1).map(|w| (w[m] - w[0]).abs()).sum::<f64>() / (train.len() - m) as f64;
    if scale == 0.0 {
        return None;
    }
    let error = actual.iter().zip(forecast).map(|(y, f)| (y - f).abs()).sum::<f64>() / actual.len() as f64;
    Some(error / scale)
}

/// The seasonal-naive forecast: the last full season repeated (the last value when `m = 1`).
pub fn seasonal_naive(train: &[f64], period: usize, horizon: usize) -> Vec<f64> {
    let m = period.max(1).min(train.len());
    let last_season = &train[train.len() - m..];
    (0..horizon).map(|h| last_season[h % m]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smape_and_mase_follow_the_m4_definitions() {
        // |10−8| = 2 over (10+8): 200·2/18 = 22.2…; a perfect second step adds 0; mean 11.1…
        assert!((smape(&[10.0, 5.0], &[8.0, 5.0]) - 100.0 * 2.0 / 18.0).abs() < 1e-12);
        // Lag-1 in-sample differences 1, 2, 3: scale 2. Errors 2 and 4: mean 3. MASE 1.5.
        assert_eq!(mase(&[1.0, 2.0, 4.0, 7.0], 1, &[9.0, 11.0], &[7.0, 7.0]), Some(1.5));
        assert_eq!(mase(&[3.0, 3.0], 1, &[1.0], &[1.0]), None);
    }

    #[test]
    fn seasonal_naive_repeats_the_last_season() {
        let train = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        assert_eq!(seasonal_naive(&train, 4, 6), vec![3.0, 4.0, 5.0, 6.0, 3.0, 4.0]);
        assert_eq!(seasonal_naive(&train, 1, 2), vec![6.0, 6.0]);
    }
}
