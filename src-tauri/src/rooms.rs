//! The live room list: rooms and, for public rooms, how many people are in them.

use std::collections::{BTreeMap, HashMap};

use signal::room::model::RoomInfo;
use signal::room::{DirectoryEvent, RoomDirectory, Signaling};
use signal::{PeerId, RoomId};

use crate::error::UserError;
use crate::events::RoomView;

/// A room's listing (its name, and whether it is private).
pub async fn info(sig: &Signaling, room: &RoomId) -> Result<RoomInfo, UserError> {
    Ok(sig.room_info(room).await?)
}

/// The list the page shows, sorted by name.
pub fn view(
    rooms: &BTreeMap<RoomId, RoomInfo>,
    counts: &HashMap<RoomId, usize>,
    me: &PeerId,
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
            mine: info.created_by == *me,
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

/// What the room list did.
#[derive(Debug)]
pub enum RoomsUpdate {
    /// The whole list now, sorted by name.
    List(Vec<RoomView>),
    /// The database went away; the list reconnects by itself.
    Lost(String),
    /// The list can no longer be read (it does not reconnect).
    Ended,
}

/// Follows the room directory; [`RoomsFeed::next`] yields the list on every change. It is
/// polled by the app core's loop, so its state changes only after an await returned (safe to
/// cancel in a `select!`).
pub struct RoomsFeed {
    me: PeerId,
    directory: RoomDirectory,
    rooms: BTreeMap<RoomId, RoomInfo>,
    counts: HashMap<RoomId, usize>,
    synced: bool,
}

impl RoomsFeed {
    pub fn follow(sig: &Signaling, me: PeerId) -> Self {
        RoomsFeed {
            me,
            directory: sig.watch_directory(),
            rooms: BTreeMap::new(),
            counts: HashMap::new(),
            synced: false,
        }
    }

    /// The next change worth showing.
    pub async fn next(&mut self) -> RoomsUpdate {
        loop {
            let changed = match self.directory.next().await {
                Some(DirectoryEvent::Listed { id, listing }) => {
                    match listing.occupants {
                        Some(n) => self.counts.insert(id.clone(), n),
                        None => self.counts.remove(&id),
                    };
                    self.rooms.insert(id, listing.info);
                    self.synced
                }
                Some(DirectoryEvent::Removed { id }) => {
                    self.rooms.remove(&id);
                    self.counts.remove(&id);
                    self.synced
                }
                Some(DirectoryEvent::Synced) => {
                    self.synced = true;
                    true
                }
                Some(DirectoryEvent::Disconnected(why)) => return RoomsUpdate::Lost(why),
                Some(_) => false,
                None => return RoomsUpdate::Ended,
            };
            if changed {
                return RoomsUpdate::List(view(&self.rooms, &self.counts, &self.me));
            }
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
            (RoomId::from("r2"), info("standup", false, "me")),
            (RoomId::from("r1"), info("Design", true, "other")),
            (RoomId::from("r3"), info("Zoo", false, "other")),
        ]);
        let counts = HashMap::from([(RoomId::from("r2"), 3), (RoomId::from("r1"), 2)]);
        let v = view(&rooms, &counts, &PeerId::from("me"));
        let names: Vec<_> = v.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["Design", "standup", "Zoo"]);
        assert_eq!(v[0].occupants, None, "private: unknown");
        assert_eq!(v[1].occupants, Some(3));
        assert_eq!(v[2].occupants, Some(0));
        assert!(v[1].mine && !v[0].mine);
    }
}
