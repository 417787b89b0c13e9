//! `huddle-db`: run the Firebase-RTDB-compatible server standalone (e.g. to host rooms for a LAN).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use rtdb::limits::Limits;
use rtdb::server::TlsMode;
use rtdb::{DbConfig, Server, ServerConfig};

/// A Firebase Realtime Database compatible server (REST + streaming), durable on disk.
#[derive(Parser, Debug)]
#[command(version, about, long_about = None)]
struct Args {
    /// Address to listen on; port 0 picks a free port. Binding beyond loopback without
    /// --secret exposes all data to the network.
    #[arg(long, default_value = "127.0.0.1:9000")]
    listen: SocketAddr,
    /// Folder for the data (created if missing; locked against a second server).
    #[arg(long, default_value = "huddle-data")]
    data: PathBuf,
    /// Require this secret on every request (`?auth=SECRET` or `Authorization: Bearer SECRET`).
    #[arg(long, env = "HUDDLE_DB_SECRET", hide_env_values = true)]
    secret: Option<String>,
    /// Serve HTTPS with a certificate generated once into DATA/tls (its CA is DATA/tls/ca.pem).
    #[arg(long)]
    tls: bool,
    /// Serve HTTPS with this PEM certificate chain instead (needs --tls-key).
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// Private key (PEM) for --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Security rules to enforce (Firebase's `{"rules": {...}}` format, `.read`/`.write`); kept in
    /// the data folder, replaceable with `PUT /.settings/rules.json` by the admin.
    #[arg(long)]
    rules: Option<PathBuf>,
    /// Seconds between keep-alive events on streams.
    #[arg(long, default_value_t = 30)]
    keepalive_secs: u64,
    /// Seconds the ID tokens of the sign-in endpoints stay valid (Firebase's: 3600). Streams
    /// opened with a token end with `auth_revoked` when it expires.
    #[arg(long, default_value_t = 3600)]
    token_lifetime: u64,
    /// Require this API key (`?key=`) on the sign-in endpoints; without it any non-empty key
    /// is accepted, as the Auth emulator does.
    #[arg(long)]
    api_key: Option<String>,
    /// Log size in MiB that triggers a snapshot and log compaction.
    #[arg(long, default_value_t = 64)]
    compact_mib: u64,
    /// Connections one IP address may have open at once; more are refused (and logged).
    #[arg(long, default_value_t = Limits::default().per_address)]
    max_connections_per_address: usize,
    /// Connections open at once in all; more are refused (and logged).
    #[arg(long, default_value_t = Limits::default().total)]
    max_connections: usize,
    /// Seconds a client has to send a request's headers, and the longest pause in a body.
    #[arg(long, default_value_t = 30)]
    request_timeout_secs: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let tls = match (args.tls_cert, args.tls_key) {
        (Some(cert), Some(key)) => TlsMode::Files { cert, key },
        _ if args.tls => TlsMode::Generated,
        _ => TlsMode::Off,
    };
    let config = ServerConfig {
        tls,
        secret: args.secret,
        rules_file: args.rules,
        keepalive: Duration::from_secs(args.keepalive_secs.max(1)),
        token_lifetime: Duration::from_secs(args.token_lifetime.max(1)),
        api_key: args.api_key,
        db: DbConfig {
            compact_after_bytes: args.compact_mib.max(1) << 20,
            ..DbConfig::default()
        },
        limits: Limits {
            per_address: args.max_connections_per_address.max(1),
            total: args.max_connections.max(1),
            header_timeout: Duration::from_secs(args.request_timeout_secs.max(1)),
            body_idle_timeout: Duration::from_secs(args.request_timeout_secs.max(1)),
        },
        ..ServerConfig::new(args.listen, args.data.clone())
    };
    let server = Server::start(config)
        .await
        .context("huddle-db could not start")?;
    // Tests and scripts wait for this exact line on stdout.
    println!("listening on {}", server.url());
    if let Some(fp) = server.fingerprint() {
        println!("certificate sha256 fingerprint: {fp}");
    }
    if let Some(ca) = server.ca_file() {
        println!("clients can trust: {}", ca.display());
    }
    shutdown_signal().await;
    tracing::info!("shutting down");
    server.shutdown().await;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
