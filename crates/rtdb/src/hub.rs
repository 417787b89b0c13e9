//! Streaming listeners and the fan-out of each write to them.
//!
//! Listeners are indexed by path, so a write at `P` finds its audience with one lookup per
//! ancestor of `P` plus one range scan over `P`'s descendants. Each listener gets exactly one
//! event per write, serialized once and shared by every listener at the same path.
//!
//! A listener is an SSE stream (its own channel) or one listen of a realtime connection
//! (`crate::realtime`): many listens share the connection's [`Outbox`], in which a write's data
//! pushes are queued before the writer answers, the order the Firebase SDKs rely on.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use serde_json::{Map, Value};
use tokio::sync::mpsc;

use crate::path::DbPath;
use crate::query::Filter;
use crate::rules::Caller;
use crate::tree;

/// One SSE message, ready to write, and its share of the per-stream memory bound.
pub type Frame = Bytes;

/// Formats one SSE event.
pub fn frame(event: &str, data: &str) -> Frame {
    Bytes::from(format!("event: {event}\ndata: {data}\n\n"))
}

fn put_frame(kind: &str, path: &DbPath, data: &Value) -> Frame {
    put_frame_text(kind, path, &data.to_string())
}

/// [`put_frame`] with the data already serialised (once, for every listener it goes to).
fn put_frame_text(kind: &str, path: &DbPath, data: &str) -> Frame {
    let path = Value::from(path.to_string());
    frame(kind, &format!(r#"{{"data":{data},"path":{path}}}"#))
}

/// The events queued for one SSE stream. The hub holds it too, not only the stream, so that
/// dropping a stream that stopped reading frees what it queued at once: with a channel, the
/// frames would stay in memory until the stuck connection itself closed.
pub struct StreamQueue {
    inner: std::sync::Mutex<QueueState>,
    ready: tokio::sync::Notify,
}

#[derive(Default)]
struct QueueState {
    frames: std::collections::VecDeque<Frame>,
    bytes: usize,
    /// No more frames come: the stream ends once the queued ones are taken.
    finished: bool,
}

impl StreamQueue {
    fn new() -> Arc<StreamQueue> {
        Arc::new(StreamQueue {
            inner: std::sync::Mutex::new(QueueState::default()),
            ready: tokio::sync::Notify::new(),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, QueueState> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `msg` unless the stream's backlog would pass the bounds (one frame always fits
    /// an empty queue, however large); false means "drop this stream".
    fn offer(&self, msg: Frame, max_bytes: usize, max_events: usize) -> bool {
        let mut st = self.state();
        if st.finished {
            return false;
        }
        let empty = st.frames.is_empty();
        if !empty && (st.bytes + msg.len() > max_bytes || st.frames.len() >= max_events) {
            return false;
        }
        st.bytes += msg.len();
        st.frames.push_back(msg);
        drop(st);
        self.ready.notify_one();
        true
    }

    /// Ends the stream after what is queued.
    fn finish(&self) {
        self.state().finished = true;
        self.ready.notify_one();
    }

    /// Ends the stream now and frees what it had queued.
    fn abandon(&self) {
        let mut st = self.state();
        st.frames.clear();
        st.bytes = 0;
        st.finished = true;
        drop(st);
        self.ready.notify_one();
    }

    /// Bytes queued and not yet taken.
    pub fn queued_bytes(&self) -> usize {
        self.state().bytes
    }

    /// The next frame without waiting: `Ok(None)` when there is none yet, `Err(())` once the
    /// stream has ended.
    #[allow(clippy::result_unit_err)]
    pub fn try_recv(&self) -> Result<Option<Frame>, ()> {
        let mut st = self.state();
        match st.frames.pop_front() {
            Some(f) => {
                st.bytes -= f.len();
                Ok(Some(f))
            }
            None if st.finished => Err(()),
            None => Ok(None),
        }
    }

    /// The next frame, or `None` once the stream has ended.
    pub async fn recv(&self) -> Option<Frame> {
        loop {
            match self.try_recv() {
                Ok(Some(f)) => return Some(f),
                Err(()) => return None,
                // One consumer, and notify_one keeps a permit: no wake-up is lost.
                Ok(None) => self.ready.notified().await,
            }
        }
    }
}

/// Receiving half of a listener, held by the HTTP stream.
pub struct Subscription {
    /// Events in order.
    pub rx: Arc<StreamQueue>,
    /// Identity, for [`Hub::remove`].
    pub id: u64,
    /// Where it listens.
    pub path: DbPath,
}

struct Listener {
    id: u64,
    caller: Caller,
    filter: Option<Filter>,
    sink: Sink,
    /// A query's last view sent (a checksum of its text): a write that leaves the view as it
    /// was sends nothing, as Firebase sends nothing.
    last_view: u32,
}

impl Drop for Listener {
    fn drop(&mut self) {
        // Unsubscribed, cancelled or shut down: the stream ends once drained.
        if let Sink::Sse(queue) = &self.sink {
            queue.finish();
        }
    }
}

fn view_sum(text: &str) -> u32 {
    crc32fast::hash(text.as_bytes())
}

/// The checksum of the first view a query listener got.
fn first_view(filter: &Option<Filter>, initial: &Value) -> u32 {
    match filter {
        Some(f) if !f.is_unbounded() => view_sum(&initial.to_string()),
        _ => 0,
    }
}

enum Sink {
    Sse(Arc<StreamQueue>),
    Realtime(Target),
}

/// Where one listen of a realtime connection goes: the connection's outbox, the listen's tag
/// (queries only) and its query object, echoed in pushes and in `c`.
pub struct Target {
    pub out: Outbox,
    pub tag: Option<u64>,
    pub query: Value,
}

/// The outgoing queue of one realtime connection: every listen of the connection and its
/// request answers go through it, in order. Bounded in bytes: a connection that lets more pile
/// up is marked overflowed (its driver then closes it) and gets nothing more.
#[derive(Clone)]
pub struct Outbox {
    tx: mpsc::UnboundedSender<String>,
    queued: Arc<AtomicUsize>,
    overflowed: Arc<tokio::sync::Notify>,
    max_bytes: usize,
}

/// The receiving half of an [`Outbox`], held by the connection's driver.
pub struct OutboxRx {
    rx: mpsc::UnboundedReceiver<String>,
    queued: Arc<AtomicUsize>,
    /// Notified once when the outbox overflows.
    pub overflowed: Arc<tokio::sync::Notify>,
}

impl Outbox {
    /// A queue that holds at most `max_bytes` unsent (one message always fits when empty).
    pub fn new(max_bytes: usize) -> (Outbox, OutboxRx) {
        let (tx, rx) = mpsc::unbounded_channel();
        let queued = Arc::new(AtomicUsize::new(0));
        let overflowed = Arc::new(tokio::sync::Notify::new());
        (
            Outbox {
                tx,
                queued: queued.clone(),
                overflowed: overflowed.clone(),
                max_bytes,
            },
            OutboxRx {
                rx,
                queued,
                overflowed,
            },
        )
    }

    /// Queues one message; false when the connection is gone or over its bound.
    pub fn push(&self, msg: String) -> bool {
        let size = msg.len();
        let queued = self.queued.load(Ordering::Relaxed);
        if queued == usize::MAX {
            return false;
        }
        if queued > 0 && queued + size > self.max_bytes {
            // Poisoned: nothing more is queued, and the driver closes the connection.
            self.queued.store(usize::MAX, Ordering::Relaxed);
            self.overflowed.notify_one();
            return false;
        }
        self.queued.fetch_add(size, Ordering::Relaxed);
        self.tx.send(msg).is_ok()
    }

    /// Bytes queued and not yet sent (0 once overflowed: nothing more will be).
    fn queued_bytes(&self) -> usize {
        match self.queued.load(Ordering::Relaxed) {
            usize::MAX => 0,
            n => n,
        }
    }

    /// Marks the connection overflowed now: its driver closes it, which frees what it queued.
    fn overflow(&self) {
        self.queued.store(usize::MAX, Ordering::Relaxed);
        self.overflowed.notify_one();
    }

    /// Which connection this is (the listens of one connection share its outbox).
    fn id(&self) -> usize {
        Arc::as_ptr(&self.queued) as usize
    }
}

impl OutboxRx {
    /// The next message to send, or `None` once every sender is gone.
    pub async fn recv(&mut self) -> Option<String> {
        let msg = self.rx.recv().await?;
        let _ = self
            .queued
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |q| {
                (q != usize::MAX).then(|| q.saturating_sub(msg.len()))
            });
        Some(msg)
    }
}

/// A realtime data push (`d` for a set, `m` for a merge) as the SDKs read it.
pub fn realtime_push(action: &str, path: &DbPath, data: &Value, tag: Option<u64>) -> String {
    realtime_push_text(action, path, &data.to_string(), tag)
}

/// [`realtime_push`] with the data already serialised (once, for every listen it goes to).
fn realtime_push_text(action: &str, path: &DbPath, data: &str, tag: Option<u64>) -> String {
    let action = Value::from(action);
    let path = Value::from(path.to_string());
    let tag = tag.map(|t| format!(r#","t":{t}"#)).unwrap_or_default();
    format!(r#"{{"t":"d","d":{{"a":{action},"b":{{"p":{path},"d":{data}{tag}}}}}}}"#)
}

pub struct Hub {
    by_path: BTreeMap<DbPath, Vec<Listener>>,
    next_id: u64,
    max_queued_bytes: usize,
    max_queued_events: usize,
    /// Bound on what all SSE streams together hold unread.
    max_total_queued_bytes: usize,
    count: usize,
}

/// One applied write, as the hub needs it: the base path and the changes, in stored form.
pub struct Change<'a> {
    /// The location the request named (for PATCH, the parent of its keys).
    pub base: &'a DbPath,
    /// The effective changes (absolute path, new value) that this write made.
    pub sets: &'a [(DbPath, Option<Value>)],
    /// A PATCH: listeners at or above `base` get one `patch` event, as Firebase sends.
    pub merge: bool,
}

impl Hub {
    /// An empty hub with per-stream bounds: a listener that lets this much pile up is dropped.
    pub fn new(max_queued_bytes: usize, max_queued_events: usize) -> Self {
        Hub {
            by_path: BTreeMap::new(),
            next_id: 0,
            max_queued_bytes,
            max_queued_events,
            max_total_queued_bytes: usize::MAX,
            count: 0,
        }
    }

    /// Bounds what all streams together may hold unread: past it, the streams furthest behind
    /// are dropped (and their backlog freed) until the rest fit.
    pub fn with_total_bound(mut self, bytes: usize) -> Self {
        self.max_total_queued_bytes = bytes;
        self
    }

    /// SSE streams and realtime connections alike: a realtime connection (all its listens share
    /// one outbox) is counted once, and dropping it closes the connection, whose driver then
    /// removes its listens.
    fn enforce_total_bound(&mut self) {
        enum Behind {
            Sse(DbPath, u64),
            Realtime(Outbox),
        }
        if self.max_total_queued_bytes == usize::MAX {
            return;
        }
        let mut total = 0usize;
        let mut behind: Vec<(usize, Behind)> = Vec::new();
        let mut connections = std::collections::HashSet::new();
        for (path, list) in &self.by_path {
            for l in list {
                let (bytes, who) = match &l.sink {
                    Sink::Sse(queue) => (queue.queued_bytes(), Behind::Sse(path.clone(), l.id)),
                    Sink::Realtime(target) => {
                        if !connections.insert(target.out.id()) {
                            continue;
                        }
                        let out = &target.out;
                        (out.queued_bytes(), Behind::Realtime(out.clone()))
                    }
                };
                if bytes > 0 {
                    total += bytes;
                    behind.push((bytes, who));
                }
            }
        }
        if total <= self.max_total_queued_bytes {
            return;
        }
        behind.sort_by_key(|b| std::cmp::Reverse(b.0));
        let mut dropped = 0;
        for (bytes, who) in behind {
            if total <= self.max_total_queued_bytes {
                break;
            }
            let (path, id) = match who {
                Behind::Sse(path, id) => (path, id),
                Behind::Realtime(out) => {
                    out.overflow();
                    total -= bytes;
                    dropped += 1;
                    continue;
                }
            };
            if let Some(list) = self.by_path.get_mut(&path) {
                if let Some(at) = list.iter().position(|l| l.id == id) {
                    let l = list.remove(at);
                    if let Sink::Sse(queue) = &l.sink {
                        queue.abandon();
                    }
                    self.count -= 1;
                    if list.is_empty() {
                        self.by_path.remove(&path);
                    }
                }
            }
            total -= bytes;
            dropped += 1;
        }
        tracing::warn!(
            dropped,
            bound_mib = self.max_total_queued_bytes >> 20,
            "the streams' unread events reached the server's bound; dropped the slowest"
        );
    }

    /// Registers one listen of a realtime connection; its first push (the value at `path`,
    /// filtered, `initial`) is queued in `out`. Returns the id for [`Hub::remove`].
    pub fn add_realtime(
        &mut self,
        path: DbPath,
        filter: Option<Filter>,
        caller: Caller,
        target: Target,
        initial: &Value,
    ) -> u64 {
        target
            .out
            .push(realtime_push("d", &path, initial, target.tag));
        self.next_id += 1;
        let id = self.next_id;
        self.by_path
            .entry(path.clone())
            .or_default()
            .push(Listener {
                id,
                caller,
                last_view: first_view(&filter, initial),
                filter,
                sink: Sink::Realtime(target),
            });
        self.count += 1;
        id
    }

    /// A realtime connection's credentials changed: its listen `id` at `path` is now judged
    /// as `caller` (by [`Hub::cancel_where`] when the rules change).
    pub fn set_caller(&mut self, path: &DbPath, id: u64, caller: &Caller) {
        if let Some(l) = self
            .by_path
            .get_mut(path)
            .and_then(|list| list.iter_mut().find(|l| l.id == id))
        {
            l.caller = caller.clone();
        }
    }

    /// Registers a listener whose first event (`put /` with `initial`) is already queued.
    pub fn add(
        &mut self,
        path: DbPath,
        filter: Option<Filter>,
        caller: Caller,
        initial: &Value,
    ) -> Subscription {
        let queue = StreamQueue::new();
        // An empty queue takes one frame, however large.
        queue.offer(put_frame("put", &DbPath::root(), initial), 0, 0);
        self.next_id += 1;
        let id = self.next_id;
        self.by_path
            .entry(path.clone())
            .or_default()
            .push(Listener {
                id,
                caller,
                last_view: first_view(&filter, initial),
                filter,
                sink: Sink::Sse(queue.clone()),
            });
        self.count += 1;
        Subscription {
            rx: queue,
            id,
            path,
        }
    }

    /// Forgets a listener (its stream ended).
    pub fn remove(&mut self, path: &DbPath, id: u64) {
        if let Some(list) = self.by_path.get_mut(path) {
            let before = list.len();
            list.retain(|l| l.id != id);
            self.count -= before - list.len();
            if list.is_empty() {
                self.by_path.remove(path);
            }
        }
    }

    /// Number of live listeners.
    pub fn len(&self) -> usize {
        self.count
    }

    /// True when nobody listens.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Drops every listener: their streams end once drained (shutdown).
    pub fn clear(&mut self) {
        self.by_path.clear();
        self.count = 0;
    }

    /// Sends `cancel` to, and drops, every listener that may no longer read where it listens.
    pub fn cancel_where(&mut self, mut denied: impl FnMut(&Caller, &DbPath) -> bool) -> usize {
        let mut cancelled = 0;
        let msg = frame("cancel", "null");
        self.by_path.retain(|path, list| {
            list.retain(|l| {
                let keep = !denied(&l.caller, path);
                if !keep {
                    match &l.sink {
                        Sink::Sse(queue) => {
                            queue.offer(msg.clone(), usize::MAX, usize::MAX);
                        }
                        Sink::Realtime(Target { out, query, .. }) => {
                            out.push(realtime_cancel(path, query));
                        }
                    }
                    cancelled += 1;
                }
                keep
            });
            !list.is_empty()
        });
        self.count -= cancelled;
        cancelled
    }

    /// Delivers one applied write. `root` is the tree after it (used for filtered listeners).
    /// Whether any listener is at `path`, above it or below it: a write there concerns them.
    pub fn listens_near(&self, path: &DbPath) -> bool {
        !self.by_path.is_empty() && self.listened_around(path).next().is_some()
    }

    /// The paths listened at `path`, above it, or below it: those a write at `path` concerns
    /// (`path` itself may come twice).
    fn listened_around<'a>(&'a self, path: &'a DbPath) -> impl Iterator<Item = &'a DbPath> + 'a {
        let above = (0..=path.len())
            .filter_map(move |n| self.by_path.get_key_value(&path.prefix(n)).map(|(k, _)| k));
        let below = self
            .by_path
            .range(path.clone()..)
            .take_while(move |(lp, _)| path.contains(lp))
            .map(|(k, _)| k);
        above.chain(below)
    }

    pub fn publish(&mut self, change: &Change<'_>, root: &Value) {
        if self.by_path.is_empty() || change.sets.is_empty() {
            return;
        }
        self.deliver(change, root);
        self.enforce_total_bound();
    }

    fn deliver(&mut self, change: &Change<'_>, root: &Value) {
        let affected: BTreeSet<DbPath> = change
            .sets
            .iter()
            .flat_map(|(p, _)| self.listened_around(p))
            .cloned()
            .collect();
        for lpath in affected {
            let plain = event_for(&lpath, change);
            // Serialized once per path and transport, on first use.
            let mut sse: Option<Frame> = None;
            let mut realtime: Option<String> = None;
            let Some(list) = self.by_path.get_mut(&lpath) else {
                continue;
            };
            let mut dead = Vec::new();
            // A query's view, rendered and serialised once per distinct query at this path
            // and shared by every listener with that query (300 listeners with the same
            // query cost one view, not 300).
            let mut views: Vec<(Filter, String, u32, Option<Frame>)> = Vec::new();
            for l in list.iter_mut() {
                // A query with no range and no limit sees every child, so the write's own
                // event is exactly how its view changed: it gets that, not a new view.
                let filter = l.filter.as_ref().filter(|f| !f.is_unbounded());
                let alive = match (filter, &l.sink) {
                    (None, Sink::Sse(_)) => {
                        let Some(ev) = &plain else { continue };
                        let msg = sse
                            .get_or_insert_with(|| put_frame(ev.kind, &ev.rel, &ev.data))
                            .clone();
                        offer(l, msg, self.max_queued_bytes, self.max_queued_events)
                    }
                    (None, Sink::Realtime(Target { out, tag, .. })) => {
                        let Some(ev) = &plain else { continue };
                        let action = if ev.kind == "patch" { "m" } else { "d" };
                        let data = realtime.get_or_insert_with(|| {
                            serde_json::to_string(&ev.data).unwrap_or_else(|_| "null".into())
                        });
                        // Each query's listen has its own tag; the data is the same.
                        out.push(realtime_push_text(action, &lpath.join(&ev.rel), data, *tag))
                    }
                    (Some(f), sink) => {
                        let at = match views.iter().position(|(vf, ..)| vf == f) {
                            Some(at) => at,
                            None => {
                                let text = tree::get(root, &lpath)
                                    .map(|v| serde_json::to_string(&tree::Rendered(&f.apply(v))))
                                    .transpose()
                                    .ok()
                                    .flatten()
                                    .unwrap_or_else(|| "null".to_owned());
                                let sum = view_sum(&text);
                                views.push((f.clone(), text, sum, None));
                                views.len() - 1
                            }
                        };
                        let (_, text, sum, frame) = &mut views[at];
                        if l.last_view == *sum {
                            continue;
                        }
                        l.last_view = *sum;
                        match sink {
                            Sink::Sse(_) => {
                                let msg = frame
                                    .get_or_insert_with(|| {
                                        put_frame_text("put", &DbPath::root(), text)
                                    })
                                    .clone();
                                offer(l, msg, self.max_queued_bytes, self.max_queued_events)
                            }
                            Sink::Realtime(Target { out, tag, .. }) => {
                                out.push(realtime_push_text("d", &lpath, text, *tag))
                            }
                        }
                    }
                };
                if !alive {
                    dead.push(l.id);
                }
            }
            if !dead.is_empty() {
                tracing::warn!(path = %lpath, count = dead.len(), "dropping stream(s) that stopped reading");
                list.retain(|l| {
                    let keep = !dead.contains(&l.id);
                    if let (false, Sink::Sse(queue)) = (keep, &l.sink) {
                        queue.abandon();
                    }
                    keep
                });
                self.count -= dead.len();
                if list.is_empty() {
                    self.by_path.remove(&lpath);
                }
            }
        }
    }
}

/// Queues `msg` unless the listener is over its bound; false means "drop this listener". A
/// listener with nothing queued always takes the event, however large: the bound is on backlog,
/// so any write the server accepts reaches a listener that keeps reading.
fn offer(l: &Listener, msg: Frame, max_bytes: usize, max_events: usize) -> bool {
    let Sink::Sse(queue) = &l.sink else {
        return false;
    };
    queue.offer(msg, max_bytes, max_events)
}

/// `c`: the listen at `path` (with its query object) is no longer allowed.
fn realtime_cancel(path: &DbPath, query: &Value) -> String {
    serde_json::json!({"t": "d", "d": {"a": "c", "b": {"p": path.to_string(), "q": query}}})
        .to_string()
}

/// What an unfiltered listener sees of one write: a `put` or `patch` at `rel` below it.
struct Event {
    kind: &'static str,
    rel: DbPath,
    data: Value,
}

/// The event an unfiltered listener at `lpath` gets for `change`, or `None` if it is unaffected.
fn event_for(lpath: &DbPath, change: &Change<'_>) -> Option<Event> {
    // A change at or above the listener replaces all it sees.
    for (p, v) in change.sets {
        if let Some(rel) = p.relative(lpath) {
            let now = v
                .as_ref()
                .and_then(|v| tree::get(v, &rel))
                .map(tree::render)
                .unwrap_or(Value::Null);
            return Some(Event {
                kind: "put",
                rel: DbPath::root(),
                data: now,
            });
        }
    }
    let below: Vec<&(DbPath, Option<Value>)> = change
        .sets
        .iter()
        .filter(|(p, _)| lpath.contains(p))
        .collect();
    match below.as_slice() {
        [] => None,
        [(p, v)] if !(change.merge && lpath.contains(change.base)) => Some(Event {
            kind: "put",
            rel: lpath.relative(p)?,
            data: v.as_ref().map(tree::render).unwrap_or(Value::Null),
        }),
        many => {
            // An update: one patch at the deeper of the listener and the update's base.
            let at = if lpath.contains(change.base) {
                change.base
            } else {
                lpath
            };
            let mut data = Map::new();
            for (p, v) in many {
                let key = at.relative(p)?.segments().join("/");
                data.insert(key, v.as_ref().map(tree::render).unwrap_or(Value::Null));
            }
            Some(Event {
                kind: "patch",
                rel: lpath.relative(at)?,
                data: Value::Object(data),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn p(s: &str) -> DbPath {
        DbPath::parse(s).unwrap()
    }

    #[test]
    fn pushes_and_frames_are_the_json_the_clients_read() {
        let data = json!({"a": [1, "x\"y"], "b": null});
        let path = p("/r/ü\"x");
        for tag in [None, Some(7)] {
            for action in ["d", "m"] {
                let mut body = json!({"p": "/r/ü\"x", "d": data});
                if let Some(t) = tag {
                    body["t"] = json!(t);
                }
                let expected = json!({"t": "d", "d": {"a": action, "b": body}});
                let sent: Value =
                    serde_json::from_str(&realtime_push(action, &path, &data, tag)).unwrap();
                assert_eq!(sent, expected);
            }
        }
        let f = put_frame("put", &p("/a"), &data);
        let text = std::str::from_utf8(&f).unwrap();
        let json = text
            .strip_prefix("event: put\ndata: ")
            .and_then(|t| t.strip_suffix("\n\n"))
            .unwrap();
        let sent: Value = serde_json::from_str(json).unwrap();
        assert_eq!(sent, json!({"path": "/a", "data": data}));
    }

    fn drain(sub: &mut Subscription) -> Vec<String> {
        let mut out = Vec::new();
        while let Ok(Some(f)) = sub.rx.try_recv() {
            out.push(String::from_utf8(f.to_vec()).unwrap());
        }
        out
    }

    #[test]
    fn overlapping_listeners_each_see_one_event_with_their_own_path() {
        let mut hub = Hub::new(1 << 20, 64);
        let mut root_l = hub.add(p("/"), None, Caller::Anonymous, &Value::Null);
        let mut a = hub.add(p("/a"), None, Caller::Anonymous, &Value::Null);
        let mut abc = hub.add(p("/a/b/c"), None, Caller::Anonymous, &Value::Null);
        let mut other = hub.add(p("/z"), None, Caller::Anonymous, &Value::Null);
        for s in [&mut root_l, &mut a, &mut abc, &mut other] {
            assert_eq!(drain(s).len(), 1);
        }
        let sets = vec![(p("/a"), Some(json!({"b": {"c": 1}})))];
        hub.publish(
            &Change {
                base: &p("/a"),
                sets: &sets,
                merge: false,
            },
            &json!({"a": {"b": {"c": 1}}}),
        );
        assert_eq!(
            drain(&mut root_l),
            ["event: put\ndata: {\"data\":{\"b\":{\"c\":1}},\"path\":\"/a\"}\n\n"]
        );
        assert_eq!(
            drain(&mut a),
            ["event: put\ndata: {\"data\":{\"b\":{\"c\":1}},\"path\":\"/\"}\n\n"]
        );
        assert_eq!(
            drain(&mut abc),
            ["event: put\ndata: {\"data\":1,\"path\":\"/\"}\n\n"]
        );
        assert!(drain(&mut other).is_empty());
    }

    #[test]
    fn multi_path_update_is_one_patch() {
        let mut hub = Hub::new(1 << 20, 64);
        let mut root_l = hub.add(p("/"), None, Caller::Anonymous, &Value::Null);
        let mut x = hub.add(p("/r/x"), None, Caller::Anonymous, &Value::Null);
        drain(&mut root_l);
        drain(&mut x);
        let sets = vec![(p("/r/x/k"), Some(json!(1))), (p("/r/y"), None)];
        hub.publish(
            &Change {
                base: &p("/r"),
                sets: &sets,
                merge: true,
            },
            &Value::Null,
        );
        assert_eq!(
            drain(&mut root_l),
            ["event: patch\ndata: {\"data\":{\"x/k\":1,\"y\":null},\"path\":\"/r\"}\n\n"]
        );
        assert_eq!(
            drain(&mut x),
            ["event: put\ndata: {\"data\":1,\"path\":\"/k\"}\n\n"]
        );
    }

    #[test]
    fn a_listener_that_stops_reading_is_dropped() {
        let mut hub = Hub::new(200, 64);
        let sub = hub.add(p("/a"), None, Caller::Anonymous, &Value::Null);
        let sets = vec![(p("/a/b"), Some(json!("x".repeat(100))))];
        for _ in 0..3 {
            hub.publish(
                &Change {
                    base: &p("/a/b"),
                    sets: &sets,
                    merge: false,
                },
                &Value::Null,
            );
        }
        assert_eq!(hub.len(), 0);
        drop(sub);
    }
}
