//! The older part of a query, from InfluxDB, and its merge with the live part.
//!
//! The live store holds each series' newest windows; a series is complete from its oldest
//! retained window on. A query's range is therefore split at the newest of those starts over
//! the selected series (the *cutoff*): windows from the cutoff on come from the live store,
//! older ones from InfluxDB (when the InfluxDB sink is configured). Each window start comes from
//! exactly one place, and both parts combine a window's series the same way ([`Acc`]).

use super::error::ApiError;
use super::groups::{Acc, Ask, MAX_GROUPS};
use super::query::{Group, Point};
use super::select::Selector;
use std::collections::BTreeMap;
use tidemark_schemas::output::window_label;
use tidemark_sinks::live::{History, HistoryError};

/// Reads `[range.0, range.1)` of `metric` from InfluxDB and combines it into groups.
/// The outer error is InfluxDB's (the caller reports it in the answer); the inner one the
/// request's (too many groups).
pub fn older_groups(
    history: &History,
    metric: &str,
    selector: &Selector,
    equal: &[(&str, &str)],
    ask: &Ask<'_>,
) -> Result<Result<Vec<Group>, ApiError>, HistoryError> {
    let stored = history.windows(metric, &window_label(ask.window_ms), ask.range, equal)?;
    let mut groups: BTreeMap<Vec<String>, (usize, BTreeMap<i64, Acc>)> = BTreeMap::new();
    let mut key = String::new();
    for series in stored {
        key.clear();
        key.push_str(metric);
        for (k, v) in &series.tags {
            key.push('|');
            key.push_str(k);
            key.push('=');
            key.push_str(v);
        }
        if !selector.matches_key(&key) {
            continue;
        }
        let values: Vec<String> = ask
            .group_by
            .iter()
            .map(|tag| {
                series
                    .tags
                    .iter()
                    .find(|(k, _)| k == tag)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default()
            })
            .collect();
        if !groups.contains_key(&values) && groups.len() >= MAX_GROUPS {
            return Ok(Err(ApiError::bad_request(format!(
                "the query has more than {MAX_GROUPS} groups; add filters or group by fewer tags"
            ))));
        }
        let (members, points) = groups.entry(values).or_default();
        *members += 1;
        for (start, aggregates) in &series.rows {
            points.entry(*start).or_default().add(aggregates, ask.aggregation);
        }
    }
    Ok(Ok(groups
        .into_iter()
        .map(|(values, (series_count, points))| Group {
            group: ask.group_by.iter().cloned().zip(values).collect(),
            series_count,
            points: points
                .into_iter()
                .filter_map(|(ts, acc)| acc.value(ask.aggregation).map(|value| Point { ts, value }))
                .collect(),
        })
        .collect()))
}

/// Joins the older groups (windows before `cutoff`) with the live ones (windows from `cutoff`
/// on; older live windows are dropped): a group in both gets the older points first and the
/// larger of the two series counts.
pub fn merge(older: Vec<Group>, live: Vec<Group>, cutoff: i64) -> Vec<Group> {
    let mut merged: BTreeMap<BTreeMap<String, String>, Group> =
        older.into_iter().map(|g| (g.group.clone(), g)).collect();
    for mut group in live {
        group.points.retain(|p| p.ts >= cutoff);
        match merged.get_mut(&group.group) {
            Some(held) => {
                held.series_count = held.series_count.max(group.series_count);
                held.points.append(&mut group.points);
            }
            None => {
                merged.insert(group.group.clone(), group);
            }
        }
    }
    merged.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(zone: &str, count: usize, points: &[(i64, f64)]) -> Group {
        Group {
            group: BTreeMap::from([("zone".to_string(), zone.to_string())]),
            series_count: count,
            points: points.iter().map(|&(ts, value)| Point { ts, value }).collect(),
        }
    }

    #[test]
    fn older_points_come_first_and_live_points_start_at_the_cutoff() {
        let older = vec![group("b", 2, &[(0, 1.0)]), group("c", 1, &[(60, 3.0)])];
        let live = vec![
            group("a", 1, &[(60, 9.0), (120, 4.0)]),
            group("b", 3, &[(60, 8.0), (120, 5.0)]),
        ];
        let merged = merge(older, live, 120);
        let flat: Vec<_> = merged
            .iter()
            .map(|g| {
                let points: Vec<_> = g.points.iter().map(|p| (p.ts, p.value)).collect();
                (g.group["zone"].as_str(), g.series_count, points)
            })
            .collect();
        assert_eq!(
            flat,
            [
                ("a", 1, vec![(120, 4.0)]),
                ("b", 3, vec![(0, 1.0), (120, 5.0)]),
                ("c", 1, vec![(60, 3.0)])
            ]
        );
    }
}
