//! Cameras through nokhwa (V4L2 on Linux, AVFoundation on macOS, Media Foundation on Windows):
//! pick the mode closest to what the call wants, preferring formats that need little
//! conversion, convert each picture to I420, and report an unplugged camera.

use std::time::Instant;

use media::source::{MediaError, VideoSource};
use nokhwa::pixel_format::RgbFormat;
use nokhwa::utils::{
    ApiBackend, CameraFormat, CameraIndex, FrameFormat, RequestedFormat, RequestedFormatType,
};

use crate::convert::{to_i420, PixelFormat, RawPicture};
use crate::events::{DeviceEvent, DeviceKind, EventSender};
use crate::threaded::{self, Offer};

/// One way a camera can capture.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CameraMode {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Frames per second.
    pub fps: u32,
    pub format: PixelFormat,
}

/// The mode of `modes` closest to `want` (width, height and fps; format ignored), or None when
/// there is none.
///
/// Closest means, in order: the smallest size at least as large as wanted (else the largest
/// below), then a frame rate at least as high as wanted and as close to it as possible, then the
/// cheapest format to convert (NV12/YUYV before RGB before MJPEG).
pub fn choose_mode(modes: &[CameraMode], want: CameraMode) -> Option<CameraMode> {
    let want_area = u64::from(want.width) * u64::from(want.height);
    modes.iter().copied().min_by_key(|m| {
        let area = u64::from(m.width) * u64::from(m.height);
        let big_enough = m.width >= want.width && m.height >= want.height;
        // Big enough and smallest first; then too small and largest first.
        let size_rank = if big_enough {
            (0, area - want_area.min(area))
        } else {
            (1, u64::MAX - area)
        };
        let fps_rank = if m.fps >= want.fps {
            (0, m.fps - want.fps)
        } else {
            (1, want.fps - m.fps)
        };
        (size_rank, fps_rank, m.format.conversion_cost())
    })
}

fn pixel_format(f: FrameFormat) -> PixelFormat {
    match f {
        FrameFormat::MJPEG => PixelFormat::Mjpeg,
        FrameFormat::YUYV => PixelFormat::Yuyv,
        FrameFormat::NV12 => PixelFormat::Nv12,
        FrameFormat::GRAY => PixelFormat::Gray,
        FrameFormat::RAWRGB => PixelFormat::Rgb24,
        FrameFormat::RAWBGR => PixelFormat::Bgr24,
    }
}

/// The cameras present now: (index, name). Empty when there are none (or no camera system).
pub fn list() -> Result<Vec<(u32, String)>, MediaError> {
    let cams = nokhwa::query(ApiBackend::Auto)
        .map_err(|e| MediaError::Device(format!("cannot list cameras: {e}")))?;
    Ok(cams
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let index = c.index().as_index().unwrap_or(i as u32);
            (index, c.human_name())
        })
        .collect())
}

/// One picture as a camera delivered it.
#[derive(Clone, Debug)]
pub struct Grabbed {
    pub format: PixelFormat,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// The bytes (shared, not copied, from the driver's buffer).
    pub data: bytes::Bytes,
}

/// Something that grabs pictures: a real camera, or a synthetic one in tests. Lives on the
/// capture thread only (camera handles are not `Send`).
pub trait Grabber {
    /// Waits for and returns the next picture; an error is one failed grab.
    fn grab(&mut self) -> Result<Grabbed, String>;
}

/// Grabs in a row that must fail before the camera counts as gone (one bad frame happens).
pub const FAILURES_BEFORE_LOST: u32 = 3;

/// Starts a capture thread: `open` makes the grabber there; every picture is converted to I420
/// and offered to the encoder. When grabbing fails [`FAILURES_BEFORE_LOST`] times in a row (the
/// camera was unplugged) it sends [`DeviceEvent::Lost`] and ends the stream with an error; the
/// rest of the call is untouched. The thread ends when the stream is dropped.
pub fn spawn_capture<G: Grabber + 'static>(
    name: String,
    open: impl FnOnce() -> Result<G, MediaError> + Send + 'static,
    events: EventSender,
) -> Result<Box<dyn VideoSource>, MediaError> {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let (tx, source) = threaded::channel(format!("camera {name}"));
    std::thread::Builder::new()
        .name("huddle-camera".into())
        .spawn(move || {
            let mut cam = match open() {
                Ok(c) => {
                    let _ = ready_tx.send(Ok(()));
                    c
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            let start = Instant::now();
            let mut failures = 0;
            loop {
                let pic = match cam.grab() {
                    Ok(p) => {
                        failures = 0;
                        p
                    }
                    Err(e) => {
                        failures += 1;
                        if failures < FAILURES_BEFORE_LOST {
                            continue;
                        }
                        let message = format!("the camera stopped: {e}");
                        events.send(DeviceEvent::Lost {
                            kind: DeviceKind::Camera,
                            name: name.clone(),
                            message: message.clone(),
                        });
                        tx.fail(MediaError::Device(message));
                        return;
                    }
                };
                let raw = RawPicture {
                    format: pic.format,
                    width: pic.width,
                    height: pic.height,
                    stride: 0,
                    data: &pic.data,
                };
                match to_i420(&raw, start.elapsed()) {
                    Ok(frame) => {
                        if tx.offer(frame) == Offer::Closed {
                            return;
                        }
                    }
                    Err(e) => tracing::debug!(error = %e, "dropping a camera frame"),
                }
            }
        })
        .map_err(|e| MediaError::Device(e.to_string()))?;
    match ready_rx.recv() {
        Ok(Ok(())) => Ok(Box::new(source)),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(MediaError::Device("the camera thread ended".into())),
    }
}

/// A nokhwa camera as a [`Grabber`]; its stream stops when dropped.
struct NokhwaGrabber(nokhwa::Camera);

impl Grabber for NokhwaGrabber {
    fn grab(&mut self) -> Result<Grabbed, String> {
        let buffer = self.0.frame().map_err(|e| e.to_string())?;
        let res = buffer.resolution();
        Ok(Grabbed {
            format: pixel_format(buffer.source_frame_format()),
            width: res.width(),
            height: res.height(),
            data: buffer.buffer_bytes(),
        })
    }
}

impl Drop for NokhwaGrabber {
    fn drop(&mut self) {
        let _ = self.0.stop_stream();
    }
}

/// Opens camera `index` at the mode closest to `want` and starts capturing on a thread of its
/// own (see [`spawn_capture`]).
pub fn open(
    index: u32,
    want: CameraMode,
    events: EventSender,
) -> Result<Box<dyn VideoSource>, MediaError> {
    let present = list()?;
    let Some((_, name)) = present.iter().find(|(i, _)| *i == index).cloned() else {
        return Err(MediaError::NoDevice(match present.len() {
            0 => "no camera found".to_owned(),
            n => format!("there is no camera {index} ({n} found: see --list-devices)"),
        }));
    };
    spawn_capture(
        format!("{index} ({name})"),
        move || start(index, want).map(NokhwaGrabber),
        events,
    )
}

fn start(index: u32, want: CameraMode) -> Result<nokhwa::Camera, MediaError> {
    let err = |e: nokhwa::NokhwaError| MediaError::Device(format!("camera {index}: {e}"));
    let mut cam = nokhwa::Camera::new(
        CameraIndex::Index(index),
        RequestedFormat::new::<RgbFormat>(RequestedFormatType::None),
    )
    .map_err(err)?;
    let formats = cam.compatible_camera_formats().map_err(err)?;
    let modes: Vec<CameraMode> = formats
        .iter()
        .map(|f| CameraMode {
            width: f.width(),
            height: f.height(),
            fps: f.frame_rate(),
            format: pixel_format(f.format()),
        })
        .collect();
    if let Some(best) = choose_mode(&modes, want) {
        if let Some(f) = formats
            .iter()
            .zip(&modes)
            .find(|(_, m)| **m == best)
            .map(|(f, _)| *f)
        {
            let fourcc = [f.format()];
            let request = RequestedFormat::with_formats(
                RequestedFormatType::Exact(CameraFormat::new_from(
                    f.width(),
                    f.height(),
                    f.format(),
                    f.frame_rate(),
                )),
                &fourcc,
            );
            cam.set_camera_requset(request).map_err(err)?;
        }
    }
    cam.open_stream().map_err(err)?;
    Ok(cam)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // test code: a panic is the failure report
mod tests {
    use super::*;

    fn m(width: u32, height: u32, fps: u32, format: PixelFormat) -> CameraMode {
        CameraMode {
            width,
            height,
            fps,
            format,
        }
    }

    #[test]
    fn closest_mode_prefers_size_then_rate_then_cheap_formats() {
        use PixelFormat::{Mjpeg, Yuyv};
        let want = m(640, 360, 30, PixelFormat::I420);
        let modes = [
            m(1920, 1080, 30, Mjpeg),
            m(1280, 720, 30, Mjpeg),
            m(1280, 720, 10, Yuyv),
            m(640, 480, 30, Mjpeg),
            m(640, 480, 30, Yuyv),
            m(640, 480, 15, Yuyv),
            m(320, 240, 30, Yuyv),
        ];
        // 640x480 is the smallest that covers 640x360; 30 fps; YUYV is cheaper than MJPEG.
        assert_eq!(choose_mode(&modes, want), Some(m(640, 480, 30, Yuyv)));
        // Nothing large enough: the largest below.
        let small = [m(320, 240, 30, Yuyv), m(160, 120, 30, Yuyv)];
        assert_eq!(choose_mode(&small, m(1280, 720, 30, Yuyv)), Some(small[0]));
        // A rate at least as high as wanted beats a closer but lower one.
        let rates = [m(640, 360, 25, Yuyv), m(640, 360, 60, Yuyv)];
        assert_eq!(choose_mode(&rates, want), Some(rates[1]));
        assert_eq!(choose_mode(&[], want), None);
    }
}
