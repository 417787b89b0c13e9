//! Joins (or creates) a room and prints what happens in it, one line per event.
//!
//! ```sh
//! make run                                   # huddle-db on http://127.0.0.1:9000, in another terminal
//! cargo run -p signal --example join -- --create "Standup" --name Alice
//! cargo run -p signal --example join -- --room <ROOM_ID> --name Bob
//! ```
//! Ctrl-C leaves the room cleanly.

use anyhow::Context;
use clap::Parser;
use signal::room::{JoinOptions, Privacy, RoomEvent, Signaling};
use signal::rtdb::{ClientConfig, RtdbClient};

/// Join a Huddle room from the terminal and print its events.
#[derive(Parser, Debug)]
struct Args {
    /// Database URL (huddle-db or https://<db>.firebaseio.com).
    #[arg(long, default_value = "http://127.0.0.1:9000")]
    db: String,
    /// Database secret or token, if the database needs one.
    #[arg(long)]
    auth: Option<String>,
    /// Room to join.
    #[arg(long, conflicts_with = "create")]
    room: Option<String>,
    /// Create a room with this name and join it.
    #[arg(long)]
    create: Option<String>,
    /// Room secret (private rooms).
    #[arg(long)]
    secret: Option<String>,
    #[arg(long, default_value = "terminal")]
    name: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt().with_env_filter("warn").init();
    let args = Args::parse();
    let mut config = ClientConfig::new(args.db);
    if let Some(auth) = args.auth {
        config = config.with_secret(auth);
    }
    let peer_id = signal::new_peer_id();
    let signaling = Signaling::new(RtdbClient::new(config)?, peer_id.clone());
    let room = match (args.room, args.create) {
        (Some(room), _) => signal::RoomId::new(room),
        (None, Some(name)) => {
            let privacy = args
                .secret
                .clone()
                .map_or(Privacy::Public, Privacy::Private);
            let id = signaling
                .create_room(&name, privacy)
                .await
                .context("creating the room")?;
            println!("created room {id}");
            id
        }
        (None, None) => anyhow::bail!("pass --room ID or --create NAME"),
    };
    let options = JoinOptions {
        secret: args.secret,
        ..JoinOptions::new(args.name)
    };
    let (handle, mut events) = signaling
        .join(&room, options)
        .await
        .context("joining the room")?;
    println!("joined {room} as {peer_id}");
    loop {
        tokio::select! {
            ev = events.recv() => match ev {
                Some(RoomEvent::RoomClosed) | None => { println!("the room ended"); return Ok(()); }
                Some(ev) => println!("{ev:?}"),
            },
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    handle.leave().await.context("leaving")?;
    println!("left");
    Ok(())
}
