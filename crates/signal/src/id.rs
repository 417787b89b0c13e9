//! The two ids that travel from the database through the mesh to the app: who someone is and
//! which room they are in. Both are strings on the wire (`docs/protocol.md` §1); the types keep
//! a room id from being passed where a peer id belongs, and say what a `String` field holds.

use std::borrow::Borrow;
use std::fmt;
use std::ops::Deref;

use serde::{Deserialize, Serialize};

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn new(id: impl Into<String>) -> Self {
                $name(id.into())
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// True for 1..64 characters of `[A-Za-z0-9_-]`, what the protocol accepts in a path.
            pub fn is_valid(&self) -> bool {
                crate::room::model::valid_id(&self.0)
            }

            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        // Lets maps keyed by the id be looked up with a `&str` taken from a database path.
        impl Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                $name(s)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                $name(s.to_owned())
            }
        }

        impl From<&String> for $name {
            fn from(s: &String) -> Self {
                $name(s.clone())
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl PartialEq<String> for $name {
            fn eq(&self, other: &String) -> bool {
                &self.0 == other
            }
        }
    };
}

id_type!(
    /// A participant: the same for all of one installation's sessions (a new session, not a new
    /// peer id, marks a rejoin).
    PeerId
);

id_type!(
    /// A room, as it appears under `rooms/` and in invite links.
    RoomId
);

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn ids_look_up_by_str_and_serialize_as_strings() {
        let mut m = HashMap::new();
        m.insert(PeerId::from("ann"), 1);
        assert_eq!(m.get("ann"), Some(&1));
        assert_eq!(
            serde_json::to_string(&RoomId::from("r1")).ok().as_deref(),
            Some("\"r1\"")
        );
        assert!(PeerId::from("a_b-9").is_valid());
        assert!(!PeerId::from("a/b").is_valid());
        assert_eq!(PeerId::from("x").to_string(), "x");
    }
}
