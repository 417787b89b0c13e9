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

/// A candidate the PeerConnection gathered, to trickle over signaling. webrtc-rs 0.21 gives
/// its own candidates `sdpMid: ""` (neither a mid nor null) and no `usernameFragment`; a stack
/// that checks `sdpMid` as the specification says drops such a candidate. Under BUNDLE every
/// candidate belongs to the first m-section's transport, so the missing fields come from
/// `local_sdp` (the description the candidate was gathered for): its first `a=mid` (index 0)
/// and its `a=ice-ufrag`.
pub(crate) fn from_init(init: RTCIceCandidateInit, local_sdp: Option<&str>) -> Candidate {
    let line = |prefix: &str| {
        local_sdp.and_then(|sdp| {
            sdp.lines()
                .find_map(|l| l.trim_end().strip_prefix(prefix))
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        })
    };
    let given = init.sdp_mid.filter(|m| !m.is_empty());
    let (sdp_mid, sdp_m_line_index) = match given {
        Some(mid) => (Some(mid), init.sdp_mline_index),
        None => match line("a=mid:") {
            Some(mid) => (Some(mid), Some(0)),
            None => (None, init.sdp_mline_index),
        },
    };
    Candidate {
        candidate: init.candidate,
        sdp_mid,
        sdp_m_line_index,
        username_fragment: init
            .username_fragment
            .filter(|u| !u.is_empty())
            .or_else(|| line("a=ice-ufrag:")),
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
        assert_eq!(from_init(init, Some(SDP)), c);
    }

    const SDP: &str = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n\
        a=group:BUNDLE 0 1\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=ice-ufrag:UfRg\r\n\
        a=ice-pwd:p\r\na=mid:0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:1\r\n";

    /// webrtc-rs's own candidates: `sdpMid: ""` and no ufrag, completed from the description.
    #[test]
    fn a_candidate_without_mid_or_ufrag_gets_the_bundle_s_first() {
        let init = RTCIceCandidateInit {
            candidate: "candidate:1 1 udp 2122260223 192.0.2.7 5000 typ host".into(),
            sdp_mid: Some(String::new()),
            sdp_mline_index: Some(0),
            username_fragment: None,
            ..Default::default()
        };
        let c = from_init(init.clone(), Some(SDP));
        assert_eq!(c.sdp_mid.as_deref(), Some("0"));
        assert_eq!(c.sdp_m_line_index, Some(0));
        assert_eq!(c.username_fragment.as_deref(), Some("UfRg"));
        // Without a description there is nothing better than null (never "").
        let c = from_init(init, None);
        assert_eq!((c.sdp_mid, c.username_fragment), (None, None));
    }
}
