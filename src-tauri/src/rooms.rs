//! The live room list: rooms and, for public rooms, how many people are in them.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use signal::room::model::RoomInfo;
use signal::room::{DirectoryEvent, Signaling};

use crate::core::{Outlet, UserError};
use crate::events::{RoomView, UiEvent};

/// A room's listing (its name, and whether it is private).
pub async fn info(sig: &Signaling, room: &str) -> Result<RoomInfo, UserError> {
    Ok(sig.room_info(room).await?)
}

/// The list the page shows, sorted by name.
pub fn view(
    rooms: &BTreeMap<String, RoomInfo>,
    counts: &HashMap<String, usize>,
    me: &str,
) -> Vec<RoomView> {
    let mut v: Vec<RoomView> = rooms
        .iter()
        .map(|(id, info)| RoomView {
            id: id.clone(),
            name: info.name.clone(),
            secured: info.secured,
            // A public room's occupants live under its id; a private room's under a name
            // derived from its secret, so its count is unknown here.
            occupants: (!info.secured).then(|| counts.get(id).copied().unwrap_or(0)),
            mine: info.created_by == me,
        })
        .collect();
    v.sort_by(|a, b| {
        a.name
            .to_lowercase()
            .cmp(&b.name.to_lowercase())
            .then(a.id.cmp(&b.id))
    });
    v
}

/// Follows the room list with its occupant counts and publishes it on every change.
pub async fn watch(
    sig: Signaling,
    me: String,
    shared: Arc<Mutex<Vec<RoomView>>>,
    outlet: Arc<dyn Outlet>,
) {
    let mut list = sig.watch_directory();
    let mut rooms = BTreeMap::new();
    let mut counts = HashMap::new();
    let mut synced = false;
    loop {
        let changed = match list.next().await {
            Some(DirectoryEvent::Listed { id, listing }) => {
                match listing.occupants {
                    Some(n) => counts.insert(id.clone(), n),
                    None => counts.remove(&id),
                };
                rooms.insert(id, listing.info);
                synced
            }
            Some(DirectoryEvent::Removed { id }) => {
                rooms.remove(&id);
                counts.remove(&id);
                synced
            }
            Some(DirectoryEvent::Synced) => {
                synced = true;
                true
            }
            Some(DirectoryEvent::Disconnected(why)) => {
                outlet.emit(UiEvent::Database {
                    connected: false,
                    url: sig.db().url().to_owned(),
                    lan_url: None,
                    message: Some(format!(
                        "lost the connection to the database ({why}); reconnecting"
                    )),
                });
                false
            }
            Some(_) => false,
            None => {
                outlet.emit(UiEvent::error(
                    "the room list can no longer be read",
                    Some("Check the database settings."),
                ));
                return;
            }
        };
        if changed {
            let v = view(&rooms, &counts, &me);
            *shared.lock().unwrap_or_else(|p| p.into_inner()) = v.clone();
            outlet.emit(UiEvent::Rooms { rooms: v });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(name: &str, secured: bool, by: &str) -> RoomInfo {
        RoomInfo {
            name: name.into(),
            secured,
            created_at: 0,
            created_by: by.into(),
            check: secured.then(|| "c".into()),
        }
    }

    #[test]
    fn the_list_is_sorted_counts_public_rooms_and_marks_mine() {
        let rooms = BTreeMap::from([
            ("r2".to_string(), info("standup", false, "me")),
            ("r1".to_string(), info("Design", true, "other")),
            ("r3".to_string(), info("Zoo", false, "other")),
        ]);
        let counts = HashMap::from([("r2".to_string(), 3), ("r1".to_string(), 2)]);
        let v = view(&rooms, &counts, "me");
        let names: Vec<_> = v.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["Design", "standup", "Zoo"]);
        assert_eq!(v[0].occupants, None, "private: unknown");
        assert_eq!(v[1].occupants, Some(3));
        assert_eq!(v[2].occupants, Some(0));
        assert!(v[1].mine && !v[0].mine);
    }
}
