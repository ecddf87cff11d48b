//! The journal: a bounded, sequenced log of recent live events.
//!
//! Every event gets the next sequence number. Subscribers keep a cursor (the sequence number
//! of the next event they want) and read the journal at their own pace, so the writer never
//! waits for a client: a client that falls so far behind that its cursor leaves the retained
//! range has *lagged* and is dropped by its connection with that reason. The same cursor is
//! the resume token: a client that reconnects with it gets what it missed, as long as it is
//! still retained (replay is bounded by the capacity).
//!
//! Events are stored in chunks, one per append (one per sink batch), so a batch costs one
//! write lock and one allocation whatever its size, and readers share chunks by `Arc` — and
//! share each chunk's [`Encoded`] form, made once by the first reader that asks for it.

use super::encoded::Encoded;
use super::event::LiveEvent;
use std::collections::VecDeque;
use std::sync::{Arc, OnceLock, PoisonError, RwLock};
use tokio::sync::watch;

/// A run of events with consecutive sequence numbers starting at `first`.
#[derive(Debug)]
pub struct Chunk {
    /// Sequence number of `events[0]`.
    pub first: u64,
    /// The events.
    pub events: Vec<LiveEvent>,
    encoded: OnceLock<Encoded>,
}

impl Chunk {
    /// The events as JSON with their metric index, encoded on first use.
    pub fn encoded(&self) -> &Encoded {
        self.encoded.get_or_init(|| Encoded::new(&self.events))
    }

    /// The sequence number after the last event.
    pub fn end(&self) -> u64 {
        self.first + self.events.len() as u64
    }

    /// The events with sequence numbers from `cursor` on, each with its number.
    pub fn since(&self, cursor: u64) -> impl Iterator<Item = (u64, &LiveEvent)> {
        let skip = cursor.saturating_sub(self.first) as usize;
        (self.first..).zip(&self.events).skip(skip)
    }
}

/// What a reader found at its cursor.
#[derive(Debug)]
pub enum Read {
    /// Chunks holding events from the cursor on (the first may start before it).
    Events(Vec<Arc<Chunk>>),
    /// Nothing new.
    UpToDate,
    /// The cursor is older than anything retained: `missed` events are gone.
    Lagged {
        /// How many events the reader can no longer get.
        missed: u64,
    },
}

#[derive(Debug, Default)]
struct Chunks {
    chunks: VecDeque<Arc<Chunk>>,
    retained: usize,
    end: u64,
}

/// The bounded event log shared by the live sink (writer) and the WebSocket clients.
#[derive(Debug)]
pub struct Journal {
    chunks: RwLock<Chunks>,
    head: watch::Sender<u64>,
    capacity: usize,
}

impl Journal {
    /// A journal retaining about `capacity` events (never less than the newest chunk).
    pub fn new(capacity: usize) -> Self {
        Journal {
            chunks: RwLock::new(Chunks::default()),
            head: watch::Sender::new(0),
            capacity: capacity.max(1),
        }
    }

    /// Appends events and wakes the readers; returns the new end.
    pub fn append(&self, events: Vec<LiveEvent>) -> u64 {
        if events.is_empty() {
            return self.end();
        }
        let end = {
            let mut state = self.chunks.write().unwrap_or_else(PoisonError::into_inner);
            let chunk = Chunk {
                first: state.end,
                events,
                encoded: OnceLock::new(),
            };
            state.end = chunk.end();
            state.retained += chunk.events.len();
            state.chunks.push_back(Arc::new(chunk));
            while state.retained > self.capacity && state.chunks.len() > 1 {
                let dropped = state.chunks.pop_front().expect("more than one chunk");
                state.retained -= dropped.events.len();
            }
            state.end
        };
        self.head.send_replace(end);
        end
    }

    /// The sequence number the next event will get.
    pub fn end(&self) -> u64 {
        self.chunks.read().unwrap_or_else(PoisonError::into_inner).end
    }

    /// The oldest sequence number still retained.
    pub fn oldest(&self) -> u64 {
        let state = self.chunks.read().unwrap_or_else(PoisonError::into_inner);
        state.chunks.front().map_or(state.end, |c| c.first)
    }

    /// A receiver that changes whenever events are appended.
    pub fn watch(&self) -> watch::Receiver<u64> {
        self.head.subscribe()
    }

    /// Up to `max_chunks` chunks holding the events from `cursor` on.
    pub fn read(&self, cursor: u64, max_chunks: usize) -> Read {
        let state = self.chunks.read().unwrap_or_else(PoisonError::into_inner);
        if cursor >= state.end {
            return Read::UpToDate;
        }
        let oldest = state.chunks.front().map_or(state.end, |c| c.first);
        if cursor < oldest {
            return Read::Lagged {
                missed: oldest - cursor,
            };
        }
        let start = state.chunks.partition_point(|c| c.end() <= cursor);
        Read::Events(state.chunks.range(start..).take(max_chunks.max(1)).cloned().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tidemark_schemas::AnomalyScore;

    fn events(n: usize) -> Vec<LiveEvent> {
        (0..n)
            .map(|i| {
                LiveEvent::Anomaly(AnomalyScore {
                    series: "m".into(),
                    window_ms: 1000,
                    window_start: i as i64,
                    field: "avg",
                    value: 1.0,
                    expected: 1.0,
                    score: 0.0,
                })
            })
            .collect()
    }

    fn seqs(read: Read, cursor: u64) -> Vec<u64> {
        match read {
            Read::Events(chunks) => chunks.iter().flat_map(|c| c.since(cursor).map(|(s, _)| s)).collect(),
            other => panic!("expected events, got {other:?}"),
        }
    }

    #[test]
    fn readers_resume_from_their_cursor() {
        let journal = Journal::new(100);
        journal.append(events(3));
        journal.append(events(2));
        assert_eq!(seqs(journal.read(0, 10), 0), [0, 1, 2, 3, 4]);
        assert_eq!(seqs(journal.read(2, 10), 2), [2, 3, 4]);
        assert!(matches!(journal.read(5, 10), Read::UpToDate));
    }

    #[test]
    fn old_chunks_are_dropped_and_slow_readers_lag() {
        let journal = Journal::new(4);
        journal.append(events(3));
        journal.append(events(3));
        assert_eq!(journal.oldest(), 3);
        assert!(matches!(journal.read(1, 10), Read::Lagged { missed: 2 }));
        journal.append(events(10));
        assert_eq!(journal.oldest(), 6, "the newest chunk is kept even beyond the capacity");
        assert_eq!(journal.end(), 16);
    }

    #[test]
    fn appends_wake_watchers() {
        let journal = Journal::new(10);
        let mut watch = journal.watch();
        journal.append(events(2));
        assert!(watch.has_changed().unwrap());
        assert_eq!(*watch.borrow_and_update(), 2);
    }
}
