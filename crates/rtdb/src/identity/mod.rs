//! Sign-in on huddle-db: the two Firebase Authentication REST endpoints that anonymous sign-in
//! uses (served where Firebase's Auth emulator serves them), ID tokens signed with a key kept in
//! the data folder, and their verification on every database request. The same client code
//! thus signs in against real Firebase, the Auth emulator, and huddle-db.
//!
//! - [`keys`]: the data folder's signing key and project id.
//! - [`tokens`]: minting and verifying ID tokens (pure, time passed in).
//! - [`accounts`]: refresh token -> uid, kept on disk.
//! - [`endpoints`]: `accounts:signUp` and `token`, with Google's request and error shapes.

pub mod accounts;
pub mod endpoints;
pub mod keys;
pub mod tokens;

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::rules::Identity;
use accounts::{Accounts, AccountsError};
use keys::{KeyError, SigningKey};
use tokens::{Claims, TokenError};

/// Firebase's ID token lifetime.
pub const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(3600);

/// The identity provider of one server.
pub struct IdentityService {
    key: SigningKey,
    accounts: Accounts,
    lifetime_secs: u64,
    /// When set, the sign-in endpoints accept only this key; otherwise any non-empty one.
    api_key: Option<String>,
}

/// Errors opening the identity state of a data folder.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    Accounts(#[from] AccountsError),
}

/// What sign-up and refresh hand out.
#[derive(Clone, Debug)]
pub struct Tokens {
    pub uid: String,
    pub id_token: String,
    pub refresh_token: String,
    pub expires_in: u64,
}

impl IdentityService {
    /// Opens (or creates) `DATA/identity/`.
    pub fn open(
        data_dir: &Path,
        lifetime: Duration,
        api_key: Option<String>,
    ) -> Result<Self, IdentityError> {
        let dir = data_dir.join("identity");
        let key = SigningKey::load_or_create(&dir)?;
        let accounts = Accounts::open(&dir)?;
        Ok(IdentityService {
            key,
            accounts,
            lifetime_secs: lifetime.as_secs().max(1),
            api_key: api_key.filter(|k| !k.is_empty()),
        })
    }

    /// The project id tokens name (`aud`, and `iss` after `https://securetoken.google.com/`).
    pub fn project_id(&self) -> &str {
        &self.key.project_id
    }

    /// Who an ID token names, as the rules see them.
    pub fn verify(&self, id_token: &str, now: u64) -> Result<Identity, TokenError> {
        tokens::verify(&self.key, id_token, now).map(to_identity)
    }

    /// A new anonymous user.
    pub fn sign_up(&self, now: u64) -> Result<Tokens, AccountsError> {
        let new = self.accounts.create(now)?;
        Ok(self.issue(&new.account, new.refresh_token, now))
    }

    /// A fresh ID token for the user a refresh token names; `None` if it names no one.
    pub fn refresh(&self, refresh_token: &str, now: u64) -> Option<Tokens> {
        let account = self.accounts.find(refresh_token)?;
        Some(self.issue(&account, refresh_token.to_owned(), now))
    }

    fn issue(&self, account: &accounts::Account, refresh_token: String, now: u64) -> Tokens {
        Tokens {
            uid: account.uid.clone(),
            id_token: tokens::mint(
                &self.key,
                &account.uid,
                account.auth_time,
                now,
                self.lifetime_secs,
            ),
            refresh_token,
            expires_in: self.lifetime_secs,
        }
    }

    fn api_key_ok(&self, given: &str) -> bool {
        match &self.api_key {
            None => true,
            Some(k) => k == given,
        }
    }
}

fn to_identity(claims: Claims) -> Identity {
    let token = match serde_json::to_value(&claims) {
        Ok(Value::Object(map)) => map,
        _ => serde_json::Map::new(),
    };
    Identity {
        uid: claims.sub,
        provider: claims.firebase.sign_in_provider,
        token,
    }
}

/// Seconds since the epoch, the clock tokens are checked with.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The second tokens are minted at: the current one rounded up. JWT times are whole seconds
/// and a token is refused from `exp` on, so minting at the floor would cut up to a second off
/// every token (all of a 1 s test token, on a slow machine). Rounding up gives each token at
/// least its whole lifetime.
pub fn mint_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() + u64::from(d.subsec_nanos() > 0))
        .unwrap_or(0)
}

/// A JWT has three dot-separated parts; anything else sent as `auth=` is some other credential
/// (a database secret, `owner`), not an ID token.
pub fn looks_like_jwt(token: &str) -> bool {
    token.split('.').count() == 3
}
