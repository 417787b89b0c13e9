//! What can go wrong signing in, each case with the sentence a user needs: what happened and
//! what to do about it. The codes matched here are the ones Identity Toolkit and Secure Token
//! put in `error.message` (Firebase's Auth emulator and huddle-db answer with the same bodies).

use crate::rtdb::RtdbError;

/// A failed sign-in, refresh, or a database answer that shows the sign-in setup is wrong.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// `ADMIN_ONLY_OPERATION` / `OPERATION_NOT_ALLOWED` on `accounts:signUp`.
    #[error(
        "anonymous sign-in is disabled in this Firebase project: in the Firebase console open \
         Authentication > Sign-in method, enable \"Anonymous\", then try again"
    )]
    AnonymousDisabled,
    /// `API key not valid`, `API_KEY_INVALID`, or no key at all.
    #[error(
        "the API key was refused ({detail}): copy the web app config again from the Firebase \
         console (Project settings > General > Your apps) and paste it whole"
    )]
    InvalidApiKey { detail: String },
    /// `CONFIGURATION_NOT_FOUND`: Authentication was never opened in the console, so the
    /// project has no sign-in configuration at all.
    #[error(
        "Firebase Authentication is not set up in this project: in the Firebase console open \
         Authentication, click \"Get started\", enable \"Anonymous\", then try again"
    )]
    AuthNotSetUp,
    /// The database refused a freshly issued token as belonging elsewhere.
    #[error(
        "the database belongs to another Firebase project than the API key ({detail}): paste \
         the web app config of the project that holds this database"
    )]
    WrongProject { detail: String },
    /// Signed in, yet the first write was refused: the project still has the console's default
    /// locked rules.
    #[error(
        "the database refused a signed-in user ({detail}): deploy Huddle's rules with \
         `firebase deploy --only database` (see docs/firebase.md)"
    )]
    RulesNotDeployed { detail: String },
    /// The saved session can no longer be refreshed (`TOKEN_EXPIRED`, `USER_DISABLED`,
    /// `USER_NOT_FOUND`, `INVALID_REFRESH_TOKEN`). The client reacts by signing in again as a
    /// new user; this is what it reports when it does (see [`super::AuthEvent::Replaced`]).
    #[error("{}", session_ended_sentence(code))]
    SessionEnded { code: String },
    /// `TOO_MANY_ATTEMPTS_TRY_LATER` and other quota answers.
    #[error("the sign-in server asks us to slow down ({code}); Huddle will try again shortly")]
    RateLimited { code: String },
    /// The sign-in server could not be reached (DNS, refused connection, TLS, timeout).
    #[error(
        "cannot reach the sign-in server at {host} ({detail}): check the network connection \
         (and the auth host setting, if one is set)"
    )]
    Unreachable { host: String, detail: String },
    /// The settings themselves are wrong (no API key, a bad auth host, a bad certificate).
    #[error("sign-in settings: {0}")]
    Config(String),
    /// Any other refusal, with the server's code.
    #[error("the sign-in server refused ({status}): {code}")]
    Rejected { status: u16, code: String },
    /// An answer that is not what the API promises.
    #[error("unexpected answer from the sign-in server: {0}")]
    BadResponse(String),
}

fn session_ended_sentence(code: &str) -> String {
    let why = match code {
        "USER_DISABLED" => "this user was disabled by the project's administrator",
        "USER_NOT_FOUND" => "this user was deleted from the project",
        "TOKEN_EXPIRED" => "the saved sign-in expired (revoked, or the user signed in elsewhere)",
        _ => "the saved sign-in is no longer valid",
    };
    format!("{why} ({code}); Huddle signs in again as a new anonymous user")
}

impl AuthError {
    /// Worth trying again later without changing anything.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            AuthError::Unreachable { .. } | AuthError::RateLimited { .. }
        )
    }

    /// Maps an Identity Toolkit / Secure Token error answer (`status` and body) to a variant.
    ///
    /// The body is `{"error": {"code": 400, "message": "CODE : optional detail", "errors":
    /// [{"reason": ...}], "status": ...}}`; the code is the part of `message` before ` : `.
    pub fn from_response(status: u16, body: &str) -> AuthError {
        let parsed: Option<serde_json::Value> = serde_json::from_str(body).ok();
        let error = parsed.as_ref().and_then(|v| v.get("error"));
        let message = error
            .and_then(|e| e.get("message"))
            .and_then(|m| m.as_str())
            .unwrap_or(body)
            .trim()
            .to_owned();
        let reason = error
            .and_then(|e| e.get("errors"))
            .and_then(|e| e.get(0))
            .and_then(|e| e.get("reason"))
            .and_then(|r| r.as_str())
            .unwrap_or("");
        let details_reason = error
            .and_then(|e| e.get("details"))
            .and_then(|d| d.as_array())
            .into_iter()
            .flatten()
            .filter_map(|d| d.get("reason").and_then(|r| r.as_str()))
            .any(|r| r == "API_KEY_INVALID");
        let code = message
            .split_once(" : ")
            .map_or(message.as_str(), |(c, _)| c)
            .trim()
            .to_owned();
        if message.contains("API key not valid")
            || message.contains("missing a valid API key")
            || reason == "keyInvalid"
            || details_reason
            || code == "API_KEY_INVALID"
        {
            return AuthError::InvalidApiKey { detail: message };
        }
        match code.as_str() {
            "ADMIN_ONLY_OPERATION" | "OPERATION_NOT_ALLOWED" => AuthError::AnonymousDisabled,
            "CONFIGURATION_NOT_FOUND" => AuthError::AuthNotSetUp,
            "TOKEN_EXPIRED" | "USER_DISABLED" | "USER_NOT_FOUND" | "INVALID_REFRESH_TOKEN" => {
                AuthError::SessionEnded { code }
            }
            c if c.starts_with("TOO_MANY_ATTEMPTS") || c == "QUOTA_EXCEEDED" || status == 429 => {
                AuthError::RateLimited { code }
            }
            _ => AuthError::Rejected { status, code },
        }
    }

    /// Reads a database error seen right after a successful sign-in as a setup problem, when it
    /// is one: a token refused as another project's, or a signed-in `first_write` refused by the
    /// rules. `None` when the error says nothing about the setup.
    pub fn from_database(err: &RtdbError, first_write: bool) -> Option<AuthError> {
        let RtdbError::Http { status, message } = err else {
            return None;
        };
        if !matches!(status, 401 | 403) {
            return None;
        }
        let lower = message.to_ascii_lowercase();
        // "Could not parse auth token": a token its issuer just handed out that this database
        // cannot read is one signed for somewhere else (huddle-db trusts only its own key).
        if lower.contains("different project")
            || lower.contains("incorrect \"aud\"")
            || lower.contains("audience")
            || lower.contains("could not parse auth token")
        {
            return Some(AuthError::WrongProject {
                detail: message.clone(),
            });
        }
        if first_write && lower.contains("permission denied") {
            return Some(AuthError::RulesNotDeployed {
                detail: message.clone(),
            });
        }
        None
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn identity_toolkit_bodies_map_to_variants() {
        // As Google answers a key that does not exist (captured shape of a real response).
        let bad_key = r#"{"error":{"code":400,"message":"API key not valid. Please pass a valid API key.","errors":[{"message":"API key not valid. Please pass a valid API key.","domain":"global","reason":"badRequest"}],"status":"INVALID_ARGUMENT","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"API_KEY_INVALID","domain":"googleapis.com"}]}}"#;
        assert!(matches!(
            AuthError::from_response(400, bad_key),
            AuthError::InvalidApiKey { .. }
        ));
        // The emulator without any key.
        let no_key = r#"{"error":{"code":403,"message":"The request is missing a valid API key.","errors":[{"message":"The request is missing a valid API key.","reason":"forbidden","domain":"global"}],"status":"PERMISSION_DENIED"}}"#;
        assert!(matches!(
            AuthError::from_response(403, no_key),
            AuthError::InvalidApiKey { .. }
        ));
        let anon = r#"{"error":{"code":400,"message":"ADMIN_ONLY_OPERATION","errors":[{"message":"ADMIN_ONLY_OPERATION","domain":"global","reason":"invalid"}]}}"#;
        assert_eq!(
            AuthError::from_response(400, anon),
            AuthError::AnonymousDisabled
        );
        let not_allowed = r#"{"error":{"code":400,"message":"OPERATION_NOT_ALLOWED : Anonymous user sign-in is disabled.","errors":[]}}"#;
        assert_eq!(
            AuthError::from_response(400, not_allowed),
            AuthError::AnonymousDisabled
        );
        let cfg = r#"{"error":{"code":400,"message":"CONFIGURATION_NOT_FOUND"}}"#;
        assert_eq!(AuthError::from_response(400, cfg), AuthError::AuthNotSetUp);
        for code in [
            "TOKEN_EXPIRED",
            "USER_DISABLED",
            "USER_NOT_FOUND",
            "INVALID_REFRESH_TOKEN",
        ] {
            let body = format!(r#"{{"error":{{"code":400,"message":"{code}"}}}}"#);
            let e = AuthError::from_response(400, &body);
            assert_eq!(e, AuthError::SessionEnded { code: code.into() });
            assert!(e.to_string().contains("new anonymous user"), "{e}");
        }
        let slow = r#"{"error":{"code":400,"message":"TOO_MANY_ATTEMPTS_TRY_LATER : Too many attempts."}}"#;
        assert!(AuthError::from_response(400, slow).is_transient());
        assert_eq!(
            AuthError::from_response(502, "<html>bad gateway</html>"),
            AuthError::Rejected {
                status: 502,
                code: "<html>bad gateway</html>".into()
            }
        );
    }

    #[test]
    fn database_answers_after_sign_in_name_the_setup_problem() {
        let other = RtdbError::Http {
            status: 401,
            message: "Auth token is for a different project".into(),
        };
        assert!(matches!(
            AuthError::from_database(&other, false),
            Some(AuthError::WrongProject { .. })
        ));
        let foreign = RtdbError::Http {
            status: 401,
            message: "Could not parse auth token.".into(),
        };
        assert!(matches!(
            AuthError::from_database(&foreign, false),
            Some(AuthError::WrongProject { .. })
        ));
        let denied = RtdbError::Http {
            status: 401,
            message: "Permission denied".into(),
        };
        let e = AuthError::from_database(&denied, true).unwrap();
        assert!(
            e.to_string().contains("firebase deploy --only database"),
            "{e}"
        );
        assert_eq!(AuthError::from_database(&denied, false), None);
        assert_eq!(AuthError::from_database(&RtdbError::Timeout, true), None);
    }
}
