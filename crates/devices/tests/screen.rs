//! Screen capture of a real X server (Xvfb): known pictures drawn on its root window come out
//! of the screen source as the right I420 colours, changes are picked up, and an unchanged
//! screen is not re-sent at the capture rate.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::time::{Duration, Instant};

use devices::events::EventSender;
use harness::Xvfb;
use media::source::VideoSource;
use media::VideoFrame;

/// An XBM bitmap, `w` x `h`, with the left half set.
fn left_half_bitmap(w: usize, h: usize) -> String {
    let row_bytes = w.div_ceil(8);
    let mut bytes = Vec::new();
    for _ in 0..h {
        for b in 0..row_bytes {
            let mut v = 0u8;
            for bit in 0..8 {
                if b * 8 + bit < w / 2 {
                    v |= 1 << bit; // XBM: least significant bit is the leftmost pixel
                }
            }
            bytes.push(format!("0x{v:02x}"));
        }
    }
    format!(
        "#define half_width {w}\n#define half_height {h}\nstatic unsigned char half_bits[] = {{\n{}\n}};\n",
        bytes.join(",")
    )
}

/// Mean (Y, U, V) over the columns `x0..x1` of the frame.
fn mean_yuv(f: &VideoFrame, x0: u32, x1: u32) -> (f64, f64, f64) {
    let (w, cw) = (f.width as usize, f.chroma_width() as usize);
    let avg = |plane: &[u8], stride: usize, a: usize, b: usize| {
        let rows = plane.len() / stride;
        let mut sum = 0u64;
        for r in 0..rows {
            sum += plane[r * stride + a..r * stride + b]
                .iter()
                .map(|&v| u64::from(v))
                .sum::<u64>();
        }
        sum as f64 / (rows * (b - a)) as f64
    };
    (
        avg(f.y(), w, x0 as usize, x1 as usize),
        avg(f.u(), cw, x0 as usize / 2, x1 as usize / 2),
        avg(f.v(), cw, x0 as usize / 2, x1 as usize / 2),
    )
}

fn near(got: (f64, f64, f64), want: (f64, f64, f64), tol: f64) -> bool {
    (got.0 - want.0).abs() <= tol && (got.1 - want.1).abs() <= tol && (got.2 - want.2).abs() <= tol
}

// BT.601 limited range.
const RED: (f64, f64, f64) = (81.0, 90.0, 240.0);
const BLUE: (f64, f64, f64) = (41.0, 240.0, 110.0);
const GREEN: (f64, f64, f64) = (145.0, 54.0, 34.0);

/// Pulls frames until one satisfies `ok`, for up to 5 s.
fn wait_for(
    src: &mut Box<dyn VideoSource>,
    what: &str,
    ok: impl Fn(&VideoFrame) -> bool,
) -> VideoFrame {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut last = None;
    while Instant::now() < deadline {
        let f = src.next_frame().unwrap();
        if ok(&f) {
            return f;
        }
        last = Some(mean_yuv(&f, 0, f.width));
    }
    panic!("no frame showing {what}; last mean YUV {last:?}");
}

// One test function: the X display is chosen through the process-wide DISPLAY variable.
#[test]
fn captures_what_is_drawn_on_an_x_display() {
    let x = Xvfb::start("320x240x24").unwrap();
    std::env::set_var("DISPLAY", x.display());

    let displays = devices::screen::list().unwrap();
    assert_eq!(displays.len(), 1, "{displays:?}");
    assert_eq!((displays[0].width, displays[0].height), (320, 240));
    let listed = devices::list_devices();
    assert_eq!(listed.displays.len(), 1);
    assert_eq!(listed.displays[0].name, "Display 0 (320x240)");

    x.xsetroot(&["-solid", "#ff0000"]).unwrap();
    let mut src = devices::screen::open(0, 10, EventSender::new()).unwrap();
    assert_eq!(src.describe(), "display 0");
    let f = wait_for(&mut src, "red", |f| near(mean_yuv(f, 0, 320), RED, 2.0));
    assert_eq!((f.width, f.height), (320, 240));
    assert!(f.is_well_formed());

    // Known content: left half green, right half blue, through an XBM bitmap.
    let dir = tempfile::tempdir().unwrap();
    let xbm = dir.path().join("half.xbm");
    std::fs::write(&xbm, left_half_bitmap(320, 240)).unwrap();
    x.xsetroot(&[
        "-bitmap",
        xbm.to_str().unwrap(),
        "-fg",
        "#00ff00",
        "-bg",
        "#0000ff",
    ])
    .unwrap();
    wait_for(&mut src, "green | blue", |f| {
        near(mean_yuv(f, 0, 150), GREEN, 2.0) && near(mean_yuv(f, 170, 320), BLUE, 2.0)
    });

    // Nothing changes now: at 10 fps capture, the unchanged screen goes out about once a
    // second (the keep-alive), not ten times.
    let start = Instant::now();
    let mut frames = 0;
    while start.elapsed() < Duration::from_millis(2500) {
        src.next_frame().unwrap();
        frames += 1;
    }
    assert!(
        (1..=4).contains(&frames),
        "{frames} frames of an unchanged screen in {:?}",
        start.elapsed()
    );

    drop(src);
    drop(x);
    // The X server is gone: listing says so in words, opening fails cleanly.
    let err = devices::screen::list().unwrap_err().to_string();
    assert!(err.contains("no screen to capture"), "{err}");
    assert!(devices::screen::open(0, 5, EventSender::new()).is_err());
    let listed = devices::list_devices();
    assert!(listed.displays.is_empty());
    assert!(
        listed.problems.iter().any(|p| p.contains("no screen")),
        "{:?}",
        listed.problems
    );
}
