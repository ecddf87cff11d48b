//! Late corrections, maintained incrementally by differential dataflow.
//!
//! The collection holds, per closed window, the compact partial it closed with
//! ([`Origin::Closed`]) plus one delta partial per late event ([`Origin::Late`]). A `reduce`
//! merges them per window; it emits only for windows that received a late event, and on each
//! further late event differential recomputes just that key and emits the new value, which the
//! sinks receive as an upsert replacing the earlier row. Nothing but the touched windows is
//! recomputed, however many windows are held.
//!
//! Memory stays bounded: every record is retracted again at `window end + correction horizon`
//! (a negated copy stamped with that future time, which differential applies when the frontier
//! gets there), after which the window accepts no more corrections — the window operator
//! dead-letters such events as `too_late` by the same rule.

use crate::aggregate::SeriesNames;
use crate::partial::{Partial, QuantilePolicy};
use crate::stats::PipelineStats;
use crossbeam_channel::Sender;
use differential_dataflow::AsCollection;
use differential_dataflow::hashable::Hashable;
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use tidemark_schemas::{OutputBatch, SeriesId, UpdateKind, WindowUpdate};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::Stream;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::Concat;
use timely::dataflow::operators::generic::Operator;
use tracing::error;

/// Identity of a window: series, size and start.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct WindowKey {
    /// The series.
    pub series: SeriesId,
    /// Window size, ms.
    pub size_ms: u64,
    /// Window start, epoch ms.
    pub start: u64,
}

/// Route by series, so a window's corrections are computed on the worker that owns the series
/// (and knows its key): the window operator exchanges by the same id.
impl Hashable for WindowKey {
    type Output = u64;
    fn hashed(&self) -> u64 {
        self.series.0
    }
}

/// Whether a partial is a window's state at closing or one late event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Origin {
    /// The window as it closed (already emitted as a final row).
    Closed,
    /// A late event.
    Late,
}

/// A differential update: `((window, (partial, origin)), time, diff)`.
pub type CorrectionUpdate = ((WindowKey, (Partial, Origin)), u64, isize);

/// What the corrections dataflow needs.
pub struct CorrectionContext {
    /// How long after its end a window accepts corrections, ms.
    pub horizon_ms: u64,
    /// Merging policy.
    pub quantiles: QuantilePolicy,
    /// Where corrected rows go.
    pub output: Sender<OutputBatch>,
    /// Series keys on this worker.
    pub names: Rc<RefCell<SeriesNames>>,
    /// Counters.
    pub stats: Arc<PipelineStats>,
}

/// Maintains corrected windows from the window operator's updates and sends each corrected
/// row to the sinks.
pub fn corrections<'s>(
    updates: Stream<'s, u64, Vec<CorrectionUpdate>>,
    ctx: CorrectionContext,
) -> Stream<'s, u64, Vec<()>> {
    let horizon = ctx.horizon_ms;
    let retractions = updates.clone().unary(Pipeline, "RetireAtHorizon", move |_, _| {
        move |input, output| {
            input.for_each(|cap, batch| {
                for ((key, value), time, diff) in batch.drain(..) {
                    let retire = (key.start + key.size_ms + horizon).max(time);
                    let delayed = cap.delayed(&retire, 0);
                    output.session(&delayed).give(((key, value), retire, -diff));
                }
            });
        }
    });
    let policy = ctx.quantiles;
    let corrected = updates
        .concat(retractions)
        .as_collection()
        .reduce(move |_key, input, output| {
            if let [((_, Origin::Closed), 1)] = input {
                return;
            }
            let mut merged: Option<Partial> = None;
            for ((partial, _), diff) in input {
                for _ in 0..(*diff).max(0) {
                    match &mut merged {
                        Some(m) => m.merge(partial, &policy),
                        None => merged = Some(partial.clone()),
                    }
                }
            }
            if let Some(merged) = merged {
                output.push((merged, 1isize));
            }
        });
    corrected
        .inner
        .unary::<CapacityContainerBuilder<Vec<()>>, _, _, _>(Pipeline, "EmitCorrections", move |_, _| {
            move |input, _output| {
                let mut rows: Vec<(u64, WindowUpdate)> = Vec::new();
                input.for_each(|_cap, batch| {
                    let names = ctx.names.borrow();
                    for ((key, mut partial), time, diff) in batch.drain(..) {
                        if diff > 0 {
                            rows.push((
                                time,
                                WindowUpdate {
                                    series: names.key(key.series),
                                    series_id: key.series,
                                    window_ms: key.size_ms,
                                    window_start: key.start as i64,
                                    kind: UpdateKind::Correction,
                                    aggregates: partial.aggregates(),
                                },
                            ));
                        }
                    }
                });
                if rows.is_empty() {
                    return;
                }
                // Upserts must reach the sinks in time order, so the last correction wins.
                rows.sort_by_key(|(time, _)| *time);
                ctx.stats.corrected_rows.fetch_add(rows.len() as u64, Relaxed);
                let batch = OutputBatch {
                    windows: rows.into_iter().map(|(_, row)| row).collect(),
                    ..OutputBatch::default()
                };
                if ctx.output.send(batch).is_err() {
                    error!("the sinks have stopped; corrections cannot be written");
                }
            }
        })
}
