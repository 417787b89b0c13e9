//! Private rooms: the key and the signaling location derived from the room secret (Argon2id),
//! and authenticated encryption of payloads (ChaCha20-Poly1305), as `docs/protocol.md` §6 says.

use argon2::{Algorithm, Argon2, Params, Version};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, KeyInit, Nonce};

const CHECK_PLAINTEXT: &[u8] = b"huddle-room-check";

/// Errors of the private-room layer.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    /// The key derivation failed (cannot happen with the fixed parameters; kept typed).
    #[error("key derivation failed: {0}")]
    Kdf(String),
    /// The payload is not ours: wrong key, tampered, or moved to another slot.
    #[error("the payload could not be decrypted (wrong secret, or forged)")]
    Open,
}

/// What a private room's secret unlocks.
#[derive(Clone)]
pub struct RoomKey {
    cipher: ChaCha20Poly1305,
    space: String,
}

impl std::fmt::Debug for RoomKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoomKey")
            .field("space", &self.space)
            .finish_non_exhaustive()
    }
}

impl RoomKey {
    /// Derives the key and space from `secret` for `room_id` (memory-hard: ~20 MiB, tens of ms).
    pub fn derive(secret: &str, room_id: &str) -> Result<Self, CryptoError> {
        let params =
            Params::new(19_456, 2, 1, Some(64)).map_err(|e| CryptoError::Kdf(e.to_string()))?;
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let mut out = [0u8; 64];
        let salt = format!("huddle-room:{room_id}");
        argon
            .hash_password_into(secret.as_bytes(), salt.as_bytes(), &mut out)
            .map_err(|e| CryptoError::Kdf(e.to_string()))?;
        let cipher = ChaCha20Poly1305::new(Key::from_slice(&out[..32]));
        let space = format!("c_{}", URL_SAFE_NO_PAD.encode(&out[32..]));
        Ok(RoomKey { cipher, space })
    }

    /// Where the room's signaling lives.
    pub fn space(&self) -> &str {
        &self.space
    }

    /// Encrypts `plaintext` bound to `aad`: base64url(nonce || ciphertext).
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> String {
        let nonce_bytes: [u8; 12] = rand::random();
        let nonce = Nonce::from_slice(&nonce_bytes);
        // Encryption with a valid key and in-memory buffers has no failure mode.
        let ct = self
            .cipher
            .encrypt(
                nonce,
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .unwrap_or_default();
        let mut out = nonce_bytes.to_vec();
        out.extend_from_slice(&ct);
        URL_SAFE_NO_PAD.encode(out)
    }

    /// Decrypts what [`seal`](Self::seal) made with the same `aad`.
    pub fn open(&self, sealed: &str, aad: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let raw = URL_SAFE_NO_PAD
            .decode(sealed)
            .map_err(|_| CryptoError::Open)?;
        if raw.len() < 12 + 16 {
            return Err(CryptoError::Open);
        }
        let (nonce, ct) = raw.split_at(12);
        self.cipher
            .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad })
            .map_err(|_| CryptoError::Open)
    }

    /// The `check` field for `rooms/<roomId>`.
    pub fn make_check(&self, room_id: &str) -> String {
        self.seal(CHECK_PLAINTEXT, room_id.as_bytes())
    }

    /// True when `check` was made with this key for `room_id`.
    pub fn verify_check(&self, check: &str, room_id: &str) -> bool {
        self.open(check, room_id.as_bytes())
            .is_ok_and(|p| p == CHECK_PLAINTEXT)
    }
}

/// The associated data binding a payload to its slot (`docs/protocol.md` §6).
pub fn aad(
    kind: &str,
    space: &str,
    from: &str,
    to: &str,
    session: &str,
    to_session: &str,
    seq: Option<u64>,
) -> Vec<u8> {
    let seq = seq.map(|s| s.to_string()).unwrap_or_default();
    format!("{kind}|{space}|{from}|{to}|{session}|{to_session}|{seq}").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_secret_same_space_and_check_works() {
        let a = RoomKey::derive("open sesame", "room1").unwrap();
        let b = RoomKey::derive("open sesame", "room1").unwrap();
        let wrong = RoomKey::derive("open sesamE", "room1").unwrap();
        let other_room = RoomKey::derive("open sesame", "room2").unwrap();
        assert_eq!(a.space(), b.space());
        assert_ne!(a.space(), wrong.space());
        assert_ne!(a.space(), other_room.space());
        assert!(a.space().starts_with("c_") && a.space().len() == 45);
        assert!(rtdb::path::validate_key(a.space()).is_ok());
        let check = a.make_check("room1");
        assert!(b.verify_check(&check, "room1"));
        assert!(!wrong.verify_check(&check, "room1"));
        assert!(!b.verify_check(&check, "room2"));
    }

    #[test]
    fn payloads_are_bound_to_their_slot() {
        let k = RoomKey::derive("s", "r").unwrap();
        let ad = aad("offer", k.space(), "alice", "bob", "s1", "s2", Some(1));
        let sealed = k.seal(b"v=0 sdp", &ad);
        assert_eq!(k.open(&sealed, &ad).unwrap(), b"v=0 sdp");
        let moved = aad("offer", k.space(), "mallory", "bob", "s1", "s2", Some(1));
        assert_eq!(k.open(&sealed, &moved), Err(CryptoError::Open));
        let mut tampered = sealed.clone();
        tampered.replace_range(20..21, if &sealed[20..21] == "A" { "B" } else { "A" });
        assert_eq!(k.open(&tampered, &ad), Err(CryptoError::Open));
        assert_eq!(k.open("!!", &ad), Err(CryptoError::Open));
    }
}
