//! The JSON shapes of `docs/protocol.md`, and their checks: a node written by another client is
//! only believed when it has the right types and sizes.

use media::StreamConfig;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Longest SDP accepted.
pub const MAX_SDP: usize = 100_000;
/// Longest candidate line accepted.
pub const MAX_CANDIDATE: usize = 2_000;
/// Longest name (room or display) accepted, in characters.
pub const MAX_NAME: usize = 100;

/// A room as listed in `rooms/`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoomInfo {
    pub name: String,
    /// Private: joining needs the secret.
    pub secured: bool,
    /// Server time in ms since the epoch.
    #[serde(default)]
    pub created_at: i64,
    /// The creator's peer id.
    #[serde(default)]
    pub created_by: crate::id::PeerId,
    /// Private rooms: proof that a derived key is the right one (`docs/protocol.md` §6).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<String>,
}

impl RoomInfo {
    /// Parses and checks a `rooms/<id>` node; the name comes back fit to show
    /// ([`display_name`]).
    pub fn from_value(v: &Value) -> Option<Self> {
        let mut info: RoomInfo = serde_json::from_value(v.clone()).ok()?;
        let name_ok = !info.name.is_empty() && info.name.chars().count() <= MAX_NAME;
        info.name = display_name(&info.name);
        (name_ok && (!info.secured || info.check.is_some())).then_some(info)
    }
}

/// An `occupants/<space>/<peerId>` record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Occupant {
    pub name: String,
    /// Session of this join: a rejoin is a new session, and messages name the session they are for.
    pub session: String,
    /// Server time in ms since the epoch.
    pub joined_at: i64,
    /// Server ms of the last heartbeat.
    pub seen: i64,
    /// What the peer sends.
    pub streams: StreamConfig,
    /// The video codecs the peer wants to use, most preferred first (`docs/protocol.md` §4a);
    /// absent means VP8 only. On the wire one comma-separated string (`"h264,vp8"`): the
    /// database would turn an array into an object keyed "0", "1", ...
    #[serde(default, deserialize_with = "lenient_codecs")]
    pub codecs: Vec<String>,
}

/// Reads the codec list leniently: anything but a string is an empty list, so a strange value
/// costs the peer its codec preference, not its place in the room.
fn lenient_codecs<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let v = Value::deserialize(d)?;
    Ok(v.as_str()
        .map(|s| {
            s.split(',')
                .map(|c| c.trim().to_owned())
                .filter(|c| !c.is_empty() && c.len() <= 16)
                .take(MAX_CODECS)
                .collect()
        })
        .unwrap_or_default())
}

/// At most this many codec names are read from a record, each at most 16 characters.
pub const MAX_CODECS: usize = 8;

impl Occupant {
    /// Parses and checks a record; `None` for anything incomplete or malformed. The name comes
    /// back fit to show ([`display_name`]).
    pub fn from_value(v: &Value) -> Option<Self> {
        let mut o: Occupant = serde_json::from_value(v.clone()).ok()?;
        let ok = !o.name.is_empty() && o.name.chars().count() <= MAX_NAME && valid_id(&o.session);
        o.name = display_name(&o.name);
        ok.then_some(o)
    }

    /// The record to write on join (server timestamps for the times).
    pub fn join_value(
        name: &str,
        session: &str,
        streams: StreamConfig,
        codecs: &[String],
    ) -> Value {
        let mut v = json!({
            "name": name,
            "session": session,
            "joinedAt": {".sv": "timestamp"},
            "seen": {".sv": "timestamp"},
            "streams": streams,
        });
        if !codecs.is_empty() {
            v["codecs"] = json!(codecs.join(","));
        }
        v
    }
}

/// An offer or answer record, before decryption.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SdpRecord {
    /// Sender's session.
    pub session: String,
    /// Receiver's session.
    pub to: String,
    /// Increasing per sender session.
    pub seq: u64,
    /// Plain SDP (public rooms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdp: Option<String>,
    /// Encrypted SDP (private rooms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enc: Option<String>,
}

impl SdpRecord {
    /// Parses and checks a record.
    pub fn from_value(v: &Value) -> Option<Self> {
        let r: SdpRecord = serde_json::from_value(v.clone()).ok()?;
        let body_ok = match (&r.sdp, &r.enc) {
            (Some(s), None) => s.len() <= MAX_SDP,
            (None, Some(e)) => e.len() <= MAX_SDP * 2,
            _ => false,
        };
        (body_ok && r.seq > 0 && valid_id(&r.session) && valid_id(&r.to)).then_some(r)
    }
}

/// An ICE candidate as WebRTC describes it (`RTCIceCandidateInit`), in the JSON shape browsers
/// store (`candidate.toJSON()`): absent optional fields are written as `null`, never left out.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Candidate {
    /// The `candidate:` attribute line.
    pub candidate: String,
    #[serde(default)]
    pub sdp_mid: Option<String>,
    /// Stored as `sdpMLineIndex`.
    #[serde(default)]
    pub sdp_m_line_index: Option<u16>,
    #[serde(default)]
    pub username_fragment: Option<String>,
}

/// Why a record another client wrote is not believed. Such a record is skipped with a warning;
/// it never ends the room.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("not a {what}: {source}")]
    Shape {
        what: &'static str,
        source: serde_json::Error,
    },
    #[error("a {0} needs exactly one of its plain and its encrypted body")]
    Body(&'static str),
    #[error("a {0} is larger than the protocol allows")]
    TooLarge(&'static str),
    #[error("a session id in the {0} is malformed")]
    Session(&'static str),
}

impl Candidate {
    /// True when within the size limits.
    pub fn is_reasonable(&self) -> bool {
        self.candidate.len() <= MAX_CANDIDATE
            && self.sdp_mid.as_ref().is_none_or(|m| m.len() <= 64)
            && self
                .username_fragment
                .as_ref()
                .is_none_or(|u| u.len() <= 256)
    }

    /// Parses and checks a candidate object (a record's `candidate`, or an opened `enc`).
    pub fn from_value(v: &Value) -> Result<Self, RecordError> {
        let c = Candidate::deserialize(v).map_err(|source| RecordError::Shape {
            what: "candidate",
            source,
        })?;
        c.checked()
    }

    /// [`from_value`](Self::from_value) for the JSON bytes of an opened `enc`.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, RecordError> {
        let c: Candidate = serde_json::from_slice(bytes).map_err(|source| RecordError::Shape {
            what: "candidate",
            source,
        })?;
        c.checked()
    }

    fn checked(self) -> Result<Self, RecordError> {
        if self.is_reasonable() {
            Ok(self)
        } else {
            Err(RecordError::TooLarge("candidate"))
        }
    }
}

/// A candidate record, before decryption.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CandidateRecord {
    /// Sender's session.
    pub session: String,
    /// Receiver's session.
    pub to: String,
    /// Plain candidate (public rooms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub candidate: Option<Candidate>,
    /// Encrypted candidate (private rooms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enc: Option<String>,
}

impl CandidateRecord {
    /// Parses and checks a record.
    pub fn from_value(v: &Value) -> Result<Self, RecordError> {
        const WHAT: &str = "candidate record";
        let r = CandidateRecord::deserialize(v)
            .map_err(|source| RecordError::Shape { what: WHAT, source })?;
        match (&r.candidate, &r.enc) {
            (Some(c), None) if !c.is_reasonable() => return Err(RecordError::TooLarge(WHAT)),
            (None, Some(e)) if e.len() > MAX_CANDIDATE * 3 => {
                return Err(RecordError::TooLarge(WHAT))
            }
            (Some(_), None) | (None, Some(_)) => {}
            _ => return Err(RecordError::Body(WHAT)),
        }
        if !(valid_id(&r.session) && valid_id(&r.to)) {
            return Err(RecordError::Session(WHAT));
        }
        Ok(r)
    }
}

/// A peer id as `docs/protocol.md` §1 defines it: 8 to 64 chars of `[A-Za-z0-9_-]`. Keys read
/// from `occupants/<space>` that are not are no members (anyone may write any key to an open
/// database).
pub fn valid_peer_id(s: &str) -> bool {
    s.len() >= 8 && valid_id(s)
}

/// What is shown for a name another client wrote: control characters (terminal escapes, line
/// breaks) and Unicode's bidirectional controls (which make "Ann\u{202e}gpj.exe" read
/// "Annexe.jpg") are each replaced by U+FFFD, so a name can neither restyle a terminal or log
/// nor disguise itself or the text around it.
pub fn display_name(name: &str) -> String {
    name.chars()
        .map(|c| if is_hidden_control(c) { '\u{FFFD}' } else { c })
        .collect()
}

fn is_hidden_control(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{061C}'                      // Arabic letter mark
            | '\u{200E}' | '\u{200F}'       // left-to-right, right-to-left marks
            | '\u{2028}' | '\u{2029}'       // line and paragraph separators
            | '\u{202A}'..='\u{202E}'       // embeddings and overrides
            | '\u{2066}'..='\u{2069}') // isolates
}

/// Ids, sessions: 1..64 chars of `[A-Za-z0-9_-]`.
pub fn valid_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_records_are_refused() {
        let good = json!({"name": "Ann", "session": "s1", "joinedAt": 1, "seen": 2,
            "streams": {"audio": true, "video": false, "screen": false}});
        assert!(Occupant::from_value(&good).is_some());
        // The codec list: a string read leniently; anything else is no list, not a bad record.
        let mut with = good.clone();
        with["codecs"] = json!("h264, vp8,,");
        assert_eq!(Occupant::from_value(&with).unwrap().codecs, ["h264", "vp8"]);
        for odd in [json!(["h264"]), json!({"0": "h264"}), json!(7), json!(null)] {
            with["codecs"] = odd;
            assert!(Occupant::from_value(&with).unwrap().codecs.is_empty());
        }
        with["codecs"] = json!(format!("{},h264", "x".repeat(40)));
        assert_eq!(Occupant::from_value(&with).unwrap().codecs, ["h264"]);
        let v = Occupant::join_value(
            "Ann",
            "s1",
            StreamConfig::default(),
            &["h264".into(), "vp8".into()],
        );
        assert_eq!(v["codecs"], "h264,vp8");
        assert!(
            Occupant::join_value("Ann", "s1", StreamConfig::default(), &[])
                .get("codecs")
                .is_none()
        );
        let mut bad = good.clone();
        bad["name"] = json!(7);
        assert!(Occupant::from_value(&bad).is_none());
        let mut bad = good.clone();
        bad["session"] = json!("../../etc");
        assert!(Occupant::from_value(&bad).is_none());
        assert!(
            Occupant::from_value(&json!({"seen": 5})).is_none(),
            "a partial record"
        );

        // Names are shown neutralised, never refused for it (the record is otherwise fine).
        let mut odd = good.clone();
        odd["name"] = json!("Ann\u{1b}[31m\u{202e}gpj.exe\u{2066}\n");
        assert_eq!(
            Occupant::from_value(&odd).unwrap().name,
            "Ann\u{FFFD}[31m\u{FFFD}gpj.exe\u{FFFD}\u{FFFD}"
        );
        assert_eq!(display_name("Zoë 日本 🎉"), "Zoë 日本 🎉");
        let room = json!({"name": "Stand\u{7}up\u{200f}", "secured": false});
        assert_eq!(
            RoomInfo::from_value(&room).unwrap().name,
            "Stand\u{FFFD}up\u{FFFD}"
        );
        assert!(valid_peer_id("abcdefgh") && !valid_peer_id("abcdefg"));
        assert!(!valid_peer_id(&"a".repeat(65)) && !valid_peer_id("ünïcode-peer-id"));

        let sdp = json!({"session": "a", "to": "b", "seq": 1, "sdp": "v=0"});
        assert!(SdpRecord::from_value(&sdp).is_some());
        let huge = json!({"session": "a", "to": "b", "seq": 1, "sdp": "x".repeat(MAX_SDP + 1)});
        assert!(SdpRecord::from_value(&huge).is_none());
        let both = json!({"session": "a", "to": "b", "seq": 1, "sdp": "v", "enc": "e"});
        assert!(SdpRecord::from_value(&both).is_none());
        let extra = json!({"session": "a", "to": "b", "seq": 3, "sdp": "v", "evil": {"x": 1}});
        assert!(
            SdpRecord::from_value(&extra).is_some(),
            "unknown fields are ignored"
        );
    }
}
