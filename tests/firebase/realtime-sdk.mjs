// The official Firebase SDKs against huddle-db's realtime protocol (/.ws), over real sockets.
// Driven by crates/rtdb/tests/sdk.rs, which starts the servers: PORT has the test rules
// (everything but `locked/` open), ADMIN_PORT none (for firebase-admin's emulator "owner").
// Prints `ok NAME` per case and `figure NAME VALUE`; `kill` asks the driver to kill -9 the PORT
// server (answered `killed` on stdin), `start` to start it again on the same port and data
// (answered `started`). Exits non-zero on any failure.
import { createRequire } from 'node:module';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';
import readline from 'node:readline';

const require = createRequire(new URL('./node_modules/', import.meta.url));
const { initializeApp, deleteApp } = require('firebase/app');
const D = require('firebase/database');
const port = Number(process.env.PORT);

let apps = 0;
function open() {
  const app = initializeApp(
    { projectId: 'demo-huddle', databaseURL: `http://127.0.0.1:${port}?ns=demo-huddle` },
    `app${apps++}`
  );
  const db = D.getDatabase(app);
  D.connectDatabaseEmulator(db, '127.0.0.1', port);
  return { app, db };
}

function within(ms, what, p) {
  return Promise.race([
    p,
    new Promise((_, rej) => setTimeout(() => rej(new Error(`${what}: nothing within ${ms} ms`)), ms)),
  ]);
}

// Resolves with the first value of `r` that `pred` accepts.
function until(r, pred, what, ms = 10000) {
  return within(ms, what, new Promise((res, rej) => {
    let done = false, off = null;
    off = D.onValue(r, s => {
      if (!done && pred(s.val())) { done = true; res(s.val()); if (off) off(); else setTimeout(() => off(), 0); }
    }, rej);
  }));
}

const restUrl = path => `http://127.0.0.1:${port}/${path}.json`;

if (process.env.MODE === 'child') {
  // A participant that registers its onDisconnect work and then is killed.
  const { db } = open();
  await D.set(D.ref(db, 'presence/child'), { here: true });
  await D.onDisconnect(D.ref(db, 'presence/child')).remove();
  await D.onDisconnect(D.ref(db, 'status/child')).set({ state: 'offline', at: D.serverTimestamp() });
  await D.onDisconnect(D.ref(db, 'counts')).update({ child: null, gone: 1 });
  console.log('ready');
  setInterval(() => {}, 1000);
} else {
  await main();
}

async function main() {
  const a = open(), b = open();

  // .info/connected and the server clock offset.
  assert.equal(await until(D.ref(a.db, '.info/connected'), v => v === true, 'connected'), true);
  const offset = await until(D.ref(a.db, '.info/serverTimeOffset'), v => typeof v === 'number', 'offset');
  assert.ok(Math.abs(offset) < 5000, `offset ${offset}`);
  console.log('ok info');

  // set / update / push / remove, seen by another client.
  await D.set(D.ref(a.db, 'crud'), { x: 1, y: { z: 2 } });
  await D.update(D.ref(a.db, 'crud'), { 'y/w': 3, x: null, v: 'hi' });
  const k1 = D.push(D.ref(a.db, 'crud/list'), 'first').key;
  const k2 = D.push(D.ref(a.db, 'crud/list'), 'second').key;
  assert.ok(k1 < k2, 'push keys sort in order');
  await D.remove(D.ref(a.db, 'crud/v'));
  const seen = await until(D.ref(b.db, 'crud'), v => v && v.list && Object.keys(v.list).length === 2, 'crud');
  assert.deepEqual(seen, { y: { z: 2, w: 3 }, list: { [k1]: 'first', [k2]: 'second' } });
  assert.deepEqual((await D.get(D.ref(b.db, 'crud/y'))).val(), { z: 2, w: 3 });
  console.log('ok crud');

  // Child events with prevChildKey, on a query ordered by a child, and a window moving.
  await D.set(D.ref(a.db, 'scores'), { alice: { s: 10 }, bob: { s: 20 }, carol: { s: 30 } });
  const q = D.query(D.ref(b.db, 'scores'), D.orderByChild('s'), D.limitToFirst(2));
  const events = [];
  const offs = [
    D.onChildAdded(q, (s, prev) => events.push(['added', s.key, prev ?? null])),
    D.onChildRemoved(q, s => events.push(['removed', s.key])),
    D.onChildChanged(q, (s, prev) => events.push(['changed', s.key, prev ?? null])),
    D.onChildMoved(q, (s, prev) => events.push(['moved', s.key, prev ?? null])),
  ];
  await within(10000, 'initial window', (async () => { while (events.length < 2) await new Promise(r => setTimeout(r, 20)); })());
  assert.deepEqual(events.splice(0), [['added', 'alice', null], ['added', 'bob', 'alice']]);
  await D.set(D.ref(a.db, 'scores/carol/s'), 5); // carol enters first, bob leaves the window
  await within(10000, 'carol enters', (async () => { while (!events.some(e => e[0] === 'removed')) await new Promise(r => setTimeout(r, 20)); })());
  assert.deepEqual(events.filter(e => e[0] === 'removed'), [['removed', 'bob']]);
  assert.deepEqual(events.filter(e => e[0] === 'added'), [['added', 'carol', null]]);
  events.splice(0);
  await D.set(D.ref(a.db, 'scores/alice/s'), 1); // alice moves before carol
  await within(10000, 'alice moves', (async () => { while (!events.some(e => e[0] === 'moved')) await new Promise(r => setTimeout(r, 20)); })());
  assert.deepEqual(events.find(e => e[0] === 'moved'), ['moved', 'alice', null]);
  offs.forEach(off => off());
  console.log('ok child-events');

  // Queries by key, value and child with ranges, as gets.
  await D.set(D.ref(a.db, 'q'), { a: 3, b: 1, c: 2, d: 5, '10': 0, '9': 4 });
  const keys = async (...c) => { const out = []; (await D.get(D.query(D.ref(b.db, 'q'), ...c))).forEach(s => { out.push(s.key); }); return out; };
  assert.deepEqual(await keys(D.orderByKey(), D.limitToFirst(3)), ['9', '10', 'a']);
  assert.deepEqual(await keys(D.orderByKey(), D.startAfter('a'), D.endAt('c')), ['b', 'c']);
  assert.deepEqual(await keys(D.orderByValue(), D.limitToLast(2)), ['9', 'd']);
  assert.deepEqual(await keys(D.orderByValue(), D.startAt(2), D.endBefore(4)), ['c', 'a']);
  assert.deepEqual(await keys(D.orderByValue(), D.equalTo(1)), ['b']);
  console.log('ok queries');

  // serverTimestamp, and increment from two clients at once.
  const before = Date.now();
  await D.set(D.ref(a.db, 'ts'), D.serverTimestamp());
  const ts = (await D.get(D.ref(b.db, 'ts'))).val();
  assert.ok(typeof ts === 'number' && Math.abs(ts - before) < 5000, `timestamp ${ts}`);
  await Promise.all([a, b].flatMap(c => Array.from({ length: 50 }, () => D.set(D.ref(c.db, 'inc'), D.increment(1)))));
  assert.equal((await D.get(D.ref(a.db, 'inc'))).val(), 100);
  console.log('ok server-values');

  // Transactions contending from two clients: every one commits exactly once.
  const t0 = Date.now();
  const results = await Promise.all([a, b].flatMap(c => Array.from({ length: 20 }, () =>
    D.runTransaction(D.ref(c.db, 'tx/n'), v => (v || 0) + 1))));
  assert.ok(results.every(r => r.committed));
  assert.equal((await D.get(D.ref(a.db, 'tx/n'))).val(), 40);
  await D.set(D.ref(a.db, 'tx/obj'), { list: [1, 2], n: 1.5, s: 'x', t: true });
  const r2 = await D.runTransaction(D.ref(b.db, 'tx/obj'), v => v && { ...v, n: v.n + 1 });
  assert.ok(r2.committed);
  assert.deepEqual((await D.get(D.ref(a.db, 'tx/obj'))).val(), { list: [1, 2], n: 2.5, s: 'x', t: true });
  console.log(`figure transactions_40_contending_ms ${Date.now() - t0}`);
  console.log('ok transactions');

  // onDisconnect set / update / remove / cancel, fired by a clean goOffline.
  const c = open();
  await D.set(D.ref(c.db, 'od/here'), true);
  await D.onDisconnect(D.ref(c.db, 'od/here')).remove();
  await D.onDisconnect(D.ref(c.db, 'od/status')).set({ state: 'offline', at: D.serverTimestamp() });
  await D.onDisconnect(D.ref(c.db, 'od/counts')).update({ c: 1, d: 2 });
  await D.onDisconnect(D.ref(c.db, 'od/cancelled')).set('should not appear');
  await D.onDisconnect(D.ref(c.db, 'od/cancelled')).cancel();
  D.goOffline(c.db);
  const od = await until(D.ref(a.db, 'od'), v => v && v.status, 'onDisconnect after goOffline');
  assert.equal(od.here, undefined);
  assert.equal(od.status.state, 'offline');
  assert.ok(typeof od.status.at === 'number');
  assert.deepEqual(od.counts, { c: 1, d: 2 });
  assert.equal(od.cancelled, undefined);
  console.log('ok on-disconnect-offline');

  // onDisconnect of a process killed with SIGKILL.
  await D.set(D.ref(a.db, 'counts'), { child: 1, other: 1 });
  const child = spawn(process.execPath, [fileURLToPath(import.meta.url)], { env: { ...process.env, MODE: 'child' }, stdio: ['ignore', 'pipe', 'inherit'] });
  await within(15000, 'child ready', new Promise(res => readline.createInterface({ input: child.stdout }).on('line', l => { if (l === 'ready') res(); })));
  await until(D.ref(a.db, 'presence/child'), v => v !== null, 'child present');
  const gone = until(D.ref(a.db, 'presence/child'), v => v === null, 'child removed after SIGKILL', 15000);
  const killedAt = Date.now();
  child.kill('SIGKILL');
  await gone;
  console.log(`figure sigkill_to_removed_ms ${Date.now() - killedAt}`);
  assert.equal((await D.get(D.ref(a.db, 'status/child/state'))).val(), 'offline');
  assert.deepEqual((await D.get(D.ref(a.db, 'counts'))).val(), { other: 1, gone: 1 });
  console.log('ok on-disconnect-sigkill');

  // Values of hundreds of KB both ways (frames split and joined).
  const big = 'x'.repeat(300 * 1024);
  const obj = Object.fromEntries(Array.from({ length: 5000 }, (_, i) => [`k${i}`, { i, s: 'y'.repeat(80) }]));
  await D.set(D.ref(a.db, 'big/s'), big);
  await D.set(D.ref(a.db, 'big/o'), obj);
  const got = await until(D.ref(b.db, 'big'), v => v && v.o && v.s, 'big values');
  assert.equal(got.s, big);
  assert.deepEqual(got.o, obj);
  console.log('ok large-values');

  // Permission errors from the rules.
  await assert.rejects(D.set(D.ref(a.db, 'locked/x'), 1), e => /permission/i.test(String(e.code || e.message)));
  await assert.rejects(within(10000, 'locked get', D.get(D.ref(a.db, 'locked'))), e => /permission/i.test(String(e.message)));
  const cancelled = await within(10000, 'listen cancelled', new Promise(res => D.onValue(D.ref(a.db, 'locked/y'), () => {}, err => res(err))));
  assert.match(String(cancelled.message), /permission/i);
  console.log('ok permissions');

  // The server is killed and restarted mid-session: the SDK reconnects, listeners resume, and
  // writes made while it was down are applied.
  await D.set(D.ref(a.db, 'r/v'), 1);
  const resumed = until(D.ref(b.db, 'r/v'), v => v === 2, 'listener after restart', 60000);
  await until(D.ref(b.db, 'r/v'), v => v === 1, 'r/v = 1');
  const rl = readline.createInterface({ input: process.stdin });
  const lines = [];
  rl.on('line', l => lines.push(l));
  const reply = want => within(60000, `driver ${want}`, (async () => { while (!lines.includes(want)) await new Promise(r => setTimeout(r, 20)); })());
  console.log('kill');
  await reply('killed');
  await until(D.ref(a.db, '.info/connected'), v => v === false, 'noticed the server gone', 30000);
  const offlineWrite = D.set(D.ref(a.db, 'r/offline'), 'queued');
  console.log('start');
  await reply('started');
  await within(60000, 'write made during the outage', offlineWrite);
  const rest = await (await fetch(restUrl('r/offline'))).json();
  assert.equal(rest, 'queued');
  await D.set(D.ref(a.db, 'r/v'), 2);
  await resumed;
  console.log('ok restart');
  rl.close();

  // firebase-admin with FIREBASE_DATABASE_EMULATOR_HOST (the admin's "owner").
  process.env.FIREBASE_DATABASE_EMULATOR_HOST = `127.0.0.1:${process.env.ADMIN_PORT}`;
  const admin = require('firebase-admin');
  const adminApp = admin.initializeApp({ projectId: 'demo-huddle', databaseURL: `http://127.0.0.1:${process.env.ADMIN_PORT}?ns=demo-huddle` }, 'admin');
  const adb = adminApp.database();
  await adb.ref('admin/x').set({ n: 1 });
  const adminSeen = new Promise(res => adb.ref('admin/x/n').on('value', s => { if (s.val() === 2) res(); }));
  await adb.ref('admin/x').update({ n: 2 });
  await within(10000, 'admin listener', adminSeen);
  const adminTx = await adb.ref('admin/count').transaction(v => (v || 0) + 1);
  assert.ok(adminTx.committed);
  assert.equal((await adb.ref('admin').once('value')).val().count, 1);
  console.log('ok admin-sdk');
  await adminApp.delete();

  for (const x of [a, b, c]) await deleteApp(x.app);
  process.exit(0);
}
