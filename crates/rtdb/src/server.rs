//! A running huddle-db: the listener, TLS, the database, and an orderly shutdown. Used by the
//! `huddle-db` binary, by the app (in-process) and by tests.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use axum_server::accept::DefaultAcceptor;
use axum_server::tls_rustls::{RustlsAcceptor, RustlsConfig};
use axum_server::Handle;

use crate::access::{Access, AccessError};
use crate::auth::Auth;
use crate::db::{Db, DbConfig};
use crate::http::{router, AppState};
use crate::identity::{IdentityError, IdentityService};
use crate::limits::{LimitAcceptor, Limits};
use crate::tls;

/// How to serve HTTPS.
#[derive(Clone, Debug, Default)]
pub enum TlsMode {
    #[default]
    Off,
    /// A certificate generated once into the data folder.
    Generated,
    /// The user's own PEM files.
    Files { cert: PathBuf, key: PathBuf },
}

/// Everything a server needs to start.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Address to bind (port 0 picks one).
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// When set, every request must carry it.
    pub secret: Option<String>,
    /// HTTPS or not.
    pub tls: TlsMode,
    /// Interval of `keep-alive` events.
    pub keepalive: Duration,
    /// Storage and stream bounds.
    pub db: DbConfig,
    /// A rules file (`{"rules": {...}}`) to enforce; kept in the data folder.
    pub rules_file: Option<PathBuf>,
    /// How long the ID tokens the sign-in endpoints issue stay valid (Firebase: one hour).
    pub token_lifetime: Duration,
    /// When set, the sign-in endpoints require this API key; otherwise any non-empty key.
    pub api_key: Option<String>,
    /// Connections per address and in all, and request timeouts.
    pub limits: Limits,
}

impl ServerConfig {
    /// Defaults: open, plain HTTP, keep-alive every 30 s.
    pub fn new(listen: SocketAddr, data_dir: PathBuf) -> Self {
        ServerConfig {
            listen,
            data_dir,
            secret: None,
            tls: TlsMode::Off,
            keepalive: Duration::from_secs(30),
            db: DbConfig::default(),
            rules_file: None,
            token_lifetime: crate::identity::DEFAULT_TOKEN_LIFETIME,
            api_key: None,
            limits: Limits::default(),
        }
    }
}

/// Errors starting a server.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The data folder could not be opened or recovered.
    #[error("cannot open the data folder: {0}")]
    Data(std::io::Error),
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// What was asked for.
        addr: SocketAddr,
        source: std::io::Error,
    },
    /// TLS could not be set up.
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    /// The rules could not be loaded.
    #[error(transparent)]
    Rules(#[from] AccessError),
    /// The signing key or the accounts in the data folder could not be opened.
    #[error(transparent)]
    Identity(#[from] IdentityError),
}

/// A server that is accepting requests.
pub struct Server {
    addr: SocketAddr,
    https: bool,
    fingerprint: Option<String>,
    ca_file: Option<PathBuf>,
    db: Db,
    handle: Handle<SocketAddr>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Server {
    /// Opens the data, binds, and starts serving in the background.
    pub async fn start(config: ServerConfig) -> Result<Server, StartError> {
        raise_fd_limit();
        let (db, recovery) =
            Db::open(&config.data_dir, config.db.clone()).map_err(StartError::Data)?;
        tracing::info!(
            data = %config.data_dir.display(),
            replayed = recovery.replayed,
            dropped_tail_bytes = recovery.dropped_tail_bytes,
            "data recovered"
        );
        let listener =
            std::net::TcpListener::bind(config.listen).map_err(|source| StartError::Bind {
                addr: config.listen,
                source,
            })?;
        // Accepted sockets inherit TCP_NODELAY on Linux: every SSE event is a small write that
        // must leave at once, not wait behind Nagle's algorithm for the previous one's ACK.
        if let Err(e) = socket2::SockRef::from(&listener).set_tcp_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY");
        }
        // The standard library listens with a queue of 128: a burst of connections (a room
        // joining, or many clients at the connection bound, where each new one displaces a slow
        // one) would overflow it, and a client whose SYN is dropped waits a whole second to
        // retry. Linux takes a second listen() as a new queue length (capped by somaxconn).
        if let Err(e) = socket2::SockRef::from(&listener).listen(4096) {
            tracing::debug!(error = %e, "could not lengthen the listen queue");
        }
        let addr = listener.local_addr().map_err(|source| StartError::Bind {
            addr: config.listen,
            source,
        })?;
        if config.secret.is_none() && !addr.ip().is_loopback() {
            tracing::warn!(
                %addr,
                "THIS SERVER IS OPEN TO THE NETWORK WITHOUT A SECRET: anyone who can reach it can read and \
                 change all data. Pass --secret to require one."
            );
        }
        let identity = std::sync::Arc::new(IdentityService::open(
            &config.data_dir,
            config.token_lifetime,
            config.api_key.clone(),
        )?);
        let access = Access::load(
            Auth::new(config.secret.clone()).with_identity(identity.clone()),
            &config.data_dir,
            config.rules_file.as_deref(),
        )?;
        let state = AppState {
            db: db.clone(),
            access: std::sync::Arc::new(access),
            keepalive: config.keepalive,
            identity,
            body_idle_timeout: config.limits.body_idle_timeout,
        };
        let app = router(state).into_make_service();
        let handle = Handle::new();
        let bind_err = |source| StartError::Bind {
            addr: config.listen,
            source,
        };
        let setup = match &config.tls {
            TlsMode::Off => None,
            TlsMode::Generated => Some(tls::generated(&config.data_dir, addr.ip())?),
            TlsMode::Files { cert, key } => Some(tls::from_files(cert, key)?),
        };
        let (https, fingerprint, ca_file) = match &setup {
            Some(s) => (true, Some(s.fingerprint.clone()), s.ca_file.clone()),
            None => (false, None, None),
        };
        let limits = config.limits.clone();
        let header_timeout = limits.header_timeout;
        tracing::info!(
            per_address = limits.per_address,
            total = limits.total,
            header_timeout_s = header_timeout.as_secs_f64(),
            "connection limits"
        );
        let mut server = axum_server::from_tcp(listener)
            .map_err(bind_err)?
            .handle(handle.clone())
            .first_request_timeout(header_timeout);
        server
            .http_builder()
            .http1()
            .header_read_timeout(header_timeout);
        let task = match setup {
            None => tokio::spawn(
                server
                    .acceptor(LimitAcceptor::new(DefaultAcceptor, limits))
                    .serve(app),
            ),
            Some(setup) => {
                let rustls = RustlsAcceptor::new(RustlsConfig::from_config(setup.config))
                    .handshake_timeout(header_timeout);
                tokio::spawn(
                    server
                        .acceptor(LimitAcceptor::new(rustls, limits))
                        .serve(app),
                )
            }
        };
        Ok(Server {
            addr,
            https,
            fingerprint,
            ca_file,
            db,
            handle,
            task,
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR` or `https://ADDR` (with `localhost` for loopback under TLS, which the
    /// certificate names).
    pub fn url(&self) -> String {
        if self.https && self.addr.ip().is_loopback() {
            format!("https://localhost:{}", self.addr.port())
        } else {
            format!(
                "{}://{}",
                if self.https { "https" } else { "http" },
                self.addr
            )
        }
    }

    /// SHA-256 fingerprint of the certificate, under TLS.
    pub fn fingerprint(&self) -> Option<&str> {
        self.fingerprint.as_deref()
    }

    /// The generated CA certificate clients can trust, under generated TLS.
    pub fn ca_file(&self) -> Option<&std::path::Path> {
        self.ca_file.as_deref()
    }

    /// The database, for in-process use.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Closes every stream, lets in-flight requests finish (up to 5 s) and stops.
    pub async fn shutdown(self) {
        self.db.close_all_streams();
        self.handle.graceful_shutdown(Some(Duration::from_secs(5)));
        match self.task.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "server stopped with an error"),
            Err(e) => tracing::warn!(error = %e, "server task failed"),
        }
        self.db.close().await;
    }
}

/// Thousands of streams need thousands of sockets: lift the soft limit to the hard one.
fn raise_fd_limit() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => tracing::debug!(limit = n, "open-file limit"),
        Err(e) => tracing::warn!(error = %e, "could not raise the open-file limit"),
    }
}
