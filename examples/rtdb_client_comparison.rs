//! Measures the decision recorded in docs/decisions.md: the 50 writes of a 6-person join made
//! through `firebase-rs` 2.2.5 and through our `signal::rtdb::RtdbClient`, against huddle-db over
//! HTTPS on loopback (firebase-rs refuses plain http).
//!
//! `cargo run --release --example rtdb_client_comparison`

use std::time::Instant;

use rtdb::server::TlsMode;
use rtdb::{Server, ServerConfig};
use serde_json::json;
use signal::rtdb::{ClientConfig, RtdbClient};

const WRITES: usize = 50;
const ROUNDS: usize = 5;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut config = ServerConfig::new("127.0.0.1:0".parse()?, dir.path().to_owned());
    config.tls = TlsMode::Generated;
    let server = Server::start(config).await?;
    let ca = server
        .ca_file()
        .ok_or_else(|| anyhow::anyhow!("no CA"))?
        .to_owned();
    // firebase-rs builds its own clients; they find our CA through SSL_CERT_FILE.
    std::env::set_var("SSL_CERT_FILE", &ca);
    let url = server.url();

    let ours = RtdbClient::new(ClientConfig::new(url.as_str()).with_ca_pem(std::fs::read(&ca)?))?;
    let theirs = firebase_rs::Firebase::new(&url).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let mut ours_ms = Vec::new();
    let mut theirs_ms = Vec::new();
    for round in 0..ROUNDS {
        let start = Instant::now();
        for i in 0..WRITES {
            let mut at = theirs.at("cmp").at(&format!("r{round}"));
            at.set_with_key(&format!("k{i}"), &json!({"n": i}))
                .await
                .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        }
        theirs_ms.push(start.elapsed().as_secs_f64() * 1e3);
        let start = Instant::now();
        for i in 0..WRITES {
            ours.set(&format!("cmp/o{round}/k{i}"), &json!({"n": i}))
                .await?;
        }
        ours_ms.push(start.elapsed().as_secs_f64() * 1e3);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    println!(
        "{WRITES} sequential writes over HTTPS, median of {ROUNDS} rounds: firebase-rs {:.1} ms, RtdbClient {:.1} ms",
        median(&mut theirs_ms),
        median(&mut ours_ms)
    );
    server.shutdown().await;
    Ok(())
}
