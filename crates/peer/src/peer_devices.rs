//! huddle-peer's device options: `--video camera[:N]`, `--audio mic[:NAME]`,
//! `--screen display[:N]`, `--speaker`, `--list-devices`, and `--report-frames` (what the
//! receiver decodes, for tests). Each kind is synthetic, off, or a real device
//! ([`DeviceChoice`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use devices::{DeviceChoice, DeviceSetup, DeviceSources};
use media::{MediaKind, StreamConfig};
use mesh::remote::VideoSink;
use serde_json::json;

/// `--video`: synthetic | none | camera | camera:N.
pub fn parse_video(s: &str) -> Result<DeviceChoice, String> {
    DeviceChoice::from_flag(s, "camera")
}

/// `--audio`: synthetic | none | mic | mic:NAME.
pub fn parse_audio(s: &str) -> Result<DeviceChoice, String> {
    DeviceChoice::from_flag(s, "mic")
}

/// `--screen`: synthetic | none | display | display:N.
pub fn parse_screen(s: &str) -> Result<DeviceChoice, String> {
    DeviceChoice::from_flag(s, "display")
}

/// `--speaker`: none | default | NAME.
pub fn parse_speaker(s: &str) -> Result<DeviceChoice, String> {
    Ok(DeviceChoice::from(s))
}

/// The sources of the three flags, and what to send from the start: every kind asked for whose
/// device is present, with a message for each that is not.
///
/// `none` means "not at the start": a kind turned on later (`video on`) sends the synthetic
/// source, which is what tests of renegotiation rely on.
pub fn sources(
    video: &DeviceChoice,
    audio: &DeviceChoice,
    screen: &DeviceChoice,
    mut setup: DeviceSetup,
) -> (DeviceSources, StreamConfig, Vec<String>) {
    let later = |c: &DeviceChoice| match c {
        DeviceChoice::Off => DeviceChoice::Synthetic,
        other => other.clone(),
    };
    setup.camera = later(video);
    setup.microphone = later(audio);
    setup.display = later(screen);
    let sources = DeviceSources::new(setup);
    let wanted = StreamConfig::from_fn(|kind| {
        let flag = match kind {
            MediaKind::Audio => audio,
            MediaKind::Video => video,
            MediaKind::Screen => screen,
        };
        *flag != DeviceChoice::Off
    });
    let (streams, problems) = sources.usable(wanted);
    (sources, streams, problems)
}

/// `--list-devices`: every device as one JSON object.
pub fn list_json() -> serde_json::Value {
    json!(devices::list_devices())
}

/// A video sink printing, at most twice a second per sender and kind, a `frame` event with the
/// decoded size and mean Y, U and V: enough for a test to check what arrived.
pub fn frame_reporter(start: Instant) -> VideoSink {
    let last: Mutex<HashMap<(signal::PeerId, MediaKind), Instant>> = Mutex::new(HashMap::new());
    Arc::new(
        move |peer: &signal::PeerId, kind: MediaKind, frame: &media::VideoFrame| {
            let now = Instant::now();
            {
                let mut last = last.lock().unwrap_or_else(|e| e.into_inner());
                let key = (peer.clone(), kind);
                if last
                    .get(&key)
                    .is_some_and(|t| now.duration_since(*t) < Duration::from_millis(500))
                {
                    return;
                }
                last.insert(key, now);
            }
            let mean = |p: &[u8]| {
                p.iter().map(|&v| u64::from(v)).sum::<u64>() as f64 / p.len().max(1) as f64
            };
            let line = json!({
                "type": "frame",
                "peer": peer,
                "kind": kind,
                "width": frame.width,
                "height": frame.height,
                "mean_yuv": [mean(frame.y()).round(), mean(frame.u()).round(), mean(frame.v()).round()],
                "t_ms": start.elapsed().as_millis() as u64,
            });
            println!("{line}");
        },
    )
}
