//! The app's state and everything a command, the tray or a deep link can ask of it. It knows
//! nothing of windows: what the user should see goes out as [`UiEvent`]s through an [`Outlet`].

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use mesh::{MediaKind, Mesh, MeshConfig, NetConfig};
use signal::room::{JoinOptions, Privacy, SignalError, Signaling, StreamConfig};
use signal::rtdb::{ClientConfig, RtdbClient};
use tokio::task::JoinHandle;

use crate::call::Call;
use crate::devices::Capture;
use crate::events::{RoomView, UiEvent};
use crate::frames::{Compositor, SELF_SCREEN, SELF_VIDEO};
use crate::rooms;
use crate::settings::{Database, RecentRoom, Settings, Store};

/// Where UI events go (the event channel, notifications, the tray).
pub trait Outlet: Send + Sync {
    /// Delivers one event.
    fn emit(&self, ev: UiEvent);
}

/// How the app runs, beyond the user's settings (tests and benchmarks set these).
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Gather ICE candidates on loopback only (tests: no packet leaves the machine).
    pub loopback_only: bool,
    /// Camera capture size and rate.
    pub capture: Capture,
}

/// An error for the user: what happened and, when we know, what to do.
#[derive(Debug, Clone, serde::Serialize, PartialEq)]
pub struct UserError {
    /// What went wrong.
    pub message: String,
    /// What to try.
    pub hint: Option<String>,
}

impl UserError {
    fn new(message: impl Into<String>, hint: Option<&str>) -> Self {
        UserError {
            message: message.into(),
            hint: hint.map(str::to_owned),
        }
    }
}

impl From<SignalError> for UserError {
    fn from(e: SignalError) -> Self {
        let hint = match &e {
            SignalError::NoSuchRoom => {
                Some("It may have been closed. Pick another room or create one.")
            }
            SignalError::SecretRequired | SignalError::WrongSecret => {
                Some("Ask the person who invited you for the room's secret.")
            }
            SignalError::PermissionDenied(_) => {
                Some("Check the database secret or token in Settings → Database.")
            }
            SignalError::Database(_) => Some(
                "Check that the database address in Settings is right and that you are online.",
            ),
            _ => None,
        };
        UserError::new(e.to_string(), hint)
    }
}

impl From<mesh::MeshError> for UserError {
    fn from(e: mesh::MeshError) -> Self {
        match e {
            mesh::MeshError::Signal(s) => s.into(),
            other => UserError::new(other.to_string(), None),
        }
    }
}

struct Preview {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

/// The connection to the signaling database (and the embedded server, when it is ours).
pub(crate) struct Conn {
    pub(crate) signaling: Signaling,
    pub(crate) url: String,
    pub(crate) lan_url: Option<String>,
    server: Option<rtdb::Server>,
    watcher: JoinHandle<()>,
}

/// The app.
pub struct Core {
    store: Store,
    data_dir: PathBuf,
    options: Options,
    settings: Mutex<Settings>,
    conn: tokio::sync::Mutex<Option<Conn>>,
    call: Arc<tokio::sync::Mutex<Option<Call>>>,
    pub(crate) rooms: Arc<Mutex<Vec<RoomView>>>,
    pub(crate) outlet: Arc<dyn Outlet>,
    preview: Mutex<Option<Preview>>,
    /// Video frames for the page.
    pub frames: Arc<Compositor>,
}

impl Core {
    /// The app with settings in `config_dir` and the embedded database in `data_dir`.
    pub fn new(
        config_dir: PathBuf,
        data_dir: PathBuf,
        options: Options,
        outlet: Arc<dyn Outlet>,
    ) -> Self {
        let store = Store::new(&config_dir);
        let settings = store.load();
        if let Err(e) = store.save(&settings) {
            tracing::warn!(error = %e, "cannot save the settings");
        }
        Core {
            store,
            data_dir,
            options,
            settings: Mutex::new(settings),
            conn: tokio::sync::Mutex::new(None),
            call: Arc::new(tokio::sync::Mutex::new(None)),
            rooms: Arc::new(Mutex::new(Vec::new())),
            outlet,
            preview: Mutex::new(None),
            frames: Arc::new(Compositor::default()),
        }
    }

    /// Shows my camera in my own tile before I join (the pre-join screen).
    pub fn start_preview(&self) -> Result<(), UserError> {
        self.stop_preview();
        let settings = self.settings();
        let sources = crate::devices::sources(
            &settings.devices,
            &self.options.capture,
            settings.noise_suppression,
            self.frames.clone(),
        );
        let mut source = mesh::Sources::video(&sources, MediaKind::Video).map_err(|e| {
            UserError::new(
                format!("cannot show the camera: {e}"),
                Some("Pick another camera, or the test pattern, in Settings → Devices."),
            )
        })?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("preview".into())
            .spawn(move || {
                // The sources' video tap puts every frame in my tile; nothing else is done
                // with them.
                while !flag.load(Ordering::Relaxed) {
                    if let Err(e) = source.next_frame() {
                        tracing::warn!(error = %e, "camera preview stopped");
                        break;
                    }
                }
            })
            .map_err(|e| UserError::new(format!("cannot start the preview: {e}"), None))?;
        *self.preview.lock().unwrap_or_else(|p| p.into_inner()) = Some(Preview { stop, thread });
        Ok(())
    }

    /// Stops the pre-join preview (and releases the camera).
    pub fn stop_preview(&self) {
        let p = self
            .preview
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(p) = p {
            p.stop.store(true, Ordering::Relaxed);
            let _ = p.thread.join();
            self.frames.remove_prefix(SELF_VIDEO);
        }
    }

    /// The settings now.
    pub fn settings(&self) -> Settings {
        self.settings
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn update_settings(&self, f: impl FnOnce(&mut Settings)) -> Settings {
        let mut s = self.settings.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut s);
        if let Err(e) = self.store.save(&s) {
            tracing::warn!(error = %e, "cannot save the settings");
        }
        let now = s.clone();
        drop(s);
        self.outlet.emit(UiEvent::Settings {
            settings: now.clone(),
        });
        now
    }

    /// Saves new settings; a changed database reconnects.
    pub async fn save_settings(&self, new: Settings) -> Result<(), UserError> {
        new.validate()
            .map_err(|e| UserError::new(e.to_string(), None))?;
        let old = self.settings();
        let keep_id = old.peer_id.clone();
        self.update_settings(|s| {
            *s = Settings {
                peer_id: keep_id,
                ..new.clone()
            }
        });
        if old.database != new.database {
            self.leave("you changed the database").await;
            self.reconnect().await?;
        }
        Ok(())
    }

    /// Everything the page needs after (re)loading.
    pub async fn snapshot(&self) {
        self.outlet.emit(UiEvent::Settings {
            settings: self.settings(),
        });
        if let Some(c) = self.conn.lock().await.as_ref() {
            self.outlet.emit(UiEvent::Database {
                connected: true,
                url: c.url.clone(),
                lan_url: c.lan_url.clone(),
                message: None,
            });
        }
        let rooms = self.rooms.lock().unwrap_or_else(|p| p.into_inner()).clone();
        self.outlet.emit(UiEvent::Rooms { rooms });
        if let Some(call) = self.call.lock().await.as_ref() {
            self.outlet.emit(call.joined_event());
            call.replay_members(&*self.outlet);
        }
    }

    /// Connects to the configured database (starting the embedded one if that is the choice).
    pub async fn reconnect(&self) -> Result<(), UserError> {
        let mut conn = self.conn.lock().await;
        if let Some(old) = conn.take() {
            old.close().await;
        }
        let settings = self.settings();
        match Conn::open(
            &settings,
            &self.data_dir,
            self.rooms.clone(),
            self.outlet.clone(),
        )
        .await
        {
            Ok(c) => {
                tracing::info!("signaling database ready at {}", c.url);
                self.outlet.emit(UiEvent::Database {
                    connected: true,
                    url: c.url.clone(),
                    lan_url: c.lan_url.clone(),
                    message: None,
                });
                *conn = Some(c);
                Ok(())
            }
            Err(e) => {
                self.outlet.emit(UiEvent::Database {
                    connected: false,
                    url: String::new(),
                    lan_url: None,
                    message: Some(e.message.clone()),
                });
                Err(e)
            }
        }
    }

    async fn signaling(&self) -> Result<(Signaling, String), UserError> {
        if self.conn.lock().await.is_none() {
            self.reconnect().await?;
        }
        let conn = self.conn.lock().await;
        let c = conn
            .as_ref()
            .ok_or_else(|| UserError::new("not connected to a database", None))?;
        Ok((c.signaling.clone(), c.url.clone()))
    }

    /// Creates a room (private when `secret` is given) and returns its id.
    pub async fn create_room(
        &self,
        name: &str,
        secret: Option<String>,
    ) -> Result<String, UserError> {
        let (sig, _) = self.signaling().await?;
        let privacy = match secret.filter(|s| !s.is_empty()) {
            Some(s) => Privacy::Private(s),
            None => Privacy::Public,
        };
        Ok(sig.create_room(name, privacy).await?)
    }

    /// Destroys a room (leaving it first if I am in it).
    pub async fn destroy_room(&self, room: &str, secret: Option<String>) -> Result<(), UserError> {
        let in_it = self.call.lock().await.as_ref().map(|c| c.room.clone());
        if in_it.as_deref() == Some(room) {
            self.leave("you closed the room").await;
        }
        let (sig, _) = self.signaling().await?;
        sig.destroy_room(room, secret.as_deref()).await?;
        self.update_settings(|s| s.forget(room));
        Ok(())
    }

    /// Joins `room` (in the database `db`, when an invitation names another one).
    pub async fn join(
        &self,
        room: &str,
        secret: Option<String>,
        db: Option<String>,
    ) -> Result<(), UserError> {
        self.leave("you joined another room").await;
        self.stop_preview();
        let settings = self.settings();
        let (configured, url) = self.signaling().await?;
        let (signaling, other_db) = match db.filter(|d| d.trim_end_matches('/') != url) {
            Some(d) => {
                let client = RtdbClient::new(ClientConfig::new(d.clone()))
                    .map_err(|e| UserError::new(format!("cannot use {d}: {e}"), None))?;
                (Signaling::new(client, settings.peer_id.clone()), Some(d))
            }
            None => (configured, None),
        };
        let info = rooms::info(&signaling, room).await?;
        let sources = Arc::new(crate::devices::sources(
            &settings.devices,
            &self.options.capture,
            settings.noise_suppression,
            self.frames.clone(),
        ));
        let speaker = match settings.devices.speaker.is_device() {
            false => None,
            true => match sources.speaker() {
                Ok(s) => Some(s),
                Err(e) => {
                    // Not fatal: the call goes on, and remote audio is still measured.
                    self.outlet.emit(UiEvent::error(
                        format!("cannot play sound: {}", devices::message(&e)),
                        Some("Pick another speaker in Settings → Devices."),
                    ));
                    None
                }
            },
        };
        let device_events = sources.events();
        let mic = sources.mic_control();
        let frames = self.frames.clone();
        let config = MeshConfig {
            net: NetConfig {
                ice_servers: settings
                    .ice_servers
                    .iter()
                    .map(|s| mesh::IceServer {
                        urls: s.urls.clone(),
                        username: s.username.clone(),
                        credential: s.credential.clone(),
                    })
                    .collect(),
                loopback_only: self.options.loopback_only,
                ..NetConfig::default()
            },
            fps: self.options.capture.fps,
            sink: Some(Arc::new(move |peer: &str, kind: MediaKind, frame: &_| {
                frames.push(&crate::frames::key(peer, kind), frame)
            })),
            audio_sink: speaker,
            video_codecs: if settings.prefer_h264 {
                vec![mesh::VideoCodec::H264, mesh::VideoCodec::Vp8]
            } else {
                vec![mesh::VideoCodec::Vp8]
            },
            ..MeshConfig::default()
        };
        let options = JoinOptions {
            name: settings.name.clone(),
            streams: StreamConfig::default(),
            secret: secret.filter(|s| !s.is_empty()),
            ..JoinOptions::new(settings.name.clone())
        };
        // Join sending nothing, then start each wanted stream: a missing camera is then one
        // error message and a call without video, not a failed join.
        let (mesh, events) = Mesh::join(&signaling, room, options, config, sources).await?;
        let mut call = Call::new(
            mesh,
            room.to_owned(),
            info.name.clone(),
            settings.peer_id.clone(),
        );
        call.secured = info.secured;
        call.mic = Some(mic.clone());
        for (kind, on) in [
            (MediaKind::Audio, settings.start_with_audio),
            (MediaKind::Video, settings.start_with_video),
        ] {
            if on {
                if let Err(e) = call.set_stream(kind, true).await {
                    self.outlet
                        .emit(UiEvent::error(e.message, e.hint.as_deref()));
                }
            }
        }
        self.outlet.emit(call.joined_event());
        // Held while the forwarder starts, so an end it sees at once finds the call in place.
        let mut slot = self.call.lock().await;
        call.forward(
            events,
            self.outlet.clone(),
            self.frames.clone(),
            self.call.clone(),
        );
        *slot = Some(call);
        drop(slot);
        tokio::spawn(follow_devices(
            device_events,
            mic,
            self.call.clone(),
            room.to_owned(),
            self.outlet.clone(),
        ));
        self.update_settings(|s| {
            s.remember(RecentRoom {
                id: room.to_owned(),
                name: info.name.clone(),
                secured: info.secured,
                db: other_db,
            })
        });
        Ok(())
    }

    /// Leaves the call, if any; `why` is shown.
    pub async fn leave(&self, why: &str) {
        let call = self.call.lock().await.take();
        if let Some(call) = call {
            call.leave().await;
            self.frames.remove_prefix("");
            self.outlet.emit(UiEvent::Left { reason: why.into() });
        }
    }

    /// Starts or stops my camera, microphone or screen.
    pub async fn set_stream(&self, kind: MediaKind, on: bool) -> Result<StreamConfig, UserError> {
        let mut guard = self.call.lock().await;
        let call = guard
            .as_mut()
            .ok_or_else(|| UserError::new("you are not in a call", None))?;
        let result = call.set_stream(kind, on).await;
        if !on {
            self.frames.remove_prefix(match kind {
                MediaKind::Screen => SELF_SCREEN,
                _ => SELF_VIDEO,
            });
        }
        let streams = call.streams;
        self.outlet.emit(UiEvent::LocalStreams { streams });
        result.map(|()| streams)
    }

    /// Flips a stream (tray, shortcuts).
    pub async fn toggle_stream(&self, kind: MediaKind) -> Result<StreamConfig, UserError> {
        let on = self
            .call
            .lock()
            .await
            .as_ref()
            .map(|c| c.streams.get(kind))
            .ok_or_else(|| UserError::new("you are not in a call", None))?;
        self.set_stream(kind, !on).await
    }

    /// Whether the room I am in is private.
    pub async fn call_is_private(&self) -> bool {
        self.call.lock().await.as_ref().is_some_and(|c| c.secured)
    }

    /// The room I am in and what I send.
    pub async fn current_call(&self) -> Option<(String, StreamConfig)> {
        self.call
            .lock()
            .await
            .as_ref()
            .map(|c| (c.room.clone(), c.streams))
    }

    /// The database URL others use to reach my rooms (LAN address when hosting).
    pub async fn shared_db_url(&self) -> Option<String> {
        let c = self.conn.lock().await;
        c.as_ref()
            .map(|c| c.lan_url.clone().unwrap_or(c.url.clone()))
    }

    /// Leaves and stops the embedded database (app exit).
    pub async fn shutdown(&self) {
        self.leave("the app is closing").await;
        if let Some(c) = self.conn.lock().await.take() {
            c.close().await;
        }
    }
}

impl Conn {
    async fn open(
        settings: &Settings,
        data_dir: &std::path::Path,
        rooms: Arc<Mutex<Vec<RoomView>>>,
        outlet: Arc<dyn Outlet>,
    ) -> Result<Conn, UserError> {
        let (server, url, lan_url, auth) = match &settings.database {
            Database::Embedded => {
                let s = crate::embedded::start(data_dir, None, None).await?;
                let url = s.url();
                (Some(s), url, None, None)
            }
            Database::Host { port, secret } => {
                let s = crate::embedded::start(data_dir, Some(*port), secret.clone()).await?;
                let url = format!("http://127.0.0.1:{port}");
                let lan = crate::embedded::lan_url(*port);
                (Some(s), url, lan, secret.clone())
            }
            Database::Remote { url, auth } => (None, url.clone(), None, auth.clone()),
        };
        let mut cfg = ClientConfig::new(url.clone());
        if let Some(a) = auth.filter(|a| !a.is_empty()) {
            cfg = cfg.with_secret(a);
        }
        let client = RtdbClient::new(cfg)
            .map_err(|e| UserError::new(format!("cannot use the database at {url}: {e}"), None))?;
        let signaling = Signaling::new(client, settings.peer_id.clone());
        // One read up front, so an unreachable database or a wrong secret is reported now.
        signaling.list_rooms().await.map_err(|e| {
            let e = UserError::from(e);
            UserError::new(
                format!("cannot reach the database at {url}: {}", e.message),
                e.hint.as_deref(),
            )
        })?;
        let watcher = tokio::spawn(rooms::watch(
            signaling.clone(),
            settings.peer_id.clone(),
            rooms,
            outlet,
        ));
        Ok(Conn {
            signaling,
            url,
            lan_url,
            server,
            watcher,
        })
    }

    async fn close(self) {
        self.watcher.abort();
        if let Some(s) = self.server {
            s.shutdown().await;
        }
    }
}

/// Turns device events into what the user sees: a lost camera or screen ends that stream (the
/// others see camera-off) with a message; "muted but speaking" becomes my speaking state.
async fn follow_devices(
    mut events: tokio::sync::broadcast::Receiver<devices::DeviceEvent>,
    mic: devices::MicControl,
    slot: Arc<tokio::sync::Mutex<Option<Call>>>,
    room: String,
    outlet: Arc<dyn Outlet>,
) {
    use devices::{DeviceEvent, DeviceKind};
    use tokio::sync::broadcast::error::RecvError;
    loop {
        let ev = match events.recv().await {
            Ok(ev) => ev,
            Err(RecvError::Lagged(_)) => continue,
            Err(RecvError::Closed) => return,
        };
        match ev {
            DeviceEvent::Lost {
                kind,
                name,
                message,
            } => {
                outlet.emit(UiEvent::error(
                    format!("{name}: {message}"),
                    Some("The call goes on. Plug it back in, or pick another device in Settings → Devices."),
                ));
                let media = match kind {
                    DeviceKind::Camera => Some(MediaKind::Video),
                    DeviceKind::Display => Some(MediaKind::Screen),
                    _ => None,
                };
                let mut guard = slot.lock().await;
                if let (Some(media), Some(call)) = (media, guard.as_mut()) {
                    if call.room == room && call.streams.get(media) {
                        let _ = call.set_stream(media, false).await;
                        outlet.emit(UiEvent::LocalStreams {
                            streams: call.streams,
                        });
                    }
                }
            }
            DeviceEvent::MutedSpeaking { speaking } => outlet.emit(UiEvent::Speaking {
                peer: "self".into(),
                speaking,
                level_dbfs: mic.level_dbfs(),
            }),
            _ => {}
        }
    }
}
