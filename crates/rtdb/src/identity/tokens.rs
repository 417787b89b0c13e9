//! ID tokens: minting and verifying, pure (the time is passed in). The claims are the ones a
//! Firebase Authentication ID token of an anonymous user carries, so rules that read
//! `auth.token.*` see the same thing on both backends.

use jsonwebtoken::{Algorithm, Header, Validation};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::keys::SigningKey;

/// The claims of an ID token.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub aud: String,
    /// When the user first signed in (seconds since the epoch); stays across refreshes.
    pub auth_time: u64,
    pub user_id: String,
    pub sub: String,
    pub iat: u64,
    pub exp: u64,
    pub firebase: FirebaseClaim,
    pub provider_id: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FirebaseClaim {
    pub identities: Map<String, Value>,
    pub sign_in_provider: String,
}

/// Why a token was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the ID token expired")]
    Expired,
    /// Not a JWT, not signed by this server's key, or not naming this server's project.
    #[error("the ID token is not one this server issued")]
    Invalid,
}

/// `https://securetoken.google.com/<project>`, as Firebase names the issuer.
pub fn issuer(project_id: &str) -> String {
    format!("https://securetoken.google.com/{project_id}")
}

/// A fresh ID token for `uid`, valid from `now` for `lifetime_secs`.
pub fn mint(key: &SigningKey, uid: &str, auth_time: u64, now: u64, lifetime_secs: u64) -> String {
    let claims = Claims {
        iss: issuer(&key.project_id),
        aud: key.project_id.clone(),
        auth_time,
        user_id: uid.to_owned(),
        sub: uid.to_owned(),
        iat: now,
        exp: now.saturating_add(lifetime_secs),
        firebase: FirebaseClaim {
            identities: Map::new(),
            sign_in_provider: "anonymous".to_owned(),
        },
        provider_id: "anonymous".to_owned(),
    };
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(key.key_id.clone());
    // Signing only fails for a key of the wrong family, which `SigningKey` rules out.
    jsonwebtoken::encode(&header, &claims, &key.encoding).unwrap_or_default()
}

/// The claims of `token` if this key signed it for this project and it has not expired at
/// `now` (no leeway: the server that checks is the one whose clock minted it).
pub fn verify(key: &SigningKey, token: &str, now: u64) -> Result<Claims, TokenError> {
    let mut validation = Validation::new(Algorithm::ES256);
    // Expiry is checked below against the `now` given, not the system clock.
    validation.validate_exp = false;
    validation.leeway = 0;
    validation.set_required_spec_claims(&["exp", "sub", "iss", "aud"]);
    validation.set_issuer(&[issuer(&key.project_id)]);
    validation.set_audience(&[&key.project_id]);
    let data = jsonwebtoken::decode::<Claims>(token, &key.decoding, &validation)
        .map_err(|_| TokenError::Invalid)?;
    let claims = data.claims;
    if claims.sub.is_empty() || claims.sub != claims.user_id {
        return Err(TokenError::Invalid);
    }
    if now >= claims.exp {
        return Err(TokenError::Expired);
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> (tempfile::TempDir, SigningKey) {
        let dir = tempfile::tempdir().unwrap();
        let key = SigningKey::load_or_create(dir.path()).unwrap();
        (dir, key)
    }

    const T0: u64 = 1_800_000_000;

    #[test]
    fn a_minted_token_verifies_until_it_expires() {
        let (_d, key) = key();
        let token = mint(&key, "u1", T0 - 100, T0, 2);
        let claims = verify(&key, &token, T0).unwrap();
        assert_eq!(claims.sub, "u1");
        assert_eq!(claims.user_id, "u1");
        assert_eq!(claims.auth_time, T0 - 100);
        assert_eq!(claims.iat, T0);
        assert_eq!(claims.exp, T0 + 2);
        assert_eq!(claims.aud, key.project_id);
        assert_eq!(claims.iss, issuer(&key.project_id));
        assert_eq!(claims.firebase.sign_in_provider, "anonymous");
        assert_eq!(claims.provider_id, "anonymous");
        assert!(verify(&key, &token, T0 + 1).is_ok());
        assert_eq!(verify(&key, &token, T0 + 2), Err(TokenError::Expired));
        assert_eq!(verify(&key, &token, T0 + 9999), Err(TokenError::Expired));
    }

    #[test]
    fn another_servers_token_is_invalid() {
        let (_d1, a) = key();
        let (_d2, b) = key();
        let token = mint(&b, "u1", T0, T0, 3600);
        assert_eq!(verify(&a, &token, T0), Err(TokenError::Invalid));
    }

    #[test]
    fn garbage_and_tampering_are_invalid() {
        let (_d, key) = key();
        for bad in ["", "x", "a.b.c", "owner", "....", "eyJ.eyJ.sig"] {
            assert_eq!(verify(&key, bad, T0), Err(TokenError::Invalid), "{bad:?}");
        }
        let token = mint(&key, "u1", T0, T0, 3600);
        let mut parts: Vec<&str> = token.split('.').collect();
        let other = mint(&key, "u2", T0, T0, 3600);
        let other_payload = other.split('.').nth(1).unwrap();
        parts[1] = other_payload;
        assert_eq!(
            verify(&key, &parts.join("."), T0),
            Err(TokenError::Invalid),
            "a payload moved under another token's signature"
        );
    }

    #[test]
    fn the_header_names_the_key() {
        let (_d, key) = key();
        let token = mint(&key, "u1", T0, T0, 60);
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.alg, Algorithm::ES256);
        assert_eq!(header.kid.as_deref(), Some(key.key_id.as_str()));
    }

    /// What verifying costs per request: `cargo test -p rtdb --release --lib verify_cost --
    /// --ignored --nocapture`.
    #[test]
    #[ignore = "a measurement, not a check"]
    fn verify_cost() {
        let (_d, key) = key();
        let token = mint(&key, "u1", T0, T0, 3600);
        let n = 2000;
        let start = std::time::Instant::now();
        for _ in 0..n {
            verify(&key, &token, T0).unwrap();
        }
        let per = start.elapsed() / n;
        let start = std::time::Instant::now();
        for _ in 0..n {
            mint(&key, "u1", T0, T0, 3600);
        }
        println!(
            "verify {per:?} per token, mint {:?} per token",
            start.elapsed() / n
        );
    }
}
