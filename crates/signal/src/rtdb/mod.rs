//! A Firebase Realtime Database client over REST + Server-Sent Events that works the same against
//! huddle-db and real Firebase: one pooled HTTP client (HTTP/2 when the server offers it),
//! timeouts on every request, typed errors that keep Firebase's message, conditional writes with
//! ETags, and streams that yield child events from a local cache and survive reconnects.
//!
//! Why not `firebase-rs`: see `docs/decisions.md` (it refuses `http://`, opens a new HTTP client
//! per request, drops error bodies, has no ETags and its stream has no cache, child events or
//! backoff).

mod backoff;
pub mod cache;
mod config;
mod error;
pub mod presence;
mod stream;

use std::sync::Arc;

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use reqwest::{Method, StatusCode};
use serde_json::{Map, Value};

pub use backoff::Backoff;
pub use cache::{ChildEvent, NestedEvent};
pub use config::{ClientConfig, StaticToken, TokenSource};
pub use error::RtdbError;
pub use presence::{LinkState, OnDisconnect};
pub use stream::{StreamEvent, Subscription};

/// Characters kept as they are in a path segment.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'~');

/// `{".sv": "timestamp"}`: the server's clock at the time of the write.
pub fn server_timestamp() -> Value {
    serde_json::json!({".sv": "timestamp"})
}

/// Outcome of a conditional write.
#[derive(Debug, Clone, PartialEq)]
pub enum Conditional {
    /// Written; the new ETag.
    Written(String),
    /// Someone else changed it first: the current value and its ETag.
    Conflict { current: Value, etag: String },
}

/// Largest realtime message this client takes.
const MAX_REALTIME_MESSAGE: usize = 32 << 20;

/// The database client; cheap to clone (one connection pool shared by all clones).
#[derive(Clone)]
pub struct RtdbClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    base: String,
    config: ClientConfig,
}

impl RtdbClient {
    /// Builds the client (no request is made yet).
    pub fn new(config: ClientConfig) -> Result<Self, RtdbError> {
        let base = config.url.trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(RtdbError::Config(format!(
                "the database URL must start with http:// or https://, not {base:?}"
            )));
        }
        let mut builder = reqwest::Client::builder()
            .connect_timeout(config.request_timeout)
            // Below huddle-db's 30 s (and most servers' keep-alive timeouts): the client drops
            // an idle connection before the server does, so no request races a closing socket.
            .pool_idle_timeout(std::time::Duration::from_secs(20))
            .tcp_keepalive(std::time::Duration::from_secs(30));
        if let Some(pem) = &config.ca_pem {
            let cert = reqwest::Certificate::from_pem(pem).map_err(|e| {
                RtdbError::Config(format!("the CA certificate is not valid PEM: {e}"))
            })?;
            builder = builder.add_root_certificate(cert);
        }
        let http = builder.build()?;
        Ok(RtdbClient {
            inner: Arc::new(Inner { http, base, config }),
        })
    }

    /// This client's onDisconnect operations, held by a realtime-protocol connection of its
    /// own (see [`presence`]); one per caller that needs them.
    pub fn on_disconnect(&self) -> OnDisconnect {
        OnDisconnect::start(self.clone())
    }

    /// The database URL.
    pub fn url(&self) -> &str {
        &self.inner.base
    }

    /// `base/seg/ments.json`, each segment percent-encoded.
    fn location(&self, path: &str) -> String {
        let mut url = self.inner.base.clone();
        for seg in path.split('/').filter(|s| !s.is_empty()) {
            url.push('/');
            url.extend(utf8_percent_encode(seg, SEGMENT));
        }
        if url.len() == self.inner.base.len() {
            url.push('/');
        }
        url.push_str(".json");
        url
    }

    /// The credential to send now, if any.
    async fn credential(&self) -> Result<Option<String>, RtdbError> {
        match &self.inner.config.auth {
            Some(src) => Ok(Some(src.token().await?)),
            None => Ok(None),
        }
    }

    /// Tells the source that the server refused `used`.
    fn refused(&self, used: Option<&str>) {
        if let (Some(src), Some(used)) = (&self.inner.config.auth, used) {
            src.invalidate_token(used);
        }
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
        silent: bool,
    ) -> Result<reqwest::Response, RtdbError> {
        // An ID token can expire between our check and the server's: a refusal of the token
        // itself gets one more try with a fresh one, anything else is the answer.
        let used = self.credential().await?;
        match self
            .send_with(method.clone(), path, body, headers, silent, used.as_deref())
            .await
        {
            Err(e) if used.is_some() && e.is_token_rejected() => {
                tracing::debug!(%path, error = %e, "token refused; retrying with a fresh one");
                self.refused(used.as_deref());
                let fresh = self.credential().await?;
                self.send_with(method, path, body, headers, silent, fresh.as_deref())
                    .await
            }
            other => other,
        }
    }

    async fn send_with(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
        silent: bool,
        credential: Option<&str>,
    ) -> Result<reqwest::Response, RtdbError> {
        let mut query: Vec<(&str, &str)> = Vec::new();
        if let Some(c) = credential {
            query.push(("auth", c));
        }
        let acting = self.inner.config.auth_override();
        if let Some(o) = &acting {
            query.push(("auth_variable_override", o));
        }
        if silent {
            query.push(("print", "silent"));
        }
        let mut req = self
            .inner
            .http
            .request(method, self.location(path))
            .query(&query)
            .timeout(self.inner.config.request_timeout);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(body) = body {
            req = req
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let resp = req.send().await?;
        if resp.status().is_success() || resp.status() == StatusCode::PRECONDITION_FAILED {
            return Ok(resp);
        }
        Err(http_error(resp).await)
    }

    /// The value at `path` (`Null` when absent).
    pub async fn get(&self, path: &str) -> Result<Value, RtdbError> {
        let resp = self.send(Method::GET, path, None, &[], false).await?;
        json_body(resp).await
    }

    /// The value at `path` and its ETag.
    pub async fn get_with_etag(&self, path: &str) -> Result<(Value, String), RtdbError> {
        let resp = self
            .send(
                Method::GET,
                path,
                None,
                &[("X-Firebase-ETag", "true")],
                false,
            )
            .await?;
        let etag = etag_of(&resp)?;
        Ok((json_body(resp).await?, etag))
    }

    /// Replaces the value at `path` (`Null` deletes).
    pub async fn set(&self, path: &str, value: &Value) -> Result<(), RtdbError> {
        self.send(Method::PUT, path, Some(value), &[], true)
            .await
            .map(drop)
    }

    /// Replaces the value at `path` only if its ETag is still `etag` (`null_etag`: only if
    /// absent).
    pub async fn set_if(
        &self,
        path: &str,
        value: &Value,
        etag: &str,
    ) -> Result<Conditional, RtdbError> {
        let resp = self
            .send(Method::PUT, path, Some(value), &[("if-match", etag)], false)
            .await?;
        let new_etag = etag_of(&resp)?;
        if resp.status() == StatusCode::PRECONDITION_FAILED {
            return Ok(Conditional::Conflict {
                current: json_body(resp).await?,
                etag: new_etag,
            });
        }
        Ok(Conditional::Written(new_etag))
    }

    /// Writes every `(relative path, value)` of `children` under `path` atomically (`Null`
    /// deletes).
    pub async fn update(&self, path: &str, children: &Map<String, Value>) -> Result<(), RtdbError> {
        if children.is_empty() {
            return Ok(());
        }
        let body = Value::Object(children.clone());
        self.send(Method::PATCH, path, Some(&body), &[], true)
            .await
            .map(drop)
    }

    /// Adds `value` under a new push ID and returns the ID.
    pub async fn push(&self, path: &str, value: &Value) -> Result<String, RtdbError> {
        let resp = self
            .send(Method::POST, path, Some(value), &[], false)
            .await?;
        let body = json_body(resp).await?;
        body.get("name")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| RtdbError::BadResponse(format!("push answered {body}")))
    }

    /// Deletes the value at `path`.
    pub async fn delete(&self, path: &str) -> Result<(), RtdbError> {
        self.send(Method::DELETE, path, None, &[], true)
            .await
            .map(drop)
    }

    /// Streams `path`: child events from a local cache, reconnecting with backoff.
    pub fn subscribe(&self, path: &str) -> Subscription {
        stream::spawn(self.clone(), path.to_owned())
    }

    /// Streams `path` whose children are queues (one entry per push): each write is reported
    /// as the grandchildren it adds, changes or removes ([`StreamEvent::Nested`]), never as a
    /// copy of a whole queue, and at most `keep` entries per child are kept locally (see
    /// [`cache::NestedCache`]).
    pub fn subscribe_nested(&self, path: &str, keep: usize) -> Subscription {
        stream::spawn_nested(self.clone(), path.to_owned(), keep)
    }

    fn http(&self) -> &reqwest::Client {
        &self.inner.http
    }

    fn config(&self) -> &ClientConfig {
        &self.inner.config
    }
}

async fn http_error(resp: reqwest::Response) -> RtdbError {
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    let message = serde_json::from_str::<Value>(&text)
        .ok()
        .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or(text);
    RtdbError::Http { status, message }
}

async fn json_body(resp: reqwest::Response) -> Result<Value, RtdbError> {
    let bytes = resp.bytes().await?;
    serde_json::from_slice(&bytes).map_err(|e| RtdbError::BadResponse(format!("not JSON: {e}")))
}

fn etag_of(resp: &reqwest::Response) -> Result<String, RtdbError> {
    resp.headers()
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .ok_or_else(|| RtdbError::BadResponse("no ETag header".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_are_encoded() {
        let c = RtdbClient::new(ClientConfig::new("http://h:1/")).unwrap();
        assert_eq!(c.location("/"), "http://h:1/.json");
        assert_eq!(
            c.location("rooms/a b/ü"),
            "http://h:1/rooms/a%20b/%C3%BC.json"
        );
        assert!(RtdbClient::new(ClientConfig::new("ftp://x")).is_err());
    }
}
