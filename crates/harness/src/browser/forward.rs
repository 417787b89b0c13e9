//! A loopback port here that leads to a port in a [`Lan`]'s namespace: how the tests reach a
//! browser's WebDriver endpoint when the browser runs in the namespace, with no link between the
//! namespaces (each connection is made from inside by [`netns::connect_in`]).

use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::netns::{self, Lan};
use crate::Error;

/// Dropping it stops accepting; connections already made end with their ends.
pub(super) struct Forward {
    port: u16,
    accept: JoinHandle<()>,
}

impl Forward {
    /// Forwards connections to 127.0.0.1:`port` in `lan`'s namespace from the same port here
    /// (free here too, say by [`crate::process::free_port`]): Firefox refuses a WebSocket whose
    /// `Host` names another port.
    pub(super) async fn to(lan: &Lan, port: u16) -> Result<Forward, Error> {
        let listener = TcpListener::bind(("127.0.0.1", port)).await?;
        let here = listener.local_addr()?.port();
        let ns = lan.path();
        let there = SocketAddr::from(([127, 0, 0, 1], port));
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let ns = ns.clone();
                tokio::spawn(async move {
                    // Refused while the browser starts: the caller retries.
                    let made = tokio::task::spawn_blocking(move || netns::connect_in(&ns, there));
                    let Ok(Ok(outbound)) = made.await else {
                        return;
                    };
                    let outbound = outbound
                        .set_nonblocking(true)
                        .and_then(|()| TcpStream::from_std(outbound));
                    if let Ok(mut outbound) = outbound {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        Ok(Forward { port: here, accept })
    }

    /// The port here.
    pub(super) fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for Forward {
    fn drop(&mut self) {
        self.accept.abort();
    }
}
