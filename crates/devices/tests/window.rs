//! Sharing one window of a real X server (Xvfb): a window painted one colour is listed by its
//! title, captured with its own pixels even where another window covers it, shared as frames of
//! its size and colour, and a closed window ends the share with a `Lost` event.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use devices::events::{DeviceEvent, EventSender};
use harness::Xvfb;

/// tests/support/coloured_window.py of the workspace: a GTK window of one colour.
fn coloured_window(display: &str, title: &str, rgb: [u8; 3], at: (i32, i32)) -> Child {
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/support/coloured_window.py");
    let mut child = Command::new("/usr/bin/python3")
        .arg(script)
        .arg(title)
        .args(rgb.map(|c| c.to_string()))
        .args([at.0.to_string(), at.1.to_string()])
        .env("DISPLAY", display)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3 with GTK (python3-gi, gir1.2-gtk-3.0)");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "drawn");
    child
}

fn yuv([r, g, b]: [u8; 3]) -> (f64, f64, f64) {
    let [r, g, b] = [r, g, b].map(f64::from);
    (
        16.0 + 0.257 * r + 0.504 * g + 0.098 * b,
        128.0 - 0.148 * r - 0.291 * g + 0.439 * b,
        128.0 + 0.439 * r - 0.368 * g - 0.071 * b,
    )
}

fn mean(p: &[u8]) -> f64 {
    p.iter().map(|&v| f64::from(v)).sum::<f64>() / p.len().max(1) as f64
}

// One test function: the X display is chosen through the process-wide DISPLAY variable.
#[test]
fn one_window_is_listed_captured_and_shared_with_its_own_pixels() {
    let x = Xvfb::start("1280x800x24").unwrap();
    std::env::set_var("DISPLAY", x.display());
    let magenta = [200, 30, 160];
    let mut shared = coloured_window(x.display(), "Quarterly plan", magenta, (100, 100));
    // Another window on top of most of it.
    let mut cover = coloured_window(x.display(), "On top", [20, 200, 40], (150, 150));

    let listed = devices::window::list().unwrap();
    let w = listed
        .iter()
        .find(|w| w.title == "Quarterly plan")
        .unwrap_or_else(|| panic!("the window is listed: {listed:?}"));
    assert_eq!((w.width, w.height), (480, 270), "{w:?}");
    assert!(listed.iter().any(|w| w.title == "On top"));

    // Its own pixels, not the window on top of it.
    let t0 = Instant::now();
    let pic = devices::window::capture(w.id).unwrap();
    let took = t0.elapsed();
    assert_eq!((pic.width, pic.height), (480, 270));
    let px = &pic.bgra[4 * (200 * 480 + 300)..][..4]; // well inside the covered part
    assert_eq!(
        &px[..3],
        &[160, 30, 200],
        "BGR of the window itself, in {took:?}"
    );
    let thumb = pic.scaled_to_fit(320, 180);
    assert_eq!((thumb.width, thumb.height), (320, 180));

    let events = EventSender::new();
    let mut lost = events.subscribe();
    let mut src = devices::window::open(w.id, 10, events).unwrap();
    let f = src.next_frame().unwrap();
    assert_eq!((f.width, f.height), (480, 270));
    let want = yuv(magenta);
    let got = (mean(f.y()), mean(f.u()), mean(f.v()));
    assert!(
        (got.0 - want.0).abs() < 3.0
            && (got.1 - want.1).abs() < 3.0
            && (got.2 - want.2).abs() < 3.0,
        "the window's colour: {got:?}, want {want:?}"
    );

    // The window closes: the share ends, and says so.
    drop(shared.stdin.take());
    shared.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let err = loop {
        match src.next_frame() {
            Err(e) => break e,
            Ok(_) => assert!(
                Instant::now() < deadline,
                "the share goes on without its window"
            ),
        }
    };
    assert!(err.to_string().contains("Quarterly plan"), "{err}");
    assert!(matches!(lost.try_recv(), Ok(DeviceEvent::Lost { .. })));
    drop(cover.stdin.take());
    cover.wait().unwrap();
}
