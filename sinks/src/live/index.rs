//! The per-metric index: a metric's series in arrival order and their tag values interned.
//!
//! Queries aggregate one metric over many series (10^4 and more), grouped and filtered by
//! tags. Parsing every series key and comparing strings per series per query dominated that
//! work, so the index is built once, when a series first arrives: each tag key of a metric
//! is a column holding a small integer per series, and the distinct values once. A filter is
//! then evaluated once per distinct value (a regex too), and grouping compares integers.

use super::frame::Frame;
use std::collections::HashMap;

/// A series that lacks the tag.
pub const ABSENT: u32 = u32::MAX;
/// The id of the empty value, in every column (so a missing tag can group with `""`).
pub const EMPTY: u32 = 0;

/// One tag key of a metric: the distinct values and each series' value id.
#[derive(Debug)]
pub struct TagColumn {
    name: Box<str>,
    values: Vec<Box<str>>,
    ids: HashMap<Box<str>, u32>,
    /// By position in the metric; positions past the end lack the tag.
    of_series: Vec<u32>,
}

impl TagColumn {
    fn new(name: &str) -> Self {
        TagColumn {
            name: name.into(),
            values: vec!["".into()],
            ids: HashMap::from([("".into(), EMPTY)]),
            of_series: Vec::new(),
        }
    }

    /// The tag key.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The distinct values, by id (`EMPTY` is `""`).
    pub fn values(&self) -> &[Box<str>] {
        &self.values
    }

    /// The value id of the series at `position` in the metric, or [`ABSENT`].
    pub fn id(&self, position: usize) -> u32 {
        self.of_series.get(position).copied().unwrap_or(ABSENT)
    }

    fn set(&mut self, position: usize, value: &str) {
        if self.of_series.len() > position {
            return;
        }
        let id = match self.ids.get(value) {
            Some(id) => *id,
            None => {
                let id = self.values.len() as u32;
                self.values.push(value.into());
                self.ids.insert(value.into(), id);
                id
            }
        };
        self.of_series.resize(position, ABSENT);
        self.of_series.push(id);
    }
}

/// One metric's series (as store slots, in arrival order), tag columns and window frames.
#[derive(Debug, Default)]
pub struct MetricIndex {
    slots: Vec<u32>,
    columns: Vec<TagColumn>,
    frames: Vec<Frame>,
}

impl MetricIndex {
    /// Store slots of the metric's series, in arrival order.
    pub fn slots(&self) -> &[u32] {
        &self.slots
    }

    /// The column of one tag key, if any series of the metric has it.
    pub fn column(&self, tag: &str) -> Option<&TagColumn> {
        self.columns.iter().find(|c| &*c.name == tag)
    }

    /// The frame of one window size, if any series of the metric has windows of that size.
    pub fn frame(&self, window_ms: u64) -> Option<&Frame> {
        self.frames.iter().find(|f| f.window_ms() == window_ms)
    }

    pub(super) fn frame_mut(&mut self, window_ms: u64, keep: usize) -> &mut Frame {
        let at = match self.frames.iter().position(|f| f.window_ms() == window_ms) {
            Some(at) => at,
            None => {
                self.frames.push(Frame::new(window_ms, keep));
                self.frames.len() - 1
            }
        };
        &mut self.frames[at]
    }

    /// Adds a series; returns its position in the metric.
    pub(super) fn add<'k>(&mut self, slot: u32, tags: impl Iterator<Item = (&'k str, &'k str)>) -> u32 {
        let position = self.slots.len();
        self.slots.push(slot);
        for (key, value) in tags {
            let at = match self.columns.iter().position(|c| &*c.name == key) {
                Some(at) => at,
                None => {
                    self.columns.push(TagColumn::new(key));
                    self.columns.len() - 1
                }
            };
            self.columns[at].set(position, value);
        }
        position as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_interned_per_column_and_missing_tags_are_absent() {
        let mut index = MetricIndex::default();
        index.add(7, [("zone", "a"), ("host", "h1")].into_iter());
        index.add(9, [("host", "h2")].into_iter());
        index.add(11, [("host", ""), ("zone", "a")].into_iter());
        assert_eq!(index.slots(), [7, 9, 11]);
        let zone = index.column("zone").unwrap();
        assert_eq!(zone.id(0), zone.id(2));
        assert_eq!(zone.id(1), ABSENT);
        assert_eq!(&*zone.values()[zone.id(0) as usize], "a");
        let host = index.column("host").unwrap();
        assert_eq!(host.id(2), EMPTY);
        assert_eq!(host.id(5), ABSENT);
        assert!(index.column("rack").is_none());
    }
}
