//! A strict, zero-copy JSON object scanner for one event per line.
//!
//! Events are flat objects (plus one `tags` object of strings), so a general JSON tree is waste:
//! the floor program in the peer benchmark spends most of its time in `serde_json` building a
//! `BTreeMap` per line. This scanner validates the whole line against RFC 8259 and records only
//! *where* each top-level member and each member of a nested object is ([`Span`]s into the
//! line), into vectors reused across lines. Numbers are converted and strings unescaped only
//! when the decoder asks for a member, so a line costs one pass and no allocation.
//!
//! Errors carry a [`DeadLetterReason`](tidemark_schemas::DeadLetterReason): malformed input is
//! data to be dead-lettered, never a panic.

mod scan;
mod text;

pub use scan::{MAX_DEPTH, Member, ObjectScan, ScanError, Span, Value};
pub use text::{parse_f64, parse_i64, unescape_into};
