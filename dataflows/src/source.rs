//! The source operator: reads lines, decodes them, stamps observations with event time and
//! holds back the frontier at this worker's watermark.
//!
//! Timely times are window starts of the base size, in epoch ms. The operator holds one
//! capability at `base_window(max event time − allowed lateness)`; an observation is sent at
//! its own window's start, or at the capability when that window is already behind this
//! worker's watermark (it may still be open elsewhere: the aggregator decides lateness against
//! the *combined* frontier). Downstream, a window closes once every worker's capability has
//! passed its end, which is exactly "the combined watermark passed the window end".

use crate::stats::PipelineStats;
use crate::windows::window_start;
use crossbeam_channel::Sender;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use tidemark_connectors::lines::Line;
use tidemark_connectors::{Decoder, LineSource, Observation, ObservationSink, SeriesInfo, SourceStatus};
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

    builder.build(move |mut capabilities| {
        let mut catalog_cap: Option<Capability<u64>> = capabilities.pop();
        let mut observation_cap: Option<Capability<u64>> = capabilities.pop();
        let mut decoded = Decoded::default();
        let mut dead_letters: Vec<DeadLetter> = Vec::new();
        let mut by_time: Vec<(u64, Vec<Observation>)> = Vec::new();
        let mut max_ts: i64 = i64::MIN;
        let mut warned: [bool; DeadLetterReason::ALL.len()] = Default::default();

        move |_frontiers| {
            let (Some(obs_cap), Some(cat_cap)) = (observation_cap.as_mut(), catalog_cap.as_mut()) else {
                return;
            };
            let status = if ctx.stop.load(Relaxed) {
                SourceStatus::Done
            } else {
                let (mut lines, mut bytes_read) = (0u64, 0u64);
                let result = input.read(LINES_PER_ACTIVATION, &mut |position, line| {
                    lines += 1;
                    match line {
                        Line::Complete(bytes) => {
                            bytes_read += bytes.len() as u64 + 1;
                            if let Err(e) = decoder.decode(bytes, &mut decoded) {
                                dead_letters.push(DeadLetter {
                                    reason: e.reason,
                                    detail: e.detail,
                                    source: ctx.name.clone(),
                                    position,
                                    original: bytes.to_vec(),
                                    truncated: false,
                                });
                            }
                        }
                        Line::Oversized { prefix, len } => {
                            bytes_read += len + 1;
                            dead_letters.push(DeadLetter {
                            reason: DeadLetterReason::Oversized,
                            detail: format!("line of {len} bytes is longer than max_line_bytes = {}", ctx.max_line_bytes),
                            source: ctx.name.clone(),
                            position,
                            original: prefix.to_vec(),
                            truncated: true,
                        })
                        }
                    }
                });
                ctx.stats.lines.fetch_add(lines, Relaxed);
                ctx.stats.bytes.fetch_add(bytes_read, Relaxed);
                result.unwrap_or_else(|e| {
                    error!(source = %ctx.name, error = %e, "reading the source failed; closing it");
                    SourceStatus::Done
                })
            };

            let current = *obs_cap.time();
            if !decoded.series.is_empty() {
                catalog_out.activate().session(&*cat_cap).give_container(&mut decoded.series);
            }
            if !decoded.observations.is_empty() {
                ctx.stats.observations.fetch_add(decoded.observations.len() as u64, Relaxed);
                for obs in decoded.observations.drain(..) {
                    max_ts = max_ts.max(obs.ts);
                    let time = window_start(obs.ts as u64, ctx.base_ms).max(current);
                    match by_time.iter_mut().find(|(t, _)| *t == time) {
                        Some((_, batch)) => batch.push(obs),
                        None => by_time.push((time, vec![obs])),
                    }
                }
                ctx.stats.observe_event_time(max_ts);
                let mut output = observations_out.activate();
                for (time, batch) in by_time.iter_mut() {
                    if !batch.is_empty() {
                        let cap = obs_cap.delayed(time);
                        output.session(&cap).give_container(batch);
                    }
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
                }
                SourceStatus::Progress | SourceStatus::Idle(_) => {
                    if max_ts != i64::MIN {
                        let watermark = (max_ts as u64).saturating_sub(ctx.lateness_ms);
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
        }
    });
    (observations, catalog)
}
