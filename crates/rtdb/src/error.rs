//! Errors, each with the HTTP status and the `{"error": ...}` message Firebase would give.

use serde_json::Value;

/// Everything a request can fail with. `Display` is the message sent to the client.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The URL path is not a valid location.
    #[error("{0}")]
    BadPath(String),
    /// The body is not acceptable data (bad JSON, bad key, too deep, too large...).
    #[error("{0}")]
    BadData(String),
    /// Malformed query parameters.
    #[error("{0}")]
    BadQuery(String),
    /// Missing or wrong credentials.
    #[error("Permission denied")]
    PermissionDenied,
    /// An ID token that was valid but has expired: the client should refresh it and retry.
    #[error("Auth token is expired")]
    AuthExpired,
    /// An `auth=` / `Bearer` ID token that is not one this server issued (garbage, tampered
    /// with, or signed by another huddle-db).
    #[error("Could not parse auth token.")]
    AuthInvalid,
    /// An `if-match` condition failed: carries the current value and its ETag.
    #[error("ETag mismatch")]
    PreconditionFailed {
        /// Current value at the location.
        current: Value,
        /// ETag of that value.
        etag: String,
    },
    /// An `if-match` condition failed at a location the caller may write but not read.
    #[error("ETag mismatch: the data here has changed (you may not read it, so it is not shown)")]
    PreconditionHidden,
    /// The request body stopped arriving.
    #[error("the request body stopped arriving for {}s; send it again", .0.as_secs())]
    BodyTimeout(std::time::Duration),
    /// The method is not one the REST API has.
    #[error("Invalid method: {0}")]
    BadMethod(String),
    /// The storage layer failed; the write was not applied.
    #[error("the database could not save this write to its disk ({0}); nothing was changed, try again later")]
    Storage(#[from] std::io::Error),
    /// The server is shutting down.
    #[error("the server is shutting down")]
    Unavailable,
}

impl DbError {
    /// The HTTP status code Firebase uses for this error.
    pub fn status(&self) -> u16 {
        match self {
            DbError::BadPath(_) | DbError::BadData(_) | DbError::BadQuery(_) => 400,
            DbError::BadMethod(_) => 405,
            DbError::BodyTimeout(_) => 408,
            DbError::PermissionDenied | DbError::AuthExpired | DbError::AuthInvalid => 401,
            DbError::PreconditionFailed { .. } | DbError::PreconditionHidden => 412,
            DbError::Storage(_) | DbError::Unavailable => 503,
        }
    }
}
