//! The Tauri commands: thin calls into [`Core`]. Events and frames go back through the two
//! channels the page opens with `subscribe` and `frames_subscribe`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use mesh::MediaKind;
use serde::Serialize;
use signal::room::StreamConfig;
use tauri::async_runtime::JoinHandle;
use tauri::ipc::{Channel, InvokeResponseBody};
use tauri::State;

use crate::core::{Core, UserError};
use crate::devices::Pickers;
use crate::events::UiEvent;
use crate::frames::{Drawn, TileStats};
use crate::settings::Settings;

/// The page's two channels.
#[derive(Default)]
pub struct Hub {
    /// Typed events.
    pub events: Mutex<Option<Channel<UiEvent>>>,
    frames_task: Mutex<Option<JoinHandle<()>>>,
}

impl Hub {
    /// Sends an event to the page (dropped when no page listens).
    pub fn send(&self, ev: UiEvent) {
        let ch = self
            .events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if let Some(ch) = ch {
            if let Err(e) = ch.send(ev) {
                tracing::debug!(error = %e, "the page did not take an event");
            }
        }
    }
}

type Core_<'a> = State<'a, Arc<Core>>;

fn kind(name: &str) -> Result<MediaKind, UserError> {
    MediaKind::from_track_id(name).ok_or_else(|| UserError {
        message: format!("unknown stream {name:?} (audio, video or screen)"),
        hint: None,
    })
}

/// The page's event channel; the current state follows at once.
#[tauri::command]
pub async fn subscribe(
    core: Core_<'_>,
    hub: State<'_, Arc<Hub>>,
    events: Channel<UiEvent>,
) -> Result<(), UserError> {
    *hub.events.lock().unwrap_or_else(|p| p.into_inner()) = Some(events);
    core.snapshot().await;
    Ok(())
}

/// The page's frame channel (binary bundles, see `frames`).
#[tauri::command]
pub fn frames_subscribe(
    core: Core_<'_>,
    hub: State<'_, Arc<Hub>>,
    frames: Channel<InvokeResponseBody>,
) {
    let compositor = core.frames.clone();
    let task = tauri::async_runtime::spawn(async move {
        compositor
            .run(move |bundle| frames.send(InvokeResponseBody::Raw(bundle)).is_ok())
            .await
    });
    let old = hub
        .frames_task
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .replace(task);
    if let Some(old) = old {
        old.abort();
    }
}

/// The page drew the last bundle. (Async, like every frequent command, so that it runs off
/// the main thread the webview needs.)
#[tauri::command]
pub async fn frames_ack(core: Core_<'_>, drawn: Vec<Drawn>, now_ms: f64) -> Result<(), UserError> {
    core.frames.ack(&drawn, now_ms);
    Ok(())
}

/// The sizes the tiles are shown at (device pixels).
#[tauri::command]
pub async fn tile_sizes(
    core: Core_<'_>,
    sizes: HashMap<String, (u32, u32)>,
) -> Result<(), UserError> {
    core.frames.set_sizes(sizes);
    Ok(())
}

/// Drawing figures per tile (benchmarks and the stats panel).
#[tauri::command]
pub fn ui_stats(core: Core_<'_>, reset: bool) -> Vec<TileStats> {
    core.frames.stats(reset)
}

/// The settings.
#[tauri::command]
pub fn get_settings(core: Core_<'_>) -> Settings {
    core.settings()
}

/// Saves the settings.
#[tauri::command]
pub async fn save_settings(core: Core_<'_>, settings: Settings) -> Result<(), UserError> {
    core.save_settings(settings).await
}

/// Cameras, microphones, speakers and screens.
#[tauri::command]
pub fn list_devices() -> Pickers {
    crate::devices::pickers()
}

/// Connects (again) to the configured database.
#[tauri::command]
pub async fn reconnect(core: Core_<'_>) -> Result<(), UserError> {
    core.reconnect().await
}

/// Creates a room; returns its id.
#[tauri::command]
pub async fn create_room(
    core: Core_<'_>,
    name: String,
    secret: Option<String>,
) -> Result<String, UserError> {
    core.create_room(&name, secret).await
}

/// Destroys a room.
#[tauri::command]
pub async fn destroy_room(
    core: Core_<'_>,
    room: String,
    secret: Option<String>,
) -> Result<(), UserError> {
    core.destroy_room(&room, secret).await
}

/// Joins a room.
#[tauri::command]
pub async fn join_room(
    core: Core_<'_>,
    room: String,
    secret: Option<String>,
    db: Option<String>,
) -> Result<(), UserError> {
    core.join(&room, secret, db).await
}

/// Leaves the call.
#[tauri::command]
pub async fn leave_room(core: Core_<'_>) -> Result<(), UserError> {
    core.leave("you left").await;
    Ok(())
}

/// Starts or stops `kind` (`audio`, `video` or `screen`).
#[tauri::command]
pub async fn set_stream(
    core: Core_<'_>,
    kind: String,
    on: bool,
) -> Result<StreamConfig, UserError> {
    core.set_stream(self::kind(&kind)?, on).await
}

/// An invitation to the room I am in.
#[derive(Serialize)]
pub struct Links {
    /// Opens the app.
    pub app: String,
    /// Opens the browser client (public rooms only: the browser client cannot open private
    /// rooms yet).
    pub web: Option<String>,
}

/// Invite links for the current call.
#[tauri::command]
pub async fn invite_links(core: Core_<'_>) -> Result<Links, UserError> {
    let (room, _) = core.current_call().await.ok_or_else(|| UserError {
        message: "you are not in a call".into(),
        hint: None,
    })?;
    let db = core.shared_db_url().await.unwrap_or_default();
    Ok(Links {
        app: crate::links::app_link(&room, &db),
        web: (!core.call_is_private().await).then(|| crate::links::web_link(&room, &db)),
    })
}

/// Opens an invitation the user pasted.
#[tauri::command]
pub fn open_invite(core: Core_<'_>, link: String) -> Result<(), UserError> {
    let invite = crate::links::parse(&link).map_err(|e| UserError {
        message: e.to_string(),
        hint: Some("An invitation looks like huddle://join/<room>?db=…".into()),
    })?;
    core.outlet.emit(UiEvent::Invite {
        room: invite.room,
        db: invite.db,
    });
    Ok(())
}

/// Starts the camera preview of the pre-join screen.
#[tauri::command]
pub fn preview_start(core: Core_<'_>) -> Result<(), UserError> {
    core.start_preview()
}

/// Stops the camera preview.
#[tauri::command]
pub fn preview_stop(core: Core_<'_>) {
    core.stop_preview();
}
