//! The one error type the page sees: what went wrong in words, and what to try when we know.
//! Every lower error becomes one here, at the edge, so the words are chosen in one place.

use signal::room::SignalError;

/// An error for the user: what happened and, when we know, what to do.
#[derive(Debug, Clone, serde::Serialize, PartialEq)]
pub struct UserError {
    pub message: String,
    pub hint: Option<String>,
}

impl UserError {
    pub fn new(message: impl Into<String>, hint: Option<&str>) -> Self {
        UserError {
            message: message.into(),
            hint: hint.map(str::to_owned),
        }
    }

    /// What a command gets when the app core has stopped (the app is closing).
    pub(crate) fn closing() -> Self {
        UserError::new("the app is closing", None)
    }

    pub(crate) fn not_in_call() -> Self {
        UserError::new("you are not in a call", None)
    }
}

impl std::fmt::Display for UserError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)?;
        if let Some(h) = &self.hint {
            write!(f, " ({h})")?;
        }
        Ok(())
    }
}

impl std::error::Error for UserError {}

impl From<SignalError> for UserError {
    fn from(e: SignalError) -> Self {
        let hint = match &e {
            SignalError::NoSuchRoom => {
                Some("It may have been closed. Pick another room or create one.")
            }
            SignalError::SecretRequired | SignalError::WrongSecret => {
                Some("Ask the person who invited you for the room's secret.")
            }
            SignalError::PermissionDenied(_) => {
                Some("Check the database secret or token in Settings → Database.")
            }
            SignalError::Database(_) => Some(
                "Check that the database address in Settings is right and that you are online.",
            ),
            _ => None,
        };
        UserError::new(e.to_string(), hint)
    }
}

impl From<mesh::MeshError> for UserError {
    fn from(e: mesh::MeshError) -> Self {
        match e {
            mesh::MeshError::Signal(s) => s.into(),
            other => UserError::new(other.to_string(), None),
        }
    }
}
