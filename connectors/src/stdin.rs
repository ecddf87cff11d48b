//! Standard input that never blocks the worker.
//!
//! Reading stdin directly would park the timely worker inside `read` whenever the pipe is
//! quiet: no window could close on the source's behalf, and a stop signal would wait for the
//! next line. A thread reads stdin instead and hands over chunks through a bounded channel (so
//! a slow pipeline still pushes back on the writer); the reader side answers
//! [`io::ErrorKind::WouldBlock`] when nothing has arrived, and the source reports itself idle.

use std::io::{self, Read};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, sync_channel};

/// Bytes read from stdin per chunk.
const CHUNK_BYTES: usize = 64 * 1024;
/// Chunks in flight between the reading thread and the worker.
const CHUNKS_IN_FLIGHT: usize = 16;

/// A non-blocking reader of what a thread reads from `input` (stdin in production).
pub struct ThreadedReader {
    chunks: Receiver<io::Result<Vec<u8>>>,
    current: Vec<u8>,
    consumed: usize,
}

impl ThreadedReader {
    /// Starts a thread reading `input` to its end.
    pub fn spawn(input: Box<dyn Read + Send>) -> io::Result<Self> {
        let (sender, chunks) = sync_channel(CHUNKS_IN_FLIGHT);
        std::thread::Builder::new()
            .name("tidemark-stdin".into())
            .spawn(move || pump(input, sender))?;
        Ok(ThreadedReader {
            chunks,
            current: Vec::new(),
            consumed: 0,
        })
    }
}

/// Reads `input` into chunks until its end, an error, or the reader going away.
fn pump(mut input: Box<dyn Read + Send>, sender: SyncSender<io::Result<Vec<u8>>>) {
    loop {
        let mut chunk = vec![0; CHUNK_BYTES];
        let read = match input.read(&mut chunk) {
            Ok(0) => return,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                let _ = sender.send(Err(e));
                return;
            }
        };
        chunk.truncate(read);
        if sender.send(Ok(chunk)).is_err() {
            return;
        }
    }
}

impl Read for ThreadedReader {
    /// Copies what has arrived; `WouldBlock` when nothing has, `Ok(0)` at the end of input.
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.consumed == self.current.len() {
            match self.chunks.try_recv() {
                Ok(chunk) => {
                    self.current = chunk?;
                    self.consumed = 0;
                }
                Err(TryRecvError::Empty) => return Err(io::ErrorKind::WouldBlock.into()),
                Err(TryRecvError::Disconnected) => return Ok(0),
            }
        }
        let n = out.len().min(self.current.len() - self.consumed);
        out[..n].copy_from_slice(&self.current[self.consumed..self.consumed + n]);
        self.consumed += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    /// A pipe whose writer the test holds.
    fn pipe() -> (ThreadedReader, std::io::PipeWriter) {
        let (reader, writer) = std::io::pipe().unwrap();
        (ThreadedReader::spawn(Box::new(reader)).unwrap(), writer)
    }

    fn read_until(reader: &mut ThreadedReader, want: usize) -> Vec<u8> {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut got = Vec::new();
        let mut buf = [0; 7];
        while got.len() < want {
            match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    assert!(Instant::now() < deadline, "data never arrived");
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(e) => panic!("{e}"),
            }
        }
        got
    }

    #[test]
    fn a_quiet_pipe_would_block_instead_of_blocking_and_data_and_eof_follow() {
        use std::io::Write;
        let (mut reader, mut writer) = pipe();
        let mut buf = [0; 16];
        assert_eq!(reader.read(&mut buf).unwrap_err().kind(), io::ErrorKind::WouldBlock);
        writer.write_all(b"first line\nsecond").unwrap();
        assert_eq!(read_until(&mut reader, 17), b"first line\nsecond");
        writer.write_all(b" line\n").unwrap();
        drop(writer);
        assert_eq!(read_until(&mut reader, usize::MAX), b" line\n", "then the end of input");
        assert_eq!(reader.read(&mut buf).unwrap(), 0);
    }
}
