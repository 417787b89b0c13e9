// One RTCPeerConnection per remote member, negotiated as docs/protocol.md section 5 says and as
// the native engine does (crates/mesh/src/negotiation.rs): the smaller peer id sends the first
// offer; later either side may offer; offers that cross are settled by perfect negotiation with
// the larger id polite; an unanswered offer is withdrawn and made again; the impolite side
// restarts ICE when the link is lost, and a link that stays down is given up.
//
// Kinds travel in the SDP: every sent m-section says `a=msid:huddle <kind>` with kind `audio`,
// `video` (camera) or `screen`, which is how the native engine labels its tracks too. Browsers
// choose their own msid values, so the SDP is relabelled before it is sent (the description set
// locally is untouched; msid is only a label for the receiver).

const ANSWER_TIMEOUT_MS = 10000;
const RESTART_AFTER_MS = 3000;
const MAX_RESTARTS = 3;
const GIVE_UP_AFTER_MS = 30000;

/**
 * `room` sends signaling; `local` maps kind -> MediaStreamTrack|null (what I send now);
 * `events`: `track(peer, kind, track)`, `state(peer, state)`, `gaveUp(peer, why)`.
 */
export class PeerLink {
  constructor(room, me, peerId, iOffer, local, events, { iceServers, loopbackOnly } = {}) {
    this.room = room;
    this.peerId = peerId;
    this.polite = me > peerId;
    this.iOffer = iOffer;
    this.events = events;
    this.pc = new RTCPeerConnection({ iceServers: iceServers || [] });
    this.senders = new Map(); // kind -> RTCRtpSender
    this.kindOfSender = new WeakMap(); // RTCRtpSender -> kind
    this.kindOfMid = new Map(); // remote mid -> kind
    this.makingOffer = false;
    this.ignoreOffer = false;
    this.hadRemote = false;
    this.pending = false;
    this.queued = [];
    this.offerSentAt = null;
    this.restarts = 0;
    this.unhealthySince = Date.now();
    this.closed = false;
    this.createdAt = Date.now();
    // Tests on one machine: only 127.0.0.1 candidates are signalled or accepted, so every
    // connectivity check and media packet goes to loopback.
    this.loopbackOnly = !!loopbackOnly;

    this.pc.onicecandidate = (e) => {
      if (!e.candidate || !e.candidate.candidate) return; // end of candidates
      if (this.loopbackOnly && !isLoopback(e.candidate.candidate)) return;
      this.room.sendCandidate(peerId, e.candidate.toJSON()).catch((err) => console.debug('candidate not sent', err));
    };
    this.pc.onnegotiationneeded = () => this.negotiate(false);
    this.pc.onconnectionstatechange = () => this.linkChanged();
    this.pc.ontrack = (e) => {
      const mid = e.transceiver && e.transceiver.mid;
      const kind = this.kindOfMid.get(mid) || e.track.kind;
      this.events.track(peerId, kind, e.track, mid);
    };
    for (const [kind, track] of local) {
      if (track) this.setTrack(kind, track);
    }
    this.timer = setInterval(() => this.tick(), 500);
  }

  /** Starts, swaps or pauses (`null`) what I send of `kind`. */
  setTrack(kind, track) {
    const existing = this.senders.get(kind);
    if (existing) {
      // Already negotiated: swap or pause without a new offer, as the native engine pauses.
      existing.replaceTrack(track).catch((e) => console.warn('replaceTrack failed', e));
      return;
    }
    if (!track) return;
    // addTrack (not addTransceiver): before the first offer arrives, the browser may then pair
    // this track with the peer's m-section of the same kind instead of needing its own offer.
    // Later a new m-section: negotiationneeded follows and an offer is made (see negotiate).
    const sender = this.pc.addTrack(track);
    this.kindOfSender.set(sender, kind);
    this.senders.set(kind, sender);
  }

  async negotiate(iceRestart) {
    if (this.closed) return;
    // The larger id waits for the first offer (section 5); its tracks ride in its answer, and
    // anything still unnegotiated after that is offered once stable.
    if (!this.iOffer && !this.hadRemote) return; // afterStable() checks for unsent tracks
    if (this.makingOffer || this.pc.signalingState !== 'stable') {
      this.pending = true;
      return;
    }
    this.pending = false;
    this.makingOffer = true;
    try {
      if (iceRestart) this.pc.restartIce();
      await this.pc.setLocalDescription();
      if (this.pc.signalingState !== 'have-local-offer') return;
      this.offerSentAt = Date.now();
      await this.room.sendOffer(this.peerId, this.labelled(this.pc.localDescription.sdp));
    } catch (e) {
      console.warn(`offer to ${this.peerId} failed`, e);
      this.pending = true;
    } finally {
      this.makingOffer = false;
    }
  }

  async onOffer(sdp) {
    if (this.closed) return;
    const collision = this.makingOffer || this.pc.signalingState !== 'stable';
    this.ignoreOffer = !this.polite && collision;
    if (this.ignoreOffer) return;
    try {
      this.learnKinds(sdp);
      // A polite side in have-local-offer rolls back implicitly here.
      if (collision) this.pending = true;
      await this.pc.setRemoteDescription({ type: 'offer', sdp });
      this.hadRemote = true;
      this.offerSentAt = null;
      await this.pc.setLocalDescription();
      await this.room.sendAnswer(this.peerId, this.labelled(this.pc.localDescription.sdp));
      await this.flush();
      this.afterStable();
    } catch (e) {
      console.warn(`offer from ${this.peerId} failed`, e);
    }
  }

  async onAnswer(sdp) {
    if (this.closed || this.pc.signalingState !== 'have-local-offer') return;
    try {
      this.learnKinds(sdp);
      await this.pc.setRemoteDescription({ type: 'answer', sdp });
      this.hadRemote = true;
      this.offerSentAt = null;
      await this.flush();
      this.afterStable();
    } catch (e) {
      console.warn(`answer from ${this.peerId} failed`, e);
    }
  }

  async onCandidate(init) {
    if (this.closed) return;
    if (this.loopbackOnly && !isLoopback(init.candidate)) return;
    if (!this.pc.remoteDescription || this.pc.signalingState === 'have-remote-offer') {
      if (!this.ignoreOffer) this.queued.push(init);
      return;
    }
    try {
      await this.pc.addIceCandidate(init);
    } catch (e) {
      if (!this.ignoreOffer) console.debug('a remote candidate was refused', e);
    }
  }

  async flush() {
    const held = this.queued;
    this.queued = [];
    for (const c of held) await this.onCandidate(c);
  }

  afterStable() {
    if (this.pc.signalingState !== 'stable') return;
    if (this.pending || this.unsent()) this.negotiate(false);
  }

  /** True when a track I send has no negotiated sending m-section yet. */
  unsent() {
    return this.pc
      .getTransceivers()
      .some((t) => t.sender.track && (t.mid === null || !['sendrecv', 'sendonly'].includes(t.currentDirection)));
  }

  /** The SDP as sent: each m-section I send on is labelled with its kind. */
  labelled(sdp) {
    const kinds = new Map();
    for (const tr of this.pc.getTransceivers()) {
      const kind = this.kindOfSender.get(tr.sender);
      if (tr.mid !== null && kind) kinds.set(tr.mid, kind);
    }
    const sections = sdp.split(/(?=\r\nm=)/);
    return sections
      .map((sec) => {
        const mid = /\r\na=mid:(\S+)/.exec(sec);
        const kind = mid && kinds.get(mid[1]);
        if (!kind) return sec;
        return sec
          .replace(/\r\na=msid:[^\r\n]*/g, '')
          .replace(/\r\na=ssrc:(\d+) msid:[^\r\n]*/g, '')
          .replace(/(\r\na=mid:\S+)/, `$1\r\na=msid:huddle ${kind}`);
      })
      .join('');
  }

  /** Remembers which remote m-section carries which kind (from the peer's msid labels). */
  learnKinds(sdp) {
    for (const sec of sdp.split(/\r\n(?=m=)/)) {
      const mid = /\r\na=mid:(\S+)/.exec(sec);
      const msid = /\r\na=msid:\S+ (\S+)/.exec(sec) || /\r\na=ssrc:\d+ msid:\S+ (\S+)/.exec(sec);
      // The track id is the kind, optionally followed by `-<anything>` (the native engine
      // sends `video-<ssrc>` so that its tracks' names are unique).
      const kind = msid && msid[1].split('-')[0];
      if (mid && ['audio', 'video', 'screen'].includes(kind)) {
        this.kindOfMid.set(mid[1], kind);
      }
    }
  }

  linkChanged() {
    const s = this.pc.connectionState;
    this.events.state(this.peerId, s);
    if (s === 'connected') {
      this.unhealthySince = null;
      this.restarts = 0;
    } else if (s === 'disconnected' || s === 'failed') {
      if (this.unhealthySince === null) this.unhealthySince = Date.now();
      if (s === 'failed') this.tryRestart();
    }
  }

  tryRestart() {
    // The impolite side restarts; the polite one waits for its offer, so restarts never cross.
    if (this.polite || this.restarts >= MAX_RESTARTS) return;
    this.restarts += 1;
    this.negotiate(true);
  }

  tick() {
    if (this.closed) return;
    const now = Date.now();
    if (this.offerSentAt !== null && this.pc.signalingState === 'have-local-offer' && now - this.offerSentAt >= ANSWER_TIMEOUT_MS) {
      // The offer or its answer was lost: withdraw it and make it again.
      this.offerSentAt = null;
      this.pc
        .setLocalDescription({ type: 'rollback' })
        .then(() => this.negotiate(false))
        .catch((e) => console.warn('rollback failed', e));
      return;
    }
    if (this.unhealthySince === null) return;
    if (now - this.unhealthySince >= GIVE_UP_AFTER_MS) {
      this.close();
      this.events.gaveUp(this.peerId, 'could not reach this participant (a firewall may block direct connections; a TURN server would help)');
      return;
    }
    const lost = ['disconnected', 'failed'].includes(this.pc.connectionState);
    if (lost && now - this.unhealthySince >= RESTART_AFTER_MS * (this.restarts + 1)) this.tryRestart();
  }

  close() {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    this.pc.close();
  }
}

/** True when an ICE candidate line's address is 127.0.0.1 (field 5 of `candidate:...`). */
function isLoopback(line) {
  const fields = String(line || '').split(' ');
  return fields.length > 5 && fields[4] === '127.0.0.1';
}
