//! The database: the in-memory tree, one writer thread that makes writes durable with group
//! commit, and the hub that streams changes.
//!
//! A write is applied to the tree and logged and fsynced while the writer holds the tree's write
//! lock, so a reader never sees a value that is not yet durable. It is published to listeners
//! after, under a read lock, so that readers go on while query views are computed; the writer
//! takes the hub's lock before it lets go of the write lock and keeps it until every event of
//! the batch is queued, and a new listener reads its first value under the read lock and then
//! registers in the hub, so its first `put` and its later events never overlap or leave a gap
//! (it either registers before the batch, and reads the tree without it, or after the batch's
//! events, having read the tree with it). Only this thread writes, so no write comes between.
//!
//! What costs time in proportion to a write's size stays off that lock where it can: the
//! caller's task parses and normalises the data ([`Planned`]); values move into the tree without
//! a copy, and what they replace is freed after the lock is released; a PUT's answer (its value
//! rendered, its ETag) is read under a read lock afterwards.

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
    /// What all streams together may hold unread: past it the streams furthest behind are
    /// dropped first.
    pub max_total_stream_queue_bytes: usize,
}

impl Default for DbConfig {
    fn default() -> Self {
        DbConfig {
            compact_after_bytes: 64 << 20,
            max_stream_queue_bytes: 16 << 20,
            max_stream_queue_events: 4096,
            max_total_stream_queue_bytes: 256 << 20,
        }
    }
}

/// A write request.
#[derive(Clone, Debug)]
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
    /// PUT/DELETE: the value now stored at the path (rendered, as JSON text), and its ETag.
    /// Text, not a tree: a large write must not cost a second copy of itself to answer.
    Set { value: String, etag: String },
    /// PATCH: the children as written (rendered, as JSON text).
    Updated(String),
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

/// A write with its data already in stored form. The caller's task parses, checks and
/// normalises it, which costs time in proportion to its size; the writer, and the lock readers
/// wait on, is left only the server values to resolve and the tree to change.
#[derive(Debug)]
enum Planned {
    Set {
        path: DbPath,
        value: Option<Value>,
        if_match: Option<String>,
        /// A large value's log record, encoded by the caller's task too (when it has no server
        /// values, the record cannot depend on the tree).
        record: Option<Vec<u8>>,
    },
    /// Each child as (its key as sent, its full path, its stored value).
    Update {
        path: DbPath,
        children: Vec<(String, DbPath, Option<Value>)>,
    },
    Push {
        path: DbPath,
        value: Option<Value>,
    },
}

impl Planned {
    /// [`Planned::from_op`], on a blocking thread when the data is large: normalising it takes
    /// long enough to hold up every other request served by the same runtime thread.
    async fn prepare(op: WriteOp) -> Result<Planned, DbError> {
        let large = match &op {
            WriteOp::Set { value, .. } | WriteOp::Push { value, .. } => {
                nodes_up_to(value, LARGE_NODES) >= LARGE_NODES
            }
            WriteOp::Update { children, .. } => {
                children.len() >= LARGE_NODES
                    || children
                        .values()
                        .map(|v| nodes_up_to(v, LARGE_NODES))
                        .sum::<usize>()
                        >= LARGE_NODES
            }
        };
        if !large {
            return Planned::from_op(op);
        }
        tokio::task::spawn_blocking(move || {
            let mut planned = Planned::from_op(op)?;
            if let Planned::Set {
                path,
                value,
                record,
                ..
            } = &mut planned
            {
                if !value.as_ref().is_some_and(tree::has_server_values) {
                    let mut bytes = Vec::new();
                    log::encode_one(path, value.as_ref(), &mut bytes);
                    *record = Some(bytes);
                }
            }
            Ok(planned)
        })
        .await
        .map_err(|_| DbError::Unavailable)?
    }

    fn from_op(op: WriteOp) -> Result<Planned, DbError> {
        Ok(match op {
            WriteOp::Set {
                path,
                value,
                if_match,
            } => {
                let value = tree::normalize(value, path.len())?;
                Planned::Set {
                    path,
                    value,
                    if_match,
                    record: None,
                }
            }
            WriteOp::Push { path, value } => {
                let value = tree::normalize(value, path.len() + 1)?;
                Planned::Push { path, value }
            }
            WriteOp::Update { path, children } => {
                let mut planned = Vec::with_capacity(children.len());
                for (key, value) in children {
                    let rel = DbPath::parse(&key)
                        .map_err(|e| DbError::BadData(format!("Invalid data; {e}")))?;
                    if rel.is_empty() {
                        return Err(DbError::BadData(
                            "Invalid data; an update key must not be empty".into(),
                        ));
                    }
                    let full = path.join(&rel);
                    let value = tree::normalize(value, full.len())?;
                    planned.push((key, full, value));
                }
                let paths: Vec<&DbPath> = planned.iter().map(|(_, p, _)| p).collect();
                check_no_ancestors(&path, paths)?;
                Planned::Update {
                    path,
                    children: planned,
                }
            }
        })
    }
}

/// Data with this many nodes is normalised off the runtime's threads.
const LARGE_NODES: usize = 10_000;

/// Server values resolved against what is stored where `value` goes.
fn resolve(
    value: Option<Value>,
    current: Option<&Value>,
    now: u64,
) -> Result<Option<Value>, DbError> {
    match value {
        Some(v) if tree::has_server_values(&v) => {
            Ok(Some(tree::resolve_server_values(v, current, now)?))
        }
        other => Ok(other),
    }
}

struct Job {
    op: Planned,
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
            hub: Mutex::new(
                Hub::new(
                    config.max_stream_queue_bytes,
                    config.max_stream_queue_events,
                )
                .with_total_bound(config.max_total_stream_queue_bytes),
            ),
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
        let op = Planned::prepare(op).await?;
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
        let op = Planned::prepare(op).await?;
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
        let op = Planned::from_op(op.clone())?;
        let root = self.shared.tree.read().unwrap_or_else(|e| e.into_inner());
        let now = now_ms();
        let planned = match op {
            // onDisconnect has no push; a push is judged at the location it names.
            Planned::Set { path, value, .. } | Planned::Push { path, value } => {
                let value = resolve(value, tree::get(&root, &path), now)?;
                vec![(path, value)]
            }
            Planned::Update { children, .. } => {
                let mut planned = Vec::with_capacity(children.len());
                for (_, full, value) in children {
                    let value = resolve(value, tree::get(&root, &full), now)?;
                    planned.push((full, value));
                }
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
            // Hashed as it is serialised: a large value costs no copy of its text.
            let mut hasher = Sha256::new();
            if serde_json::to_writer(&mut hasher, v).is_err() {
                return NULL_ETAG.to_owned();
            }
            let digest = hasher.finalize();
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
    result: Result<Outcome, DbError>,
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
    // Subscribing takes the tree's read lock first, so no listener can appear while this
    // batch holds the write lock: asking the hub once per set is enough.
    let listened = |path: &DbPath| {
        shared
            .hub
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .listens_near(path)
    };
    let mut pending = Vec::new();
    let mut early = Vec::new();
    for (index, job) in jobs.into_iter().enumerate() {
        let merge = matches!(job.op, Planned::Update { .. });
        let mut w = Writing {
            root: &mut root,
            undo: &mut undo,
            log: &mut log_bytes,
            listened: &listened,
            pending: &mut pending,
            early: &mut early,
        };
        let (base, result, sets) = match w.apply(job.op, job.guard, now, ids) {
            Ok((base, Outcome::StoredAt(path), sets)) => {
                pending.push((index, path.clone()));
                (base, Ok(Outcome::StoredAt(path)), sets)
            }
            Ok((base, result, sets)) => (base, Ok(result), sets),
            Err(e) => (DbPath::root(), Err(e), Vec::new()),
        };
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
        // The hub first, then the read lock in place of the write lock (see the module's
        // comment): a subscriber holding the read lock while it waits for the hub does not
        // stop this thread from reading too.
        let mut hub = shared.hub.lock().unwrap_or_else(|e| e.into_inner());
        drop(root);
        let root = shared.tree.read().unwrap_or_else(|e| e.into_inner());
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
        drop(hub);
        // Every write of the batch is in the fsynced log: acknowledge before compacting, which
        // keeps that log replayable until its snapshot is in place (see `Store::compact`).
        for (index, a) in applied.into_iter().enumerate() {
            let result = a.result.map(|outcome| match outcome {
                Outcome::Done(r) => r,
                Outcome::StoredAt(path) => match early.iter().position(|(i, _)| *i == index) {
                    Some(at) => early.swap_remove(at).1,
                    None => stored_result(&root, &path),
                },
            });
            let _ = a.reply.send(result);
        }
    }
    // What the batch replaced is freed here, with no lock held.
    let replaced: usize = undo
        .iter()
        .map(|(_, old)| {
            old.as_ref()
                .map_or(0, |v| nodes_up_to(v, RETURN_AFTER_NODES))
        })
        .sum();
    drop(undo);
    if replaced >= RETURN_AFTER_NODES || log_bytes.len() >= RETURN_AFTER_BYTES {
        return_free_memory();
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

/// A batch that freed this many nodes, or wrote this many bytes (whose parsing freed as much),
/// hands the freed memory back to the system.
const RETURN_AFTER_NODES: usize = 50_000;
const RETURN_AFTER_BYTES: usize = 4 << 20;

/// Nodes in `value`, counting no further than `limit`.
fn nodes_up_to(value: &Value, limit: usize) -> usize {
    let mut count = 0;
    let mut stack = vec![value];
    while let Some(v) = stack.pop() {
        count += 1;
        if count >= limit {
            break;
        }
        let room = limit - count;
        match v {
            Value::Object(map) => stack.extend(map.values().take(room)),
            Value::Array(items) => stack.extend(items.iter().take(room)),
            _ => {}
        }
    }
    count
}

/// glibc keeps freed memory in its heaps for reuse, so a server that once held a large value
/// would keep its size for ever after the value is gone; trimming returns the free pages.
#[allow(unsafe_code)]
fn return_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory of the allocator; it touches no live
    // allocation and may be called from any thread.
    unsafe {
        libc::malloc_trim(0);
    }
}

type Applied1 = (DbPath, Outcome, Vec<(DbPath, Option<Value>)>);

/// What a write answers, or where to read it from.
enum Outcome {
    Done(WriteResult),
    /// A PUT answers with the value now at this path and its ETag. Rendering and hashing a large
    /// value takes long, so the writer does it after releasing the write lock (readers go on),
    /// or just before a later write of the same batch changes the path.
    StoredAt(DbPath),
}

fn stored_result(root: &Value, path: &DbPath) -> WriteResult {
    let stored = tree::get(root, path);
    WriteResult::Set {
        value: json_text(stored),
        etag: etag(stored),
    }
}

/// Old values of everything a batch overwrote, to roll it back if it cannot be made durable.
type Undo = Vec<(DbPath, Option<Value>)>;

/// One batch's writes against the locked tree.
struct Writing<'a, 'b> {
    root: &'a mut Value,
    undo: &'a mut Undo,
    log: &'a mut Vec<u8>,
    listened: &'b dyn Fn(&DbPath) -> bool,
    /// PUTs of this batch whose answers are still to be read: (job, path).
    pending: &'a mut Vec<(usize, DbPath)>,
    /// Answers read early, because a later write of the batch changed their path.
    early: &'a mut Vec<(usize, WriteResult)>,
}

impl Writing<'_, '_> {
    fn apply(
        &mut self,
        op: Planned,
        guard: Option<WriteGuard>,
        now: u64,
        ids: &mut PushIds,
    ) -> Result<Applied1, DbError> {
        let check = |root: &Value, planned: &[(DbPath, Option<Value>)]| match guard {
            Some(g) => g(root, planned, now),
            None => Ok(()),
        };
        match op {
            Planned::Set {
                path,
                value,
                if_match,
                record,
            } => {
                // A record encoded early means the caller found no server values (so the
                // scan for them, long for a large value, is not repeated under the lock).
                let value = match record {
                    Some(_) => value,
                    None => resolve(value, tree::get(self.root, &path), now)?,
                };
                let planned = vec![(path.clone(), value)];
                // Rules first: a caller who may not write learns nothing from a failed condition.
                check(self.root, &planned)?;
                let current = tree::get(self.root, &path);
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
                let sets = self.commit(planned, record);
                Ok((path.clone(), Outcome::StoredAt(path), sets))
            }
            Planned::Push { path, value } => {
                let key = ids.next(now);
                let child = path.child(&key);
                let value = resolve(value, None, now)?;
                let planned = vec![(child, value)];
                check(self.root, &planned)?;
                let sets = self.commit(planned, None);
                Ok((path, Outcome::Done(WriteResult::Pushed(key)), sets))
            }
            Planned::Update { path, children } => {
                let mut planned = Vec::with_capacity(children.len());
                let mut keys = Vec::with_capacity(children.len());
                for (key, full, value) in children {
                    let value = resolve(value, tree::get(self.root, &full), now)?;
                    keys.push(key);
                    planned.push((full, value));
                }
                check(self.root, &planned)?;
                let echo = serde_json::to_string(&Echo(&keys, &planned)).unwrap_or_default();
                let sets = self.commit(planned, None);
                Ok((path, Outcome::Done(WriteResult::Updated(echo)), sets))
            }
        }
    }

    /// Logs and applies the planned sets that change something, moving each value into the
    /// tree (no copy) and what it replaces into the undo list. Returns the sets listeners need.
    /// `record` is the sets' log record when the caller encoded it already.
    fn commit(
        &mut self,
        planned: Vec<(DbPath, Option<Value>)>,
        record: Option<Vec<u8>>,
    ) -> Vec<(DbPath, Option<Value>)> {
        let changed: Vec<_> = planned
            .into_iter()
            .filter(|(path, new)| tree::get(self.root, path) != new.as_ref())
            .collect();
        if changed.is_empty() {
            return changed;
        }
        match record {
            Some(bytes) if changed.len() == 1 => self.log.extend_from_slice(&bytes),
            _ => log::encode(&changed, self.log),
        }
        let root = &*self.root;
        let overlaps = |p: &DbPath| changed.iter().any(|(c, _)| c.contains(p) || p.contains(c));
        let (due, later): (Vec<_>, Vec<_>) = self.pending.drain(..).partition(|(_, p)| overlaps(p));
        *self.pending = later;
        for (index, path) in due {
            self.early.push((index, stored_result(root, &path)));
        }
        let mut published = Vec::new();
        for (path, new) in changed {
            if (self.listened)(&path) {
                published.push((path.clone(), new.clone()));
            }
            if let Some((at, leaf)) = tree::leaf_above(self.root, &path) {
                self.undo.push((at, Some(leaf)));
            }
            let old = tree::set(self.root, &path, new);
            self.undo.push((path, old));
        }
        published
    }
}

/// A PATCH's children as written, in output form.
struct Echo<'a>(&'a [String], &'a [(DbPath, Option<Value>)]);

impl serde::Serialize for Echo<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (key, (_, value)) in self.0.iter().zip(self.1) {
            map.serialize_entry(key, &value.as_ref().map(tree::Rendered))?;
        }
        map.end()
    }
}

/// A stored value (or absence) as JSON text in output form.
fn json_text(value: Option<&Value>) -> String {
    serde_json::to_string(&value.map(tree::Rendered)).unwrap_or_else(|_| "null".to_owned())
}

/// A multi-path update may not name a path and one of its descendants.
fn check_no_ancestors(base: &DbPath, mut paths: Vec<&DbPath>) -> Result<(), DbError> {
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
