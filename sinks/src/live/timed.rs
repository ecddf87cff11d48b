//! A sink wrapper that records how long each write takes, so `/metrics` shows which sink
//! holds the pipeline back (the sink thread writes to every sink in turn).

use crate::{Sink, SinkError};
use prometheus::Histogram;
use std::time::Instant;
use tidemark_schemas::OutputBatch;

/// Times every `write` of the wrapped sink into a histogram.
pub struct Timed {
    inner: Box<dyn Sink>,
    histogram: Histogram,
}

impl Timed {
    /// Wraps `inner`, recording into `histogram`.
    pub fn new(inner: Box<dyn Sink>, histogram: Histogram) -> Self {
        Timed { inner, histogram }
    }
}

impl Sink for Timed {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn write(&mut self, batch: &OutputBatch) -> Result<(), SinkError> {
        let started = Instant::now();
        let result = self.inner.write(batch);
        self.histogram.observe(started.elapsed().as_secs_f64());
        result
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        self.inner.flush()
    }

    fn finish(&mut self) -> Result<(), SinkError> {
        self.inner.finish()
    }

    fn written(&self) -> u64 {
        self.inner.written()
    }

    fn describe(&self) -> String {
        self.inner.describe()
    }
}
