//! The batcher thread: turns the sink's chunks into requests of at most `batch_points` lines,
//! sent when full or when their oldest point has waited `flush_interval`, and adds the
//! self-metrics every interval.
//!
//! It runs on its own thread because the sink thread only wakes up when results arrive: a
//! half-full batch must still go out on time when the pipeline is quiet. Its queues are
//! bounded on both sides, so when the writers are stuck (retrying, or the spool is full) the
//! batcher blocks handing over a batch, the sink blocks handing over a chunk, and the
//! dataflow slows down.
//!
//! Points arrive already split into *lanes* by series (the sink encodes each point into its
//! lane's chunk), and each lane is batched separately for its own writer: all updates of one
//! point travel in one lane, in order, which is what keeps a newer value from being overwritten
//! by an older one (see `delivery.rs`). Self-metrics go to lane 0.

use super::delivery::Batch;
use super::shared::Shared;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What the sink sends the batcher.
pub enum Input {
    /// Encoded points of one lane.
    Chunk {
        /// The lane.
        lane: usize,
        /// Line protocol.
        lines: Vec<u8>,
        /// Lines in it.
        points: u32,
        /// When they entered the sink.
        received: Instant,
    },
    /// Send whatever is pending now (the sink is flushing).
    Flush,
}

/// How the batcher batches.
pub struct Settings {
    /// Most lines per batch.
    pub batch_points: usize,
    /// Longest a line waits for its batch to fill.
    pub flush_interval: Duration,
    /// Self-metrics: the interval and the `instance` tag, or none.
    pub self_metrics: Option<(Duration, String)>,
}

/// A run of lines that arrived together.
struct Segment {
    received: Instant,
    lines: u32,
    data: bool,
}

/// Lines waiting for their batch.
#[derive(Default)]
struct Pending {
    lines: Vec<u8>,
    count: usize,
    segments: Vec<Segment>,
}

impl Pending {
    fn push(&mut self, lines: &[u8], count: u32, received: Instant, data: bool) {
        if count == 0 {
            return;
        }
        self.lines.extend_from_slice(lines);
        self.count += count as usize;
        self.segments.push(Segment {
            received,
            lines: count,
            data,
        });
    }

    fn oldest(&self) -> Option<Instant> {
        self.segments.first().map(|s| s.received)
    }

    /// Takes the first `n` lines (all of them if fewer) as a batch.
    fn take(&mut self, n: usize) -> Batch {
        let n = n.min(self.count);
        let cut = if n == self.count {
            self.lines.len()
        } else {
            self.lines
                .iter()
                .enumerate()
                .filter(|(_, b)| **b == b'\n')
                .nth(n - 1)
                .map_or(self.lines.len(), |(i, _)| i + 1)
        };
        let rest = self.lines.split_off(cut);
        let lines = std::mem::replace(&mut self.lines, rest);
        let mut batch = Batch {
            lines,
            points: n as u32,
            data_points: 0,
            arrivals: Vec::new(),
        };
        let mut left = n as u32;
        while left > 0 {
            let segment = &mut self.segments[0];
            let taken = segment.lines.min(left);
            batch.arrivals.push((segment.received, taken));
            if segment.data {
                batch.data_points += taken;
            }
            segment.lines -= taken;
            left -= taken;
            if segment.lines == 0 {
                self.segments.remove(0);
            }
        }
        self.count -= n;
        batch
    }
}

/// Runs the batcher until `input` closes, then sends what is left (with a last self-metrics
/// interval) and returns, which closes `outputs` (one per lane) and lets the writers finish.
pub fn run(input: Receiver<Input>, outputs: Vec<Sender<Batch>>, shared: Arc<Shared>, settings: Settings) {
    let mut lanes: Vec<Pending> = outputs.iter().map(|_| Pending::default()).collect();
    let mut next_metrics = settings.self_metrics.as_ref().map(|(every, _)| Instant::now() + *every);
    let send_lane = |lane: usize, pending: &mut Pending, all: bool| -> bool {
        while pending.count >= settings.batch_points || (all && pending.count > 0) {
            if outputs[lane].send(pending.take(settings.batch_points)).is_err() {
                return false;
            }
        }
        true
    };
    let send = |lanes: &mut [Pending], due: &dyn Fn(&Pending) -> bool| -> bool {
        lanes.iter_mut().enumerate().all(|(lane, pending)| {
            let all = due(pending);
            send_lane(lane, pending, all)
        })
    };
    let metrics = |pending: &mut Pending| {
        if let Some((_, instance)) = &settings.self_metrics {
            let mut lines = Vec::new();
            let now_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64);
            let count = shared
                .stats
                .encode_interval(instance, shared.unsettled(), now_ms, &mut lines);
            pending.push(&lines, count, Instant::now(), false);
        }
    };
    loop {
        let oldest = lanes.iter().filter_map(Pending::oldest).min();
        let deadline = [oldest.map(|t| t + settings.flush_interval), next_metrics]
            .into_iter()
            .flatten()
            .min();
        let received = match deadline {
            Some(deadline) => input.recv_timeout(deadline.saturating_duration_since(Instant::now())),
            None => input.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        let sent = match received {
            Ok(Input::Chunk {
                lane,
                lines,
                points,
                received,
            }) => {
                lanes[lane].push(&lines, points, received, true);
                send_lane(lane, &mut lanes[lane], false)
            }
            Ok(Input::Flush) => send(&mut lanes, &|_| true),
            Err(RecvTimeoutError::Timeout) => {
                let now = Instant::now();
                if let Some(at) = next_metrics.filter(|at| *at <= now) {
                    let every = settings.self_metrics.as_ref().map_or(Duration::ZERO, |(e, _)| *e);
                    next_metrics = Some(at + every);
                    metrics(&mut lanes[0]);
                }
                send(&mut lanes, &|pending| {
                    pending.oldest().is_some_and(|t| t + settings.flush_interval <= now)
                })
            }
            Err(RecvTimeoutError::Disconnected) => {
                metrics(&mut lanes[0]);
                send(&mut lanes, &|_| true);
                return;
            }
        };
        if !sent {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(n: usize, tag: &str) -> Vec<u8> {
        (0..n)
            .map(|i| format!("m,t={tag} v={i}i {i}\n"))
            .collect::<String>()
            .into_bytes()
    }

    #[test]
    fn batches_are_cut_at_line_boundaries_and_keep_their_arrivals() {
        let mut pending = Pending::default();
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_millis(5);
        pending.push(&lines(3, "a"), 3, t0, true);
        pending.push(&lines(4, "b"), 4, t1, false);
        let first = pending.take(5);
        assert_eq!(first.points, 5);
        assert_eq!(first.data_points, 3);
        assert_eq!(first.arrivals, vec![(t0, 3), (t1, 2)]);
        let text = String::from_utf8(first.lines).unwrap();
        assert_eq!(text.lines().count(), 5);
        assert!(text.ends_with("m,t=b v=1i 1\n"), "{text}");
        let second = pending.take(5);
        assert_eq!((second.points, second.data_points), (2, 0));
        assert_eq!(String::from_utf8(second.lines).unwrap(), "m,t=b v=2i 2\nm,t=b v=3i 3\n");
        assert_eq!(pending.count, 0);
    }

    fn run_with(settings: Settings, inputs: Vec<Input>) -> Vec<Batch> {
        let (input_tx, input_rx) = crossbeam_channel::bounded(4);
        let (output_tx, output_rx) = crossbeam_channel::unbounded();
        let dir = tempfile::tempdir().unwrap();
        let (spool, _) = super::super::spool::Spool::open(dir.path(), 1 << 20).unwrap();
        let shared = Arc::new(Shared::new(
            super::super::rejected::RejectedFile::new("unused".into()),
            spool,
        ));
        let handle = std::thread::spawn(move || run(input_rx, vec![output_tx], shared, settings));
        for input in inputs {
            input_tx.send(input).unwrap();
        }
        std::thread::sleep(Duration::from_millis(150));
        drop(input_tx);
        handle.join().unwrap();
        output_rx.into_iter().collect()
    }

    fn chunk(n: usize) -> Input {
        Input::Chunk {
            lane: 0,
            lines: lines(n, "x"),
            points: n as u32,
            received: Instant::now(),
        }
    }

    #[test]
    fn full_batches_go_at_once_and_the_rest_after_the_flush_interval() {
        let settings = Settings {
            batch_points: 4,
            flush_interval: Duration::from_millis(20),
            self_metrics: None,
        };
        let batches = run_with(settings, vec![chunk(3), chunk(3)]);
        let sizes: Vec<u32> = batches.iter().map(|b| b.points).collect();
        assert_eq!(
            sizes,
            vec![4, 2],
            "the 2 left over went out on the timer, before the close"
        );
    }

    #[test]
    fn each_lane_is_batched_for_its_own_writer_in_order() {
        let (input_tx, input_rx) = crossbeam_channel::bounded(4);
        let lanes: Vec<_> = (0..2).map(|_| crossbeam_channel::unbounded()).collect();
        let dir = tempfile::tempdir().unwrap();
        let (spool, _) = super::super::spool::Spool::open(dir.path(), 1 << 20).unwrap();
        let shared = Arc::new(Shared::new(
            super::super::rejected::RejectedFile::new("unused".into()),
            spool,
        ));
        let settings = Settings {
            batch_points: 3,
            flush_interval: Duration::from_secs(60),
            self_metrics: None,
        };
        let outputs = lanes.iter().map(|(tx, _)| tx.clone()).collect();
        let handle = std::thread::spawn(move || run(input_rx, outputs, shared, settings));
        for (lane, tag) in [(1, "a"), (0, "b"), (1, "c")] {
            input_tx
                .send(Input::Chunk {
                    lane,
                    lines: lines(2, tag),
                    points: 2,
                    received: Instant::now(),
                })
                .unwrap();
        }
        drop(input_tx);
        handle.join().unwrap();
        let text = |lane: usize| -> String {
            lanes[lane]
                .1
                .try_iter()
                .map(|b| String::from_utf8(b.lines).unwrap())
                .collect()
        };
        assert_eq!(text(0), String::from_utf8(lines(2, "b")).unwrap());
        let mut expected = lines(2, "a");
        expected.extend(lines(2, "c"));
        assert_eq!(text(1), String::from_utf8(expected).unwrap());
    }

    #[test]
    fn self_metrics_are_added_every_interval_and_at_the_end() {
        let settings = Settings {
            batch_points: 1000,
            flush_interval: Duration::from_millis(10),
            self_metrics: Some((Duration::from_millis(50), "t".into())),
        };
        let batches = run_with(settings, vec![chunk(1), Input::Flush]);
        let text: String = batches
            .iter()
            .map(|b| String::from_utf8_lossy(&b.lines).into_owned())
            .collect();
        assert!(text.matches("tidemark_pipeline,instance=t ").count() >= 3, "{text}");
        assert_eq!(batches.iter().map(|b| b.data_points).sum::<u32>(), 1);
    }
}
