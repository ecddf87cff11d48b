//! Reading NDJSON: whole files split into per-worker byte ranges, or stdin.
//!
//! Parsing dominates the cost of a replay, so every worker must parse: a file of `n` bytes is
//! cut into `workers` byte ranges, and worker `i` owns the lines that *start* inside its range
//! (it skips the partial line at its start, which belongs to its predecessor, and finishes the
//! line that crosses its end). Lines are handed out as slices of one reused buffer.
//!
//! A line longer than the limit is not buffered whole: its first bytes are kept for the dead
//! letter and the rest is skipped, so a 10 GB line costs no more memory than a 10 kB one.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

/// How many bytes of an oversized line the dead letter keeps.
pub const OVERSIZED_PREFIX_BYTES: usize = 4096;

/// One line handed to the consumer.
#[derive(Debug, PartialEq, Eq)]
pub enum Line<'a> {
    /// A complete line, without its `\n` (and `\r`).
    Complete(&'a [u8]),
    /// A line longer than the limit: its first bytes and its full length.
    Oversized {
        /// The first [`OVERSIZED_PREFIX_BYTES`] bytes.
        prefix: &'a [u8],
        /// The full length in bytes.
        len: u64,
    },
    /// A message the source itself could not turn into a line (e.g. undecodable Avro).
    Rejected {
        /// The original bytes.
        original: &'a [u8],
        /// Why.
        reason: tidemark_schemas::DeadLetterReason,
        /// Details.
        detail: String,
    },
}

/// Reads the lines of one byte range of a stream.
pub struct LineReader {
    input: Box<dyn Read + Send>,
    buf: Vec<u8>,
    /// Valid bytes are `buf[head..tail]`.
    head: usize,
    tail: usize,
    /// Stream offset of `buf[head]`.
    offset: u64,
    /// Lines starting at or after this offset belong to the next range.
    end: u64,
    max_line_bytes: usize,
    eof: bool,
    /// The input had nothing for the last read and said so rather than block.
    waiting: bool,
    oversized: Vec<u8>,
}

impl LineReader {
    /// Reads the share of `path` owned by worker `index` of `workers`.
    pub fn file_share(path: &Path, index: usize, workers: usize, max_line_bytes: usize) -> io::Result<Self> {
        let mut file = File::open(path)?;
        let len = file.metadata()?.len();
        let share = |i: usize| len * i as u64 / workers as u64;
        let (start, end) = (share(index), share(index + 1));
        let mut reader = if start == 0 {
            LineReader::new(Box::new(file), 0, end, max_line_bytes)
        } else {
            file.seek(SeekFrom::Start(start - 1))?;
            let mut reader = LineReader::new(Box::new(file), start - 1, end, max_line_bytes);
            reader.skip_partial_line()?;
            reader
        };
        if start == end {
            reader.eof = true;
        }
        Ok(reader)
    }

    /// Reads all of `input` (stdin, a pipe).
    pub fn stream(input: Box<dyn Read + Send>, max_line_bytes: usize) -> Self {
        LineReader::new(input, 0, u64::MAX, max_line_bytes)
    }

    fn new(input: Box<dyn Read + Send>, offset: u64, end: u64, max_line_bytes: usize) -> Self {
        let capacity = (max_line_bytes + 1).clamp(64 * 1024, 4 * 1024 * 1024).max(1 << 20);
        LineReader {
            input,
            buf: vec![0; capacity],
            head: 0,
            tail: 0,
            offset,
            end,
            max_line_bytes,
            eof: false,
            waiting: false,
            oversized: Vec::new(),
        }
    }

    /// Whether the last read found no new input yet (a quiet non-blocking stream).
    pub fn is_waiting(&self) -> bool {
        self.waiting
    }

    /// Whether every line of the range has been handed out.
    pub fn is_done(&self) -> bool {
        self.offset >= self.end || (self.eof && self.head == self.tail)
    }

    /// Hands up to `budget` lines to `visit` with the byte offset where each starts. Empty and
    /// blank lines are skipped. Returns the number of lines handed out.
    pub fn read_batch(&mut self, budget: usize, visit: &mut dyn FnMut(u64, Line<'_>)) -> io::Result<usize> {
        let mut handed = 0;
        while handed < budget && !self.is_done() {
            match memchr::memchr(b'\n', &self.buf[self.head..self.tail]) {
                Some(pos) => {
                    let start = self.head;
                    let line_offset = self.offset;
                    self.advance(pos + 1);
                    if pos > self.max_line_bytes {
                        let prefix = &self.buf[start..start + OVERSIZED_PREFIX_BYTES.min(pos)];
                        visit(
                            line_offset,
                            Line::Oversized {
                                prefix,
                                len: pos as u64,
                            },
                        );
                        handed += 1;
                        continue;
                    }
                    let line = trim_cr(&self.buf[start..start + pos]);
                    if !line.iter().all(u8::is_ascii_whitespace) {
                        visit(line_offset, Line::Complete(line));
                        handed += 1;
                    }
                }
                None if self.eof => {
                    let (start, len) = (self.head, self.tail - self.head);
                    let line_offset = self.offset;
                    self.advance(len);
                    let line = trim_cr(&self.buf[start..start + len]);
                    if len > self.max_line_bytes {
                        let prefix = &self.buf[start..start + OVERSIZED_PREFIX_BYTES.min(len)];
                        visit(
                            line_offset,
                            Line::Oversized {
                                prefix,
                                len: len as u64,
                            },
                        );
                        handed += 1;
                    } else if !line.iter().all(u8::is_ascii_whitespace) {
                        visit(line_offset, Line::Complete(line));
                        handed += 1;
                    }
                }
                None if self.tail - self.head > self.max_line_bytes => {
                    let line_offset = self.offset;
                    let len = self.skip_oversized()?;
                    visit(
                        line_offset,
                        Line::Oversized {
                            prefix: &self.oversized,
                            len,
                        },
                    );
                    handed += 1;
                }
                // Hand over what is complete rather than wait on a slow pipe for a full budget.
                None if handed > 0 => break,
                None => {
                    self.fill()?;
                    if self.waiting {
                        break;
                    }
                }
            }
        }
        Ok(handed)
    }

    fn advance(&mut self, n: usize) {
        self.head += n;
        self.offset += n as u64;
    }

    /// Moves unread bytes to the front and reads more; sets `eof` at the end of input and
    /// `waiting` when a non-blocking input has nothing yet.
    fn fill(&mut self) -> io::Result<()> {
        if self.head > 0 {
            self.buf.copy_within(self.head..self.tail, 0);
            self.tail -= self.head;
            self.head = 0;
        }
        self.waiting = false;
        loop {
            match self.input.read(&mut self.buf[self.tail..]) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.waiting = true;
                    return Ok(());
                }
                Ok(n) => {
                    self.tail += n;
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Keeps the prefix of the over-long line at `head` and discards the rest of it.
    fn skip_oversized(&mut self) -> io::Result<u64> {
        self.oversized.clear();
        self.oversized
            .extend_from_slice(&self.buf[self.head..self.head + OVERSIZED_PREFIX_BYTES.min(self.tail - self.head)]);
        let mut len = 0u64;
        loop {
            if let Some(pos) = memchr::memchr(b'\n', &self.buf[self.head..self.tail]) {
                len += pos as u64;
                self.advance(pos + 1);
                return Ok(len);
            }
            let chunk = self.tail - self.head;
            len += chunk as u64;
            self.advance(chunk);
            if self.eof {
                return Ok(len);
            }
            self.fill()?;
        }
    }

    /// Discards bytes through the first newline: the line there belongs to the previous range.
    fn skip_partial_line(&mut self) -> io::Result<()> {
        loop {
            if let Some(pos) = memchr::memchr(b'\n', &self.buf[self.head..self.tail]) {
                self.advance(pos + 1);
                return Ok(());
            }
            let chunk = self.tail - self.head;
            self.advance(chunk);
            if self.eof {
                return Ok(());
            }
            self.fill()?;
        }
    }
}

fn trim_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn collect(reader: &mut LineReader) -> Vec<(u64, String)> {
        let mut out = Vec::new();
        while !reader.is_done() {
            reader
                .read_batch(3, &mut |offset, line| {
                    let text = match line {
                        Line::Complete(bytes) => String::from_utf8_lossy(bytes).into_owned(),
                        Line::Oversized { prefix, len } => format!("OVERSIZED {len} {}", prefix.len()),
                        Line::Rejected { reason, .. } => format!("REJECTED {reason}"),
                    };
                    out.push((offset, text));
                })
                .unwrap();
        }
        out
    }

    fn temp_file(contents: &[u8]) -> std::path::PathBuf {
        let path = std::env::temp_dir().join(format!(
            "tidemark-lines-{}-{}",
            std::process::id(),
            xxhash_rust::xxh3::xxh3_64(contents)
        ));
        File::create(&path).unwrap().write_all(contents).unwrap();
        path
    }

    #[test]
    fn shares_partition_the_lines_exactly_once() {
        let mut text = String::new();
        for i in 0..1000 {
            text.push_str(&format!("line-{i}-{}\n", "x".repeat(i % 37)));
        }
        text.push_str("last-without-newline");
        let path = temp_file(text.as_bytes());
        let expected: Vec<String> = text.lines().map(String::from).collect();
        for workers in [1, 2, 3, 7, 64] {
            let mut all: Vec<(u64, String)> = (0..workers)
                .flat_map(|i| collect(&mut LineReader::file_share(&path, i, workers, 1 << 20).unwrap()))
                .collect();
            all.sort();
            let lines: Vec<String> = all.into_iter().map(|(_, l)| l).collect();
            assert_eq!(lines, expected, "workers={workers}");
        }
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn offsets_point_at_line_starts_and_blank_lines_are_skipped() {
        let data = b"a\r\n\n  \nbb\n".to_vec();
        let mut reader = LineReader::stream(Box::new(io::Cursor::new(data)), 100);
        assert_eq!(collect(&mut reader), vec![(0, "a".into()), (7, "bb".into())]);
    }

    #[test]
    fn oversized_lines_keep_a_prefix_and_do_not_stop_the_stream() {
        let big = "y".repeat(3 * 1024 * 1024);
        let data = format!("ok1\n{big}\nok2\n{big}");
        let mut reader = LineReader::stream(Box::new(io::Cursor::new(data.into_bytes())), 1024);
        let got = collect(&mut reader);
        let len = big.len();
        assert_eq!(
            got,
            vec![
                (0, "ok1".into()),
                (4, format!("OVERSIZED {len} {OVERSIZED_PREFIX_BYTES}")),
                (5 + len as u64, "ok2".into()),
                (9 + len as u64, format!("OVERSIZED {len} {OVERSIZED_PREFIX_BYTES}")),
            ]
        );
    }
}
