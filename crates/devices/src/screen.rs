//! Screen sharing through scrap (X11 SHM on Linux, DXGI on Windows, Quartz on macOS).
//!
//! Screens are captured at their native size (text must stay sharp) and at a low, bounded frame
//! rate (default 5 fps: reading speed, not motion). scrap grabs a whole new picture on every
//! call, so the capture thread paces itself, and compares each picture with the last one it
//! sent: an unchanged screen costs one memcmp, no conversion and no encoding. Once a second an
//! unchanged picture is sent again anyway, so a peer that joins (or lost a packet) still gets a
//! picture to start from.

use std::time::{Duration, Instant};

use media::source::{MediaError, Pacer, VideoSource};

use crate::convert::{to_i420, PixelFormat, RawPicture};
use crate::events::{DeviceEvent, DeviceKind, EventSender};
use crate::threaded::{self, Offer};

/// Highest screen-share frame rate accepted.
pub const MAX_FPS: u32 = 30;
/// Default screen-share frame rate.
pub const DEFAULT_FPS: u32 = 5;
/// An unchanged screen is re-sent this often.
pub const KEEPALIVE: Duration = Duration::from_secs(1);

/// What to do with a captured picture.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// It differs from the last one sent: convert and send it.
    Changed,
    /// Same as the last one, but that was long ago: send the last converted frame again.
    Repeat,
    /// Same as the last one: nothing to do.
    Skip,
}

/// Remembers the last picture sent and decides about the next one.
#[derive(Default)]
pub struct ChangeGate {
    last: Vec<u8>,
    sent_at: Option<Instant>,
}

impl ChangeGate {
    /// A gate that has seen nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Decides about `picture` captured at `now` (and remembers it when it is sent).
    pub fn decide(&mut self, picture: &[u8], now: Instant) -> Decision {
        let due = self
            .sent_at
            .is_none_or(|t| now.duration_since(t) >= KEEPALIVE);
        if self.last.as_slice() != picture {
            self.last.clear();
            self.last.extend_from_slice(picture);
            self.sent_at = Some(now);
            Decision::Changed
        } else if due {
            self.sent_at = Some(now);
            Decision::Repeat
        } else {
            Decision::Skip
        }
    }
}

/// A display that can be shared.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct DisplayInfo {
    /// Index for `--screen display:N`.
    pub index: usize,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Whether it is the primary display.
    pub primary: bool,
}

/// The displays present now. On Linux this needs an X11 display (`DISPLAY`).
pub fn list() -> Result<Vec<DisplayInfo>, MediaError> {
    let all = scrap::Display::all().map_err(no_screen)?;
    Ok(all
        .iter()
        .enumerate()
        .map(|(index, d)| DisplayInfo {
            index,
            width: d.width() as u32,
            height: d.height() as u32,
            primary: index == 0,
        })
        .collect())
}

/// One picture of display `index` now (the share picker's thumbnails).
pub fn capture(index: usize) -> Result<crate::window::Picture, MediaError> {
    let display = scrap::Display::all()
        .map_err(no_screen)?
        .into_iter()
        .nth(index)
        .ok_or_else(|| MediaError::NoDevice(format!("there is no display {index}")))?;
    let mut capturer = scrap::Capturer::new(display)
        .map_err(|e| MediaError::Device(format!("cannot capture display {index}: {e}")))?;
    let (w, h) = (capturer.width() as u32, capturer.height() as u32);
    for _ in 0..50 {
        match capturer.frame() {
            Ok(p) => {
                let stride = p.len() / h.max(1) as usize;
                let mut bgra = Vec::with_capacity((w * h * 4) as usize);
                for row in p.chunks(stride).take(h as usize) {
                    bgra.extend_from_slice(&row[..(w as usize * 4).min(row.len())]);
                }
                return Ok(crate::window::Picture {
                    width: w,
                    height: h,
                    bgra,
                });
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(e) => {
                return Err(MediaError::Device(format!(
                    "cannot capture display {index}: {e}"
                )))
            }
        }
    }
    Err(MediaError::Device(format!(
        "display {index} gave no picture"
    )))
}

fn no_screen(e: std::io::Error) -> MediaError {
    MediaError::NoDevice(format!(
        "no screen to capture ({e}); on Linux screen sharing needs an X11 session (DISPLAY)"
    ))
}

/// Starts sharing display `index` at `fps` (clamped to 1..=[`MAX_FPS`]).
pub fn open(
    index: usize,
    fps: u32,
    events: EventSender,
) -> Result<Box<dyn VideoSource>, MediaError> {
    let fps = fps.clamp(1, MAX_FPS);
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let (tx, source) = threaded::channel(format!("display {index}"));
    std::thread::Builder::new()
        .name(format!("huddle-screen-{index}"))
        .spawn(move || {
            // The capturer is not Send: it is created, used and dropped on this thread.
            let displays = match scrap::Display::all() {
                Ok(d) => d,
                Err(e) => {
                    let _ = ready_tx.send(Err(no_screen(e)));
                    return;
                }
            };
            let count = displays.len();
            let Some(display) = displays.into_iter().nth(index) else {
                let _ = ready_tx.send(Err(MediaError::NoDevice(format!(
                    "there is no display {index} ({count} found: see --list-devices)"
                ))));
                return;
            };
            let mut capturer = match scrap::Capturer::new(display) {
                Ok(c) => c,
                Err(e) => {
                    let _ = ready_tx.send(Err(MediaError::Device(format!(
                        "cannot capture display {index}: {e}"
                    ))));
                    return;
                }
            };
            let _ = ready_tx.send(Ok(()));
            let (w, h) = (capturer.width() as u32, capturer.height() as u32);
            let mut pacer = Pacer::from_fps(fps);
            let mut gate = ChangeGate::new();
            let mut last_frame = None;
            let start = Instant::now();
            let mut failures = 0;
            loop {
                pacer.wait();
                let picture = match capturer.frame() {
                    Ok(p) => {
                        failures = 0;
                        p
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                    Err(e) => {
                        failures += 1;
                        if failures < 3 {
                            continue;
                        }
                        let message = format!("screen capture stopped: {e}");
                        events.send(DeviceEvent::Lost {
                            kind: DeviceKind::Display,
                            name: format!("display {index}"),
                            message: message.clone(),
                        });
                        tx.fail(MediaError::Device(message));
                        return;
                    }
                };
                let frame = match gate.decide(&picture, Instant::now()) {
                    Decision::Skip => continue,
                    Decision::Repeat => last_frame.clone(),
                    Decision::Changed => {
                        let pic = RawPicture {
                            format: PixelFormat::Bgra,
                            width: w,
                            height: h,
                            stride: picture.len() / h.max(1) as usize,
                            data: &picture,
                        };
                        match to_i420(&pic, start.elapsed()) {
                            Ok(f) => {
                                last_frame = Some(f.clone());
                                Some(f)
                            }
                            Err(e) => {
                                tracing::debug!(error = %e, "dropping a screen picture");
                                None
                            }
                        }
                    }
                };
                if let Some(mut f) = frame {
                    f.pts = start.elapsed();
                    if tx.offer(f) == Offer::Closed {
                        return;
                    }
                }
            }
        })
        .map_err(|e| MediaError::Device(e.to_string()))?;
    match ready_rx.recv() {
        Ok(Ok(())) => Ok(Box::new(source)),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(MediaError::Device("the screen capture thread ended".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unchanged_pictures_are_skipped_and_repeated_once_a_second() {
        let mut gate = ChangeGate::new();
        let t0 = Instant::now();
        let a = vec![1u8; 64];
        let mut b = a.clone();
        b[63] = 2; // one byte differs: a changed screen
        assert_eq!(gate.decide(&a, t0), Decision::Changed);
        assert_eq!(
            gate.decide(&a, t0 + Duration::from_millis(200)),
            Decision::Skip
        );
        assert_eq!(
            gate.decide(&b, t0 + Duration::from_millis(400)),
            Decision::Changed
        );
        assert_eq!(
            gate.decide(&b, t0 + Duration::from_millis(1300)),
            Decision::Skip
        );
        assert_eq!(
            gate.decide(&b, t0 + Duration::from_millis(1400)),
            Decision::Repeat
        );
        assert_eq!(
            gate.decide(&b, t0 + Duration::from_millis(1600)),
            Decision::Skip
        );
    }
}
