//! The connection to the signaling database: the embedded huddle-db (on loopback by default, on
//! every interface when hosting for the LAN) or a remote one, the client that talks to it, and
//! the live room list read from it.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;

use signal::room::Signaling;
use signal::rtdb::{ClientConfig, RtdbClient};

use crate::error::UserError;
use crate::events::UiEvent;
use crate::rooms::RoomsFeed;
use crate::settings::{Database, Settings};

/// An open connection; dropping it without [`Conn::close`] leaves the embedded server to stop
/// with the process.
pub struct Conn {
    pub signaling: Signaling,
    /// The URL the app talks to.
    pub url: String,
    /// The URL others on the LAN use, when hosting.
    pub lan_url: Option<String>,
    /// `None` once the list ended for good (it is not read again until a reconnect).
    pub rooms: Option<RoomsFeed>,
    server: Option<rtdb::Server>,
}

impl Conn {
    /// Connects to the database the settings name, starting the embedded one when it is ours.
    pub async fn open(settings: &Settings, data_dir: &Path) -> Result<Conn, UserError> {
        let (server, url, lan_url, auth) = match &settings.database {
            Database::Embedded => {
                let s = start_embedded(data_dir, None, None).await?;
                let url = s.url();
                (Some(s), url, None, None)
            }
            Database::Host { port, secret } => {
                let s = start_embedded(data_dir, Some(*port), secret.clone()).await?;
                let url = format!("http://127.0.0.1:{port}");
                (Some(s), url, lan_url(*port), secret.clone())
            }
            Database::Remote { url, auth } => (None, url.clone(), None, auth.clone()),
        };
        let signaling = signaling_at(&url, auth.as_deref(), &settings.peer_id)?;
        // One read up front, so an unreachable database or a wrong secret is reported now.
        signaling.list_rooms().await.map_err(|e| {
            let e = UserError::from(e);
            UserError::new(
                format!("cannot reach the database at {url}: {}", e.message),
                e.hint.as_deref(),
            )
        })?;
        let rooms = Some(RoomsFeed::follow(&signaling, settings.peer_id.clone()));
        Ok(Conn {
            signaling,
            url,
            lan_url,
            rooms,
            server,
        })
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

/// A client for the database at `url` (an invitation may name another database than mine).
pub fn signaling_at(
    url: &str,
    secret: Option<&str>,
    peer_id: &str,
) -> Result<Signaling, UserError> {
    let mut cfg = ClientConfig::new(url.to_owned());
    if let Some(a) = secret.filter(|a| !a.is_empty()) {
        cfg = cfg.with_secret(a.to_owned());
    }
    let client = RtdbClient::new(cfg)
        .map_err(|e| UserError::new(format!("cannot use the database at {url}: {e}"), None))?;
    Ok(Signaling::new(client, peer_id.to_owned()))
}

/// Starts huddle-db with its data in `data_dir`: on an ephemeral loopback port, or on `port`
/// of every interface (hosting) with an optional database secret.
async fn start_embedded(
    data_dir: &Path,
    port: Option<u16>,
    secret: Option<String>,
) -> Result<rtdb::Server, UserError> {
    let listen = match port {
        None => SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
        Some(p) => SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), p),
    };
    let mut config = rtdb::server::ServerConfig::new(listen, data_dir.join("db"));
    config.secret = secret.filter(|s| !s.is_empty());
    rtdb::Server::start(config).await.map_err(|e| {
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
