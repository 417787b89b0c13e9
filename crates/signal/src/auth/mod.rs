//! Firebase Authentication for the database client: anonymous sign-in and token refresh over
//! Firebase's REST API, as the official SDKs do it, against Google's servers, Firebase's Auth
//! emulator, or huddle-db (which serves the same two endpoints at the emulator's paths, so one
//! code path covers both backends).
//!
//! - [`FirebaseAuth`] is a [`TokenSource`]: give it to [`crate::rtdb::ClientConfig::with_auth`]
//!   and every request carries a current ID token. Tokens are refreshed when less than five
//!   minutes are left, when the database refuses one (401 on REST, `auth_revoked` on a stream),
//!   or on [`TokenSource::invalidate`]; one refresh at a time, shared by every caller waiting.
//! - The uid is the user's identity (Huddle uses it as the peer id). Saving the [`Credential`]
//!   it reports through [`FirebaseAuth::credential`] and passing it back next run keeps one uid
//!   per installation.
//! - [`FirebaseConfig`] reads the web app config as the Firebase console shows it.

mod config;
mod error;
mod rest;
mod session;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use tokio::sync::{broadcast, watch};

pub use config::{is_firebase_hosted, AuthHost, ConfigError, FirebaseConfig};
pub use error::AuthError;
pub use session::{Credential, Next, Session, REFRESH_BEFORE_EXPIRY};

use crate::rtdb::{RtdbError, TokenSource};
use rest::{Rest, Tokens};

/// How to sign in.
#[derive(Clone)]
pub struct AuthSettings {
    /// The project's web API key (`apiKey` of the web app config). Any non-empty key works
    /// against the Auth emulator.
    pub api_key: String,
    pub host: AuthHost,
    /// An Identity Platform tenant to sign in to, if the project uses multi-tenancy.
    pub tenant_id: Option<String>,
    /// The credential saved by an earlier run: signing in with it keeps the same uid.
    pub saved: Option<Credential>,
    pub request_timeout: Duration,
    /// Extra trusted CA (PEM), for a huddle-db on the LAN with its own certificate.
    pub ca_pem: Option<Vec<u8>>,
}

impl AuthSettings {
    /// Google's servers, unless `FIREBASE_AUTH_EMULATOR_HOST` names an emulator (as the SDKs
    /// read it).
    pub fn new(api_key: impl Into<String>) -> Self {
        AuthSettings {
            api_key: api_key.into(),
            host: AuthHost::from_env().unwrap_or(AuthHost::Google),
            tenant_id: None,
            saved: None,
            request_timeout: Duration::from_secs(10),
            ca_pem: None,
        }
    }

    /// Signing in where a client of the database at `db_url` signs in
    /// ([`AuthHost::for_database`]).
    pub fn for_database(db_url: &str, api_key: impl Into<String>) -> Self {
        AuthSettings::new(api_key).with_host(AuthHost::for_database(db_url))
    }

    pub fn from_config(config: &FirebaseConfig) -> Self {
        AuthSettings::new(config.api_key.clone())
    }

    pub fn with_host(mut self, host: AuthHost) -> Self {
        self.host = host;
        self
    }

    pub fn with_saved(mut self, saved: Option<Credential>) -> Self {
        self.saved = saved;
        self
    }

    pub fn with_tenant(mut self, tenant_id: impl Into<String>) -> Self {
        self.tenant_id = Some(tenant_id.into());
        self
    }

    pub fn with_ca_pem(mut self, pem: Vec<u8>) -> Self {
        self.ca_pem = Some(pem);
        self
    }
}

/// What happened to the signed-in user, for the app to log or show.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum AuthEvent {
    /// A new anonymous user (first run, or no saved credential).
    SignedUp {
        uid: String,
    },
    Refreshed {
        uid: String,
    },
    /// The saved user could not be refreshed any more (`reason`), so a new user was signed up:
    /// the uid, and so the peer id, changed.
    Replaced {
        old_uid: String,
        new_uid: String,
        reason: AuthError,
    },
}

/// How many calls went to the sign-in server (refreshes must stay rare: one per token
/// lifetime, one per forced refresh, however many streams asked).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AuthStats {
    pub sign_ups: u64,
    pub refreshes: u64,
}

/// Anonymous Firebase sign-in as a [`TokenSource`].
pub struct FirebaseAuth {
    rest: Rest,
    state: Mutex<Session>,
    /// Held by the one caller talking to the sign-in server; the others wait on it and then
    /// find the fresh token in `state`. This is what keeps ten streams that saw a 401 at once
    /// from sending ten refreshes.
    in_flight: tokio::sync::Mutex<()>,
    credential: watch::Sender<Option<Credential>>,
    events: broadcast::Sender<AuthEvent>,
    sign_ups: AtomicU64,
    refreshes: AtomicU64,
}

impl FirebaseAuth {
    /// Builds the source; no request is made until a token is asked for (or [`Self::sign_in`]).
    pub fn new(settings: AuthSettings) -> Result<Arc<FirebaseAuth>, AuthError> {
        let mut builder = reqwest::Client::builder()
            .connect_timeout(settings.request_timeout)
            .timeout(settings.request_timeout);
        if let Some(pem) = &settings.ca_pem {
            let cert = reqwest::Certificate::from_pem(pem).map_err(|e| {
                AuthError::Config(format!("the CA certificate is not valid PEM: {e}"))
            })?;
            builder = builder.add_root_certificate(cert);
        }
        let http = builder
            .build()
            .map_err(|e| AuthError::Config(e.to_string()))?;
        let (credential, _) = watch::channel(settings.saved.clone());
        let (events, _) = broadcast::channel(16);
        Ok(Arc::new(FirebaseAuth {
            rest: Rest {
                http,
                host: settings.host,
                api_key: settings.api_key,
                tenant_id: settings.tenant_id,
            },
            state: Mutex::new(Session::new(settings.saved)),
            in_flight: tokio::sync::Mutex::new(()),
            credential,
            events,
            sign_ups: AtomicU64::new(0),
            refreshes: AtomicU64::new(0),
        }))
    }

    /// Signs in now (or checks the saved credential) and returns the uid.
    pub async fn sign_in(&self) -> Result<String, AuthError> {
        self.id_token().await?;
        self.uid()
            .ok_or_else(|| AuthError::BadResponse("signed in without a uid".into()))
    }

    /// The signed-in user's uid (the saved one before the first sign-in).
    pub fn uid(&self) -> Option<String> {
        self.session().uid().map(str::to_owned)
    }

    /// The credential to save, updated whenever it changes (new user, new refresh token).
    pub fn credential(&self) -> watch::Receiver<Option<Credential>> {
        self.credential.subscribe()
    }

    pub fn events(&self) -> broadcast::Receiver<AuthEvent> {
        self.events.subscribe()
    }

    pub fn stats(&self) -> AuthStats {
        AuthStats {
            sign_ups: self.sign_ups.load(Ordering::Relaxed),
            refreshes: self.refreshes.load(Ordering::Relaxed),
        }
    }

    /// Time left on the held ID token (`None` before the first sign-in).
    pub fn token_expires_in(&self) -> Option<Duration> {
        let s = self.session();
        s.token()
            .map(|t| t.expires.saturating_duration_since(Instant::now()))
    }

    /// A current ID token, signing in or refreshing first when needed.
    pub async fn id_token(&self) -> Result<String, AuthError> {
        if let Next::Use(t) = self.session().next(Instant::now()) {
            return Ok(t);
        }
        let _turn = self.in_flight.lock().await;
        // Whoever held the turn before us may have fetched what we need.
        let next = self.session().next(Instant::now());
        match next {
            Next::Use(t) => Ok(t),
            Next::Refresh(refresh_token) => self.refresh(&refresh_token).await,
            Next::SignUp => self.sign_up(None).await,
        }
    }

    async fn refresh(&self, refresh_token: &str) -> Result<String, AuthError> {
        self.refreshes.fetch_add(1, Ordering::Relaxed);
        match self.rest.refresh(refresh_token).await {
            Ok(tokens) => {
                let uid = tokens.uid.clone();
                let token = self.store(tokens);
                tracing::debug!(%uid, "ID token refreshed");
                let _ = self.events.send(AuthEvent::Refreshed { uid });
                Ok(token)
            }
            Err(reason @ AuthError::SessionEnded { .. }) => {
                let old = self.session().forget();
                tracing::warn!(error = %reason, "signing in again as a new user");
                self.sign_up(old.map(|c| (c.uid, reason))).await
            }
            Err(e) => Err(e),
        }
    }

    /// `replacing`: the user that could not be refreshed, and why.
    async fn sign_up(&self, replacing: Option<(String, AuthError)>) -> Result<String, AuthError> {
        self.sign_ups.fetch_add(1, Ordering::Relaxed);
        let tokens = self.rest.sign_up().await?;
        let uid = tokens.uid.clone();
        let token = self.store(tokens);
        let event = match replacing {
            Some((old_uid, reason)) => AuthEvent::Replaced {
                old_uid,
                new_uid: uid,
                reason,
            },
            None => AuthEvent::SignedUp { uid },
        };
        tracing::info!(?event, "signed in");
        let _ = self.events.send(event);
        Ok(token)
    }

    fn store(&self, t: Tokens) -> String {
        let token = t.id_token.clone();
        let credential = {
            let mut s = self.session();
            s.on_tokens(
                t.uid,
                t.id_token,
                t.refresh_token,
                t.expires_in,
                Instant::now(),
            );
            s.credential().cloned()
        };
        self.credential.send_if_modified(|c| {
            let changed = *c != credential;
            *c = credential;
            changed
        });
        token
    }

    fn session(&self) -> MutexGuard<'_, Session> {
        // The session is plain data that no panic leaves half-written.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl TokenSource for FirebaseAuth {
    fn token(&self) -> BoxFuture<'_, Result<String, RtdbError>> {
        Box::pin(async move { self.id_token().await.map_err(RtdbError::from) })
    }

    fn invalidate(&self) {
        self.session().invalidate();
    }

    fn invalidate_token(&self, rejected: &str) {
        if self.session().invalidate_token(rejected) {
            tracing::debug!("the database refused the current ID token; refreshing");
        }
    }
}
