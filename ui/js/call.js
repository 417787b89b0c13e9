// The call screen: one tile per person (and per screen share), the layout (grid, or a large
// stage for a pinned tile or a screen share), who is speaking, connection quality, the stats
// panel with small live graphs.

import { FrameRouter } from './video.js';

const HISTORY = 60; // seconds of figures kept per peer for the graphs
// A camera tile that gets no frame for this long shows the avatar (a camera unplugged at the
// other end, a track that ended without a word): never a frozen last picture.
const STALE_MS = 2500;

function initials(name) {
  return (name || '?').split(/\s+/).filter(Boolean).slice(0, 2).map((w) => w[0].toUpperCase()).join('');
}

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

/** What a tile says about its connection, by state (nothing when connected). */
const CONNECTION_WORDS = {
  new: 'Connecting…',
  connecting: 'Connecting…',
  disconnected: 'Connection lost, reconnecting…',
  failed: 'Connection lost',
  closed: 'Connection lost',
};

/** Connection quality from the last figures: good, fair or poor. */
export function quality(state, stats) {
  if (state && state !== 'connected') return 'poor';
  if (!stats) return 'fair';
  const rtt = stats.rtt_ms ?? 0;
  if (stats.fps < 5 || rtt > 400) return 'poor';
  if (stats.fps < 10 || rtt > 200) return 'fair';
  return 'good';
}

export class CallView {
  constructor() {
    this.router = new FrameRouter();
    this.grid = document.getElementById('grid');
    this.stage = document.getElementById('stage');
    this.body = this.grid.parentElement;
    this.statsPanel = document.getElementById('stats-panel');
    this.members = new Map(); // peer -> {name, streams, state, stats, history, speaking}
    this.tiles = new Map(); // key -> {el, canvas, peer, kind}
    this.pinned = null;
    this.me = null;
    this.myName = '';
    this.myStreams = { audio: false, video: false, screen: false };
    setInterval(() => this.sweep(), 500);
  }

  async start() {
    await this.router.start();
  }

  /** Entering a call. */
  enter(me, myName, streams) {
    this.clear();
    this.me = me;
    this.myName = myName;
    this.myStreams = streams;
    this.sync();
  }

  clear() {
    for (const key of [...this.tiles.keys()]) this.removeTile(key);
    this.members.clear();
    this.pinned = null;
    this.statsPanel.replaceChildren();
  }

  member(peer) {
    let m = this.members.get(peer);
    if (!m) {
      m = { name: peer, streams: { audio: false, video: false, screen: false }, state: 'new', stats: null, history: [], speaking: false, ended: {} };
      this.members.set(peer, m);
    }
    return m;
  }

  // ---- events from the backend ----
  onEvent(ev) {
    switch (ev.type) {
      case 'member_joined': {
        const m = this.member(ev.peer);
        m.name = ev.name;
        m.streams = ev.streams;
        break;
      }
      case 'member_left':
        this.members.delete(ev.peer);
        break;
      // Only members who joined get a tile: an event about someone who already left (a
      // track ending, a last statistic) must not bring them back as a nameless tile.
      case 'streams_changed': {
        const m = this.members.get(ev.peer);
        if (!m) return;
        m.streams = ev.streams;
        break;
      }
      case 'connection': {
        const m = this.members.get(ev.peer);
        if (!m) return;
        m.state = ev.state;
        break;
      }
      case 'track': {
        // The video codec each connection uses, shown in the stats panel.
        const m = this.members.get(ev.peer);
        if (!m) return;
        if (ev.added && ev.codec && ev.kind !== 'audio') m.codec = ev.codec;
        // A track that ended shows no picture, whatever the streams record still says.
        m.ended[ev.kind] = !ev.added;
        break;
      }
      case 'speaking': {
        const key = ev.peer === 'self' || ev.peer === this.me ? 'self' : ev.peer;
        if (key === 'self') this.selfSpeaking = ev.speaking;
        else if (this.members.has(ev.peer)) this.members.get(ev.peer).speaking = ev.speaking;
        else return;
        break;
      }
      case 'stats': {
        const m = this.members.get(ev.peer);
        if (!m) return;
        const prev = m.stats;
        m.stats = ev.stats;
        const played = ev.stats.audio_frames_played - (prev?.audio_frames_played ?? 0);
        const concealed = ev.stats.audio_concealed - (prev?.audio_concealed ?? 0);
        const loss = played + concealed > 0 ? (100 * concealed) / (played + concealed) : 0;
        m.history.push({ kbps: ev.stats.bitrate_kbps, rtt: ev.stats.rtt_ms ?? 0, fps: ev.stats.fps, loss });
        if (m.history.length > HISTORY) m.history.shift();
        break;
      }
      case 'local_streams':
        this.myStreams = ev.streams;
        break;
      default:
        return;
    }
    this.sync();
  }

  // ---- tiles ----
  wanted() {
    // key -> {peer, kind, name, streams, self}
    const w = new Map();
    // `person` is whose initials the avatar shows; `name` is the label.
    const me = this.myName;
    w.set('self:video', { peer: 'self', kind: 'video', person: me, name: `${me} (you)`, streams: this.myStreams, self: true });
    if (this.myStreams.screen) w.set('self:screen', { peer: 'self', kind: 'screen', person: me, name: 'Your screen', streams: this.myStreams, self: true });
    for (const [peer, m] of this.members) {
      w.set(`${peer}:video`, { peer, kind: 'video', person: m.name, name: m.name, streams: m.streams });
      if (m.streams.screen) w.set(`${peer}:screen`, { peer, kind: 'screen', person: m.name, name: `${m.name}'s screen`, streams: m.streams });
    }
    return w;
  }

  addTile(key, info) {
    const tile = el('div', 'tile');
    tile.dataset.key = key;
    tile.dataset.peer = info.peer;
    tile.dataset.kind = info.kind;
    const canvas = el('canvas');
    const avatar = el('div', 'avatar');
    avatar.append(el('span', '', initials(info.person)));
    const label = el('div', 'label');
    const q = el('span', 'quality');
    q.append(el('i'), el('i'), el('i'));
    label.append(q, el('span', 'name', info.name), el('span', 'state'));
    const pin = el('button', 'pin', 'Pin');
    pin.setAttribute('aria-label', `Pin ${info.name}`);
    pin.addEventListener('click', () => this.togglePin(key));
    const conn = el('span', 'conn');
    tile.append(canvas, avatar, label, pin, conn);
    // Double-click gives a tile the stage (and takes it back), as Pin does.
    tile.addEventListener('dblclick', () => this.togglePin(key));
    const t = { el: tile, canvas, peer: info.peer, kind: info.kind, frames: 0, lastFrame: 0 };
    this.tiles.set(key, t);
    this.grid.append(tile);
    this.router.attach(key, canvas, () => {
      t.frames += 1;
      t.lastFrame = performance.now();
      tile.classList.add('has-video');
      tile.dataset.frames = String(t.frames);
    });
    return t;
  }

  removeTile(key) {
    const t = this.tiles.get(key);
    if (!t) return;
    this.router.detach(key);
    t.el.remove();
    this.tiles.delete(key);
    if (this.pinned === key) this.pinned = null;
  }

  /** Camera tiles whose frames stopped coming go back to the avatar (see STALE_MS). */
  sweep() {
    const now = performance.now();
    for (const [key, t] of this.tiles) {
      if (t.kind !== 'video' || !t.el.classList.contains('has-video')) continue;
      if (now - t.lastFrame > STALE_MS) {
        t.el.classList.remove('has-video');
        this.router.blank(key);
      }
    }
  }

  togglePin(key) {
    this.pinned = this.pinned === key ? null : key;
    this.sync();
  }

  /** Brings the tiles, their labels and the layout in line with the state. */
  sync() {
    const wanted = this.wanted();
    for (const key of [...this.tiles.keys()]) if (!wanted.has(key)) this.removeTile(key);
    for (const [key, info] of wanted) {
      const t = this.tiles.get(key) ?? this.addTile(key, info);
      const m = info.self ? null : this.members.get(info.peer);
      const sending = info.kind === 'screen' ? info.streams.screen : info.streams.video;
      // Off means the picture is gone at once: the canvas is blanked and frames still on
      // their way are not drawn; the avatar takes the tile until a new frame arrives.
      const live = sending && !m?.ended?.[info.kind];
      this.router.setLive(key, live);
      if (!live) t.el.classList.remove('has-video');
      t.el.querySelector('.name').textContent = info.name;
      t.el.querySelector('.avatar span').textContent = initials(info.person);
      const icons = [];
      if (info.kind === 'video') {
        if (!info.streams.audio) icons.push('muted');
        if (!info.streams.video) icons.push('camera off');
      }
      t.el.querySelector('.state').textContent = icons.join(' · ');
      t.el.dataset.muted = String(!info.streams.audio);
      t.el.dataset.camera = String(info.streams.video);
      const speaking = info.kind === 'video' && (info.self ? this.selfSpeaking : m?.speaking);
      t.el.classList.toggle('speaking', Boolean(speaking));
      t.el.classList.toggle('pinned', this.pinned === key);
      const pin = t.el.querySelector('.pin');
      pin.textContent = this.pinned === key ? 'Unpin' : 'Pin';
      pin.setAttribute('aria-label', `${this.pinned === key ? 'Unpin' : 'Pin'} ${info.name}`);
      const q = t.el.querySelector('.quality');
      q.className = `quality ${info.self ? 'good' : quality(m?.state, m?.stats)}`;
      // The moment the connection is lost the tile greys and says so; presence removes it
      // when the person is gone for good.
      const lost = m && (m.state === 'disconnected' || m.state === 'failed');
      t.el.classList.toggle('lost', Boolean(lost));
      t.el.querySelector('.conn').textContent = m ? CONNECTION_WORDS[m.state] ?? '' : '';
    }
    this.layout();
    this.renderStats();
  }

  layout() {
    // A pinned tile, else the newest screen share of someone else, takes the stage. My own
    // share stays a small tile (shown large it is a mirror of the stage inside the stage);
    // the presenting bar says that I share.
    let focus = this.pinned && this.tiles.has(this.pinned) ? this.pinned : null;
    if (!focus) focus = [...this.tiles.keys()].reverse().find((k) => k.endsWith(':screen') && k !== 'self:screen') ?? null;
    for (const [key, t] of this.tiles) {
      const parent = key === focus ? this.stage : this.grid;
      if (t.el.parentElement !== parent) parent.append(t.el);
    }
    this.body.classList.toggle('focus', Boolean(focus));
    const n = this.grid.children.length;
    const cols = focus ? 1 : Math.ceil(Math.sqrt(n));
    this.grid.style.gridTemplateColumns = `repeat(${Math.max(cols, 1)}, minmax(0, 1fr))`;
    this.router.sendSizes();
  }

  // ---- stats panel ----
  renderStats() {
    if (this.statsPanel.hidden) return;
    const seen = new Set();
    for (const [peer, m] of this.members) {
      seen.add(peer);
      let box = this.statsPanel.querySelector(`[data-peer="${CSS.escape(peer)}"]`);
      if (!box) {
        box = el('div', 'stats-peer');
        box.dataset.peer = peer;
        box.append(el('h3'));
        for (const [k, label] of [['kbps', 'bitrate'], ['rtt', 'RTT'], ['fps', 'fps'], ['loss', 'audio loss']]) {
          const row = el('div', 'stats-row');
          row.dataset.metric = k;
          row.append(el('span', '', label), el('canvas'), el('b'));
          box.append(row);
        }
        this.statsPanel.append(box);
      }
      const codec = { vp8: 'VP8', h264: 'H.264' }[m.codec] ?? m.codec;
      // How the media travels: the connection's selected ICE path.
      const path = { direct: 'direct', stun: 'direct through NAT', relay: 'relayed (TURN)' }[m.stats?.path];
      box.querySelector('h3').textContent = [m.name, m.state, path, codec].filter(Boolean).join(' · ');
      const last = m.history[m.history.length - 1];
      for (const row of box.querySelectorAll('.stats-row')) {
        const k = row.dataset.metric;
        const unit = { kbps: ' kb/s', rtt: ' ms', fps: '', loss: ' %' }[k];
        row.querySelector('b').textContent = last ? `${last[k].toFixed(k === 'loss' ? 1 : 0)}${unit}` : '–';
        sparkline(row.querySelector('canvas'), m.history.map((h) => h[k]));
      }
    }
    for (const box of [...this.statsPanel.children]) if (!seen.has(box.dataset.peer)) box.remove();
    if (!this.members.size) this.statsPanel.replaceChildren(el('p', 'muted', 'Nobody else is here yet.'));
  }
}

function sparkline(canvas, values) {
  const dpr = window.devicePixelRatio || 1;
  const w = Math.max(1, Math.round(canvas.clientWidth * dpr));
  const h = Math.max(1, Math.round(canvas.clientHeight * dpr));
  if (canvas.width !== w) canvas.width = w;
  if (canvas.height !== h) canvas.height = h;
  const ctx = canvas.getContext('2d');
  ctx.clearRect(0, 0, w, h);
  if (values.length < 2) return;
  const max = Math.max(...values, 1e-6);
  ctx.strokeStyle = '#3b82f6';
  ctx.lineWidth = 1.5 * dpr;
  ctx.beginPath();
  values.forEach((v, i) => {
    const x = (i / (HISTORY - 1)) * w;
    const y = h - (v / max) * (h - 2 * dpr) - dpr;
    if (i === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
  });
  ctx.stroke();
}
