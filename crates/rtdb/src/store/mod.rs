//! Durable storage: a snapshot plus the logs written since, in one locked data folder.
//!
//! Every acknowledged write is in a log that was fsynced before the acknowledgement. When the
//! current log grows past a bound, the tree is snapshotted and a fresh log is started; the
//! order of those steps keeps every crash point recoverable (see [`Store::compact`]).

pub mod log;
pub mod snapshot;

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::tree;
use log::LogWriter;

const SNAPSHOT: &str = "snapshot.hdb";
const LOCK: &str = "LOCK";

/// What recovery found, for the start-up log line.
#[derive(Debug, Default)]
pub struct Recovery {
    /// Records replayed from logs.
    pub replayed: usize,
    /// Bytes of torn last records that were dropped.
    pub dropped_tail_bytes: u64,
}

/// The open data folder.
pub struct Store {
    dir: PathBuf,
    _lock: File,
    log: LogWriter,
    generation: u64,
    compact_after: u64,
}

impl Store {
    /// Opens (creating if needed) and locks `dir`, recovers the tree from the snapshot and logs.
    pub fn open(dir: &Path, compact_after: u64) -> io::Result<(Store, Value, Recovery)> {
        fs::create_dir_all(dir)?;
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(LOCK))?;
        if lock.try_lock().is_err() {
            return Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                format!(
                    "the data folder {} is in use by another huddle-db",
                    dir.display()
                ),
            ));
        }
        let snap = snapshot::load(&dir.join(SNAPSHOT))?;
        let (mut root, first_gen) = snap.map_or((Value::Null, 0), |s| (s.tree, s.next_log));
        let mut recovery = Recovery::default();
        let mut generations = list_logs(dir)?;
        generations.sort_unstable();
        for &generation in &generations {
            let path = log_path(dir, generation);
            if generation < first_gen {
                // Left over from a compaction that crashed after its snapshot landed.
                fs::remove_file(&path)?;
                continue;
            }
            let replay = log::replay(&path)?;
            if replay.dropped_tail > 0 {
                tracing::warn!(
                    log = %path.display(),
                    bytes = replay.dropped_tail,
                    "dropped a torn last record (a write that was never acknowledged)"
                );
            }
            recovery.dropped_tail_bytes += replay.dropped_tail;
            recovery.replayed += replay.records.len();
            for record in replay.records {
                for (path, value) in record {
                    tree::set(&mut root, &path, value);
                }
            }
        }
        let current = generations
            .iter()
            .copied()
            .filter(|g| *g >= first_gen)
            .max();
        let (log, generation) = match current {
            Some(g) => (LogWriter::open(&log_path(dir, g))?, g),
            None => {
                let w = LogWriter::create(&log_path(dir, first_gen))?;
                snapshot::sync_dir(dir)?;
                (w, first_gen)
            }
        };
        let store = Store {
            dir: dir.to_owned(),
            _lock: lock,
            log,
            generation,
            compact_after,
        };
        Ok((store, root, recovery))
    }

    /// Appends encoded records (see [`log::encode`]) and fsyncs them.
    pub fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.log.append_durable(bytes)
    }

    /// True when the current log is large enough to be folded into a snapshot.
    pub fn wants_compaction(&self) -> bool {
        self.log.len() > self.compact_after
    }

    /// Folds everything into a new snapshot and starts a new log.
    ///
    /// Crash points: before the rename, the old snapshot and the old log are intact; after it,
    /// the snapshot names the next generation, and older logs are deleted on the next start.
    pub fn compact(&mut self, root: &Value) -> io::Result<()> {
        let next = self.generation + 1;
        snapshot::write(&self.dir, SNAPSHOT, root, next)?;
        let new_log = LogWriter::create(&log_path(&self.dir, next))?;
        snapshot::sync_dir(&self.dir)?;
        let old = std::mem::replace(&mut self.log, new_log);
        self.generation = next;
        fs::remove_file(old.path())?;
        Ok(())
    }

    /// Bytes in the current log.
    pub fn log_len(&self) -> u64 {
        self.log.len()
    }
}

fn log_path(dir: &Path, generation: u64) -> PathBuf {
    dir.join(format!("log-{generation:020}.hdb"))
}

fn list_logs(dir: &Path) -> io::Result<Vec<u64>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(g) = name
            .strip_prefix("log-")
            .and_then(|r| r.strip_suffix(".hdb"))
            .and_then(|g| g.parse().ok())
        {
            out.push(g);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::path::DbPath;
    use serde_json::json;

    fn write(store: &mut Store, root: &mut Value, p: &str, v: Value) {
        let change = vec![(DbPath::parse(p).unwrap(), Some(v))];
        let mut buf = Vec::new();
        log::encode(&change, &mut buf);
        store.append(&buf).unwrap();
        for (path, value) in change {
            tree::set(root, &path, value);
        }
    }

    #[test]
    fn survives_reopen_and_compaction() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut s, mut root, _) = Store::open(dir.path(), 200).unwrap();
            for i in 0..20 {
                write(&mut s, &mut root, &format!("/k/{i}"), json!(i));
                if s.wants_compaction() {
                    s.compact(&root).unwrap();
                }
            }
        }
        let (_s, root, rec) = Store::open(dir.path(), 200).unwrap();
        assert_eq!(root["k"].as_object().unwrap().len(), 20);
        assert!(
            rec.replayed < 20,
            "compaction should have folded records into the snapshot"
        );
        assert_eq!(list_logs(dir.path()).unwrap().len(), 1);
    }

    #[test]
    fn a_second_instance_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let _first = Store::open(dir.path(), 1 << 20).unwrap();
        let err = Store::open(dir.path(), 1 << 20).err().unwrap();
        assert!(err.to_string().contains("in use"), "{err}");
    }
}
