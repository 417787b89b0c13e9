// The Huddle web client: a guest joins a public room from a browser, with no install.
// URL: /web/?room=ROOM&name=NAME joins directly; /web/?room=ROOM asks for a name first.
// The guest signs in anonymously to the page's own server first (web/auth.js); its uid is its peer
// id, and every database request carries its ID token.
// Test and benchmark knobs (also URL parameters): hb / expiry (presence timing in ms), audio=0 / video=0 (start without), source=stamp (a stamped canvas instead of the camera),
// latency=1 (read the frame stamp of every received frame: glass-to-glass latency; costs CPU),
// w / h / fps (capture size and rate), loopback=1 (signal and accept 127.0.0.1 candidates only:
// tests on one machine).
//
// `window.huddle` exposes the state (members, connection states, per-peer decoded frames and
// received audio packets, first-frame times, glass-to-glass latency) for tests to poll, and
// `window.huddle.auth()` the sign-in (uid, ID token, sign-ups, refreshes, stream reopens).

import { Auth } from './auth.js';
import { Db } from './rtdb.js';
import { Room, validRoomId } from './room.js';
import { PeerLink } from './peer.js';
import { stampedSource } from './stamp.js';
import { watchFrames, pollStats } from './stats.js';

const params = new URLSearchParams(location.search);
const num = (k, d) => (params.has(k) && Number.isFinite(Number(params.get(k))) ? Number(params.get(k)) : d);
const opts = {
  room: params.get('room') || '',
  name: params.get('name') || '',
  heartbeatMs: num('hb', 5000),
  expiryMs: num('expiry', 15000),
  audio: params.get('audio') !== '0',
  video: params.get('video') !== '0',
  source: params.get('source') || 'camera',
  width: num('w', 640),
  height: num('h', 360),
  fps: num('fps', 30),
  loopbackOnly: params.get('loopback') === '1',
  latency: params.get('latency') === '1',
  // Join at once, without the pre-join step (links for bots and tests; an invitation has no
  // such flag, so a person sees their camera and chooses first).
  autojoin: params.get('autojoin') === '1',
};

const $ = (id) => document.getElementById(id);

const auth = new Auth(location.origin);
const db = new Db(location.origin, auth);

/** What tests read: plain data, refreshed by the stats loop. */
const state = {
  phase: 'idle', // idle | joining | joined | left | error | private | closed
  error: null,
  me: null, // the uid, once signed in
  session: null,
  joinStartedAt: null,
  sending: { audio: false, video: false, screen: false },
  capture: {}, // kind -> the device's settings {width, height, frameRate}
  members: {},
  log: [],
};
window.huddle = {
  state,
  snapshot: () => JSON.parse(JSON.stringify(state)),
  join: (room, name) => join(room, name),
  auth: () => ({ uid: auth.uid, token: auth.current(), ...auth.counts, ...db.counts }),
  leave: () => leave(),
  toggle: (kind, on) => toggle(kind, on),
  /** Negotiation details per connection, for test failure reports. */
  links: () =>
    [...links].map(([peer, l]) => ({
      peer,
      signaling: l.pc.signalingState,
      connection: l.pc.connectionState,
      polite: l.polite,
      pending: l.pending,
      transceivers: l.pc.getTransceivers().map((t) => ({
        mid: t.mid,
        direction: t.direction,
        current: t.currentDirection,
        sends: l.kindOfSender.get(t.sender) || null,
        track: !!t.sender.track,
      })),
      localSdp: l.pc.localDescription && l.pc.localDescription.sdp,
      remoteSdp: l.pc.remoteDescription && l.pc.remoteDescription.sdp,
    })),
};

let room = null;
const links = new Map(); // peerId -> PeerLink
const local = new Map([['audio', null], ['video', null], ['screen', null]]);

function note(text) {
  state.log.push({ t: Math.round(performance.now()), text });
  if (state.log.length > 200) state.log.shift();
}

// Warnings (failed negotiation steps, refused messages) also go to the log tests print.
const consoleWarn = console.warn.bind(console);
console.warn = (...args) => {
  consoleWarn(...args);
  note('warning: ' + args.map((a) => (a instanceof Error ? `${a.name}: ${a.message}` : String(a))).join(' '));
};

function showStatus(text, kind = '') {
  const el = $('status');
  el.textContent = text;
  el.className = kind;
}

// ---------- local media ----------

async function openTrack(kind) {
  if (!navigator.mediaDevices) {
    throw new Error('the browser allows devices only on https:// pages (or http://localhost); you can still watch and listen');
  }
  if (kind === 'audio') {
    const s = await navigator.mediaDevices.getUserMedia({ audio: true });
    return s.getAudioTracks()[0];
  }
  if (kind === 'video') {
    if (opts.source === 'stamp') return stampedSource(opts.width, opts.height, opts.fps);
    const s = await navigator.mediaDevices.getUserMedia({
      video: { width: { ideal: opts.width }, height: { ideal: opts.height }, frameRate: { ideal: opts.fps } },
    });
    return s.getVideoTracks()[0];
  }
  const s = await navigator.mediaDevices.getDisplayMedia({ video: { frameRate: { ideal: 15 } }, audio: false });
  const track = s.getVideoTracks()[0];
  // The browser's own "stop sharing" button ends the track.
  track.addEventListener('ended', () => toggle('screen', false));
  return track;
}

/** Starts or stops sending `kind`; every connection follows, and my record says so. */
async function toggle(kind, on) {
  if (on === state.sending[kind]) return true;
  if (on) {
    let track;
    try {
      track = await openTrack(kind);
    } catch (e) {
      showStatus(`Could not start the ${kind === 'video' ? 'camera' : kind === 'audio' ? 'microphone' : 'screen share'}: ${e.message}`, 'error');
      return false;
    }
    local.set(kind, track);
    const { width, height, frameRate } = track.getSettings();
    state.capture[kind] = { width, height, frameRate };
    if (kind !== 'audio') showLocal(kind, track);
  } else {
    const track = local.get(kind);
    if (track) track.stop();
    local.set(kind, null);
    if (kind !== 'audio') showLocal(kind, null);
  }
  state.sending[kind] = on;
  for (const link of links.values()) link.setTrack(kind, local.get(kind));
  renderButtons();
  if (room) await room.setStreams(state.sending).catch((e) => note(`streams not published: ${e.message}`));
  note(`${kind} ${on ? 'on' : 'off'}`);
  return true;
}

function showLocal(kind, track) {
  const el = $(kind === 'video' ? 'local-video' : 'local-screen');
  el.srcObject = track ? new MediaStream([track]) : null;
  el.parentElement.hidden = !track;
}

// ---------- members and tiles ----------

function memberState(peer) {
  if (!state.members[peer]) {
    state.members[peer] = { name: '', streams: {}, connection: 'new', recv: {}, firstFrameMs: {}, latencyMs: null, joinedAt: Date.now() };
  }
  return state.members[peer];
}

function tile(peer) {
  let el = document.querySelector(`.tile[data-peer="${CSS.escape(peer)}"]`);
  if (el) return el;
  el = document.createElement('div');
  el.className = 'tile';
  el.dataset.peer = peer;
  el.innerHTML = '<video autoplay playsinline muted data-kind="video"></video><video autoplay playsinline muted data-kind="screen" hidden></video><audio autoplay></audio><div class="label"></div>';
  $('tiles').append(el);
  return el;
}

function renderMember(peer) {
  const m = state.members[peer];
  if (!m) return;
  const el = tile(peer);
  const flags = [m.streams.audio ? '' : 'muted', m.streams.video ? '' : 'camera off', m.streams.screen ? 'sharing screen' : ''].filter(Boolean);
  el.querySelector('.label').textContent = `${m.name}${flags.length ? ' · ' + flags.join(', ') : ''} · ${m.connection}`;
  el.querySelector('video[data-kind="video"]').classList.toggle('off', !m.streams.video);
  el.querySelector('video[data-kind="screen"]').hidden = !m.streams.screen;
}

function onTrack(peer, kind, track) {
  const m = memberState(peer);
  const el = tile(peer);
  note(`track ${kind} from ${peer}`);
  if (kind === 'audio') {
    el.querySelector('audio').srcObject = new MediaStream([track]);
    return;
  }
  const video = el.querySelector(`video[data-kind="${kind === 'screen' ? 'screen' : 'video'}"]`);
  video.srcObject = new MediaStream([track]);
  watchFrames(video, kind, m, {
    readStamps: opts.latency,
    sinceJoin: () => (state.joinStartedAt === null ? null : performance.now() - state.joinStartedAt),
    onFirst: () => note(`first ${kind} frame from ${peer}`),
  });
}

function startLink(member, iOffer) {
  const peer = member.peerId;
  const m = memberState(peer);
  Object.assign(m, { name: member.name, streams: member.streams, connection: 'new', recv: {}, firstFrameMs: {}, latencyMs: null });
  renderMember(peer);
  const link = new PeerLink(room, state.me, peer, iOffer, local, {
    track: onTrack,
    state: (p, s) => {
      memberState(p).connection = s;
      renderMember(p);
    },
    gaveUp: (p, why) => {
      note(`gave up on ${p}: ${why}`);
      memberState(p).connection = 'gave up';
      renderMember(p);
    },
  }, { loopbackOnly: opts.loopbackOnly });
  links.set(peer, link);
  if (iOffer) link.negotiate(false);
}

function stopLink(peer) {
  const link = links.get(peer);
  if (link) link.close();
  links.delete(peer);
  delete state.members[peer];
  const el = document.querySelector(`.tile[data-peer="${CSS.escape(peer)}"]`);
  if (el) el.remove();
}

// ---------- stats for tests and the UI ----------

setInterval(() => pollStats(links, state), 500);

// ---------- join and leave ----------

async function join(roomId, name) {
  if (state.phase === 'joining' || state.phase === 'joined') return;
  roomId = (roomId || '').trim();
  name = (name || '').trim().slice(0, 100);
  if (!validRoomId(roomId)) {
    showStatus('A room id is 1 to 64 letters, digits, "-" or "_". Check the link you were given.', 'error');
    return;
  }
  if (!name) {
    showStatus('Please enter your name.', 'error');
    return;
  }
  state.phase = 'joining';
  state.error = null;
  state.joinStartedAt = performance.now();
  showStatus(`Joining ${roomId}…`);
  try {
    await signedIn;
  } catch (e) {
    state.phase = 'error';
    state.error = e.message;
    showStatus(e.message, 'error');
    renderButtons();
    return;
  }
  const listener = {
    joined: (session) => {
      state.session = session;
      note(`joined as ${session}`);
    },
    memberJoined: (member, iOffer) => {
      note(`${member.peerId} joined`);
      startLink(member, iOffer);
    },
    memberLeft: (peer, reason) => {
      note(`${peer} left (${reason})`);
      stopLink(peer);
    },
    streamsChanged: (peer, streams) => {
      memberState(peer).streams = streams;
      renderMember(peer);
    },
    offer: (from, sdp) => links.get(from)?.onOffer(sdp),
    answer: (from, sdp) => links.get(from)?.onAnswer(sdp),
    candidate: (from, c) => links.get(from)?.onCandidate(c),
    roomClosed: () => {
      state.phase = 'closed';
      for (const peer of [...links.keys()]) stopLink(peer);
      showStatus('The room has ended.');
      renderButtons();
    },
    error: (message) => {
      note(message);
      showStatus(message, 'error');
    },
  };
  // Devices first, so the first offer already carries them.
  for (const kind of ['audio', 'video']) {
    if (opts[kind]) await toggle(kind, true);
  }
  room = new Room(db, roomId, state.me, name, state.sending, listener, opts);
  try {
    await room.join();
  } catch (e) {
    room = null;
    state.phase = e.isPrivate ? 'private' : 'error';
    state.error = e.message;
    showStatus(e.message, 'error');
    for (const kind of ['audio', 'video']) await toggle(kind, false);
    renderButtons();
    return;
  }
  state.phase = 'joined';
  $('join-form').hidden = true;
  showStatus(`In “${room.roomName}” as ${name}. Invite others with this page's link.`);
  document.title = `${room.roomName} · Huddle`;
  history.replaceState(null, '', `?room=${encodeURIComponent(roomId)}`);
  renderButtons();
}

async function leave(unloading = false) {
  if (!room) return;
  const r = room;
  room = null;
  for (const peer of [...links.keys()]) stopLink(peer);
  state.phase = 'left';
  try {
    await r.leave(unloading);
  } catch (e) {
    note(`leave: ${e.message}`);
  }
  if (unloading) return;
  for (const kind of ['audio', 'video', 'screen']) await toggle(kind, false);
  showStatus('You left the room.');
  $('join-form').hidden = false;
  renderButtons();
}

// The tab closes: leave in one request that outlives the page.
addEventListener('pagehide', () => {
  if (room) leave(true);
});

// ---------- controls ----------

function renderButtons() {
  const inRoom = state.phase === 'joined';
  $('controls').hidden = !inRoom;
  $('mic').textContent = state.sending.audio ? 'Mute' : 'Unmute';
  $('cam').textContent = state.sending.video ? 'Stop camera' : 'Start camera';
  $('screen').textContent = state.sending.screen ? 'Stop sharing' : 'Share screen';
}

$('mic').addEventListener('click', () => toggle('audio', !state.sending.audio));
$('cam').addEventListener('click', () => toggle('video', !state.sending.video));
$('screen').addEventListener('click', () => toggle('screen', !state.sending.screen));
$('leave').addEventListener('click', () => leave());
$('join-form').addEventListener('submit', (e) => {
  e.preventDefault();
  opts.audio = $('join-audio').checked;
  opts.video = $('join-video').checked;
  join($('room').value, $('name').value);
});
// Pre-join: the camera shows in my tile before I join, and the box turns it on and off.
$('join-video').addEventListener('change', () => {
  if (state.phase === 'idle') toggle('video', $('join-video').checked);
});

// Signing in starts with the page, so that a join does not wait for it.
const signedIn = auth.signIn().then((uid) => {
  state.me = uid;
  note(`signed in as ${uid}`);
  return uid;
});
signedIn.catch((e) => {
  state.error = e.message;
  showStatus(e.message, 'error');
});

$('room').value = opts.room;
$('name').value = opts.name;
$('join-audio').checked = opts.audio;
$('join-video').checked = opts.video;
renderButtons();
if (opts.room && opts.name && opts.autojoin) join(opts.room, opts.name);
else if (opts.room) {
  showStatus(opts.name ? 'You are invited to a room. Check your camera, then join.' : 'You are invited to a room. Enter your name to join.');
  if (opts.video) toggle('video', true);
  // The room by its name, once signed in (the link carries only its id).
  signedIn
    .then(() => (validRoomId(opts.room) ? db.get(`rooms/${opts.room}`) : null))
    .then((info) => {
      if (info && typeof info.name === 'string' && state.phase === 'idle') {
        showStatus(`You are invited to “${info.name}”. ${opts.name ? 'Check your camera, then join.' : 'Enter your name to join.'}`);
        document.title = `${info.name} · Huddle`;
      }
    })
    .catch(() => {}); // joining says what is wrong with the room
}
