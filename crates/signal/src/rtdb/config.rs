//! Where the database is and how to prove who we are: the same client reaches the embedded
//! huddle-db and real Firebase; only this configuration differs.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;

use super::error::RtdbError;

/// Supplies the `auth=` credential: a database secret, or an ID token that expires and must be
/// fetched again (after `auth_revoked`, or a 401 on a stream).
pub trait TokenSource: Send + Sync {
    /// The current credential.
    fn token(&self) -> BoxFuture<'_, Result<String, RtdbError>>;
    /// Forces a fresh credential: the next `token()` should not return the current one.
    fn invalidate(&self) {}
    /// The server refused `rejected`, a credential this source gave out. Sources that refresh
    /// should do so only if `rejected` is still their current credential: when many streams see
    /// the same expired token at once, the first report causes one refresh and the others find
    /// it done. The default forgets whatever is current.
    fn invalidate_token(&self, rejected: &str) {
        let _ = rejected;
        self.invalidate();
    }
}

/// A fixed credential (a database secret, or a token that does not expire in time to matter).
pub struct StaticToken(pub String);

impl TokenSource for StaticToken {
    fn token(&self) -> BoxFuture<'_, Result<String, RtdbError>> {
        let t = self.0.clone();
        Box::pin(async move { Ok(t) })
    }
}

/// Everything the client needs.
#[derive(Clone)]
pub struct ClientConfig {
    /// `https://<db>.firebaseio.com`, or huddle-db's `http(s)://host:port`.
    pub url: String,
    /// `None`: no credential (an open huddle-db, or rules that allow anonymous access).
    pub auth: Option<Arc<dyn TokenSource>>,
    /// Extra trusted CA certificate (PEM), e.g. huddle-db's generated `tls/ca.pem` for a LAN host.
    pub ca_pem: Option<Vec<u8>>,
    /// An admin credential acting as this user: sent as `auth_variable_override={"uid": ...}`,
    /// so the rules judge every request as that user's (Firebase's REST API offers the same
    /// to a server holding the secret). For bots and tests that need chosen ids; people sign in.
    pub acting_as: Option<String>,
    /// Limit for one REST request.
    pub request_timeout: Duration,
    /// A stream silent for this long is taken for dead and reopened (the server sends a
    /// keep-alive every ~30 s).
    pub stream_idle_timeout: Duration,
}

impl ClientConfig {
    /// Defaults: 10 s requests, streams reopened after 75 s of silence.
    pub fn new(url: impl Into<String>) -> Self {
        ClientConfig {
            url: url.into(),
            auth: None,
            ca_pem: None,
            acting_as: None,
            request_timeout: Duration::from_secs(10),
            stream_idle_timeout: Duration::from_secs(75),
        }
    }

    /// With a fixed credential (database secret or token).
    pub fn with_secret(mut self, secret: impl Into<String>) -> Self {
        self.auth = Some(Arc::new(StaticToken(secret.into())));
        self
    }

    /// With a credential source, e.g. [`crate::auth::FirebaseAuth`].
    pub fn with_auth(mut self, source: Arc<dyn TokenSource>) -> Self {
        self.auth = Some(source);
        self
    }

    /// The admin `secret`, acting as `uid`: the rules apply as to that user's requests.
    pub fn with_secret_acting_as(self, secret: impl Into<String>, uid: impl Into<String>) -> Self {
        let mut config = self.with_secret(secret);
        config.acting_as = Some(uid.into());
        config
    }

    /// The `auth_variable_override` query value, if acting as someone.
    pub(crate) fn auth_override(&self) -> Option<String> {
        self.acting_as
            .as_ref()
            .map(|uid| serde_json::json!({ "uid": uid }).to_string())
    }

    /// Trusting this extra CA (PEM).
    pub fn with_ca_pem(mut self, pem: Vec<u8>) -> Self {
        self.ca_pem = Some(pem);
        self
    }
}

impl fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientConfig")
            .field("url", &self.url)
            .field("auth", &self.auth.as_ref().map(|_| "<hidden>"))
            .field("ca_pem", &self.ca_pem.as_ref().map(Vec::len))
            .field("acting_as", &self.acting_as)
            .field("request_timeout", &self.request_timeout)
            .field("stream_idle_timeout", &self.stream_idle_timeout)
            .finish()
    }
}
