//! A network outage between two in-process meshes, without a network namespace: both
//! members' connections run on one webrtc-rs runtime ([`mesh::NetConfig::runtime`]) whose UDP
//! sockets live on an in-memory network (webrtc-rs's `MockUDPNetwork`) behind a switch. Turning
//! the switch off drops every datagram at once, exactly and for both directions; signaling
//! (huddle-db over TCP) stays up, as when only the media path breaks (a NAT binding lost, a
//! changed route). The namespace test in `crates/peer/tests/outage.rs` remains the end-to-end
//! proof with signaling lost too.
//!
//! Timers stay on tokio's wall clock: the engine's own tasks (encoders, playout, repair) run
//! on tokio, and webrtc-rs's virtual clock would stop ICE while they go on. What this test
//! makes deterministic is the network, not time.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use std::future::Future;
use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use common::{is_departure, is_ice_restart, is_link, is_member_joined, sending, Member};
use media::MediaKind::Video;
use mesh::negotiation::Link;
use webrtc::runtime::mock::{MockUDPNetwork, MockUdpSocket};
use webrtc::runtime::{
    AsyncInterval, AsyncTcpListener, AsyncTcpStream, AsyncUdpSocket, JoinHandle, RecvMeta, Runtime,
    TokioRuntime, Transmit,
};

/// Tokio for tasks and time, the in-memory network for UDP, and a switch on that network.
#[derive(Debug)]
struct SwitchedNetwork {
    tokio: TokioRuntime,
    memory: Arc<MockUDPNetwork>,
    down: Arc<AtomicBool>,
}

impl SwitchedNetwork {
    fn new() -> Arc<Self> {
        Arc::new(SwitchedNetwork {
            tokio: TokioRuntime,
            memory: Arc::new(MockUDPNetwork::new()),
            down: Arc::new(AtomicBool::new(false)),
        })
    }

    fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }
}

/// A socket of the in-memory network that sends nothing while the network is down.
#[derive(Debug)]
struct SwitchedSocket {
    inner: Arc<MockUdpSocket>,
    down: Arc<AtomicBool>,
    /// The real socket the driver bound, kept open so the OS cannot hand its port to a later
    /// socket whose in-memory address would then collide with this one.
    _port: std::net::UdpSocket,
}

impl AsyncUdpSocket for SwitchedSocket {
    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    fn poll_send(&self, cx: &mut Context<'_>, transmit: &Transmit<'_>) -> Poll<io::Result<usize>> {
        if self.down.load(Ordering::SeqCst) {
            // Lost on the way, as UDP is: the sender cannot tell.
            return Poll::Ready(Ok(transmit.contents.len()));
        }
        self.inner.poll_send(cx, transmit)
    }

    fn poll_recv(
        &self,
        cx: &mut Context<'_>,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        self.inner.poll_recv(cx, bufs, meta)
    }
}

type Boxed<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

impl Runtime for SwitchedNetwork {
    fn spawn(&self, future: Pin<Box<dyn Future<Output = ()> + Send>>) -> Box<dyn JoinHandle> {
        self.tokio.spawn(future)
    }

    fn spawn_reactor(
        &self,
        pool_size: usize,
        future: Pin<Box<dyn Future<Output = ()> + Send>>,
    ) -> Box<dyn JoinHandle> {
        self.tokio.spawn_reactor(pool_size, future)
    }

    fn wrap_udp_socket(&self, socket: std::net::UdpSocket) -> io::Result<Arc<dyn AsyncUdpSocket>> {
        let inner = self.memory.bind(socket.local_addr()?)?;
        Ok(Arc::new(SwitchedSocket {
            inner,
            down: self.down.clone(),
            _port: socket,
        }))
    }

    fn wrap_tcp_listener(
        &self,
        listener: std::net::TcpListener,
    ) -> io::Result<Arc<dyn AsyncTcpListener>> {
        self.tokio.wrap_tcp_listener(listener)
    }

    fn connect_tcp<'a>(
        &'a self,
        remote_addr: SocketAddr,
    ) -> Boxed<'a, io::Result<Arc<dyn AsyncTcpStream>>> {
        self.tokio.connect_tcp(remote_addr)
    }

    fn resolve_host<'a>(&'a self, host: &'a str) -> Boxed<'a, io::Result<Vec<SocketAddr>>> {
        self.tokio.resolve_host(host)
    }

    fn now(&self) -> Instant {
        self.tokio.now()
    }

    fn sleep(&self, duration: Duration) -> Boxed<'static, ()> {
        self.tokio.sleep(duration)
    }

    fn interval(&self, period: Duration) -> Box<dyn AsyncInterval> {
        self.tokio.interval(period)
    }

    fn block_on(&self, future: Pin<Box<dyn Future<Output = ()> + '_>>) {
        self.tokio.block_on(future)
    }

    fn yield_now(&self) -> Boxed<'static, ()> {
        self.tokio.yield_now()
    }

    fn name(&self) -> &'static str {
        "switched in-memory network"
    }
}

/// The path between a and b breaks mid-call: both see their connection lost and the video
/// stop; a (the smaller id, which repairs) restarts ICE; once the path is back the call
/// carries intact video again, without anyone leaving or rejoining.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_path_is_repaired_by_an_ice_restart_without_a_rejoin() {
    let (_dir, server) = common::server().await;
    let url = server.url();
    let room = common::room(&url, "outage").await;
    let network = SwitchedNetwork::new();
    let on_network = |config: &mut mesh::MeshConfig| {
        config.net.runtime = Some(network.clone() as Arc<dyn Runtime>);
    };
    let mut a = Member::join_with(&url, &room, "a", sending(&[Video]), on_network).await;
    let mut b = Member::join_with(&url, &room, "b", sending(&[Video]), on_network).await;
    for (m, other) in [(&mut a, "b"), (&mut b, "a")] {
        m.frames_beyond(other, Video, 10).await;
    }

    let marks = [a.mark(), b.mark()];
    network.set_down(true);
    for (m, mark, other) in [(&mut a, marks[0], "b"), (&mut b, marks[1], "a")] {
        m.wait_from(mark, &format!("the link to {other} lost"), |ev| {
            is_link(ev, other, Link::Disconnected) || is_link(ev, other, Link::Failed)
        })
        .await;
        m.stats_from(mark, other, &format!("{other}'s video stopped"), |s| {
            s.fps == 0.0
        })
        .await;
    }
    // a repairs while the path is still down: its restart offer goes over the signaling,
    // which is up, and b answers it.
    a.wait_from(marks[0], "an ICE restart towards b", |ev| {
        is_ice_restart(ev, "b")
    })
    .await;

    let back = [a.mark(), b.mark()];
    let frames = [a.frames("b", Video), b.frames("a", Video)];
    network.set_down(false);
    for (i, (m, other)) in [(&mut a, "b"), (&mut b, "a")].into_iter().enumerate() {
        m.wait_from(back[i], &format!("the link to {other} back"), |ev| {
            is_link(ev, other, Link::Connected)
        })
        .await;
        m.frames_beyond(other, Video, frames[i] + 15).await;
        m.stats_from(back[i], other, &format!("intact video from {other}"), |s| {
            s.intact_fps >= 10.0
        })
        .await;
    }
    for (m, other) in [(&a, "b"), (&b, "a")] {
        let comings_and_goings = m
            .seen
            .iter()
            .filter(|ev| is_member_joined(ev, other) || is_departure(ev, other))
            .count();
        assert_eq!(comings_and_goings, 1, "{}: only the first join", m.name);
    }
}
