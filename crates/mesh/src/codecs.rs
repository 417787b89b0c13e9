//! The codecs Huddle negotiates, and which video codec a connection uses. Our offers number
//! them as below; an answer to another stack's offer takes the offer's numbers (Firefox: Opus
//! 109, VP8 120), and each connection's track is written with the numbers that connection
//! negotiated ([`negotiated_pt`]): the encoded stream is the same for every connection, only
//! the RTP header differs.
//!
//! A connection's video codec is settled before its first offer, from both occupant records
//! (`docs/protocol.md` §4a): each track is created for that one codec, so every m-section offers
//! exactly it. (webrtc-rs 0.21 builds a track's packetizer, and its m-section's codec list, from
//! the codec the track is created with.)

use media::codec::VideoCodec;
use rtc::peer_connection::configuration::media_engine::{
    MIME_TYPE_H264, MIME_TYPE_OPUS, MIME_TYPE_VP8,
};
use rtc::rtp_transceiver::rtp_sender::{RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters};

/// VP8's payload type.
pub const VP8_PT: u8 = 96;
/// H.264's payload type (Constrained Baseline, packetization mode 1).
pub const H264_PT: u8 = 102;
/// Opus's payload type.
pub const OPUS_PT: u8 = 111;

/// The payload type our offers give `codec`.
pub fn video_pt(codec: VideoCodec) -> u8 {
    match codec {
        VideoCodec::Vp8 => VP8_PT,
        VideoCodec::H264 => H264_PT,
    }
}

/// `codec` at 90 kHz with the feedback a receiver needs (NACK, PLI, FIR, transport-cc).
pub fn video_codec(codec: VideoCodec) -> RTCRtpCodecParameters {
    let fb = |typ: &str, parameter: &str| RTCPFeedback {
        typ: typ.into(),
        parameter: parameter.into(),
    };
    let (mime, fmtp) = match codec {
        VideoCodec::Vp8 => (MIME_TYPE_VP8, ""),
        // Level 3.1 covers 720p30; OpenH264 picks the level a bigger screen share needs, and
        // `level-asymmetry-allowed` lets each side send at its own level.
        VideoCodec::H264 => (
            MIME_TYPE_H264,
            "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
        ),
    };
    RTCRtpCodecParameters {
        rtp_codec: RTCRtpCodec {
            mime_type: mime.to_owned(),
            clock_rate: 90_000,
            channels: 0,
            sdp_fmtp_line: fmtp.to_owned(),
            rtcp_feedback: vec![
                fb("nack", ""),
                fb("nack", "pli"),
                fb("ccm", "fir"),
                fb("transport-cc", ""),
            ],
        },
        payload_type: video_pt(codec),
    }
}

/// The video codec of the connection between `me` and `them` (§4a): the first codec in the
/// list of the peer with the smaller id that the other peer lists too; VP8 when they share
/// none. Both ends compute the same answer from the same two records. Names neither side
/// knows are skipped; an empty list means VP8 only.
pub fn choose(me: &str, mine: &[VideoCodec], them: &str, theirs: &[String]) -> VideoCodec {
    let theirs: Vec<VideoCodec> = theirs
        .iter()
        .filter_map(|n| VideoCodec::from_name(n))
        .collect();
    let or_vp8 = |l: &[VideoCodec]| {
        if l.is_empty() {
            vec![VideoCodec::Vp8]
        } else {
            l.to_vec()
        }
    };
    let (mine, theirs) = (or_vp8(mine), or_vp8(&theirs));
    let (leader, other) = if me < them {
        (&mine, &theirs)
    } else {
        (&theirs, &mine)
    };
    leader
        .iter()
        .copied()
        .find(|c| other.contains(c))
        .unwrap_or(VideoCodec::Vp8)
}

/// Opus at 48 kHz (stereo in SDP, as WebRTC requires; we send mono) with in-band FEC.
pub fn opus_codec() -> RTCRtpCodecParameters {
    RTCRtpCodecParameters {
        rtp_codec: RTCRtpCodec {
            mime_type: MIME_TYPE_OPUS.to_owned(),
            clock_rate: 48_000,
            channels: 2,
            sdp_fmtp_line: "minptime=10;useinbandfec=1".to_owned(),
            rtcp_feedback: vec![],
        },
        payload_type: OPUS_PT,
    }
}

/// The payload type a connection negotiated for `ours` (our codec as [`video_codec`] or
/// [`opus_codec`] make it), from the codecs of its sender: the same MIME type (any case) and,
/// for H.264, the same packetization mode. None when it has none.
pub fn negotiated_pt(negotiated: &[RTCRtpCodecParameters], ours: &RTCRtpCodec) -> Option<u8> {
    let mode = |fmtp: &str| {
        fmtp.split(';')
            .find_map(|p| p.trim().strip_prefix("packetization-mode="))
            .unwrap_or("0")
            .trim()
            .to_owned()
    };
    let same_mime =
        |c: &&RTCRtpCodecParameters| c.rtp_codec.mime_type.eq_ignore_ascii_case(&ours.mime_type);
    let h264 = ours.mime_type.eq_ignore_ascii_case(MIME_TYPE_H264);
    negotiated
        .iter()
        .filter(same_mime)
        .find(|c| !h264 || mode(&c.rtp_codec.sdp_fmtp_line) == mode(&ours.sdp_fmtp_line))
        .map(|c| c.payload_type)
}

#[cfg(test)]
mod tests {
    use super::*;
    use VideoCodec::{Vp8, H264};

    #[test]
    fn the_negotiated_number_of_our_codec_is_found() {
        let numbered = |mut c: RTCRtpCodecParameters, pt: u8| {
            c.payload_type = pt;
            c
        };
        let firefox = [numbered(opus_codec(), 109), numbered(video_codec(Vp8), 120)];
        assert_eq!(
            negotiated_pt(&firefox, &video_codec(Vp8).rtp_codec),
            Some(120)
        );
        assert_eq!(negotiated_pt(&firefox, &opus_codec().rtp_codec), Some(109));
        assert_eq!(negotiated_pt(&firefox, &video_codec(H264).rtp_codec), None);
        // MIME types compare in any case; H.264 needs the same packetization mode.
        let mut lower = numbered(video_codec(Vp8), 97);
        lower.rtp_codec.mime_type = "video/vp8".into();
        assert_eq!(
            negotiated_pt(&[lower], &video_codec(Vp8).rtp_codec),
            Some(97)
        );
        let mut mode0 = numbered(video_codec(H264), 126);
        mode0.rtp_codec.sdp_fmtp_line = "profile-level-id=42e01f".into();
        let mode1 = numbered(video_codec(H264), 127);
        assert_eq!(
            negotiated_pt(&[mode0.clone(), mode1], &video_codec(H264).rtp_codec),
            Some(127)
        );
        assert_eq!(negotiated_pt(&[mode0], &video_codec(H264).rtp_codec), None);
    }

    fn names(l: &[&str]) -> Vec<String> {
        l.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn h264_only_when_both_want_it() {
        assert_eq!(
            choose("a", &[H264, Vp8], "b", &names(&["h264", "vp8"])),
            H264
        );
        assert_eq!(
            choose("b", &[H264, Vp8], "a", &names(&["h264", "vp8"])),
            H264
        );
        // One side does not list it (or lists nothing: a browser, an older peer).
        assert_eq!(choose("a", &[H264, Vp8], "b", &names(&["vp8"])), Vp8);
        assert_eq!(choose("a", &[H264, Vp8], "b", &[]), Vp8);
        assert_eq!(choose("a", &[Vp8], "b", &names(&["h264", "vp8"])), Vp8);
        assert_eq!(choose("a", &[], "b", &names(&["h264"])), Vp8);
    }

    #[test]
    fn both_ends_agree_even_when_their_orders_differ() {
        for (x, y) in [("a", "b"), ("b", "a")] {
            let one = choose(x, &[Vp8, H264], y, &names(&["h264", "vp8"]));
            let other = choose(y, &[H264, Vp8], x, &names(&["vp8", "h264"]));
            assert_eq!(one, other, "{x} and {y} disagree");
        }
        // The smaller id's order wins.
        assert_eq!(
            choose("a", &[Vp8, H264], "b", &names(&["h264", "vp8"])),
            Vp8
        );
        assert_eq!(
            choose("b", &[Vp8, H264], "a", &names(&["h264", "vp8"])),
            H264
        );
    }

    #[test]
    fn unknown_or_odd_names_are_skipped() {
        assert_eq!(choose("a", &[H264], "b", &names(&["av1", "H264"])), H264);
        assert_eq!(choose("a", &[H264], "b", &names(&["av1", "<script>"])), Vp8);
    }
}
