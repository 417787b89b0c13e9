//! The codecs Huddle negotiates, with fixed payload types so one encoded stream can be written
//! once and fanned out to every connection.

use rtc::peer_connection::configuration::media_engine::{MIME_TYPE_OPUS, MIME_TYPE_VP8};
use rtc::rtp_transceiver::rtp_sender::{RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters};

/// VP8's payload type.
pub const VP8_PT: u8 = 96;
/// Opus's payload type.
pub const OPUS_PT: u8 = 111;

/// VP8 at 90 kHz with the feedback a receiver needs (NACK, PLI, FIR, transport-cc).
pub fn vp8_codec() -> RTCRtpCodecParameters {
    let fb = |typ: &str, parameter: &str| RTCPFeedback {
        typ: typ.into(),
        parameter: parameter.into(),
    };
    RTCRtpCodecParameters {
        rtp_codec: RTCRtpCodec {
            mime_type: MIME_TYPE_VP8.to_owned(),
            clock_rate: 90_000,
            channels: 0,
            sdp_fmtp_line: String::new(),
            rtcp_feedback: vec![
                fb("nack", ""),
                fb("nack", "pli"),
                fb("ccm", "fir"),
                fb("transport-cc", ""),
            ],
        },
        payload_type: VP8_PT,
    }
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
