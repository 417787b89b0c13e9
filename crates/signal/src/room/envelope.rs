//! The envelope of a signaling message (`docs/protocol.md` §2 and §6). In a public room the
//! payload travels in the clear (`sdp`, `candidate`); in a private one it is sealed (`enc`) with
//! the room key, and the associated data binds it to its slot (kind, space, both peers, both
//! sessions and, for SDP, its `seq`), so a sealed message copied to another slot, replayed to a
//! later session, or sent by someone else does not open.
//!
//! Pure: no I/O; the driver seals what it writes and opens what the state machine accepted.

use super::crypto::{aad, CryptoError, RoomKey};
use super::model::{Candidate, CandidateRecord, RecordError, SdpRecord};
use super::paths::Kind;

/// Why an accepted message is not delivered. It is skipped with a warning; the room goes on.
#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    /// Plain in a private room, or sealed in a public one: not from a member of this room.
    #[error("the message is in the wrong form for this room (plain in a private room, or sealed in a public one)")]
    WrongForm,
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    /// It opened, but what was sealed is not an SDP string.
    #[error("the sealed SDP is not a string: {0}")]
    Sdp(serde_json::Error),
    #[error(transparent)]
    Record(#[from] RecordError),
}

/// The slot a message travels in: who sends it to whom, from which session to which.
#[derive(Clone, Copy, Debug)]
pub(super) struct Route<'a> {
    pub kind: Kind,
    pub space: &'a str,
    pub from: &'a str,
    pub to: &'a str,
    pub from_session: &'a str,
    pub to_session: &'a str,
}

impl Route<'_> {
    fn aad(&self, seq: Option<u64>) -> Vec<u8> {
        aad(
            self.kind.aad_name(),
            self.space,
            self.from,
            self.to,
            self.from_session,
            self.to_session,
            seq,
        )
    }
}

/// The offer or answer record for `sdp`, sealed when the room has a key.
pub(super) fn seal_sdp(
    key: Option<&RoomKey>,
    route: Route<'_>,
    seq: u64,
    sdp: String,
) -> SdpRecord {
    let (sdp, enc) = match key {
        None => (Some(sdp), None),
        Some(key) => {
            // Serialising a string cannot fail.
            let plain = serde_json::to_vec(&sdp).unwrap_or_default();
            (None, Some(key.seal(&plain, &route.aad(Some(seq)))))
        }
    };
    SdpRecord {
        session: route.from_session.to_owned(),
        to: route.to_session.to_owned(),
        seq,
        sdp,
        enc,
    }
}

/// The SDP in an accepted record that came in by `route`.
pub(super) fn open_sdp(
    key: Option<&RoomKey>,
    route: Route<'_>,
    record: &SdpRecord,
) -> Result<String, EnvelopeError> {
    match (&record.sdp, &record.enc, key) {
        (Some(sdp), None, None) => Ok(sdp.clone()),
        (None, Some(enc), Some(key)) => {
            let plain = key.open(enc, &route.aad(Some(record.seq)))?;
            serde_json::from_slice::<String>(&plain).map_err(EnvelopeError::Sdp)
        }
        _ => Err(EnvelopeError::WrongForm),
    }
}

/// The candidate record for `candidate`, sealed when the room has a key.
pub(super) fn seal_candidate(
    key: Option<&RoomKey>,
    route: Route<'_>,
    candidate: Candidate,
) -> CandidateRecord {
    let (candidate, enc) = match key {
        None => (Some(candidate), None),
        Some(key) => {
            // Serialising strings and numbers cannot fail.
            let plain = serde_json::to_vec(&candidate).unwrap_or_default();
            (None, Some(key.seal(&plain, &route.aad(None))))
        }
    };
    CandidateRecord {
        session: route.from_session.to_owned(),
        to: route.to_session.to_owned(),
        candidate,
        enc,
    }
}

/// The candidate in an accepted record that came in by `route`, checked like a plain one.
pub(super) fn open_candidate(
    key: Option<&RoomKey>,
    route: Route<'_>,
    record: &CandidateRecord,
) -> Result<Candidate, EnvelopeError> {
    let candidate = match (&record.candidate, &record.enc, key) {
        (Some(c), None, None) => c.clone(),
        (None, Some(enc), Some(key)) => Candidate::from_slice(&key.open(enc, &route.aad(None))?)?,
        _ => return Err(EnvelopeError::WrongForm),
    };
    if candidate.is_reasonable() {
        Ok(candidate)
    } else {
        Err(RecordError::TooLarge("candidate").into())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn route(kind: Kind) -> Route<'static> {
        Route {
            kind,
            space: "c_space",
            from: "ann-peer-id",
            to: "bob-peer-id",
            from_session: "s-ann",
            to_session: "s-bob",
        }
    }

    fn candidate() -> Candidate {
        Candidate {
            candidate: "candidate:1 1 udp 1 192.0.2.7 5000 typ host".into(),
            sdp_mid: Some("0".into()),
            sdp_m_line_index: Some(0),
            username_fragment: None,
        }
    }

    #[test]
    fn a_sealed_message_opens_only_in_its_own_slot() {
        let key = RoomKey::derive("hunter2", "room1").unwrap();
        let offer = seal_sdp(Some(&key), route(Kind::Offer), 3, "v=0".into());
        assert!(offer.sdp.is_none() && offer.enc.is_some());
        assert_eq!(
            open_sdp(Some(&key), route(Kind::Offer), &offer).unwrap(),
            "v=0"
        );
        // The same bytes read as an answer, or with another seq, do not open.
        assert!(matches!(
            open_sdp(Some(&key), route(Kind::Answer), &offer),
            Err(EnvelopeError::Crypto(CryptoError::Open))
        ));
        let replayed = SdpRecord { seq: 4, ..offer };
        assert!(open_sdp(Some(&key), route(Kind::Offer), &replayed).is_err());

        let c = seal_candidate(Some(&key), route(Kind::Candidate), candidate());
        assert!(c.candidate.is_none());
        assert_eq!(
            open_candidate(Some(&key), route(Kind::Candidate), &c).unwrap(),
            candidate()
        );
        let elsewhere = Route {
            from_session: "s-old",
            ..route(Kind::Candidate)
        };
        assert!(open_candidate(Some(&key), elsewhere, &c).is_err());
    }

    #[test]
    fn plain_and_sealed_do_not_mix() {
        let key = RoomKey::derive("hunter2", "room1").unwrap();
        let plain = seal_candidate(None, route(Kind::Candidate), candidate());
        assert_eq!(plain.candidate, Some(candidate()));
        assert_eq!(
            open_candidate(None, route(Kind::Candidate), &plain).unwrap(),
            candidate()
        );
        assert!(matches!(
            open_candidate(Some(&key), route(Kind::Candidate), &plain),
            Err(EnvelopeError::WrongForm)
        ));
        let sealed = seal_sdp(Some(&key), route(Kind::Answer), 1, "v=0".into());
        assert!(matches!(
            open_sdp(None, route(Kind::Answer), &sealed),
            Err(EnvelopeError::WrongForm)
        ));
    }

    #[test]
    fn a_sealed_candidate_that_is_not_one_is_an_error() {
        let key = RoomKey::derive("hunter2", "room1").unwrap();
        let r = route(Kind::Candidate);
        let record = CandidateRecord {
            session: "s-ann".into(),
            to: "s-bob".into(),
            candidate: None,
            enc: Some(key.seal(br#"{"sdpMid": 7}"#, &r.aad(None))),
        };
        assert!(matches!(
            open_candidate(Some(&key), r, &record),
            Err(EnvelopeError::Record(RecordError::Shape { .. }))
        ));
    }
}
