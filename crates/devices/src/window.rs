//! Sharing one application window (X11), beside whole displays (`screen`).
//!
//! Windows are listed from the window manager's `_NET_CLIENT_LIST` (or, with no window manager,
//! the mapped children of the root window that have a title) and captured with `GetImage` after
//! `XCompositeRedirectWindow`: redirected, a window keeps its own pixels even where another
//! window covers it, so what is shared is the window, not whatever lies on top of it. The
//! capture thread paces itself and skips unchanged pictures exactly as a display share does
//! ([`crate::screen::ChangeGate`]); a window that is resized is followed, one that is closed ends
//! the share with a `Lost` event.
//!
//! Wayland has no such path: there a portal (xdg-desktop-portal's ScreenCast over PipeWire)
//! must ask the user; that is the next step (docs/devices.md). Windows and macOS list no
//! windows yet (displays only).

#[cfg(not(target_os = "linux"))]
use media::source::{MediaError, VideoSource};

/// A window that can be shared.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct WindowInfo {
    /// The X11 window id (what `DeviceChoice::Named("window:<id>")` carries).
    pub id: u32,
    /// Its title.
    pub title: String,
    pub width: u32,
    pub height: u32,
}

/// The prefix of a window in a device choice: `window:<id>`.
pub const CHOICE_PREFIX: &str = "window:";

/// The window id a device choice names, if it names one.
pub fn from_choice(choice: &str) -> Option<u32> {
    choice.strip_prefix(CHOICE_PREFIX)?.parse().ok()
}

/// A picture of a window or display, 8-bit BGRA, `width * 4` bytes per row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Picture {
    pub width: u32,
    pub height: u32,
    pub bgra: Vec<u8>,
}

impl Picture {
    /// A copy at most `max_w` x `max_h`, the aspect kept (box-averaged: thumbnails of text
    /// stay readable as shapes).
    pub fn scaled_to_fit(&self, max_w: u32, max_h: u32) -> Picture {
        let (w, h) = (self.width.max(1), self.height.max(1));
        let scale = f64::min(
            f64::from(max_w) / f64::from(w),
            f64::from(max_h) / f64::from(h),
        );
        if scale >= 1.0 {
            return self.clone();
        }
        let tw = ((f64::from(w) * scale).round() as u32).max(1);
        let th = ((f64::from(h) * scale).round() as u32).max(1);
        let mut out = Vec::with_capacity((tw * th * 4) as usize);
        for ty in 0..th {
            let (y0, y1) = (ty * h / th, ((ty + 1) * h / th).max(ty * h / th + 1));
            for tx in 0..tw {
                let (x0, x1) = (tx * w / tw, ((tx + 1) * w / tw).max(tx * w / tw + 1));
                let mut sum = [0u32; 4];
                let mut n = 0u32;
                for y in y0..y1.min(h) {
                    let row = (y * w) as usize * 4;
                    for x in x0..x1.min(w) {
                        let p = row + x as usize * 4;
                        for (c, s) in sum.iter_mut().enumerate() {
                            *s += u32::from(self.bgra.get(p + c).copied().unwrap_or(0));
                        }
                        n += 1;
                    }
                }
                out.extend(sum.iter().map(|s| (s / n.max(1)) as u8));
            }
        }
        Picture {
            width: tw,
            height: th,
            bgra: out,
        }
    }
}

#[cfg(target_os = "linux")]
pub use x11::{capture, capture_many, list, open};

#[cfg(not(target_os = "linux"))]
/// No window capture on this system yet: no windows.
pub fn list() -> Result<Vec<WindowInfo>, MediaError> {
    Ok(Vec::new())
}

#[cfg(not(target_os = "linux"))]
/// No window capture on this system yet.
pub fn capture(_id: u32) -> Result<Picture, MediaError> {
    Err(MediaError::NoDevice(
        "sharing one window is not available on this system yet".into(),
    ))
}

#[cfg(not(target_os = "linux"))]
/// No window capture on this system yet.
pub fn capture_many(ids: &[u32]) -> Vec<Result<Picture, MediaError>> {
    ids.iter().map(|&id| capture(id)).collect()
}

#[cfg(not(target_os = "linux"))]
/// No window capture on this system yet.
pub fn open(
    _id: u32,
    _fps: u32,
    _events: crate::events::EventSender,
) -> Result<Box<dyn VideoSource>, MediaError> {
    Err(MediaError::NoDevice(
        "sharing one window is not available on this system yet".into(),
    ))
}

#[cfg(target_os = "linux")]
mod x11 {
    use std::time::Instant;

    use media::source::{MediaError, Pacer, VideoSource};
    use x11rb::connection::Connection;
    use x11rb::protocol::composite::{self, ConnectionExt as _};
    use x11rb::protocol::xproto::{AtomEnum, ConnectionExt as _, ImageFormat, MapState};
    use x11rb::rust_connection::RustConnection;

    use super::{Picture, WindowInfo};
    use crate::convert::{to_i420, PixelFormat, RawPicture};
    use crate::events::{DeviceEvent, DeviceKind, EventSender};
    use crate::screen::{ChangeGate, Decision, MAX_FPS};
    use crate::threaded::{self, Offer};

    /// Windows smaller than this are tool tips, docks and the like: not offered.
    const MIN_SIDE: u32 = 64;

    fn no_x(e: impl std::fmt::Display) -> MediaError {
        MediaError::NoDevice(format!(
            "no windows to share ({e}); on Linux window sharing needs an X11 session (DISPLAY)"
        ))
    }

    fn x_error(e: impl std::fmt::Display) -> MediaError {
        MediaError::Device(format!("the window system refused: {e}"))
    }

    struct Atoms {
        client_list: u32,
        net_wm_name: u32,
        utf8: u32,
    }

    fn atoms(c: &RustConnection) -> Result<Atoms, MediaError> {
        let get = |name: &[u8]| -> Result<u32, MediaError> {
            Ok(c.intern_atom(false, name)
                .map_err(x_error)?
                .reply()
                .map_err(x_error)?
                .atom)
        };
        Ok(Atoms {
            client_list: get(b"_NET_CLIENT_LIST")?,
            net_wm_name: get(b"_NET_WM_NAME")?,
            utf8: get(b"UTF8_STRING")?,
        })
    }

    fn title(c: &RustConnection, a: &Atoms, w: u32) -> Option<String> {
        for (prop, ty) in [
            (a.net_wm_name, a.utf8),
            (u32::from(AtomEnum::WM_NAME), u32::from(AtomEnum::ANY)),
        ] {
            let reply = c
                .get_property(false, w, prop, ty, 0, 1024)
                .ok()?
                .reply()
                .ok()?;
            let t = String::from_utf8_lossy(&reply.value).trim().to_owned();
            if !t.is_empty() {
                return Some(t);
            }
        }
        None
    }

    fn candidates(c: &RustConnection, root: u32, a: &Atoms) -> Vec<u32> {
        // A window manager lists the clients it manages (their frames are what QueryTree
        // would give, without titles).
        let managed = c
            .get_property(false, root, a.client_list, AtomEnum::WINDOW, 0, 4096)
            .ok()
            .and_then(|r| r.reply().ok())
            .and_then(|r| r.value32().map(|v| v.collect::<Vec<u32>>()))
            .unwrap_or_default();
        if !managed.is_empty() {
            return managed;
        }
        c.query_tree(root)
            .ok()
            .and_then(|r| r.reply().ok())
            .map(|r| r.children)
            .unwrap_or_default()
    }

    /// The windows that can be shared now, topmost last (as the window system stacks them).
    pub fn list() -> Result<Vec<WindowInfo>, MediaError> {
        let (c, screen) = x11rb::connect(None).map_err(no_x)?;
        let root = c.setup().roots[screen].root;
        let a = atoms(&c)?;
        let mut out = Vec::new();
        for w in candidates(&c, root, &a) {
            let Some(attrs) = c.get_window_attributes(w).ok().and_then(|r| r.reply().ok()) else {
                continue;
            };
            if attrs.map_state != MapState::VIEWABLE || attrs.override_redirect {
                continue;
            }
            let Some(geo) = c.get_geometry(w).ok().and_then(|r| r.reply().ok()) else {
                continue;
            };
            let (width, height) = (u32::from(geo.width), u32::from(geo.height));
            if width < MIN_SIDE || height < MIN_SIDE {
                continue;
            }
            let Some(title) = title(&c, &a, w) else {
                continue;
            };
            out.push(WindowInfo {
                id: w,
                title,
                width,
                height,
            });
        }
        Ok(out)
    }

    /// A connection with the Composite extension, and `window` redirected so its pixels are
    /// its own.
    fn redirected(window: u32) -> Result<RustConnection, MediaError> {
        let c = connect_composite()?;
        c.composite_redirect_window(window, composite::Redirect::AUTOMATIC)
            .map_err(x_error)?;
        c.flush().map_err(x_error)?;
        std::thread::sleep(REPAINT);
        Ok(c)
    }

    /// A connection whose server has the Composite extension.
    fn connect_composite() -> Result<RustConnection, MediaError> {
        let (c, _) = x11rb::connect(None).map_err(no_x)?;
        c.composite_query_version(0, 4)
            .map_err(x_error)?
            .reply()
            .map_err(|e| {
                MediaError::Device(format!(
                    "the X server has no Composite extension, needed to share one window: {e}"
                ))
            })?;
        Ok(c)
    }

    fn grab(c: &RustConnection, window: u32) -> Result<Picture, MediaError> {
        let gone = |e: &dyn std::fmt::Display| {
            MediaError::Device(format!("the window is gone or hidden ({e})"))
        };
        let geo = c
            .get_geometry(window)
            .map_err(x_error)?
            .reply()
            .map_err(|e| gone(&e))?;
        let (w, h) = (geo.width, geo.height);
        let image = c
            .get_image(ImageFormat::Z_PIXMAP, window, 0, 0, w, h, !0)
            .map_err(x_error)?
            .reply()
            .map_err(|e| gone(&e))?;
        let (w, h) = (u32::from(w), u32::from(h));
        // Depth 24 and 32 visuals come as 32 bits per pixel, BGRX in memory on every X server
        // this runs against; anything else is refused rather than shown garbled.
        if image.data.len() != (w * h * 4) as usize || !matches!(image.depth, 24 | 32) {
            return Err(MediaError::Device(format!(
                "the window's pixels are in a format Huddle cannot read (depth {}, {} bytes for \
                 {w}x{h})",
                image.depth,
                image.data.len()
            )));
        }
        let mut bgra = image.data;
        for px in bgra.chunks_exact_mut(4) {
            px[3] = 255;
        }
        Ok(Picture {
            width: w,
            height: h,
            bgra,
        })
    }

    /// How long a window gets to repaint after being redirected: the server starts its
    /// offscreen copy from what the screen shows (the covering windows too) and asks the
    /// window to paint the rest, which a toolkit does within a frame or two.
    const REPAINT: std::time::Duration = std::time::Duration::from_millis(150);

    /// One picture of each window now (the picker's thumbnails): all redirected at once, one
    /// wait for their repaint, then each grabbed.
    pub fn capture_many(ids: &[u32]) -> Vec<Result<Picture, MediaError>> {
        let c = match connect_composite() {
            Ok(c) => c,
            Err(e) => {
                let why = e.to_string();
                return ids
                    .iter()
                    .map(|_| Err(MediaError::NoDevice(why.clone())))
                    .collect();
            }
        };
        for &id in ids {
            let _ = c.composite_redirect_window(id, composite::Redirect::AUTOMATIC);
        }
        let _ = c.flush();
        std::thread::sleep(REPAINT);
        let out = ids.iter().map(|&id| grab(&c, id)).collect();
        for &id in ids {
            let _ = c.composite_unredirect_window(id, composite::Redirect::AUTOMATIC);
        }
        let _ = c.flush();
        out
    }

    /// One picture of the window now.
    pub fn capture(id: u32) -> Result<Picture, MediaError> {
        capture_many(&[id])
            .pop()
            .unwrap_or_else(|| Err(MediaError::Device("no picture".into())))
    }

    /// Starts sharing window `id` at `fps` (clamped to 1..=[`MAX_FPS`]).
    pub fn open(
        id: u32,
        fps: u32,
        events: EventSender,
    ) -> Result<Box<dyn VideoSource>, MediaError> {
        let fps = fps.clamp(1, MAX_FPS);
        let c = redirected(id)?;
        let name = list()
            .ok()
            .and_then(|l| l.into_iter().find(|w| w.id == id))
            .map_or_else(
                || format!("window {id}"),
                |w| format!("the window “{}”", w.title),
            );
        let first = grab(&c, id)?;
        let (tx, source) = threaded::channel(name.clone());
        std::thread::Builder::new()
            .name(format!("huddle-window-{id}"))
            .spawn(move || {
                let mut pacer = Pacer::from_fps(fps);
                let mut gate = ChangeGate::new();
                let mut last_frame = None;
                let start = Instant::now();
                let mut next = Some(Ok(first));
                let mut failures = 0;
                loop {
                    let picture = match next.take().unwrap_or_else(|| grab(&c, id)) {
                        Ok(p) => {
                            failures = 0;
                            p
                        }
                        Err(e) => {
                            failures += 1;
                            if failures < 3 {
                                pacer.wait();
                                continue;
                            }
                            let message = format!("sharing {name} stopped: {e}");
                            events.send(DeviceEvent::Lost {
                                kind: DeviceKind::Display,
                                name: name.clone(),
                                message: message.clone(),
                            });
                            tx.fail(MediaError::Device(message));
                            return;
                        }
                    };
                    let frame = match gate.decide(&picture.bgra, Instant::now()) {
                        Decision::Skip => None,
                        Decision::Repeat => last_frame.clone(),
                        Decision::Changed => {
                            let raw = RawPicture {
                                format: PixelFormat::Bgra,
                                width: picture.width,
                                height: picture.height,
                                stride: picture.width as usize * 4,
                                data: &picture.bgra,
                            };
                            match to_i420(&raw, start.elapsed()) {
                                Ok(f) => {
                                    last_frame = Some(f.clone());
                                    Some(f)
                                }
                                Err(e) => {
                                    tracing::debug!(error = %e, "dropping a window picture");
                                    None
                                }
                            }
                        }
                    };
                    if let Some(mut f) = frame {
                        f.pts = start.elapsed();
                        if tx.offer(f) == Offer::Closed {
                            let _ =
                                c.composite_unredirect_window(id, composite::Redirect::AUTOMATIC);
                            let _ = c.flush();
                            return;
                        }
                    }
                    pacer.wait();
                }
            })
            .map_err(|e| MediaError::Device(e.to_string()))?;
        Ok(Box::new(source))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_choice_round_trips_and_thumbnails_keep_the_aspect() {
        assert_eq!(from_choice("window:4194305"), Some(4_194_305));
        assert_eq!(from_choice("0"), None);
        assert_eq!(from_choice("window:x"), None);
        let p = Picture {
            width: 400,
            height: 100,
            bgra: [10u8, 20, 30, 255].repeat(400 * 100),
        };
        let t = p.scaled_to_fit(200, 200);
        assert_eq!((t.width, t.height), (200, 50));
        assert_eq!(
            &t.bgra[..4],
            &[10, 20, 30, 255],
            "a flat picture stays flat"
        );
        assert_eq!(t.bgra.len(), 200 * 50 * 4);
        let small = p.scaled_to_fit(1000, 1000);
        assert_eq!((small.width, small.height), (400, 100), "never enlarged");
    }
}
