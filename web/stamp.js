// The frame stamp of crates/media/src/stamp.rs, in the browser: a frame number and capture time
// painted as 40 x 3 black/white blocks across the top of the picture. Reading it from a received
// frame gives glass-to-glass latency; a test-mode canvas source paints it so a native peer can
// measure the browser's video the same way.

const COLS = 40;
const ROWS = 3;
const MAGIC = 0xb4;

function edge(width, i) {
  return Math.floor((width * i) / COLS);
}

function crc16(bytes) {
  let crc = 0xffff;
  for (const b of bytes) {
    crc ^= b << 8;
    for (let i = 0; i < 8; i++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc;
}

function encode(frameNo, captureMs) {
  const code = new Uint8Array(15);
  const view = new DataView(code.buffer);
  code[0] = MAGIC;
  view.setUint32(1, frameNo >>> 0);
  view.setBigUint64(5, BigInt(Math.floor(captureMs)));
  view.setUint16(13, crc16(code.subarray(0, 13)));
  return code;
}

/** Paints the stamp on a 2D context of width `w`. */
export function paint(ctx, w, frameNo, captureMs) {
  const code = encode(frameNo, captureMs);
  for (let bit = 0; bit < COLS * ROWS; bit++) {
    const row = Math.floor(bit / COLS);
    const col = bit % COLS;
    const set = (code[bit >> 3] & (0x80 >> (bit % 8))) !== 0;
    ctx.fillStyle = set ? '#fff' : '#000';
    ctx.fillRect(edge(w, col), edge(w, row), edge(w, col + 1) - edge(w, col), edge(w, row + 1) - edge(w, row));
  }
}

/** Reads a stamp from RGBA pixels of the frame's top band (`w` wide); null when absent. */
export function read(rgba, w) {
  const code = new Uint8Array(15);
  for (let bit = 0; bit < COLS * ROWS; bit++) {
    const row = Math.floor(bit / COLS);
    const col = bit % COLS;
    const [x0, x1] = inner(edge(w, col), edge(w, col + 1));
    const [y0, y1] = inner(edge(w, row), edge(w, row + 1));
    let sum = 0;
    let n = 0;
    for (let y = y0; y < y1; y++) {
      for (let x = x0; x < x1; x++) {
        const i = (y * w + x) * 4;
        sum += 16 + 0.257 * rgba[i] + 0.504 * rgba[i + 1] + 0.098 * rgba[i + 2];
        n++;
      }
    }
    if (n && sum > 128 * n) code[bit >> 3] |= 0x80 >> (bit % 8);
  }
  const view = new DataView(code.buffer);
  if (code[0] !== MAGIC || view.getUint16(13) !== crc16(code.subarray(0, 13))) return null;
  return { frameNo: view.getUint32(1), captureMs: Number(view.getBigUint64(5)) };
}

function inner(start, end) {
  const margin = Math.max(1, Math.floor((end - start) / 4));
  return [start + margin, end - margin];
}

/** Height of the band the stamp covers at width `w`. */
export function bandHeight(w) {
  return edge(w, ROWS);
}

/**
 * A stamped test pattern as a camera: a `w` x `h` canvas redrawn `fps` times a second with a
 * moving bar and the stamp, captured with `captureStream`. Test mode only (`?source=stamp`).
 */
export function stampedSource(w, h, fps) {
  const canvas = document.createElement('canvas');
  canvas.width = w;
  canvas.height = h;
  const ctx = canvas.getContext('2d');
  let n = 0;
  const draw = () => {
    ctx.fillStyle = '#345';
    ctx.fillRect(0, 0, w, h);
    ctx.fillStyle = '#c84';
    ctx.fillRect((n * 4) % w, bandHeight(w), 40, h);
    paint(ctx, w, n, Date.now());
    n++;
  };
  draw();
  const timer = setInterval(draw, 1000 / fps);
  const stream = canvas.captureStream(fps);
  const track = stream.getVideoTracks()[0];
  track.addEventListener('ended', () => clearInterval(timer));
  const stop = track.stop.bind(track);
  track.stop = () => {
    clearInterval(timer);
    stop();
  };
  return track;
}
