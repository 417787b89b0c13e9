//! Firebase's realtime protocol on `/.ws`: one WebSocket per client carrying every listen,
//! write, read and onDisconnect operation, as the official SDKs speak it (the vocabulary is in
//! [`crate::wire`]).
//!
//! A connection is one task: it reads requests in order and submits writes to the database's
//! writer in that order without waiting for each (so they pipeline yet apply as sent); the
//! answers and the data pushes of every listen go through the connection's one [`Outbox`], into
//! which the writer queues a write's pushes before it answers the write, so a client sees its
//! own write's data before the write's `ok`, as the SDKs' transactions need. When the
//! connection ends, for any reason (a close, a reset, pings that go unanswered), its
//! onDisconnect operations run as one atomic update; they were judged against the rules when
//! registered, as Firebase judges them.

use std::collections::HashMap;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::FromRequestParts;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Map, Value};
use tokio::time::Instant;

use crate::db::{now_ms, WriteOp};
use crate::error::DbError;
use crate::http::{token_deadline, AppState};
use crate::hub::{Outbox, OutboxRx, Target};
use crate::path::DbPath;
use crate::rules::Caller;
use crate::tree;
use crate::wire::frames::{self, Joiner};
use crate::wire::{self, filter_from_query, hash::hash, ClientMessage, Request};

/// The WebSocket endpoint's path.
pub const PATH: &str = "/.ws";
/// How often the server pings a quiet client (WebSocket ping frames, which every WebSocket
/// stack answers by itself).
pub const PING_EVERY: Duration = Duration::from_secs(4);
/// A client heard from not at all for this long is gone: its connection is closed and its
/// onDisconnect operations run. Longer than the room protocol's 15 s presence bound, so a
/// network outage that presence would survive (the heartbeat's expiry) does not end a member's
/// presence here either: its connection resumes when the network does (a Wi-Fi drop of 12 s is
/// repaired by ICE without a rejoin, `crates/peer/tests/outage.rs`). A vanished machine is still
/// removed by the others' expiry at 15 s.
pub const DEAD_AFTER: Duration = Duration::from_secs(20);
/// Largest message a client may send (the REST body limit, plus the envelope).
pub const MAX_MESSAGE: usize = crate::http::MAX_BODY_BYTES + 64 * 1024;
/// Listens one connection may hold at once.
pub const MAX_LISTENS: usize = 10_000;
/// Bytes queued for a client that does not read before it is dropped (as for an SSE stream).
pub const MAX_QUEUED_BYTES: usize = 16 << 20;
/// Unreadable messages tolerated before the connection is closed.
const MAX_BAD_MESSAGES: u32 = 100;

/// Answers the upgrade of `GET /.ws?v=5&ns=...`.
pub async fn upgrade(app: AppState, req: axum::extract::Request) -> Response {
    let (mut parts, _body) = req.into_parts();
    let ws = match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
        Ok(ws) => ws,
        Err(rejection) => return rejection.into_response(),
    };
    let host = parts
        .headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost")
        .to_owned();
    // Small buffers: tungstenite's defaults (128 KiB each way, allocated per connection) made
    // an idle connection cost ~139 KiB, seven times an idle SSE stream (huddle-db-bench).
    ws.max_message_size(MAX_MESSAGE)
        .max_frame_size(MAX_MESSAGE)
        .read_buffer_size(4096)
        .write_buffer_size(0)
        .on_upgrade(move |socket| run(app, socket, host))
}

/// One registered onDisconnect operation, in the client's raw JSON (server values are
/// resolved when it runs).
#[derive(Debug, Clone, PartialEq)]
struct Pending {
    path: DbPath,
    value: Value,
}

/// The onDisconnect operations of a connection, kept as non-overlapping sets so that all of
/// them run as one multi-path update, with the effect of running them in registration order.
#[derive(Debug, Default)]
struct OnDisconnect {
    sets: Vec<Pending>,
}

impl OnDisconnect {
    fn set(&mut self, path: DbPath, value: Value) {
        // A later set replaces what it covers...
        self.sets.retain(|p| !path.contains(&p.path));
        // ...and goes inside an earlier set that covers it.
        if let Some(outer) = self.sets.iter_mut().find(|p| p.path.contains(&path)) {
            if let Some(rel) = outer.path.relative(&path) {
                set_raw(&mut outer.value, &rel, value);
            }
            return;
        }
        self.sets.push(Pending { path, value });
    }

    fn cancel(&mut self, path: &DbPath) {
        self.sets.retain(|p| !path.contains(&p.path));
        // Cancelling inside a registered set removes that part of it.
        for p in &mut self.sets {
            if let Some(rel) = p.path.relative(path) {
                set_raw(&mut p.value, &rel, Value::Null);
            }
        }
    }

    fn take_update(&mut self) -> Option<Map<String, Value>> {
        if self.sets.is_empty() {
            return None;
        }
        Some(
            std::mem::take(&mut self.sets)
                .into_iter()
                .map(|p| (p.path.segments().join("/"), p.value))
                .collect(),
        )
    }
}

/// Sets `rel` inside a raw JSON value, making objects on the way.
fn set_raw(target: &mut Value, rel: &DbPath, value: Value) {
    let mut at = target;
    for seg in rel.segments() {
        if !at.is_object() {
            *at = Value::Object(Map::new());
        }
        let Value::Object(map) = at else { return };
        at = map.entry(seg.to_owned()).or_insert(Value::Null);
    }
    *at = value;
}

struct Listen {
    id: u64,
    query: Value,
}

struct Conn {
    app: AppState,
    out: Outbox,
    caller: Caller,
    expiry: Option<Instant>,
    listens: HashMap<(DbPath, Option<u64>), Listen>,
    on_disconnect: OnDisconnect,
}

async fn run(app: AppState, socket: WebSocket, host: String) {
    let (out, out_rx) = Outbox::new(MAX_QUEUED_BYTES);
    out.push(wire::hello(now_ms(), &host, &session_id()));
    let (sink, mut stream) = socket.split();
    let overflowed = out_rx.overflowed.clone();
    let writer = tokio::spawn(write_loop(sink, out_rx));
    let mut conn = Conn {
        app,
        out,
        caller: Caller::Anonymous,
        expiry: None,
        listens: HashMap::new(),
        on_disconnect: OnDisconnect::default(),
    };
    let mut joiner = Joiner::new(MAX_MESSAGE);
    let mut last_heard = Instant::now();
    let mut check = tokio::time::interval(Duration::from_secs(1));
    let mut bad = 0u32;
    let reason = loop {
        let expiry = conn.expiry;
        tokio::select! {
            frame = stream.next() => {
                let frame = match frame {
                    None => break "closed by the client",
                    Some(Err(_)) => break "connection lost",
                    Some(Ok(f)) => f,
                };
                last_heard = Instant::now();
                let text = match frame {
                    Message::Text(t) => t,
                    Message::Close(_) => break "closed by the client",
                    Message::Binary(_) => {
                        conn.out.push(wire::control_error("binary frames are not part of the protocol"));
                        continue;
                    }
                    Message::Ping(_) | Message::Pong(_) => continue,
                };
                let message = match joiner.push(text.as_str()) {
                    Ok(Some(m)) => m,
                    Ok(None) => continue,
                    Err(e) => {
                        conn.out.push(wire::control_error(&e.to_string()));
                        break "message too large";
                    }
                };
                match ClientMessage::parse(&message) {
                    Ok(ClientMessage::Ping) => {
                        conn.out.push(wire::pong());
                    }
                    Ok(ClientMessage::OtherControl) => {}
                    Ok(ClientMessage::Request { id, request }) => conn.handle(id, request).await,
                    Err(e) => {
                        bad += 1;
                        tracing::debug!(error = %e, "unreadable realtime message");
                        conn.out.push(wire::control_error(&e.to_string()));
                        if bad > MAX_BAD_MESSAGES {
                            break "too many unreadable messages";
                        }
                    }
                }
            }
            () = overflowed.notified() => break "stopped reading (too much queued)",
            () = sleep_until(expiry) => conn.token_expired(),
            _ = check.tick() => {
                if last_heard.elapsed() > DEAD_AFTER {
                    break "no answer to pings";
                }
            }
        }
    };
    tracing::debug!(reason, "realtime connection ended");
    conn.finish().await;
    writer.abort();
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn session_id() -> String {
    use rand::Rng;
    rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(16)
        .map(char::from)
        .collect()
}

async fn write_loop(
    mut sink: futures_util::stream::SplitSink<WebSocket, Message>,
    mut rx: OutboxRx,
) {
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            msg = rx.recv() => {
                let Some(msg) = msg else { break };
                for part in frames::split(&msg) {
                    if sink.send(Message::Text(part.into())).await.is_err() {
                        return;
                    }
                }
            }
            _ = ping.tick() => {
                if sink.send(Message::Ping(Vec::new().into())).await.is_err() {
                    return;
                }
            }
        }
    }
    let _ = sink.close().await;
}

/// The status word of a refusal, as the SDKs read it.
fn status_of(e: &DbError) -> (&'static str, String) {
    match e {
        DbError::PermissionDenied => ("permission_denied", "Permission denied".into()),
        DbError::PreconditionFailed { .. } | DbError::PreconditionHidden => (
            "datastale",
            "The transaction needs to be run again with current data".into(),
        ),
        DbError::AuthExpired => ("expired_token", e.to_string()),
        DbError::AuthInvalid => ("invalid_token", e.to_string()),
        DbError::BadData(m) | DbError::BadQuery(m) => ("invalid_data", m.clone()),
        other => ("unavailable", other.to_string()),
    }
}

impl Conn {
    fn respond(&self, id: Option<u64>, result: Result<Value, DbError>) {
        let Some(id) = id else { return };
        let msg = match result {
            Ok(data) => wire::response(id, "ok", data),
            Err(e) => {
                let (status, words) = status_of(&e);
                wire::response(id, status, Value::String(words))
            }
        };
        self.out.push(msg);
    }

    async fn handle(&mut self, id: Option<u64>, request: Request) {
        match request {
            Request::Listen {
                path, query, tag, ..
            } => {
                let r = self.listen(path, query, tag);
                self.respond(id, r.map(|()| json!({})));
            }
            Request::Unlisten { path, tag, .. } => {
                if let Some(l) = self.listens.remove(&(path.clone(), tag)) {
                    self.app.db.unsubscribe(&path, l.id);
                }
                self.respond(id, Ok(Value::Null));
            }
            Request::Put { path, data, hash } => {
                let op = WriteOp::Set {
                    path: path.clone(),
                    value: data,
                    if_match: None,
                };
                self.write(id, op, hash.map(|h| (path, h))).await;
            }
            Request::Merge { path, data } => {
                let op = WriteOp::Update {
                    path,
                    children: data,
                };
                self.write(id, op, None).await;
            }
            Request::Get { path, query } => {
                let r = self.get(&path, query.as_ref());
                self.respond(id, r);
            }
            Request::OnDisconnectPut { path, data } => {
                let r = self.register_on_disconnect(path, Err(data));
                self.respond(id, r.map(|()| Value::Null));
            }
            Request::OnDisconnectMerge { path, data } => {
                let r = self.register_on_disconnect(path, Ok(data));
                self.respond(id, r.map(|()| Value::Null));
            }
            Request::OnDisconnectCancel { path } => {
                self.on_disconnect.cancel(&path);
                self.respond(id, Ok(Value::Null));
            }
            Request::Auth {
                cred,
                admin_style,
                authvar,
                noauth,
            } => self.auth(id, &cred, admin_style, authvar, noauth),
            Request::Unauth => {
                self.set_caller(Caller::Anonymous, None);
                self.respond(id, Ok(Value::Null));
            }
            Request::Stats => self.respond(id, Ok(Value::Null)),
            Request::Other { action } => match action.as_str() {
                // App Check is not enforced here; the SDKs send these when it is configured.
                "appcheck" | "unappeck" => self.respond(id, Ok(Value::Null)),
                _ => {
                    if let Some(id) = id {
                        self.out.push(wire::response(
                            id,
                            "invalid_action",
                            Value::String(format!("unknown action {action:?}")),
                        ));
                    }
                }
            },
        }
    }

    fn listen(
        &mut self,
        path: DbPath,
        query: Option<Value>,
        tag: Option<u64>,
    ) -> Result<(), DbError> {
        let filter = match &query {
            Some(q) => filter_from_query(q).map_err(|e| DbError::BadQuery(e.to_string()))?,
            None => None,
        };
        let key = (path.clone(), tag);
        if !self.listens.contains_key(&key) && self.listens.len() >= MAX_LISTENS {
            return Err(DbError::BadQuery(format!(
                "a connection may hold at most {MAX_LISTENS} listens"
            )));
        }
        let app = &self.app;
        app.db
            .with_root(|root| app.access.check_read(&self.caller, &path, root))?;
        if let Some(old) = self.listens.remove(&key) {
            app.db.unsubscribe(&path, old.id);
        }
        let query = query.unwrap_or_else(|| json!({}));
        let target = Target {
            out: self.out.clone(),
            tag,
            query: query.clone(),
        };
        let id = app
            .db
            .subscribe_realtime(path, filter, self.caller.clone(), target);
        self.listens.insert(key, Listen { id, query });
        Ok(())
    }

    fn get(&self, path: &DbPath, query: Option<&Value>) -> Result<Value, DbError> {
        let filter = match query {
            Some(q) => filter_from_query(q).map_err(|e| DbError::BadQuery(e.to_string()))?,
            None => None,
        };
        self.app.db.with_root(|root| {
            self.app.access.check_read(&self.caller, path, root)?;
            Ok(match (tree::get(root, path), &filter) {
                (None, _) => Value::Null,
                (Some(v), Some(f)) => tree::render(&f.apply(v)),
                (Some(v), None) => tree::render(v),
            })
        })
    }

    /// Submits a write in order; its answer is sent when it comes. `expect` is a transaction's
    /// `(path, hash)`: the write happens only if the stored value there still hashes so.
    async fn write(&self, id: Option<u64>, op: WriteOp, expect: Option<(DbPath, String)>) {
        let rules = self.app.access.write_guard(&self.caller);
        let guard: Option<crate::db::WriteGuard> = match expect {
            None => rules,
            Some((path, want)) => Some(Box::new(move |old, sets, now| {
                if let Some(g) = rules {
                    g(old, sets, now)?;
                }
                if hash(tree::get(old, &path)) != want {
                    return Err(DbError::PreconditionFailed {
                        current: Value::Null,
                        etag: String::new(),
                    });
                }
                Ok(())
            })),
        };
        let answer = match self.app.db.submit(op, guard).await {
            Ok(a) => a,
            Err(e) => return self.respond(id, Err(e)),
        };
        let out = self.out.clone();
        tokio::spawn(async move {
            let result = match answer.await {
                Ok(r) => r,
                Err(_) => Err(DbError::Unavailable),
            };
            let Some(id) = id else { return };
            let msg = match result {
                Ok(_) => wire::response(id, "ok", Value::String(String::new())),
                Err(e) => {
                    let (status, words) = status_of(&e);
                    wire::response(id, status, Value::String(words))
                }
            };
            out.push(msg);
        });
    }

    /// `data`: `Err(value)` for a set, `Ok(children)` for an update.
    fn register_on_disconnect(
        &mut self,
        path: DbPath,
        data: Result<Map<String, Value>, Value>,
    ) -> Result<(), DbError> {
        // An update at the root is the usual multi-path form; replacing the whole database
        // when a client goes is not supported.
        if path.is_empty() && data.is_err() {
            return Err(DbError::BadData(
                "an onDisconnect set at the root is not supported".into(),
            ));
        }
        let op = match &data {
            Err(value) => WriteOp::Set {
                path: path.clone(),
                value: value.clone(),
                if_match: None,
            },
            Ok(children) => WriteOp::Update {
                path: path.clone(),
                children: children.clone(),
            },
        };
        self.app
            .db
            .check_write(&op, self.app.access.write_guard(&self.caller))?;
        match data {
            Err(value) => self.on_disconnect.set(path, value),
            Ok(children) => {
                for (key, value) in children {
                    let rel = DbPath::parse(&key).map_err(|e| DbError::BadData(e.to_string()))?;
                    self.on_disconnect.set(path.join(&rel), value);
                }
            }
        }
        Ok(())
    }

    fn auth(
        &mut self,
        id: Option<u64>,
        cred: &str,
        admin_style: bool,
        authvar: Option<Value>,
        noauth: bool,
    ) {
        let mut headers = HeaderMap::new();
        match HeaderValue::from_str(&format!("Bearer {cred}")) {
            Ok(v) => {
                headers.insert(axum::http::header::AUTHORIZATION, v);
            }
            Err(_) => {
                return self.respond(id, Err(DbError::AuthInvalid));
            }
        }
        let over = if noauth {
            Some("null".to_owned())
        } else {
            authvar.filter(|v| !v.is_null()).map(|v| v.to_string())
        };
        match self.app.access.identify(None, over.as_deref(), &headers) {
            // A credential that names nobody is refused, not taken as "signed out".
            Ok(Caller::Anonymous) if over.is_none() => {
                let (status, _) = status_of(&DbError::AuthInvalid);
                if let Some(id) = id {
                    self.out.push(wire::response(
                        id,
                        status,
                        Value::String(if admin_style {
                            "the admin credential was not accepted".into()
                        } else {
                            "the ID token was not accepted".into()
                        }),
                    ));
                }
            }
            Ok(caller) => {
                let expiry = token_deadline(&caller);
                let data = match &caller {
                    Caller::User(u) => json!({
                        "auth": {"uid": u.uid, "provider": u.provider, "token": u.token},
                        "expires": u.token.get("exp").cloned().unwrap_or(Value::Null),
                    }),
                    Caller::Admin => json!({"auth": null, "admin": true}),
                    Caller::Anonymous => json!({"auth": null}),
                };
                self.set_caller(caller, expiry);
                self.respond(id, Ok(data));
            }
            Err(e) => self.respond(id, Err(e)),
        }
    }

    fn token_expired(&mut self) {
        self.out.push(wire::auth_revoked(
            "expired_token",
            "Auth token is expired.",
        ));
        self.set_caller(Caller::Anonymous, None);
    }

    /// Takes new credentials: listens they may not keep end with `c`, the rest are judged as
    /// the new caller from now on.
    fn set_caller(&mut self, caller: Caller, expiry: Option<Instant>) {
        self.caller = caller;
        self.expiry = expiry;
        let app = self.app.clone();
        let caller = self.caller.clone();
        let mut denied = Vec::new();
        app.db.with_root(|root| {
            for ((path, tag), l) in &self.listens {
                if app.access.check_read(&caller, path, root).is_err() {
                    denied.push((path.clone(), *tag));
                } else {
                    app.db.set_listener_caller(path, l.id, &caller);
                }
            }
        });
        for key in denied {
            if let Some(l) = self.listens.remove(&key) {
                app.db.unsubscribe(&key.0, l.id);
                self.out.push(
                    json!({"t": "d", "d": {"a": "c", "b": {"p": key.0.to_string(), "q": l.query}}})
                        .to_string(),
                );
            }
        }
    }

    /// The connection is gone: its listens end and its onDisconnect operations run, atomically.
    async fn finish(&mut self) {
        for ((path, _), l) in self.listens.drain() {
            self.app.db.unsubscribe(&path, l.id);
        }
        let Some(children) = self.on_disconnect.take_update() else {
            return;
        };
        let op = WriteOp::Update {
            path: DbPath::root(),
            children,
        };
        if let Err(e) = self.app.db.write(op).await {
            tracing::warn!(error = %e, "onDisconnect operations could not run");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> DbPath {
        DbPath::parse(s).unwrap()
    }

    #[test]
    fn on_disconnect_operations_combine_as_if_run_in_order() {
        let mut od = OnDisconnect::default();
        od.set(p("/a/b"), json!(1));
        od.set(p("/a"), json!({"x": 1}));
        od.set(p("/a/y"), json!(2));
        od.set(p("/c"), Value::Null);
        od.set(p("/d/e"), json!({".sv": "timestamp"}));
        od.cancel(&p("/d"));
        od.set(p("/f"), json!({"g": 1, "h": 2}));
        od.cancel(&p("/f/g"));
        let update = od.take_update().unwrap();
        assert_eq!(
            Value::Object(update),
            json!({"a": {"x": 1, "y": 2}, "c": null, "f": {"g": null, "h": 2}})
        );
        assert!(od.take_update().is_none());
    }
}
