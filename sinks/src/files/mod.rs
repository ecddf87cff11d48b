//! File sinks: what the embedded default writes, and what `replay` exports.
//!
//! Each file is written through one `BufWriter` and flushed after every batch, so a reader
//! (`tail -f`, a test) sees complete lines as soon as a window closes.

mod csv;
mod dead_letters;
mod line_protocol;
mod ndjson;

pub use self::csv::CsvExport;
pub use dead_letters::DeadLetterFile;
pub use line_protocol::LineProtocolFile;
pub use ndjson::NdjsonStream;

use crate::SinkError;
use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

/// Creates `path` (and its directory) for writing.
fn create(sink: &'static str, path: &Path) -> Result<BufWriter<File>, SinkError> {
    let fail = |error| SinkError::File {
        sink,
        path: path.display().to_string(),
        error,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(fail)?;
    }
    Ok(BufWriter::with_capacity(1 << 16, File::create(path).map_err(fail)?))
}

fn io_error<'a>(sink: &'static str, path: &'a Path) -> impl Fn(std::io::Error) -> SinkError + 'a {
    move |error| SinkError::File {
        sink,
        path: path.display().to_string(),
        error,
    }
}

/// A file path and its writer.
struct OutputFile {
    path: PathBuf,
    writer: BufWriter<File>,
}
