//! Calls inside one test process: up to three `Mesh::join`s on an in-process huddle-db, every
//! connection a real webrtc-rs PeerConnection on 127.0.0.1, media from synthetic sources.
//! What `crates/peer/tests/call.rs` checks through `huddle-peer` processes, checked here on the
//! engine's own API: renegotiation, mute, codec choice and departure, asserted on the events
//! and on the frames and sound that reached each member's sinks.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use common::{
    h264_first, id, is_member_joined, is_member_left, is_streams_changed, is_track_removed,
    sending, track_added, Member,
};
use media::MediaKind::{Audio, Screen, Video};
use mesh::event::LeaveReason;
use mesh::MeshEvent;

/// Three members form a full mesh; a's camera goes off and on again (the others see the flag,
/// the track end and come back, and the frames stop and resume); a shares its screen later
/// (a new m-section, renegotiated with both); c leaves and b's handle is dropped, and the
/// members still there see each go.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_members_renegotiate_a_camera_and_a_screen_and_see_each_other_leave() {
    let (_dir, server) = common::server().await;
    let url = server.url();
    let room = common::room(&url, "mesh-room").await;
    let av = sending(&[Audio, Video]);
    let mut a = Member::join(&url, &room, "a", av).await;
    let mut b = Member::join(&url, &room, "b", av).await;
    let mut c = Member::join(&url, &room, "c", av).await;

    // Everyone decodes everyone's camera and hears them.
    for (m, others) in [
        (&mut a, ["b", "c"]),
        (&mut b, ["a", "c"]),
        (&mut c, ["a", "b"]),
    ] {
        for o in others {
            m.frames_beyond(o, Video, 5).await;
            m.stats_from(0, o, &format!("audio from {o}"), |s| s.audio_packets > 10)
                .await;
        }
        m.audio_beyond(10).await;
    }

    // a's camera off: the flag, the track's end, and no more frames.
    let marks = [b.mark(), c.mark()];
    a.mesh().set_stream(Video, false).await.unwrap();
    for (m, mark) in [(&mut b, marks[0]), (&mut c, marks[1])] {
        m.wait_from(mark, "a's camera off", |ev| {
            is_streams_changed(ev, "a", Video, false)
        })
        .await;
        m.wait_from(mark, "a's video track removed", |ev| {
            is_track_removed(ev, "a", Video)
        })
        .await;
        m.stats_from(mark, "a", "a's video stopped", |s| {
            s.fps == 0.0 && s.audio_packets > 0
        })
        .await;
    }
    // On again: the same track resumes, frames flow again.
    let marks = [b.mark(), c.mark()];
    let before = [b.frames("a", Video), c.frames("a", Video)];
    a.mesh().set_stream(Video, true).await.unwrap();
    for (i, (m, mark)) in [(&mut b, marks[0]), (&mut c, marks[1])]
        .into_iter()
        .enumerate()
    {
        m.wait_from(mark, "a's camera on", |ev| {
            is_streams_changed(ev, "a", Video, true)
        })
        .await;
        m.wait_from(mark, "a's video track back", |ev| {
            track_added(ev, "a", Video).is_some()
        })
        .await;
        m.frames_beyond("a", Video, before[i] + 10).await;
        m.stats_from(mark, "a", "a's video at speed again", |s| s.fps >= 5.0)
            .await;
    }

    // A screen shared later needs a new m-section: both connections renegotiate.
    a.mesh().set_stream(Screen, true).await.unwrap();
    for m in [&mut b, &mut c] {
        m.wait_from(0, "a's screen track", |ev| {
            track_added(ev, "a", Screen).is_some()
        })
        .await;
        m.frames_beyond("a", Screen, 3).await;
    }

    // c leaves cleanly; b's handle is dropped, which leaves too.
    let (mark, mark_b) = (a.mark(), b.mark());
    c.leave().await;
    a.wait_from(mark, "c left", |ev| {
        is_member_left(ev, "c", LeaveReason::Left)
    })
    .await;
    b.wait_from(mark_b, "c left", |ev| {
        is_member_left(ev, "c", LeaveReason::Left)
    })
    .await;
    drop(b);
    a.wait_from(mark, "b left", |ev| {
        is_member_left(ev, "b", LeaveReason::Left)
    })
    .await;
    // Nobody came back meanwhile.
    let rejoined = a.seen[mark..]
        .iter()
        .filter(|ev| is_member_joined(ev, "b") || is_member_joined(ev, "c"))
        .count();
    assert_eq!(rejoined, 0, "{:?}", &a.seen[mark..]);
}

/// Muted, the others see my microphone off and receive nothing from it; unmuted, the same
/// track resumes at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn muting_stops_the_audio_others_get_and_unmuting_resumes_it() {
    let (_dir, server) = common::server().await;
    let url = server.url();
    let room = common::room(&url, "mute").await;
    let a = Member::join(&url, &room, "a", sending(&[Audio])).await;
    let mut b = Member::join(&url, &room, "b", sending(&[Audio])).await;
    b.stats_from(0, "a", "a's audio", |s| s.audio_packets > 20)
        .await;
    b.audio_beyond(10).await;

    let mark = b.mark();
    a.mesh().set_muted(true).await.unwrap();
    b.wait_from(mark, "a's microphone off", |ev| {
        is_streams_changed(ev, "a", Audio, false)
    })
    .await;
    b.wait_from(mark, "a's audio track removed", |ev| {
        is_track_removed(ev, "a", Audio)
    })
    .await;
    // Once the last packets in flight are in, the count stands still.
    let mut counts = Vec::new();
    for _ in 0..3 {
        let m = b.mark();
        counts.push(
            b.stats_from(m, "a", "stats while muted", |_| true)
                .await
                .audio_packets,
        );
    }
    assert!(
        counts[2] <= counts[0] + 1,
        "audio kept coming while muted: {counts:?}"
    );

    let mark = b.mark();
    a.mesh().set_muted(false).await.unwrap();
    b.wait_from(mark, "a's microphone on", |ev| {
        is_streams_changed(ev, "a", Audio, true)
    })
    .await;
    b.wait_from(mark, "a's audio track back", |ev| {
        track_added(ev, "a", Audio).is_some()
    })
    .await;
    let resumed = counts[2] + 20;
    b.stats_from(mark, "a", "a's audio flowing again", |s| {
        s.audio_packets > resumed
    })
    .await;
}

/// a and b both want H.264 and use it with each other, screen included; c wants VP8 only, so
/// a and b send it VP8; every picture decodes with its stamp intact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h264_between_members_that_both_want_it_vp8_with_the_rest() {
    let (_dir, server) = common::server().await;
    let url = server.url();
    let room = common::room(&url, "codecs").await;
    let v = sending(&[Video]);
    let mut a = Member::join_with(&url, &room, "a", v, h264_first).await;
    let mut b = Member::join_with(&url, &room, "b", v, h264_first).await;
    let mut c = Member::join(&url, &room, "c", v).await;
    for (m, pairs) in [
        (&mut a, [("b", "h264"), ("c", "vp8")]),
        (&mut b, [("a", "h264"), ("c", "vp8")]),
        (&mut c, [("a", "vp8"), ("b", "vp8")]),
    ] {
        for (from, want) in pairs {
            let ev = m
                .wait_from(0, &format!("{from}'s camera track"), |ev| {
                    track_added(ev, from, Video).is_some()
                })
                .await;
            assert_eq!(
                track_added(&ev, from, Video).unwrap(),
                want,
                "{from}'s camera"
            );
            m.stats_from(0, from, &format!("intact video from {from}"), |s| {
                s.intact_fps >= 5.0
            })
            .await;
            m.frames_beyond(from, Video, 5).await;
        }
    }
    // A screen added later goes over a new m-section in the connection's codec.
    a.mesh().set_stream(Screen, true).await.unwrap();
    for (m, want) in [(&mut b, "h264"), (&mut c, "vp8")] {
        let ev = m
            .wait_from(0, "a's screen track", |ev| {
                track_added(ev, "a", Screen).is_some()
            })
            .await;
        assert_eq!(track_added(&ev, "a", Screen).unwrap(), want, "a's screen");
        m.frames_beyond("a", Screen, 3).await;
    }
}

/// Both share their screens at the same moment: the offers cross, perfect negotiation
/// resolves it, and each gets the other's screen as well as the camera.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crossing_renegotiations_resolve() {
    let (_dir, server) = common::server().await;
    let url = server.url();
    let room = common::room(&url, "glare").await;
    let mut a = Member::join(&url, &room, "a", sending(&[Video])).await;
    let mut b = Member::join(&url, &room, "b", sending(&[Video])).await;
    a.frames_beyond("b", Video, 3).await;
    b.frames_beyond("a", Video, 3).await;
    let (ra, rb) = tokio::join!(
        a.mesh().set_stream(Screen, true),
        b.mesh().set_stream(Screen, true)
    );
    ra.unwrap();
    rb.unwrap();
    a.frames_beyond("b", Screen, 3).await;
    b.frames_beyond("a", Screen, 3).await;
    for (m, other) in [(&a, "b"), (&b, "a")] {
        assert!(m.frames(other, Video) > 3, "{}: camera lost", m.name);
    }
}

/// A member sharing its screen from the moment it joins answers the first offer, which has
/// no m-section for a screen (the offerer has none): it must offer its screen itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_screen_shared_at_join_reaches_the_first_offerer() {
    let (_dir, server) = common::server().await;
    let url = server.url();
    let room = common::room(&url, "early").await;
    let mut a = Member::join(&url, &room, "a", sending(&[Video])).await;
    let mut b = Member::join(&url, &room, "b", sending(&[Video, Screen])).await;
    let joined = a
        .wait_from(0, "b arrives", |ev| is_member_joined(ev, "b"))
        .await;
    assert!(
        matches!(&joined, MeshEvent::MemberJoined { peer_id, streams, .. }
            if *peer_id == id("b") && streams.get(Screen)),
        "{joined:?}"
    );
    a.frames_beyond("b", Video, 3).await;
    a.frames_beyond("b", Screen, 3).await;
    b.frames_beyond("a", Video, 3).await;
}
