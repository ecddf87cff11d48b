//! The bounded on-disk spool: batches the server could not take, kept in order until it can.
//!
//! A directory of segment files (`00000000000000000001.seg`, …), each a sequence of
//! [`frame`](super::frame)d records, appended at the tail and replayed from the head:
//!
//! * **Durable before acknowledged**: [`append`](Spool::append) returns after `fsync`, and
//!   only then is the batch settled (counted as acknowledged to the pipeline). A `kill -9`
//!   can cut the record being written — never one already settled — and [`open`](Spool::open)
//!   finds such a torn tail by its length and checksum and cuts it off.
//! * **In order, deleted only when written**: the drain reads the oldest record
//!   ([`peek`](Spool::peek)) and moves past it ([`ack`](Spool::ack)) only after the server
//!   took it; a segment is deleted (and the directory synced) once all its records are past.
//!   After a crash the head segment is replayed from its start: the records already written
//!   are written again with the same values, which upserts make harmless.
//! * **Bounded**: when the segments would exceed `max_bytes`, `append` blocks until the drain
//!   has freed space; that blocks the writers, then the batcher, then the sink thread, then
//!   the sources — backpressure instead of unbounded growth. A record is always accepted by an
//!   empty spool, so an oversized batch cannot block for ever.
//! * **One process per spool**: the directory is created on first use (most runs never
//!   spool) and locked (`LOCK`, an advisory `flock`) from then on, so two processes
//!   configured with the same directory fail loudly instead of replaying each other's batches.

use super::frame::{self, Next, Record};
use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;
use tracing::warn;

/// One segment file.
struct Segment {
    id: u64,
    bytes: u64,
}

struct Inner {
    /// The locked `LOCK` file, once the directory exists.
    lock: Option<File>,
    /// Oldest first; the last one is the tail when `tail` is open.
    segments: VecDeque<Segment>,
    /// The segment being appended to (always a fresh one, never a recovered file).
    tail: Option<File>,
    /// Offset of the next record to replay in the head segment.
    head_offset: u64,
    /// Records not yet acknowledged by the drain.
    records: u64,
    /// Appends waiting for space.
    blocked: usize,
    /// The sink is being dropped: a full spool refuses instead of blocking.
    abandoned: bool,
}

/// See the module documentation.
pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    segment_bytes: u64,
    inner: Mutex<Inner>,
    changed: Condvar,
    /// Bytes on disk, readable without the lock (for `/metrics`).
    bytes: AtomicU64,
}

/// What the spool held when it was opened.
#[derive(Debug, Default, PartialEq)]
pub struct Recovered {
    /// Records found intact.
    pub records: u64,
    /// Bytes of a torn tail that were cut off.
    pub torn_bytes: u64,
}

/// Why an append did not happen.
#[derive(Debug)]
pub enum AppendError {
    /// The spool is full and the sink is being dropped.
    Full,
    /// Writing failed.
    Io(io::Error),
}

impl std::fmt::Display for AppendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AppendError::Full => f.write_str("the spool is full"),
            AppendError::Io(e) => e.fmt(f),
        }
    }
}

fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:020}.seg"))
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Creates `dir` if needed and locks it for this process.
fn lock_dir(dir: &Path) -> io::Result<File> {
    fs::create_dir_all(dir)?;
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join("LOCK"))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(fs::TryLockError::WouldBlock) => Err(io::Error::new(
            io::ErrorKind::ResourceBusy,
            "another process (or sink) uses this spool directory; give each tidemark process its own spool_dir",
        )),
        Err(fs::TryLockError::Error(e)) => Err(e),
    }
}

impl Spool {
    /// Opens (creating it if needed) the spool in `dir`, checking every record and cutting
    /// off a torn tail of the newest segment. A damaged record anywhere else is an error:
    /// records after it would be lost silently.
    pub fn open(dir: &Path, max_bytes: u64) -> io::Result<(Spool, Recovered)> {
        let lock = if dir.exists() { Some(lock_dir(dir)?) } else { None };
        let entries: Vec<io::Result<fs::DirEntry>> = match &lock {
            Some(_) => fs::read_dir(dir)?.collect(),
            None => Vec::new(),
        };
        let mut ids: Vec<u64> = entries
            .into_iter()
            .filter_map(|entry| {
                let name = entry.ok()?.file_name();
                name.to_str()?.strip_suffix(".seg")?.parse().ok()
            })
            .collect();
        ids.sort_unstable();
        let mut recovered = Recovered::default();
        let mut segments = VecDeque::new();
        for (index, id) in ids.iter().enumerate() {
            let path = segment_path(dir, *id);
            let (records, valid, len) = scan(&path)?;
            if valid < len {
                if index + 1 < ids.len() {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "{} is damaged at byte {valid} of {len} although newer segments follow; \
                             move it out of the spool directory to start (its batches will then be missing \
                             from InfluxDB: replay their input)",
                            path.display()
                        ),
                    ));
                }
                warn!(file = %path.display(), cut = len - valid, "cutting off a torn record left by a crash");
                OpenOptions::new().write(true).open(&path)?.set_len(valid)?;
                recovered.torn_bytes = len - valid;
            }
            if records == 0 {
                fs::remove_file(&path)?;
                continue;
            }
            recovered.records += records;
            segments.push_back(Segment { id: *id, bytes: valid });
        }
        if lock.is_some() {
            sync_dir(dir)?;
        }
        let bytes = segments.iter().map(|s| s.bytes).sum();
        let spool = Spool {
            dir: dir.to_path_buf(),
            max_bytes,
            segment_bytes: (max_bytes / 8).clamp(1 << 20, 64 << 20),
            inner: Mutex::new(Inner {
                lock,
                segments,
                tail: None,
                head_offset: 0,
                records: recovered.records,
                blocked: 0,
                abandoned: false,
            }),
            changed: Condvar::new(),
            bytes: AtomicU64::new(bytes),
        };
        Ok((spool, recovered))
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Where the segments are.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The capacity.
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// Bytes on disk.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Relaxed)
    }

    /// Records waiting to be written to the server.
    pub fn records(&self) -> u64 {
        self.lock().records
    }

    /// Whether every spooled record has been written (and its segment deleted).
    pub fn is_empty(&self) -> bool {
        self.lock().records == 0
    }

    /// Whether an append is waiting for space.
    pub fn is_full(&self) -> bool {
        self.lock().blocked > 0
    }

    /// Appends `record` and syncs it to disk, waiting while the spool is full.
    pub fn append(&self, record: &Record) -> Result<(), AppendError> {
        let len = record.framed_len();
        let mut inner = self.lock();
        while self.bytes() > 0 && self.bytes() + len > self.max_bytes {
            if inner.abandoned {
                return Err(AppendError::Full);
            }
            inner.blocked += 1;
            inner = self
                .changed
                .wait(inner)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            inner.blocked -= 1;
        }
        self.write_tail(&mut inner, record).map_err(AppendError::Io)?;
        inner.records += 1;
        self.changed.notify_all();
        Ok(())
    }

    fn write_tail(&self, inner: &mut Inner, record: &Record) -> io::Result<()> {
        let full = inner
            .segments
            .back()
            .is_some_and(|s| s.bytes > 0 && s.bytes + record.framed_len() > self.segment_bytes);
        if inner.lock.is_none() {
            inner.lock = Some(lock_dir(&self.dir)?);
        }
        if inner.tail.is_none() || full {
            let id = inner.segments.back().map_or(1, |s| s.id + 1);
            let file = OpenOptions::new()
                .create_new(true)
                .append(true)
                .open(segment_path(&self.dir, id))?;
            sync_dir(&self.dir)?;
            inner.tail = Some(file);
            inner.segments.push_back(Segment { id, bytes: 0 });
        }
        let tail = inner.tail.as_mut().expect("opened above");
        let written = tail
            .write_all(&frame::header(record))
            .and_then(|()| tail.write_all(&record.body))
            .and_then(|()| tail.sync_data());
        let segment = inner.segments.back_mut().expect("the tail segment");
        if let Err(e) = written {
            // Whatever part of the record reached the file is cut off, so that the next
            // record starts at a boundary.
            let _ = inner.tail.as_ref().map(|f| f.set_len(segment.bytes));
            return Err(e);
        }
        segment.bytes += record.framed_len();
        self.bytes.fetch_add(record.framed_len(), Relaxed);
        Ok(())
    }

    /// Waits up to `timeout` for a record to replay.
    pub fn wait_for_record(&self, timeout: Duration) -> bool {
        let inner = self.lock();
        let (inner, _) = self
            .changed
            .wait_timeout_while(inner, timeout, |inner| inner.records == 0)
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        inner.records > 0
    }

    /// The oldest record not yet acknowledged, if any.
    pub fn peek(&self) -> io::Result<Option<Record>> {
        let inner = self.lock();
        if inner.records == 0 {
            return Ok(None);
        }
        let head = inner.segments.front().expect("records live in segments");
        let mut file = BufReader::new(File::open(segment_path(&self.dir, head.id))?);
        file.seek(SeekFrom::Start(inner.head_offset))?;
        match frame::read(&mut file)? {
            Next::Record(record) => Ok(Some(record)),
            Next::End | Next::Torn => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "spool segment {} has no intact record at byte {}",
                    segment_path(&self.dir, head.id).display(),
                    inner.head_offset
                ),
            )),
        }
    }

    /// Moves past the record [`peek`](Self::peek) returned (the server has it), deleting its
    /// segment when that was the segment's last record.
    pub fn ack(&self, record: &Record) -> io::Result<()> {
        let mut inner = self.lock();
        inner.head_offset += record.framed_len();
        inner.records -= 1;
        let head = inner.segments.front().expect("an acknowledged record's segment");
        if inner.head_offset >= head.bytes {
            // Past the last record of its segment; when that is the tail, nothing was
            // appended after it, so the tail closes and the next append starts a new one.
            let head = inner.segments.pop_front().expect("checked above");
            if inner.segments.is_empty() {
                inner.tail = None;
            }
            fs::remove_file(segment_path(&self.dir, head.id))?;
            // Durably gone before anyone sees an empty spool and writes past it: a segment
            // that came back after a crash would replay older values over newer ones.
            sync_dir(&self.dir)?;
            inner.head_offset = 0;
            self.bytes.fetch_sub(head.bytes, Relaxed);
        }
        self.changed.notify_all();
        Ok(())
    }

    /// From now on a full spool refuses appends instead of blocking (the sink is dropped).
    pub fn abandon(&self) {
        self.lock().abandoned = true;
        self.changed.notify_all();
    }
}

/// Records, the length of the intact prefix and the file's length.
fn scan(path: &Path) -> io::Result<(u64, u64, u64)> {
    let file = File::open(path)?;
    let len = file.metadata()?.len();
    let mut reader = BufReader::new(file);
    let (mut records, mut valid) = (0, 0);
    loop {
        match frame::read(&mut reader)? {
            Next::Record(record) => {
                records += 1;
                valid += record.framed_len();
            }
            Next::End | Next::Torn => return Ok((records, valid, len)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn record(i: u32, size: usize) -> Record {
        let mut body = format!("m,i={i} v={i}i {i}\n").into_bytes();
        body.resize(body.len().max(size), b'#');
        Record {
            body,
            points: 1,
            gzip: false,
        }
    }

    fn drain(spool: &Spool) -> Vec<Record> {
        let mut out = Vec::new();
        while let Some(record) = spool.peek().unwrap() {
            spool.ack(&record).unwrap();
            out.push(record);
        }
        out
    }

    fn files(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|name| name.ends_with(".seg"))
            .collect();
        names.sort();
        names
    }

    #[test]
    fn records_come_back_in_order_across_segments_and_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let (spool, recovered) = Spool::open(dir.path(), 8 << 20).unwrap();
        assert_eq!(recovered, Recovered::default());
        let written: Vec<Record> = (0..40).map(|i| record(i, 100_000)).collect();
        for record in &written {
            spool.append(record).unwrap();
        }
        assert!(files(dir.path()).len() > 1, "segments roll over at 1 MiB");
        let first = spool.peek().unwrap().unwrap();
        spool.ack(&first).unwrap();
        drop(spool);

        // Reopened: what was acknowledged in the head segment is replayed again (upserts make
        // that harmless); everything after it follows in order.
        let (spool, recovered) = Spool::open(dir.path(), 8 << 20).unwrap();
        assert_eq!(recovered.torn_bytes, 0);
        assert!(recovered.records >= 39 && recovered.records <= 40);
        let replayed = drain(&spool);
        assert_eq!(replayed[replayed.len() - 39..], written[1..]);
        assert!(spool.is_empty() && spool.bytes() == 0);
        assert!(files(dir.path()).is_empty(), "segments are deleted once written");
    }

    #[test]
    fn a_torn_tail_is_cut_off_and_appends_go_on_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let (spool, _) = Spool::open(dir.path(), 8 << 20).unwrap();
        for i in 0..3 {
            spool.append(&record(i, 0)).unwrap();
        }
        drop(spool);
        let path = dir.path().join(&files(dir.path())[0]);
        let mut bytes = fs::read(&path).unwrap();
        let whole = bytes.len();
        bytes.extend_from_slice(&frame::header(&record(3, 0))[..7]);
        fs::write(&path, &bytes).unwrap();

        let (spool, recovered) = Spool::open(dir.path(), 8 << 20).unwrap();
        assert_eq!(
            recovered,
            Recovered {
                records: 3,
                torn_bytes: 7
            }
        );
        assert_eq!(fs::metadata(&path).unwrap().len() as usize, whole);
        spool.append(&record(4, 0)).unwrap();
        let points: Vec<Vec<u8>> = drain(&spool).into_iter().map(|r| r.body).collect();
        assert_eq!(points, [0, 1, 2, 4].map(|i| record(i, 0).body));
    }

    #[test]
    fn damage_before_the_newest_segment_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let (spool, _) = Spool::open(dir.path(), 8 << 20).unwrap();
        for i in 0..12 {
            spool.append(&record(i, 200_000)).unwrap();
        }
        drop(spool);
        let first = dir.path().join(&files(dir.path())[0]);
        let mut bytes = fs::read(&first).unwrap();
        bytes[100] ^= 1;
        fs::write(&first, bytes).unwrap();
        let err = Spool::open(dir.path(), 8 << 20).err().unwrap();
        assert!(err.to_string().contains(&first.display().to_string()), "{err}");
    }

    #[test]
    fn a_full_spool_blocks_appends_until_the_drain_frees_a_segment() {
        let dir = tempfile::tempdir().unwrap();
        let (spool, _) = Spool::open(dir.path(), 4 << 20).unwrap();
        let spool = Arc::new(spool);
        let size = 500_000;
        let mut appended = 0;
        while spool.bytes() + record(0, size).framed_len() <= spool.max_bytes() {
            spool.append(&record(appended, size)).unwrap();
            appended += 1;
        }
        let blocked = {
            let spool = spool.clone();
            std::thread::spawn(move || spool.append(&record(appended, size)).unwrap())
        };
        while !spool.is_full() {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(!blocked.is_finished());
        assert!(spool.bytes() <= spool.max_bytes());
        let mut replayed = Vec::new();
        while !blocked.is_finished() || !spool.is_empty() {
            if let Some(record) = spool.peek().unwrap() {
                spool.ack(&record).unwrap();
                replayed.push(record);
            }
        }
        blocked.join().unwrap();
        assert_eq!(replayed.len() as u32, appended + 1, "nothing dropped");
        assert!(replayed.iter().enumerate().all(|(i, r)| r == &record(i as u32, size)));
    }

    #[test]
    fn the_directory_is_made_on_first_use_and_belongs_to_one_spool() {
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("spool");
        let (spool, _) = Spool::open(&dir, 1 << 20).unwrap();
        assert!(!dir.exists(), "a run that never spools leaves no directory");
        spool.append(&record(0, 10)).unwrap();
        let err = Spool::open(&dir, 1 << 20).err().unwrap();
        assert_eq!(err.kind(), io::ErrorKind::ResourceBusy, "{err}");
        drop(spool);
        let (_, recovered) = Spool::open(&dir, 1 << 20).unwrap();
        assert_eq!(recovered.records, 1);
    }

    #[test]
    fn an_abandoned_full_spool_refuses_and_an_empty_one_takes_any_record() {
        let dir = tempfile::tempdir().unwrap();
        let (spool, _) = Spool::open(dir.path(), 1 << 20).unwrap();
        spool.append(&record(0, 2 << 20)).unwrap();
        spool.abandon();
        assert!(matches!(spool.append(&record(1, 10)), Err(AppendError::Full)));
    }
}
