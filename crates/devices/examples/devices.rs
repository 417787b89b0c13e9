//! A tour of the API the app uses, runnable on any machine (with or without devices):
//!
//! 1. `list_devices()` for the pickers;
//! 2. `DeviceSources` from a `DeviceSetup`: which streams can be sent, and why not the others;
//! 3. the events and microphone controls;
//! 4. a speaker and microphone driven by synthetic devices through a simulated room, showing
//!    the echo canceller at work (what a laptop with real devices does);
//! 5. if an X display is there (`DISPLAY`), a few frames of screen capture.
//!
//! In the app, the same objects go to the engine:
//!
//! ```ignore
//! let sources = Arc::new(DeviceSources::new(choice));
//! let (streams, problems) = sources.usable(wanted);          // show `problems`
//! let config = MeshConfig { audio_sink: sources.speaker().ok(), ..Default::default() };
//! let mut device_events = sources.events();                   // Lost -> mesh.set_stream(kind, false)
//! let (mesh, events) = Mesh::join(&signaling, room, JoinOptions { streams, ..opts }, config, sources).await?;
//! ```
//!
//! Run: `cargo run -p devices --example devices`

use std::sync::mpsc;
use std::time::Duration;

use devices::events::EventSender;
use devices::mic::{InputChunk, MicControl, MicPipeline, Microphone};
use devices::signals::{speech, EchoPath};
use devices::speaker::{SharedFifo, Speaker};
use devices::{DeviceSetup, DeviceSources, ProcessingSettings, SharedProcessor};
use media::source::{AudioSink, Sources};
use media::AudioFrame;
use media::MediaKind;
use media::StreamConfig;

fn main() {
    // 1. What is plugged in.
    let list = devices::list_devices();
    println!(
        "devices: {}",
        serde_json::to_string_pretty(&list).unwrap_or_default()
    );

    // 2. The user's choice (defaults: first camera, default microphone and speaker, first
    //    display) and what of it works here.
    let sources = DeviceSources::new(DeviceSetup::default());
    let (usable, problems) = sources.usable(StreamConfig {
        audio: true,
        video: true,
        screen: true,
    });
    println!("can send: {usable:?}");
    for p in &problems {
        println!("not available: {p}");
    }

    // 3. Events and controls.
    let mut events = sources.events();
    let mic = sources.mic_control();
    mic.set_noise_suppression(false);
    println!("noise suppression on: {}", mic.noise_suppression());

    // 4. Speaker -> room -> microphone with the echo canceller between them.
    let processor = SharedProcessor::new(ProcessingSettings::default());
    let fifo = SharedFifo::new(44_100);
    let mut speaker = Speaker::new("synthetic", fifo.clone(), Some(processor.clone()), None);
    let (tx, rx) = mpsc::sync_channel(256);
    let mut microphone = Microphone::new(
        "synthetic",
        rx,
        MicPipeline::new(MicControl::new(Some(processor)), EventSender::new()),
        None,
    );
    let far = speech(6.0, 48_000, 120.0, 1);
    let mut room = EchoPath::laptop(44_100);
    let (mut heard, mut sent) = (0.0f64, 0.0f64);
    for (i, chunk) in far.chunks_exact(960).enumerate() {
        let frame = AudioFrame {
            samples: chunk
                .iter()
                .map(|&s| devices::resample::f32_to_i16(s))
                .collect(),
            pts: Duration::from_millis(20 * i as u64),
        };
        speaker.play(&frame); // what the engine's playout does every 20 ms
        let mut out = vec![0.0f32; 882];
        fifo.lock().pull(&mut out, 1); // what the sound card's callback does
        let echo = room.process(&out);
        if i >= 150 {
            heard += echo.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>();
        }
        let _ = tx.send(InputChunk {
            rate: 44_100,
            channels: 1,
            samples: echo,
        });
        while let Some(f) = microphone.try_frame() {
            if i >= 150 {
                sent += f
                    .samples
                    .iter()
                    .map(|&s| (f64::from(s) / 32768.0).powi(2))
                    .sum::<f64>();
            }
        }
    }
    println!(
        "echo heard by the microphone vs sent to the call: {:.1} dB less (after 3 s of learning)",
        10.0 * (heard / sent.max(1e-12)).log10()
    );

    // 5. Screen capture, when there is a screen.
    if usable.screen {
        match sources.video(MediaKind::Screen) {
            Ok(mut screen) => {
                for _ in 0..3 {
                    match screen.next_frame() {
                        Ok(f) => println!("screen frame {}x{} at {:?}", f.width, f.height, f.pts),
                        Err(e) => println!("screen: {e}"),
                    }
                }
            }
            Err(e) => println!("screen: {e}"),
        }
    }
    while let Ok(ev) = events.try_recv() {
        println!("device event: {ev:?}");
    }
}
