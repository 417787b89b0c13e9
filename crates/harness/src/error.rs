use std::fmt;
use std::time::Duration;

/// What went wrong starting or waiting for something.
///
/// `Debug` prints the same text as `Display`: tests `unwrap()` these, and the panic message
/// should read as the sentence it is, with its list of events one per line.
#[derive(thiserror::Error)]
pub enum Error {
    #[error("cannot start {program}: {source} ({hint})")]
    Start {
        program: String,
        /// What to install or build to get it.
        hint: String,
        source: std::io::Error,
    },
    #[error("{who}: no {what} within {within:?}; {seen}")]
    TimedOut {
        who: String,
        what: String,
        within: Duration,
        /// What came instead, already written out.
        seen: String,
    },
    #[error("{who}: its output ended (did it exit?) before {what}; {seen}")]
    Ended {
        who: String,
        what: String,
        seen: String,
    },
    /// Every line a huddle-peer prints on stdout is one JSON event; anything else is a bug in it.
    #[error("{who} printed a line that is not JSON: {line:?}")]
    NotJson { who: String, line: String },
    #[error("{program}: {problem}")]
    Unexpected { program: String, problem: String },
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[cfg(feature = "rtdb")]
    #[error("in-process huddle-db: {0}")]
    Rtdb(#[from] rtdb::server::StartError),
    #[cfg(feature = "browser")]
    /// A WebDriver command failed: `path` is the endpoint (classic) or the method (BiDi).
    #[error("WebDriver {path}: {message}")]
    WebDriver { path: String, message: String },
    #[cfg(feature = "browser")]
    #[error("WebDriver: {0}")]
    Http(#[from] reqwest::Error),
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}
