//! The tray's menu handlers on a real app core (mock Tauri runtime, real embedded database,
//! real calls on loopback): mute, camera, leave and quick-join a recent room do what they say.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use huddle_app::core::Core;
use huddle_app::tray::{self, TrayAction};
use tauri::async_runtime::block_on as rt;
use tauri::Manager;

fn wait<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn tray_items_mute_turn_the_camera_off_leave_and_quick_join() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config");
    std::fs::create_dir_all(&config).unwrap();
    std::fs::write(
        config.join("settings.json"),
        r#"{"name": "Ann", "devices": {"camera": "synthetic", "microphone": "synthetic", "speaker": "none", "display": "synthetic"}}"#,
    )
    .unwrap();
    // The only test in this binary: the environment is ours.
    std::env::set_var("HUDDLE_CONFIG_DIR", &config);
    std::env::set_var("HUDDLE_DATA_DIR", dir.path().join("data"));
    std::env::set_var("HUDDLE_LOOPBACK_ONLY", "1");
    let mut app = huddle_app::build_core(tauri::test::mock_builder())
        .build(tauri::test::mock_context(tauri::test::noop_assets()))
        .unwrap();
    // The setup (which creates the core) runs on the event loop's first turn.
    #[allow(deprecated)]
    app.run_iteration(|_, _| {});
    let handle = app.handle().clone();
    let core = app.state::<Core>().inner().clone();

    let room = wait("the embedded database", || {
        rt(core.create_room("Standup", None)).ok()
    });
    rt(core.join(&room, None, None)).unwrap();
    let call = core.current_call().unwrap();
    assert_eq!(call.0, room);
    assert!(
        call.1.audio && call.1.video,
        "joined with mic and camera: {:?}",
        call.1
    );

    tray::perform(handle.clone(), TrayAction::ToggleMic);
    wait("muted", || core.current_call().filter(|c| !c.1.audio));
    tray::perform(handle.clone(), TrayAction::ToggleCamera);
    wait("camera off", || core.current_call().filter(|c| !c.1.video));
    tray::perform(handle.clone(), TrayAction::ToggleMic);
    wait("unmuted", || core.current_call().filter(|c| c.1.audio));

    tray::perform(handle.clone(), TrayAction::Leave);
    wait("left", || core.current_call().is_none().then_some(()));

    // The room is now the first recent room: the tray joins it in one click.
    assert_eq!(core.settings().recent[0].id, room);
    tray::perform(handle.clone(), TrayAction::Join(0));
    let back = wait("back in the room", || core.current_call());
    assert_eq!(back.0, room);
    rt(core.shutdown());
}
