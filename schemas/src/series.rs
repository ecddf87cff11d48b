//! Series identity.
//!
//! A series is a metric plus its tag set. Its canonical key is `metric` when there are no tags,
//! else `metric|k1=v1|k2=v2` with tags sorted byte-wise by key. The key is what users see (CSV,
//! NDJSON, the API); the dataflow moves a 64-bit id instead, so that an event crossing a worker
//! boundary is 32 bytes and never carries a string.
//!
//! The id is the xxh3-64 hash of the canonical key. It is stable across processes, builds and
//! runs (timely's cluster mode needs every process to route a series to the same worker), and
//! two keys collide with probability about n²/2⁶⁵ for n series: ~3·10⁻⁸ at a million series.
//! The aggregator checks every (id, key) pair it learns and reports a collision rather than
//! merging two series silently.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Stable identity of a series: xxh3-64 of its canonical key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SeriesId(pub u64);

impl SeriesId {
    /// The id of a canonical series key.
    pub fn of_key(key: &str) -> Self {
        SeriesId(xxhash_rust::xxh3::xxh3_64(key.as_bytes()))
    }
}

impl fmt::Display for SeriesId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// Builds canonical series keys into a reused buffer, so the hot path does not allocate.
#[derive(Default, Debug)]
pub struct SeriesKeyBuilder {
    key: String,
}

impl SeriesKeyBuilder {
    /// Builds the canonical key of `metric` with `tags` (sorted in place by key) and returns it
    /// together with its id. The returned key borrows the builder's buffer.
    pub fn build<'k>(&'k mut self, metric: &str, tags: &mut [(&str, &str)]) -> (SeriesId, &'k str) {
        tags.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        self.key.clear();
        self.key.push_str(metric);
        for (k, v) in tags.iter() {
            self.key.push('|');
            self.key.push_str(k);
            self.key.push('=');
            self.key.push_str(v);
        }
        (SeriesId::of_key(&self.key), &self.key)
    }

    /// Starts a key from its metric; add tags with [`tag`](Self::tag) in sorted order.
    pub fn begin(&mut self, metric: &str) {
        self.key.clear();
        self.key.push_str(metric);
    }

    /// Appends a tag; the caller adds tags sorted byte-wise by key.
    pub fn tag(&mut self, key: &str, value: &str) {
        self.key.push('|');
        self.key.push_str(key);
        self.key.push('=');
        self.key.push_str(value);
    }

    /// The key built so far and its id.
    pub fn finish(&self) -> (SeriesId, &str) {
        (SeriesId::of_key(&self.key), &self.key)
    }
}

/// Splits a canonical key back into its metric and `(key, value)` tags.
///
/// Sinks use this to write the metric as a measurement and the tags as tags; the key format
/// guarantees that neither part contains `|` and tag keys contain no `=`.
pub fn split_key(key: &str) -> (&str, impl Iterator<Item = (&str, &str)>) {
    let mut parts = key.split('|');
    let metric = parts.next().unwrap_or_default();
    let tags = parts.map(|part| part.split_once('=').unwrap_or((part, "")));
    (metric, tags)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_sorted_bytewise_by_key() {
        let mut builder = SeriesKeyBuilder::default();
        let mut tags = [("service", "auth"), ("region", "us"), ("method", "GET")];
        let (_, key) = builder.build("api.request.duration_ms", &mut tags);
        assert_eq!(key, "api.request.duration_ms|method=GET|region=us|service=auth");
    }

    #[test]
    fn metric_without_tags_is_its_own_key() {
        let mut builder = SeriesKeyBuilder::default();
        let (id, key) = builder.build("queue.depth", &mut []);
        assert_eq!(key, "queue.depth");
        assert_eq!(id, SeriesId::of_key("queue.depth"));
    }

    #[test]
    fn tag_order_does_not_change_the_id() {
        let mut builder = SeriesKeyBuilder::default();
        let (a, _) = builder.build("m", &mut [("b", "2"), ("a", "1")]);
        let (b, _) = builder.build("m", &mut [("a", "1"), ("b", "2")]);
        assert_eq!(a, b);
        let (c, _) = builder.build("m", &mut [("a", "1"), ("b", "3")]);
        assert_ne!(a, c);
    }

    #[test]
    fn split_key_inverts_build() {
        let (metric, tags) = split_key("cpu|host=a|region=eu");
        assert_eq!(metric, "cpu");
        assert_eq!(tags.collect::<Vec<_>>(), vec![("host", "a"), ("region", "eu")]);
    }
}
