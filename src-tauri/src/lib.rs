//! Huddle's desktop shell (Tauri 2): the commands the page calls, one channel of typed events
//! and one of video frames back to it, the tray, notifications and invitation links. The call
//! itself is the `mesh` engine, the same one `huddle-peer` drives.
//!
//! Environment (for tests, benchmarks and portable setups): `HUDDLE_CONFIG_DIR` and
//! `HUDDLE_DATA_DIR` replace the per-user folders; `HUDDLE_LOOPBACK_ONLY=1` keeps every ICE
//! candidate on 127.0.0.1, and hosting for the LAN then listens on 127.0.0.1 too (tests open no
//! port on the machine's interfaces).
#![forbid(unsafe_code)]

pub mod call;
pub mod commands;
pub mod conn;
pub mod core;
pub mod devices;
pub mod error;
pub mod events;
pub mod frames;
pub mod links;
pub mod notify;
pub mod rooms;
pub mod scale;
pub mod settings;
pub mod tray;
pub mod view;

use std::path::PathBuf;
use std::sync::Arc;

use tauri::{AppHandle, Manager, RunEvent, Runtime};

use crate::commands::PageChannels;
use crate::core::{Core, Folders, Options};
use crate::events::UiEvent;
use crate::view::{Outlet, View};

/// Runs the app with the context `tauri::generate_context!` made of tauri.conf.json.
pub fn run(context: tauri::Context<tauri::Wry>) {
    let app = match build(tauri::Builder::default()).build(context) {
        Ok(app) => app,
        Err(e) => {
            eprintln!("huddle cannot start: {e}");
            std::process::exit(1);
        }
    };
    app.run(|app, event| {
        if let RunEvent::Exit = event {
            if let Some(core) = app.try_state::<Core>() {
                let core = core.inner().clone();
                // Leave the call so the others see me go at once (not after the presence
                // timeout), and close the embedded database cleanly.
                tauri::async_runtime::block_on(core.shutdown());
            }
        }
    });
}

/// The app on any runtime: the desktop plugins, then [`build_core`].
pub fn build<R: Runtime>(builder: tauri::Builder<R>) -> tauri::Builder<R> {
    let builder = builder
        // First, so that a second launch (e.g. from an invitation link) hands its arguments to
        // this instance instead of starting another.
        .plugin(tauri_plugin_single_instance::init(|app, argv, _cwd| {
            if let Some(w) = app.get_webview_window("main") {
                let _ = w.show();
                let _ = w.set_focus();
            }
            open_links(app, argv.iter().map(String::as_str));
        }))
        .plugin(tauri_plugin_deep_link::init())
        .plugin(
            tauri_plugin_log::Builder::new()
                .level(log::LevelFilter::Info)
                // webrtc-rs logs every state change at info and some start-up noise as
                // warnings; the app's own crates say what matters.
                .level_for("rtc", log::LevelFilter::Error)
                .level_for("rtc_ice", log::LevelFilter::Warn)
                .level_for("webrtc", log::LevelFilter::Warn)
                .build(),
        )
        .plugin(tauri_plugin_notification::init())
        .plugin(tauri_plugin_clipboard_manager::init())
        .plugin(tauri_plugin_window_state::Builder::new().build())
        .on_window_event(|window, event| {
            // Closing the window in a call asks first: leave and quit, or keep the call going
            // from the tray (the page shows the question).
            if let tauri::WindowEvent::CloseRequested { api, .. } = event {
                let in_call = window
                    .try_state::<Core>()
                    .is_some_and(|c| c.current_call().is_some());
                if in_call {
                    api.prevent_close();
                    if let Some(core) = window.try_state::<Core>() {
                        core.show(UiEvent::CloseAsked);
                    }
                }
            }
        });
    with_core(builder, true)
}

/// Commands and state without the desktop integration (tray, single instance, deep links,
/// log, notifications, window state): what `tauri::test::mock_builder()` can run.
pub fn build_core<R: Runtime>(builder: tauri::Builder<R>) -> tauri::Builder<R> {
    with_core(builder, false)
}

fn with_core<R: Runtime>(builder: tauri::Builder<R>, desktop: bool) -> tauri::Builder<R> {
    builder
        .invoke_handler(tauri::generate_handler![
            commands::subscribe,
            commands::frames_subscribe,
            commands::frames_ack,
            commands::tile_sizes,
            commands::ui_stats,
            commands::get_settings,
            commands::suggested_name,
            commands::save_settings,
            commands::list_devices,
            commands::reconnect,
            commands::create_room,
            commands::destroy_room,
            commands::join_room,
            commands::leave_room,
            commands::set_stream,
            commands::invite_links,
            commands::copy_invite,
            commands::share_targets,
            commands::share_screen,
            commands::hide_window,
            commands::mic_meter,
            commands::test_speakers,
            commands::quit,
            commands::host_for_lan,
            commands::open_invite,
            commands::preview_start,
            commands::preview_stop,
        ])
        .setup(move |app| {
            setup(app.handle(), desktop)?;
            Ok(())
        })
}

fn dir(var: &str, default: tauri::Result<PathBuf>) -> tauri::Result<PathBuf> {
    match std::env::var_os(var) {
        Some(d) => Ok(PathBuf::from(d)),
        None => default,
    }
}

fn setup<R: Runtime>(app: &AppHandle<R>, desktop: bool) -> tauri::Result<()> {
    let config_dir = dir("HUDDLE_CONFIG_DIR", app.path().app_config_dir())?;
    let data_dir = dir("HUDDLE_DATA_DIR", app.path().app_data_dir())?;
    let loopback_only = std::env::var("HUDDLE_LOOPBACK_ONLY").is_ok_and(|v| v == "1");
    let options = Options {
        loopback_only,
        embedded: crate::conn::EmbeddedOptions {
            host_on_loopback: loopback_only,
            ..Default::default()
        },
        ..Options::default()
    };
    let page = Arc::new(PageChannels::default());
    let outlet = Arc::new(TauriOutlet {
        app: app.clone(),
        page: page.clone(),
        desktop,
    });
    let folders = Folders {
        config: config_dir,
        data: data_dir,
    };
    let (core, task) = Core::new(folders, options, outlet.clone());
    tauri::async_runtime::spawn(task.run());
    app.manage(core.clone());
    app.manage(page);
    app.manage(outlet);
    if desktop {
        if let Err(e) = tray::create(app) {
            tracing::warn!(error = %e, "no tray icon");
        }
        deep_links(app);
    }
    open_links(
        app,
        std::env::args()
            .skip(1)
            .collect::<Vec<_>>()
            .iter()
            .map(String::as_str),
    );
    tauri::async_runtime::spawn(async move {
        // Failures are shown on the page (a `database` event); the user can fix the settings.
        let _ = core.reconnect().await;
    });
    Ok(())
}

fn deep_links<R: Runtime>(app: &AppHandle<R>) {
    use tauri_plugin_deep_link::DeepLinkExt;
    // Installed bundles register huddle:// themselves; a debug build registers itself, except
    // in tests and portable setups (a config folder given), which must not touch the desktop.
    #[cfg(all(debug_assertions, any(target_os = "linux", windows)))]
    if std::env::var_os("HUDDLE_CONFIG_DIR").is_none() {
        if let Err(e) = app.deep_link().register_all() {
            tracing::info!(error = %e, "huddle:// links are not registered for this debug build");
        }
    }
    let handle = app.clone();
    app.deep_link().on_open_url(move |event| {
        let urls: Vec<String> = event.urls().iter().map(|u| u.to_string()).collect();
        open_links(&handle, urls.iter().map(String::as_str));
    });
    if let Ok(Some(urls)) = app.deep_link().get_current() {
        let urls: Vec<String> = urls.iter().map(|u| u.to_string()).collect();
        open_links(app, urls.iter().map(String::as_str));
    }
}

/// Shows the pre-join screen for every invitation among `args`.
fn open_links<'a, R: Runtime>(app: &AppHandle<R>, args: impl Iterator<Item = &'a str>) {
    let Some(core) = app.try_state::<Core>() else {
        return;
    };
    for a in args.filter(|a| a.starts_with("huddle:")) {
        match links::parse(a) {
            Ok(inv) => core.show(UiEvent::Invite {
                room: inv.room,
                db: inv.db,
            }),
            Err(e) => core.show(UiEvent::error(e.to_string(), None)),
        }
    }
}

/// Delivers UI events: to the page, as notifications, and to the tray menu.
struct TauriOutlet<R: Runtime> {
    app: AppHandle<R>,
    page: Arc<PageChannels>,
    /// With a tray (not under the mock runtime of the tests).
    desktop: bool,
}

impl<R: Runtime> Outlet for TauriOutlet<R> {
    fn emit(&self, ev: UiEvent, view: &View) {
        let focused = self
            .app
            .get_webview_window("main")
            .and_then(|w| Some(w.is_focused().ok()? && w.is_visible().ok()?))
            .unwrap_or(false);
        if matches!(ev, UiEvent::MemberJoined { .. }) {
            tracing::info!(focused, "someone joined");
        }
        let room = view.call().map(|c| c.name.as_str());
        if let Some(n) = notify::notice_for(&ev, focused, room) {
            notify::show(&self.app, &n);
        }
        if self.desktop && tray::shows(&ev) {
            tray::refresh(&self.app, view);
        }
        self.page.send(ev);
    }
}
