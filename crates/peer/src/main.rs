//! `huddle-peer`: a Huddle participant in the terminal. Joins a room, sends synthetic (or no)
//! camera, microphone and screen, receives everyone else's, and prints one JSON event per line.
//! Reads line commands on stdin: `video on|off`, `audio on|off`, `screen on|off`, `mute on|off`,
//! `ns on|off` (noise suppression), `leave`. Real devices: see `peer_devices`.

mod peer_devices;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use devices::DeviceChoice;
use media::codec::VideoCodec;
use media::MediaKind;
use mesh::{Mesh, MeshConfig, MeshEvent, NetConfig};
use serde::Serialize;
use signal::auth::{AuthEvent, AuthHost, AuthSettings, Credential, FirebaseAuth, FirebaseConfig};
use signal::room::{JoinOptions, Privacy, SignalError, Signaling, Timing};
use signal::rtdb::{ClientConfig, RtdbClient};
use tokio::io::AsyncBufReadExt;
use tokio::sync::{broadcast, watch};

/// A Huddle participant in the terminal; prints JSON lines.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Database URL (huddle-db or https://<db>.firebaseio.com); --firebase-config gives it too.
    #[arg(long, required_unless_present_any = ["list_devices", "firebase_config"])]
    db: Option<String>,
    /// The Firebase project's web app config, as the console shows it (JavaScript or JSON), in
    /// a file: its apiKey signs in and its databaseURL is the database (unless --db says).
    #[arg(long)]
    firebase_config: Option<std::path::PathBuf>,
    /// The API key to sign in with. A huddle-db accepts any unless it was started with one.
    #[arg(long, default_value = "huddle-peer")]
    api_key: String,
    /// Where to sign in (`host:port` or a URL): by default Google for a Firebase-hosted
    /// database (or FIREBASE_AUTH_EMULATOR_HOST), else the database's own origin (huddle-db).
    #[arg(long)]
    auth_host: Option<String>,
    /// Keep the sign-in credential in this file (read if present, written after sign-in), so
    /// every run is the same user with the same peer id.
    #[arg(long)]
    credential: Option<std::path::PathBuf>,
    /// An admin database secret instead of signing in. The rules still judge every request as
    /// the user --peer-id names (Firebase's auth_variable_override): for bots and tests that
    /// need chosen ids.
    #[arg(long, conflicts_with_all = ["credential", "auth_host"])]
    secret: Option<String>,
    /// Extra CA certificate (PEM) to trust, e.g. a LAN huddle-db's tls/ca.pem.
    #[arg(long)]
    ca: Option<std::path::PathBuf>,
    #[arg(long, required_unless_present = "list_devices")]
    room: Option<String>,
    #[arg(long, default_value = "huddle-peer")]
    name: String,
    /// Create the room (with this id) before joining.
    #[arg(long)]
    create: bool,
    /// The room's secret (a private room).
    #[arg(long)]
    private: Option<String>,
    /// Camera: synthetic, none, camera (the first) or camera:N.
    #[arg(long, default_value = "synthetic", value_parser = peer_devices::parse_video)]
    video: DeviceChoice,
    /// Microphone: synthetic, none, mic (the default) or mic:NAME.
    #[arg(long, default_value = "synthetic", value_parser = peer_devices::parse_audio)]
    audio: DeviceChoice,
    /// Screen share: synthetic, none, display (the first) or display:N.
    #[arg(long, default_value = "none", value_parser = peer_devices::parse_screen)]
    screen: DeviceChoice,
    /// Where the call's audio plays: none, default, or a speaker's id or name.
    #[arg(long, default_value = "none", value_parser = peer_devices::parse_speaker)]
    speaker: DeviceChoice,
    /// Screen-share frame rate of a real display.
    #[arg(long, default_value_t = devices::screen::DEFAULT_FPS)]
    screen_fps: u32,
    /// Turn the microphone's noise suppression off (echo cancellation stays on).
    #[arg(long)]
    no_noise_suppression: bool,
    /// Print the cameras, microphones, speakers and displays (one JSON object) and exit.
    #[arg(long)]
    list_devices: bool,
    /// Print a `frame` event (size, mean Y/U/V) for received video, twice a second per stream.
    #[arg(long)]
    report_frames: bool,
    /// Video size, WIDTHxHEIGHT.
    #[arg(long, default_value = "640x360", value_parser = parse_size)]
    size: (u32, u32),
    /// Video codec to use with peers that want it too: vp8 (everyone has it) or h264. A peer
    /// that does not list H.264 still gets VP8.
    #[arg(long, default_value = "vp8", value_parser = parse_codec)]
    codec: VideoCodec,
    /// Video frame rate.
    #[arg(long, default_value_t = 30)]
    fps: u32,
    /// Leave after this many seconds.
    #[arg(long)]
    duration: Option<f64>,
    /// Gather ICE candidates on loopback only (tests on one machine).
    #[arg(long)]
    loopback: bool,
    /// STUN/TURN server URL (repeatable): `stun:host:port`, `turn:host:port`.
    #[arg(long = "ice-server")]
    ice_servers: Vec<String>,
    /// User name for the `turn:` servers (TURN's long-term credential).
    #[arg(long, default_value = "")]
    turn_username: String,
    /// Password for the `turn:` servers.
    #[arg(long, default_value = "")]
    turn_password: String,
    /// Connect only through a TURN relay (the other side never learns this machine's address).
    #[arg(long)]
    relay_only: bool,
    /// Peer id, with --secret only (default: random); a signed-in peer's id is its uid.
    #[arg(long, requires = "secret")]
    peer_id: Option<String>,
    /// Presence heartbeat period in ms (protocol default 5000; tests shorten it).
    #[arg(long, default_value_t = 5000)]
    heartbeat_ms: u64,
    /// Presence bound in ms: a member silent this long is removed (protocol default 15000).
    #[arg(long, default_value_t = 15000)]
    expiry_ms: u64,
    /// Do not register onDisconnect removal over the realtime protocol (`docs/protocol.md`
    /// §4b): a crash is then noticed only by the heartbeat's expiry, as for a REST-only client.
    #[arg(long)]
    no_on_disconnect: bool,
}

/// Signs in (anonymously) where a client of `db_url` does, keeping the credential in
/// `--credential`'s file when given: one refresh in flight serves every stream of the call.
async fn sign_in(
    args: &Args,
    db_url: &str,
    api_key: String,
    ca_pem: Option<Vec<u8>>,
    config: ClientConfig,
    out: Out,
) -> anyhow::Result<Signaling> {
    let saved = match &args.credential {
        Some(path) if path.exists() => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            Some(
                serde_json::from_str::<Credential>(&text)
                    .with_context(|| format!("{} is not a saved credential", path.display()))?,
            )
        }
        _ => None,
    };
    let host = match &args.auth_host {
        Some(h) => AuthHost::emulator(h),
        None => AuthHost::for_database(db_url),
    };
    let mut settings = AuthSettings::new(api_key).with_host(host).with_saved(saved);
    if let Some(pem) = ca_pem {
        settings = settings.with_ca_pem(pem);
    }
    let auth = FirebaseAuth::new(settings)?;
    let signaling = Signaling::sign_in(config, auth.clone())
        .await
        .context("cannot sign in")?;
    if let Some(path) = args.credential.clone() {
        keep_credential(path, auth.credential());
    }
    report_auth(auth, out);
    Ok(signaling)
}

/// Prints an `auth` event for every refresh or new sign-up from now on: how often the peer
/// goes to the sign-in server over a long call is what shows a refresh storm.
fn report_auth(auth: std::sync::Arc<FirebaseAuth>, out: Out) {
    let mut events = auth.events();
    tokio::spawn(async move {
        loop {
            let (what, uid) = match events.recv().await {
                Ok(AuthEvent::SignedUp { uid }) => ("signed_up", uid),
                Ok(AuthEvent::Refreshed { uid }) => ("refreshed", uid),
                Ok(AuthEvent::Replaced { new_uid, .. }) => ("replaced", new_uid),
                Ok(_) => continue,
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return,
            };
            let stats = auth.stats();
            out.print(&PeerEvent::Auth {
                what,
                uid,
                sign_ups: stats.sign_ups,
                refreshes: stats.refreshes,
            });
        }
    });
}

/// Writes the credential to `path` now and whenever it changes (a refused one replaced by a
/// new sign-up), readable by this user only: it signs in as them.
fn keep_credential(path: std::path::PathBuf, mut credential: watch::Receiver<Option<Credential>>) {
    tokio::spawn(async move {
        loop {
            let current = credential.borrow_and_update().clone();
            if let Some(c) = current {
                if let Err(e) = write_private(&path, &c) {
                    tracing::warn!(path = %path.display(), error = %e, "cannot keep the credential");
                }
            }
            if credential.changed().await.is_err() {
                return;
            }
        }
    });
}

fn write_private(path: &std::path::Path, credential: &Credential) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(serde_json::to_string(credential)?.as_bytes())
}

fn parse_codec(s: &str) -> Result<VideoCodec, String> {
    VideoCodec::from_name(s).ok_or_else(|| format!("unknown video codec {s:?}: use vp8 or h264"))
}

fn parse_size(s: &str) -> Result<(u32, u32), String> {
    let (w, h) = s
        .split_once('x')
        .ok_or("expected WIDTHxHEIGHT, e.g. 640x360")?;
    let w: u32 = w.parse().map_err(|_| "width is not a number")?;
    let h: u32 = h.parse().map_err(|_| "height is not a number")?;
    if !(16..=3840).contains(&w) || !(16..=2160).contains(&h) {
        return Err("size must be between 16x16 and 3840x2160".into());
    }
    Ok((w, h))
}

/// What huddle-peer says itself, beside the engine's [`MeshEvent`]s and in the same dialect.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum PeerEvent {
    /// Who this peer is, before anything else: its peer id (the uid when signed in), and
    /// whether it holds an admin secret instead.
    /// `sign_in_ms`: how long signing in took (a sign-up or a refresh of the saved user).
    SignedIn {
        peer: signal::PeerId,
        admin: bool,
        sign_in_ms: f64,
    },
    /// The sign-in changed: `what` is signed_up, refreshed or replaced (a saved user the server
    /// refused, so the uid changed); the counts are every call to the sign-in server so far.
    Auth {
        what: &'static str,
        uid: String,
        sign_ups: u64,
        refreshes: u64,
    },
    /// A wanted device is missing or does not open: that stream is not sent, the call goes on.
    DeviceUnavailable { message: String },
    /// A device event during the call (its own `what` says which).
    Device(devices::DeviceEvent),
    /// A clean leave.
    Left,
    /// Something went wrong outside the engine (a refused command, a failed join).
    Error { message: String },
}

impl PeerEvent {
    fn error(message: impl Into<String>) -> Self {
        PeerEvent::Error {
            message: message.into(),
        }
    }
}

/// One line of output: an event as it serializes, and when, in ms since the process started.
#[derive(Serialize)]
struct Line<'a, E> {
    #[serde(flatten)]
    event: &'a E,
    t_ms: u64,
}

#[derive(Clone, Copy)]
struct Out {
    start: Instant,
}

impl Out {
    fn print(&self, event: &impl Serialize) {
        let line = Line {
            event,
            t_ms: self.start.elapsed().as_millis() as u64,
        };
        match serde_json::to_string(&line) {
            Ok(line) => println!("{line}"),
            Err(e) => tracing::warn!(error = %e, "an event did not serialize"),
        }
    }
}

#[tokio::main]
async fn main() {
    let out = Out {
        start: Instant::now(),
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                // webrtc-rs warns about packets written before a connection is up: normal here.
                "warn,rtc=error,rtc_ice=error,rtc_dtls=error,rtc_srtp=error,webrtc=error".into()
            }),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    if args.list_devices {
        println!("{}", peer_devices::list_json());
        return;
    }
    match run(args, &out).await {
        Ok(()) => {}
        Err(e) => {
            let message = format!("{e:#}");
            out.print(&PeerEvent::error(message.clone()));
            eprintln!("huddle-peer: {message}");
            std::process::exit(2);
        }
    }
}

async fn run(args: Args, out: &Out) -> anyhow::Result<()> {
    let firebase = match &args.firebase_config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            Some(FirebaseConfig::parse(&text).with_context(|| path.display().to_string())?)
        }
        None => None,
    };
    let db_url = args
        .db
        .clone()
        .or_else(|| firebase.as_ref().map(|c| c.database_url().to_owned()));
    let api_key = firebase
        .as_ref()
        .map_or_else(|| args.api_key.clone(), |c| c.api_key.clone());
    let (Some(db_url), Some(room_id)) = (db_url, args.room.clone().map(signal::RoomId::new)) else {
        anyhow::bail!("--db (or --firebase-config) and --room are needed to join a call");
    };
    if args.relay_only && !args.ice_servers.iter().any(|u| u.starts_with("turn")) {
        anyhow::bail!(
            "--relay-only connects only through a TURN relay: give one with --ice-server \
             turn:HOST:PORT (and --turn-username, --turn-password)"
        );
    }
    let mut config = ClientConfig::new(db_url.clone());
    let ca_pem = match &args.ca {
        Some(ca) => Some(std::fs::read(ca).with_context(|| format!("reading {}", ca.display()))?),
        None => None,
    };
    if let Some(pem) = &ca_pem {
        config = config.with_ca_pem(pem.clone());
    }
    let signing_in = Instant::now();
    let (signaling, admin) = match &args.secret {
        Some(secret) => {
            let peer_id = args
                .peer_id
                .clone()
                .map(signal::PeerId::new)
                .unwrap_or_else(signal::new_peer_id);
            let config = config.with_secret_acting_as(secret.clone(), peer_id.as_str());
            (Signaling::new(RtdbClient::new(config)?, peer_id), true)
        }
        None => (
            sign_in(&args, &db_url, api_key, ca_pem, config, *out).await?,
            false,
        ),
    };
    let peer_id = signaling.peer_id().clone();
    out.print(&PeerEvent::SignedIn {
        peer: peer_id.clone(),
        admin,
        sign_in_ms: signing_in.elapsed().as_secs_f64() * 1000.0,
    });
    let timing = Timing {
        heartbeat: Duration::from_millis(args.heartbeat_ms.max(50)),
        expiry: Duration::from_millis(args.expiry_ms.max(200)),
    };
    let signaling = signaling.with_timing(timing);
    if args.create {
        let privacy = args
            .private
            .clone()
            .map_or(Privacy::Public, Privacy::Private);
        match signaling
            .create_room_with_id(&room_id, room_id.as_str(), privacy)
            .await
        {
            Ok(()) | Err(SignalError::RoomExists) => {}
            Err(e) => return Err(e).context("cannot create the room"),
        }
    }
    let (sources, streams, problems) = peer_devices::sources(
        &args.video,
        &args.audio,
        &args.screen,
        devices::DeviceSetup {
            speaker: args.speaker.clone(),
            camera_mode: devices::camera::CameraMode {
                width: args.size.0,
                height: args.size.1,
                fps: args.fps,
                format: devices::convert::PixelFormat::I420,
            },
            screen_fps: args.screen_fps,
            processing: devices::ProcessingSettings {
                noise_suppression: !args.no_noise_suppression,
                ..Default::default()
            },
            ..Default::default()
        },
    );
    let sources = Arc::new(sources);
    // A missing device costs only its own stream: say so and join with the rest.
    for message in problems {
        out.print(&PeerEvent::DeviceUnavailable { message });
    }
    let audio_sink = match args.speaker.is_device() {
        false => None,
        true => match sources.speaker() {
            Ok(sink) => Some(sink),
            Err(e) => {
                out.print(&PeerEvent::DeviceUnavailable {
                    message: format!("speaker: {e}"),
                });
                None
            }
        },
    };
    let mut device_events = sources.events();
    let options = JoinOptions {
        streams,
        secret: args.private.clone(),
        on_disconnect: !args.no_on_disconnect,
        ..JoinOptions::new(args.name.clone())
    };
    let mesh_config = MeshConfig {
        net: NetConfig {
            loopback_only: args.loopback,
            relay_only: args.relay_only,
            ice_servers: ice_servers(&args.ice_servers, &args.turn_username, &args.turn_password),
            ..NetConfig::default()
        },
        fps: args.fps,
        // H.264 first when asked for; VP8 always, for the peers that do not want H.264.
        video_codecs: match args.codec {
            VideoCodec::H264 => vec![VideoCodec::H264, VideoCodec::Vp8],
            VideoCodec::Vp8 => vec![VideoCodec::Vp8],
        },
        audio_sink,
        sink: args
            .report_frames
            .then(|| peer_devices::frame_reporter(out.start)),
        ..MeshConfig::default()
    };
    let mic = sources.mic_control();
    let (mesh, mut events) = Mesh::join(&signaling, &room_id, options, mesh_config, sources)
        .await
        .context("cannot join the room")?;
    let mut stdin = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let mut stdin_open = true;
    let deadline = args
        .duration
        .map(|s| tokio::time::Instant::now() + Duration::from_secs_f64(s.max(0.0)));
    loop {
        let until_deadline = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            ev = events.recv() => match ev {
                Some(ev) => {
                    out.print(&ev);
                    if matches!(ev, MeshEvent::RoomClosed) {
                        return Ok(());
                    }
                }
                None => anyhow::bail!("the call ended unexpectedly"),
            },
            ev = device_events.recv() => match ev {
                Ok(ev) => {
                    let lost = match &ev {
                        devices::DeviceEvent::Lost { kind: devices::DeviceKind::Camera, .. } => Some(MediaKind::Video),
                        devices::DeviceEvent::Lost { kind: devices::DeviceKind::Display, .. } => Some(MediaKind::Screen),
                        _ => None,
                    };
                    out.print(&PeerEvent::Device(ev));
                    // The call goes on without it; everyone sees that stream end.
                    if let Some(kind) = lost {
                        if let Err(e) = mesh.set_stream(kind, false).await {
                            out.print(&PeerEvent::error(e.to_string()));
                        }
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                    device_events = tokio::sync::broadcast::channel(1).1;
                }
            },
            line = stdin.next_line(), if stdin_open => match line {
                Ok(Some(line)) => {
                    if command(&mesh, &mic, line.trim(), out).await {
                        break;
                    }
                }
                _ => stdin_open = false,
            },
            _ = until_deadline => break,
        }
    }
    mesh.leave().await;
    out.print(&PeerEvent::Left);
    Ok(())
}

/// Runs one stdin command; true means "leave".
async fn command(mesh: &Mesh, mic: &devices::MicControl, line: &str, out: &Out) -> bool {
    let mut words = line.split_whitespace();
    let (what, arg) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let kind = match what {
        "leave" => return true,
        "" => return false,
        "mute" | "ns" if arg == "on" || arg == "off" => {
            if what == "mute" {
                // The pipeline listens for the muted hint; the engine stops sending and tells
                // the room, keeping the microphone open for an instant unmute.
                let muted = arg == "on";
                mic.set_muted(muted);
                if let Err(e) = mesh.set_muted(muted).await {
                    out.print(&PeerEvent::error(format!("mute {arg}: {e}")));
                }
            } else {
                mic.set_noise_suppression(arg == "on");
            }
            return false;
        }
        "video" => MediaKind::Video,
        "audio" => MediaKind::Audio,
        "screen" => MediaKind::Screen,
        other => {
            out.print(&PeerEvent::error(format!(
                "unknown command {other:?}: try video|audio|screen|mute|ns on|off, or leave"
            )));
            return false;
        }
    };
    let on = match arg {
        "on" => true,
        "off" => false,
        _ => {
            out.print(&PeerEvent::error(format!(
                "say `{what} on` or `{what} off`"
            )));
            return false;
        }
    };
    if let Err(e) = mesh.set_stream(kind, on).await {
        out.print(&PeerEvent::error(e.to_string()));
    }
    false
}

/// One server per URL; `turn:`/`turns:` ones carry the credential.
fn ice_servers(urls: &[String], username: &str, password: &str) -> Vec<mesh::IceServer> {
    urls.iter()
        .map(|u| {
            let turn = u.starts_with("turn:") || u.starts_with("turns:");
            mesh::IceServer {
                urls: vec![u.clone()],
                username: if turn {
                    username.to_owned()
                } else {
                    String::new()
                },
                credential: if turn {
                    password.to_owned()
                } else {
                    String::new()
                },
            }
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // test code: a panic is the failure report
mod tests {
    use serde_json::{json, Value};

    use super::*;

    fn line(event: &impl Serialize) -> Value {
        serde_json::to_value(Line { event, t_ms: 7 }).unwrap()
    }

    #[test]
    fn every_line_has_its_type_and_time() {
        assert_eq!(
            line(&MeshEvent::RoomClosed),
            json!({"type": "room_closed", "t_ms": 7})
        );
        assert_eq!(line(&PeerEvent::Left), json!({"type": "left", "t_ms": 7}));
        assert_eq!(
            line(&PeerEvent::Device(devices::DeviceEvent::MutedSpeaking {
                speaking: true
            })),
            json!({"type": "device", "what": "muted_speaking", "speaking": true, "t_ms": 7})
        );
        assert_eq!(
            line(&PeerEvent::error("no")),
            json!({"type": "error", "message": "no", "t_ms": 7})
        );
    }
}
