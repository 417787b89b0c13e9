//! The encoders and feeds against real PeerConnections on loopback: what a codec refuses, and
//! keyframes asked for by a receiver that missed one.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::time::Instant;

use super::*;
use crate::event::MeshEvent;
use crate::pc::{self, NetConfig, PcEvent};
use crate::playout::AudioStreams;
use crate::remote::{self, Counters};
use media::synthetic::TestPattern;
use tokio::sync::mpsc;
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::peer_connection::PeerConnection;

/// Sends every local candidate of one side to the other; hands its remote tracks to `tracks`.
fn pump(
    mut events: mpsc::UnboundedReceiver<PcEvent>,
    other: Arc<dyn PeerConnection>,
    tracks: mpsc::UnboundedSender<Arc<dyn webrtc::media_stream::track_remote::TrackRemote>>,
) {
    tokio::spawn(async move {
        while let Some(ev) = events.recv().await {
            match ev {
                PcEvent::Candidate(c) => {
                    let _ = other.add_ice_candidate(c).await;
                }
                PcEvent::Track(t) => {
                    let _ = tracks.send(t);
                }
                PcEvent::Link(_) => {}
            }
        }
    });
}

/// A size one codec cannot take (OpenH264 stops at 3840x2160) costs only that codec's
/// peers their picture: the stream goes on in the other codec.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_size_h264_refuses_leaves_vp8_running() {
    let stream = start_video(
        MediaKind::Screen,
        Box::new(TestPattern::new(4096, 2160, 5)),
        5,
        2000,
    )
    .unwrap();
    let (mut vp8, mut h264) = (
        stream.subscribe(VideoCodec::Vp8).rx,
        stream.subscribe(VideoCodec::H264).rx,
    );
    for _ in 0..3 {
        let frame = tokio::time::timeout(Duration::from_secs(20), vp8.recv())
            .await
            .expect("VP8 keeps encoding")
            .unwrap();
        assert!(!frame.data.is_empty());
    }
    assert!(
        matches!(h264.try_recv(), Err(broadcast::error::TryRecvError::Empty)),
        "H.264 cannot encode 4096x2160"
    );
}

/// A receiver that missed the stream's keyframe (nothing forces one on connection here)
/// decodes video only because its PLI reaches the encoder: neither encoder makes periodic
/// keyframes of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_receiver_gets_a_vp8_keyframe_by_asking_for_it() {
    late_receiver_asks(VideoCodec::Vp8).await;
}

/// The same over H.264: the track, the payloader, the depacketizer and the decoder.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_receiver_gets_an_h264_keyframe_by_asking_for_it() {
    late_receiver_asks(VideoCodec::H264).await;
}

async fn late_receiver_asks(codec: VideoCodec) {
    let net = NetConfig {
        loopback_only: true,
        ..Default::default()
    };
    let pc::Built {
        pc: sender,
        events: sender_events,
        ..
    } = pc::build(&net, codec).await.unwrap();
    let pc::Built {
        pc: receiver,
        events: receiver_events,
        ..
    } = pc::build(&net, codec).await.unwrap();
    let stream = start_video(
        MediaKind::Video,
        Box::new(TestPattern::new(160, 96, 15)),
        15,
        300,
    )
    .unwrap();
    // Nobody takes the stream yet: no encoder runs.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (track, ssrc) = new_track(MediaKind::Video, codec).unwrap();
    let rtp_sender = sender
        .add_track(track.clone() as Arc<dyn TrackLocal>)
        .await
        .unwrap();
    let writer =
        stream
            .subscribe(codec)
            .write_into(track, ssrc, rtp_sender, LinkState::new(), false);
    // The feed starts at a keyframe of its own; written before the connection exists, it
    // is dropped, so the receiver can only decode by asking. (Negotiating at once raced:
    // on a fast run the feed's keyframe got through and nothing had to be asked.)
    tokio::time::sleep(Duration::from_millis(300)).await;

    let offer = sender.create_offer(None).await.unwrap();
    sender.set_local_description(offer.clone()).await.unwrap();
    receiver.set_remote_description(offer).await.unwrap();
    let answer = receiver.create_answer(None).await.unwrap();
    receiver
        .set_local_description(answer.clone())
        .await
        .unwrap();
    sender.set_remote_description(answer).await.unwrap();
    let (tracks_tx, mut tracks) = mpsc::unbounded_channel();
    pump(sender_events, receiver.clone(), tracks_tx.clone());
    pump(receiver_events, sender.clone(), tracks_tx);

    let counters = Counters::new(AudioStreams::new());
    let (events, mut events_rx) = mpsc::channel(64);
    // The track's codec as the receiving stack reports it: what went over the wire.
    let (codec_tx, codec_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let mut codec_tx = Some(codec_tx);
        while let Some(ev) = events_rx.recv().await {
            if let (MeshEvent::TrackAdded { codec, .. }, Some(tx)) = (ev, codec_tx.take()) {
                let _ = tx.send(codec);
            }
        }
    });
    let track = tokio::time::timeout(Duration::from_secs(10), tracks.recv())
        .await
        .unwrap()
        .unwrap();
    tokio::spawn(remote::receive(
        "sender".into(),
        track,
        counters.clone(),
        events,
        Instant::now(),
        None,
        tokio::sync::watch::channel(media::StreamConfig {
            video: true,
            ..Default::default()
        })
        .1,
    ));
    // Wait on the stamps, not the frame count: a frame is counted before its stamp is
    // read, so stopping at the fifth frame raced its stamp (CI saw "4 of 5").
    let deadline = Instant::now() + Duration::from_secs(10);
    while counters.intact.load(Ordering::Relaxed) < 5 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let frames = counters.frames.load(Ordering::Relaxed);
    let intact = counters.intact.load(Ordering::Relaxed);
    let asked = stream.keyframes(codec).forced_for_peers();
    let received_as = codec_rx.await.unwrap();
    writer.abort();
    let _ = sender.close().await;
    let _ = receiver.close().await;
    assert!(
        asked >= 1,
        "the PLI never reached the encoder ({frames} frames)"
    );
    assert!(frames >= 5, "only {frames} frames decoded");
    assert_eq!(
        received_as,
        codec.name(),
        "the track arrived in another codec"
    );
    assert!(
        intact >= 5,
        "only {intact} of {frames} frames read back their stamp"
    );
}

/// Issue 17: an offer that numbers the codecs its own way (Firefox: Opus 109, VP8 120) gets an
/// answer with its numbers, and our media must go out with them too: webrtc-rs refuses RTP
/// whose payload type the connection did not negotiate, so a sender that kept its own 96 sent
/// nothing while the connection said "connected" (one-way media, silently).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_goes_out_with_the_payload_types_of_an_offer_that_numbers_its_own_way() {
    let net = NetConfig {
        loopback_only: true,
        ..Default::default()
    };
    let codec = VideoCodec::Vp8;
    let pc::Built {
        pc: foreign,
        events: foreign_events,
        ..
    } = pc::build_numbered(&net, codec, Some((120, 109)))
        .await
        .unwrap();
    let pc::Built {
        pc: ours,
        events: our_events,
        ..
    } = pc::build(&net, codec).await.unwrap();
    // The other stack offers to send and receive video, as a browser with a camera does.
    let (their_track, _) = new_track(MediaKind::Video, codec).unwrap();
    foreign
        .add_track(their_track as Arc<dyn TrackLocal>)
        .await
        .unwrap();
    let offer = foreign.create_offer(None).await.unwrap();
    assert!(
        offer.sdp.contains("a=rtpmap:120 VP8/90000"),
        "{}",
        offer.sdp
    );
    foreign.set_local_description(offer.clone()).await.unwrap();
    ours.set_remote_description(offer).await.unwrap();
    let stream = start_video(
        MediaKind::Video,
        Box::new(TestPattern::new(160, 96, 15)),
        15,
        300,
    )
    .unwrap();
    let (track, ssrc) = new_track(MediaKind::Video, codec).unwrap();
    let sender = ours
        .add_track(track.clone() as Arc<dyn TrackLocal>)
        .await
        .unwrap();
    let writer = stream
        .subscribe(codec)
        .write_into(track, ssrc, sender, LinkState::new(), false);
    let answer = ours.create_answer(None).await.unwrap();
    assert!(
        answer.sdp.contains("a=rtpmap:120 VP8/90000"),
        "{}",
        answer.sdp
    );
    assert!(!answer.sdp.contains("a=rtpmap:96 "), "{}", answer.sdp);
    ours.set_local_description(answer.clone()).await.unwrap();
    foreign.set_remote_description(answer).await.unwrap();
    let (tracks_tx, mut tracks) = mpsc::unbounded_channel();
    pump(foreign_events, ours.clone(), tracks_tx.clone());
    pump(our_events, foreign.clone(), tracks_tx);

    let counters = Counters::new(AudioStreams::new());
    let (events, _events_rx) = mpsc::channel(64);
    let track = tokio::time::timeout(Duration::from_secs(10), tracks.recv())
        .await
        .expect("our track never reached the other side")
        .unwrap();
    tokio::spawn(remote::receive(
        "ours".into(),
        track,
        counters.clone(),
        events,
        Instant::now(),
        None,
        tokio::sync::watch::channel(media::StreamConfig {
            video: true,
            ..Default::default()
        })
        .1,
    ));
    let deadline = Instant::now() + Duration::from_secs(10);
    while counters.intact.load(Ordering::Relaxed) < 5 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let intact = counters.intact.load(Ordering::Relaxed);
    writer.abort();
    let _ = ours.close().await;
    let _ = foreign.close().await;
    assert!(intact >= 5, "only {intact} frames reached the other stack");
}
