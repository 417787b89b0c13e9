// Receive-side figures the page exposes (window.huddle) for tests and benchmarks: the first
// presented frame per kind, glass-to-glass latency from stamped frames, and per-connection
// counters from getStats().

import { read as readStamp, bandHeight } from './stamp.js';

/**
 * Watches the frames `video` presents: the first one (join timing) and, with `readStamps`, the
 * capture stamp of each (only the top band is copied out, but it is still a readback per frame,
 * so it is opt-in).
 */
export function watchFrames(video, kind, m, { readStamps, sinceJoin, onFirst }) {
  if (!('requestVideoFrameCallback' in video)) return;
  const canvas = document.createElement('canvas');
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  const latencies = [];
  const onFrame = (_now, meta) => {
    const since = sinceJoin();
    if (m.firstFrameMs[kind] === undefined && since !== null) {
      m.firstFrameMs[kind] = Math.round(since);
      onFirst();
    }
    const w = meta.width;
    if (readStamps && kind === 'video' && w >= 160) {
      const band = bandHeight(w);
      canvas.width = w;
      canvas.height = band;
      ctx.drawImage(video, 0, 0, w, band, 0, 0, w, band);
      const stamp = readStamp(ctx.getImageData(0, 0, w, band).data, w);
      if (stamp) {
        latencies.push(Date.now() - stamp.captureMs);
        if (latencies.length > 30) latencies.shift();
        const sorted = [...latencies].sort((a, b) => a - b);
        m.latencyMs = sorted[Math.floor(sorted.length / 2)];
      }
    }
    if (video.srcObject) video.requestVideoFrameCallback(onFrame);
  };
  video.requestVideoFrameCallback(onFrame);
}

/** Refreshes `state.members[peer].recv` / `.sent` from each connection's statistics. */
export async function pollStats(links, state) {
  for (const [peer, link] of links) {
    const m = state.members[peer];
    if (!m) continue;
    let report;
    try {
      report = await link.pc.getStats();
    } catch {
      continue;
    }
    const recv = {};
    report.forEach((s) => {
      if (s.type === 'outbound-rtp' && s.kind === 'video') {
        // What this connection's encoder really sends (browsers encode once per connection
        // and lower resolution or rate when the CPU is short: qualityLimitationReason).
        m.sent = {
          framesEncoded: s.framesEncoded || 0,
          width: s.frameWidth || 0,
          height: s.frameHeight || 0,
          limitation: s.qualityLimitationReason || 'none',
        };
      }
      if (s.type !== 'inbound-rtp') return;
      const kind = link.kindOfMid.get(s.mid) || s.kind;
      const r = recv[kind] || { framesDecoded: 0, packets: 0, fps: 0, bytes: 0 };
      r.packets += s.packetsReceived || 0;
      r.bytes += s.bytesReceived || 0;
      if (s.kind === 'video') {
        r.framesDecoded += s.framesDecoded || 0;
        r.fps += s.framesPerSecond || 0;
      }
      recv[kind] = r;
    });
    const prev = m.recv;
    for (const [kind, r] of Object.entries(recv)) {
      // fps over the last poll, from the decoded-frame count (framesPerSecond lags and sticks).
      const before = prev[kind];
      const dt = (performance.now() - (m.polledAt || 0)) / 1000;
      if (before && dt > 0 && kind !== 'audio') r.fps = Math.max(0, (r.framesDecoded - before.framesDecoded) / dt);
      if (kind !== 'audio' && r.framesDecoded > 0 && m.firstFrameMs[kind] === undefined && state.joinStartedAt !== null) {
        m.firstFrameMs[kind] = Math.round(performance.now() - state.joinStartedAt);
      }
    }
    m.recv = recv;
    m.polledAt = performance.now();
  }
}
