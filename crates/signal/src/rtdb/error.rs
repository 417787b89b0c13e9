//! Errors of the database client, keeping the HTTP status and Firebase's own message.

/// A failed database request.
#[derive(Debug, thiserror::Error)]
pub enum RtdbError {
    /// The database answered with an error status; `message` is its `{"error": ...}` text.
    #[error("the database refused the request ({status}): {message}")]
    Http {
        status: u16,
        /// Firebase's message.
        message: String,
    },
    /// The database could not be reached or the connection broke.
    #[error("cannot reach the database: {0}")]
    Network(String),
    /// No answer within the request timeout.
    #[error("the database did not answer in time")]
    Timeout,
    /// The answer was not what the protocol promises.
    #[error("unexpected answer from the database: {0}")]
    BadResponse(String),
    /// The client was configured wrongly (bad URL, bad certificate...).
    #[error("database client configuration: {0}")]
    Config(String),
    /// The credentials could not be obtained.
    #[error("could not get database credentials: {0}")]
    Credentials(String),
    /// Signing in (or refreshing the ID token) failed; the error says what to do.
    #[error(transparent)]
    SignIn(#[from] crate::auth::AuthError),
}

impl RtdbError {
    /// 401 `Permission denied` (wrong secret, or rules that do not allow it).
    pub fn is_permission_denied(&self) -> bool {
        matches!(
            self,
            RtdbError::Http {
                status: 401 | 403,
                ..
            }
        )
    }

    /// The credential itself was refused (`Auth token is expired`, `Could not parse auth
    /// token`, `Invalid token in path`...) rather than the rules saying no (`Permission
    /// denied`): a fresh token may succeed where this one failed.
    pub fn is_token_rejected(&self) -> bool {
        match self {
            RtdbError::Http {
                status: 401 | 403,
                message,
            } => {
                let m = message.to_ascii_lowercase();
                m.contains("token") || m.contains("expired") || m.contains("credential")
            }
            _ => false,
        }
    }

    /// Worth retrying later: network trouble, timeouts, 5xx, 429.
    pub fn is_transient(&self) -> bool {
        match self {
            RtdbError::Network(_) | RtdbError::Timeout => true,
            RtdbError::Http { status, .. } => *status >= 500 || *status == 429,
            RtdbError::SignIn(e) => e.is_transient(),
            _ => false,
        }
    }
}

impl From<reqwest::Error> for RtdbError {
    fn from(e: reqwest::Error) -> Self {
        if e.is_timeout() {
            RtdbError::Timeout
        } else if e.is_builder() {
            RtdbError::Config(e.to_string())
        } else {
            // reqwest's Display stops at the outermost layer; the cause says what actually broke.
            let mut msg = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                msg = format!("{msg}: {s}");
                source = s.source();
            }
            RtdbError::Network(msg)
        }
    }
}
