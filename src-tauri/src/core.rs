//! The app core: one task owns the app's state (the settings, the database connection, the
//! call, the camera preview) and takes, in one `select!`, the requests of the page, the tray
//! and invitation links, the engine's events, the devices' events and the room list. Nothing
//! else changes that state, so there are no locks around it and no ordering between tasks to
//! get wrong: "the call ended" is just one branch of the loop.
//!
//! [`Core`] is the handle the rest of the app holds: each method sends a request and waits for
//! its answer. What the user is shown is the [`View`], folded from every event the core emits;
//! the handle reads it for the queries that need no answer from the task (the settings, the
//! call I am in).
//!
//! It knows nothing of windows: events go out through an [`Outlet`].

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use devices::{DeviceChoice, DeviceEvent, DeviceKind};
use media::MediaKind;
use media::StreamConfig;
use mesh::{Mesh, MeshConfig, MeshEvent, NetConfig};
use signal::room::{JoinOptions, Privacy, Signaling};
use signal::{PeerId, RoomId};
use tokio::sync::{mpsc, oneshot};

use crate::call::{Call, CallInput, Joined};
use crate::conn::Conn;
use crate::devices::Capture;
use crate::error::UserError;
use crate::events::UiEvent;
use crate::frames::{Compositor, TileKey, TileOwner};
use crate::rooms::RoomsUpdate;
use crate::settings::{Database, RecentRoom, Settings, Store};
use crate::view::{Outlet, View};

/// How the app runs, beyond the user's settings (tests and benchmarks set these).
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Gather ICE candidates on loopback only (tests: no packet leaves the machine).
    pub loopback_only: bool,
    /// Camera capture size and rate.
    pub capture: Capture,
    /// The embedded database's server settings (tests shorten token lifetimes).
    pub embedded: crate::conn::EmbeddedOptions,
}

/// Where the app keeps its files.
#[derive(Clone, Debug)]
pub struct Folders {
    pub config: PathBuf,
    /// The embedded database.
    pub data: PathBuf,
}

/// An invitation to the call I am in, before it is written as links.
#[derive(Clone, Debug, PartialEq)]
pub struct Invitation {
    pub room: RoomId,
    /// The database others reach the room in.
    pub db: String,
    pub private: bool,
    /// Who can use it.
    pub reach: crate::links::Reach,
    /// The database is the built-in one on loopback: hosting it for the LAN would make the
    /// invitation work for people on this network.
    pub can_host: bool,
}

type Reply<T> = oneshot::Sender<Result<T, UserError>>;

/// What the handle asks of the task.
enum Request {
    SaveSettings(Box<Settings>, Reply<()>),
    Reconnect(Reply<()>),
    CreateRoom {
        name: String,
        secret: Option<String>,
        reply: Reply<RoomId>,
    },
    DestroyRoom {
        room: RoomId,
        secret: Option<String>,
        reply: Reply<()>,
    },
    Join {
        room: RoomId,
        secret: Option<String>,
        db: Option<String>,
        reply: Reply<()>,
    },
    Leave(String, oneshot::Sender<()>),
    SetStream {
        kind: MediaKind,
        /// `None` flips it.
        on: Option<bool>,
        reply: Reply<StreamConfig>,
    },
    Invitation(Reply<Invitation>),
    Share(DeviceChoice, Reply<StreamConfig>),
    HostForLan(Reply<()>),
    StartPreview(Reply<()>),
    StopPreview(oneshot::Sender<()>),
    Meter(bool, Reply<()>),
    TestSpeakers(Reply<()>),
    /// An event from outside the core (an invitation link, an error of a tray action).
    Show(UiEvent),
    /// Runs with the snapshot, in order with the events (see [`Core::replay`]).
    Replay(Box<dyn FnOnce(Vec<UiEvent>) + Send>),
    Shutdown(oneshot::Sender<()>),
}

/// The handle of the app core (cheap to share; every clone talks to the same task).
#[derive(Clone)]
pub struct Core {
    requests: mpsc::UnboundedSender<Request>,
    view: Arc<Mutex<View>>,
    /// Video frames for the page (written by the engine's sink, read by the frame channel).
    pub frames: Arc<Compositor>,
}

/// The app core's task: spawn [`CoreTask::run`] on the runtime that should run the calls.
pub struct CoreTask {
    actor: Actor,
    requests: mpsc::UnboundedReceiver<Request>,
}

impl Core {
    /// The app with its settings and database in `folders`; nothing happens until the task
    /// runs (the first request then connects to the database).
    pub fn new(folders: Folders, options: Options, outlet: Arc<dyn Outlet>) -> (Core, CoreTask) {
        let store = Store::new(&folders.config);
        let settings = store.load();
        if let Err(e) = store.save(&settings) {
            tracing::warn!(error = %e, "cannot save the settings");
        }
        let view = Arc::new(Mutex::new(View::default()));
        let frames = Arc::new(Compositor::default());
        let shown = Shown {
            view: view.clone(),
            outlet,
        };
        shown.emit(UiEvent::Settings {
            settings: settings.clone(),
        });
        let (tx, rx) = mpsc::unbounded_channel();
        let actor = Actor {
            store,
            settings,
            data_dir: folders.data,
            options,
            conn: None,
            call: None,
            preview: None,
            meter: None,
            speaker_reported: false,
            frames: frames.clone(),
            shown,
        };
        let core = Core {
            requests: tx,
            view,
            frames,
        };
        (
            core,
            CoreTask {
                actor,
                requests: rx,
            },
        )
    }

    async fn ask<T>(&self, request: impl FnOnce(Reply<T>) -> Request) -> Result<T, UserError> {
        let (tx, rx) = oneshot::channel();
        self.requests
            .send(request(tx))
            .map_err(|_| UserError::closing())?;
        rx.await.unwrap_or_else(|_| Err(UserError::closing()))
    }

    async fn tell(&self, request: impl FnOnce(oneshot::Sender<()>) -> Request) {
        let (tx, rx) = oneshot::channel();
        if self.requests.send(request(tx)).is_ok() {
            let _ = rx.await;
        }
    }

    fn view(&self) -> MutexGuard<'_, View> {
        self.view.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The settings now.
    pub fn settings(&self) -> Settings {
        // The view holds them from the start: `new` emits them.
        self.view().settings().cloned().unwrap_or_default()
    }

    /// The room I am in and what I send.
    pub fn current_call(&self) -> Option<(RoomId, StreamConfig)> {
        self.view().call().map(|c| (c.room.clone(), c.streams))
    }

    /// Runs `f` with the events that bring a freshly loaded page up to date, in order with the
    /// events the core emits: what `f` does (attach the page's channel) sees every later event
    /// and none twice.
    pub fn replay(&self, f: impl FnOnce(Vec<UiEvent>) + Send + 'static) {
        let _ = self.requests.send(Request::Replay(Box::new(f)));
    }

    /// Saves new settings; a changed database reconnects.
    pub async fn save_settings(&self, new: Settings) -> Result<(), UserError> {
        self.ask(|r| Request::SaveSettings(Box::new(new), r)).await
    }

    /// Connects to the configured database (starting the embedded one if that is the choice).
    pub async fn reconnect(&self) -> Result<(), UserError> {
        self.ask(Request::Reconnect).await
    }

    /// Creates a room (private when `secret` is given) and returns its id.
    pub async fn create_room(
        &self,
        name: &str,
        secret: Option<String>,
    ) -> Result<RoomId, UserError> {
        let name = name.to_owned();
        self.ask(|reply| Request::CreateRoom {
            name,
            secret,
            reply,
        })
        .await
    }

    /// Destroys a room (leaving it first if I am in it).
    pub async fn destroy_room(
        &self,
        room: &RoomId,
        secret: Option<String>,
    ) -> Result<(), UserError> {
        let room = room.clone();
        self.ask(|reply| Request::DestroyRoom {
            room,
            secret,
            reply,
        })
        .await
    }

    /// Joins `room` (in the database `db`, when an invitation names another one).
    pub async fn join(
        &self,
        room: &RoomId,
        secret: Option<String>,
        db: Option<String>,
    ) -> Result<(), UserError> {
        let room = room.clone();
        self.ask(|reply| Request::Join {
            room,
            secret,
            db,
            reply,
        })
        .await
    }

    /// Leaves the call, if any; `why` is shown.
    pub async fn leave(&self, why: &str) {
        let why = why.to_owned();
        self.tell(|done| Request::Leave(why, done)).await
    }

    /// Starts or stops my camera, microphone or screen.
    pub async fn set_stream(&self, kind: MediaKind, on: bool) -> Result<StreamConfig, UserError> {
        self.ask(|reply| Request::SetStream {
            kind,
            on: Some(on),
            reply,
        })
        .await
    }

    /// Flips a stream (tray, shortcuts).
    pub async fn toggle_stream(&self, kind: MediaKind) -> Result<StreamConfig, UserError> {
        self.ask(|reply| Request::SetStream {
            kind,
            on: None,
            reply,
        })
        .await
    }

    /// Shares a display, a window (`window:<id>`) or the test pattern, in place of what I
    /// share now.
    pub async fn share(&self, target: DeviceChoice) -> Result<StreamConfig, UserError> {
        self.ask(|reply| Request::Share(target, reply)).await
    }

    /// What an invitation to the call I am in says.
    pub async fn invitation(&self) -> Result<Invitation, UserError> {
        self.ask(Request::Invitation).await
    }

    /// Makes the built-in database reachable from the LAN (on the port it has now, so links
    /// change only in their address) and moves the call I am in there: I rejoin the same room,
    /// sending what I sent.
    pub async fn host_for_lan(&self) -> Result<(), UserError> {
        self.ask(Request::HostForLan).await
    }

    /// Shows my camera in my own tile before I join (the pre-join screen).
    pub async fn start_preview(&self) -> Result<(), UserError> {
        self.ask(Request::StartPreview).await
    }

    /// Stops the pre-join preview (and releases the camera).
    pub async fn stop_preview(&self) {
        self.tell(Request::StopPreview).await
    }

    /// Starts (or stops) the pre-join microphone meter: `mic_level` events, ten a second.
    pub async fn meter(&self, on: bool) -> Result<(), UserError> {
        self.ask(|reply| Request::Meter(on, reply)).await
    }

    /// Plays a short sound on the chosen speakers (the pre-join screen's "Test speakers").
    pub async fn test_speakers(&self) -> Result<(), UserError> {
        self.ask(Request::TestSpeakers).await
    }

    /// Shows an event that comes from outside the core: an invitation that arrived, an error
    /// of something the tray did. (Does not wait: links arrive before the runtime runs.)
    pub fn show(&self, ev: UiEvent) {
        let _ = self.requests.send(Request::Show(ev));
    }

    /// Leaves and stops the embedded database (app exit). The task ends after it.
    pub async fn shutdown(&self) {
        self.tell(Request::Shutdown).await
    }
}

/// Emits events: folds each into the view, then hands it to the outlet with the view after it.
#[derive(Clone)]
struct Shown {
    view: Arc<Mutex<View>>,
    outlet: Arc<dyn Outlet>,
}

impl Shown {
    fn emit(&self, ev: UiEvent) {
        let mut view = self.view.lock().unwrap_or_else(|p| p.into_inner());
        view.apply(&ev);
        self.outlet.emit(ev, &view);
    }

    fn error(&self, e: UserError) {
        self.emit(UiEvent::error(e.message, e.hint.as_deref()));
    }
}

struct Preview {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

/// The state only the task touches.
struct Actor {
    store: Store,
    settings: Settings,
    data_dir: PathBuf,
    options: Options,
    conn: Option<Conn>,
    call: Option<Call>,
    preview: Option<Preview>,
    /// The pre-join microphone meter.
    meter: Option<Preview>,
    /// The missing speaker was reported: once per run is enough.
    speaker_reported: bool,
    frames: Arc<Compositor>,
    shown: Shown,
}

impl CoreTask {
    /// The loop; returns after a shutdown or when every handle is gone.
    pub async fn run(self) {
        let CoreTask {
            mut actor,
            mut requests,
        } = self;
        loop {
            tokio::select! {
                req = requests.recv() => match req {
                    Some(Request::Shutdown(done)) => {
                        actor.shutdown().await;
                        let _ = done.send(());
                        return;
                    }
                    Some(req) => actor.handle(req).await,
                    None => {
                        actor.shutdown().await;
                        return;
                    }
                },
                input = next_in_call(&mut actor.call) => actor.on_call(input).await,
                update = next_in_rooms(&mut actor.conn) => actor.on_rooms(update),
            }
        }
    }
}

async fn next_in_call(call: &mut Option<Call>) -> CallInput {
    match call {
        Some(c) => c.next().await,
        None => std::future::pending().await,
    }
}

async fn next_in_rooms(conn: &mut Option<Conn>) -> RoomsUpdate {
    match conn.as_mut().and_then(|c| c.rooms.as_mut()) {
        Some(r) => r.next().await,
        None => std::future::pending().await,
    }
}

impl Actor {
    async fn handle(&mut self, req: Request) {
        match req {
            Request::SaveSettings(new, reply) => {
                let _ = reply.send(self.save_settings(*new).await);
            }
            Request::Reconnect(reply) => {
                let _ = reply.send(self.reconnect().await);
            }
            Request::CreateRoom {
                name,
                secret,
                reply,
            } => {
                let _ = reply.send(self.create_room(&name, secret).await);
            }
            Request::DestroyRoom {
                room,
                secret,
                reply,
            } => {
                let _ = reply.send(self.destroy_room(&room, secret).await);
            }
            Request::Join {
                room,
                secret,
                db,
                reply,
            } => {
                let _ = reply.send(self.join(&room, secret, db).await);
            }
            Request::Leave(why, done) => {
                self.leave(&why).await;
                let _ = done.send(());
            }
            Request::SetStream { kind, on, reply } => {
                let _ = reply.send(self.set_stream(kind, on).await);
            }
            Request::Invitation(reply) => {
                let _ = reply.send(self.invitation());
            }
            Request::Share(target, reply) => {
                let _ = reply.send(self.share(target).await);
            }
            Request::HostForLan(reply) => {
                let _ = reply.send(self.host_for_lan().await);
            }
            Request::StartPreview(reply) => {
                let _ = reply.send(self.start_preview());
            }
            Request::StopPreview(done) => {
                self.stop_preview();
                let _ = done.send(());
            }
            Request::Meter(on, reply) => {
                let _ = reply.send(if on {
                    self.start_meter()
                } else {
                    self.stop_meter();
                    Ok(())
                });
            }
            Request::TestSpeakers(reply) => {
                let _ = reply.send(self.test_speakers());
            }
            Request::Show(ev) => self.shown.emit(ev),
            Request::Replay(f) => {
                let snapshot = self
                    .shown
                    .view
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .snapshot();
                f(snapshot);
            }
            Request::Shutdown(done) => {
                self.shutdown().await;
                let _ = done.send(());
            }
        }
    }

    fn update_settings(&mut self, f: impl FnOnce(&mut Settings)) {
        f(&mut self.settings);
        if let Err(e) = self.store.save(&self.settings) {
            tracing::warn!(error = %e, "cannot save the settings");
        }
        self.shown.emit(UiEvent::Settings {
            settings: self.settings.clone(),
        });
    }

    async fn save_settings(&mut self, mut new: Settings) -> Result<(), UserError> {
        new.apply_firebase_config()
            .and_then(|()| new.validate())
            .map_err(|e| UserError::new(e.to_string(), None))?;
        let database_changed = self.settings.database != new.database
            || self.settings.firebase_config != new.firebase_config;
        self.update_settings(|s| *s = new);
        if database_changed {
            self.leave("you changed the database").await;
            self.reconnect().await?;
        }
        Ok(())
    }

    async fn reconnect(&mut self) -> Result<(), UserError> {
        if let Some(old) = self.conn.take() {
            old.close().await;
        }
        match Conn::open_with(&self.settings, &self.data_dir, &self.options.embedded).await {
            Ok(c) => {
                tracing::info!("signaling database ready at {}", c.url);
                self.shown.emit(c.connected_event());
                self.conn = Some(c);
                Ok(())
            }
            Err(e) => {
                self.shown.emit(UiEvent::Database {
                    connected: false,
                    url: String::new(),
                    lan_url: None,
                    message: Some(e.message.clone()),
                });
                Err(e)
            }
        }
    }

    /// The database connection, made now if there is none.
    async fn conn(&mut self) -> Result<&Conn, UserError> {
        if self.conn.is_none() {
            self.reconnect().await?;
        }
        self.conn
            .as_ref()
            .ok_or_else(|| UserError::new("not connected to a database", None))
    }

    async fn create_room(
        &mut self,
        name: &str,
        secret: Option<String>,
    ) -> Result<RoomId, UserError> {
        let privacy = match secret.filter(|s| !s.is_empty()) {
            Some(s) => Privacy::Private(s),
            None => Privacy::Public,
        };
        Ok(self
            .conn()
            .await?
            .signaling
            .create_room(name, privacy)
            .await?)
    }

    async fn destroy_room(
        &mut self,
        room: &RoomId,
        secret: Option<String>,
    ) -> Result<(), UserError> {
        if self.call.as_ref().is_some_and(|c| c.room == *room) {
            self.leave("you closed the room").await;
        }
        let sig = self.conn().await?.signaling.clone();
        sig.destroy_room(room, secret.as_deref()).await?;
        self.update_settings(|s| s.forget(room));
        Ok(())
    }

    async fn join(
        &mut self,
        room: &RoomId,
        secret: Option<String>,
        db: Option<String>,
    ) -> Result<(), UserError> {
        if self.settings.name.trim().is_empty() {
            return Err(UserError::new(
                "choose the name the others will see first",
                Some("Settings → You → Display name."),
            ));
        }
        self.leave("you joined another room").await;
        self.stop_preview();
        self.stop_meter();
        let settings = self.settings.clone();
        let conn = self.conn().await?;
        let (signaling, other_db): (Signaling, _) =
            match db.filter(|d| d.trim_end_matches('/') != conn.url) {
                Some(d) => {
                    let api_key = settings.firebase_api_key();
                    let how = crate::conn::SignIn {
                        secret: None,
                        firebase_api_key: api_key.as_deref(),
                        data_dir: &self.data_dir,
                        huddle_api_key: &self.options.embedded.client_api_key,
                        account: None,
                    };
                    (crate::conn::signaling_at(&d, &how).await?, Some(d))
                }
                None => (conn.signaling.clone(), None),
            };
        let info = crate::rooms::info(&signaling, room).await?;
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
                    // Not fatal: the call goes on, and remote audio is still measured. No
                    // speaker at all is a fact of this computer, said once and calmly; a chosen
                    // one that fails is an error, every time.
                    let none_here = settings.devices.speaker == DeviceChoice::Default
                        && devices::list_devices().speakers.is_empty();
                    if !none_here {
                        self.shown.emit(UiEvent::error(
                            format!("cannot play sound: {}", devices::message(&e)),
                            Some("Pick another speaker in Settings → Devices."),
                        ));
                    } else if !self.speaker_reported {
                        self.speaker_reported = true;
                        self.shown.emit(UiEvent::notice(
                            "no speakers or headphones found: you will not hear the others",
                            Some("Plug some in, then pick them in Settings → Devices."),
                        ));
                    }
                    None
                }
            },
        };
        let devices = sources.events();
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
                relay_only: settings.relay_only,
                ..NetConfig::default()
            },
            fps: self.options.capture.fps,
            sink: Some(Arc::new(
                move |peer: &PeerId, kind: MediaKind, frame: &_| {
                    frames.push(&TileKey::peer(peer, kind), frame)
                },
            )),
            audio_sink: speaker,
            video_codecs: if settings.prefer_h264 {
                vec![
                    media::codec::VideoCodec::H264,
                    media::codec::VideoCodec::Vp8,
                ]
            } else {
                vec![media::codec::VideoCodec::Vp8]
            },
            ..MeshConfig::default()
        };
        let options_secret = secret.filter(|s| !s.is_empty());
        let options = JoinOptions {
            name: settings.name.clone(),
            streams: StreamConfig::default(),
            secret: options_secret.clone(),
            ..JoinOptions::new(settings.name.clone())
        };
        // Join sending nothing, then start each wanted stream: a missing camera is then one
        // error message and a call without video, not a failed join.
        let (mesh, events) = Mesh::join(&signaling, room, options, config, sources.clone()).await?;
        let joined = Joined {
            mesh,
            events,
            devices,
            mic,
            sources: sources.clone(),
        };
        let mut call = Call::new(
            joined,
            room.to_owned(),
            info.name.clone(),
            signaling.peer_id().clone(),
            info.secured,
        );
        call.secret = options_secret;
        for (kind, on) in [
            (MediaKind::Audio, settings.start_with_audio),
            (MediaKind::Video, settings.start_with_video),
        ] {
            if on {
                if let Err(e) = call.set_stream(kind, true).await {
                    self.shown.error(e);
                }
            }
        }
        self.shown.emit(call.joined_event());
        self.call = Some(call);
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

    async fn leave(&mut self, why: &str) {
        if let Some(call) = self.call.take() {
            let left = call.left_event(why);
            call.leave().await;
            self.frames.clear();
            self.shown.emit(left);
        }
    }

    /// Forgets a call that ended by itself (the engine already left).
    fn end(&mut self, why: &str) {
        if let Some(call) = self.call.take() {
            let left = call.left_event(why);
            // Dropping the engine's handle finishes leaving the room.
            drop(call);
            self.frames.clear();
            self.shown.emit(left);
        }
    }

    async fn set_stream(
        &mut self,
        kind: MediaKind,
        on: Option<bool>,
    ) -> Result<StreamConfig, UserError> {
        let call = self.call.as_mut().ok_or_else(UserError::not_in_call)?;
        let on = on.unwrap_or(!call.streams.get(kind));
        let result = call.set_stream(kind, on).await;
        if !on {
            self.frames.remove(&TileKey::mine(kind));
        }
        let streams = call.streams;
        self.shown.emit(UiEvent::LocalStreams { streams });
        result.map(|()| streams)
    }

    async fn share(&mut self, target: DeviceChoice) -> Result<StreamConfig, UserError> {
        let call = self.call.as_mut().ok_or_else(UserError::not_in_call)?;
        let result = call.share(target).await;
        let streams = call.streams;
        if !streams.screen {
            self.frames.remove(&TileKey::mine(MediaKind::Screen));
        }
        self.shown.emit(UiEvent::LocalStreams { streams });
        result.map(|()| streams)
    }

    fn invitation(&self) -> Result<Invitation, UserError> {
        let call = self.call.as_ref().ok_or_else(UserError::not_in_call)?;
        let conn = self.conn.as_ref();
        let reach = conn.map_or(crate::links::Reach::ThisComputer, |c| c.reach);
        Ok(Invitation {
            room: call.room.clone(),
            db: conn.map(|c| c.shared_url().to_owned()).unwrap_or_default(),
            private: call.secured,
            reach,
            can_host: self.settings.database == Database::Embedded,
        })
    }

    async fn host_for_lan(&mut self) -> Result<(), UserError> {
        if self.settings.database != Database::Embedded {
            return Err(UserError::new(
                "Huddle is not using its built-in database on this computer only",
                Some("Settings → Database says which database it uses."),
            ));
        }
        let port = self
            .conn
            .as_ref()
            .and_then(Conn::port)
            .unwrap_or(crate::settings::DEFAULT_HOST_PORT);
        let back = self
            .call
            .as_ref()
            .map(|c| (c.room.clone(), c.secret.clone(), c.streams));
        self.leave("the call moves to the database hosted for your network")
            .await;
        self.update_settings(|s| {
            s.database = Database::Host { port, secret: None };
        });
        self.reconnect().await?;
        let Some((room, secret, streams)) = back else {
            return Ok(());
        };
        self.join(&room, secret, None).await?;
        if let Some(call) = self.call.as_mut() {
            for kind in [MediaKind::Audio, MediaKind::Video, MediaKind::Screen] {
                let on = streams.get(kind);
                if call.streams.get(kind) != on {
                    if let Err(e) = call.set_stream(kind, on).await {
                        self.shown.error(e);
                    }
                }
            }
            let streams = call.streams;
            self.shown.emit(UiEvent::LocalStreams { streams });
        }
        Ok(())
    }

    fn start_preview(&mut self) -> Result<(), UserError> {
        self.stop_preview();
        let sources = crate::devices::sources(
            &self.settings.devices,
            &self.options.capture,
            self.settings.noise_suppression,
            self.frames.clone(),
        );
        let mut source =
            media::source::Sources::video(&sources, MediaKind::Video).map_err(|e| {
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
        self.preview = Some(Preview { stop, thread });
        Ok(())
    }

    fn start_meter(&mut self) -> Result<(), UserError> {
        self.stop_meter();
        let sources = crate::devices::sources(
            &self.settings.devices,
            &self.options.capture,
            self.settings.noise_suppression,
            self.frames.clone(),
        );
        let mut mic = media::source::Sources::audio(&sources).map_err(|e| {
            UserError::new(
                format!("cannot open the microphone: {e}"),
                Some("Pick another microphone, or the test tone, in Settings → Devices."),
            )
        })?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let shown = self.shown.clone();
        let thread = std::thread::Builder::new()
            .name("mic-meter".into())
            .spawn(move || {
                let mut peak = media::mixer::SILENCE_DBFS;
                let mut n = 0u32;
                while !flag.load(Ordering::Relaxed) {
                    match mic.next_frame() {
                        Ok(f) => peak = peak.max(media::mixer::level_dbfs(&f)),
                        Err(e) => {
                            tracing::warn!(error = %e, "microphone meter stopped");
                            break;
                        }
                    }
                    n += 1;
                    // Five 20 ms frames: ten readings a second, each the loudest of its frames.
                    if n.is_multiple_of(5) {
                        shown.emit(UiEvent::MicLevel { dbfs: peak });
                        peak = media::mixer::SILENCE_DBFS;
                    }
                }
            })
            .map_err(|e| UserError::new(format!("cannot start the meter: {e}"), None))?;
        self.meter = Some(Preview { stop, thread });
        Ok(())
    }

    fn stop_meter(&mut self) {
        if let Some(p) = self.meter.take() {
            p.stop.store(true, Ordering::Relaxed);
            let _ = p.thread.join();
        }
    }

    fn test_speakers(&self) -> Result<(), UserError> {
        let sources = crate::devices::sources(
            &self.settings.devices,
            &self.options.capture,
            self.settings.noise_suppression,
            self.frames.clone(),
        );
        let speaker = sources.speaker().map_err(|e| {
            UserError::new(
                format!("cannot play sound: {}", devices::message(&e)),
                Some("Pick your speakers or headphones first."),
            )
        })?;
        std::thread::Builder::new()
            .name("test-speakers".into())
            .spawn(move || {
                // A second of a soft 440 Hz tone, paced like a call's playout.
                let mut tone = media::synthetic::Tone::new(440.0);
                for _ in 0..50 {
                    let Ok(frame) = media::source::AudioSource::next_frame(&mut tone) else {
                        break;
                    };
                    speaker
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .play(&frame);
                }
                // Keeps `sources` (and so the device) open until the sound has played.
                drop(sources);
            })
            .map_err(|e| UserError::new(format!("cannot play sound: {e}"), None))?;
        Ok(())
    }

    fn stop_preview(&mut self) {
        if let Some(p) = self.preview.take() {
            p.stop.store(true, Ordering::Relaxed);
            let _ = p.thread.join();
            self.frames.remove(&TileKey::mine(MediaKind::Video));
        }
    }

    async fn shutdown(&mut self) {
        self.stop_preview();
        self.stop_meter();
        self.leave("the app is closing").await;
        if let Some(c) = self.conn.take() {
            c.close().await;
        }
    }

    async fn on_call(&mut self, input: CallInput) {
        match input {
            CallInput::Mesh(ev) => self.on_mesh(ev),
            CallInput::Device(ev) => self.on_device(ev).await,
            CallInput::Ended => self.end("the call's connection to the database failed"),
        }
    }

    fn on_mesh(&mut self, ev: MeshEvent) {
        match &ev {
            MeshEvent::StreamsChanged { peer_id, streams } => {
                for kind in [MediaKind::Video, MediaKind::Screen] {
                    if !streams.get(kind) {
                        self.frames.remove(&TileKey::peer(peer_id, kind));
                    }
                }
            }
            MeshEvent::MemberLeft { peer_id, .. } => {
                self.frames.remove_owner(&TileOwner::Peer(peer_id.clone()));
            }
            MeshEvent::RoomClosed => return self.end("the room was closed"),
            _ => {}
        }
        if let Some(ui) = UiEvent::from_mesh(ev) {
            self.shown.emit(ui);
        }
    }

    /// A lost camera or screen ends that stream (the others see camera-off) with a message;
    /// "muted but speaking" becomes my speaking state.
    async fn on_device(&mut self, ev: DeviceEvent) {
        match ev {
            DeviceEvent::Lost {
                kind,
                name,
                message,
            } => {
                self.shown.emit(UiEvent::error(
                    format!("{name}: {message}"),
                    Some("The call goes on. Plug it back in, or pick another device in Settings → Devices."),
                ));
                let media = match kind {
                    DeviceKind::Camera => Some(MediaKind::Video),
                    DeviceKind::Display => Some(MediaKind::Screen),
                    _ => None,
                };
                let on = |c: &Call, m| c.streams.get(m);
                if let Some(media) = media.filter(|m| self.call.as_ref().is_some_and(|c| on(c, *m)))
                {
                    let _ = self.set_stream(media, Some(false)).await;
                }
            }
            DeviceEvent::MutedSpeaking { speaking } => {
                if let Some(level_dbfs) = self.call.as_ref().map(|c| c.mic.level_dbfs()) {
                    self.shown.emit(UiEvent::Speaking {
                        peer: "self".into(),
                        speaking,
                        level_dbfs,
                    });
                }
            }
            _ => {}
        }
    }

    fn on_rooms(&mut self, update: RoomsUpdate) {
        match update {
            RoomsUpdate::List(rooms) => self.shown.emit(UiEvent::Rooms { rooms }),
            RoomsUpdate::Lost(why) => {
                let url = self
                    .conn
                    .as_ref()
                    .map(|c| c.url.clone())
                    .unwrap_or_default();
                self.shown.emit(UiEvent::Database {
                    connected: false,
                    url,
                    lan_url: None,
                    message: Some(format!(
                        "lost the connection to the database ({why}); reconnecting"
                    )),
                });
            }
            RoomsUpdate::Ended => {
                if let Some(c) = &mut self.conn {
                    c.rooms = None;
                }
                self.shown.emit(UiEvent::error(
                    "the room list can no longer be read",
                    Some("Check the database settings."),
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests;
