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
const SNAPSHOT_TMP: &str = "snapshot.hdb.tmp";
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
    /// Log length past which the next compaction is tried; moved on after a failed one, so a
    /// full disk costs one attempt per `compact_after` bytes, not one per write.
    compact_at: u64,
    /// Set when the log may hold a half-written record that could not be cut off: from then
    /// on nothing more is appended (recovery drops that tail) and every write is refused.
    broken: Option<String>,
    #[cfg(test)]
    fault: Option<Box<dyn FnMut(Step) -> io::Result<()> + Send>>,
}

/// The steps of a compaction, in order (named for the fault-injection tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    CreateLog,
    WriteSnapshot,
    Rename,
    SyncDir,
    RemoveOld,
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
        // A snapshot that never got renamed into place is garbage, whatever state it is in.
        match fs::remove_file(dir.join(SNAPSHOT_TMP)) {
            Ok(()) => tracing::info!("removed an unfinished snapshot left by an earlier run"),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
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
            compact_at: compact_after,
            broken: None,
            #[cfg(test)]
            fault: None,
        };
        Ok((store, root, recovery))
    }

    /// Appends encoded records (see [`log::encode`]) and fsyncs them. On an error nothing of
    /// `bytes` is in the log, or the store refuses every later append (see [`Store::broken`]).
    pub fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        if let Some(why) = &self.broken {
            return Err(io::Error::other(why.clone()));
        }
        match self.log.append_durable(bytes) {
            Ok(()) => Ok(()),
            Err(log::AppendError::Failed(e)) => Err(e),
            Err(log::AppendError::TailLeft { write, cut }) => {
                let why = format!(
                    "the write log {} could not be cut back after a failed write ({write}; then {cut}); \
                     this server takes no more writes until it is restarted",
                    self.log.path().display()
                );
                tracing::error!("{why}");
                self.broken = Some(why);
                Err(write)
            }
        }
    }

    /// Why the store refuses writes, if it does.
    pub fn broken(&self) -> Option<&str> {
        self.broken.as_deref()
    }

    /// True when the current log is large enough to be folded into a snapshot.
    pub fn wants_compaction(&self) -> bool {
        self.broken.is_none() && self.log.len() > self.compact_at
    }

    /// Folds everything into a new snapshot and starts a new log.
    ///
    /// Order, so that every log a snapshot does not cover is always replayed: (1) create and
    /// sync the next log, empty; (2) write and fsync `snapshot.hdb.tmp`; (3) rename it over
    /// `snapshot.hdb`, which names the next log as the first to replay; (4) sync the folder;
    /// (5) switch appends to the next log; (6) delete the old logs. A crash before (3) leaves the
    /// old snapshot and every log (an empty next log replays as nothing); after it, the new
    /// snapshot and the next log. On an error before (3) the old log stays current and the
    /// leftovers are removed: writes go on being acknowledged into a log recovery replays, and
    /// the next try waits until the log has grown by another `compact_after` bytes.
    pub fn compact(&mut self, root: &Value) -> io::Result<()> {
        let next = self.generation + 1;
        let next_path = log_path(&self.dir, next);
        let tmp = self.dir.join(SNAPSHOT_TMP);
        let mut created = None;
        let result = self.prepare(root, next, &next_path, &tmp, &mut created);
        let renamed = match result {
            Ok(()) => true,
            // A rename that reported an error may still have happened; the file tells.
            Err(_) => created.is_some() && !tmp.exists() && snapshot_names(&self.dir, next),
        };
        let Some(new_log) = created.filter(|_| renamed) else {
            self.compact_at = self.log.len() + self.compact_after;
            let _ = fs::remove_file(&tmp);
            let _ = fs::remove_file(&next_path);
            return result;
        };
        // From here the snapshot on disk names `next` as the first log to replay: appending to
        // the old log would write where recovery never reads.
        self.log = new_log;
        self.generation = next;
        self.compact_at = self.compact_after;
        let synced = self
            .step(Step::SyncDir)
            .and_then(|()| snapshot::sync_dir(&self.dir));
        synced?;
        self.step(Step::RemoveOld)?;
        for g in list_logs(&self.dir)? {
            if g < next {
                fs::remove_file(log_path(&self.dir, g))?;
            }
        }
        Ok(())
    }

    /// Steps (1) to (3) of [`Store::compact`]; `created` gets the next log once it exists.
    fn prepare(
        &mut self,
        root: &Value,
        next: u64,
        next_path: &Path,
        tmp: &Path,
        created: &mut Option<LogWriter>,
    ) -> io::Result<()> {
        self.step(Step::CreateLog)?;
        // Only a failed earlier try can have left this file, and nothing was written to it.
        let _ = fs::remove_file(next_path);
        let writer = LogWriter::create(next_path)?;
        snapshot::sync_dir(&self.dir)?;
        *created = Some(writer);
        self.step(Step::WriteSnapshot)?;
        snapshot::write_tmp(tmp, root, next)?;
        self.step(Step::Rename)?;
        fs::rename(tmp, self.dir.join(SNAPSHOT))
    }

    /// Where the fault-injection tests fail or crash a compaction.
    fn step(&mut self, step: Step) -> io::Result<()> {
        #[cfg(test)]
        if let Some(fault) = self.fault.as_mut() {
            return fault(step);
        }
        let _ = step;
        Ok(())
    }

    /// The log length at which compaction is tried next.
    pub fn compact_at(&self) -> u64 {
        self.compact_at
    }

    /// Bytes in the current log.
    pub fn log_len(&self) -> u64 {
        self.log.len()
    }
}

/// True when the snapshot in `dir` says replay starts at `next` (a cheap header read).
fn snapshot_names(dir: &Path, next: u64) -> bool {
    snapshot::next_log(&dir.join(SNAPSHOT)).is_ok_and(|n| n == next)
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

    const STEPS: [Step; 5] = [
        Step::CreateLog,
        Step::WriteSnapshot,
        Step::Rename,
        Step::SyncDir,
        Step::RemoveOld,
    ];

    /// Writes `/k/<i>` for `range`, compacting whenever the store asks; compaction errors are
    /// collected, not fatal (the writes go on being acknowledged).
    fn fill(s: &mut Store, root: &mut Value, range: std::ops::Range<u32>) -> Vec<io::Error> {
        let mut errors = Vec::new();
        for i in range {
            write(s, root, &format!("/k/{i}"), json!(i));
            if s.wants_compaction() {
                if let Err(e) = s.compact(root) {
                    errors.push(e);
                }
            }
        }
        errors
    }

    fn assert_all(dir: &Path, n: u32, case: &str) -> (Store, Value) {
        let (s, root, _) = Store::open(dir, 200).unwrap();
        for i in 0..n {
            assert_eq!(
                root["k"][i.to_string()],
                json!(i),
                "{case}: acknowledged write {i} lost"
            );
        }
        assert!(
            !dir.join(SNAPSHOT_TMP).exists(),
            "{case}: {SNAPSHOT_TMP} left behind"
        );
        (s, root)
    }

    fn injected(step: Step) -> io::Error {
        io::Error::other(format!("injected failure at {step:?}"))
    }

    /// Issue 18, item 7: a compaction that fails at any step (the next log cannot be created,
    /// the snapshot cannot be written or renamed...) loses no acknowledged write, leaves no
    /// temporary snapshot, and waits before trying again.
    #[test]
    fn a_compaction_that_fails_at_any_step_loses_nothing() {
        for step in STEPS {
            let dir = tempfile::tempdir().unwrap();
            let case = format!("failing at {step:?}");
            {
                let (mut s, mut root, _) = Store::open(dir.path(), 200).unwrap();
                // One good compaction first, so there is an old snapshot to keep.
                assert!(fill(&mut s, &mut root, 0..20).is_empty());
                s.fault = Some(Box::new(move |at| {
                    if at == step {
                        Err(injected(at))
                    } else {
                        Ok(())
                    }
                }));
                let errors = fill(&mut s, &mut root, 20..30);
                assert!(!errors.is_empty(), "{case}: the fault was never hit");
                assert!(
                    errors[0].to_string().contains("injected"),
                    "{case}: {}",
                    errors[0]
                );
                if matches!(step, Step::CreateLog | Step::WriteSnapshot | Step::Rename) {
                    // Not switched: the next try waits for another `compact_after` bytes.
                    assert!(!s.wants_compaction(), "{case}: retries at once");
                    assert!(s.compact_at() > 200, "{case}");
                }
                assert!(!dir.path().join(SNAPSHOT_TMP).exists(), "{case}: tmp left");
                // Healed: compaction works again, and everything stays.
                s.fault = None;
                let errors = fill(&mut s, &mut root, 30..60);
                assert!(errors.is_empty(), "{case}: {errors:?}");
            }
            let (mut s, mut root) = assert_all(dir.path(), 60, &case);
            fill(&mut s, &mut root, 60..70);
            drop(s);
            assert_all(dir.path(), 70, &case);
        }
    }

    /// A crash (the process dies) at any step of a compaction, including half-way through
    /// writing the snapshot: on restart every acknowledged write is there, and the store
    /// appends to a log that the next recovery replays.
    #[test]
    fn a_crash_at_any_step_of_a_compaction_loses_nothing() {
        for step in STEPS {
            let dir = tempfile::tempdir().unwrap();
            let case = format!("crashing at {step:?}");
            let n = {
                let (mut s, mut root, _) = Store::open(dir.path(), 200).unwrap();
                assert!(fill(&mut s, &mut root, 0..20).is_empty());
                let tmp = dir.path().join(SNAPSHOT_TMP);
                s.fault = Some(Box::new(move |at| {
                    if at == step {
                        if at == Step::Rename {
                            // Torn mid-write: what a crash during the snapshot leaves.
                            let data = fs::read(&tmp)?;
                            fs::write(&tmp, &data[..data.len() / 2])?;
                        }
                        panic!("crash at {at:?}");
                    }
                    Ok(())
                }));
                let mut i = 20;
                loop {
                    write(&mut s, &mut root, &format!("/k/{i}"), json!(i));
                    i += 1;
                    if s.wants_compaction() {
                        let crashed =
                            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                                s.compact(&root)
                            }));
                        if crashed.is_err() {
                            break i;
                        }
                    }
                    assert!(i < 100, "{case}: the crash point was never reached");
                }
                // The process is gone: the store is dropped as it is.
            };
            let (mut s, mut root) = assert_all(dir.path(), n, &case);
            fill(&mut s, &mut root, n..n + 10);
            drop(s);
            assert_all(dir.path(), n + 10, &case);
        }
    }

    /// A failed write whose bytes cannot be cut off again (here: the log is /dev/full, where
    /// writes fail and truncation is impossible) stops the store taking writes, with a reason,
    /// instead of appending after a half record.
    #[test]
    fn a_log_that_cannot_be_cut_back_refuses_further_writes() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, _root, _) = Store::open(dir.path(), 200).unwrap();
        s.log = LogWriter::open(Path::new("/dev/full")).unwrap();
        let mut buf = Vec::new();
        log::encode(&[(DbPath::parse("/a").unwrap(), Some(json!(1)))], &mut buf);
        let first = s.append(&buf).unwrap_err();
        assert_eq!(first.raw_os_error(), Some(28), "{first}"); // ENOSPC
        let why = s.broken().expect("marked broken").to_owned();
        assert!(why.contains("no more writes"), "{why}");
        let second = s.append(&buf).unwrap_err();
        assert!(second.to_string().contains("no more writes"), "{second}");
        assert!(!s.wants_compaction());
    }
}
