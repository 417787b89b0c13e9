// The room protocol of docs/protocol.md sections 3-5, as the browser plays it: join, presence
// (heartbeat, server clock, expiry of silent members), leave, and the three inboxes with their
// session / seq checks. Media is not here: `Room` tells its listener who is in the room and hands
// over accepted offers, answers and candidates; the listener (app.js) owns the connections.

import { SERVER_TIME } from './rtdb.js';

const ID_CHARS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-';

/** `n` random characters of `[A-Za-z0-9_-]`. */
export function randomId(n) {
  const bytes = crypto.getRandomValues(new Uint8Array(n));
  return Array.from(bytes, (b) => ID_CHARS[b & 63]).join('');
}

/** Room ids: 1 to 64 chars of `[A-Za-z0-9_-]` (section 1). */
export function validRoomId(id) {
  return typeof id === 'string' && /^[A-Za-z0-9_-]{1,64}$/.test(id);
}

/** Peer ids: 8 to 64 chars of `[A-Za-z0-9_-]`. */
export function validPeerId(id) {
  return typeof id === 'string' && /^[A-Za-z0-9_-]{8,64}$/.test(id);
}

const MAX_SDP = 100000;
const MAX_CANDIDATE = 2000;

/** An occupant record, or null when incomplete or malformed (ignored until complete). */
function parseOccupant(v) {
  if (!v || typeof v !== 'object') return null;
  const { name, session, joinedAt, seen, streams } = v;
  if (typeof name !== 'string' || name.length > 100 || typeof session !== 'string') return null;
  if (typeof joinedAt !== 'number' || typeof seen !== 'number') return null;
  if (!streams || typeof streams !== 'object') return null;
  const flags = {};
  for (const k of ['audio', 'video', 'screen']) {
    if (typeof streams[k] !== 'boolean') return null;
    flags[k] = streams[k];
  }
  return { name, session, joinedAt, seen, streams: flags };
}

function parseSdpRecord(v) {
  if (!v || typeof v !== 'object') return null;
  if (typeof v.session !== 'string' || typeof v.to !== 'string') return null;
  if (!Number.isInteger(v.seq) || v.seq <= 0) return null;
  if (typeof v.sdp !== 'string' || v.sdp.length > MAX_SDP) return null;
  return v;
}

function parseCandidateRecord(v) {
  if (!v || typeof v !== 'object') return null;
  if (typeof v.session !== 'string' || typeof v.to !== 'string') return null;
  const c = v.candidate;
  if (!c || typeof c !== 'object' || typeof c.candidate !== 'string') return null;
  if (c.candidate.length > MAX_CANDIDATE) return null;
  return v;
}

/**
 * One joined room. Listener callbacks: `joined(session)`, `memberJoined(member, iOffer)`,
 * `memberLeft(peerId, reason)`, `streamsChanged(peerId, streams)`, `offer(from, sdp)`,
 * `answer(from, sdp)`, `candidate(from, init)`, `roomClosed()`, `error(message)`.
 */
export class Room {
  constructor(db, roomId, me, name, streams, listener, timing) {
    this.db = db;
    this.roomId = roomId;
    this.space = roomId; // public rooms only: private ones stay in the app (section 6)
    this.me = me;
    this.name = name;
    this.streams = { ...streams };
    this.l = listener;
    this.heartbeatMs = timing.heartbeatMs;
    this.expiryMs = timing.expiryMs;
    this.session = randomId(16);
    this.members = new Map(); // peerId -> {name, session, streams, seen, joinedAt}
    this.held = { offers: new Map(), answers: new Map(), ice_candidates: new Map() };
    this.lastSeq = { offers: new Map(), answers: new Map() }; // `${peer} ${session}` -> seq
    this.delivered = new Set(); // `${peer} ${pushId}`
    this.expiring = new Set(); // `${peer} ${session}`
    this.clockOffset = null;
    this.myRecordSeen = false;
    this.nextSeq = 0;
    this.left = false;
    this.beating = null; // the heartbeat request in flight
    this.streamsOpen = [];
  }

  /** Section 4 "Join": check the room, register, stream. Throws with words for the user. */
  async join() {
    const info = await this.db.get(`rooms/${this.roomId}`);
    if (info === null || typeof info !== 'object') {
      throw new Error(`The room "${this.roomId}" does not exist (or it has ended).`);
    }
    if (info.secured === true) {
      throw new PrivateRoomError();
    }
    this.roomName = typeof info.name === 'string' ? info.name : this.roomId;
    await this.register();
    this.open();
    this.timer = setInterval(() => this.tick(), this.heartbeatMs / 2);
    this.heartbeatTimer = setInterval(() => this.heartbeat(), this.heartbeatMs);
  }

  async register() {
    const s = this.space;
    await this.db.patch('', {
      [`occupants/${s}/${this.me}`]: {
        name: this.name,
        session: this.session,
        joinedAt: SERVER_TIME,
        seen: SERVER_TIME,
        streams: this.streams,
      },
      [`offers/${s}/${this.me}`]: null,
      [`answers/${s}/${this.me}`]: null,
      [`ice_candidates/${s}/${this.me}`]: null,
    });
    this.l.joined(this.session);
  }

  open() {
    const s = this.space;
    const err = (what) => (msg) => this.l.error(`${what}: ${msg}`);
    let roomSeen = false;
    this.streamsOpen.push(
      this.db.stream(`rooms/${this.roomId}`, {
        onValue: (v) => {
          if (v !== null) roomSeen = true;
          else if (roomSeen && !this.left) this.closed();
        },
        onError: err('room'),
      }),
      this.db.stream(`occupants/${s}`, {
        onChild: (kind, key, value) => this.onOccupant(kind, key, value),
        onError: err('occupants'),
      }),
    );
    for (const box of ['offers', 'answers', 'ice_candidates']) {
      this.streamsOpen.push(
        this.db.stream(`${box}/${s}/${this.me}`, {
          onChild: (kind, from, value) => {
            if (value === null) this.held[box].delete(from);
            else this.held[box].set(from, value);
            this.examine(from);
          },
          onError: err(box),
        }),
      );
    }
  }

  serverNow() {
    return this.clockOffset === null ? null : Date.now() + this.clockOffset;
  }

  onOccupant(kind, peer, value) {
    if (this.left) return;
    if (kind === 'removed') {
      if (peer === this.me) {
        if (this.myRecordSeen) {
          this.myRecordSeen = false;
          this.myRecordGone();
        }
        return;
      }
      const old = this.members.get(peer);
      if (!old) return;
      this.members.delete(peer);
      const now = this.serverNow();
      const stale = now !== null && now - old.seen > this.expiryMs;
      const reason = stale || this.expiring.delete(`${peer} ${old.session}`) ? 'expired' : 'left';
      for (const box of Object.values(this.held)) box.delete(peer);
      this.l.memberLeft(peer, reason);
      return;
    }
    const rec = parseOccupant(value);
    if (!rec) {
      console.warn('ignoring an incomplete or malformed occupant record', peer);
      return;
    }
    if (peer === this.me) {
      if (rec.session === this.session) {
        this.myRecordSeen = true;
        this.clockOffset = rec.seen - Date.now();
      }
      return;
    }
    const old = this.members.get(peer);
    this.members.set(peer, rec);
    if (old && old.session === rec.session) {
      if (JSON.stringify(old.streams) !== JSON.stringify(rec.streams)) {
        this.l.streamsChanged(peer, rec.streams);
      }
    } else {
      if (old) this.l.memberLeft(peer, 'rejoined');
      this.l.memberJoined({ peerId: peer, ...rec }, this.me < peer);
    }
    // Messages that arrived before this record are examined now (section 5).
    this.examine(peer);
  }

  /** Delivers what is held from `from` and valid for the current sessions. */
  examine(from) {
    const m = this.members.get(from);
    if (!m || this.left) return;
    const key = `${from} ${m.session}`;
    // Answers before offers: an answer completes my exchange before theirs starts.
    for (const box of ['answers', 'offers']) {
      const rec = parseSdpRecord(this.held[box].get(from));
      if (!rec || rec.to !== this.session || rec.session !== m.session) continue;
      const last = this.lastSeq[box].get(key) || 0;
      // New means not the last one again and at most 1000 away from it, either way
      // (docs/protocol.md section 5): a seq far ahead is not the sender's and would block it.
      if (rec.seq === last || Math.abs(rec.seq - last) > 1000) continue;
      this.lastSeq[box].set(key, rec.seq);
      if (box === 'answers') {
        this.db.delete(`answers/${this.space}/${this.me}/${from}`).catch(() => {});
        this.l.answer(from, rec.sdp);
      } else {
        this.l.offer(from, rec.sdp);
      }
    }
    const cands = this.held.ice_candidates.get(from);
    if (cands && typeof cands === 'object') {
      const done = {};
      for (const id of Object.keys(cands).sort()) {
        const rec = parseCandidateRecord(cands[id]);
        if (!rec || rec.to !== this.session || rec.session !== m.session) continue;
        const k = `${from} ${id}`;
        if (this.delivered.has(k)) continue;
        this.delivered.add(k);
        done[`ice_candidates/${this.space}/${this.me}/${from}/${id}`] = null;
        this.l.candidate(from, rec.candidate);
      }
      if (Object.keys(done).length) this.db.patch('', done).catch(() => {});
    }
  }

  async myRecordGone() {
    // The room was destroyed, or I was expired (e.g. the laptop slept): rejoin with a new session.
    let info = null;
    try {
      info = await this.db.get(`rooms/${this.roomId}`);
    } catch (e) {
      return;
    }
    if (info === null) return this.closed();
    const members = [...this.members.entries()];
    for (const [peer] of members) this.l.memberLeft(peer, 'rejoined');
    this.session = randomId(16);
    this.nextSeq = 0;
    try {
      await this.register();
    } catch (e) {
      this.l.error(`could not rejoin after being expired: ${e.message}`);
      return;
    }
    for (const [peer, m] of members) this.l.memberJoined({ peerId: peer, ...m }, this.me < peer);
  }

  closed() {
    this.stop();
    this.l.roomClosed();
  }

  heartbeat() {
    // Never recreate a removed record: a partial record would be a ghost (rejoin instead).
    if (!this.myRecordSeen || this.left || this.beating) return;
    // One at a time, and a leave waits for the one in flight: landing after the leave, it
    // would recreate a partial record.
    this.beating = this.db
      .patch(`occupants/${this.space}/${this.me}`, { seen: SERVER_TIME })
      .catch(() => {})
      .finally(() => {
        this.beating = null;
      });
  }

  tick() {
    const now = this.serverNow();
    if (now === null || this.left) return;
    for (const [peer, m] of this.members) {
      const key = `${peer} ${m.session}`;
      // Removed only past a margin (section 4, "Expiry"): every other peer, whose clock
      // estimate differs by milliseconds, then already judges it stale and reports "expired".
      if (now - m.seen > this.expiryMs + Math.min(this.expiryMs / 10, 1000) && !this.expiring.has(key)) {
        this.expiring.add(key);
        this.removeExpired(peer, m).catch((e) => console.debug('could not expire', peer, e.message));
      }
    }
  }

  /** Section 4 "Expiry": remove X only if its record is unchanged since I judged it stale. */
  async removeExpired(peer, m) {
    const path = `occupants/${this.space}/${peer}`;
    const { value, etag } = await this.db.getWithEtag(path);
    const cur = parseOccupant(value);
    if (!cur || cur.session !== m.session || cur.seen !== m.seen || !etag) return;
    if (await this.db.putIf(path, null, etag)) {
      await this.db.patch('', this.cleanupPaths(peer));
    }
  }

  /** Everything `who` has in the room: record, inboxes, and what it sent to anyone still here. */
  cleanupPaths(who) {
    const s = this.space;
    const out = {
      [`occupants/${s}/${who}`]: null,
      [`offers/${s}/${who}`]: null,
      [`answers/${s}/${who}`]: null,
      [`ice_candidates/${s}/${who}`]: null,
    };
    for (const x of [...this.members.keys(), this.me]) {
      if (x === who) continue;
      out[`offers/${s}/${x}/${who}`] = null;
      out[`answers/${s}/${x}/${who}`] = null;
      out[`ice_candidates/${s}/${x}/${who}`] = null;
    }
    return out;
  }

  member(peer) {
    return this.members.get(peer);
  }

  async sendOffer(to, sdp) {
    return this.sendSdp('offers', to, sdp, {});
  }

  /** The answer and the consumption of the offer it answers, in one atomic write. */
  async sendAnswer(to, sdp) {
    return this.sendSdp('answers', to, sdp, { [`offers/${this.space}/${this.me}/${to}`]: null });
  }

  async sendSdp(box, to, sdp, extra) {
    const m = this.members.get(to);
    if (!m) return;
    this.nextSeq += 1;
    const rec = { session: this.session, to: m.session, seq: this.nextSeq, sdp };
    await this.db.patch('', { ...extra, [`${box}/${this.space}/${to}/${this.me}`]: rec });
  }

  async sendCandidate(to, c) {
    const m = this.members.get(to);
    if (!m) return;
    await this.db.post(`ice_candidates/${this.space}/${to}/${this.me}`, {
      session: this.session,
      to: m.session,
      candidate: {
        candidate: c.candidate,
        sdpMid: c.sdpMid ?? null,
        sdpMLineIndex: c.sdpMLineIndex ?? null,
        usernameFragment: c.usernameFragment ?? null,
      },
    });
  }

  /** Publishes what I send (`streams` in my record). */
  async setStreams(streams) {
    this.streams = { ...streams };
    if (!this.myRecordSeen) return;
    await this.db.patch(`occupants/${this.space}/${this.me}`, { streams: this.streams });
  }

  stop() {
    this.left = true;
    clearInterval(this.timer);
    clearInterval(this.heartbeatTimer);
    for (const s of this.streamsOpen) s.close();
    this.streamsOpen = [];
  }

  /** Section 4 "Leave": one atomic write. `keepalive` lets it finish while the page unloads. */
  async leave(keepalive = false) {
    if (this.left) return;
    const paths = this.cleanupPaths(this.me);
    this.stop();
    // A closing tab cannot wait (the page goes); there the rules' .validate refuses the ghost.
    if (this.beating && !keepalive) {
      await Promise.race([this.beating, new Promise((r) => setTimeout(r, 2000))]);
    }
    await this.db.patch('', paths, keepalive);
  }
}

/** Asked to join a private room: the web client does not do those (yet). */
export class PrivateRoomError extends Error {
  constructor() {
    super(
      'This is a private room. Private rooms can only be joined from the Huddle app for now: ' +
        'open the invite link in the app, or ask the host for a public room.',
    );
    this.isPrivate = true;
  }
}
