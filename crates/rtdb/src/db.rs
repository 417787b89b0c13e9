//! The database: the in-memory tree, one writer thread that makes writes durable with group
//! commit, and the hub that streams changes.
//!
//! A write is applied to the tree, logged, fsynced, and published to listeners all while the
//! writer holds the tree's write lock, so a reader never sees a value that is not yet durable and
//! a new listener's first `put` and its later events never overlap or leave a gap.

use std::sync::{Arc, Mutex, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, oneshot};

use crate::error::DbError;
use crate::hub::{Change, Hub, Subscription, Target};
use crate::path::DbPath;
use crate::pushid::PushIds;
use crate::query::Filter;
use crate::rules::Caller;
use crate::store::{log, Recovery, Store};
use crate::tree;

/// The ETag of an absent location.
pub const NULL_ETAG: &str = "null_etag";
/// How many queued writes one fsync may cover.
const MAX_BATCH: usize = 1024;

/// Tunables of an open database.
#[derive(Clone, Debug)]
pub struct DbConfig {
    /// Log size that triggers a snapshot.
    pub compact_after_bytes: u64,
    /// A stream with this many bytes queued and unread is dropped.
    pub max_stream_queue_bytes: usize,
    /// A stream with this many events queued and unread is dropped.
    pub max_stream_queue_events: usize,
}

impl Default for DbConfig {
    fn default() -> Self {
        DbConfig {
            compact_after_bytes: 64 << 20,
            max_stream_queue_bytes: 16 << 20,
            max_stream_queue_events: 4096,
        }
    }
}

/// A write request.
#[derive(Debug)]
pub enum WriteOp {
    /// PUT (and DELETE, with `Value::Null`), optionally conditional on an ETag.
    Set {
        path: DbPath,
        /// The client's JSON, server values unresolved.
        value: Value,
        /// `if-match`.
        if_match: Option<String>,
    },
    /// PATCH: each key (possibly a multi-segment path) replaced, atomically.
    Update {
        /// The parent of the keys.
        path: DbPath,
        /// The client's object.
        children: Map<String, Value>,
    },
    /// POST: a new child under a fresh push ID.
    Push {
        path: DbPath,
        /// The client's JSON.
        value: Value,
    },
}

/// What a successful write answers.
#[derive(Debug)]
pub enum WriteResult {
    /// PUT/DELETE: the value now stored at the path (rendered), and its ETag.
    Set { value: Value, etag: String },
    /// PATCH: the children as written (rendered).
    Updated(Value),
    /// POST: the new child's key.
    Pushed(String),
}

enum Msg {
    Write(Job),
    /// Finish what is queued before this, release the data folder, and answer.
    Close(oneshot::Sender<()>),
}

/// The rules check of one write, run by the writer with the tree locked: it sees the tree before
/// the write (`old`), the write as planned (`sets`: stored form, server values resolved, no two
/// nested) and the server clock, and either lets the write happen or refuses it. Checking there,
/// not before queueing, leaves no gap in which another write could change what was checked.
pub type WriteGuard =
    Box<dyn FnOnce(&Value, &[(DbPath, Option<Value>)], u64) -> Result<(), DbError> + Send>;

struct Job {
    op: WriteOp,
    guard: Option<WriteGuard>,
    reply: oneshot::Sender<Result<WriteResult, DbError>>,
}

struct Shared {
    tree: RwLock<Value>,
    hub: Mutex<Hub>,
}

/// A handle to an open database; cheap to clone.
#[derive(Clone)]
pub struct Db {
    shared: Arc<Shared>,
    writes: mpsc::Sender<Msg>,
}

impl Db {
    /// Opens the data folder (recovering its contents) and starts the writer thread.
    pub fn open(dir: &std::path::Path, config: DbConfig) -> std::io::Result<(Db, Recovery)> {
        let (store, root, recovery) = Store::open(dir, config.compact_after_bytes)?;
        let shared = Arc::new(Shared {
            tree: RwLock::new(root),
            hub: Mutex::new(Hub::new(
                config.max_stream_queue_bytes,
                config.max_stream_queue_events,
            )),
        });
        let (tx, rx) = mpsc::channel(8 * MAX_BATCH);
        let writer_shared = shared.clone();
        std::thread::Builder::new()
            .name("huddle-db-writer".into())
            .spawn(move || writer_loop(writer_shared, store, rx))?;
        Ok((Db { shared, writes: tx }, recovery))
    }

    /// Runs a write; answers once it is durable and published.
    pub async fn write(&self, op: WriteOp) -> Result<WriteResult, DbError> {
        self.write_guarded(op, None).await
    }

    /// Runs a write if `guard` (when given) lets it, judged atomically with the write.
    pub async fn write_guarded(
        &self,
        op: WriteOp,
        guard: Option<WriteGuard>,
    ) -> Result<WriteResult, DbError> {
        let (reply, answer) = oneshot::channel();
        self.writes
            .send(Msg::Write(Job { op, guard, reply }))
            .await
            .map_err(|_| DbError::Unavailable)?;
        answer.await.map_err(|_| DbError::Unavailable)?
    }

    /// Queues a write behind those queued before it and returns where its answer will come,
    /// without waiting for it: a realtime connection pipelines its writes this way and they
    /// still apply in the order it sent them.
    pub async fn submit(
        &self,
        op: WriteOp,
        guard: Option<WriteGuard>,
    ) -> Result<oneshot::Receiver<Result<WriteResult, DbError>>, DbError> {
        let (reply, answer) = oneshot::channel();
        self.writes
            .send(Msg::Write(Job { op, guard, reply }))
            .await
            .map_err(|_| DbError::Unavailable)?;
        Ok(answer)
    }

    /// Whether `guard` would let `op` happen on the tree as it is now, without writing (an
    /// onDisconnect operation is judged when it is registered, as Firebase judges it).
    pub fn check_write(&self, op: &WriteOp, guard: Option<WriteGuard>) -> Result<(), DbError> {
        let root = self.shared.tree.read().unwrap_or_else(|e| e.into_inner());
        let now = now_ms();
        let planned = match op {
            WriteOp::Set { path, value, .. } | WriteOp::Push { path, value } => {
                let resolved =
                    tree::resolve_server_values(value.clone(), tree::get(&root, path), now)?;
                vec![(path.clone(), tree::normalize(resolved, path.len())?)]
            }
            WriteOp::Update { path, children } => {
                let mut planned = Vec::with_capacity(children.len());
                for (key, value) in children {
                    let rel = DbPath::parse(key)
                        .map_err(|e| DbError::BadData(format!("Invalid data; {e}")))?;
                    let full = path.join(&rel);
                    let resolved =
                        tree::resolve_server_values(value.clone(), tree::get(&root, &full), now)?;
                    planned.push((full.clone(), tree::normalize(resolved, full.len())?));
                }
                check_no_ancestors(path, &planned)?;
                planned
            }
        };
        match guard {
            Some(g) => g(&root, &planned, now),
            None => Ok(()),
        }
    }

    /// Starts one listen of a realtime connection at `path`: its first push (the current value,
    /// filtered) is queued in the target's outbox before this returns; returns the id for
    /// [`Db::unsubscribe`].
    pub fn subscribe_realtime(
        &self,
        path: DbPath,
        filter: Option<Filter>,
        caller: Caller,
        target: Target,
    ) -> u64 {
        let root = self.shared.tree.read().unwrap_or_else(|e| e.into_inner());
        let initial = match (&filter, tree::get(&root, &path)) {
            (_, None) => Value::Null,
            (Some(f), Some(v)) => tree::render(&f.apply(v)),
            (None, Some(v)) => tree::render(v),
        };
        let mut hub = self.shared.hub.lock().unwrap_or_else(|e| e.into_inner());
        hub.add_realtime(path, filter, caller, target, &initial)
    }

    /// A realtime connection's credentials changed: its listen `id` is judged as `caller`.
    pub fn set_listener_caller(&self, path: &DbPath, id: u64, caller: &Caller) {
        let mut hub = self.shared.hub.lock().unwrap_or_else(|e| e.into_inner());
        hub.set_caller(path, id, caller);
    }

    /// The stored value at `path` (stored form; `Null` when absent).
    pub fn read<T>(&self, path: &DbPath, f: impl FnOnce(Option<&Value>) -> T) -> T {
        let root = self.shared.tree.read().unwrap_or_else(|e| e.into_inner());
        f(tree::get(&root, path))
    }

    /// Runs `f` on the whole stored tree (`Null` when empty), e.g. to check rules and read in
    /// one look.
    pub fn with_root<T>(&self, f: impl FnOnce(&Value) -> T) -> T {
        let root = self.shared.tree.read().unwrap_or_else(|e| e.into_inner());
        f(&root)
    }

    /// Starts a stream at `path`; its first event is the current (filtered) value.
    pub fn subscribe(&self, path: DbPath, filter: Option<Filter>, caller: Caller) -> Subscription {
        let root = self.shared.tree.read().unwrap_or_else(|e| e.into_inner());
        let now = tree::get(&root, &path);
        let initial = match (&filter, now) {
            (_, None) => Value::Null,
            (Some(f), Some(v)) => tree::render(&f.apply(v)),
            (None, Some(v)) => tree::render(v),
        };
        let mut hub = self.shared.hub.lock().unwrap_or_else(|e| e.into_inner());
        hub.add(path, filter, caller, &initial)
    }

    /// Stops the writer after the writes queued so far and releases the data folder.
    pub async fn close(&self) {
        let (done, closed) = oneshot::channel();
        if self.writes.send(Msg::Close(done)).await.is_ok() {
            let _ = closed.await;
        }
    }

    /// Ends a stream's registration.
    pub fn unsubscribe(&self, path: &DbPath, id: u64) {
        let mut hub = self.shared.hub.lock().unwrap_or_else(|e| e.into_inner());
        hub.remove(path, id);
    }

    /// Sends `cancel` to every stream whose reader may no longer read its location, and ends
    /// them; returns how many.
    /// `denied` also sees the stored tree, which rules may consult.
    pub fn cancel_streams_where(
        &self,
        mut denied: impl FnMut(&Caller, &DbPath, &Value) -> bool,
    ) -> usize {
        // Tree before hub, the order the writer takes them in.
        let root = self.shared.tree.read().unwrap_or_else(|e| e.into_inner());
        let mut hub = self.shared.hub.lock().unwrap_or_else(|e| e.into_inner());
        hub.cancel_where(|caller, path| denied(caller, path, &root))
    }

    /// Ends every stream (shutdown): their connections close once drained.
    pub fn close_all_streams(&self) {
        let mut hub = self.shared.hub.lock().unwrap_or_else(|e| e.into_inner());
        hub.clear();
    }

    /// Number of open streams.
    pub fn stream_count(&self) -> usize {
        self.shared
            .hub
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }
}

/// The ETag of a stored value (or of absence).
pub fn etag(value: Option<&Value>) -> String {
    match value {
        None => NULL_ETAG.to_owned(),
        Some(v) => {
            let digest = Sha256::digest(v.to_string().as_bytes());
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest[..20])
        }
    }
}

/// Milliseconds since the Unix epoch, the server clock of `{".sv":"timestamp"}`.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

struct Applied {
    reply: oneshot::Sender<Result<WriteResult, DbError>>,
    result: Result<WriteResult, DbError>,
    base: DbPath,
    sets: Vec<(DbPath, Option<Value>)>,
    merge: bool,
}

fn writer_loop(shared: Arc<Shared>, mut store: Store, mut rx: mpsc::Receiver<Msg>) {
    let mut ids = PushIds::default();
    let mut closer = None;
    while let Some(first) = rx.blocking_recv() {
        let mut jobs = Vec::new();
        match first {
            Msg::Write(j) => jobs.push(j),
            Msg::Close(done) => closer = Some(done),
        }
        while closer.is_none() && jobs.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(Msg::Write(j)) => jobs.push(j),
                Ok(Msg::Close(done)) => closer = Some(done),
                Err(_) => break,
            }
        }
        write_batch(&shared, &mut store, &mut ids, jobs);
        if closer.is_some() {
            break;
        }
    }
    // Dropping the store releases the data folder's lock.
    drop(store);
    if let Some(done) = closer {
        let _ = done.send(());
    }
}

fn write_batch(shared: &Shared, store: &mut Store, ids: &mut PushIds, jobs: Vec<Job>) {
    if jobs.is_empty() {
        return;
    }
    let mut root = shared.tree.write().unwrap_or_else(|e| e.into_inner());
    let mut undo = Vec::new();
    let now = now_ms();
    let mut applied = Vec::with_capacity(jobs.len());
    let mut log_bytes = Vec::new();
    for job in jobs {
        let merge = matches!(job.op, WriteOp::Update { .. });
        let (base, result, sets) = match apply(&mut root, job.op, job.guard, now, ids, &mut undo) {
            Ok((base, result, sets)) => (base, Ok(result), sets),
            Err(e) => (DbPath::root(), Err(e), Vec::new()),
        };
        if !sets.is_empty() {
            log::encode(&sets, &mut log_bytes);
        }
        applied.push(Applied {
            reply: job.reply,
            result,
            base,
            sets,
            merge,
        });
    }
    if !log_bytes.is_empty() {
        if let Err(e) = store.append(&log_bytes) {
            tracing::error!(error = %e, "could not make writes durable; they were not applied");
            for (path, old) in undo.into_iter().rev() {
                tree::set(&mut root, &path, old);
            }
            for a in applied {
                let msg = std::io::Error::new(e.kind(), e.to_string());
                let _ = a.reply.send(Err(DbError::Storage(msg)));
            }
            return;
        }
    }
    {
        let mut hub = shared.hub.lock().unwrap_or_else(|e| e.into_inner());
        for a in &applied {
            hub.publish(
                &Change {
                    base: &a.base,
                    sets: &a.sets,
                    merge: a.merge,
                },
                &root,
            );
        }
    }
    drop(root);
    // Every write of the batch is in the fsynced log: acknowledge before compacting, which
    // keeps that log replayable until its snapshot is in place (see `Store::compact`).
    for a in applied {
        let _ = a.reply.send(a.result);
    }
    if store.wants_compaction() {
        // Only this thread writes the tree, so a read lock sees the same tree and lets
        // readers on while the snapshot is serialised.
        let root = shared.tree.read().unwrap_or_else(|e| e.into_inner());
        match store.compact(&root) {
            Ok(()) => tracing::info!("snapshot written, log compacted"),
            Err(e) => tracing::error!(
                error = %e,
                next_try_at_log_bytes = store.compact_at(),
                "snapshot failed; every write stays in the current log, which recovery replays"
            ),
        }
    }
}

type Applied1 = (DbPath, WriteResult, Vec<(DbPath, Option<Value>)>);

/// Old values of everything a batch overwrote, to roll it back if it cannot be made durable.
type Undo = Vec<(DbPath, Option<Value>)>;

fn apply(
    root: &mut Value,
    op: WriteOp,
    guard: Option<WriteGuard>,
    now: u64,
    ids: &mut PushIds,
    undo: &mut Undo,
) -> Result<Applied1, DbError> {
    let check = |root: &Value, planned: &[(DbPath, Option<Value>)]| match guard {
        Some(g) => g(root, planned, now),
        None => Ok(()),
    };
    match op {
        WriteOp::Set {
            path,
            value,
            if_match,
        } => {
            let current = tree::get(root, &path);
            let resolved = tree::resolve_server_values(value, current, now)?;
            let planned = vec![(path.clone(), tree::normalize(resolved, path.len())?)];
            // Rules first: a caller who may not write learns nothing from a failed condition.
            check(root, &planned)?;
            let current = tree::get(root, &path);
            if let Some(expected) = if_match {
                let actual = etag(current);
                if expected != actual {
                    let current = current.map(tree::render).unwrap_or(Value::Null);
                    return Err(DbError::PreconditionFailed {
                        current,
                        etag: actual,
                    });
                }
            }
            let sets = effective(root, planned, undo);
            let stored = tree::get(root, &path);
            let result = WriteResult::Set {
                value: stored.map(tree::render).unwrap_or(Value::Null),
                etag: etag(stored),
            };
            Ok((path, result, sets))
        }
        WriteOp::Push { path, value } => {
            let key = ids.next(now);
            let child = path.child(&key);
            let resolved = tree::resolve_server_values(value, None, now)?;
            let planned = vec![(child.clone(), tree::normalize(resolved, child.len())?)];
            check(root, &planned)?;
            let sets = effective(root, planned, undo);
            Ok((path, WriteResult::Pushed(key), sets))
        }
        WriteOp::Update { path, children } => {
            let mut planned = Vec::with_capacity(children.len());
            let mut echo = Map::new();
            for (key, value) in children {
                let rel = DbPath::parse(&key)
                    .map_err(|e| DbError::BadData(format!("Invalid data; {e}")))?;
                if rel.is_empty() {
                    return Err(DbError::BadData(
                        "Invalid data; an update key must not be empty".into(),
                    ));
                }
                let full = path.join(&rel);
                let resolved = tree::resolve_server_values(value, tree::get(root, &full), now)?;
                let new = tree::normalize(resolved, full.len())?;
                echo.insert(key, new.as_ref().map(tree::render).unwrap_or(Value::Null));
                planned.push((full, new));
            }
            check_no_ancestors(&path, &planned)?;
            check(root, &planned)?;
            let sets = effective(root, planned, undo);
            Ok((path, WriteResult::Updated(Value::Object(echo)), sets))
        }
    }
}

/// A multi-path update may not name a path and one of its descendants.
fn check_no_ancestors(base: &DbPath, planned: &[(DbPath, Option<Value>)]) -> Result<(), DbError> {
    let mut paths: Vec<&DbPath> = planned.iter().map(|(p, _)| p).collect();
    paths.sort();
    for pair in paths.windows(2) {
        if pair[0].contains(pair[1]) {
            let rel = |p: &DbPath| base.relative(p).map(|r| r.to_string()).unwrap_or_default();
            return Err(DbError::BadData(format!(
                "Invalid data; path {} is an ancestor of {} in the same update",
                rel(pair[0]),
                rel(pair[1])
            )));
        }
    }
    Ok(())
}

/// Applies the planned sets and keeps the ones that changed something.
fn effective(
    root: &mut Value,
    planned: Vec<(DbPath, Option<Value>)>,
    undo: &mut Undo,
) -> Vec<(DbPath, Option<Value>)> {
    let mut out = Vec::with_capacity(planned.len());
    for (path, new) in planned {
        let old = tree::get(root, &path);
        if old == new.as_ref() {
            continue;
        }
        undo.push((path.clone(), old.cloned()));
        tree::set(root, &path, new.clone());
        out.push((path, new));
    }
    out
}
