//! The Tauri commands: thin calls into [`Core`]. Events and frames go back through the two
//! channels the page opens with `subscribe` and `frames_subscribe`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use media::MediaKind;
use media::StreamConfig;
use serde::Serialize;
use signal::RoomId;
use tauri::async_runtime::JoinHandle;
use tauri::ipc::{Channel, InvokeResponseBody};
use tauri::State;

use crate::core::Core;
use crate::devices::Pickers;
use crate::error::UserError;
use crate::events::UiEvent;
use crate::frames::{Drawn, TileStats};
use crate::settings::Settings;

/// The page's two channels: typed events and video frame bundles.
#[derive(Default)]
pub struct PageChannels {
    events: Mutex<Option<Channel<UiEvent>>>,
    /// Invitations and errors that came before the page listened.
    pending: Mutex<Vec<UiEvent>>,
    frames_task: Mutex<Option<JoinHandle<()>>>,
}

/// How many early invitations and errors are kept for the page.
const MAX_PENDING: usize = 16;

impl PageChannels {
    /// Sends an event to the page. Before a page listens, invitations and errors wait for it
    /// (a link that started the app must not be lost); the rest is in the next snapshot.
    pub fn send(&self, ev: UiEvent) {
        let ch = self
            .events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        match ch {
            Some(ch) => {
                if let Err(e) = ch.send(ev) {
                    tracing::debug!(error = %e, "the page did not take an event");
                }
            }
            None if matches!(
                ev,
                UiEvent::Invite { .. } | UiEvent::Error { .. } | UiEvent::Notice { .. }
            ) =>
            {
                let mut p = self.pending.lock().unwrap_or_else(|p| p.into_inner());
                if p.len() < MAX_PENDING {
                    p.push(ev);
                }
            }
            None => {}
        }
    }

    /// A (re)loaded page listens on `events`: it gets `snapshot`, then what waited for it.
    fn attach(&self, events: Channel<UiEvent>, snapshot: Vec<UiEvent>) {
        let pending = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|p| p.into_inner()));
        for ev in snapshot.into_iter().chain(pending) {
            if let Err(e) = events.send(ev) {
                tracing::debug!(error = %e, "the page did not take an event");
            }
        }
        *self.events.lock().unwrap_or_else(|p| p.into_inner()) = Some(events);
    }
}

fn kind(name: &str) -> Result<MediaKind, UserError> {
    MediaKind::from_track_id(name).ok_or_else(|| {
        UserError::new(
            format!("unknown stream {name:?} (audio, video or screen)"),
            None,
        )
    })
}

/// The page's event channel; the current state follows at once.
#[tauri::command]
pub async fn subscribe(
    core: State<'_, Core>,
    page: State<'_, Arc<PageChannels>>,
    events: Channel<UiEvent>,
) -> Result<(), UserError> {
    let page = page.inner().clone();
    // In the core's order: the snapshot, then every later event, none twice.
    core.replay(move |snapshot| page.attach(events, snapshot));
    Ok(())
}

/// The page's frame channel (binary bundles, see `frames`).
#[tauri::command]
pub fn frames_subscribe(
    core: State<'_, Core>,
    page: State<'_, Arc<PageChannels>>,
    frames: Channel<InvokeResponseBody>,
) {
    let compositor = core.frames.clone();
    let task = tauri::async_runtime::spawn(async move {
        compositor
            .run(move |bundle| frames.send(InvokeResponseBody::Raw(bundle)).is_ok())
            .await
    });
    let old = page
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
pub async fn frames_ack(
    core: State<'_, Core>,
    drawn: Vec<Drawn>,
    now_ms: f64,
) -> Result<(), UserError> {
    core.frames.ack(&drawn, now_ms);
    Ok(())
}

/// The sizes the tiles are shown at (device pixels).
#[tauri::command]
pub async fn tile_sizes(
    core: State<'_, Core>,
    sizes: HashMap<String, (u32, u32)>,
) -> Result<(), UserError> {
    core.frames.set_sizes(sizes);
    Ok(())
}

/// Drawing figures per tile (benchmarks and the stats panel).
#[tauri::command]
pub fn ui_stats(core: State<'_, Core>, reset: bool) -> Vec<TileStats> {
    core.frames.stats(reset)
}

#[tauri::command]
pub fn get_settings(core: State<'_, Core>) -> Settings {
    core.settings()
}

/// The name the first run offers (the OS account's full name, or nothing).
#[tauri::command]
pub fn suggested_name() -> String {
    crate::settings::suggested_name()
}

/// Saves the settings.
#[tauri::command]
pub async fn save_settings(core: State<'_, Core>, settings: Settings) -> Result<(), UserError> {
    core.save_settings(settings).await
}

/// Cameras, microphones, speakers and screens.
#[tauri::command]
pub fn list_devices() -> Pickers {
    crate::devices::pickers()
}

/// Connects (again) to the configured database.
#[tauri::command]
pub async fn reconnect(core: State<'_, Core>) -> Result<(), UserError> {
    core.reconnect().await
}

/// Creates a room; returns its id.
#[tauri::command]
pub async fn create_room(
    core: State<'_, Core>,
    name: String,
    secret: Option<String>,
) -> Result<RoomId, UserError> {
    core.create_room(&name, secret).await
}

/// Destroys a room.
#[tauri::command]
pub async fn destroy_room(
    core: State<'_, Core>,
    room: RoomId,
    secret: Option<String>,
) -> Result<(), UserError> {
    core.destroy_room(&room, secret).await
}

/// Joins a room.
#[tauri::command]
pub async fn join_room(
    core: State<'_, Core>,
    room: RoomId,
    secret: Option<String>,
    db: Option<String>,
) -> Result<(), UserError> {
    core.join(&room, secret, db).await
}

/// Leaves the call.
#[tauri::command]
pub async fn leave_room(core: State<'_, Core>) -> Result<(), UserError> {
    core.leave("you left").await;
    Ok(())
}

/// Starts or stops `kind` (`audio`, `video` or `screen`).
#[tauri::command]
pub async fn set_stream(
    core: State<'_, Core>,
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
    /// Who can use them.
    pub reach: crate::links::Reach,
    /// Hosting the built-in database for the LAN would make them work on this network.
    pub can_host: bool,
}

impl From<crate::core::Invitation> for Links {
    fn from(inv: crate::core::Invitation) -> Self {
        Links {
            app: crate::links::app_link(&inv.room, &inv.db),
            web: (!inv.private).then(|| crate::links::web_link(&inv.room, &inv.db)),
            reach: inv.reach,
            can_host: inv.can_host,
        }
    }
}

/// Invite links for the current call.
#[tauri::command]
pub async fn invite_links(core: State<'_, Core>) -> Result<Links, UserError> {
    Ok(core.invitation().await?.into())
}

/// Puts an invitation link on the clipboard: `app` (the app link) or `web` (the browser
/// link). The backend writes it, so the page needs no clipboard access of its own.
#[tauri::command]
pub async fn copy_invite<R: tauri::Runtime>(
    app: tauri::AppHandle<R>,
    core: State<'_, Core>,
    which: String,
) -> Result<String, UserError> {
    use tauri_plugin_clipboard_manager::ClipboardExt;
    let links = Links::from(core.invitation().await?);
    let text = match which.as_str() {
        "app" => links.app,
        "web" => links.web.ok_or_else(|| {
            UserError::new(
                "This room is private: it has no browser link",
                Some("Send the app link; the browser client cannot open private rooms."),
            )
        })?,
        other => return Err(UserError::new(format!("No such link: {other}"), None)),
    };
    app.clipboard().write_text(text.clone()).map_err(|e| {
        UserError::new(
            format!("Cannot copy to the clipboard: {e}"),
            Some("Select the link in the invitation window and copy it by hand."),
        )
    })?;
    Ok(text)
}

/// What the screen-share picker offers, each with a thumbnail of it now.
#[tauri::command]
pub async fn share_targets<R: tauri::Runtime>(
    window: tauri::WebviewWindow<R>,
    core: State<'_, Core>,
) -> Result<Vec<crate::devices::ShareTarget>, UserError> {
    let test = core.settings().devices.display == devices::DeviceChoice::Synthetic;
    let own = own_x11_window(&window);
    tauri::async_runtime::spawn_blocking(move || crate::devices::share_targets(test, own))
        .await
        .map_err(|e| UserError::new(format!("cannot list what to share: {e}"), None))
}

/// The X11 id of the app's own window (left out of the share picker).
fn own_x11_window<R: tauri::Runtime>(window: &tauri::WebviewWindow<R>) -> Option<u32> {
    #[cfg(target_os = "linux")]
    {
        use raw_window_handle::{HasWindowHandle, RawWindowHandle};
        match window.window_handle().ok()?.as_raw() {
            RawWindowHandle::Xlib(h) => u32::try_from(h.window).ok(),
            RawWindowHandle::Xcb(h) => Some(h.window.get()),
            _ => None,
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = window;
        None
    }
}

/// Shares what the picker offered as `target` (a [`crate::devices::ShareTarget`] id), in place
/// of what I share now.
#[tauri::command]
pub async fn share_screen(
    core: State<'_, Core>,
    target: String,
) -> Result<StreamConfig, UserError> {
    core.share(devices::DeviceChoice::from(target.as_str()))
        .await
}

/// Hides the window; the call goes on, and the tray brings the window back.
#[tauri::command]
pub fn hide_window<R: tauri::Runtime>(window: tauri::WebviewWindow<R>) -> Result<(), UserError> {
    window
        .hide()
        .map_err(|e| UserError::new(format!("cannot hide the window: {e}"), None))
}

/// Leaves the call (the others see me go at once) and quits.
#[tauri::command]
pub async fn quit<R: tauri::Runtime>(
    app: tauri::AppHandle<R>,
    core: State<'_, Core>,
) -> Result<(), UserError> {
    core.leave("you quit").await;
    app.exit(0);
    Ok(())
}

/// Hosts the built-in database for the LAN and moves the call there (see
/// [`Core::host_for_lan`]).
#[tauri::command]
pub async fn host_for_lan(core: State<'_, Core>) -> Result<(), UserError> {
    core.host_for_lan().await
}

/// Opens an invitation the user pasted.
#[tauri::command]
pub fn open_invite(core: State<'_, Core>, link: String) -> Result<(), UserError> {
    let invite = crate::links::parse(&link).map_err(|e| {
        UserError::new(
            e.to_string(),
            Some("An invitation looks like huddle://join/<room>?db=…"),
        )
    })?;
    core.show(UiEvent::Invite {
        room: invite.room,
        db: invite.db,
    });
    Ok(())
}

/// Starts the camera preview of the pre-join screen.
#[tauri::command]
pub async fn preview_start(core: State<'_, Core>) -> Result<(), UserError> {
    core.start_preview().await
}

/// Starts or stops the pre-join microphone meter (`mic_level` events).
#[tauri::command]
pub async fn mic_meter(core: State<'_, Core>, on: bool) -> Result<(), UserError> {
    core.meter(on).await
}

/// Plays a short sound on the chosen speakers.
#[tauri::command]
pub async fn test_speakers(core: State<'_, Core>) -> Result<(), UserError> {
    core.test_speakers().await
}

/// Stops the camera preview.
#[tauri::command]
pub async fn preview_stop(core: State<'_, Core>) -> Result<(), UserError> {
    core.stop_preview().await;
    Ok(())
}
