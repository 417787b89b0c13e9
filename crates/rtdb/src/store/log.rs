//! The append-only write log: checksummed records, and recovery that tells a torn tail (dropped
//! with a warning) from corruption in the middle (refused, never silently skipped).
//!
//! File layout: the 8-byte magic `HDBLOG1\n`, then records `[len: u32 LE][crc32: u32 LE][payload]`.
//! A payload is one atomic write: the JSON array `[[path, value-or-null], ...]` of resolved changes.
//! Values are written in output form (an array stays an array: in stored form each index is a
//! key, which made a 15 MB array of zeros a 93 MB record) and normalised again on replay; logs
//! written in stored form, as before, replay the same, since stored form normalises to itself.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::path::DbPath;
use crate::tree;

const MAGIC: &[u8; 8] = b"HDBLOG1\n";
const HEADER: usize = 8;

/// One atomic write as stored: the changes it made, in order.
pub type Record = Vec<(DbPath, Option<Value>)>;

/// Encodes one record with its length and checksum, appending to `out`.
pub fn encode(changes: &[(DbPath, Option<Value>)], out: &mut Vec<u8>) {
    encode_refs(changes.iter().map(|(p, v)| (p, v.as_ref())), out);
}

/// [`encode`] for a record of one change, from references.
pub fn encode_one(path: &DbPath, value: Option<&Value>, out: &mut Vec<u8>) {
    encode_refs(std::iter::once((path, value)), out);
}

fn encode_refs<'a>(
    changes: impl Iterator<Item = (&'a DbPath, Option<&'a Value>)>,
    out: &mut Vec<u8>,
) {
    let payload: Vec<(String, Option<tree::Rendered>)> = changes
        .map(|(p, v)| (p.to_string(), v.map(tree::Rendered)))
        .collect();
    // Serialising plain JSON values into a Vec cannot fail.
    let bytes = serde_json::to_vec(&payload).unwrap_or_default();
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&bytes).to_le_bytes());
    out.extend_from_slice(&bytes);
}

/// What reading a log found.
pub struct Replay {
    /// Every complete, valid record, in order.
    pub records: Vec<Record>,
    /// Bytes of a torn last record that were cut off (0 when the file ended cleanly).
    pub dropped_tail: u64,
}

/// Reads a log file, truncating a torn last record. Corruption before the tail is an error.
pub fn replay(path: &Path) -> io::Result<Replay> {
    let mut file = OpenOptions::new().read(true).write(true).open(path)?;
    let mut data = Vec::new();
    file.read_to_end(&mut data)?;
    if data.len() < MAGIC.len() {
        // Created but the magic never reached the disk: an empty log.
        file.set_len(0)?;
        file.write_all(MAGIC)?;
        file.sync_all()?;
        return Ok(Replay {
            records: Vec::new(),
            dropped_tail: data.len() as u64,
        });
    }
    if &data[..MAGIC.len()] != MAGIC {
        return Err(corrupt(path, 0, "it is not a huddle-db log file"));
    }
    let mut records = Vec::new();
    let mut pos = MAGIC.len();
    while pos < data.len() {
        match decode_at(&data, pos) {
            Decoded::Record(rec, next) => {
                records.push(parse_record(&rec).map_err(|why| corrupt(path, pos, &why))?);
                pos = next;
            }
            Decoded::Torn => break,
            Decoded::BadChecksum(next) if next < data.len() && decode_chain_ok(&data, next) => {
                return Err(corrupt(
                    path,
                    pos,
                    "a record's checksum does not match, and valid records follow it",
                ));
            }
            Decoded::BadChecksum(_) => break,
        }
    }
    let dropped_tail = (data.len() - pos) as u64;
    if dropped_tail > 0 {
        file.set_len(pos as u64)?;
        file.sync_all()?;
    }
    Ok(Replay {
        records,
        dropped_tail,
    })
}

enum Decoded {
    Record(Vec<u8>, usize),
    Torn,
    BadChecksum(usize),
}

fn decode_at(data: &[u8], pos: usize) -> Decoded {
    let Some(header) = data.get(pos..pos + HEADER) else {
        return Decoded::Torn;
    };
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
    let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    let end = pos + HEADER + len;
    let Some(payload) = data.get(pos + HEADER..end) else {
        return Decoded::Torn;
    };
    if len == 0 || crc32fast::hash(payload) != crc {
        return Decoded::BadChecksum(end);
    }
    Decoded::Record(payload.to_vec(), end)
}

/// True when at least one valid record starts at `pos`: then a bad record before it is not a
/// torn tail but damage in the middle of the log.
fn decode_chain_ok(data: &[u8], pos: usize) -> bool {
    matches!(decode_at(data, pos), Decoded::Record(..))
}

fn parse_record(bytes: &[u8]) -> Result<Record, String> {
    let raw: Vec<(String, Value)> =
        serde_json::from_slice(bytes).map_err(|e| format!("a record is not valid JSON: {e}"))?;
    raw.into_iter()
        .map(|(p, v)| {
            let path = DbPath::parse(&p).map_err(|e| format!("a record has a bad path: {e}"))?;
            let value = tree::normalize(v, path.len())
                .map_err(|e| format!("a record holds data no write could store: {e}"))?;
            Ok((path, value))
        })
        .collect()
}

fn corrupt(path: &Path, offset: usize, why: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!(
            "{} is damaged at byte {offset}: {why}; refusing to start rather than lose data",
            path.display()
        ),
    )
}

/// Why an append failed.
#[derive(Debug)]
pub enum AppendError {
    /// The write failed and the log is as it was before it.
    Failed(io::Error),
    /// The write failed and cutting its bytes off failed too: the log may end in part of a
    /// record that was never acknowledged (recovery drops it as a torn tail), so nothing more
    /// may be appended after it.
    TailLeft {
        /// What the write ran into.
        write: io::Error,
        /// What cutting back ran into.
        cut: io::Error,
    },
}

/// An open log being appended to.
pub struct LogWriter {
    file: File,
    path: PathBuf,
    len: u64,
}

impl LogWriter {
    /// Creates a new, empty log (magic written and synced).
    pub fn create(path: &Path) -> io::Result<Self> {
        let mut file = OpenOptions::new().create_new(true).write(true).open(path)?;
        file.write_all(MAGIC)?;
        file.sync_all()?;
        Ok(Self {
            file,
            path: path.to_owned(),
            len: MAGIC.len() as u64,
        })
    }

    /// Opens an existing, already replayed log for appending.
    pub fn open(path: &Path) -> io::Result<Self> {
        let mut file = OpenOptions::new().write(true).open(path)?;
        let len = file.seek(SeekFrom::End(0))?;
        Ok(Self {
            file,
            path: path.to_owned(),
            len,
        })
    }

    /// Appends encoded records and makes them durable before returning.
    pub fn append_durable(&mut self, bytes: &[u8]) -> Result<(), AppendError> {
        if let Err(write) = self
            .file
            .write_all(bytes)
            .and_then(|()| self.file.sync_data())
        {
            // Leave no half-written record behind a failed write: cut back to the last good end.
            let cut = self
                .file
                .set_len(self.len)
                .and_then(|()| self.file.seek(SeekFrom::Start(self.len)).map(drop))
                .and_then(|()| self.file.sync_data());
            return Err(match cut {
                Ok(()) => AppendError::Failed(write),
                Err(cut) => AppendError::TailLeft { write, cut },
            });
        }
        self.len += bytes.len() as u64;
        Ok(())
    }

    /// Bytes in the file.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True when only the magic is present.
    pub fn is_empty(&self) -> bool {
        self.len <= MAGIC.len() as u64
    }

    /// Where the log lives.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rec(p: &str, v: Value) -> Vec<(DbPath, Option<Value>)> {
        vec![(DbPath::parse(p).unwrap(), Some(v))]
    }

    #[test]
    fn round_trip_and_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let mut w = LogWriter::create(&path).unwrap();
        for i in 0..3 {
            let mut buf = Vec::new();
            encode(&rec(&format!("/k{i}"), json!(i)), &mut buf);
            w.append_durable(&buf).unwrap();
        }
        let full = std::fs::metadata(&path).unwrap().len();
        // Tear the last record in half.
        let f = OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len(full - 3).unwrap();
        let r = replay(&path).unwrap();
        assert_eq!(r.records.len(), 2);
        assert!(r.dropped_tail > 0);
        // The tail was cut: a second replay is clean.
        let r = replay(&path).unwrap();
        assert_eq!((r.records.len(), r.dropped_tail), (2, 0));
    }

    #[test]
    fn damage_in_the_middle_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let mut w = LogWriter::create(&path).unwrap();
        let mut buf = Vec::new();
        encode(&rec("/a", json!("first")), &mut buf);
        encode(&rec("/b", json!("second")), &mut buf);
        w.append_durable(&buf).unwrap();
        let mut data = std::fs::read(&path).unwrap();
        data[MAGIC.len() + HEADER + 2] ^= 0xff;
        std::fs::write(&path, &data).unwrap();
        let err = replay(&path).err().unwrap();
        assert!(err.to_string().contains("damaged"), "{err}");
    }
}
