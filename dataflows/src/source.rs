//! The source operator: reads lines, decodes them, stamps observations with event time and
//! holds back the frontier at this worker's watermark.
//!
//! Timely times are window starts of the base size, in epoch ms. The operator holds one
//! capability at `base_window(watermark)`, where the watermark is the minimum over this
//! worker's active slots (Kafka partitions) of `max event time − allowed lateness`; a slot that
//! has been silent for the idle timeout no longer holds it back. An observation is sent at its
//! own window's start, or at the capability when that window is already behind the watermark
//! (it may still be open elsewhere: the window operator decides lateness against the
//! *combined* frontier). Downstream, a window closes once every worker's capability has passed
//! its end, which is exactly "the combined watermark passed the window end".
//!
//! For sources that acknowledge input (Kafka), the operator also records, per slot and per
//! timely time, the lowest position whose observations were sent at that time. When the sinks
//! have durably written everything before frontier `F` (the job reports it through `durable`),
//! every position below the lowest one recorded at a time `≥ F` is safe to commit.

use crate::stats::{PartitionProgress, PipelineStats};
use crate::windows::window_start;
use crossbeam_channel::Sender;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::Duration;
use tidemark_connectors::lines::Line;
use tidemark_connectors::privacy::Pii;
use tidemark_connectors::source::now_ms;
use tidemark_connectors::{Decoder, LineSource, Observation, ObservationSink, Origin, SeriesInfo, SourceStatus};
use tidemark_schemas::{DeadLetter, DeadLetterReason, OutputBatch};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::operators::Capability;
use timely::dataflow::operators::generic::OutputBuilder;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::{Scope, Stream};
use tracing::{error, warn};

/// Lines read per activation: large enough to amortise scheduling, small enough that the
/// worker interleaves aggregation and keeps latency low.
const LINES_PER_ACTIVATION: usize = 4096;

/// What the source operator needs besides the lines.
pub struct SourceContext {
    /// Name used in dead letters.
    pub name: Arc<str>,
    /// Base window size, ms.
    pub base_ms: u64,
    /// Allowed lateness, ms.
    pub lateness_ms: u64,
    /// Largest accepted line, for the oversized dead letter's detail.
    pub max_line_bytes: usize,
    /// Where dead letters go.
    pub output: Sender<OutputBatch>,
    /// Counters.
    pub stats: Arc<PipelineStats>,
    /// Set to stop reading (Ctrl-C): the source then closes, so open windows flush.
    pub stop: Arc<AtomicBool>,
    /// Every result before this timely time is durable in every sink (set by the job).
    pub durable: Arc<AtomicU64>,
    /// Set by the operator once it has closed and made its last acknowledgement.
    pub finished: Arc<AtomicBool>,
    /// The largest window size, ms: input is acknowledged only once every window it
    /// contributed to has closed and can no longer be corrected.
    pub largest_window_ms: u64,
    /// How long closed windows accept corrections, ms (0 when late events are dead-lettered).
    pub correction_horizon_ms: u64,
    /// Personal fields to redact from dead letters' original bytes.
    pub pii: Option<Pii>,
}

#[derive(Default)]
struct Decoded {
    observations: Vec<Observation>,
    series: Vec<SeriesInfo>,
}

impl ObservationSink for Decoded {
    fn series(&mut self, info: SeriesInfo) {
        self.series.push(info);
    }
    fn observation(&mut self, observation: Observation) {
        self.observations.push(observation);
    }
}

/// Per-slot progress: event time for the watermark, positions for acknowledgements.
#[derive(Default)]
struct Slot {
    max_ts: Option<i64>,
    /// One past the last position read.
    next: Option<u64>,
    /// `(settle time, lowest position of an observation settling then)`, few entries.
    pending: Vec<(u64, u64)>,
    /// Lines read and dead-lettered, for the per-partition metrics.
    lines: u64,
    dead_letters: u64,
}

impl Slot {
    /// Records that the observation at `position` is final once results before `settle` are.
    fn sent(&mut self, settle: u64, position: u64) {
        if !self.pending.iter().any(|(s, _)| *s == settle) {
            self.pending.push((settle, position));
        }
    }

    /// The position up to which this slot may be acknowledged once results before `durable`
    /// are written.
    fn acknowledgeable(&mut self, durable: u64) -> Option<u64> {
        self.pending.retain(|(settle, _)| *settle > durable);
        let waiting = self.pending.iter().map(|(_, position)| *position).min();
        match (self.next, waiting) {
            (Some(next), Some(waiting)) => Some(next.min(waiting)),
            (next, None) => next,
            (None, Some(_)) => None,
        }
    }
}

/// Builds the source operator; returns the observation stream and the series catalog stream.
pub fn source<'s>(
    scope: Scope<'s, u64>,
    mut input: Box<dyn LineSource>,
    mut decoder: Decoder,
    ctx: SourceContext,
) -> (Stream<'s, u64, Vec<Observation>>, Stream<'s, u64, Vec<SeriesInfo>>) {
    let mut builder = OperatorBuilder::new("Source".to_owned(), scope);
    let info = builder.operator_info();
    let activator = scope.activator_for(info.address.clone());
    let (observations_out, observations) = builder.new_output::<Vec<Observation>>();
    let (catalog_out, catalog) = builder.new_output::<Vec<SeriesInfo>>();
    let mut observations_out = OutputBuilder::<_, CapacityContainerBuilder<Vec<Observation>>>::from(observations_out);
    let mut catalog_out = OutputBuilder::<_, CapacityContainerBuilder<Vec<SeriesInfo>>>::from(catalog_out);
    let commits = input.commits();
    let (top, horizon) = (ctx.largest_window_ms, ctx.correction_horizon_ms);
    let settled = move |time: u64| window_start(time, top) + top + horizon;
    let settled_before: Vec<u64> = (0..input.slots()).map(|slot| input.settled_before(slot)).collect();
    let partitions: Vec<Option<i32>> = (0..input.slots()).map(|slot| input.partition(slot)).collect();

    builder.build_reschedule(move |mut capabilities| {
        let mut catalog_cap: Option<Capability<u64>> = capabilities.pop();
        let mut observation_cap: Option<Capability<u64>> = capabilities.pop();
        let mut decoded = Decoded::default();
        let mut dead_letters: Vec<DeadLetter> = Vec::new();
        let mut by_time: Vec<(u64, Vec<Observation>)> = Vec::new();
        let mut slots: Vec<Slot> = (0..input.slots()).map(|_| Slot::default()).collect();
        let mut acknowledged_through = 0u64;
        // On a stop (not the end of the input), open windows are flushed early with partial
        // data; their input must not be acknowledged, so a restart recomputes them in full.
        let mut acknowledge_limit = u64::MAX;
        let mut warned: [bool; DeadLetterReason::ALL.len()] = Default::default();
        let mut next_publish_ms = 0;

        move |_frontiers| {
            let durable = ctx.durable.load(Relaxed).min(acknowledge_limit);
            if commits && durable > acknowledged_through {
                acknowledged_through = durable;
                let next: Vec<Option<u64>> = slots.iter_mut().map(|s| s.acknowledgeable(durable)).collect();
                let last = durable == acknowledge_limit;
                if let Err(e) = input.commit(&next, durable, last) {
                    warn!(source = %ctx.name, error = %e, "acknowledging input failed; it will be retried with the next one");
                }
            }
            let (Some(obs_cap), Some(cat_cap)) = (observation_cap.as_mut(), catalog_cap.as_mut()) else {
                let done = !commits || acknowledged_through >= acknowledge_limit;
                if done {
                    ctx.finished.store(true, Relaxed);
                } else {
                    activator.activate_after(Duration::from_millis(10));
                }
                return !done;
            };
            let current = *obs_cap.time();
            let status = if ctx.stop.load(Relaxed) {
                acknowledge_limit = current;
                SourceStatus::Done
            } else {
                let (mut lines, mut bytes_read) = (0u64, 0u64);
                let result = input.read(LINES_PER_ACTIVATION, &mut |origin: Origin<'_>, line| {
                    lines += 1;
                    let slot = &mut slots[origin.slot];
                    slot.lines += 1;
                    slot.next = Some(origin.position + 1);
                    let (reason, detail, original, truncated) = match line {
                        Line::Complete(bytes) => {
                            bytes_read += bytes.len() as u64 + 1;
                            let before = decoded.observations.len();
                            match decoder.decode(bytes, &mut decoded) {
                                Ok(()) if decoded.observations[before..]
                                    .iter()
                                    .any(|obs| settled(window_start(obs.ts as u64, ctx.base_ms)) <= settled_before[origin.slot]) =>
                                {
                                    decoded.observations.truncate(before);
                                    let detail = format!(
                                        "its windows were final before this run started (settled through {})",
                                        settled_before[origin.slot]
                                    );
                                    (DeadLetterReason::TooLate, detail, bytes, false)
                                }
                                Ok(()) => {
                                    for obs in &decoded.observations[before..] {
                                        slot.max_ts = Some(slot.max_ts.map_or(obs.ts, |m| m.max(obs.ts)));
                                        if commits {
                                            // Its windows are final once they settled, and its
                                            // own results (sent at `time`) are durable.
                                            let start = window_start(obs.ts as u64, ctx.base_ms);
                                            let time = start.max(current);
                                            slot.sent(settled(start).max(time + 1), origin.position);
                                        }
                                    }
                                    return;
                                }
                                Err(e) => {
                                    // A line is used whole or not at all.
                                    decoded.observations.truncate(before);
                                    (e.reason, e.detail, bytes, false)
                                }
                            }
                        }
                        Line::Rejected { original, reason, detail } => {
                            bytes_read += original.len() as u64;
                            (reason, detail, original, false)
                        }
                        Line::Oversized { prefix, len } => {
                            bytes_read += len + 1;
                            let detail = format!("line of {len} bytes is longer than max_line_bytes = {}", ctx.max_line_bytes);
                            (DeadLetterReason::Oversized, detail, prefix, true)
                        }
                    };
                    let original = match &ctx.pii {
                        Some(pii) => pii.redact(original).into_owned(),
                        None => original.to_vec(),
                    };
                    dead_letters.push(DeadLetter {
                        reason,
                        detail,
                        source: ctx.name.clone(),
                        position: origin.position,
                        original,
                        truncated,
                        partition: partitions[origin.slot],
                        key: origin.key.map(<[u8]>::to_vec),
                    });
                });
                ctx.stats.lines.fetch_add(lines, Relaxed);
                let now = now_ms();
                if lines > 0 {
                    ctx.stats.mark_read(now);
                }
                if now >= next_publish_ms {
                    next_publish_ms = now + PUBLISH_EVERY_MS;
                    publish_partitions(&slots, &partitions, &*input, &ctx);
                }
                ctx.stats.bytes.fetch_add(bytes_read, Relaxed);
                result.unwrap_or_else(|e| {
                    error!(source = %ctx.name, error = %e, "reading the source failed; closing it");
                    SourceStatus::Done
                })
            };

            if !decoded.series.is_empty() {
                catalog_out.activate().session(&*cat_cap).give_container(&mut decoded.series);
            }
            if !decoded.observations.is_empty() {
                ctx.stats.observations.fetch_add(decoded.observations.len() as u64, Relaxed);
                let mut newest = i64::MIN;
                for obs in decoded.observations.drain(..) {
                    newest = newest.max(obs.ts);
                    let time = window_start(obs.ts as u64, ctx.base_ms).max(current);
                    match by_time.iter_mut().find(|(t, _)| *t == time) {
                        Some((_, batch)) => batch.push(obs),
                        None => by_time.push((time, vec![obs])),
                    }
                }
                ctx.stats.observe_event_time(newest);
                let mut output = observations_out.activate();
                for (time, batch) in by_time.iter_mut() {
                    let cap = obs_cap.delayed(time);
                    output.session(&cap).give_container(batch);
                }
                by_time.clear();
            }
            if !dead_letters.is_empty() {
                for letter in &dead_letters {
                    let seen = &mut warned[letter.reason as usize];
                    if !*seen {
                        *seen = true;
                        warn!(source = %ctx.name, reason = %letter.reason, detail = %letter.detail, position = letter.position,
                              "dead-lettering input (logged once per reason; all are counted and written to the dead-letter output)");
                    }
                    ctx.stats.add_dead_letters(letter.reason, 1);
                }
                let batch = OutputBatch { dead_letters: std::mem::take(&mut dead_letters), ..OutputBatch::default() };
                if ctx.output.send(batch).is_err() {
                    error!("the sinks have stopped; dead letters cannot be written");
                }
            }

            match status {
                SourceStatus::Done => {
                    observation_cap = None;
                    catalog_cap = None;
                    activator.activate();
                }
                SourceStatus::Progress | SourceStatus::Idle(_) => {
                    if let Some(watermark) = watermark(&slots, &*input, ctx.lateness_ms) {
                        let time = window_start(watermark, ctx.base_ms);
                        if time > current {
                            obs_cap.downgrade(&time);
                            cat_cap.downgrade(&time);
                        }
                    }
                    match status {
                        SourceStatus::Idle(delay) => activator.activate_after(delay),
                        _ => activator.activate(),
                    }
                }
            }
            true
        }
    });
    (observations, catalog)
}

/// How often a worker publishes the progress of its partitions.
const PUBLISH_EVERY_MS: i64 = 1000;

fn publish_partitions(slots: &[Slot], partitions: &[Option<i32>], input: &dyn LineSource, ctx: &SourceContext) {
    for (index, (slot, partition)) in slots.iter().zip(partitions).enumerate() {
        let Some(partition) = *partition else { continue };
        let progress = PartitionProgress {
            events: slot.lines,
            dead_letters: slot.dead_letters,
            next_offset: slot.next.or_else(|| input.start_position(index)),
            end_offset: input.end_position(index),
            watermark_ms: slot.max_ts.map(|ts| ts - ctx.lateness_ms as i64),
        };
        ctx.stats.publish_partition(partition, progress);
    }
}

/// The minimum over active slots of `max event time − lateness`; `None` while an active slot
/// has seen nothing yet (it may still deliver old events).
///
/// When every slot is idle the source has caught up with its input, and event time follows the
/// wall clock instead (`now − lateness`, or the newest event time if that is ahead): windows in
/// the past close although no event arrives to push them, and anything that does arrive later
/// is a late event, corrected within the horizon.
fn watermark(slots: &[Slot], input: &dyn LineSource, lateness_ms: u64) -> Option<u64> {
    let mut lowest: Option<i64> = None;
    let mut active = false;
    for (index, slot) in slots.iter().enumerate() {
        if input.is_idle(index) {
            continue;
        }
        active = true;
        let max_ts = slot.max_ts?;
        lowest = Some(lowest.map_or(max_ts, |l| l.min(max_ts)));
    }
    if !active && !slots.is_empty() {
        let newest = slots.iter().filter_map(|s| s.max_ts).max().unwrap_or(i64::MIN);
        lowest = Some(now_ms().max(newest));
    }
    lowest.map(|ts| (ts as u64).saturating_sub(lateness_ms))
}
