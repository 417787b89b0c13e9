//! The Firebase web app config as the console shows it, and where the sign-in endpoints are.
//!
//! Users paste what the console gives them: a JavaScript snippet (`const firebaseConfig = {
//! apiKey: "...", ... };` with comments, unquoted keys, trailing commas, the `import` and
//! `initializeApp` lines around it), or JSON, or they type the fields one by one. All three end
//! up here as a [`FirebaseConfig`].

use std::collections::BTreeMap;

/// The fields of a Firebase web app config that Huddle uses.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FirebaseConfig {
    pub api_key: String,
    pub project_id: Option<String>,
    pub auth_domain: Option<String>,
    /// Absent until the project has a Realtime Database (the console leaves it out until then).
    pub database_url: Option<String>,
    pub app_id: Option<String>,
}

/// Why a pasted config cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "no {{ ... }} config found: paste the `firebaseConfig` block from the Firebase console \
         (Project settings > General > Your apps)"
    )]
    NoObject,
    #[error("the pasted config cannot be read at line {line}: {problem}")]
    Syntax { line: usize, problem: String },
    #[error("the config has no apiKey: paste the whole `firebaseConfig` block")]
    NoApiKey,
    #[error(
        "the config has no databaseURL: create the Realtime Database first (Firebase console > \
         Build > Realtime Database > Create database), then copy the config again"
    )]
    NoDatabaseUrl,
    #[error("the databaseURL {0:?} is not an https:// URL")]
    BadDatabaseUrl(String),
}

impl FirebaseConfig {
    /// Reads a pasted config: the console's JavaScript snippet or JSON. The database URL is
    /// required (Huddle has nothing to do without one).
    pub fn parse(text: &str) -> Result<FirebaseConfig, ConfigError> {
        let fields = parse_object(text)?;
        let get = |k: &str| {
            fields
                .get(k)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        FirebaseConfig {
            api_key: get("apiKey").unwrap_or_default(),
            project_id: get("projectId"),
            auth_domain: get("authDomain"),
            database_url: get("databaseURL"),
            app_id: get("appId"),
        }
        .validated()
    }

    /// Checks fields that were given one by one.
    pub fn validated(self) -> Result<FirebaseConfig, ConfigError> {
        if self.api_key.is_empty() {
            return Err(ConfigError::NoApiKey);
        }
        match &self.database_url {
            None => Err(ConfigError::NoDatabaseUrl),
            Some(u) if !(u.starts_with("https://") || u.starts_with("http://")) => {
                Err(ConfigError::BadDatabaseUrl(u.clone()))
            }
            Some(_) => Ok(self),
        }
    }

    /// The database URL (validated configs always have one).
    pub fn database_url(&self) -> &str {
        self.database_url.as_deref().unwrap_or_default()
    }
}

/// Whether Firebase (Google) hosts the database at `url`, rather than a huddle-db.
pub fn is_firebase_hosted(url: &str) -> bool {
    let Ok(u) = reqwest::Url::parse(url) else {
        return false;
    };
    u.host_str().is_some_and(|h| {
        let h = h.to_ascii_lowercase();
        h.ends_with(".firebaseio.com") || h.ends_with(".firebasedatabase.app")
    })
}

/// Where Identity Toolkit and Secure Token are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthHost {
    /// Google's servers (real Firebase).
    Google,
    /// An emulator or huddle-db: `origin` is `http(s)://host:port`, and the APIs live below it
    /// at `/identitytoolkit.googleapis.com/v1/...` and `/securetoken.googleapis.com/v1/...`.
    Emulator { origin: String },
}

impl AuthHost {
    /// Reads `FIREBASE_AUTH_EMULATOR_HOST` (`host:port`, as the SDKs read it).
    pub fn from_env() -> Option<AuthHost> {
        std::env::var("FIREBASE_AUTH_EMULATOR_HOST")
            .ok()
            .filter(|h| !h.trim().is_empty())
            .map(|h| AuthHost::emulator(&h))
    }

    /// An emulator host: `host:port` (plain HTTP, as the SDKs assume) or a full origin such as
    /// huddle-db's `https://192.168.1.5:8443`.
    pub fn emulator(host: &str) -> AuthHost {
        let host = host.trim().trim_end_matches('/');
        let origin = if host.starts_with("http://") || host.starts_with("https://") {
            host.to_owned()
        } else {
            format!("http://{host}")
        };
        AuthHost::Emulator { origin }
    }

    /// Where a client of the database at `db_url` signs in, as Huddle pairs them:
    /// - a database Firebase hosts (`*.firebaseio.com`, `*.firebasedatabase.app`) signs in with
    ///   Google, or with the emulator `FIREBASE_AUTH_EMULATOR_HOST` names, as the SDKs do;
    /// - any other database is a huddle-db, which serves the same endpoints on its own origin
    ///   and only trusts tokens it issued itself, so its origin is the host.
    pub fn for_database(db_url: &str) -> AuthHost {
        if is_firebase_hosted(db_url) {
            AuthHost::from_env().unwrap_or(AuthHost::Google)
        } else {
            AuthHost::same_origin(db_url)
        }
    }

    /// The origin (`scheme://host:port`) of `url`, as the sign-in host.
    pub fn same_origin(url: &str) -> AuthHost {
        let origin = match reqwest::Url::parse(url) {
            Ok(u) => u.origin().ascii_serialization(),
            Err(_) => url.trim_end_matches('/').to_owned(),
        };
        AuthHost::Emulator { origin }
    }

    /// `…/identitytoolkit.googleapis.com/v1`
    pub fn identity_toolkit(&self) -> String {
        self.api("identitytoolkit.googleapis.com")
    }

    /// `…/securetoken.googleapis.com/v1`
    pub fn secure_token(&self) -> String {
        self.api("securetoken.googleapis.com")
    }

    /// The host named in messages.
    pub fn name(&self) -> String {
        match self {
            AuthHost::Google => "Google's sign-in servers".to_owned(),
            AuthHost::Emulator { origin } => origin.clone(),
        }
    }

    fn api(&self, service: &str) -> String {
        match self {
            AuthHost::Google => format!("https://{service}/v1"),
            AuthHost::Emulator { origin } => format!("{origin}/{service}/v1"),
        }
    }
}

/// The first `{ ... }` object literal of `text` as key -> string value. Values that are not
/// strings (numbers, identifiers) are kept as written; nested objects are skipped.
fn parse_object(text: &str) -> Result<BTreeMap<String, String>, ConfigError> {
    let mut lx = Lexer {
        chars: text.chars().collect(),
        pos: 0,
        line: 1,
    };
    // Skip to the first `{` that is not inside a comment or a string (an `import` line's
    // `{ initializeApp }` has no `:` and is skipped below).
    loop {
        match lx.token()? {
            None => return Err(ConfigError::NoObject),
            Some(Tok::Punct('{')) => {
                if let Some(map) = lx.object_body()? {
                    return Ok(map);
                }
            }
            Some(_) => {}
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Str(String),
    Word(String),
    Punct(char),
}

struct Lexer {
    chars: Vec<char>,
    pos: usize,
    line: usize,
}

impl Lexer {
    fn err(&self, problem: impl Into<String>) -> ConfigError {
        ConfigError::Syntax {
            line: self.line,
            problem: problem.into(),
        }
    }

    fn peek(&self, ahead: usize) -> Option<char> {
        self.chars.get(self.pos + ahead).copied()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek(0)?;
        self.pos += 1;
        if c == '\n' {
            self.line += 1;
        }
        Some(c)
    }

    fn token(&mut self) -> Result<Option<Tok>, ConfigError> {
        loop {
            let Some(c) = self.peek(0) else {
                return Ok(None);
            };
            match c {
                c if c.is_whitespace() => {
                    self.bump();
                }
                '/' if self.peek(1) == Some('/') => {
                    while let Some(c) = self.bump() {
                        if c == '\n' {
                            break;
                        }
                    }
                }
                '/' if self.peek(1) == Some('*') => {
                    self.bump();
                    self.bump();
                    loop {
                        match self.bump() {
                            None => return Err(self.err("a /* comment is not closed")),
                            Some('*') if self.peek(0) == Some('/') => {
                                self.bump();
                                break;
                            }
                            Some(_) => {}
                        }
                    }
                }
                '"' | '\'' | '`' => return self.string(c).map(|s| Some(Tok::Str(s))),
                c if c.is_alphanumeric() || c == '_' || c == '$' || c == '.' || c == '-' => {
                    let mut w = String::new();
                    while let Some(c) = self.peek(0) {
                        if c.is_alphanumeric() || "_$.-+".contains(c) {
                            w.push(c);
                            self.bump();
                        } else {
                            break;
                        }
                    }
                    return Ok(Some(Tok::Word(w)));
                }
                c => {
                    self.bump();
                    return Ok(Some(Tok::Punct(c)));
                }
            }
        }
    }

    fn string(&mut self, quote: char) -> Result<String, ConfigError> {
        let start = self.line;
        self.bump();
        let mut s = String::new();
        loop {
            match self.bump() {
                None => {
                    return Err(ConfigError::Syntax {
                        line: start,
                        problem: format!("a string opened with {quote} is not closed"),
                    })
                }
                Some(c) if c == quote => return Ok(s),
                Some('\n') if quote != '`' => {
                    return Err(ConfigError::Syntax {
                        line: start,
                        problem: format!("a string opened with {quote} is not closed on its line"),
                    })
                }
                Some('\\') => match self.bump() {
                    Some('n') => s.push('\n'),
                    Some('t') => s.push('\t'),
                    Some(c) => s.push(c),
                    None => return Err(self.err("a string ends in a backslash")),
                },
                Some(c) => s.push(c),
            }
        }
    }

    /// After `{`: `key: value, ...}`. `None` when this is not a key-value object (an import's
    /// `{ initializeApp }`), so that the search goes on.
    fn object_body(&mut self) -> Result<Option<BTreeMap<String, String>>, ConfigError> {
        let mut map = BTreeMap::new();
        loop {
            let key = match self.token()? {
                Some(Tok::Punct('}')) => return Ok(Some(map)),
                Some(Tok::Str(k)) | Some(Tok::Word(k)) => k,
                Some(Tok::Punct(',')) => continue,
                Some(other) => return Err(self.err(format!("expected a key, found {other:?}"))),
                None => return Err(self.err("the { ... } block is not closed")),
            };
            match self.token()? {
                Some(Tok::Punct(':')) => {}
                // `{ initializeApp }` or `{ a, b }`: an import list, not the config.
                Some(Tok::Punct(',')) | Some(Tok::Punct('}')) if map.is_empty() => return Ok(None),
                _ => return Err(self.err(format!("expected `:` after {key:?}"))),
            }
            let value = match self.token()? {
                Some(Tok::Str(v)) | Some(Tok::Word(v)) => v,
                Some(Tok::Punct('{')) => {
                    self.object_body()?;
                    String::new()
                }
                other => {
                    return Err(self.err(format!("expected a value for {key:?}, found {other:?}")))
                }
            };
            map.insert(key, value);
            match self.token()? {
                Some(Tok::Punct(',')) => {}
                Some(Tok::Punct('}')) => return Ok(Some(map)),
                _ => return Err(self.err("expected `,` or `}` after a value")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// What the console shows under "SDK setup and configuration > npm", pasted whole.
    const CONSOLE_NPM: &str = r#"// Import the functions you need from the SDKs you need
import { initializeApp } from "firebase/app";
import { getAnalytics } from "firebase/analytics";
// TODO: Add SDKs for Firebase products that you want to use
// https://firebase.google.com/docs/web/setup#available-libraries

// Your web app's Firebase configuration
// For Firebase JS SDK v7.20.0 and later, measurementId is optional
const firebaseConfig = {
  apiKey: "AIzaSyD-EXAMPLE-0123456789abcdefghijk",
  authDomain: "huddle-test-1a2b3.firebaseapp.com",
  databaseURL: "https://huddle-test-1a2b3-default-rtdb.europe-west1.firebasedatabase.app",
  projectId: "huddle-test-1a2b3",
  storageBucket: "huddle-test-1a2b3.firebasestorage.app",
  messagingSenderId: "123456789012",
  appId: "1:123456789012:web:0a1b2c3d4e5f6a7b8c9d0e",
  measurementId: "G-ABCDEF1234"
};

// Initialize Firebase
const app = initializeApp(firebaseConfig);
const analytics = getAnalytics(app);
"#;

    #[test]
    fn the_console_snippet_pasted_whole() {
        let c = FirebaseConfig::parse(CONSOLE_NPM).unwrap();
        assert_eq!(c.api_key, "AIzaSyD-EXAMPLE-0123456789abcdefghijk");
        assert_eq!(c.project_id.as_deref(), Some("huddle-test-1a2b3"));
        assert_eq!(
            c.database_url(),
            "https://huddle-test-1a2b3-default-rtdb.europe-west1.firebasedatabase.app"
        );
        assert_eq!(
            c.app_id.as_deref(),
            Some("1:123456789012:web:0a1b2c3d4e5f6a7b8c9d0e")
        );
    }

    #[test]
    fn single_quotes_trailing_commas_comments_and_cdn_form() {
        let text = "firebase.initializeApp({\n  apiKey: 'AIza-x', /* key */\n  'databaseURL': 'https://x.firebaseio.com', // the db\n  projectId: `x`,\n});";
        let c = FirebaseConfig::parse(text).unwrap();
        assert_eq!(c.api_key, "AIza-x");
        assert_eq!(c.database_url(), "https://x.firebaseio.com");
        assert_eq!(c.project_id.as_deref(), Some("x"));
    }

    #[test]
    fn json_as_well() {
        let c = FirebaseConfig::parse(
            r#"{"apiKey":"k","databaseURL":"https://x-default-rtdb.firebaseio.com","projectId":"x"}"#,
        )
        .unwrap();
        assert_eq!(c.api_key, "k");
        assert_eq!(c.database_url(), "https://x-default-rtdb.firebaseio.com");
    }

    #[test]
    fn a_project_without_a_database_says_to_create_it() {
        let text = "const firebaseConfig = {\n  apiKey: \"AIza\",\n  authDomain: \"x.firebaseapp.com\",\n  projectId: \"x\",\n  appId: \"1:2:web:3\"\n};";
        let e = FirebaseConfig::parse(text).unwrap_err();
        assert_eq!(e, ConfigError::NoDatabaseUrl);
        assert!(e.to_string().contains("create the Realtime Database first"));
    }

    #[test]
    fn what_cannot_be_read_says_where() {
        assert_eq!(
            FirebaseConfig::parse("apiKey = AIza"),
            Err(ConfigError::NoObject)
        );
        let e = FirebaseConfig::parse("const c = {\n  apiKey: \"AIza,\n};").unwrap_err();
        assert!(matches!(e, ConfigError::Syntax { line: 2, .. }), "{e:?}");
        assert_eq!(
            FirebaseConfig::parse("{ databaseURL: 'https://x.firebaseio.com' }"),
            Err(ConfigError::NoApiKey)
        );
    }

    #[test]
    fn fields_one_by_one() {
        let c = FirebaseConfig {
            api_key: "k".into(),
            database_url: Some("https://x.firebaseio.com".into()),
            ..Default::default()
        };
        assert!(c.validated().is_ok());
    }

    #[test]
    fn emulator_hosts_as_the_sdks_take_them() {
        let h = AuthHost::emulator("127.0.0.1:9099");
        assert_eq!(
            h.identity_toolkit(),
            "http://127.0.0.1:9099/identitytoolkit.googleapis.com/v1"
        );
        assert_eq!(
            h.secure_token(),
            "http://127.0.0.1:9099/securetoken.googleapis.com/v1"
        );
        let db = AuthHost::emulator("https://192.168.1.5:8443/");
        assert_eq!(
            db.secure_token(),
            "https://192.168.1.5:8443/securetoken.googleapis.com/v1"
        );
        assert_eq!(
            AuthHost::Google.identity_toolkit(),
            "https://identitytoolkit.googleapis.com/v1"
        );
    }

    #[test]
    fn a_firebase_database_signs_in_with_google_and_a_huddle_db_with_itself() {
        // Only when no emulator is named in the environment (the SDKs' switch).
        if std::env::var_os("FIREBASE_AUTH_EMULATOR_HOST").is_none() {
            for url in [
                "https://demo-huddle-default-rtdb.firebaseio.com",
                "https://x-default-rtdb.europe-west1.firebasedatabase.app/",
            ] {
                assert_eq!(AuthHost::for_database(url), AuthHost::Google, "{url}");
            }
        }
        assert_eq!(
            AuthHost::for_database("http://127.0.0.1:9000/"),
            AuthHost::Emulator {
                origin: "http://127.0.0.1:9000".into()
            }
        );
        assert_eq!(
            AuthHost::for_database("https://192.168.1.5:8443/some/path"),
            AuthHost::Emulator {
                origin: "https://192.168.1.5:8443".into()
            }
        );
        assert!(!is_firebase_hosted("http://firebaseio.com.evil.example"));
    }
}
