// Drawing I420 frames with WebGL (YUV -> RGB in a fragment shader), and the frame channel's
// protocol: parse a bundle, draw every tile in it, acknowledge with what was drawn (the
// backend sends the next bundle only then: back-pressure, so latency cannot grow).

import { call, subscribeFrames } from './api.js';

const VERT = `
attribute vec2 pos;
varying vec2 uv;
void main() {
  uv = vec2((pos.x + 1.0) / 2.0, (1.0 - pos.y) / 2.0);
  gl_Position = vec4(pos, 0.0, 1.0);
}`;

// BT.601 limited range, as libvpx decodes.
const FRAG = `
precision mediump float;
varying vec2 uv;
uniform sampler2D ty, tu, tv;
void main() {
  float y = 1.1643 * (texture2D(ty, uv).r - 0.0625);
  float u = texture2D(tu, uv).r - 0.5;
  float v = texture2D(tv, uv).r - 0.5;
  gl_FragColor = vec4(y + 1.5958 * v, y - 0.39173 * u - 0.81290 * v, y + 2.017 * u, 1.0);
}`;

/** One canvas that draws I420 frames. */
export class I420Canvas {
  constructor(canvas) {
    this.canvas = canvas;
    const gl = canvas.getContext('webgl', { preserveDrawingBuffer: true, antialias: false });
    if (!gl) throw new Error('WebGL is not available');
    this.gl = gl;
    const prog = gl.createProgram();
    for (const [type, src] of [[gl.VERTEX_SHADER, VERT], [gl.FRAGMENT_SHADER, FRAG]]) {
      const s = gl.createShader(type);
      gl.shaderSource(s, src);
      gl.compileShader(s);
      gl.attachShader(prog, s);
    }
    gl.linkProgram(prog);
    gl.useProgram(prog);
    const buf = gl.createBuffer();
    gl.bindBuffer(gl.ARRAY_BUFFER, buf);
    gl.bufferData(gl.ARRAY_BUFFER, new Float32Array([-1, -1, 1, -1, -1, 1, 1, 1]), gl.STATIC_DRAW);
    const loc = gl.getAttribLocation(prog, 'pos');
    gl.enableVertexAttribArray(loc);
    gl.vertexAttribPointer(loc, 2, gl.FLOAT, false, 0, 0);
    gl.pixelStorei(gl.UNPACK_ALIGNMENT, 1);
    this.tex = ['ty', 'tu', 'tv'].map((name, i) => {
      const t = gl.createTexture();
      gl.activeTexture(gl.TEXTURE0 + i);
      gl.bindTexture(gl.TEXTURE_2D, t);
      for (const p of [gl.TEXTURE_MIN_FILTER, gl.TEXTURE_MAG_FILTER]) gl.texParameteri(gl.TEXTURE_2D, p, gl.LINEAR);
      for (const p of [gl.TEXTURE_WRAP_S, gl.TEXTURE_WRAP_T]) gl.texParameteri(gl.TEXTURE_2D, p, gl.CLAMP_TO_EDGE);
      gl.uniform1i(gl.getUniformLocation(prog, name), i);
      return t;
    });
  }

  /** Blanks the canvas: a stream that is off leaves no picture behind. */
  clear() {
    const gl = this.gl;
    gl.clearColor(0, 0, 0, 0);
    gl.clear(gl.COLOR_BUFFER_BIT);
  }

  draw(w, h, y, u, v) {
    const gl = this.gl;
    if (this.canvas.width !== w || this.canvas.height !== h) {
      this.canvas.width = w;
      this.canvas.height = h;
    }
    gl.viewport(0, 0, w, h);
    const cw = (w + 1) >> 1, ch = (h + 1) >> 1;
    [[y, w, h], [u, cw, ch], [v, cw, ch]].forEach(([plane, pw, ph], i) => {
      gl.activeTexture(gl.TEXTURE0 + i);
      gl.bindTexture(gl.TEXTURE_2D, this.tex[i]);
      gl.texImage2D(gl.TEXTURE_2D, 0, gl.LUMINANCE, pw, ph, 0, gl.LUMINANCE, gl.UNSIGNED_BYTE, plane);
    });
    gl.drawArrays(gl.TRIANGLE_STRIP, 0, 4);
  }
}

/** Parses one bundle (layout in src-tauri/src/frames.rs). */
export function parseBundle(buf) {
  const dv = new DataView(buf);
  const bytes = new Uint8Array(buf);
  const n = dv.getUint32(0, true);
  let at = 4;
  const tiles = [];
  const dec = new TextDecoder();
  for (let i = 0; i < n; i++) {
    const kl = dv.getUint16(at, true); at += 2;
    const key = dec.decode(bytes.subarray(at, at + kl)); at += kl;
    const w = dv.getUint16(at, true), h = dv.getUint16(at + 2, true);
    const capture = dv.getFloat64(at + 4, true); at += 12;
    const ys = w * h, cs = ((w + 1) >> 1) * ((h + 1) >> 1);
    tiles.push({
      key, w, h, capture,
      y: bytes.subarray(at, at + ys),
      u: bytes.subarray(at + ys, at + ys + cs),
      v: bytes.subarray(at + ys + cs, at + ys + 2 * cs),
    });
    at += ys + 2 * cs;
  }
  return tiles;
}

/** Routes frames to the tiles' canvases and tells the backend the tiles' sizes. */
export class FrameRouter {
  constructor() {
    this.targets = new Map(); // key -> {canvas, gl: I420Canvas, onFrame}
    this.observer = new ResizeObserver(() => this.sendSizes());
    this.sizeTimer = null;
  }

  async start() {
    await subscribeFrames((buf) => this.onBundle(buf));
  }

  attach(key, canvas, onFrame) {
    this.detach(key);
    let gl;
    try {
      gl = new I420Canvas(canvas);
    } catch (e) {
      console.error(e);
      return;
    }
    this.targets.set(key, { canvas, gl, onFrame, live: true });
    this.observer.observe(canvas);
    this.sendSizes();
  }

  /**
   * Whether `key`'s frames are drawn. A stream turned off is blanked at once, and frames of it
   * still on their way (decoded before the off reached us) are dropped, not drawn over the
   * avatar.
   */
  setLive(key, live) {
    const t = this.targets.get(key);
    if (!t || t.live === live) return;
    t.live = live;
    if (!live) t.gl.clear();
  }

  /** Blanks `key`'s canvas, leaving it live: the next frame is drawn. */
  blank(key) {
    this.targets.get(key)?.gl.clear();
  }

  detach(key) {
    const t = this.targets.get(key);
    if (t) {
      this.observer.unobserve(t.canvas);
      this.targets.delete(key);
      this.sendSizes();
    }
  }

  sendSizes() {
    clearTimeout(this.sizeTimer);
    this.sizeTimer = setTimeout(() => {
      const dpr = window.devicePixelRatio || 1;
      const sizes = {};
      for (const [key, t] of this.targets) {
        const r = t.canvas.getBoundingClientRect();
        sizes[key] = [Math.round(r.width * dpr), Math.round(r.height * dpr)];
      }
      call('tile_sizes', { sizes }).catch(() => {});
    }, 50);
  }

  onBundle(buf) {
    const drawn = [];
    for (const t of parseBundle(buf)) {
      const target = this.targets.get(t.key);
      if (!target || !target.live) continue;
      target.gl.draw(t.w, t.h, t.y, t.u, t.v);
      target.onFrame?.();
      drawn.push({ key: t.key, capture_ms: Number.isFinite(t.capture) ? t.capture : null });
    }
    call('frames_ack', { drawn, nowMs: Date.now() }).catch(() => {});
  }
}
