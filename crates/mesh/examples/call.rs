//! Two members in one call, in one process: the engine's whole API in a page.
//!
//! `cargo run -p mesh --example call` starts a huddle-db on loopback, creates a room, joins
//! "ann" and "bob" with synthetic camera and microphone, prints what bob's engine reports,
//! turns ann's camera off and on, and leaves.

use std::sync::Arc;
use std::time::Duration;

use media::synthetic::SyntheticSources;
use media::MediaKind;
use media::StreamConfig;
use mesh::{Mesh, MeshConfig, MeshEvent, NetConfig};
use signal::room::{JoinOptions, Privacy, Signaling};
use signal::rtdb::{ClientConfig, RtdbClient};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // A real database (in-memory data in a temporary folder, the shipped rules).
    let dir = tempfile::tempdir()?;
    let mut db = rtdb::ServerConfig::new(([127, 0, 0, 1], 0).into(), dir.path().to_owned());
    db.rules_file = Some(concat!(env!("CARGO_MANIFEST_DIR"), "/../../database.rules.json").into());
    // The rules judge every request by its signed-in uid (= peer id). Here the admin secret
    // acts as each participant (`auth_variable_override`); a real client signs in instead.
    const SECRET: &str = "example-secret";
    db.secret = Some(SECRET.into());
    let server = rtdb::Server::start(db).await?;
    let signaling = |id: &str| -> anyhow::Result<Signaling> {
        Ok(Signaling::new(
            RtdbClient::new(ClientConfig::new(server.url()).with_secret_acting_as(SECRET, id))?,
            id.to_owned(),
        ))
    };
    let room = signaling("ann-0000001")?
        .create_room("example", Privacy::Public)
        .await?;

    // Joining returns the call and the stream of what happens in it.
    let join = |id: &'static str, name: &'static str| {
        let sig = signaling(id);
        let room = room.clone();
        async move {
            let options = JoinOptions {
                streams: StreamConfig {
                    video: true,
                    audio: true,
                    ..Default::default()
                },
                ..JoinOptions::new(name)
            };
            let config = MeshConfig {
                net: NetConfig {
                    loopback_only: true,
                    ..NetConfig::default()
                },
                ..MeshConfig::default()
            };
            let sources = Arc::new(SyntheticSources::new(320, 240, 15));
            anyhow::Ok(Mesh::join(&sig?, &room, options, config, sources).await?)
        }
    };
    let (ann, _ann_events) = join("ann-0000001", "ann").await?;
    let (bob, mut bob_events) = join("bob-0000002", "bob").await?;

    // Bob sees ann arrive, connect, and her tracks start; then her camera goes off and on.
    let mut toggled = false;
    let until = tokio::time::Instant::now() + Duration::from_secs(8);
    while let Ok(Some(ev)) = tokio::time::timeout_at(until, bob_events.recv()).await {
        if !matches!(ev, MeshEvent::Stats { .. }) {
            println!("bob: {}", serde_json::to_string(&ev)?);
        }
        if matches!(ev, MeshEvent::FirstFrame { .. }) && !toggled {
            toggled = true;
            ann.set_stream(MediaKind::Video, false).await?;
            tokio::time::sleep(Duration::from_secs(1)).await;
            ann.set_stream(MediaKind::Video, true).await?;
        }
    }
    ann.leave().await;
    bob.leave().await;
    Ok(())
}
