//! Bounds on connections, so that no client can hold the server's sockets: how many one address
//! and all addresses together may have open, and how long a request may take to arrive.
//!
//! The counts are kept by an acceptor that wraps every accepted socket in [`Counted`], whose drop
//! gives the slot back, so a connection is counted for exactly as long as its socket lives
//! (streams and WebSockets included). Over a bound the socket is closed at once: a client then
//! sees a refused connection rather than one that hangs, and the server logs it (once a minute
//! per bound, with how many were refused).

use std::collections::HashMap;
use std::future::{ready, Future};
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum_server::accept::Accept;
use futures_util::future::Either;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// The bounds (see [`crate::server::ServerConfig::limits`]).
#[derive(Clone, Debug)]
pub struct Limits {
    /// Connections open at once from one IP address.
    pub per_address: usize,
    /// Connections open at once in all.
    pub total: usize,
    /// Time a client has to send a request's headers, from the connection's start or from the
    /// end of its previous request.
    pub header_timeout: Duration,
    /// Longest pause while a request's body is arriving.
    pub body_idle_timeout: Duration,
}

impl Default for Limits {
    /// 256 per address (a call needs a handful; a NAT'd office of 50 still fits), 16,384 in all
    /// (under the 20,000 open files the server asks for), 30 s for headers (hyper's default; it
    /// also closes a keep-alive connection idle that long, which clients must expect), 30 s of
    /// silence in a body.
    fn default() -> Self {
        Limits {
            per_address: 256,
            total: 16_384,
            header_timeout: Duration::from_secs(30),
            body_idle_timeout: Duration::from_secs(30),
        }
    }
}

/// Who holds how many connections.
struct Counts {
    limits: Limits,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    total: usize,
    by_address: HashMap<IpAddr, usize>,
    refused: Refusals,
}

/// Refusals since the last log line, so a flood makes one line a minute, not one per socket.
#[derive(Default)]
struct Refusals {
    per_address: u64,
    total: u64,
    logged: Option<Instant>,
}

impl Counts {
    fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Slot, io::Error> {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let mine = s.by_address.get(&ip).copied().unwrap_or(0);
        let why = if s.total >= self.limits.total {
            s.refused.total += 1;
            Some("the server has as many connections as it allows")
        } else if mine >= self.limits.per_address {
            s.refused.per_address += 1;
            Some("this address has as many connections as one address may have")
        } else {
            None
        };
        if let Some(why) = why {
            let now = Instant::now();
            if s.refused
                .logged
                .is_none_or(|t| now - t >= Duration::from_secs(60))
            {
                tracing::warn!(
                    %ip,
                    refused_over_total = s.refused.total,
                    refused_over_per_address = s.refused.per_address,
                    total = self.limits.total,
                    per_address = self.limits.per_address,
                    "refusing connections: {why}"
                );
                s.refused = Refusals {
                    logged: Some(now),
                    ..Refusals::default()
                };
            }
            return Err(io::Error::new(io::ErrorKind::ConnectionRefused, why));
        }
        s.total += 1;
        *s.by_address.entry(ip).or_default() += 1;
        Ok(Slot {
            counts: self.clone(),
            ip,
        })
    }
}

/// One admitted connection's place in the counts; given back on drop.
struct Slot {
    counts: Arc<Counts>,
    ip: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut s = self.counts.state.lock().unwrap_or_else(|e| e.into_inner());
        s.total = s.total.saturating_sub(1);
        if let Some(n) = s.by_address.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                s.by_address.remove(&self.ip);
            }
        }
    }
}

/// An accepted socket that holds its slot.
pub struct Counted {
    stream: TcpStream,
    _slot: Slot,
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// Counts connections, refuses those over the bounds, and hands the rest to `inner` (plain,
/// or TLS).
#[derive(Clone)]
pub struct LimitAcceptor<A> {
    inner: A,
    counts: Arc<Counts>,
}

impl<A> LimitAcceptor<A> {
    /// Wraps `inner` with `limits`.
    pub fn new(inner: A, limits: Limits) -> Self {
        LimitAcceptor {
            inner,
            counts: Arc::new(Counts {
                limits,
                state: Mutex::default(),
            }),
        }
    }
}

type Refused<T> = std::future::Ready<io::Result<T>>;

impl<A, S> Accept<TcpStream, S> for LimitAcceptor<A>
where
    A: Accept<Counted, S>,
    A::Future: Future<Output = io::Result<(A::Stream, A::Service)>>,
{
    type Stream = A::Stream;
    type Service = A::Service;
    type Future = Either<Refused<(A::Stream, A::Service)>, A::Future>;

    fn accept(&self, stream: TcpStream, service: S) -> Self::Future {
        let slot = stream
            .peer_addr()
            .and_then(|peer| self.counts.admit(peer.ip().to_canonical()));
        match slot {
            // Dropping the socket closes it.
            Err(e) => Either::Left(ready(Err(e))),
            Ok(slot) => Either::Right(self.inner.accept(
                Counted {
                    stream,
                    _slot: slot,
                },
                service,
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_counted_per_address_and_in_all_and_given_back() {
        let counts = Arc::new(Counts {
            limits: Limits {
                per_address: 2,
                total: 3,
                ..Limits::default()
            },
            state: Mutex::default(),
        });
        let (a, b, c) = (
            "10.0.0.1".parse().unwrap(),
            "10.0.0.2".parse().unwrap(),
            "10.0.0.3".parse().unwrap(),
        );
        let a1 = counts.admit(a).unwrap();
        let _a2 = counts.admit(a).unwrap();
        let err = counts.admit(a).err().unwrap();
        assert!(err.to_string().contains("one address"), "{err}");
        let _b1 = counts.admit(b).unwrap();
        let err = counts.admit(c).err().unwrap();
        assert!(
            err.to_string().contains("as many connections as it allows"),
            "{err}"
        );
        drop(a1);
        let _c1 = counts.admit(c).unwrap();
        assert!(counts.admit(a).is_err(), "the total is full again");
        let s = counts.state.lock().unwrap();
        assert_eq!((s.total, s.by_address.len()), (3, 3));
    }
}
