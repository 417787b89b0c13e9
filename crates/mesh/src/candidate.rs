//! The one place an ICE candidate crosses between signaling's [`Candidate`] (as the room stores
//! it) and webrtc-rs's [`RTCIceCandidateInit`]: field for field, no JSON in between.

use signal::room::Candidate;
use webrtc::peer_connection::RTCIceCandidateInit;

/// A candidate from signaling, to add to the PeerConnection.
pub(crate) fn to_init(c: Candidate) -> RTCIceCandidateInit {
    RTCIceCandidateInit {
        candidate: c.candidate,
        sdp_mid: c.sdp_mid,
        sdp_mline_index: c.sdp_m_line_index,
        username_fragment: c.username_fragment,
        ..Default::default()
    }
}

/// A candidate the PeerConnection gathered, to trickle over signaling.
pub(crate) fn from_init(init: RTCIceCandidateInit) -> Candidate {
    Candidate {
        candidate: init.candidate,
        sdp_mid: init.sdp_mid,
        sdp_m_line_index: init.sdp_mline_index,
        username_fragment: init.username_fragment,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_survives_the_round_trip() {
        let c = Candidate {
            candidate: "candidate:1 1 udp 2122260223 192.0.2.7 5000 typ host".into(),
            sdp_mid: Some("0".into()),
            sdp_m_line_index: Some(1),
            username_fragment: Some("abcd".into()),
        };
        let init = to_init(c.clone());
        assert_eq!(init.sdp_mline_index, Some(1));
        assert_eq!(init.username_fragment.as_deref(), Some("abcd"));
        assert_eq!(from_init(init), c);
    }
}
