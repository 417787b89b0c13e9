//! One streamed location: a task that holds the SSE connection, keeps the cache, and turns
//! `put`/`patch` into child events. It reconnects with backoff and jitter, reopens a connection
//! that went silent (keep-alive watchdog), asks for a fresh credential after `auth_revoked` (or a token refused at open, once), and
//! stops on `cancel` or when the consumer drops the subscription.

use eventsource_stream::Eventsource;
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::cache::{BadPath, Cache, ChildEvent, NestedCache, NestedEvent};
use super::{Backoff, RtdbClient};

/// What a subscription reports.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum StreamEvent {
    /// A child was added, changed or removed.
    Child(ChildEvent),
    /// A grandchild was added, changed or removed (streams opened with
    /// [`RtdbClient::subscribe_nested`] report these instead of `Child`).
    Nested(NestedEvent),
    /// The connection delivered its initial value (first connect and every reconnect), and the
    /// child events for it, if any, came just before: the cache now matches the server.
    Synced(Value),
    /// The connection broke; it is being reopened. Events resume without gaps or repeats.
    Disconnected(String),
    /// The server refused to let us read (wrong credential or rules); the stream has stopped.
    Denied(String),
    /// The server cancelled the stream (the rules no longer allow the read); it has stopped.
    Cancelled,
}

/// A live stream; dropping it closes the connection.
pub struct Subscription {
    rx: mpsc::Receiver<StreamEvent>,
    task: JoinHandle<()>,
}

impl Subscription {
    /// The next event, or `None` once the stream has stopped (after `Denied`/`Cancelled`).
    pub async fn next(&mut self) -> Option<StreamEvent> {
        self.rx.recv().await
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Deserialize)]
struct Payload {
    path: String,
    data: Value,
}

pub(super) fn spawn(client: RtdbClient, path: String) -> Subscription {
    start(client, path, Tracker::Flat(Cache::default()))
}

/// A stream reporting grandchildren one at a time, keeping at most `keep` per child (see
/// [`NestedCache`]).
pub(super) fn spawn_nested(client: RtdbClient, path: String, keep: usize) -> Subscription {
    start(client, path, Tracker::Nested(NestedCache::new(keep)))
}

fn start(client: RtdbClient, path: String, tracker: Tracker) -> Subscription {
    let (tx, rx) = mpsc::channel(256);
    let task = tokio::spawn(run(client, path, tx, tracker));
    Subscription { rx, task }
}

/// The local copy a stream keeps, and the events it turns writes into.
enum Tracker {
    Flat(Cache),
    Nested(NestedCache),
}

impl Tracker {
    fn put(&mut self, path: &str, data: Value) -> Result<Vec<StreamEvent>, BadPath> {
        Ok(match self {
            Tracker::Flat(c) => c
                .put(path, data)?
                .into_iter()
                .map(StreamEvent::Child)
                .collect(),
            Tracker::Nested(c) => c
                .put(path, data)?
                .into_iter()
                .map(StreamEvent::Nested)
                .collect(),
        })
    }

    fn patch(
        &mut self,
        path: &str,
        data: serde_json::Map<String, Value>,
    ) -> Result<Vec<StreamEvent>, BadPath> {
        Ok(match self {
            Tracker::Flat(c) => c
                .patch(path, data)?
                .into_iter()
                .map(StreamEvent::Child)
                .collect(),
            Tracker::Nested(c) => c
                .patch(path, data)?
                .into_iter()
                .map(StreamEvent::Nested)
                .collect(),
        })
    }

    fn value(&self) -> Value {
        match self {
            Tracker::Flat(c) => c.value().clone(),
            Tracker::Nested(c) => c.value(),
        }
    }
}

/// Why one connection ended.
enum End {
    Reconnect(String),
    Stop,
}

async fn run(client: RtdbClient, path: String, tx: mpsc::Sender<StreamEvent>, mut cache: Tracker) {
    let mut backoff = Backoff::default();
    loop {
        match connect_once(&client, &path, &mut cache, &tx, &mut backoff).await {
            End::Stop => return,
            End::Reconnect(reason) => {
                tracing::debug!(%path, %reason, "stream reconnecting");
                if tx.send(StreamEvent::Disconnected(reason)).await.is_err() {
                    return;
                }
            }
        }
        tokio::time::sleep(backoff.next_delay(rand::random::<f64>())).await;
    }
}

async fn connect_once(
    client: &RtdbClient,
    path: &str,
    cache: &mut Tracker,
    tx: &mpsc::Sender<StreamEvent>,
    backoff: &mut Backoff,
) -> End {
    // A token refused at open (it expired since we got it) gets one more try with a fresh one
    // before the stream gives up as denied.
    let mut retried = false;
    let (resp, used) = loop {
        let used = match client.credential().await {
            Ok(c) => c,
            Err(e) => return End::Reconnect(e.to_string()),
        };
        let mut request = client
            .http()
            .get(client.location(path))
            .header("accept", "text/event-stream");
        if let Some(c) = &used {
            request = request.query(&[("auth", c)]);
        }
        if let Some(o) = client.config().auth_override() {
            request = request.query(&[("auth_variable_override", o)]);
        }
        let resp = match tokio::time::timeout(client.config().request_timeout, request.send()).await
        {
            Err(_) => return End::Reconnect("no answer to the stream request".into()),
            Ok(Err(e)) => return End::Reconnect(super::RtdbError::from(e).to_string()),
            Ok(Ok(r)) => r,
        };
        if resp.status().is_success() {
            break (resp, used);
        }
        let err = super::http_error(resp).await;
        if err.is_permission_denied() {
            client.refused(used.as_deref());
            if !retried && used.is_some() && err.is_token_rejected() {
                retried = true;
                continue;
            }
            let _ = tx.send(StreamEvent::Denied(err.to_string())).await;
            return End::Stop;
        }
        return End::Reconnect(err.to_string());
    };
    let idle = client.config().stream_idle_timeout;
    let mut events = resp.bytes_stream().eventsource();
    let mut first = true;
    loop {
        let next = match tokio::time::timeout(idle, events.next()).await {
            Err(_) => return End::Reconnect(format!("no data or keep-alive for {idle:?}")),
            Ok(None) => return End::Reconnect("the server closed the stream".into()),
            Ok(Some(Err(e))) => return End::Reconnect(e.to_string()),
            Ok(Some(Ok(ev))) => ev,
        };
        match next.event.as_str() {
            "put" | "patch" => {
                let Ok(p) = serde_json::from_str::<Payload>(&next.data) else {
                    tracing::warn!(%path, data = %next.data, "ignoring a malformed stream event");
                    continue;
                };
                let changes = match (next.event.as_str(), p.data) {
                    ("patch", Value::Object(map)) => cache.patch(&p.path, map),
                    ("patch", other) => {
                        tracing::warn!(%path, data = %other, "ignoring a patch that is not an object");
                        continue;
                    }
                    (_, data) => cache.put(&p.path, data),
                };
                let changes = match changes {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!(%path, error = %e, "ignoring a stream event");
                        continue;
                    }
                };
                for c in changes {
                    if tx.send(c).await.is_err() {
                        return End::Stop;
                    }
                }
                if first {
                    first = false;
                    backoff.reset();
                    if tx.send(StreamEvent::Synced(cache.value())).await.is_err() {
                        return End::Stop;
                    }
                }
            }
            "keep-alive" => {}
            "cancel" => {
                let _ = tx.send(StreamEvent::Cancelled).await;
                return End::Stop;
            }
            "auth_revoked" => {
                // Every stream opened with the same token hears this at about the same time;
                // naming the token lets the source refresh once for all of them.
                client.refused(used.as_deref());
                return End::Reconnect("the credential expired".into());
            }
            other => tracing::debug!(%path, event = other, "ignoring unknown stream event"),
        }
    }
}
