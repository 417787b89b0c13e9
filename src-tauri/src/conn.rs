//! The connection to the signaling database: the embedded huddle-db (on loopback by default, on
//! every interface when hosting for the LAN) or a remote one, the signed-in user that talks to
//! it, and the live room list read from it.
//!
//! Every connection signs in, as Meet or the Firebase SDKs would: anonymously, at the database's
//! own origin for a huddle-db, at Google (or `FIREBASE_AUTH_EMULATOR_HOST`) for a
//! Firebase-hosted database. The uid is the peer id (docs/protocol.md §1). The credential is kept
//! in the data folder, one file per sign-in host and API key, so a restart is the same user.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use signal::auth::{AuthEvent, AuthSettings, Credential, FirebaseAuth};
use signal::room::Signaling;
use signal::rtdb::{ClientConfig, RtdbClient};
use signal::PeerId;

use crate::error::UserError;
use crate::events::UiEvent;
use crate::links::Reach;
use crate::rooms::RoomsFeed;
use crate::settings::{Database, Settings};

/// The API key the app presents to a huddle-db (which accepts any unless told otherwise).
pub const HUDDLE_DB_API_KEY: &str = "huddle-app";

/// The rules the embedded server enforces: the repository's, built into the binary.
const SHIPPED_RULES: &str = include_str!("../../database.rules.json");

/// An open connection; dropping it without [`Conn::close`] leaves the embedded server to stop
/// with the process.
pub struct Conn {
    pub signaling: Signaling,
    /// The URL the app talks to.
    pub url: String,
    /// The URL others on the LAN use, when hosting.
    pub lan_url: Option<String>,
    /// Who can use an invitation to this database.
    pub reach: Reach,
    /// `None` once the list ended for good (it is not read again until a reconnect).
    pub rooms: Option<RoomsFeed>,
    server: Option<rtdb::Server>,
}

/// What to sign in with for one database.
pub struct SignIn<'a> {
    /// An admin database secret: no sign-in at all.
    pub secret: Option<&'a str>,
    /// The API key for a Firebase-hosted database (from the pasted web config).
    pub firebase_api_key: Option<&'a str>,
    /// Where credentials are kept.
    pub data_dir: &'a Path,
    /// The API key presented to a huddle-db.
    pub huddle_api_key: &'a str,
    /// The name the credential is kept under instead of the sign-in host: the embedded
    /// server's loopback port changes every run, its users stay.
    pub account: Option<&'a str>,
}

impl Conn {
    /// Connects to the database the settings name, starting the embedded one when it is ours.
    pub async fn open(settings: &Settings, data_dir: &Path) -> Result<Conn, UserError> {
        Conn::open_with(settings, data_dir, &EmbeddedOptions::default()).await
    }

    /// [`Conn::open`] with server options the tests change.
    pub async fn open_with(
        settings: &Settings,
        data_dir: &Path,
        options: &EmbeddedOptions,
    ) -> Result<Conn, UserError> {
        let (server, url, lan_url, secret) = match &settings.database {
            Database::Embedded => {
                let s = start_embedded(data_dir, None, None, options).await?;
                let url = s.url();
                (Some(s), url, None, None)
            }
            Database::Host { port, secret } => {
                let s = start_embedded(data_dir, Some(*port), secret.clone(), options).await?;
                let url = format!("http://127.0.0.1:{port}");
                let lan = match options.host_on_loopback {
                    true => Some(url.clone()),
                    false => lan_url(*port),
                };
                (Some(s), url, lan, secret.clone())
            }
            Database::Remote { url, auth, .. } => (None, url.clone(), None, auth.clone()),
        };
        let reach = match (&settings.database, &lan_url) {
            (Database::Remote { url, .. }, _) => crate::links::reach(url),
            (_, Some(_)) => Reach::Lan,
            (_, None) => Reach::ThisComputer,
        };
        let api_key = settings.firebase_api_key();
        let signaling = signaling_at(
            &url,
            &SignIn {
                secret: secret.as_deref(),
                firebase_api_key: api_key.as_deref(),
                data_dir,
                huddle_api_key: &options.client_api_key,
                account: server.as_ref().map(|_| "embedded"),
            },
        )
        .await?;
        // One read up front, so an unreachable database or a wrong secret is reported now.
        signaling.list_rooms().await.map_err(|e| {
            let e = UserError::from(e);
            UserError::new(
                format!("cannot reach the database at {url}: {}", e.message),
                e.hint.as_deref(),
            )
        })?;
        let rooms = Some(RoomsFeed::follow(&signaling, signaling.peer_id().clone()));
        Ok(Conn {
            signaling,
            url,
            lan_url,
            reach,
            rooms,
            server,
        })
    }

    /// My peer id on this connection: the signed-in uid.
    pub fn peer_id(&self) -> &PeerId {
        self.signaling.peer_id()
    }
    /// The `database` event that says this connection is up.
    pub fn connected_event(&self) -> UiEvent {
        UiEvent::Database {
            connected: true,
            url: self.url.clone(),
            lan_url: self.lan_url.clone(),
            message: None,
        }
    }

    /// The built-in server's port, when it is ours.
    pub fn port(&self) -> Option<u16> {
        self.server.as_ref().map(|s| s.addr().port())
    }

    /// The database URL others use to reach my rooms (the LAN address when hosting).
    pub fn shared_url(&self) -> &str {
        self.lan_url.as_deref().unwrap_or(&self.url)
    }

    pub async fn close(self) {
        if let Some(s) = self.server {
            s.shutdown().await;
        }
    }
}

/// Server settings of the embedded database that tests change (the app uses the defaults).
#[derive(Clone, Debug)]
pub struct EmbeddedOptions {
    /// Lifetime of the ID tokens it issues (huddle-db's default: one hour, as Firebase).
    pub token_lifetime: Option<std::time::Duration>,
    /// The only API key it accepts (any when `None`).
    pub server_api_key: Option<String>,
    /// The API key the app presents to a huddle-db.
    pub client_api_key: String,
    /// Hosting listens on loopback and gives its loopback URL as the LAN one (tests: no port
    /// opens on the machine's own interfaces).
    pub host_on_loopback: bool,
}

impl Default for EmbeddedOptions {
    fn default() -> Self {
        EmbeddedOptions {
            token_lifetime: None,
            server_api_key: None,
            client_api_key: HUDDLE_DB_API_KEY.to_owned(),
            host_on_loopback: false,
        }
    }
}

/// A client for the database at `url` (an invitation may name another database than mine),
/// signed in unless an admin secret is given.
pub async fn signaling_at(url: &str, how: &SignIn<'_>) -> Result<Signaling, UserError> {
    let cfg = ClientConfig::new(url.to_owned());
    let bad_url = |e: &dyn std::fmt::Display| {
        UserError::new(format!("cannot use the database at {url}: {e}"), None)
    };
    if let Some(secret) = how.secret.filter(|a| !a.is_empty()) {
        // A database secret is an admin credential: the rules (and so `auth.uid`) do not apply
        // to it, and there is nobody to sign in as, so the peer id is made up here. This is for
        // an operator's own setup (a trusted LAN host, a bot); signed-in users are the default.
        let client =
            RtdbClient::new(cfg.with_secret(secret.to_owned())).map_err(|e| bad_url(&e))?;
        return Ok(Signaling::new(client, signal::new_peer_id()));
    }
    let api_key = if signal::auth::is_firebase_hosted(url) {
        how.firebase_api_key
            .filter(|k| !k.is_empty())
            .ok_or_else(|| {
                UserError::new(
                    format!("cannot sign in to {url}: no Firebase web config"),
                    Some(
                        "Paste the web app config from the Firebase console (Project settings > \
                     General > Your apps) in Settings → Database.",
                    ),
                )
            })?
    } else {
        how.huddle_api_key
    };
    let settings = AuthSettings::for_database(url, api_key);
    let host = how
        .account
        .map(str::to_owned)
        .unwrap_or_else(|| settings.host.name());
    let file = credential_file(how.data_dir, &host, api_key);
    let auth = FirebaseAuth::new(settings.with_saved(load_credential(&file)))
        .map_err(|e| sign_in_error(url, &e))?;
    keep_credential(&auth, file);
    log_auth_events(&auth);
    auth.sign_in().await.map_err(|e| sign_in_error(url, &e))?;
    // One FirebaseAuth per connection: every stream and request of this Signaling shares it,
    // so a token is refreshed once however many streams need it.
    Signaling::sign_in(cfg, auth).await.map_err(UserError::from)
}

fn sign_in_error(url: &str, e: &signal::auth::AuthError) -> UserError {
    if let signal::auth::AuthError::Unreachable { detail, .. } = e {
        // The socket's words (os error 111...) go to the log; the user gets what they mean.
        tracing::warn!(%url, %detail, "database unreachable");
        return unreachable(url);
    }
    UserError::new(
        format!("cannot sign in to the database at {url}"),
        Some(&e.to_string()),
    )
}

/// A database that does not answer, in words: what it means for a link, and what to try.
pub fn unreachable(url: &str) -> UserError {
    let hint = match crate::links::reach(url) {
        crate::links::Reach::ThisComputer => {
            "It is on this computer and not running: start the Huddle (or huddle-db) that hosts \
             it, or ask whoever sent the link for one that works on your network."
        }
        crate::links::Reach::Lan => {
            "The computer hosting it may be off, Huddle there closed or not hosting for the \
             network, or you are not on the same network. Ask whoever sent the link."
        }
        crate::links::Reach::Anywhere => "Check that you are online, then try again.",
    };
    UserError::new(
        format!("the database at {url} cannot be reached"),
        Some(hint),
    )
}

/// `data/credentials/<host>-<api key>.json`: one user per sign-in host and project.
fn credential_file(data_dir: &Path, host: &str, api_key: &str) -> PathBuf {
    let name: String = format!("{host}-{api_key}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    data_dir.join("credentials").join(format!("{name}.json"))
}

fn load_credential(file: &Path) -> Option<Credential> {
    let text = std::fs::read_to_string(file).ok()?;
    match serde_json::from_str(&text) {
        Ok(c) => Some(c),
        Err(e) => {
            tracing::warn!(file = %file.display(), error = %e, "saved sign-in is damaged; signing up as a new user");
            None
        }
    }
}

/// Writes the credential whenever it changes (first sign-up, a new user, a new refresh token),
/// until the connection's FirebaseAuth is gone.
fn keep_credential(auth: &Arc<FirebaseAuth>, file: PathBuf) {
    let mut rx = auth.credential();
    tokio::spawn(async move {
        while rx.changed().await.is_ok() {
            let cred = rx.borrow_and_update().clone();
            if let Some(c) = cred {
                if let Err(e) = save_credential(&file, &c) {
                    tracing::warn!(file = %file.display(), error = %e, "cannot save the sign-in; the next run will be another user");
                }
            }
        }
    });
}

/// Atomically, readable by the user only: the refresh token is a password.
fn save_credential(file: &Path, c: &Credential) -> std::io::Result<()> {
    use std::io::Write;
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = file.with_extension("json.tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(&tmp)?;
    f.write_all(&serde_json::to_vec(c).map_err(std::io::Error::other)?)?;
    f.sync_all()?;
    std::fs::rename(&tmp, file)
}

fn log_auth_events(auth: &Arc<FirebaseAuth>) {
    let mut rx = auth.events();
    tokio::spawn(async move {
        loop {
            match rx.recv().await {
                Ok(AuthEvent::SignedUp { uid }) => {
                    tracing::info!(%uid, "signed up as a new anonymous user")
                }
                Ok(AuthEvent::Replaced {
                    old_uid,
                    new_uid,
                    reason,
                }) => tracing::warn!(
                    %old_uid, %new_uid, %reason,
                    "the saved sign-in was refused; signed up again as a new user (rooms made by the old one are no longer mine)"
                ),
                Ok(_) => {}
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            }
        }
    });
}

/// Starts huddle-db with its data in `data_dir`, enforcing the shipped rules: on an ephemeral
/// loopback port, or on `port` of every interface (hosting) with an optional database secret.
async fn start_embedded(
    data_dir: &Path,
    port: Option<u16>,
    secret: Option<String>,
    options: &EmbeddedOptions,
) -> Result<rtdb::Server, UserError> {
    let rules = data_dir.join("database.rules.json");
    std::fs::create_dir_all(data_dir)
        .and_then(|()| std::fs::write(&rules, SHIPPED_RULES))
        .map_err(|e| {
            UserError::new(
                format!(
                    "cannot write to the data folder {}: {e}",
                    data_dir.display()
                ),
                None,
            )
        })?;
    let config = |listen| {
        let mut config = rtdb::server::ServerConfig::new(listen, data_dir.join("db"));
        config.secret = secret.clone().filter(|s| !s.is_empty());
        config.rules_file = Some(rules.clone());
        if let Some(t) = options.token_lifetime {
            config.token_lifetime = t;
        }
        config.api_key = options.server_api_key.clone();
        config
    };
    let started = match port {
        Some(p) => {
            let ip = match options.host_on_loopback {
                true => Ipv4Addr::LOCALHOST,
                false => Ipv4Addr::UNSPECIFIED,
            };
            rtdb::Server::start(config(SocketAddr::new(IpAddr::V4(ip), p))).await
        }
        None => start_on_remembered_port(data_dir, config).await,
    };
    started.map_err(|e| {
        let hint = match port {
            Some(_) => "Another program may use that port: pick another in Settings → Database.",
            None => {
                "Another Huddle may be running with the same data folder; close it and try again."
            }
        };
        UserError::new(
            format!("cannot start the built-in database: {e}"),
            Some(hint),
        )
    })
}

/// Where the port of the loopback-only database is remembered, so that its address, and the
/// invitations that carry it, stay the same across restarts.
const PORT_FILE: &str = "embedded-port";

/// Starts the loopback-only server on the port it had last time (a free one the first time,
/// or when another program took it meanwhile), and remembers the port.
async fn start_on_remembered_port(
    data_dir: &Path,
    config: impl Fn(SocketAddr) -> rtdb::server::ServerConfig,
) -> Result<rtdb::Server, rtdb::server::StartError> {
    let file = data_dir.join(PORT_FILE);
    let remembered = std::fs::read_to_string(&file)
        .ok()
        .and_then(|s| s.trim().parse::<u16>().ok())
        .filter(|p| *p != 0);
    let at = |p| SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), p);
    let server = match remembered {
        Some(p) => match rtdb::Server::start(config(at(p))).await {
            Err(e @ rtdb::server::StartError::Bind { .. }) => {
                tracing::warn!(port = p, error = %e,
                    "the built-in database's usual port is taken; links made before will not work");
                rtdb::Server::start(config(at(0))).await?
            }
            other => other?,
        },
        None => rtdb::Server::start(config(at(0))).await?,
    };
    let port = server.addr().port();
    if remembered != Some(port) {
        if let Err(e) = std::fs::write(&file, port.to_string()) {
            tracing::warn!(error = %e, "cannot remember the built-in database's port");
        }
    }
    Ok(server)
}

/// The URL others on the LAN use to reach a database hosted on `port`: this machine's first
/// private IPv4 address.
pub fn lan_url(port: u16) -> Option<String> {
    let addrs = if_addrs::get_if_addrs().ok()?;
    let ip = addrs
        .iter()
        .filter(|i| !i.is_loopback())
        .map(|i| i.ip())
        .find(|ip| matches!(ip, IpAddr::V4(v4) if v4.is_private()))?;
    Some(format!("http://{ip}:{port}"))
}
