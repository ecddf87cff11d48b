//! The on-disk outbox: the queue between `accept` and the delivery threads.
//!
//! ```text
//! outbox/
//!   slack/00000000000000000041.json     one file per (alert event, contact point), named by a
//!   webhook/00000000000000000041.json   sequence number: sorted names are acceptance order
//!   email/…
//!   failed/slack-00000000000000000007.json   refused for good, with the receiver's response
//! ```
//!
//! A file appears atomically — written under a hidden temporary name, fsynced, renamed, and the
//! directory fsynced — so after a crash every file is either complete and durable or a
//! leftover temporary that `open` removes (its `accept` never returned, so nobody was told it
//! was taken). A file disappears only after its receiver took it (or refused it for good), so
//! a crash in between sends it again: at least once, with an id receivers can deduplicate on.
//!
//! Delivery threads read the directory instead of an in-memory queue, in bounded batches of
//! the oldest names, so memory does not grow with the backlog while a receiver is down. One
//! process owns an outbox directory at a time.

use super::contact_point::ContactPoint;
use std::collections::BinaryHeap;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// The outbox directory.
pub struct Outbox {
    root: PathBuf,
}

/// What `open` found from earlier runs.
pub struct Found {
    /// Files waiting, per contact point (indexed like [`ContactPoint::ALL`]).
    pub pending: [u64; 3],
    /// The first sequence number not used by any file, waiting or failed.
    pub next_seq: u64,
}

const FAILED: &str = "failed";
const TEMPORARY: &str = ".tmp";

fn file_name(seq: u64) -> String {
    format!("{seq:020}.json")
}

/// The sequence number in a waiting file's name (`None` for anything else).
fn parse_seq(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".json")?;
    (digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

/// Fsyncs a directory, making a rename or removal in it durable.
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Writes `bytes` to `dir/name` atomically and durably.
fn write_durable(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<()> {
    let temporary = dir.join(format!(".{name}{TEMPORARY}"));
    let written = (|| {
        let mut file = File::create(&temporary)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&temporary, dir.join(name))?;
        sync_dir(dir)
    })();
    if written.is_err() {
        let _ = fs::remove_file(&temporary);
    }
    written
}

fn names(dir: &Path) -> io::Result<impl Iterator<Item = io::Result<String>>> {
    Ok(fs::read_dir(dir)?.map(|entry| Ok(entry?.file_name().to_string_lossy().into_owned())))
}

impl Outbox {
    /// Creates the directories, removes temporaries left by a crash, and counts what waits.
    pub fn open(root: &Path) -> io::Result<(Outbox, Found)> {
        let outbox = Outbox {
            root: root.to_path_buf(),
        };
        let mut found = Found {
            pending: [0; 3],
            next_seq: 1,
        };
        for cp in ContactPoint::ALL {
            let dir = outbox.dir(cp);
            fs::create_dir_all(&dir)?;
            for name in names(&dir)? {
                let name = name?;
                if name.starts_with('.') && name.ends_with(TEMPORARY) {
                    fs::remove_file(dir.join(&name))?;
                } else if let Some(seq) = parse_seq(&name) {
                    found.pending[cp.index()] += 1;
                    found.next_seq = found.next_seq.max(seq + 1);
                }
            }
        }
        let failed = outbox.failed_dir();
        fs::create_dir_all(&failed)?;
        for name in names(&failed)? {
            let name = name?;
            if name.starts_with('.') && name.ends_with(TEMPORARY) {
                fs::remove_file(failed.join(&name))?;
            } else if let Some(seq) = name.split_once('-').and_then(|(_, rest)| parse_seq(rest)) {
                found.next_seq = found.next_seq.max(seq + 1);
            }
        }
        Ok((outbox, found))
    }

    /// The directory of `cp`'s waiting files.
    pub fn dir(&self, cp: ContactPoint) -> PathBuf {
        self.root.join(cp.as_str())
    }

    /// The directory of refused notifications.
    pub fn failed_dir(&self) -> PathBuf {
        self.root.join(FAILED)
    }

    /// Adds a waiting file; durable when this returns.
    pub fn write(&self, cp: ContactPoint, seq: u64, bytes: &[u8]) -> io::Result<()> {
        write_durable(&self.dir(cp), &file_name(seq), bytes)
    }

    /// The sequence numbers of the (at most `limit`) oldest waiting files of `cp`, oldest first.
    pub fn oldest(&self, cp: ContactPoint, limit: usize) -> io::Result<Vec<u64>> {
        let mut heap = BinaryHeap::with_capacity(limit + 1);
        for name in names(&self.dir(cp))? {
            if let Some(seq) = parse_seq(&name?) {
                heap.push(seq);
                if heap.len() > limit {
                    heap.pop();
                }
            }
        }
        Ok(heap.into_sorted_vec())
    }

    /// A waiting file's contents, or `None` when it is gone (moved away by hand).
    pub fn read(&self, cp: ContactPoint, seq: u64) -> io::Result<Option<Vec<u8>>> {
        match fs::read(self.dir(cp).join(file_name(seq))) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Removes a delivered file, durably, so a restart does not send it again.
    pub fn remove(&self, cp: ContactPoint, seq: u64) -> io::Result<()> {
        let dir = self.dir(cp);
        match fs::remove_file(dir.join(file_name(seq))) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        sync_dir(&dir)
    }

    /// Keeps a refused notification in `failed/` (as `record`) and removes the waiting file.
    /// Returns the kept file.
    pub fn fail(&self, cp: ContactPoint, seq: u64, record: &[u8]) -> io::Result<PathBuf> {
        let failed = self.failed_dir();
        let name = format!("{cp}-{}", file_name(seq));
        write_durable(&failed, &name, record)?;
        self.remove(cp, seq)?;
        Ok(failed.join(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_listed_oldest_first_in_bounded_batches() {
        let dir = tempfile::tempdir().unwrap();
        let (outbox, found) = Outbox::open(dir.path()).unwrap();
        assert_eq!((found.pending, found.next_seq), ([0; 3], 1));
        for seq in [12, 3, 7, 100, 5] {
            outbox.write(ContactPoint::Webhook, seq, b"{}").unwrap();
        }
        assert_eq!(outbox.oldest(ContactPoint::Webhook, 3).unwrap(), vec![3, 5, 7]);
        assert_eq!(outbox.oldest(ContactPoint::Slack, 3).unwrap(), Vec::<u64>::new());
        outbox.remove(ContactPoint::Webhook, 3).unwrap();
        outbox.remove(ContactPoint::Webhook, 3).unwrap();
        assert_eq!(outbox.read(ContactPoint::Webhook, 3).unwrap(), None);
        assert_eq!(
            outbox.read(ContactPoint::Webhook, 5).unwrap().as_deref(),
            Some(&b"{}"[..])
        );
    }

    #[test]
    fn reopening_counts_waiting_files_continues_the_sequence_and_drops_temporaries() {
        let dir = tempfile::tempdir().unwrap();
        let (outbox, _) = Outbox::open(dir.path()).unwrap();
        outbox.write(ContactPoint::Slack, 4, b"{}").unwrap();
        outbox.write(ContactPoint::Email, 9, b"{}").unwrap();
        outbox.write(ContactPoint::Email, 2, b"{}").unwrap();
        let kept = outbox.fail(ContactPoint::Email, 9, b"{\"status\":550}").unwrap();
        assert_eq!(kept, dir.path().join("failed/email-00000000000000000009.json"));
        let leftover = dir.path().join("slack/.00000000000000000005.json.tmp");
        fs::write(&leftover, b"{\"half").unwrap();

        let (_, found) = Outbox::open(dir.path()).unwrap();
        assert_eq!(found.pending, [1, 0, 1]);
        assert_eq!(found.next_seq, 10, "failed files keep their numbers");
        assert!(!leftover.exists());
    }
}
