//! Huddle's real devices, behind the same traits as the synthetic sources: cameras (nokhwa),
//! microphones and speakers (cpal), screens (scrap), and the echo cancellation, noise
//! suppression and gain control that sit between speaker and microphone (sonora, a pure-Rust
//! port of WebRTC's audio processing).
//!
//! # For the app
//!
//! - [`list_devices`] fills the pickers: cameras, microphones, speakers and displays, each with an
//!   `id` and a human `name`.
//! - [`DeviceSources::new`] with a [`DeviceSetup`] (a [`DeviceChoice`] per stream: a device, the
//!   synthetic test source, or nothing) gives the engine's [`media::source::Sources`]; its
//!   [`DeviceSources::speaker`] gives the [`media::source::AudioSink`] for
//!   `MeshConfig::audio_sink`. Both share one echo canceller.
//! - [`DeviceSources::usable`] says which of the wanted streams have a device (join with those,
//!   show the messages for the others); a missing device never panics or ends the call.
//! - [`DeviceSources::events`] reports devices lost mid-call (turn that stream off), streams
//!   rebuilt, switches, and the "you are muted but speaking" hint.
//! - [`DeviceSources::mic_control`] mutes, toggles noise suppression and reads the level;
//!   [`DeviceSources::switch_microphone`] / [`DeviceSources::switch_speaker`] change devices
//!   mid-call.
//!
//! See `examples/devices.rs` for a runnable tour.
//!
//! # Layout
//!
//! Pure cores that tests drive with generated signals — [`convert`] (pixels to I420),
//! [`resample`] (any rate to 48 kHz), [`processing`] (AEC/NS/AGC), [`mic::MicPipeline`],
//! [`speaker::PlayoutFifo`], [`screen::ChangeGate`], [`camera::choose_mode`] — and thin drivers
//! around them: [`audio_io`] (cpal), [`camera`] (nokhwa), [`screen`] (scrap).

#![forbid(unsafe_code)]

pub mod audio_io;
pub mod camera;
pub mod choice;
pub mod convert;
pub mod events;
pub mod list;
pub mod mic;
pub mod processing;
pub mod resample;
pub mod screen;
pub mod signals;
pub mod sources;
pub mod speaker;
mod threaded;
pub mod window;

pub use events::{DeviceEvent, DeviceKind};

use media::source::MediaError;

/// A device error as a sentence for the user, without the error type's generic prefix.
pub fn message(e: &MediaError) -> String {
    match e {
        MediaError::NoDevice(m) | MediaError::Device(m) | MediaError::Unsupported(m) => m.clone(),
        MediaError::Ended => e.to_string(),
    }
}
pub use choice::DeviceChoice;
pub use list::{list_devices, DeviceInfo, DeviceList};
pub use mic::MicControl;
pub use processing::{ProcessingSettings, SharedProcessor, VoiceProcessor};
pub use sources::{DeviceSetup, DeviceSources, VideoTap};
pub use speaker::Speaker;
