//! Database paths of the protocol (`docs/protocol.md` §2) and the random identifiers.

/// Alphabet of ids, sessions and room ids: safe as database keys and in URLs.
const ID_CHARS: &[u8; 64] = b"-0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz";

/// A random id of `len` characters (64 possible each: 16 are 96 bits).
pub fn random_id(len: usize) -> String {
    (0..len)
        .map(|_| ID_CHARS[rand::random_range(0..64)] as char)
        .collect()
}

/// The list of rooms.
pub const ROOMS: &str = "rooms";

/// `rooms/<roomId>`.
pub fn room(room_id: &str) -> String {
    format!("{ROOMS}/{room_id}")
}

/// The owners of private rooms' spaces: `spaces/<space>` = `{createdBy}`.
pub const SPACES: &str = "spaces";

/// `spaces/<space>`.
pub fn space(space: &str) -> String {
    format!("{SPACES}/{space}")
}

/// Everyone in every room, by space.
pub const OCCUPANTS: &str = "occupants";

/// `occupants/<space>`.
pub fn occupants(space: &str) -> String {
    format!("{OCCUPANTS}/{space}")
}

/// `occupants/<space>/<peer>`.
pub fn occupant(space: &str, peer: &str) -> String {
    format!("occupants/{space}/{peer}")
}

/// The three kinds of message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// `offers/`.
    Offer,
    /// `answers/`.
    Answer,
    /// `ice_candidates/`.
    Candidate,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Offer, Kind::Answer, Kind::Candidate];

    /// The top-level node.
    pub fn node(self) -> &'static str {
        match self {
            Kind::Offer => "offers",
            Kind::Answer => "answers",
            Kind::Candidate => "ice_candidates",
        }
    }

    /// The word used in encryption's associated data.
    pub fn aad_name(self) -> &'static str {
        match self {
            Kind::Offer => "offer",
            Kind::Answer => "answer",
            Kind::Candidate => "candidate",
        }
    }
}

/// `<kind>/<space>`: the whole room's messages of one kind.
pub fn all(kind: Kind, space: &str) -> String {
    format!("{}/{space}", kind.node())
}

/// `<kind>/<space>/<to>`: one peer's inbox.
pub fn inbox(kind: Kind, space: &str, to: &str) -> String {
    format!("{}/{space}/{to}", kind.node())
}

/// `<kind>/<space>/<to>/<from>`: the slot for messages from `from` to `to`.
pub fn slot(kind: Kind, space: &str, to: &str, from: &str) -> String {
    format!("{}/{space}/{to}/{from}", kind.node())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_valid_keys() {
        for _ in 0..100 {
            let id = random_id(20);
            assert_eq!(id.len(), 20);
            assert!(crate::room::model::valid_id(&id));
        }
        assert_eq!(
            slot(Kind::Candidate, "r", "bob", "ann"),
            "ice_candidates/r/bob/ann"
        );
    }
}
