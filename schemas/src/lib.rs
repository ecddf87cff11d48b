//! The shapes of tidemark's data.
//!
//! Everything that crosses a crate boundary lives here, so that sources, dataflows and sinks
//! agree on one definition:
//!
//! * [`event`]: the event kinds users send (a generic metric event and six typed events) and the
//!   fields each kind carries;
//! * [`definitions`]: which metrics each event kind yields, configurable so users add their own
//!   KPIs without code;
//! * [`series`]: the canonical series key (`metric|k1=v1|k2=v2`) and its stable 64-bit id;
//! * [`output`]: the records the pipeline emits (window results, dead letters).

pub mod alert;
pub mod definitions;
pub mod event;
pub mod output;
pub mod series;

pub use alert::{AlertEvent, AlertState, Severity};
pub use definitions::{Aggregation, DefinitionError, MetricDefinition, MetricDefinitions};
pub use event::{EventKind, FieldSpec, FieldType};
pub use output::{
    Acknowledgement, Aggregates, AnomalyScore, DeadLetter, DeadLetterReason, ForecastPoint, OutputBatch, UpdateKind,
    WindowUpdate,
};
pub use series::{SeriesId, SeriesKeyBuilder};
