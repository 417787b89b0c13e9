//! Who may use the server: with a secret, only requests that carry it; without one, everybody
//! (as Firebase's emulator does), and `Authorization: Bearer owner` is the admin.

use axum::http::HeaderMap;

use crate::error::DbError;

/// The server's access policy.
#[derive(Clone, Debug, Default)]
pub struct Auth {
    secret: Option<String>,
}

/// Who a request is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Identity {
    /// Holds the database secret (or the server is open and said `Bearer owner`).
    Admin,
    /// An open server's anonymous user.
    Anonymous,
}

impl Auth {
    /// `None`: an open server.
    pub fn new(secret: Option<String>) -> Self {
        Auth {
            secret: secret.filter(|s| !s.is_empty()),
        }
    }

    /// True when requests need the secret.
    pub fn is_secured(&self) -> bool {
        self.secret.is_some()
    }

    /// Checks `auth=`/`access_token=` and the `Authorization: Bearer` header.
    pub fn check(
        &self,
        query_token: Option<&str>,
        headers: &HeaderMap,
    ) -> Result<Identity, DbError> {
        let bearer = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|h| h.to_str().ok())
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::trim);
        let Some(secret) = &self.secret else {
            return Ok(if bearer == Some("owner") {
                Identity::Admin
            } else {
                Identity::Anonymous
            });
        };
        let given = [query_token, bearer];
        if given
            .iter()
            .flatten()
            .any(|t| constant_time_eq(t.as_bytes(), secret.as_bytes()))
        {
            Ok(Identity::Admin)
        } else {
            Err(DbError::PermissionDenied)
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
    fn secret_is_required_when_set() {
        let auth = Auth::new(Some("s3cret".into()));
        let mut h = HeaderMap::new();
        assert!(auth.check(None, &h).is_err());
        assert!(auth.check(Some("wrong"), &h).is_err());
        assert_eq!(auth.check(Some("s3cret"), &h).unwrap(), Identity::Admin);
        h.insert("authorization", "Bearer owner".parse().unwrap());
        assert!(
            auth.check(None, &h).is_err(),
            "owner is no key to a secured server"
        );
        h.insert("authorization", "Bearer s3cret".parse().unwrap());
        assert_eq!(auth.check(None, &h).unwrap(), Identity::Admin);
    }

    #[test]
    fn open_server_accepts_everyone() {
        let auth = Auth::new(None);
        let mut h = HeaderMap::new();
        assert_eq!(auth.check(None, &h).unwrap(), Identity::Anonymous);
        h.insert("authorization", "Bearer owner".parse().unwrap());
        assert_eq!(auth.check(None, &h).unwrap(), Identity::Admin);
    }
}
