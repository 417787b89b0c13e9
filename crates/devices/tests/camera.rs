//! The camera path with a synthetic camera behind the same `Grabber` trait as nokhwa's: pictures
//! in the camera's format come out as I420, an unplugged camera raises `DeviceEvent::Lost` and
//! ends only its own stream, and turning the stream off stops the capture thread.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use devices::camera::{spawn_capture, Grabbed, Grabber, FAILURES_BEFORE_LOST};
use devices::convert::PixelFormat;
use devices::events::{DeviceEvent, DeviceKind, EventSender};
use media::source::MediaError;

/// A YUYV camera showing one colour; unplugged after `frames` pictures.
struct FakeCamera {
    frames: u32,
    grabbed: u32,
    stopped: Arc<AtomicBool>,
}

impl Grabber for FakeCamera {
    fn grab(&mut self) -> Result<Grabbed, String> {
        std::thread::sleep(Duration::from_millis(5)); // a camera paces itself
        if self.grabbed >= self.frames {
            return Err("No such device (os error 19)".into());
        }
        self.grabbed += 1;
        // Y=81 U=90 V=240: red in BT.601 limited range.
        let data: Vec<u8> = [81u8, 90, 81, 240].repeat(64 * 48 / 2);
        Ok(Grabbed {
            format: PixelFormat::Yuyv,
            width: 64,
            height: 48,
            data: data.into(),
        })
    }
}

impl Drop for FakeCamera {
    fn drop(&mut self) {
        self.stopped.store(true, Ordering::SeqCst);
    }
}

#[test]
fn an_unplugged_camera_ends_its_stream_with_an_event() {
    let events = EventSender::new();
    let mut rx = events.subscribe();
    let stopped = Arc::new(AtomicBool::new(false));
    let s = stopped.clone();
    let mut src = spawn_capture(
        "fake".into(),
        move || {
            Ok(FakeCamera {
                frames: 5,
                grabbed: 0,
                stopped: s,
            })
        },
        events,
    )
    .unwrap();
    assert_eq!(src.describe(), "camera fake");
    let mut frames = 0;
    let err = loop {
        match src.next_frame() {
            Ok(f) => {
                assert_eq!((f.width, f.height), (64, 48));
                assert!(f.y().iter().all(|&y| y == 81));
                assert!(f.u().iter().all(|&u| u == 90) && f.v().iter().all(|&v| v == 240));
                frames += 1;
            }
            Err(e) => break e,
        }
    };
    assert!((1..=5).contains(&frames), "{frames} frames");
    assert!(matches!(err, MediaError::Device(_)), "{err}");
    assert!(
        err.to_string()
            .contains("the camera stopped: No such device"),
        "{err}"
    );
    assert_eq!(
        rx.try_recv().unwrap(),
        DeviceEvent::Lost {
            kind: DeviceKind::Camera,
            name: "fake".into(),
            message: "the camera stopped: No such device (os error 19)".into(),
        }
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while !stopped.load(Ordering::SeqCst) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        stopped.load(Ordering::SeqCst),
        "the camera was not released"
    );
}

#[test]
fn turning_the_stream_off_releases_the_camera() {
    let stopped = Arc::new(AtomicBool::new(false));
    let s = stopped.clone();
    let mut src = spawn_capture(
        "fake".into(),
        move || {
            Ok(FakeCamera {
                frames: u32::MAX,
                grabbed: 0,
                stopped: s,
            })
        },
        EventSender::new(),
    )
    .unwrap();
    src.next_frame().unwrap();
    drop(src);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !stopped.load(Ordering::SeqCst) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        stopped.load(Ordering::SeqCst),
        "the capture thread kept the camera"
    );
}

#[test]
fn a_camera_that_does_not_open_says_why() {
    let err = spawn_capture::<FakeCamera>(
        "busy".into(),
        || {
            Err(MediaError::Device(
                "camera 0: Device or resource busy".into(),
            ))
        },
        EventSender::new(),
    )
    .err()
    .unwrap();
    assert_eq!(
        err.to_string(),
        "media device error: camera 0: Device or resource busy"
    );
}

/// Fails `FAILURES_BEFORE_LOST - 1` grabs in a row now and then, and works in between.
struct Glitchy(u32);

impl Grabber for Glitchy {
    fn grab(&mut self) -> Result<Grabbed, String> {
        std::thread::sleep(Duration::from_millis(2));
        self.0 += 1;
        if self.0 % 10 < FAILURES_BEFORE_LOST - 1 {
            return Err("select timed out".into());
        }
        Ok(Grabbed {
            format: PixelFormat::Gray,
            width: 16,
            height: 16,
            data: vec![255u8; 256].into(),
        })
    }
}

#[test]
fn occasional_bad_grabs_do_not_end_the_stream() {
    let events = EventSender::new();
    let mut rx = events.subscribe();
    let mut src = spawn_capture("glitchy".into(), || Ok(Glitchy(0)), events).unwrap();
    for _ in 0..30 {
        let f = src.next_frame().unwrap();
        assert_eq!(f.y()[0], 235);
    }
    assert!(rx.try_recv().is_err(), "no Lost event for glitches");
}
