//! The tray icon: quick-join a recent room, mute/unmute, camera on/off, leave, show/hide the
//! window, quit. The menu's content and the meaning of each item are pure functions
//! ([`entries`], [`action`]) so tests call them without a tray host.

use media::MediaKind;
use media::StreamConfig;
use tauri::menu::{CheckMenuItem, IsMenuItem, Menu, MenuItem, PredefinedMenuItem, Submenu};
use tauri::tray::TrayIconBuilder;
use tauri::{AppHandle, Manager, Runtime};

use crate::core::Core;
use crate::events::UiEvent;
use crate::settings::RecentRoom;
use crate::view::View;

const TRAY_ID: &str = "huddle";

/// What a tray item does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TrayAction {
    /// Show the window, or hide it when it is visible.
    ShowHide,
    /// Join the n-th recent room.
    Join(usize),
    /// Mute or unmute.
    ToggleMic,
    /// Camera on or off.
    ToggleCamera,
    /// Leave the call.
    Leave,
    /// Quit the app.
    Quit,
}

/// The action of a menu item id.
pub fn action(id: &str) -> Option<TrayAction> {
    Some(match id {
        "show" => TrayAction::ShowHide,
        "mic" => TrayAction::ToggleMic,
        "camera" => TrayAction::ToggleCamera,
        "leave" => TrayAction::Leave,
        "quit" => TrayAction::Quit,
        other => TrayAction::Join(other.strip_prefix("recent:")?.parse().ok()?),
    })
}

/// One menu line: id, label, enabled, checked (for check items).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Entry {
    /// A plain item.
    Item(String, String, bool),
    /// A check item.
    Check(String, String, bool, bool),
    /// The recent rooms.
    Recent(Vec<(String, String)>),
    Separator,
}

/// The menu for the current state.
pub fn entries(recent: &[RecentRoom], call: Option<&(signal::RoomId, StreamConfig)>) -> Vec<Entry> {
    let in_call = call.is_some();
    let streams = call.map(|c| c.1).unwrap_or_default();
    let recent = recent
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let lock = if r.secured { " (private)" } else { "" };
            (format!("recent:{i}"), format!("{}{lock}", r.name))
        })
        .collect();
    vec![
        Entry::Item("show".into(), "Show / hide Huddle".into(), true),
        Entry::Separator,
        Entry::Recent(recent),
        Entry::Check("mic".into(), "Microphone".into(), in_call, streams.audio),
        Entry::Check("camera".into(), "Camera".into(), in_call, streams.video),
        Entry::Item("leave".into(), "Leave call".into(), in_call),
        Entry::Separator,
        Entry::Item("quit".into(), "Quit".into(), true),
    ]
}

fn build_menu<R: Runtime>(app: &AppHandle<R>, entries: &[Entry]) -> tauri::Result<Menu<R>> {
    let mut items: Vec<Box<dyn IsMenuItem<R>>> = Vec::new();
    for e in entries {
        match e {
            Entry::Item(id, label, enabled) => items.push(Box::new(MenuItem::with_id(
                app,
                id,
                label,
                *enabled,
                None::<&str>,
            )?)),
            Entry::Check(id, label, enabled, checked) => items.push(Box::new(
                CheckMenuItem::with_id(app, id, label, *enabled, *checked, None::<&str>)?,
            )),
            Entry::Separator => items.push(Box::new(PredefinedMenuItem::separator(app)?)),
            Entry::Recent(rooms) => {
                let mut subs: Vec<Box<dyn IsMenuItem<R>>> = Vec::new();
                for (id, label) in rooms {
                    subs.push(Box::new(MenuItem::with_id(
                        app,
                        id,
                        label,
                        true,
                        None::<&str>,
                    )?));
                }
                let refs: Vec<&dyn IsMenuItem<R>> = subs.iter().map(|b| b.as_ref()).collect();
                let enabled = !rooms.is_empty();
                items.push(Box::new(Submenu::with_id_and_items(
                    app,
                    "recent",
                    "Join a recent room",
                    enabled,
                    &refs,
                )?));
            }
        }
    }
    let refs: Vec<&dyn IsMenuItem<R>> = items.iter().map(|b| b.as_ref()).collect();
    Menu::with_items(app, &refs)
}

/// Creates the tray icon.
pub fn create<R: Runtime>(app: &AppHandle<R>) -> tauri::Result<()> {
    let core = app.state::<Core>();
    let menu = build_menu(app, &entries(&core.settings().recent, None))?;
    let mut builder = TrayIconBuilder::with_id(TRAY_ID)
        .tooltip("Huddle")
        .menu(&menu)
        .show_menu_on_left_click(true)
        .on_menu_event(|app, event| {
            if let Some(a) = action(event.id().as_ref()) {
                perform(app.clone(), a);
            }
        });
    if let Some(icon) = app.default_window_icon() {
        builder = builder.icon(icon.clone());
    }
    builder.build(app)?;
    Ok(())
}

/// Whether the menu shows what `ev` changes (recent rooms, the call and what I send).
pub fn shows(ev: &UiEvent) -> bool {
    matches!(
        ev,
        UiEvent::Settings { .. }
            | UiEvent::Joined { .. }
            | UiEvent::Left { .. }
            | UiEvent::LocalStreams { .. }
    )
}

/// Rebuilds the menu from what the user is shown now.
pub fn refresh<R: Runtime>(app: &AppHandle<R>, view: &View) {
    let recent = view
        .settings()
        .map(|s| s.recent.clone())
        .unwrap_or_default();
    let call = view.call().map(|c| (c.room.clone(), c.streams));
    let app = app.clone();
    // Menus are built on the main thread: from here that would wait for it, and the main
    // thread may itself be waiting for the core (at exit).
    tauri::async_runtime::spawn(async move {
        let Some(tray) = app.tray_by_id(TRAY_ID) else {
            return;
        };
        match build_menu(&app, &entries(&recent, call.as_ref())) {
            Ok(menu) => {
                if let Err(e) = tray.set_menu(Some(menu)) {
                    tracing::warn!(error = %e, "cannot update the tray menu");
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot build the tray menu"),
        }
    });
}

/// What Show / hide does to the window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WindowStep {
    Hide,
    /// Un-minimize, show and focus.
    Restore,
}

/// Show / hide hides a window that is on screen and brings back one that is not: hidden, or
/// minimized (a minimized window is still "visible" to the window system, and hiding it would
/// leave it iconic for good).
pub fn show_hide(visible: bool, minimized: bool) -> WindowStep {
    if visible && !minimized {
        WindowStep::Hide
    } else {
        WindowStep::Restore
    }
}

/// Does what a tray item says.
pub fn perform<R: Runtime>(app: AppHandle<R>, action: TrayAction) {
    let core = app.state::<Core>().inner().clone();
    match action {
        TrayAction::ShowHide => {
            if let Some(w) = app.get_webview_window("main") {
                let visible = w.is_visible().unwrap_or(false);
                let minimized = w.is_minimized().unwrap_or(false);
                let _ = match show_hide(visible, minimized) {
                    WindowStep::Hide => w.hide(),
                    WindowStep::Restore => w
                        .unminimize()
                        .and_then(|()| w.show())
                        .and_then(|()| w.set_focus()),
                };
            }
        }
        TrayAction::Quit => app.exit(0),
        other => {
            let show = matches!(other, TrayAction::Join(_));
            tauri::async_runtime::spawn(async move {
                let result = match other {
                    TrayAction::ToggleMic => core.toggle_stream(MediaKind::Audio).await.map(drop),
                    TrayAction::ToggleCamera => {
                        core.toggle_stream(MediaKind::Video).await.map(drop)
                    }
                    TrayAction::Leave => {
                        core.leave("you left").await;
                        Ok(())
                    }
                    TrayAction::Join(i) => match core.settings().recent.get(i).cloned() {
                        // A private room needs its secret: the page asks for it.
                        Some(r) if r.secured => {
                            core.show(UiEvent::Invite {
                                room: r.id,
                                db: r.db,
                            });
                            Ok(())
                        }
                        Some(r) => core.join(&r.id, None, r.db).await,
                        None => Ok(()),
                    },
                    _ => Ok(()),
                };
                if let Err(e) = result {
                    core.show(UiEvent::error(e.message, e.hint.as_deref()));
                }
            });
            if show {
                if let Some(w) = app.get_webview_window("main") {
                    let _ = w.show();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn show_hide_brings_back_a_minimized_window() {
        assert_eq!(show_hide(true, false), WindowStep::Hide);
        assert_eq!(show_hide(true, true), WindowStep::Restore, "minimized");
        assert_eq!(show_hide(false, false), WindowStep::Restore, "hidden");
        assert_eq!(show_hide(false, true), WindowStep::Restore);
    }

    #[test]
    fn item_ids_map_to_actions() {
        assert_eq!(action("mic"), Some(TrayAction::ToggleMic));
        assert_eq!(action("recent:3"), Some(TrayAction::Join(3)));
        assert_eq!(action("recent:x"), None);
        assert_eq!(action("nope"), None);
    }

    #[test]
    fn the_menu_follows_the_call_and_lists_recent_rooms() {
        let recent = vec![
            RecentRoom {
                id: "a".into(),
                name: "Standup".into(),
                secured: false,
                db: None,
            },
            RecentRoom {
                id: "b".into(),
                name: "Board".into(),
                secured: true,
                db: None,
            },
        ];
        let idle = entries(&recent, None);
        assert!(idle.contains(&Entry::Item("leave".into(), "Leave call".into(), false)));
        assert!(idle.contains(&Entry::Recent(vec![
            ("recent:0".into(), "Standup".into()),
            ("recent:1".into(), "Board (private)".into()),
        ])));
        let streams = StreamConfig {
            audio: true,
            video: false,
            screen: false,
        };
        let busy = entries(&recent, Some(&("a".into(), streams)));
        assert!(busy.contains(&Entry::Check("mic".into(), "Microphone".into(), true, true)));
        assert!(busy.contains(&Entry::Check("camera".into(), "Camera".into(), true, false)));
        assert!(busy.contains(&Entry::Item("leave".into(), "Leave call".into(), true)));
    }
}
