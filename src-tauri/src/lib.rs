//! Huddle's desktop shell (Tauri 2 commands, events, tray, notifications).
//!
//! Empty on purpose: the app is built in its own issue; this member exists so the workspace has the
//! final layout from the first commit.
