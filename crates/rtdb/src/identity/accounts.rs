//! Anonymous accounts: a uid per refresh token, kept in `DATA/identity/accounts.json` so a user
//! keeps their uid across server restarts. Only a SHA-256 of each refresh token is stored: the
//! file alone does not let anyone sign in as the users it lists.
//!
//! Refresh tokens do not rotate (a refresh returns the same one, as Firebase's usually does), so
//! the file changes only on sign-up; it is rewritten whole then, which is fine at the rate
//! people join calls.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use base64::Engine;
use rand::{Rng, RngCore};
use serde::{Deserialize, Serialize};
use sha2::Digest;

use super::keys::write_private;

const FILE: &str = "accounts.json";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub uid: String,
    /// Seconds since the epoch of the sign-up, the ID tokens' `auth_time`.
    pub auth_time: u64,
}

/// A freshly created account and the refresh token that names it.
#[derive(Clone, Debug)]
pub struct NewAccount {
    pub account: Account,
    pub refresh_token: String,
}

#[derive(Default, Serialize, Deserialize)]
struct AccountsFile {
    /// Hex SHA-256 of a refresh token -> its account.
    by_refresh_hash: HashMap<String, Account>,
}

/// Errors of the account store.
#[derive(Debug, thiserror::Error)]
pub enum AccountsError {
    #[error("accounts file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "accounts file {0} is damaged; move it away to start afresh (every signed-in user then \
         has to sign in again, with a new uid)"
    )]
    Damaged(PathBuf),
}

pub struct Accounts {
    path: PathBuf,
    inner: Mutex<AccountsFile>,
}

impl Accounts {
    /// Loads `dir/accounts.json` (none yet: no accounts).
    pub fn open(dir: &Path) -> Result<Self, AccountsError> {
        let path = dir.join(FILE);
        let inner = match std::fs::read_to_string(&path) {
            Ok(text) => {
                serde_json::from_str(&text).map_err(|_| AccountsError::Damaged(path.clone()))?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => AccountsFile::default(),
            Err(source) => return Err(AccountsError::Io { path, source }),
        };
        Ok(Accounts {
            path,
            inner: Mutex::new(inner),
        })
    }

    /// A new anonymous user, kept on disk before it is returned (a uid handed out is never
    /// lost to a crash).
    pub fn create(&self, now: u64) -> Result<NewAccount, AccountsError> {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        let refresh_token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        let account = Account {
            uid: new_uid(),
            auth_time: now,
        };
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner
            .by_refresh_hash
            .insert(hash(&refresh_token), account.clone());
        let text = serde_json::to_vec(&*inner).unwrap_or_default();
        if let Err(source) = write_private(&self.path, &text) {
            inner.by_refresh_hash.remove(&hash(&refresh_token));
            return Err(AccountsError::Io {
                path: self.path.clone(),
                source,
            });
        }
        Ok(NewAccount {
            account,
            refresh_token,
        })
    }

    /// The account a refresh token names, if it is one of ours.
    pub fn find(&self, refresh_token: &str) -> Option<Account> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.by_refresh_hash.get(&hash(refresh_token)).cloned()
    }
}

fn hash(refresh_token: &str) -> String {
    sha2::Sha256::digest(refresh_token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// 28 alphanumeric characters, the length and alphabet of Firebase's uids.
fn new_uid() -> String {
    rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(28)
        .map(char::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_account_outlives_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let store = Accounts::open(dir.path()).unwrap();
        let a = store.create(100).unwrap();
        let b = store.create(200).unwrap();
        assert_ne!(a.account.uid, b.account.uid);
        assert_eq!(a.account.uid.len(), 28);
        assert_eq!(store.find(&a.refresh_token), Some(a.account.clone()));
        assert_eq!(store.find("nope"), None);
        drop(store);
        let again = Accounts::open(dir.path()).unwrap();
        assert_eq!(again.find(&a.refresh_token), Some(a.account));
        assert_eq!(again.find(&b.refresh_token), Some(b.account));
        let text = std::fs::read_to_string(dir.path().join(FILE)).unwrap();
        assert!(
            !text.contains(&a.refresh_token),
            "refresh tokens are kept hashed"
        );
    }
}
