//! The signing key and project id of one data folder, created on first start and kept in
//! `DATA/identity/key.json` (mode 0600) so tokens stay valid across restarts and a token of
//! another huddle-db (another folder, another key) is refused.
//!
//! ES256 (ECDSA P-256), not Firebase's RS256: the key is generated here, and ring (our crypto
//! provider for TLS already) generates P-256 keys but not RSA ones; the signature is 64 bytes
//! instead of 256, which keeps `?auth=` URLs short. Clients never check the signature (only
//! the server that issued a token does), so the algorithm is ours to choose.

use std::io::Write;
use std::path::{Path, PathBuf};

use jsonwebtoken::{DecodingKey, EncodingKey};
use rand::Rng;
use serde::{Deserialize, Serialize};

const FILE: &str = "key.json";

/// A data folder's key pair and the project id its tokens name.
#[derive(Clone)]
pub struct SigningKey {
    /// `iss` is `https://securetoken.google.com/<project_id>` and `aud` is the project id.
    pub project_id: String,
    /// The JWT header's `kid`: a digest of the public key, so a reader of a token can tell
    /// which server's key signed it.
    pub key_id: String,
    pub encoding: EncodingKey,
    pub decoding: DecodingKey,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("project_id", &self.project_id)
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

#[derive(Serialize, Deserialize)]
struct KeyFile {
    project_id: String,
    /// PKCS#8 PEM of the P-256 private key.
    private_key: String,
}

/// Errors reading or creating the key file.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("identity key file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "identity key file {0} is damaged; move it away to start afresh (every signed-in user \
         then has to sign in again)"
    )]
    Damaged(PathBuf),
    #[error("could not generate a signing key: {0}")]
    Generate(String),
}

impl SigningKey {
    /// Loads `dir/key.json`, or creates it (and `dir`) on first use.
    pub fn load_or_create(dir: &Path) -> Result<Self, KeyError> {
        let path = dir.join(FILE);
        let io = |source| KeyError::Io {
            path: path.clone(),
            source,
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let file: KeyFile =
                    serde_json::from_str(&text).map_err(|_| KeyError::Damaged(path.clone()))?;
                let pair = rcgen::KeyPair::from_pem(&file.private_key)
                    .map_err(|_| KeyError::Damaged(path.clone()))?;
                Ok(Self::from_pair(file.project_id, &pair))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(dir).map_err(io)?;
                let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
                    .map_err(|e| KeyError::Generate(e.to_string()))?;
                let file = KeyFile {
                    project_id: new_project_id(),
                    private_key: pair.serialize_pem(),
                };
                write_private(&path, &serde_json::to_vec_pretty(&file).unwrap_or_default())
                    .map_err(io)?;
                tracing::info!(project = %file.project_id, key = %path.display(), "created the identity signing key");
                Ok(Self::from_pair(file.project_id, &pair))
            }
            Err(e) => Err(io(e)),
        }
    }

    fn from_pair(project_id: String, pair: &rcgen::KeyPair) -> Self {
        use sha2::Digest;
        let public = pair.public_key_raw();
        let digest = sha2::Sha256::digest(public);
        SigningKey {
            project_id,
            key_id: digest[..10].iter().map(|b| format!("{b:02x}")).collect(),
            encoding: EncodingKey::from_ec_der(&pair.serialize_der()),
            // ring verifies against the uncompressed point, which is what this takes.
            decoding: DecodingKey::from_ec_der(public),
        }
    }
}

/// Firebase project ids are lowercase letters, digits and hyphens; this one is random so two
/// data folders never share one.
fn new_project_id() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    let tail: String = (0..10)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect();
    format!("huddle-{tail}")
}

/// Writes a file only its owner may read, atomically (a crash leaves the old one or none).
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        crate::store::snapshot::sync_dir(dir)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_once_then_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let a = SigningKey::load_or_create(dir.path()).unwrap();
        let b = SigningKey::load_or_create(dir.path()).unwrap();
        assert_eq!(a.project_id, b.project_id);
        assert_eq!(a.key_id, b.key_id);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let other = tempfile::tempdir().unwrap();
        let c = SigningKey::load_or_create(other.path()).unwrap();
        assert_ne!(a.project_id, c.project_id);
        assert_ne!(a.key_id, c.key_id);
    }

    #[test]
    fn a_damaged_file_is_reported_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE), "{not json").unwrap();
        assert!(matches!(
            SigningKey::load_or_create(dir.path()),
            Err(KeyError::Damaged(_))
        ));
    }
}
