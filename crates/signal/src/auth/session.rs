//! The token state of one signed-in installation and the decisions on it, with time passed in:
//! which token to hand out, when to refresh, what a refusal of a token means. No I/O here; the
//! driver in `mod.rs` does the HTTP calls this asks for.

use std::time::{Duration, Instant};

/// Refresh when less than this is left, as Firebase's SDKs do proactively (their
/// `_OFFSET_DURATION`); a request sent with a token that expires mid-flight fails for nothing.
pub const REFRESH_BEFORE_EXPIRY: Duration = Duration::from_secs(5 * 60);

/// What the user keeps between runs so that they stay the same user (one uid per
/// installation). The refresh token is a long-lived secret: store it like a password.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Credential {
    pub uid: String,
    pub refresh_token: String,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("uid", &self.uid)
            .field("refresh_token", &"<hidden>")
            .finish()
    }
}

/// A usable ID token and when it stops being usable.
#[derive(Clone, Debug)]
pub struct IdToken {
    pub token: String,
    pub issued: Instant,
    pub expires: Instant,
}

/// What the caller must do to get a token now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Next {
    /// The held token is good: use it.
    Use(String),
    /// Exchange this refresh token for a fresh ID token.
    Refresh(String),
    /// Nothing to go on: sign up as a new anonymous user.
    SignUp,
}

/// One installation's sign-in state.
#[derive(Clone, Debug, Default)]
pub struct Session {
    credential: Option<Credential>,
    token: Option<IdToken>,
    /// Set by a forced refresh: the held token must not be handed out again.
    stale: bool,
}

impl Session {
    /// Starting from a saved credential (or none: the first run).
    pub fn new(saved: Option<Credential>) -> Self {
        Session {
            credential: saved,
            token: None,
            stale: false,
        }
    }

    pub fn credential(&self) -> Option<&Credential> {
        self.credential.as_ref()
    }

    pub fn uid(&self) -> Option<&str> {
        self.credential.as_ref().map(|c| c.uid.as_str())
    }

    pub fn token(&self) -> Option<&IdToken> {
        self.token.as_ref()
    }

    /// How long before expiry a token is refreshed: five minutes for Firebase's hour-long
    /// tokens, a quarter of the lifetime for short ones (huddle-db in tests issues 20 s tokens,
    /// which a five-minute margin would refresh on every request).
    pub fn refresh_margin(lifetime: Duration) -> Duration {
        REFRESH_BEFORE_EXPIRY.min(lifetime / 4)
    }

    /// Whether `token` is due for a refresh at `now`.
    pub fn due(token: &IdToken, now: Instant) -> bool {
        let lifetime = token.expires.saturating_duration_since(token.issued);
        now + Self::refresh_margin(lifetime) >= token.expires
    }

    /// When the held token becomes due (for a driver that refreshes ahead of need).
    pub fn due_at(&self) -> Option<Instant> {
        let t = self.token.as_ref()?;
        let lifetime = t.expires.saturating_duration_since(t.issued);
        Some(t.expires - Self::refresh_margin(lifetime))
    }

    pub fn next(&self, now: Instant) -> Next {
        match (&self.token, &self.credential) {
            (Some(t), _) if !self.stale && !Self::due(t, now) => Next::Use(t.token.clone()),
            (_, Some(c)) => Next::Refresh(c.refresh_token.clone()),
            (_, None) => Next::SignUp,
        }
    }

    /// Forces the next [`Session::next`] to refresh, whatever the token's age.
    pub fn invalidate(&mut self) {
        self.stale = true;
    }

    /// The server refused `rejected`. Only a refusal of the token we hold now forces a refresh:
    /// ten streams that all saw the old token expire ask for one refresh between them, not ten.
    /// Returns whether it did.
    pub fn invalidate_token(&mut self, rejected: &str) -> bool {
        match &self.token {
            Some(t) if t.token == rejected => {
                self.stale = true;
                true
            }
            _ => false,
        }
    }

    /// A sign-up or refresh answered: `expires_in` as the server said (`expiresIn`).
    pub fn on_tokens(
        &mut self,
        uid: String,
        id_token: String,
        refresh_token: String,
        expires_in: Duration,
        now: Instant,
    ) {
        self.credential = Some(Credential { uid, refresh_token });
        self.token = Some(IdToken {
            token: id_token,
            issued: now,
            expires: now + expires_in,
        });
        self.stale = false;
    }

    /// The refresh token was refused for good: forget the user, so the next step is a sign-up.
    pub fn forget(&mut self) -> Option<Credential> {
        self.token = None;
        self.stale = false;
        self.credential.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    fn signed_in(now: Instant, lifetime: Duration) -> Session {
        let mut s = Session::new(None);
        s.on_tokens("u1".into(), "id-1".into(), "rt-1".into(), lifetime, now);
        s
    }

    #[test]
    fn first_run_signs_up_and_a_saved_credential_refreshes() {
        let now = Instant::now();
        assert_eq!(Session::new(None).next(now), Next::SignUp);
        let saved = Credential {
            uid: "u0".into(),
            refresh_token: "rt-0".into(),
        };
        let s = Session::new(Some(saved));
        assert_eq!(s.next(now), Next::Refresh("rt-0".into()));
        assert_eq!(s.uid(), Some("u0"));
    }

    #[test]
    fn an_hour_token_is_used_until_five_minutes_before_expiry() {
        let t0 = Instant::now();
        let s = signed_in(t0, HOUR);
        assert_eq!(s.next(t0), Next::Use("id-1".into()));
        let just_before = t0 + HOUR - REFRESH_BEFORE_EXPIRY - Duration::from_secs(1);
        assert_eq!(s.next(just_before), Next::Use("id-1".into()));
        let inside = t0 + HOUR - REFRESH_BEFORE_EXPIRY;
        assert_eq!(s.next(inside), Next::Refresh("rt-1".into()));
        assert_eq!(s.next(t0 + 2 * HOUR), Next::Refresh("rt-1".into()));
        assert_eq!(s.due_at(), Some(inside));
    }

    #[test]
    fn a_short_token_is_refreshed_at_three_quarters_of_its_life() {
        let t0 = Instant::now();
        let s = signed_in(t0, Duration::from_secs(20));
        assert_eq!(
            s.next(t0 + Duration::from_secs(14)),
            Next::Use("id-1".into())
        );
        assert_eq!(
            s.next(t0 + Duration::from_secs(15)),
            Next::Refresh("rt-1".into())
        );
    }

    #[test]
    fn only_a_refusal_of_the_current_token_forces_a_refresh() {
        let t0 = Instant::now();
        let mut s = signed_in(t0, HOUR);
        assert!(s.invalidate_token("id-1"));
        assert_eq!(s.next(t0), Next::Refresh("rt-1".into()));
        s.on_tokens("u1".into(), "id-2".into(), "rt-1".into(), HOUR, t0);
        // Nine more streams report the old token, after the refresh already happened.
        for _ in 0..9 {
            assert!(!s.invalidate_token("id-1"));
        }
        assert_eq!(s.next(t0), Next::Use("id-2".into()));
        s.invalidate();
        assert_eq!(s.next(t0), Next::Refresh("rt-1".into()));
    }

    #[test]
    fn forgetting_leads_to_a_new_sign_up() {
        let t0 = Instant::now();
        let mut s = signed_in(t0, HOUR);
        let old = s.forget();
        assert_eq!(old.map(|c| c.uid), Some("u1".to_owned()));
        assert_eq!(s.next(t0), Next::SignUp);
        assert_eq!(s.uid(), None);
    }
}
