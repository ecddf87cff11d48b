//! The sink thread.

use crate::{Sink, SinkError};
use crossbeam_channel::Receiver;
use std::thread::JoinHandle;
use tidemark_schemas::OutputBatch;

/// What the sinks did.
#[derive(Debug, Default)]
pub struct SinkReport {
    /// Window rows received.
    pub rows: u64,
    /// Dead letters received.
    pub dead_letters: u64,
    /// Per sink: its name, records written and where they went.
    pub outputs: Vec<(&'static str, u64, String)>,
}

/// The running sink thread.
pub struct SinkRunner {
    handle: JoinHandle<Result<SinkReport, SinkError>>,
}

impl SinkRunner {
    /// Waits until every sender is dropped and every sink has finished.
    pub fn join(self) -> Result<SinkReport, SinkError> {
        self.handle
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    }
}

/// A step the sink thread runs on every batch before the sinks see it (the alert rule engine).
pub trait Stage: Send {
    /// Inspects and extends the batch.
    fn process(&mut self, batch: &mut OutputBatch) -> Result<(), SinkError>;
}

/// Starts the sink thread: every batch from `batches` goes through the `stages`, then to all
/// `sinks`.
pub fn spawn_sinks(
    mut stages: Vec<Box<dyn Stage>>,
    mut sinks: Vec<Box<dyn Sink>>,
    batches: Receiver<OutputBatch>,
) -> SinkRunner {
    let handle = std::thread::Builder::new()
        .name("tidemark-sinks".into())
        .spawn(move || {
            let mut report = SinkReport::default();
            for mut batch in batches {
                for stage in stages.iter_mut() {
                    stage.process(&mut batch)?;
                }
                report.rows += batch.windows.len() as u64;
                report.dead_letters += batch.dead_letters.len() as u64;
                for sink in sinks.iter_mut() {
                    sink.write(&batch)?;
                }
                if let Some(acknowledgement) = batch.acknowledgement.take() {
                    for sink in sinks.iter_mut() {
                        sink.flush()?;
                    }
                    acknowledgement.acknowledge();
                }
            }
            for sink in sinks.iter_mut() {
                sink.finish()?;
                report.outputs.push((sink.name(), sink.written(), sink.describe()));
            }
            Ok(report)
        })
        .expect("spawning the sink thread");
    SinkRunner { handle }
}
