//! Tauri's build step for the `huddle` binary: reads tauri.conf.json and the capabilities,
//! embeds the Windows resources, and makes an allow/deny permission for each of the app's own
//! commands so that the capability can list exactly the ones the page may call.

const COMMANDS: &[&str] = &[
    "subscribe",
    "frames_subscribe",
    "frames_ack",
    "tile_sizes",
    "ui_stats",
    "get_settings",
    "suggested_name",
    "save_settings",
    "list_devices",
    "reconnect",
    "create_room",
    "destroy_room",
    "join_room",
    "leave_room",
    "set_stream",
    "invite_links",
    "copy_invite",
    "share_targets",
    "share_screen",
    "hide_window",
    "mic_meter",
    "test_speakers",
    "quit",
    "host_for_lan",
    "open_invite",
    "preview_start",
    "preview_stop",
];

fn main() {
    println!("cargo:rerun-if-changed=src-tauri/capabilities");
    let attrs = tauri_build::Attributes::new()
        .capabilities_path_pattern("src-tauri/capabilities/*.json")
        .app_manifest(tauri_build::AppManifest::new().commands(COMMANDS));
    if let Err(e) = tauri_build::try_build(attrs) {
        panic!("tauri build step failed: {e:#}");
    }
}
