//! Bounds on connections, so that no client can hold the server's sockets: how many one address
//! and all addresses together may have open, and how long a request may take to arrive.
//!
//! The counts are kept by an acceptor that wraps every accepted socket in [`Counted`], whose drop
//! gives the slot back, so a connection is counted for exactly as long as its socket lives
//! (streams and WebSockets included). Over a bound the socket is closed at once: a client then
//! sees a refused connection rather than one that hangs, and the server logs it (once a minute
//! per bound, with how many were refused).
//!
//! When all the slots are taken, a new connection may take the place of one that has not sent
//! a whole request yet (its headers; over TLS, after the handshake), which is closed: many addresses sending requests that never end
//! (slowloris) would otherwise keep every new client out until the request timeout, and again
//! as soon as they reconnect. The one displaced is the oldest such ("unanswered") connection of the
//! address that has the most of them, and only if that is at least two more than the newcomer's
//! address has: so a client with none gets in, while an attacker reconnecting is refused rather
//! than displacing another of the attackers' sockets (which would turn the bound into a
//! connection flood, each reconnect closing one more). A connection that has sent a request (a
//! stream, a WebSocket, an idle keep-alive) is never displaced; one address is held to its own
//! bound either way. Many addresses with one unanswered connection each look like new clients
//! and are not told apart: that is a flood for a firewall, not for this bound.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::{ready, Future};
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum_server::accept::Accept;
use futures_util::future::Either;
use futures_util::task::AtomicWaker;
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
    /// Connections not yet answered, per address, oldest (lowest number) first: who is displaced
    /// when all the slots are taken.
    unanswered: HashMap<IpAddr, BTreeMap<u64, Arc<Conn>>>,
    /// The addresses in `unanswered` by how many they have, to find the one with the most.
    by_unanswered: BTreeSet<(usize, IpAddr)>,
    next: u64,
    refused: Refusals,
}

/// Refusals and displacements since the last log line, so a flood makes one line a minute,
/// not one per socket.
#[derive(Default)]
struct Refusals {
    per_address: u64,
    total: u64,
    displaced: u64,
    logged: Option<Instant>,
}

impl Refusals {
    /// The counts since the last line, if a minute has passed since it (then they start again).
    fn due(&mut self) -> Option<Refusals> {
        let now = Instant::now();
        if self
            .logged
            .is_some_and(|t| now - t < Duration::from_secs(60))
        {
            return None;
        }
        Some(std::mem::replace(
            self,
            Refusals {
                logged: Some(now),
                ..Refusals::default()
            },
        ))
    }
}

/// One admitted connection, shared by its socket's slot and its service (which sees requests).
struct Conn {
    ip: IpAddr,
    number: u64,
    /// Set once a whole request has arrived.
    requested: AtomicBool,
    /// Set under the state's lock, so the slot's drop knows it was already given back. The
    /// socket's next read or write then fails.
    displaced: AtomicBool,
    waker: AtomicWaker,
}

impl Counts {
    fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Slot, io::Error> {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let mine = s.by_address.get(&ip).copied().unwrap_or(0);
        if s.total >= self.limits.total && mine < self.limits.per_address {
            s.displace_for(ip);
        }
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
            if let Some(counts) = s.refused.due() {
                tracing::warn!(
                    %ip,
                    refused_over_total = counts.total,
                    refused_over_per_address = counts.per_address,
                    displaced = counts.displaced,
                    total = self.limits.total,
                    per_address = self.limits.per_address,
                    "refusing connections: {why}"
                );
            }
            return Err(io::Error::new(io::ErrorKind::ConnectionRefused, why));
        }
        let due = if s.refused.displaced > 0 {
            s.refused.due()
        } else {
            None
        };
        if let Some(counts) = due {
            tracing::warn!(
                displaced = counts.displaced,
                total = self.limits.total,
                "every connection is taken: displacing the oldest of those that have not sent \
                 a whole request, to let new clients in"
            );
        }
        s.total += 1;
        *s.by_address.entry(ip).or_default() += 1;
        let conn = Arc::new(Conn {
            ip,
            number: s.next,
            requested: AtomicBool::new(false),
            displaced: AtomicBool::new(false),
            waker: AtomicWaker::new(),
        });
        s.next += 1;
        s.add_unanswered(conn.clone());
        Ok(Slot {
            counts: self.clone(),
            conn,
        })
    }

    /// A whole request has arrived on `conn`: it is no longer one that may be displaced.
    fn requested(&self, conn: &Conn) {
        if !conn.requested.swap(true, Ordering::AcqRel) {
            let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
            s.remove_unanswered(conn.ip, Some(conn.number));
        }
    }
}

impl State {
    fn release(&mut self, ip: IpAddr) {
        self.total = self.total.saturating_sub(1);
        if let Some(n) = self.by_address.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                self.by_address.remove(&ip);
            }
        }
    }

    fn unanswered_of(&self, ip: IpAddr) -> usize {
        self.unanswered.get(&ip).map_or(0, BTreeMap::len)
    }

    fn add_unanswered(&mut self, conn: Arc<Conn>) {
        let ip = conn.ip;
        let n = self.unanswered_of(ip);
        self.by_unanswered.remove(&(n, ip));
        self.by_unanswered.insert((n + 1, ip));
        self.unanswered
            .entry(ip)
            .or_default()
            .insert(conn.number, conn);
    }

    /// Takes connection `number` of `ip` (`None`: its oldest) out of `unanswered`.
    fn remove_unanswered(&mut self, ip: IpAddr, number: Option<u64>) -> Option<Arc<Conn>> {
        let mine = self.unanswered.get_mut(&ip)?;
        let n = mine.len();
        let removed = match number {
            Some(number) => mine.remove(&number),
            None => mine.pop_first().map(|(_, d)| d),
        }?;
        self.by_unanswered.remove(&(n, ip));
        if n > 1 {
            self.by_unanswered.insert((n - 1, ip));
        } else {
            self.unanswered.remove(&ip);
        }
        Some(removed)
    }

    /// Makes room for a newcomer from `ip`: closes the oldest unanswered connection of the
    /// address with the most, if it has at least two more than `ip`, giving its slot back at
    /// once (its socket closes when its task next runs).
    fn displace_for(&mut self, ip: IpAddr) {
        let Some(&(most, victim)) = self.by_unanswered.last() else {
            return;
        };
        if most < self.unanswered_of(ip) + 2 {
            return;
        }
        let Some(oldest) = self.remove_unanswered(victim, None) else {
            return;
        };
        oldest.displaced.store(true, Ordering::Release);
        oldest.waker.wake();
        self.release(oldest.ip);
        self.refused.displaced += 1;
    }
}

/// One admitted connection's place in the counts; given back on drop.
struct Slot {
    counts: Arc<Counts>,
    conn: Arc<Conn>,
}

impl Slot {
    /// Fails once the connection has been displaced; registers the task to be woken for it.
    fn check(&self, cx: &Context<'_>) -> io::Result<()> {
        self.conn.waker.register(cx.waker());
        if self.conn.displaced.load(Ordering::Acquire) {
            return Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "every connection is taken and this one had not sent a whole request",
            ));
        }
        Ok(())
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut s = self.counts.state.lock().unwrap_or_else(|e| e.into_inner());
        if self.conn.displaced.load(Ordering::Acquire) {
            return; // given back when it was displaced
        }
        // (Gone already if a request came; a no-op then.)
        s.remove_unanswered(self.conn.ip, Some(self.conn.number));
        s.release(self.conn.ip);
    }
}

/// An accepted socket that holds its slot.
pub struct Counted {
    stream: TcpStream,
    slot: Slot,
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if let Err(e) = self.slot.check(cx) {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if let Err(e) = self.slot.check(cx) {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if let Err(e) = self.slot.check(cx) {
            return Poll::Ready(Err(e));
        }
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

/// A connection's service: tells the counts when a whole request has arrived.
#[derive(Clone)]
pub struct MarkRequests<S> {
    inner: S,
    counts: Arc<Counts>,
    conn: Arc<Conn>,
}

impl<S, R> tower_service::Service<R> for MarkRequests<S>
where
    S: tower_service::Service<R>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: R) -> Self::Future {
        self.counts.requested(&self.conn);
        self.inner.call(request)
    }
}

impl<A, S> Accept<TcpStream, S> for LimitAcceptor<A>
where
    A: Accept<Counted, MarkRequests<S>>,
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
            Ok(slot) => {
                let service = MarkRequests {
                    inner: service,
                    counts: self.counts.clone(),
                    conn: slot.conn.clone(),
                };
                Either::Right(self.inner.accept(Counted { stream, slot }, service))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(per_address: usize, total: usize) -> Arc<Counts> {
        Arc::new(Counts {
            limits: Limits {
                per_address,
                total,
                ..Limits::default()
            },
            state: Mutex::default(),
        })
    }

    fn answered(slot: Slot) -> Slot {
        slot.counts.requested(&slot.conn);
        slot
    }

    #[test]
    fn slots_are_counted_per_address_and_in_all_and_given_back() {
        let counts = counts(2, 3);
        let (a, b, c) = (
            "10.0.0.1".parse().unwrap(),
            "10.0.0.2".parse().unwrap(),
            "10.0.0.3".parse().unwrap(),
        );
        let a1 = answered(counts.admit(a).unwrap());
        let _a2 = answered(counts.admit(a).unwrap());
        let err = counts.admit(a).err().unwrap();
        assert!(err.to_string().contains("one address"), "{err}");
        let _b1 = answered(counts.admit(b).unwrap());
        let err = counts.admit(c).err().unwrap();
        assert!(
            err.to_string().contains("as many connections as it allows"),
            "{err}"
        );
        drop(a1);
        let _c1 = answered(counts.admit(c).unwrap());
        assert!(counts.admit(a).is_err(), "the total is full again");
        let s = counts.state.lock().unwrap();
        assert_eq!((s.total, s.by_address.len()), (3, 3));
        assert!(s.unanswered.is_empty() && s.by_unanswered.is_empty());
    }

    fn displaced(slot: &Slot) -> bool {
        slot.conn.displaced.load(Ordering::Acquire)
    }

    #[test]
    fn when_full_a_newcomer_displaces_the_oldest_unanswered_of_the_address_with_most() {
        let counts = counts(10, 4);
        let [a, b, c, d]: [IpAddr; 4] =
            ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"].map(|ip| ip.parse().unwrap());
        let a1 = counts.admit(a).unwrap();
        let a2 = counts.admit(a).unwrap();
        let a3 = counts.admit(a).unwrap();
        let b1 = counts.admit(b).unwrap();
        // Full: c (none unanswered) takes the place of a's oldest.
        let c1 = counts.admit(c).unwrap();
        assert!(displaced(&a1) && !displaced(&a2) && !displaced(&a3) && !displaced(&b1));
        assert_eq!(counts.state.lock().unwrap().total, 4);
        // a's socket fails its next read, and its drop gives back nothing more.
        let waker = futures_util::task::noop_waker();
        assert!(a1.check(&Context::from_waker(&waker)).is_err());
        assert!(a2.check(&Context::from_waker(&waker)).is_ok());
        drop(a1);
        assert_eq!(counts.state.lock().unwrap().total, 4);
        // a reconnecting (2 unanswered, the most is its own 2) is refused, not let in by
        // displacing another: no chain of reconnects.
        let err = counts.admit(a).err().unwrap();
        assert!(err.to_string().contains("as many connections"), "{err}");
        // An answered connection is never displaced: once a's are answered, the most
        // unanswered is 1 (b, c), too few to displace for d.
        let _a2 = answered(a2);
        let _a3 = answered(a3);
        assert!(counts.admit(d).is_err());
        assert!(!displaced(&b1) && !displaced(&c1));
        // Slots given back as usual.
        drop((b1, c1));
        let s = counts.state.lock().unwrap();
        assert_eq!(
            (s.total, s.unanswered.len(), s.by_unanswered.len()),
            (2, 0, 0)
        );
    }
}
