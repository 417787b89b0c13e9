//! Whether each configured TURN server answers and takes our credentials: one Allocate (then
//! released) with webrtc-rs's own TURN client, driven here over a UDP socket of its own.
//!
//! Why a check of our own: webrtc-rs 0.21's ICE agent only logs a refused or unanswered
//! allocation (its `icecandidateerror` event is never raised), so a user behind a NAT that
//! needs the relay would see "connecting" for ever with no reason given. The check runs when a
//! call starts and says, in words, which server failed and how.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use rtc::sansio::Protocol;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};
use rtc::turn::client::{Client, ClientConfig, Event};

use crate::pc::IceServer;

/// How long one server has to answer (its client retransmits meanwhile).
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// What is wrong with one TURN server, as a user is told.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TurnProblem {
    /// The URL is not one this client can use.
    #[error("{url}: {reason}")]
    Unusable { url: String, reason: String },
    /// Its name did not resolve, or no socket could be opened towards it.
    #[error("the TURN server {url} cannot be reached: {reason}")]
    Unreachable { url: String, reason: String },
    /// It answered, and refused the user name or password.
    #[error("the TURN server {url} refused the user name or password ({reason})")]
    WrongCredentials { url: String, reason: String },
    /// It answered, and refused the allocation for another reason.
    #[error("the TURN server {url} refused to relay: {reason}")]
    Refused { url: String, reason: String },
    /// It did not answer.
    #[error("the TURN server {url} did not answer within {secs} s (address, port or firewall?)")]
    NoAnswer { url: String, secs: u64 },
}

impl TurnProblem {
    /// The server's URL, as configured.
    pub fn url(&self) -> &str {
        match self {
            TurnProblem::Unusable { url, .. }
            | TurnProblem::Unreachable { url, .. }
            | TurnProblem::WrongCredentials { url, .. }
            | TurnProblem::Refused { url, .. }
            | TurnProblem::NoAnswer { url, .. } => url,
        }
    }
}

/// `host:port` of a `turn:` URL over UDP; None for what is not a `turn:` URL (STUN servers are
/// not checked). webrtc-rs 0.21 relays over UDP only, so `turns:` and `?transport=tcp` cannot
/// be used at all: that is a problem to report, not to skip.
fn turn_host_port(url: &str) -> Option<Result<String, String>> {
    if url.starts_with("turns:") {
        return Some(Err(
            "TURN over TLS (turns:) is not supported yet; use turn: over UDP".into(),
        ));
    }
    let rest = url.strip_prefix("turn:")?;
    let (host_port, query) = rest.split_once('?').unwrap_or((rest, ""));
    if query
        .split('&')
        .any(|kv| kv.eq_ignore_ascii_case("transport=tcp"))
    {
        return Some(Err(
            "TURN over TCP is not supported yet; use transport=udp".into()
        ));
    }
    if host_port.is_empty() {
        return Some(Err("no host in the address".into()));
    }
    // An IPv6 literal is bracketed; a port after the host (or after `]`) is explicit.
    let has_port = match host_port.rfind(']') {
        Some(end) => host_port[end..].contains(':'),
        None => host_port.contains(':'),
    };
    Some(Ok(if has_port {
        host_port.to_owned()
    } else {
        format!("{host_port}:3478")
    }))
}

/// Checks every `turn:` URL of `servers`; the problems found (empty when all are fine).
pub async fn check_all(servers: &[IceServer]) -> Vec<TurnProblem> {
    let checks = servers.iter().flat_map(|s| {
        s.urls
            .iter()
            .filter(|u| turn_host_port(u).is_some())
            .map(move |u| check(u, &s.username, &s.credential, CHECK_TIMEOUT))
    });
    futures_util::future::join_all(checks)
        .await
        .into_iter()
        .filter_map(Result::err)
        .collect()
}

/// Allocates a relay on the TURN server at `url` with the long-term credential, and releases
/// it; the relayed address it got.
pub async fn check(
    url: &str,
    username: &str,
    password: &str,
    within: Duration,
) -> Result<SocketAddr, TurnProblem> {
    let unusable = |reason: String| TurnProblem::Unusable {
        url: url.to_owned(),
        reason,
    };
    let unreachable = |reason: String| TurnProblem::Unreachable {
        url: url.to_owned(),
        reason,
    };
    let host_port = match turn_host_port(url) {
        Some(Ok(hp)) => hp,
        Some(Err(reason)) => return Err(unusable(reason)),
        None => return Err(unusable("not a turn: address".into())),
    };
    if username.is_empty() {
        return Err(unusable(
            "no user name: a TURN server needs a user name and password".into(),
        ));
    }
    let server = tokio::net::lookup_host(&host_port)
        .await
        .map_err(|e| unreachable(e.to_string()))?
        .next()
        .ok_or_else(|| unreachable(format!("{host_port} has no address")))?;
    let bind: SocketAddr = if server.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = tokio::net::UdpSocket::bind(bind)
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    let local = socket
        .local_addr()
        .map_err(|e| unreachable(e.to_string()))?;
    let crypto = rtc::crypto::default_provider().map_err(|e| unusable(e.to_string()))?;
    let mut client = Client::new(
        ClientConfig {
            turn_serv_addr: server.to_string(),
            local_addr: local,
            transport_protocol: TransportProtocol::UDP,
            username: username.to_owned(),
            password: password.to_owned(),
            software: "huddle".to_owned(),
            ..ClientConfig::default()
        },
        Arc::clone(&crypto),
    )
    .map_err(|e| unusable(e.to_string()))?;
    let allocate = client
        .allocate(Instant::now())
        .map_err(|e| unusable(e.to_string()))?;
    let deadline = tokio::time::Instant::now() + within;
    let mut buf = vec![0u8; 1500];
    loop {
        flush(&mut client, &socket).await;
        while let Some(event) = client.poll_event() {
            match event {
                Event::AllocateResponse(tid, relayed) if tid == allocate => {
                    // Give it back at once: this was only a check.
                    if let Ok(mut relay) = client.relay(relayed) {
                        let _ = relay.close(Instant::now());
                    }
                    flush(&mut client, &socket).await;
                    return Ok(relayed);
                }
                Event::AllocateError(tid, e) if tid == allocate => {
                    let reason = e.to_string();
                    return Err(
                        if reason.contains("401") || reason.contains("Unauthorized") {
                            TurnProblem::WrongCredentials {
                                url: url.to_owned(),
                                reason,
                            }
                        } else {
                            TurnProblem::Refused {
                                url: url.to_owned(),
                                reason,
                            }
                        },
                    );
                }
                Event::TransactionTimeout(tid) if tid == allocate => {
                    return Err(no_answer(url, within));
                }
                _ => {}
            }
        }
        let wake = client
            .poll_timeout()
            .map(tokio::time::Instant::from_std)
            .map_or(deadline, |t| t.min(deadline));
        tokio::select! {
            got = socket.recv_from(&mut buf) => {
                let Ok((n, from)) = got else { continue };
                let msg = TaggedBytesMut {
                    now: Instant::now(),
                    transport: TransportContext {
                        local_addr: local,
                        peer_addr: from,
                        transport_protocol: TransportProtocol::UDP,
                        ecn: None,
                    },
                    message: BytesMut::from(&buf[..n]),
                };
                // Whatever is not a TURN answer (a stray packet) is ignored.
                let _ = client.handle_read(msg);
            }
            () = tokio::time::sleep_until(wake) => {
                if tokio::time::Instant::now() >= deadline {
                    return Err(no_answer(url, within));
                }
                let _ = client.handle_timeout(Instant::now());
            }
        }
    }
}

fn no_answer(url: &str, within: Duration) -> TurnProblem {
    TurnProblem::NoAnswer {
        url: url.to_owned(),
        secs: within.as_secs().max(1),
    }
}

/// Sends what the client has queued.
async fn flush(client: &mut Client, socket: &tokio::net::UdpSocket) {
    while let Some(out) = client.poll_write() {
        let _ = socket.send_to(&out.message, out.transport.peer_addr).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn turn_urls_are_read_as_udp_host_and_port() {
        assert_eq!(
            turn_host_port("turn:198.18.0.1:3478"),
            Some(Ok("198.18.0.1:3478".into()))
        );
        assert_eq!(
            turn_host_port("turn:relay.example.org?transport=udp"),
            Some(Ok("relay.example.org:3478".into()))
        );
        assert_eq!(
            turn_host_port("turn:[2001:db8::1]"),
            Some(Ok("[2001:db8::1]:3478".into()))
        );
        assert_eq!(
            turn_host_port("turn:[2001:db8::1]:5000"),
            Some(Ok("[2001:db8::1]:5000".into()))
        );
        assert!(matches!(turn_host_port("turns:relay:5349"), Some(Err(_))));
        assert!(matches!(
            turn_host_port("turn:relay:3478?transport=tcp"),
            Some(Err(_))
        ));
        assert_eq!(turn_host_port("stun:stun.example.org:3478"), None);
    }

    /// Nothing listens there: the check says the server did not answer, naming it.
    #[tokio::test]
    async fn a_server_that_does_not_answer_is_named() {
        // A socket bound and never read: the port exists, nobody answers.
        let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let url = format!("turn:{}", silent.local_addr().unwrap());
        let problem = check(&url, "u", "p", Duration::from_millis(600))
            .await
            .unwrap_err();
        assert!(matches!(problem, TurnProblem::NoAnswer { .. }), "{problem}");
        assert!(problem.to_string().contains(&url), "{problem}");
    }
}
