//! How one spooled batch is laid out in a segment file: a 13-byte header — payload length,
//! CRC-32 of everything after the checksum, points, flags — then the request body.
//!
//! The length says where the next record starts; the checksum tells a record written in full
//! from one cut short by a crash (a *torn* tail) or damaged on disk. Both are little-endian.

use std::io::{self, Read};

/// Bytes before the payload.
pub const HEADER: usize = 13;

/// The largest payload a reader accepts: a garbage length must not make it allocate gigabytes.
const MAX_PAYLOAD: usize = 256 << 20;

/// The payload is gzip-compressed (sent with `Content-Encoding: gzip`).
const GZIP: u8 = 1;

/// One batch as the spool keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// The request body, exactly as it is sent.
    pub body: Vec<u8>,
    /// Lines in the batch.
    pub points: u32,
    /// Whether `body` is gzip-compressed.
    pub gzip: bool,
}

impl Record {
    /// The record's size on disk.
    pub fn framed_len(&self) -> u64 {
        (HEADER + self.body.len()) as u64
    }
}

fn checksum(points: u32, flags: u8, body: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&points.to_le_bytes());
    hasher.update(&[flags]);
    hasher.update(body);
    hasher.finalize()
}

/// The header of `record`; the body follows it.
pub fn header(record: &Record) -> [u8; HEADER] {
    let flags = if record.gzip { GZIP } else { 0 };
    let mut header = [0; HEADER];
    header[0..4].copy_from_slice(&(record.body.len() as u32).to_le_bytes());
    header[4..8].copy_from_slice(&checksum(record.points, flags, &record.body).to_le_bytes());
    header[8..12].copy_from_slice(&record.points.to_le_bytes());
    header[12] = flags;
    header
}

/// What reading the next record found.
#[derive(Debug, PartialEq)]
pub enum Next {
    /// A whole, intact record.
    Record(Record),
    /// The end of the file, exactly at a record boundary.
    End,
    /// A record cut short or failing its checksum: what a crash mid-append leaves behind.
    Torn,
}

/// Reads the record at the reader's position.
pub fn read(reader: &mut impl Read) -> io::Result<Next> {
    let mut header = [0u8; HEADER];
    let got = read_full(reader, &mut header)?;
    if got == 0 {
        return Ok(Next::End);
    }
    if got < HEADER {
        return Ok(Next::Torn);
    }
    let len = u32::from_le_bytes(header[0..4].try_into().expect("4 bytes")) as usize;
    let crc = u32::from_le_bytes(header[4..8].try_into().expect("4 bytes"));
    let points = u32::from_le_bytes(header[8..12].try_into().expect("4 bytes"));
    let flags = header[12];
    if len > MAX_PAYLOAD || flags & !GZIP != 0 {
        return Ok(Next::Torn);
    }
    let mut body = vec![0; len];
    if read_full(reader, &mut body)? < len || checksum(points, flags, &body) != crc {
        return Ok(Next::Torn);
    }
    Ok(Next::Record(Record {
        body,
        points,
        gzip: flags & GZIP != 0,
    }))
}

/// Fills `buf` as far as the reader goes; returns the bytes read.
fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(record: &Record) -> Vec<u8> {
        let mut bytes = header(record).to_vec();
        bytes.extend_from_slice(&record.body);
        bytes
    }

    fn record(text: &str, gzip: bool) -> Record {
        Record {
            body: text.as_bytes().to_vec(),
            points: text.lines().count() as u32,
            gzip,
        }
    }

    #[test]
    fn records_read_back_as_written_then_the_end() {
        let (a, b) = (record("m a=1i 1\nm a=2i 2\n", false), record("", true));
        let mut bytes = framed(&a);
        bytes.extend(framed(&b));
        assert_eq!(bytes.len() as u64, a.framed_len() + b.framed_len());
        let mut reader = &bytes[..];
        assert_eq!(read(&mut reader).unwrap(), Next::Record(a));
        assert_eq!(read(&mut reader).unwrap(), Next::Record(b));
        assert_eq!(read(&mut reader).unwrap(), Next::End);
    }

    #[test]
    fn every_cut_and_every_flipped_bit_is_detected() {
        let bytes = framed(&record("m,host=a value=1i 1000\n", false));
        for cut in 1..bytes.len() {
            assert_eq!(read(&mut &bytes[..cut]).unwrap(), Next::Torn, "cut at {cut}");
        }
        for byte in 0..bytes.len() {
            for bit in 0..8 {
                let mut damaged = bytes.clone();
                damaged[byte] ^= 1 << bit;
                assert_eq!(read(&mut &damaged[..]).unwrap(), Next::Torn, "byte {byte} bit {bit}");
            }
        }
    }
}
