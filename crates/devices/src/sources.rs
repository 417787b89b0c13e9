//! The app's and huddle-peer's entry point: a [`DeviceSetup`] becomes the engine's
//! [`Sources`] (camera, microphone, screen: real devices or synthetic ones) and its
//! [`media::source::AudioSink`] (speaker), sharing one echo canceller, with one stream of
//! [`DeviceEvent`]s and live microphone controls.

use std::sync::{Arc, Mutex, Weak};

use media::source::{AudioSource, MediaError, SharedAudioSink, Sources, VideoSource};
use media::synthetic::SyntheticSources;
use media::{MediaKind, StreamConfig, VideoFrame};
use tokio::sync::broadcast;

use crate::audio_io::{AudioDriver, Endpoint};
use crate::camera::{self, CameraMode};
use crate::choice::DeviceChoice;
use crate::convert::PixelFormat;
use crate::events::{DeviceEvent, EventSender};
use crate::mic::{MicControl, MicPipeline, Microphone};
use crate::processing::{ProcessingSettings, SharedProcessor};
use crate::screen;
use crate::speaker::{SharedFifo, Speaker};

/// Every stream's device and how to capture: what the user picked in the device settings, or
/// huddle-peer's flags.
#[derive(Clone, Debug)]
pub struct DeviceSetup {
    pub camera: DeviceChoice,
    pub microphone: DeviceChoice,
    pub speaker: DeviceChoice,
    /// The display to share.
    pub display: DeviceChoice,
    /// The camera size and rate wanted (the closest mode is used; format ignored). A synthetic
    /// camera has exactly this size and rate, a synthetic screen twice the size at a third of
    /// the rate.
    pub camera_mode: CameraMode,
    /// Screen-share frame rate of a real display.
    pub screen_fps: u32,
    /// Echo cancellation, noise suppression, gain control.
    pub processing: ProcessingSettings,
}

impl Default for DeviceSetup {
    /// Default camera, microphone, speaker and display at 640x360 30 fps, screen at 5 fps,
    /// all processing on.
    fn default() -> Self {
        DeviceSetup {
            camera: DeviceChoice::Default,
            microphone: DeviceChoice::Default,
            speaker: DeviceChoice::Default,
            display: DeviceChoice::Default,
            camera_mode: CameraMode {
                width: 640,
                height: 360,
                fps: 30,
                format: PixelFormat::I420,
            },
            screen_fps: screen::DEFAULT_FPS,
            processing: ProcessingSettings::default(),
        }
    }
}

impl DeviceSetup {
    /// The choice for `kind`'s device (the camera for video, the display for a screen share).
    pub fn device_for(&self, kind: MediaKind) -> &DeviceChoice {
        match kind {
            MediaKind::Audio => &self.microphone,
            MediaKind::Video => &self.camera,
            MediaKind::Screen => &self.display,
        }
    }
}

/// Sees every camera and screen frame a call captures (the app shows them in my own tile).
pub type VideoTap = Arc<dyn Fn(MediaKind, &VideoFrame) + Send + Sync>;

/// The sources a [`DeviceSetup`] chooses, real devices or synthetic ones: give it to `Mesh::join`
/// as its sources, and [`DeviceSources::speaker`] as `MeshConfig::audio_sink`.
///
/// Devices open when the engine asks for them (joining, or turning a stream on) and close when
/// the stream stops. A device that is missing fails only its own stream, with a
/// [`MediaError::NoDevice`] in words for the user; use [`DeviceSources::usable`] before joining
/// to join with what is available.
pub struct DeviceSources {
    choice: DeviceSetup,
    tap: Option<VideoTap>,
    events: EventSender,
    processor: SharedProcessor,
    mic: MicControl,
    mic_driver: Mutex<Weak<AudioDriver>>,
    speaker_driver: Mutex<Weak<AudioDriver>>,
    /// Picked for the next screen share (see [`DeviceSources::share_next`]).
    share: Mutex<Option<DeviceChoice>>,
}

impl DeviceSources {
    /// Sources for `choice`. Nothing is opened yet.
    pub fn new(choice: DeviceSetup) -> Self {
        let processor = SharedProcessor::new(choice.processing);
        let mic = MicControl::new(Some(processor.clone()));
        DeviceSources {
            choice,
            tap: None,
            events: EventSender::new(),
            processor,
            mic,
            mic_driver: Mutex::new(Weak::new()),
            speaker_driver: Mutex::new(Weak::new()),
            share: Mutex::new(None),
        }
    }

    /// Hands every captured camera and screen frame to `tap` too.
    pub fn with_video_tap(mut self, tap: VideoTap) -> Self {
        self.tap = Some(tap);
        self
    }

    /// The choice these sources were made from.
    pub fn choice(&self) -> &DeviceSetup {
        &self.choice
    }

    fn synthetic(&self) -> SyntheticSources {
        let m = self.choice.camera_mode;
        SyntheticSources::new(m.width, m.height, m.fps)
    }

    /// Device events from now on (lost, rebuilt, switched, muted-but-speaking).
    pub fn events(&self) -> broadcast::Receiver<DeviceEvent> {
        self.events.subscribe()
    }

    /// Mute, noise suppression and the level meter of the microphone.
    pub fn mic_control(&self) -> MicControl {
        self.mic.clone()
    }

    /// The echo canceller shared by microphone and speaker.
    pub fn processor(&self) -> SharedProcessor {
        self.processor.clone()
    }

    /// Opens the chosen speaker: pass the result as `MeshConfig::audio_sink`. What it plays is
    /// what the microphone's echo canceller removes.
    pub fn speaker(&self) -> Result<SharedAudioSink, MediaError> {
        if !self.choice.speaker.is_device() {
            return Err(MediaError::NoDevice("no speaker chosen".into()));
        }
        let fifo = SharedFifo::new(media::SAMPLE_RATE);
        let (driver, name) = AudioDriver::start(
            self.choice.speaker.selector(),
            Endpoint::Playback(fifo.clone()),
            self.events.clone(),
        )?;
        let driver = Arc::new(driver);
        *self
            .speaker_driver
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Arc::downgrade(&driver);
        let speaker = Speaker::new(
            name,
            fifo,
            Some(self.processor.clone()),
            Some(Box::new(driver)),
        );
        Ok(Arc::new(Mutex::new(speaker)))
    }

    /// Switches the microphone mid-call (None: the default one). Returns the device's name.
    pub fn switch_microphone(&self, selector: Option<String>) -> Result<String, MediaError> {
        let driver = self
            .mic_driver
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .upgrade();
        driver
            .ok_or_else(|| MediaError::NoDevice("the microphone is not on".into()))?
            .switch(selector)
    }

    /// Switches the speaker mid-call (None: the default one). Returns the device's name.
    pub fn switch_speaker(&self, selector: Option<String>) -> Result<String, MediaError> {
        let driver = self
            .speaker_driver
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .upgrade();
        driver
            .ok_or_else(|| MediaError::NoDevice("the speaker is not on".into()))?
            .switch(selector)
    }

    /// Whether the device for `kind` is there, with the reason if not. Cameras and displays are
    /// looked up; a microphone is opened and closed again (audio systems list devices they cannot
    /// open).
    pub fn check(&self, kind: MediaKind) -> Result<(), MediaError> {
        if *self.choice.device_for(kind) == DeviceChoice::Synthetic {
            return Ok(());
        }
        match kind {
            MediaKind::Video => {
                let index = self.camera_index()?;
                let cams = camera::list()?;
                if cams.iter().any(|(i, _)| *i == index) {
                    Ok(())
                } else if cams.is_empty() {
                    Err(MediaError::NoDevice("no camera found".into()))
                } else {
                    Err(MediaError::NoDevice(format!("there is no camera {index}")))
                }
            }
            MediaKind::Screen => {
                let index = self.display_index()?;
                let displays = screen::list()?;
                match displays.len() > index {
                    true => Ok(()),
                    false => Err(MediaError::NoDevice(format!("there is no display {index}"))),
                }
            }
            MediaKind::Audio => {
                if self.choice.microphone == DeviceChoice::Off {
                    return Err(MediaError::NoDevice("no microphone chosen".into()));
                }
                // Listed is not enough (ALSA lists a default it cannot open): open and close it.
                let (tx, _rx) = std::sync::mpsc::sync_channel(1);
                AudioDriver::start(
                    self.choice.microphone.selector(),
                    Endpoint::Capture(tx),
                    EventSender::new(),
                )
                .map(drop)
            }
        }
    }

    /// The part of `wanted` whose devices are present, and a message for each one that is not:
    /// join with the first, show the second. The call goes on with what is available.
    pub fn usable(&self, wanted: StreamConfig) -> (StreamConfig, Vec<String>) {
        let mut problems = Vec::new();
        let usable = StreamConfig::from_fn(|kind| {
            if !wanted.get(kind) {
                return false;
            }
            match self.check(kind) {
                Ok(()) => true,
                Err(e) => {
                    problems.push(format!("{kind}: {}", crate::message(&e)));
                    false
                }
            }
        });
        (usable, problems)
    }

    fn camera_index(&self) -> Result<u32, MediaError> {
        match &self.choice.camera {
            DeviceChoice::Off | DeviceChoice::Synthetic => {
                Err(MediaError::NoDevice("no camera chosen".into()))
            }
            DeviceChoice::Default => Ok(camera::list()?.first().map(|(i, _)| *i).unwrap_or(0)),
            DeviceChoice::Named(s) => s
                .parse()
                .map_err(|_| MediaError::NoDevice(format!("{s:?} is not a camera number"))),
        }
    }

    /// What the next screen share opens instead of the configured display: a display or a
    /// window picked for this one share (`window:<id>`), or the test pattern.
    pub fn share_next(&self, choice: DeviceChoice) {
        *self.share.lock().unwrap_or_else(|e| e.into_inner()) = Some(choice);
    }

    fn open_share(&self) -> Result<Box<dyn VideoSource>, MediaError> {
        let picked = self.share.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let choice = picked.unwrap_or_else(|| self.choice.display.clone());
        if let DeviceChoice::Named(s) = &choice {
            if let Some(id) = crate::window::from_choice(s) {
                return crate::window::open(id, self.choice.screen_fps, self.events.clone());
            }
        }
        match choice {
            DeviceChoice::Synthetic => self.synthetic().video(MediaKind::Screen),
            other => screen::open(
                Self::index_of_display(&other)?,
                self.choice.screen_fps,
                self.events.clone(),
            ),
        }
    }

    fn display_index(&self) -> Result<usize, MediaError> {
        Self::index_of_display(&self.choice.display)
    }

    fn index_of_display(choice: &DeviceChoice) -> Result<usize, MediaError> {
        match choice {
            DeviceChoice::Off | DeviceChoice::Synthetic => {
                Err(MediaError::NoDevice("no display chosen".into()))
            }
            DeviceChoice::Default => Ok(0),
            DeviceChoice::Named(s) => s
                .parse()
                .map_err(|_| MediaError::NoDevice(format!("{s:?} is not a display number"))),
        }
    }
}

impl Sources for DeviceSources {
    fn video(&self, kind: MediaKind) -> Result<Box<dyn VideoSource>, MediaError> {
        let source = match (kind, self.choice.device_for(kind)) {
            (MediaKind::Screen, _) => self.open_share()?,
            (_, DeviceChoice::Synthetic) => self.synthetic().video(kind)?,
            _ => camera::open(
                self.camera_index()?,
                self.choice.camera_mode,
                self.events.clone(),
            )?,
        };
        Ok(match &self.tap {
            Some(tap) => Box::new(Tapped {
                inner: source,
                kind,
                tap: tap.clone(),
            }),
            None => source,
        })
    }

    fn audio(&self) -> Result<Box<dyn AudioSource>, MediaError> {
        match self.choice.microphone {
            DeviceChoice::Off => return Err(MediaError::NoDevice("no microphone chosen".into())),
            DeviceChoice::Synthetic => return self.synthetic().audio(),
            _ => {}
        }
        // Half a second of device chunks: plenty for a stalled encoder thread to catch up.
        let (tx, rx) = std::sync::mpsc::sync_channel(64);
        let (driver, name) = AudioDriver::start(
            self.choice.microphone.selector(),
            Endpoint::Capture(tx),
            self.events.clone(),
        )?;
        let driver = Arc::new(driver);
        *self.mic_driver.lock().unwrap_or_else(|e| e.into_inner()) = Arc::downgrade(&driver);
        let pipeline = MicPipeline::new(self.mic.clone(), self.events.clone());
        Ok(Box::new(Microphone::new(
            name,
            rx,
            pipeline,
            Some(Box::new(driver)),
        )))
    }
}

/// A video source whose frames are also handed to a [`VideoTap`].
struct Tapped {
    inner: Box<dyn VideoSource>,
    kind: MediaKind,
    tap: VideoTap,
}

impl VideoSource for Tapped {
    fn next_frame(&mut self) -> Result<VideoFrame, MediaError> {
        let frame = self.inner.next_frame()?;
        (self.tap)(self.kind, &frame);
        Ok(frame)
    }

    fn describe(&self) -> String {
        self.inner.describe()
    }
}
