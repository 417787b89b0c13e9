//! The two HTTP calls of anonymous sign-in, with the request and response bodies of Firebase's
//! REST API (Identity Toolkit `accounts:signUp`, Secure Token `token`), which Firebase's Auth
//! emulator and huddle-db serve at the same paths.

use std::time::Duration;

use serde::Deserialize;

use super::config::AuthHost;
use super::error::AuthError;

/// Tokens as both endpoints give them, in one shape.
#[derive(Debug, Clone)]
pub struct Tokens {
    pub uid: String,
    pub id_token: String,
    pub refresh_token: String,
    pub expires_in: Duration,
}

/// `accounts:signUp` answers in camelCase, with `expiresIn` a string of seconds.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SignUpResponse {
    local_id: String,
    id_token: String,
    refresh_token: String,
    expires_in: String,
}

/// Secure Token answers in snake_case (and names the ID token `id_token`).
#[derive(Deserialize)]
struct RefreshResponse {
    user_id: String,
    id_token: String,
    refresh_token: String,
    expires_in: String,
}

pub struct Rest {
    pub http: reqwest::Client,
    pub host: AuthHost,
    pub api_key: String,
    pub tenant_id: Option<String>,
}

impl Rest {
    /// A new anonymous user.
    pub async fn sign_up(&self) -> Result<Tokens, AuthError> {
        let mut body = serde_json::json!({ "returnSecureToken": true });
        if let Some(t) = &self.tenant_id {
            body["tenantId"] = t.clone().into();
        }
        let req = self
            .http
            .post(format!("{}/accounts:signUp", self.host.identity_toolkit()))
            .query(&self.key())
            .json(&body);
        let r: SignUpResponse = self.call(req).await?;
        Ok(Tokens {
            uid: r.local_id,
            id_token: r.id_token,
            refresh_token: r.refresh_token,
            expires_in: seconds(&r.expires_in)?,
        })
    }

    /// A fresh ID token for the user of `refresh_token`.
    pub async fn refresh(&self, refresh_token: &str) -> Result<Tokens, AuthError> {
        let req = self
            .http
            .post(format!("{}/token", self.host.secure_token()))
            .query(&self.key())
            .form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
            ]);
        let r: RefreshResponse = self.call(req).await?;
        Ok(Tokens {
            uid: r.user_id,
            id_token: r.id_token,
            refresh_token: r.refresh_token,
            expires_in: seconds(&r.expires_in)?,
        })
    }

    /// An empty key is left out rather than sent as `key=`, so the server says "missing"
    /// rather than "not valid" — both map to [`AuthError::InvalidApiKey`].
    fn key(&self) -> Vec<(&'static str, &str)> {
        if self.api_key.is_empty() {
            Vec::new()
        } else {
            vec![("key", self.api_key.as_str())]
        }
    }

    async fn call<T: for<'de> Deserialize<'de>>(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<T, AuthError> {
        let resp = req.send().await.map_err(|e| self.unreachable(&e))?;
        let status = resp.status().as_u16();
        let text = resp.text().await.map_err(|e| self.unreachable(&e))?;
        if !(200..300).contains(&status) {
            return Err(AuthError::from_response(status, &text));
        }
        serde_json::from_str(&text)
            .map_err(|e| AuthError::BadResponse(format!("{e} in {}", snippet(&text))))
    }

    fn unreachable(&self, e: &reqwest::Error) -> AuthError {
        // reqwest's Display stops at the outermost layer; the cause says what broke.
        let mut detail = e.to_string();
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            detail = format!("{detail}: {s}");
            source = s.source();
        }
        if e.is_builder() {
            return AuthError::Config(detail);
        }
        AuthError::Unreachable {
            host: self.host.name(),
            detail,
        }
    }
}

fn seconds(s: &str) -> Result<Duration, AuthError> {
    s.trim()
        .parse::<u64>()
        .map(Duration::from_secs)
        .map_err(|_| AuthError::BadResponse(format!("expiresIn {s:?} is not a number of seconds")))
}

fn snippet(text: &str) -> String {
    text.chars().take(200).collect()
}
