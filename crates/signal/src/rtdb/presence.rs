//! onDisconnect for this client: a realtime-protocol connection (`/.ws`, the WebSocket the
//! Firebase SDKs use, served by real Firebase and by huddle-db) that holds the writes the
//! server performs when this client goes away, however it goes: a clean quit, a crash, a
//! killed process, a machine that drops off the network (the server notices unanswered pings).
//!
//! REST has no such thing, so everything else this client does stays on REST + SSE; this
//! connection only signs in (`auth` with the same credential as the REST calls), registers
//! `om` updates, and cancels them (`oc`) on a clean leave. After a reconnect it registers them
//! again. If the server does not speak the protocol, it keeps retrying quietly and the
//! room protocol's heartbeat still bounds how long a vanished member lingers.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Map, Value};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_tungstenite::tungstenite::Message;

use super::{Backoff, RtdbClient, RtdbError};

/// Where the link is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkState {
    /// Not (yet) connected and signed in with every operation registered.
    Connecting,
    /// Connected, and every operation asked for so far is registered.
    Armed,
    /// The server refused the credential or an operation; the words say which. It keeps
    /// trying (a refreshed token may be accepted).
    Refused(String),
}

enum Cmd {
    Update {
        path: String,
        children: Map<String, Value>,
    },
    Cancel(oneshot::Sender<Result<(), RtdbError>>),
}

/// The onDisconnect operations of one client. Dropping it closes the connection, so the
/// server runs what is registered: call [`OnDisconnect::cancel`] first on a clean leave.
pub struct OnDisconnect {
    cmds: mpsc::UnboundedSender<Cmd>,
    state: watch::Receiver<LinkState>,
}

impl OnDisconnect {
    pub(crate) fn start(client: RtdbClient) -> OnDisconnect {
        let (cmds, rx) = mpsc::unbounded_channel();
        let (state_tx, state) = watch::channel(LinkState::Connecting);
        tokio::spawn(run(client, rx, state_tx));
        OnDisconnect { cmds, state }
    }

    /// When this client goes away, update `children` of `path` (keys may be paths; `null`
    /// deletes). Judged by the rules now, run by the server later; kept across reconnects.
    pub fn update(&self, path: &str, children: Map<String, Value>) {
        let _ = self.cmds.send(Cmd::Update {
            path: path.to_owned(),
            children,
        });
    }

    /// Cancels everything registered; answers once the server has (or at once when the link
    /// is down: there is then nothing registered that a reconnect would not re-register).
    pub async fn cancel(&self) -> Result<(), RtdbError> {
        let (tx, rx) = oneshot::channel();
        if self.cmds.send(Cmd::Cancel(tx)).is_err() {
            return Ok(());
        }
        rx.await.unwrap_or(Ok(()))
    }

    /// The link's state, live.
    pub fn state(&self) -> watch::Receiver<LinkState> {
        self.state.clone()
    }
}

/// `ws(s)://host/.ws?v=5&ns=NS` for a database at `base` (`http(s)://host[:port]`).
fn ws_url(base: &str) -> Result<String, RtdbError> {
    let url = reqwest::Url::parse(base).map_err(|e| RtdbError::Config(e.to_string()))?;
    let scheme = if url.scheme() == "https" { "wss" } else { "ws" };
    let host = url
        .host_str()
        .ok_or_else(|| RtdbError::Config(format!("no host in {base}")))?;
    // Firebase names the database by its first host label (`<ns>.firebaseio.com`); huddle-db
    // serves one database and ignores it.
    let ns = url
        .query_pairs()
        .find(|(k, _)| k == "ns")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| host.split('.').next().unwrap_or(host).to_owned());
    let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
    Ok(format!("{scheme}://{host}{port}/.ws?v=5&ns={ns}"))
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Why a connection ended: the caller's handle is gone (stop), or anything else (retry).
enum End {
    Stop,
    Retry(String),
}

async fn run(
    client: RtdbClient,
    mut cmds: mpsc::UnboundedReceiver<Cmd>,
    state: watch::Sender<LinkState>,
) {
    let mut ops: Vec<(String, Map<String, Value>)> = Vec::new();
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
    loop {
        match session(&client, &mut cmds, &state, &mut ops, &mut backoff).await {
            End::Stop => return,
            End::Retry(why) => {
                tracing::debug!(reason = %why, "onDisconnect link down; reconnecting");
                if !matches!(*state.borrow(), LinkState::Refused(_)) {
                    state.send_replace(LinkState::Connecting);
                }
            }
        }
        let delay = backoff.next_delay(rand::random::<f64>());
        // Commands keep arriving while the link is down.
        let wait = tokio::time::sleep(delay);
        tokio::pin!(wait);
        loop {
            tokio::select! {
                () = &mut wait => break,
                cmd = cmds.recv() => match cmd {
                    None => return,
                    Some(Cmd::Update { path, children }) => ops.push((path, children)),
                    Some(Cmd::Cancel(done)) => {
                        ops.clear();
                        let _ = done.send(Ok(()));
                    }
                },
            }
        }
    }
}

/// One connection: sign in, register `ops`, then serve commands until it breaks.
async fn session(
    client: &RtdbClient,
    cmds: &mut mpsc::UnboundedReceiver<Cmd>,
    state: &watch::Sender<LinkState>,
    ops: &mut Vec<(String, Map<String, Value>)>,
    backoff: &mut Backoff,
) -> End {
    let url = match ws_url(client.url()) {
        Ok(u) => u,
        Err(e) => return End::Retry(e.to_string()),
    };
    let timeout = client.inner.config.request_timeout;
    let connector = match tls_connector(client) {
        Ok(c) => c,
        Err(e) => return End::Retry(e.to_string()),
    };
    let connecting =
        tokio_tungstenite::connect_async_tls_with_config(url.as_str(), None, false, connector);
    let ws = match tokio::time::timeout(timeout, connecting).await {
        Ok(Ok((ws, _))) => ws,
        Ok(Err(e)) => return End::Retry(e.to_string()),
        Err(_) => return End::Retry("connect timed out".into()),
    };
    let mut link = Link { ws, next: 0 };
    // The hello comes first.
    match link.next_data(timeout).await {
        Ok(v) if v["t"] == "c" && v["d"]["t"] == "h" => {}
        Ok(v) => return End::Retry(format!("expected the server's hello, got {v}")),
        Err(e) => return End::Retry(e),
    }
    if let Err(end) = link.authenticate(client, state, timeout).await {
        return end;
    }
    for (path, children) in ops.iter() {
        let r = link
            .request(
                "om",
                json!({"p": path, "d": Value::Object(children.clone())}),
                timeout,
            )
            .await;
        if let Err(end) = r.and_then(|b| refused_or_ok(&b, state)) {
            return end;
        }
    }
    state.send_replace(LinkState::Armed);
    backoff.reset();
    let mut keepalive = tokio::time::interval(Duration::from_secs(5));
    loop {
        tokio::select! {
            cmd = cmds.recv() => match cmd {
                None => {
                    let _ = link.ws.close(None).await;
                    return End::Stop;
                }
                Some(Cmd::Update { path, children }) => {
                    let body = json!({"p": path, "d": Value::Object(children.clone())});
                    ops.push((path, children));
                    let r = link.request("om", body, timeout).await;
                    if let Err(end) = r.and_then(|b| refused_or_ok(&b, state)) {
                        return end;
                    }
                    state.send_replace(LinkState::Armed);
                }
                Some(Cmd::Cancel(done)) => {
                    let r = link.request("oc", json!({"p": "/"}), timeout).await;
                    match r {
                        Ok(b) if b["s"] == "ok" => {
                            ops.clear();
                            let _ = done.send(Ok(()));
                        }
                        Ok(b) => {
                            let _ = done.send(Err(RtdbError::BadResponse(format!("cancel refused: {b}"))));
                        }
                        Err(end) => {
                            // The connection is gone, and with it what it held was run or is
                            // forgotten; nothing will be registered again.
                            ops.clear();
                            let _ = done.send(Ok(()));
                            return end;
                        }
                    }
                }
            },
            msg = link.next_data(Duration::from_secs(3600)) => match msg {
                Ok(v) => {
                    if v["t"] == "d" && v["d"]["a"] == "ac" {
                        // The credential expired or was revoked: sign in again with a fresh one.
                        if let Err(end) = link.authenticate(client, state, timeout).await {
                            return end;
                        }
                    }
                }
                Err(e) => return End::Retry(e),
            },
            _ = keepalive.tick() => {
                if link.ws.send(Message::text("0")).await.is_err() {
                    return End::Retry("the connection broke".into());
                }
            }
        }
    }
}

fn refused_or_ok(body: &Value, state: &watch::Sender<LinkState>) -> Result<(), End> {
    if body["s"] == "ok" {
        return Ok(());
    }
    let words = format!(
        "the database refused to hold this client's onDisconnect work ({}: {})",
        body["s"].as_str().unwrap_or("?"),
        body["d"].as_str().unwrap_or("")
    );
    tracing::warn!("{words}");
    state.send_replace(LinkState::Refused(words.clone()));
    Err(End::Retry(words))
}

struct Link {
    ws: Ws,
    next: u64,
}

impl Link {
    /// The next JSON message (frames joined), answering nothing itself: tungstenite answers
    /// the server's pings as it reads.
    async fn next_data(&mut self, timeout: Duration) -> Result<Value, String> {
        let mut joiner = rtdb::wire::frames::Joiner::new(super::MAX_REALTIME_MESSAGE);
        loop {
            let msg = match tokio::time::timeout(timeout, self.ws.next()).await {
                Err(_) => return Err("the server went quiet".into()),
                Ok(None) => return Err("the server closed the connection".into()),
                Ok(Some(Err(e))) => return Err(e.to_string()),
                Ok(Some(Ok(m))) => m,
            };
            let Message::Text(text) = msg else { continue };
            match joiner.push(text.as_str()) {
                Ok(None) => continue,
                Ok(Some(whole)) => {
                    return serde_json::from_str(&whole)
                        .map_err(|e| format!("unreadable message: {e}"))
                }
                Err(e) => return Err(e.to_string()),
            }
        }
    }

    /// Sends a request and waits for its answer's body, skipping pushes meanwhile.
    async fn request(
        &mut self,
        action: &str,
        body: Value,
        timeout: Duration,
    ) -> Result<Value, End> {
        self.next += 1;
        let r = self.next;
        let msg = json!({"t": "d", "d": {"r": r, "a": action, "b": body}}).to_string();
        for part in rtdb::wire::frames::split(&msg) {
            if let Err(e) = self.ws.send(Message::text(part)).await {
                return Err(End::Retry(e.to_string()));
            }
        }
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let v = self.next_data(left).await.map_err(End::Retry)?;
            if v["t"] == "d" && v["d"]["r"] == r {
                return Ok(v["d"]["b"].clone());
            }
        }
    }

    /// `auth` with an ID token, `gauth` with the admin secret (acting as the configured user).
    async fn authenticate(
        &mut self,
        client: &RtdbClient,
        state: &watch::Sender<LinkState>,
        timeout: Duration,
    ) -> Result<(), End> {
        let config = &client.inner.config;
        let Some(source) = &config.auth else {
            return Ok(());
        };
        for attempt in 0..2 {
            let cred = source
                .token()
                .await
                .map_err(|e| End::Retry(e.to_string()))?;
            let (action, mut body) = if rtdb_looks_like_jwt(&cred) && config.acting_as.is_none() {
                ("auth", json!({"cred": cred}))
            } else {
                ("gauth", json!({"cred": cred}))
            };
            if let Some(uid) = &config.acting_as {
                body["authvar"] = json!({"uid": uid});
            }
            let answer = self.request(action, body, timeout).await?;
            if answer["s"] == "ok" {
                return Ok(());
            }
            // A token that expired in between gets one more try with a fresh one.
            source.invalidate_token(&cred);
            if attempt == 1 {
                return refused_or_ok(&answer, state);
            }
        }
        Ok(())
    }
}

fn rtdb_looks_like_jwt(token: &str) -> bool {
    token.split('.').count() == 3
}

/// TLS as the REST client has it: the public roots, plus the configured extra CA (a LAN
/// huddle-db's own). Plain `ws://` needs none.
fn tls_connector(client: &RtdbClient) -> Result<Option<tokio_tungstenite::Connector>, RtdbError> {
    if !client.url().starts_with("https://") {
        return Ok(None);
    }
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(pem) = &client.inner.config.ca_pem {
        use rustls::pki_types::pem::PemObject;
        for cert in rustls::pki_types::CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|e| {
                RtdbError::Config(format!("the CA certificate is not valid PEM: {e}"))
            })?;
            roots
                .add(cert)
                .map_err(|e| RtdbError::Config(format!("the CA certificate was refused: {e}")))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| RtdbError::Config(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Some(tokio_tungstenite::Connector::Rustls(Arc::new(config))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn websocket_urls_follow_the_database_url() {
        assert_eq!(
            ws_url("https://huddle-1.firebaseio.com").unwrap(),
            "wss://huddle-1.firebaseio.com/.ws?v=5&ns=huddle-1"
        );
        assert_eq!(
            ws_url("http://127.0.0.1:9000").unwrap(),
            "ws://127.0.0.1:9000/.ws?v=5&ns=127"
        );
        assert_eq!(
            ws_url("http://127.0.0.1:9000/?ns=demo").unwrap(),
            "ws://127.0.0.1:9000/.ws?v=5&ns=demo"
        );
    }
}
