// The page: views (home, pre-join, call, settings), the backend's events, shortcuts.
// State lives in the backend; the page shows it and sends commands.

import { call, subscribe } from './api.js';
import { CallView } from './call.js';

const $ = (id) => document.getElementById(id);

const state = {
  settings: null,
  rooms: [],
  devices: null,
  db: { connected: false },
  inCall: null, // {room, name, me}
  streams: { audio: false, video: false, screen: false },
  prejoin: null, // {room, name, secured, db}
};

const callView = new CallView();
window.huddle = { state, callView }; // for tests and for looking around in the inspector

// ---------------------------------------------------------------- toasts
/** Messages are built in lower case so they chain ("cannot join: <why>"); shown as sentences. */
function sentence(text) {
  const t = String(text ?? '');
  return t ? t[0].toUpperCase() + t.slice(1) : t;
}

function toast(message, { hint = null, error = false, ms = 6000 } = {}) {
  const t = document.createElement('div');
  t.className = `toast${error ? ' error' : ''}`;
  t.textContent = sentence(message);
  if (hint) {
    const h = document.createElement('div');
    h.className = 'hint';
    h.textContent = hint;
    t.append(h);
  }
  $('toasts').append(t);
  setTimeout(() => t.remove(), ms);
}

function showError(e) {
  toast(e?.message ?? String(e), { hint: e?.hint, error: true, ms: 9000 });
}

async function run(cmd, args) {
  try {
    return await call(cmd, args);
  } catch (e) {
    showError(e);
    throw e;
  }
}

// ---------------------------------------------------------------- views
function show(view) {
  for (const v of ['home', 'prejoin', 'call']) $(`view-${v}`).hidden = v !== view;
  document.body.dataset.view = view;
}

function renderRooms() {
  const list = $('room-list');
  list.replaceChildren();
  for (const r of state.rooms) {
    const li = document.createElement('li');
    li.dataset.room = r.id;
    const name = document.createElement('span');
    name.className = 'name';
    name.textContent = r.name;
    // A private room says so once, as a badge; who is in it is not public.
    if (r.secured) name.append(Object.assign(document.createElement('span'), { className: 'badge', textContent: 'private' }));
    const who = document.createElement('span');
    who.className = 'who';
    who.textContent = r.secured ? '' : `${r.occupants} ${r.occupants === 1 ? 'person' : 'people'}`;
    const join = document.createElement('button');
    join.className = 'primary join';
    join.textContent = state.inCall?.room === r.id ? 'Back to call' : 'Join';
    join.addEventListener('click', () => {
      if (state.inCall?.room === r.id) show('call');
      else openPrejoin({ room: r.id, name: r.name, secured: r.secured, db: null });
    });
    // The buttons sit in a column of their own, so every row's Join lines up.
    const actions = document.createElement('span');
    actions.className = 'actions';
    actions.append(join);
    li.append(name, who, actions);
    // Destroying is offered for my rooms, and for any room nobody is in.
    if (r.mine || r.occupants === 0) {
      const del = document.createElement('button');
      del.className = 'ghost destroy';
      del.textContent = 'Destroy';
      del.addEventListener('click', () => confirmDestroy(r));
      actions.append(del);
    }
    list.append(li);
  }
  $('rooms-empty').hidden = state.rooms.length > 0;
  $('rooms-count').textContent = state.rooms.length ? `${state.rooms.length}` : '';
}

function renderRecent() {
  const list = $('recent-list');
  list.replaceChildren();
  for (const r of state.settings?.recent ?? []) {
    const li = document.createElement('li');
    const b = document.createElement('button');
    b.textContent = r.secured ? `${r.name} (private)` : r.name;
    b.addEventListener('click', () => openPrejoin({ room: r.id, name: r.name, secured: r.secured, db: r.db }));
    li.append(b);
    list.append(li);
  }
}

async function confirmDestroy(room) {
  const dlg = $('confirm-dialog');
  $('confirm-text').textContent = room.occupants
    ? `Destroy “${room.name}”? The ${room.occupants} people in it will be disconnected.`
    : `Destroy “${room.name}”? This cannot be undone.`;
  dlg.returnValue = '';
  dlg.showModal();
  dlg.addEventListener('close', async () => {
    if (dlg.returnValue !== 'yes') return;
    let secret = null;
    if (room.secured) secret = prompt('This room is private: its secret') ?? '';
    try {
      await run('destroy_room', { room: room.id, secret });
      toast(`“${room.name}” was destroyed.`, { ms: 4000 });
    } catch { /* shown */ }
  }, { once: true });
}

// ---------------------------------------------------------------- devices
function fillSelect(sel, choices, value) {
  sel.replaceChildren();
  for (const c of choices) {
    const o = document.createElement('option');
    o.value = c.id;
    o.textContent = c.label;
    sel.append(o);
  }
  // A device that is not there shows as None (what the app will then use), never as some
  // other entry the settings do not say.
  const fallback = choices.find((c) => c.id === 'none') ?? choices[0];
  sel.value = choices.some((c) => c.id === value) ? value : fallback?.id ?? '';
}

async function loadDevices() {
  state.devices = await call('list_devices').catch(() => null);
}

// ---------------------------------------------------------------- pre-join
async function openPrejoin(target) {
  state.prejoin = target;
  // An invitation names the room by id only: its name shows once it is known.
  $('prejoin-title').textContent = target.name ? `Join “${target.name}”` : 'Join the room you were invited to';
  $('prejoin-where').textContent = target.db ? `on ${target.db}` : '';
  $('prejoin-name').value = state.settings?.name ?? '';
  $('prejoin-secret-row').hidden = !target.secured;
  $('prejoin-secret').value = '';
  $('prejoin-audio').checked = state.settings?.start_with_audio ?? true;
  $('prejoin-video').checked = state.settings?.start_with_video ?? true;
  await loadDevices();
  const d = state.devices;
  if (d) {
    fillSelect($('pick-camera'), d.cameras, state.settings.devices.camera);
    fillSelect($('pick-microphone'), d.microphones, state.settings.devices.microphone);
    fillSelect($('pick-speaker'), d.speakers, state.settings.devices.speaker);
    $('device-problems').textContent = d.problems.join(' ');
    $('device-problems').hidden = d.problems.length === 0;
    // Nothing to capture with: start with it off, rather than with an error.
    if ($('pick-camera').value === 'none') $('prejoin-video').checked = false;
    if ($('pick-microphone').value === 'none') $('prejoin-audio').checked = false;
  }
  show('prejoin');
  startPreview();
  startMeter();
}

/** The microphone meter of the pre-join screen, while it shows (with the microphone chosen). */
function startMeter() {
  $('mic-meter').style.width = '0%';
  call('mic_meter', { on: true }).catch((e) => {
    $('mic-meter-box').title = e.message;
  });
}

function stopMeter() {
  call('mic_meter', { on: false }).catch(() => {});
}

const preview = { attached: false };
async function startPreview() {
  if (!preview.attached) {
    const tile = $('preview-tile');
    tile.replaceChildren();
    const canvas = document.createElement('canvas');
    const avatar = document.createElement('div');
    avatar.className = 'avatar';
    avatar.innerHTML = '<span>You</span>';
    tile.append(canvas, avatar);
    callView.router.attach('self:video', canvas, () => tile.classList.add('has-video'));
    preview.attached = true;
  }
  $('preview-tile').classList.remove('has-video');
  if ($('prejoin-video').checked) {
    await call('preview_start').catch((e) => toast(e.message, { hint: e.hint, error: true }));
  } else {
    await call('preview_stop').catch(() => {});
  }
}

function stopPreview() {
  if (preview.attached) {
    callView.router.detach('self:video');
    preview.attached = false;
  }
  call('preview_stop').catch(() => {});
}

async function prejoinChanged() {
  // Device picks and the on/off switches are remembered for next time.
  const s = structuredClone(state.settings);
  s.name = $('prejoin-name').value.trim() || s.name;
  s.devices.camera = $('pick-camera').value;
  s.devices.microphone = $('pick-microphone').value;
  s.devices.speaker = $('pick-speaker').value;
  s.start_with_audio = $('prejoin-audio').checked;
  s.start_with_video = $('prejoin-video').checked;
  await run('save_settings', { settings: s }).catch(() => {});
}

async function joinNow() {
  const t = state.prejoin;
  if (!t) return;
  await prejoinChanged();
  stopPreview();
  $('prejoin-join').disabled = true;
  try {
    await run('join_room', { room: t.room, secret: $('prejoin-secret').value || null, db: t.db });
  } catch {
    startPreview();
    startMeter();
  } finally {
    $('prejoin-join').disabled = false;
  }
}

// ---------------------------------------------------------------- call controls
function renderControls() {
  const s = state.streams;
  // The name says what a press does; the state shows in the icon (slashed when off), the
  // colour and aria-pressed.
  const set = (id, on, [onName, offName], key) => {
    const b = $(id);
    b.classList.toggle('on', on);
    b.classList.toggle('off', !on && id !== 'btn-screen');
    b.setAttribute('aria-pressed', String(on));
    b.setAttribute('aria-label', on ? onName : offName);
    b.title = `${on ? onName : offName} (${key})`;
  };
  set('btn-mic', s.audio, ['Turn off microphone', 'Turn on microphone'], 'Ctrl+D');
  set('btn-cam', s.video, ['Turn off camera', 'Turn on camera'], 'Ctrl+E');
  set('btn-screen', s.screen, ['Stop sharing the screen', 'Share the screen'], 'Ctrl+Shift+S');
  // Presenting is always visible, with its Stop.
  $('presenting-bar').hidden = !(state.inCall && s.screen);
  $('presenting-what').textContent = `You are presenting ${state.sharing ?? 'your screen'}`;
}

async function toggle(kind) {
  if (!state.inCall) return;
  const on = !state.streams[kind];
  // Sharing starts with a choice of what to share.
  if (kind === 'screen' && on) return openSharePicker();
  await run('set_stream', { kind, on }).catch(() => {});
}

async function toggleFullscreen() {
  const w = window.__TAURI__?.window?.getCurrentWindow();
  if (!w) return;
  try {
    await w.setFullscreen(!(await w.isFullscreen()));
  } catch (e) {
    showError({ message: `cannot change full screen: ${e}` });
  }
}

// ---------------------------------------------------------------- screen-share picker
const picker = { timer: null, chosen: null, targets: [] };

function shareCard(t) {
  const b = document.createElement('button');
  b.type = 'button';
  b.className = 'share-card';
  b.setAttribute('role', 'option');
  b.dataset.target = t.id;
  b.setAttribute('aria-selected', String(picker.chosen === t.id));
  const pic = t.thumbnail ? Object.assign(document.createElement('img'), { src: t.thumbnail, alt: '' })
    : Object.assign(document.createElement('div'), { className: 'noimg' });
  const label = Object.assign(document.createElement('span'), { textContent: t.label, title: t.label });
  b.append(pic, label);
  b.addEventListener('click', () => { picker.chosen = t.id; renderPicker(); });
  b.addEventListener('dblclick', () => { picker.chosen = t.id; shareChosen(); });
  return b;
}

function renderPicker() {
  const displays = picker.targets.filter((t) => t.kind !== 'window');
  const windows = picker.targets.filter((t) => t.kind === 'window');
  $('share-displays').replaceChildren(...displays.map(shareCard));
  $('share-windows').replaceChildren(...windows.map(shareCard));
  $('share-none').hidden = windows.length > 0;
  $('share-go').disabled = !picker.targets.some((t) => t.id === picker.chosen);
}

async function refreshPicker() {
  try {
    picker.targets = await call('share_targets');
    renderPicker();
  } catch (e) {
    showError(e);
  }
}

/** The picker: every display and window with a picture of it, refreshed while it is open. */
async function openSharePicker() {
  picker.chosen = null;
  picker.targets = [];
  renderPicker();
  $('share-dialog').showModal();
  await refreshPicker();
  clearInterval(picker.timer);
  picker.timer = setInterval(() => {
    if ($('share-dialog').open) refreshPicker();
  }, 1500);
}

function closeSharePicker() {
  clearInterval(picker.timer);
  picker.timer = null;
  if ($('share-dialog').open) $('share-dialog').close();
}

async function shareChosen() {
  const t = picker.targets.find((x) => x.id === picker.chosen);
  if (!t) return;
  closeSharePicker();
  try {
    await run('share_screen', { target: t.id });
    state.sharing = t.kind === 'window' ? `the window “${t.label}”` : t.kind === 'display' ? 'your entire screen' : 'the test pattern';
    renderControls();
  } catch { /* shown */ }
}

async function leave() {
  if (state.inCall) await run('leave_room').catch(() => {});
}

const REACH = {
  this_computer: 'Only this computer can use these links: the database is on this computer alone.',
  lan: 'People on your network can use these links.',
  anywhere: 'Anyone with these links can join.',
};

function showInvite(links) {
  $('invite-reach').textContent = REACH[links.reach] ?? '';
  $('invite-reach').className = links.reach === 'this_computer' ? 'warning' : 'muted';
  $('invite-host-offer').hidden = !(links.reach === 'this_computer' && links.can_host);
  $('invite-app').value = links.app;
  $('invite-web-row').hidden = !links.web;
  $('invite-web').value = links.web ?? '';
  $('invite-private').hidden = Boolean(links.web);
}

async function copyLink(which) {
  try {
    await call('copy_invite', { which });
    $('invite-status').textContent = which === 'web' ? 'Browser link copied.' : 'Copied.';
  } catch (e) {
    $('invite-status').textContent = sentence(e.hint ? `${e.message}. ${e.hint}` : e.message);
  }
}

/** The invitation window: the links, whom they reach, and the app link copied at once. */
async function copyInvite() {
  try {
    showInvite(await call('invite_links'));
  } catch (e) {
    return showError(e);
  }
  $('invite-status').textContent = '';
  $('invite-dialog').showModal();
  await copyLink('app');
}

async function hostForLan() {
  $('invite-host').disabled = true;
  $('invite-status').textContent = 'Hosting for your network…';
  try {
    await call('host_for_lan');
    showInvite(await call('invite_links'));
    await copyLink('app');
  } catch (e) {
    $('invite-status').textContent = sentence(e.hint ? `${e.message}. ${e.hint}` : e.message);
  } finally {
    $('invite-host').disabled = false;
  }
}

// ---------------------------------------------------------------- settings
function openSettings() {
  const s = state.settings;
  if (!s) return;
  $('set-name').value = s.name;
  const mode = s.database.mode;
  for (const r of document.querySelectorAll('input[name="db-mode"]')) r.checked = r.value === mode;
  $('set-host-port').value = s.database.port ?? 9443;
  $('set-host-secret').value = s.database.mode === 'host' ? s.database.secret ?? '' : '';
  $('set-remote-url').value = s.database.url ?? '';
  $('set-remote-auth').value = s.database.mode === 'remote' ? s.database.auth ?? '' : '';
  $('set-firebase-config').value = s.firebase_config ?? '';
  $('set-ice').value = s.ice_servers.map((i) => [i.urls.join(','), i.username, i.credential].filter(Boolean).join(' ')).join('\n');
  $('set-relay-only').checked = Boolean(s.relay_only);
  $('set-ns').checked = s.noise_suppression;
  $('set-sounds').checked = s.sounds !== false;
  $('set-h264').checked = s.prefer_h264;
  $('settings-error').hidden = true;
  loadDevices().then(() => {
    const d = state.devices;
    if (!d) return;
    fillSelect($('set-camera'), d.cameras, s.devices.camera);
    fillSelect($('set-microphone'), d.microphones, s.devices.microphone);
    fillSelect($('set-speaker'), d.speakers, s.devices.speaker);
    fillSelect($('set-display'), d.displays, s.devices.display);
  });
  syncDbMode();
  $('settings-dialog').showModal();
}

function syncDbMode() {
  const mode = document.querySelector('input[name="db-mode"]:checked')?.value;
  for (const sub of document.querySelectorAll('.sub[data-mode]')) sub.hidden = sub.dataset.mode !== mode;
}

async function saveSettings(ev) {
  ev.preventDefault();
  const s = structuredClone(state.settings);
  s.name = $('set-name').value.trim();
  const mode = document.querySelector('input[name="db-mode"]:checked')?.value ?? 'embedded';
  if (mode === 'embedded') s.database = { mode };
  if (mode === 'host') s.database = { mode, port: Number($('set-host-port').value), secret: $('set-host-secret').value || null };
  if (mode === 'remote') s.database = { mode, url: $('set-remote-url').value.trim(), auth: $('set-remote-auth').value || null };
  // Parsed by the app on save (an unreadable config is refused with the reason); its
  // databaseURL fills an empty URL.
  s.firebase_config = $('set-firebase-config').value;
  s.ice_servers = $('set-ice').value.split('\n').map((l) => l.trim()).filter(Boolean).map((l) => {
    const [urls, username = '', credential = ''] = l.split(/\s+/);
    return { urls: urls.split(','), username, credential };
  });
  for (const k of ['camera', 'microphone', 'speaker', 'display']) {
    const v = $(`set-${k}`).value;
    if (v) s.devices[k] = v;
  }
  s.relay_only = $('set-relay-only').checked;
  s.noise_suppression = $('set-ns').checked;
  s.sounds = $('set-sounds').checked;
  s.prefer_h264 = $('set-h264').checked;
  try {
    await call('save_settings', { settings: s });
    $('settings-dialog').close();
  } catch (e) {
    $('settings-error').textContent = sentence(e.hint ? `${e.message}. ${e.hint}` : e.message);
    $('settings-error').hidden = false;
  }
}

// ---------------------------------------------------------------- who I am
function renderMe() {
  const name = state.settings?.name ?? '';
  $('me').hidden = !name;
  $('me').textContent = name;
  if (!name && !$('welcome-dialog').open) welcome();
}

/** First run: asks for the name (the OS account's full name offered) before anything else. */
async function welcome() {
  const dlg = $('welcome-dialog');
  $('welcome-name').value = await call('suggested_name').catch(() => '');
  $('welcome-error').hidden = true;
  if (!dlg.open) dlg.showModal();
  $('welcome-name').focus();
  $('welcome-name').select();
}

async function saveWelcome(e) {
  e.preventDefault();
  const s = structuredClone(state.settings);
  s.name = $('welcome-name').value.trim();
  try {
    await call('save_settings', { settings: s });
    $('welcome-dialog').close();
  } catch (err) {
    $('welcome-error').textContent = sentence(err.message);
    $('welcome-error').hidden = false;
  }
}

// ---------------------------------------------------------------- sounds
/** Played sounds, by kind: how a test (or the inspector) sees that one was played. */
const chimes = { join: 0, leave: 0 };
window.huddle.chimes = chimes;
let audioCtx = null;

/** A short two-note sound: rising when someone joins, falling when someone leaves. */
function chime(kind) {
  if (state.settings?.sounds === false) return;
  chimes[kind] += 1;
  try {
    audioCtx ??= new AudioContext();
    const notes = kind === 'join' ? [660, 880] : [660, 440];
    const t0 = audioCtx.currentTime;
    notes.forEach((f, i) => {
      const osc = audioCtx.createOscillator();
      const gain = audioCtx.createGain();
      osc.frequency.value = f;
      gain.gain.setValueAtTime(0.0001, t0 + i * 0.12);
      gain.gain.exponentialRampToValueAtTime(0.15, t0 + i * 0.12 + 0.02);
      gain.gain.exponentialRampToValueAtTime(0.0001, t0 + i * 0.12 + 0.11);
      osc.connect(gain).connect(audioCtx.destination);
      osc.start(t0 + i * 0.12);
      osc.stop(t0 + i * 0.12 + 0.12);
    });
  } catch (e) {
    console.warn('no sound for', kind, e); // no audio output: the call does not care
  }
}

// ---------------------------------------------------------------- backend events
function onEvent(ev) {
  switch (ev.type) {
    case 'settings':
      state.settings = ev.settings;
      renderRecent();
      renderMe();
      break;
    case 'database': {
      state.db = ev;
      const s = $('db-status');
      s.className = `db-status ${ev.connected ? 'ok' : 'bad'}`;
      s.textContent = ev.connected ? (ev.lan_url ? `hosting on ${ev.lan_url}` : ev.url) : `offline: ${ev.message ?? ''}`;
      if (!ev.connected && ev.message) toast(ev.message, { error: true });
      break;
    }
    case 'signaling':
      if (ev.connected) toast('Reconnected to the database.', { ms: 3000 });
      else toast(ev.message, { error: true, hint: 'People already in the call stay connected.' });
      break;
    case 'rooms':
      state.rooms = ev.rooms;
      renderRooms();
      break;
    case 'joined':
      state.inCall = { room: ev.room, name: ev.name, me: ev.me };
      state.streams = ev.streams;
      $('call-title').textContent = ev.name;
      callView.enter(ev.me, state.settings?.name ?? 'Me', ev.streams);
      renderControls();
      renderRooms();
      show('call');
      break;
    case 'left':
      if (state.inCall) toast(`Left the call: ${ev.reason}.`);
      state.inCall = null;
      state.streams = { audio: false, video: false, screen: false };
      callView.clear();
      renderRooms();
      show('home');
      break;
    case 'local_streams':
      state.streams = ev.streams;
      renderControls();
      callView.onEvent(ev);
      break;
    case 'speaking':
      if ((ev.peer === 'self' || ev.peer === state.inCall?.me)) {
        $('muted-hint').hidden = !(ev.speaking && !state.streams.audio);
      }
      callView.onEvent(ev);
      break;
    case 'member_joined':
      toast(`${ev.name} joined.`, { ms: 3000 });
      chime('join');
      callView.onEvent(ev);
      break;
    case 'member_left': {
      const m = callView.members.get(ev.peer);
      // A rejoin is followed by its member_joined: nobody left. Gone while the connection to
      // them was already lost is a lost connection, whoever removed their record.
      const cut = m && (m.state === 'disconnected' || m.state === 'failed');
      const words = { left: cut ? 'lost connection' : 'left', expired: 'lost connection' }[ev.reason];
      if (m && words) {
        toast(`${m.name} ${words}.`, { ms: 4000 });
        chime('leave');
      }
      callView.onEvent(ev);
      break;
    }
    case 'invite':
      openPrejoin({ room: ev.room, name: null, secured: false, db: ev.db }).then(() => checkSecured(ev));
      break;
    case 'error':
      showError(ev);
      break;
    case 'close_asked':
      if (!$('close-dialog').open) $('close-dialog').showModal();
      break;
    case 'mic_level': {
      // -60 dBFS and below is empty, 0 dBFS full.
      const pct = Math.max(0, Math.min(100, ((ev.dbfs + 60) / 60) * 100));
      $('mic-meter').style.width = `${pct.toFixed(0)}%`;
      $('mic-meter-box').setAttribute('aria-valuenow', ev.dbfs.toFixed(0));
      break;
    }
    case 'notice':
      toast(ev.message, { hint: ev.hint, ms: 8000 });
      break;
    default:
      callView.onEvent(ev);
  }
  $('call-count').textContent = state.inCall ? `${callView.members.size + 1} in the call` : '';
  $('alone-hint').hidden = !state.inCall || callView.members.size > 0;
}

function checkSecured(ev) {
  const r = state.rooms.find((x) => x.id === ev.room);
  if (r) {
    state.prejoin.name = r.name;
    state.prejoin.secured = r.secured;
    $('prejoin-title').textContent = `Join “${r.name}”`;
    $('prejoin-secret-row').hidden = !r.secured;
  }
}

// ---------------------------------------------------------------- wiring
function wire() {
  $('create-private').addEventListener('change', (e) => { $('create-secret-row').hidden = !e.target.checked; });
  $('create-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const name = $('create-name').value.trim();
    const secret = $('create-private').checked ? $('create-secret').value : null;
    if ($('create-private').checked && !secret) return showError({ message: 'A private room needs a secret.' });
    try {
      const id = await run('create_room', { name, secret });
      // The form starts afresh: the next room is not private by accident, with this secret.
      $('create-form').reset();
      $('create-secret-row').hidden = true;
      await openPrejoin({ room: id, name, secured: Boolean(secret), db: null });
      if (secret) $('prejoin-secret').value = secret;
    } catch { /* shown */ }
  });
  $('invite-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    await run('open_invite', { link: $('invite-link').value }).catch(() => {});
  });
  $('prejoin-join').addEventListener('click', joinNow);
  $('prejoin-cancel').addEventListener('click', () => { stopPreview(); stopMeter(); show('home'); });
  $('test-speakers').addEventListener('click', async () => {
    await prejoinChanged();
    try {
      await call('test_speakers');
      toast('Playing a sound on your speakers.', { ms: 2500 });
    } catch (e) {
      showError(e);
    }
  });
  $('prejoin-video').addEventListener('change', startPreview);
  $('pick-camera').addEventListener('change', async () => { await prejoinChanged(); startPreview(); });
  $('pick-microphone').addEventListener('change', async () => { await prejoinChanged(); startMeter(); });
  $('pick-speaker').addEventListener('change', prejoinChanged);
  $('btn-mic').addEventListener('click', () => toggle('audio'));
  $('btn-cam').addEventListener('click', () => toggle('video'));
  $('btn-screen').addEventListener('click', () => toggle('screen'));
  $('btn-leave').addEventListener('click', leave);
  $('presenting-stop').addEventListener('click', () => run('set_stream', { kind: 'screen', on: false }).catch(() => {}));
  $('share-go').addEventListener('click', shareChosen);
  $('close-tray').addEventListener('click', () => { $('close-dialog').close(); run('hide_window').catch(() => {}); });
  $('close-quit').addEventListener('click', () => { $('close-dialog').close(); run('quit').catch(() => {}); });
  // Full screen (F11, or double-click a tile to give it the stage).
  document.addEventListener('keydown', (e) => {
    if (e.key === 'F11') {
      e.preventDefault();
      toggleFullscreen();
    }
  });
  $('share-cancel').addEventListener('click', closeSharePicker);
  $('share-dialog').addEventListener('close', () => { clearInterval(picker.timer); picker.timer = null; });
  $('copy-invite').addEventListener('click', copyInvite);
  $('alone-invite').addEventListener('click', copyInvite);
  $('invite-copy-app').addEventListener('click', () => copyLink('app'));
  $('invite-copy-web').addEventListener('click', () => copyLink('web'));
  $('invite-host').addEventListener('click', hostForLan);
  $('toggle-stats').addEventListener('click', () => {
    $('stats-panel').hidden = !$('stats-panel').hidden;
    callView.sync();
  });
  $('open-settings').addEventListener('click', openSettings);
  $('me').addEventListener('click', openSettings);
  $('welcome-form').addEventListener('submit', saveWelcome);
  // Not dismissed by Esc: the name is needed before anything else.
  $('welcome-dialog').addEventListener('cancel', (e) => e.preventDefault());
  // Enter in any field submits the form (with no submitter when it is implicit): that saves.
  $('settings-form').addEventListener('submit', saveSettings);
  $('settings-cancel').addEventListener('click', () => $('settings-dialog').close());
  for (const r of document.querySelectorAll('input[name="db-mode"]')) r.addEventListener('change', syncDbMode);
  document.addEventListener('keydown', (e) => {
    // `?` lists the shortcuts, unless it is being typed into a field or a window is open.
    const typing = e.target.closest?.('input, textarea, select, [contenteditable]');
    if (e.key === '?' && !e.ctrlKey && !e.altKey && !typing && !document.querySelector('dialog[open]')) {
      e.preventDefault();
      $('shortcuts-dialog').showModal();
      return;
    }
    if (!state.inCall || !e.ctrlKey) return;
    const k = e.key.toLowerCase();
    const action = e.shiftKey
      ? { s: () => toggle('screen'), l: leave, i: () => $('toggle-stats').click() }[k]
      : { d: () => toggle('audio'), e: () => toggle('video') }[k];
    if (action) {
      e.preventDefault();
      action();
    }
  });
}

async function main() {
  wire();
  show('home');
  try {
    await callView.start();
    await subscribe(onEvent);
  } catch (e) {
    showError(e);
  }
}

main();
