//! huddle-peer's device options: `--video camera[:N]`, `--audio mic[:NAME]`,
//! `--screen display[:N]`, `--speaker`, `--list-devices`, and `--report-frames` (what the
//! receiver decodes, for tests). Each kind is synthetic, off, or a real device.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use devices::{DeviceChoice, DeviceSources, Pick};
use media::source::{AudioSource, MediaError, VideoSource};
use mesh::remote::VideoSink;
use mesh::{MediaKind, Sources};
use serde_json::json;
use signal::room::StreamConfig;

/// Where one kind of media comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// A generated pattern or tone.
    Synthetic,
    /// Nothing.
    None,
    /// A real device: the default one, or the one named.
    Device(Pick),
}

impl Origin {
    fn pick(&self) -> Pick {
        match self {
            Origin::Device(p) => p.clone(),
            _ => Pick::Off,
        }
    }
}

fn parse(s: &str, device_word: &str) -> Result<Origin, String> {
    match s.split_once(':') {
        _ if s == "synthetic" => Ok(Origin::Synthetic),
        _ if s == "none" => Ok(Origin::None),
        _ if s == device_word => Ok(Origin::Device(Pick::Default)),
        Some((w, name)) if w == device_word && !name.is_empty() => {
            Ok(Origin::Device(Pick::Named(name.to_owned())))
        }
        _ => Err(format!(
            "expected synthetic, none, {device_word} or {device_word}:ID (see --list-devices)"
        )),
    }
}

/// `--video`: synthetic | none | camera | camera:N.
pub fn parse_video(s: &str) -> Result<Origin, String> {
    parse(s, "camera")
}

/// `--audio`: synthetic | none | mic | mic:NAME.
pub fn parse_audio(s: &str) -> Result<Origin, String> {
    parse(s, "mic")
}

/// `--screen`: synthetic | none | display | display:N.
pub fn parse_screen(s: &str) -> Result<Origin, String> {
    parse(s, "display")
}

/// `--speaker`: none | default | NAME.
pub fn parse_speaker(s: &str) -> Result<Pick, String> {
    Ok(match s {
        "none" => Pick::Off,
        "default" => Pick::Default,
        name => Pick::Named(name.to_owned()),
    })
}

/// Synthetic or real, per kind.
pub struct PeerSources {
    synthetic: Arc<dyn Sources>,
    /// The real devices (also for the speaker, events and microphone controls).
    pub devices: DeviceSources,
    video: Origin,
    audio: Origin,
    screen: Origin,
}

impl PeerSources {
    /// Sources for the three origins; real devices use `choice` for everything else.
    pub fn new(
        synthetic: Arc<dyn Sources>,
        video: Origin,
        audio: Origin,
        screen: Origin,
        mut choice: DeviceChoice,
    ) -> Self {
        choice.camera = video.pick();
        choice.microphone = audio.pick();
        choice.display = screen.pick();
        PeerSources {
            synthetic,
            devices: DeviceSources::new(choice),
            video,
            audio,
            screen,
        }
    }

    /// What to send: every kind asked for whose device is present, and why the others are not.
    pub fn streams(&self) -> (StreamConfig, Vec<String>) {
        let device = |o: &Origin| matches!(o, Origin::Device(_));
        let (usable, problems) = self.devices.usable(StreamConfig {
            audio: device(&self.audio),
            video: device(&self.video),
            screen: device(&self.screen),
        });
        let pick = |o: &Origin, ok: bool| match o {
            Origin::Synthetic => true,
            Origin::None => false,
            Origin::Device(_) => ok,
        };
        (
            StreamConfig {
                audio: pick(&self.audio, usable.audio),
                video: pick(&self.video, usable.video),
                screen: pick(&self.screen, usable.screen),
            },
            problems,
        )
    }
}

impl Sources for PeerSources {
    fn video(&self, kind: MediaKind) -> Result<Box<dyn VideoSource>, MediaError> {
        let origin = if kind == MediaKind::Screen {
            &self.screen
        } else {
            &self.video
        };
        match origin {
            Origin::Device(_) => self.devices.video(kind),
            _ => self.synthetic.video(kind),
        }
    }

    fn audio(&self) -> Result<Box<dyn AudioSource>, MediaError> {
        match self.audio {
            Origin::Device(_) => self.devices.audio(),
            _ => self.synthetic.audio(),
        }
    }
}

/// `--list-devices`: every device as one JSON object.
pub fn list_json() -> serde_json::Value {
    json!(devices::list_devices())
}

/// A video sink printing, at most twice a second per sender and kind, a `frame` event with the
/// decoded size and mean Y, U and V: enough for a test to check what arrived.
pub fn frame_reporter(start: Instant) -> VideoSink {
    let last: Mutex<HashMap<(String, MediaKind), Instant>> = Mutex::new(HashMap::new());
    Arc::new(
        move |peer: &str, kind: MediaKind, frame: &media::VideoFrame| {
            let now = Instant::now();
            {
                let mut last = last.lock().unwrap_or_else(|e| e.into_inner());
                let key = (peer.to_owned(), kind);
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
                "from": peer,
                "kind": kind,
                "width": frame.width,
                "height": frame.height,
                "mean_yuv": [mean(frame.y()).round(), mean(frame.u()).round(), mean(frame.v()).round()],
                "event": "frame",
                "t_ms": start.elapsed().as_millis() as u64,
            });
            println!("{line}");
        },
    )
}
