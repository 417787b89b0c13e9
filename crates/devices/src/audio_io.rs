//! cpal drivers for microphones and speakers, each owned by a supervisor thread that rebuilds the
//! stream when the audio system invalidates it, falls back to the default device when the chosen
//! one disappears, switches devices on request, and reports all of it as [`DeviceEvent`]s.
//!
//! The drivers only move samples: a microphone's callback sends [`InputChunk`]s to a channel
//! (read by [`crate::mic::Microphone`]), a speaker's callback drains a [`SharedFifo`] (filled by
//! [`crate::speaker::Speaker`]). Everything else is in those pure parts.

use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::thread::JoinHandle;
use std::time::Duration;

use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use cpal::{ErrorKind, FromSample, Sample, SampleFormat, SizedSample};
use media::source::MediaError;

use crate::events::{DeviceEvent, DeviceKind, EventSender};
use crate::mic::InputChunk;
use crate::speaker::SharedFifo;

/// Which direction a driver runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Capture (microphone).
    Input,
    /// Playback (speaker).
    Output,
}

impl Direction {
    fn kind(self) -> DeviceKind {
        match self {
            Direction::Input => DeviceKind::Microphone,
            Direction::Output => DeviceKind::Speaker,
        }
    }
}

/// The cpal device matching `selector` (its id, its exact name, or a unique part of its name,
/// ignoring case), or the default device when `selector` is None.
pub fn find_device(dir: Direction, selector: Option<&str>) -> Result<cpal::Device, MediaError> {
    let host = cpal::default_host();
    let what = dir.kind().as_str();
    let Some(sel) = selector else {
        let dev = match dir {
            Direction::Input => host.default_input_device(),
            Direction::Output => host.default_output_device(),
        };
        return dev.ok_or_else(|| MediaError::NoDevice(format!("no default {what} found")));
    };
    let devices: Vec<cpal::Device> = match dir {
        Direction::Input => host.input_devices().map(|d| d.collect()),
        Direction::Output => host.output_devices().map(|d| d.collect()),
    }
    .map_err(|e| MediaError::Device(format!("cannot list {what}s: {e}")))?;
    let lower = sel.to_lowercase();
    let mut partial = Vec::new();
    for d in devices {
        let id = d.id().map(|i| i.to_string()).unwrap_or_default();
        let name = device_name(&d);
        if id == sel || name.to_lowercase() == lower {
            return Ok(d);
        }
        if name.to_lowercase().contains(&lower) {
            partial.push(d);
        }
    }
    match partial.len() {
        1 => Ok(partial.remove(0)),
        0 => Err(MediaError::NoDevice(format!("no {what} named {sel:?}"))),
        n => Err(MediaError::NoDevice(format!(
            "{n} {what}s match {sel:?}: give more of the name or the id"
        ))),
    }
}

/// A device's human name (its id when it has no description).
pub fn device_name(d: &cpal::Device) -> String {
    d.description()
        .map(|desc| desc.name().to_owned())
        .or_else(|_| d.id().map(|i| i.to_string()))
        .unwrap_or_else(|_| "unknown device".into())
}

enum Ctl {
    /// The stream of generation `.0` reported an error.
    Failed(u64, cpal::Error),
    /// Use another device (None: the default); the answer says whether it worked.
    Switch(Option<String>, Sender<Result<String, MediaError>>),
    Stop,
}

/// Where a driver's samples go or come from.
#[derive(Clone)]
pub enum Endpoint {
    /// A microphone's chunks go to this channel.
    Capture(SyncSender<InputChunk>),
    /// A speaker plays what this FIFO holds.
    Playback(SharedFifo),
}

/// A running microphone or speaker; dropping it stops the device.
pub struct AudioDriver {
    ctl: Sender<Ctl>,
    thread: Option<JoinHandle<()>>,
}

impl AudioDriver {
    /// Opens the device `selector` (None: the default) and starts moving samples to or from
    /// `endpoint`. Fails with a message for the user when the device is missing or refuses.
    pub fn start(
        selector: Option<String>,
        endpoint: Endpoint,
        events: EventSender,
    ) -> Result<(AudioDriver, String), MediaError> {
        let (ctl, ctl_rx) = mpsc::channel();
        let (ready_tx, ready_rx) = mpsc::channel();
        let ctl_for_thread = ctl.clone();
        let thread = std::thread::Builder::new()
            .name("huddle-audio-device".into())
            .spawn(move || supervise(selector, endpoint, events, ctl_for_thread, ctl_rx, ready_tx))
            .map_err(|e| MediaError::Device(e.to_string()))?;
        let name = ready_rx
            .recv_timeout(Duration::from_secs(10))
            .map_err(|_| MediaError::Device("the audio device did not open in 10 s".into()))??;
        Ok((
            AudioDriver {
                ctl,
                thread: Some(thread),
            },
            name,
        ))
    }

    /// Switches to the device `selector` (None: the default) mid-call.
    pub fn switch(&self, selector: Option<String>) -> Result<String, MediaError> {
        let (tx, rx) = mpsc::channel();
        self.ctl
            .send(Ctl::Switch(selector, tx))
            .map_err(|_| MediaError::Ended)?;
        rx.recv_timeout(Duration::from_secs(10))
            .map_err(|_| MediaError::Device("the audio device did not switch in 10 s".into()))?
    }
}

impl Drop for AudioDriver {
    fn drop(&mut self) {
        let _ = self.ctl.send(Ctl::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn dir_of(endpoint: &Endpoint) -> Direction {
    match endpoint {
        Endpoint::Capture(_) => Direction::Input,
        Endpoint::Playback(_) => Direction::Output,
    }
}

fn supervise(
    mut selector: Option<String>,
    endpoint: Endpoint,
    events: EventSender,
    ctl: Sender<Ctl>,
    ctl_rx: Receiver<Ctl>,
    ready: Sender<Result<String, MediaError>>,
) {
    let kind = dir_of(&endpoint).kind();
    let mut generation = 0u64;
    let mut current = match build(selector.as_deref(), &endpoint, &ctl, generation) {
        Ok((stream, name)) => {
            let _ = ready.send(Ok(name.clone()));
            Some((stream, name))
        }
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    while let Ok(msg) = ctl_rx.recv() {
        match msg {
            Ctl::Stop => return,
            Ctl::Failed(g, _) if g != generation => {} // from a stream already replaced
            Ctl::Failed(_, e) => match e.kind() {
                // Reported, but the stream goes on.
                ErrorKind::DeviceChanged | ErrorKind::Xrun | ErrorKind::RealtimeDenied => {
                    tracing::debug!(error = %e, "audio stream notice");
                }
                _ => {
                    tracing::warn!(error = %e, kind = kind.as_str(), "audio stream failed; rebuilding");
                    let lost_name = current.take().map(|(_, n)| n).unwrap_or_default();
                    generation += 1;
                    // The same device first (an invalidated stream), then the default one.
                    let rebuilt = build(selector.as_deref(), &endpoint, &ctl, generation)
                        .or_else(|_| build(None, &endpoint, &ctl, generation));
                    match rebuilt {
                        Ok((stream, name)) => {
                            events.send(DeviceEvent::Rebuilt {
                                kind,
                                name: name.clone(),
                            });
                            current = Some((stream, name));
                        }
                        Err(err) => events.send(DeviceEvent::Lost {
                            kind,
                            name: lost_name,
                            message: format!("{e}; no other {} works: {err}", kind.as_str()),
                        }),
                    }
                }
            },
            Ctl::Switch(sel, reply) => {
                match build(sel.as_deref(), &endpoint, &ctl, generation + 1) {
                    Ok((stream, name)) => {
                        generation += 1;
                        selector = sel;
                        // The old stream stops before the new one plays into the same endpoint.
                        drop(current.take());
                        events.send(DeviceEvent::Switched {
                            kind,
                            name: name.clone(),
                        });
                        current = Some((stream, name.clone()));
                        let _ = reply.send(Ok(name));
                    }
                    Err(e) => {
                        let _ = reply.send(Err(e));
                    }
                }
            }
        }
    }
}

/// Builds and starts a stream on the device `selector` for `endpoint`.
fn build(
    selector: Option<&str>,
    endpoint: &Endpoint,
    ctl: &Sender<Ctl>,
    generation: u64,
) -> Result<(cpal::Stream, String), MediaError> {
    let dir = dir_of(endpoint);
    let device = find_device(dir, selector)?;
    let name = device_name(&device);
    let refused =
        |e: cpal::Error| MediaError::Device(format!("{} {name:?}: {e}", dir.kind().as_str()));
    let config = match dir {
        Direction::Input => device.default_input_config(),
        Direction::Output => device.default_output_config(),
    }
    .map_err(refused)?;
    let format = config.sample_format();
    let config: cpal::StreamConfig = config.into();
    let ctl = ctl.clone();
    let on_error = move |e: cpal::Error| {
        let _ = ctl.send(Ctl::Failed(generation, e));
    };
    let stream = match endpoint {
        Endpoint::Capture(tx) => {
            let (rate, channels) = (config.sample_rate, config.channels);
            macro_rules! input {
                ($t:ty) => {{
                    let tx = tx.clone();
                    device.build_input_stream::<$t, _, _>(
                        config,
                        move |data: &[$t], _| {
                            let samples = data.iter().map(|s| s.to_sample::<f32>()).collect();
                            // A full channel means the call is behind: drop, never block here.
                            let _ = tx.try_send(InputChunk {
                                rate,
                                channels,
                                samples,
                            });
                        },
                        on_error,
                        None,
                    )
                }};
            }
            match format {
                SampleFormat::F32 => input!(f32),
                SampleFormat::I16 => input!(i16),
                SampleFormat::I32 => input!(i32),
                SampleFormat::U16 => input!(u16),
                SampleFormat::U8 => input!(u8),
                SampleFormat::I8 => input!(i8),
                f => {
                    return Err(MediaError::Unsupported(format!(
                        "{name}: sample format {f}"
                    )))
                }
            }
        }
        Endpoint::Playback(fifo) => {
            fifo.reset(config.sample_rate);
            let channels = usize::from(config.channels);
            match format {
                SampleFormat::F32 => output::<f32>(&device, &config, fifo, channels, on_error),
                SampleFormat::I16 => output::<i16>(&device, &config, fifo, channels, on_error),
                SampleFormat::I32 => output::<i32>(&device, &config, fifo, channels, on_error),
                SampleFormat::U16 => output::<u16>(&device, &config, fifo, channels, on_error),
                f => {
                    return Err(MediaError::Unsupported(format!(
                        "{name}: sample format {f}"
                    )))
                }
            }
        }
    }
    .map_err(refused)?;
    stream.play().map_err(refused)?;
    Ok((stream, name))
}

fn output<T: SizedSample + FromSample<f32>>(
    device: &cpal::Device,
    config: &cpal::StreamConfig,
    fifo: &SharedFifo,
    channels: usize,
    on_error: impl FnMut(cpal::Error) + Send + 'static,
) -> Result<cpal::Stream, cpal::Error> {
    let fifo = fifo.clone();
    let mut scratch: Vec<f32> = Vec::new();
    device.build_output_stream::<T, _, _>(
        *config,
        move |out: &mut [T], _| {
            scratch.resize(out.len(), 0.0);
            fifo.lock().pull(&mut scratch, channels);
            for (o, s) in out.iter_mut().zip(&scratch) {
                *o = T::from_sample(*s);
            }
        },
        on_error,
        None,
    )
}
