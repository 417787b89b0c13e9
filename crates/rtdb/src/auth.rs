//! Who is asking. With a database secret, requests that carry it are the admin and everyone
//! else is anonymous (and the default rules let anonymous callers do nothing). Without one, the
//! server is open as Firebase's emulator is, and `Authorization: Bearer owner` is the admin, but
//! only until the server has rules: once it was started with rules or was given some, they hold
//! for everyone and nobody is the admin (the emulator keeps the owner; a LAN host that anyone
//! can reach must not, or its rules would be a formality).
//! The admin may act as someone else with `auth_variable_override`, as on Firebase.
//!
//! A signed-in user sends the ID token huddle-db issued (see [`crate::identity`]) the same two
//! ways; it is verified on every request and the caller becomes that user. A token that does
//! not verify is refused (401) rather than treated as anonymous, so a client learns at once
//! that it must refresh or sign in again. With no token at all the caller is anonymous, open
//! server or not, and the rules decide.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::http::HeaderMap;
use serde_json::Value;

use crate::identity::tokens::TokenError;
use crate::identity::{looks_like_jwt, unix_now, IdentityService};

use crate::error::DbError;
use crate::rules::{Caller, Identity};

/// The server's credential policy.
#[derive(Clone, Default)]
pub struct Auth {
    secret: Option<String>,
    /// Verifies ID tokens; without it no token makes a user (only overrides do).
    identity: Option<Arc<IdentityService>>,
    /// Whether `Bearer owner` is still the admin (an open server that has no rules yet).
    owner: Arc<AtomicBool>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("secured", &self.secret.is_some())
            .field("identity", &self.identity.is_some())
            .finish()
    }
}

impl Auth {
    /// `None`: an open server.
    pub fn new(secret: Option<String>) -> Self {
        let secret = secret.filter(|s| !s.is_empty());
        Auth {
            owner: Arc::new(AtomicBool::new(secret.is_none())),
            secret,
            identity: None,
        }
    }

    /// From now on `Bearer owner` is nobody special: the server has rules to keep.
    pub fn retire_owner(&self) {
        self.owner.store(false, Ordering::Relaxed);
    }

    /// Also accepts the ID tokens `identity` issues.
    pub fn with_identity(mut self, identity: Arc<IdentityService>) -> Self {
        self.identity = Some(identity);
        self
    }

    /// True when requests need the secret to be the admin.
    pub fn is_secured(&self) -> bool {
        self.secret.is_some()
    }

    /// Identifies a request from `auth=`/`access_token=`, `Authorization: Bearer` and
    /// `auth_variable_override=`.
    pub fn identify(
        &self,
        query_token: Option<&str>,
        auth_override: Option<&str>,
        headers: &HeaderMap,
    ) -> Result<Caller, DbError> {
        let bearer = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|h| h.to_str().ok())
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::trim);
        let admin = match &self.secret {
            None => bearer == Some("owner") && self.owner.load(Ordering::Relaxed),
            Some(secret) => [query_token, bearer]
                .iter()
                .flatten()
                .any(|t| constant_time_eq(t.as_bytes(), secret.as_bytes())),
        };
        if !admin {
            return self.user(query_token.or(bearer));
        }
        match auth_override {
            None => Ok(Caller::Admin),
            Some(raw) => match serde_json::from_str::<Value>(raw) {
                Ok(Value::Null) => Ok(Caller::Anonymous),
                Ok(Value::Object(o)) => match o.get("uid").and_then(Value::as_str) {
                    Some(uid) => Ok(Caller::User(Identity::from_override(uid, o.clone()))),
                    None => Err(DbError::BadQuery(
                        "auth_variable_override needs a \"uid\"".into(),
                    )),
                },
                _ => Err(DbError::BadQuery(
                    "auth_variable_override must be a JSON object or null".into(),
                )),
            },
        }
    }
}

impl Auth {
    /// The user an ID token names. Tokens that are not JWTs (a wrong secret, `owner` on a
    /// secured server) stay anonymous as before, so the rules answer them.
    fn user(&self, token: Option<&str>) -> Result<Caller, DbError> {
        let (Some(token), Some(identity)) = (token, &self.identity) else {
            return Ok(Caller::Anonymous);
        };
        if !looks_like_jwt(token) {
            return Ok(Caller::Anonymous);
        }
        match identity.verify(token, unix_now()) {
            Ok(id) => Ok(Caller::User(id)),
            Err(TokenError::Expired) => Err(DbError::AuthExpired),
            Err(TokenError::Invalid) => Err(DbError::AuthInvalid),
        }
    }
}

/// Compares without an early exit, so response timing does not leak how much of a guess matched.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_secret_makes_an_admin() {
        let auth = Auth::new(Some("s3cret".into()));
        let mut h = HeaderMap::new();
        assert_eq!(auth.identify(None, None, &h).unwrap(), Caller::Anonymous);
        assert_eq!(
            auth.identify(Some("wrong"), None, &h).unwrap(),
            Caller::Anonymous
        );
        assert_eq!(
            auth.identify(Some("s3cret"), None, &h).unwrap(),
            Caller::Admin
        );
        h.insert("authorization", "Bearer owner".parse().unwrap());
        assert_eq!(
            auth.identify(None, None, &h).unwrap(),
            Caller::Anonymous,
            "owner is no key to a secured server"
        );
        h.insert("authorization", "Bearer s3cret".parse().unwrap());
        assert_eq!(auth.identify(None, None, &h).unwrap(), Caller::Admin);
        let as_alice = auth.identify(None, Some(r#"{"uid":"alice"}"#), &h).unwrap();
        assert_eq!(as_alice.uid(), Some("alice"));
    }

    #[test]
    fn open_server_owner_is_admin() {
        let auth = Auth::new(None);
        let mut h = HeaderMap::new();
        assert_eq!(auth.identify(None, None, &h).unwrap(), Caller::Anonymous);
        assert_eq!(
            auth.identify(None, Some(r#"{"uid":"x"}"#), &h).unwrap(),
            Caller::Anonymous
        );
        h.insert("authorization", "Bearer owner".parse().unwrap());
        assert_eq!(auth.identify(None, None, &h).unwrap(), Caller::Admin);
        // Once the server has rules, the owner is nobody, and cannot act as someone else.
        auth.clone().retire_owner();
        assert_eq!(auth.identify(None, None, &h).unwrap(), Caller::Anonymous);
        assert_eq!(
            auth.identify(None, Some(r#"{"uid":"alice"}"#), &h).unwrap(),
            Caller::Anonymous
        );
    }

    #[test]
    fn an_id_token_makes_a_user_and_a_foreign_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let svc = Arc::new(
            IdentityService::open(dir.path(), std::time::Duration::from_secs(60), None).unwrap(),
        );
        let token = svc.sign_up(unix_now()).unwrap().id_token;
        let auth = Auth::new(Some("s3cret".into())).with_identity(svc.clone());
        let h = HeaderMap::new();
        let caller = auth.identify(Some(&token), None, &h).unwrap();
        let Caller::User(id) = &caller else {
            panic!("{caller:?}")
        };
        assert_eq!(id.provider, "anonymous");
        assert_eq!(id.token.get("sub"), Some(&Value::String(id.uid.clone())));
        assert_eq!(
            auth.identify(Some("s3cret"), None, &h).unwrap(),
            Caller::Admin,
            "the secret stays the admin's"
        );
        assert_eq!(
            auth.identify(Some("not-a-jwt"), None, &h).unwrap(),
            Caller::Anonymous
        );

        let other_dir = tempfile::tempdir().unwrap();
        let other =
            IdentityService::open(other_dir.path(), std::time::Duration::from_secs(60), None)
                .unwrap();
        let foreign = other.sign_up(unix_now()).unwrap().id_token;
        assert!(matches!(
            auth.identify(Some(&foreign), None, &h),
            Err(DbError::AuthInvalid)
        ));
        let stale = other.sign_up(unix_now() - 120).unwrap().id_token;
        let auth = Auth::new(None).with_identity(Arc::new(other));
        assert!(matches!(
            auth.identify(Some(&stale), None, &h),
            Err(DbError::AuthExpired)
        ));
    }
}
