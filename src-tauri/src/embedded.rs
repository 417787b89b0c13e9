//! The embedded huddle-db: on loopback by default, on every interface when hosting for the LAN.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;

use crate::core::UserError;

/// Starts huddle-db with its data in `data_dir`: on an ephemeral loopback port, or on `port`
/// of every interface (hosting) with an optional database secret.
pub async fn start(
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
            Some(_) => {
                Some("Another program may use that port: pick another in Settings → Database.")
            }
            None => Some(
                "Another Huddle may be running with the same data folder; close it and try again.",
            ),
        };
        UserError {
            message: format!("cannot start the built-in database: {e}"),
            hint: hint.map(str::to_owned),
        }
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
