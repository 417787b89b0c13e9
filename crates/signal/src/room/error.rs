//! The errors of the room layer, in words a user understands.

use super::crypto::CryptoError;
use crate::rtdb::RtdbError;

/// Errors a user can meet, in words they understand.
#[derive(Debug, thiserror::Error)]
pub enum SignalError {
    #[error("the room does not exist (it may have been closed)")]
    NoSuchRoom,
    /// A private room was joined without a secret.
    #[error("this room is private: it needs its secret")]
    SecretRequired,
    #[error("wrong secret for this room")]
    WrongSecret,
    /// The listing under `rooms/<roomId>` is there but not a room (wrong types or sizes, or a
    /// private room without its check): it cannot be joined or shown.
    #[error("the room's listing is damaged")]
    DamagedListing,
    /// The key of a private room could not be derived from its secret.
    #[error(transparent)]
    Key(#[from] CryptoError),
    /// The database refused (wrong database secret, or its rules).
    #[error("the database refused access: {0}")]
    PermissionDenied(String),
    /// The database could not be used.
    #[error(transparent)]
    Database(RtdbError),
    /// Signing in to the database's sign-in service failed; the error says what to do.
    #[error(transparent)]
    SignIn(#[from] crate::auth::AuthError),
    /// A name or option is not acceptable.
    #[error("{0}")]
    Invalid(String),
    #[error("a room with that id exists already")]
    RoomExists,
    /// The peer is not (or no longer) in the room.
    #[error("{0} is not in the room")]
    NotInRoom(String),
    /// The room task has ended (left, closed, or the room was destroyed).
    #[error("no longer in the room")]
    Closed,
}

impl From<RtdbError> for SignalError {
    fn from(e: RtdbError) -> Self {
        if e.is_permission_denied() {
            SignalError::PermissionDenied(e.to_string())
        } else {
            SignalError::Database(e)
        }
    }
}
