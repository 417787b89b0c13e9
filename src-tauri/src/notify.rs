//! Native notifications: someone joined while the window is in the background, the room was
//! closed, the call's connection to the database was lost. The decision is a pure function; showing goes through
//! tauri-plugin-notification (the desktop's notification service).

use tauri::{AppHandle, Manager, Runtime};
use tauri_plugin_notification::NotificationExt;

use crate::events::UiEvent;

/// A notification to show.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notice {
    pub title: String,
    pub body: String,
}

/// What to show for `ev`, if anything. `focused`: the window has the focus (then the user
/// sees the change in the window); `in_call`: the room name when in a call.
pub fn notice_for(ev: &UiEvent, focused: bool, in_call: Option<&str>) -> Option<Notice> {
    let notice = |title: String, body: String| Some(Notice { title, body });
    match ev {
        UiEvent::MemberJoined { name, .. } if !focused => notice(
            format!("{name} joined"),
            format!("{name} is now in {}", in_call.unwrap_or("your call")),
        ),
        UiEvent::Left { name, reason, .. } if reason == "the room was closed" => notice(
            "The room was closed".into(),
            format!("{name} was closed; you left the call."),
        ),
        UiEvent::Signaling {
            connected: false,
            message,
        } if in_call.is_some() => notice(
            "Connection lost".into(),
            message
                .clone()
                .unwrap_or_else(|| "The database cannot be reached.".into()),
        ),
        _ => None,
    }
}

/// Shows `notice` (silently nothing when the desktop has no notification service).
pub fn show<R: Runtime>(app: &AppHandle<R>, notice: &Notice) {
    // Without the plugin (tests on the mock runtime) there is nothing to show with.
    if app
        .try_state::<tauri_plugin_notification::Notification<R>>()
        .is_none()
    {
        return;
    }
    tracing::info!(title = %notice.title, "notification");
    if let Err(e) = app
        .notification()
        .builder()
        .title(&notice.title)
        .body(&notice.body)
        .show()
    {
        tracing::warn!(error = %e, "cannot show a notification");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use media::StreamConfig;

    #[test]
    fn arrivals_notify_only_when_the_window_is_in_the_background() {
        let joined = UiEvent::MemberJoined {
            peer: "p".into(),
            name: "Bob".into(),
            streams: StreamConfig::default(),
        };
        assert_eq!(notice_for(&joined, true, Some("Standup")), None);
        let n = notice_for(&joined, false, Some("Standup")).unwrap_or_else(|| panic!("a notice"));
        assert_eq!(n.title, "Bob joined");
        assert!(n.body.contains("Standup"));
    }

    #[test]
    fn closed_rooms_and_lost_connections_notify_always() {
        let closed = UiEvent::Left {
            room: "r".into(),
            name: "Standup".into(),
            reason: "the room was closed".into(),
        };
        // After the event the view has no call any more: the name comes from the event.
        let n = notice_for(&closed, true, None).unwrap_or_else(|| panic!("a notice"));
        assert!(n.body.contains("Standup"), "{}", n.body);
        let left = UiEvent::Left {
            room: "r".into(),
            name: "Standup".into(),
            reason: "you left".into(),
        };
        assert!(notice_for(&left, false, Some("R")).is_none());
        let lost = UiEvent::Signaling {
            connected: false,
            message: Some("gone".into()),
        };
        assert!(notice_for(&lost, true, Some("R")).is_some());
        assert!(
            notice_for(&lost, true, None).is_none(),
            "not in a call: the page says it"
        );
    }
}
