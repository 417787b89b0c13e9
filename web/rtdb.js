// The database as docs/protocol.md uses it: Firebase REST (`fetch`) and streaming
// (`EventSource`), with the child events (added / changed / removed) that Firebase's SDKs derive
// from a stream. No SDK: the page talks to huddle-db (or real Firebase) over plain HTTP.

/** `{".sv": "timestamp"}`: the server writes its own clock. */
export const SERVER_TIME = Object.freeze({ '.sv': 'timestamp' });

/**
 * A database at `base` (e.g. `http://127.0.0.1:9000`). `auth` (web/auth.js `Auth`) hands out the
 * ID token every request and stream carries as `?auth=`; without it requests go unauthenticated.
 */
export class Db {
  constructor(base, auth) {
    this.base = base.replace(/\/+$/, '');
    this.auth = auth || null;
    // What tests read: REST retries after an expired token, stream reopens after auth_revoked.
    this.counts = { retries: 0, reopens: 0 };
  }

  async token() {
    return this.auth ? this.auth.token() : null;
  }

  url(path, token, extra = '') {
    const clean = path.replace(/^\/+|\/+$/g, '');
    const q = [];
    if (token) q.push('auth=' + encodeURIComponent(token));
    if (extra) q.push(extra);
    return `${this.base}/${clean}.json${q.length ? '?' + q.join('&') : ''}`;
  }

  async request(method, path, body, headers = {}, keepalive = false) {
    const init = { method, headers: { ...headers }, keepalive };
    if (body !== undefined) {
      init.body = JSON.stringify(body);
      init.headers['Content-Type'] = 'application/json';
    }
    for (let attempt = 0; ; attempt++) {
      // A request that must outlive the page cannot wait for a refresh: it takes the held token.
      let token;
      try {
        token = keepalive && this.auth ? this.auth.current() : await this.token();
      } catch (e) {
        throw new DbError(0, e.message);
      }
      let resp;
      try {
        resp = await fetch(this.url(path, token), init);
      } catch (e) {
        throw new DbError(0, `cannot reach the database (${e.message})`);
      }
      const text = await resp.text();
      let value = null;
      try {
        value = text ? JSON.parse(text) : null;
      } catch {
        value = null;
      }
      const why = value && value.error ? value.error : resp.statusText;
      // The token expired on the way (or the computer slept): refresh once and send again.
      if (resp.status === 401 && why === 'Auth token is expired' && this.auth && attempt === 0 && !keepalive) {
        this.auth.refused(token);
        this.counts.retries += 1;
        continue;
      }
      if (!resp.ok && resp.status !== 412) {
        throw new DbError(resp.status, `the database refused ${method} ${path}: ${why}`);
      }
      return { status: resp.status, value, etag: resp.headers.get('ETag') };
    }
  }

  async get(path) {
    return (await this.request('GET', path)).value;
  }

  /** GET with the ETag Firebase returns when asked (`X-Firebase-ETag: true`). */
  async getWithEtag(path) {
    const r = await this.request('GET', path, undefined, { 'X-Firebase-ETag': 'true' });
    return { value: r.value, etag: r.etag };
  }

  async put(path, value) {
    return (await this.request('PUT', path, value)).value;
  }

  /** PUT only if the location still has `etag`; true if written, false on 412. */
  async putIf(path, value, etag) {
    const r = await this.request('PUT', path, value, { 'if-match': etag });
    return r.status !== 412;
  }

  /** PATCH: `children` maps paths relative to `path` to values (`null` deletes); atomic. */
  async patch(path, children, keepalive = false) {
    return (await this.request('PATCH', path, children, {}, keepalive)).value;
  }

  async post(path, value) {
    return (await this.request('POST', path, value)).value;
  }

  async delete(path) {
    await this.request('DELETE', path);
  }

  /** Streams `path`; `onChild(kind, key, value)` gets child events, `onValue(value)` the whole. */
  stream(path, handlers) {
    return new ChildStream(this, path, handlers);
  }
}

/** A refused or failed request, with words for a person. */
export class DbError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/**
 * One streamed location: keeps a copy of its value, applies `put`/`patch` events to it, and
 * reports which direct children were added, changed or removed. EventSource reconnects by itself
 * after a network error; a stream the server ends for good (`auth_revoked` when its token
 * expires, a refused open) is reopened here with a fresh token. Either way the server then sends
 * the whole value again as the first `put`, which replaces the copy, and the diff reports only
 * what really changed.
 */
export class ChildStream {
  constructor(db, path, { onChild, onValue, onError, onOpen } = {}) {
    this.db = db;
    this.path = path;
    this.value = null;
    this.onChild = onChild || (() => {});
    this.onValue = onValue || (() => {});
    this.onError = onError || (() => {});
    this.onOpen = onOpen || null;
    this.loaded = false;
    this.closed = false;
    this.es = null;
    this.token = null;
    this.failures = 0; // consecutive opens that ended without an event: backs off
    this.connect();
  }

  async connect() {
    if (this.closed) return;
    let token;
    try {
      token = await this.db.token();
    } catch (e) {
      this.onError(e.message);
      this.retryLater();
      return;
    }
    if (this.closed) return;
    this.token = token;
    const es = new EventSource(this.db.url(this.path, token));
    this.es = es;
    const apply = (ev, merge) => {
      this.failures = 0;
      let msg;
      try {
        msg = JSON.parse(ev.data);
      } catch {
        console.warn('ignoring a stream event that is not JSON', ev.data);
        return;
      }
      if (!msg || typeof msg.path !== 'string') return;
      const before = this.value;
      this.value = applyAt(clone(before), segments(msg.path), msg.data, merge);
      this.loaded = true;
      this.diff(before, this.value);
      this.onValue(this.value);
    };
    es.addEventListener('put', (ev) => apply(ev, false));
    es.addEventListener('patch', (ev) => apply(ev, true));
    es.addEventListener('cancel', () => {
      this.close();
      this.onError('the database cancelled the stream (permission denied)');
    });
    es.addEventListener('auth_revoked', () => {
      // The token this stream was opened with expired. Every stream opened with it hears this
      // at about the same time; naming the token lets them share one refresh.
      es.close();
      if (this.db.auth) this.db.auth.refused(token);
      this.reopen();
    });
    es.addEventListener('error', () => {
      // CONNECTING: the browser retries by itself. CLOSED: it gave up (an HTTP error such as a
      // 401 for a token that expired on the way); only a new EventSource with a new URL helps.
      if (es.readyState !== EventSource.CLOSED || this.es !== es) return;
      this.failures += 1;
      // The first refusal may be a token that expired on the way: a fresh one is worth a try.
      // Refused again, it is the rules or the server: keep trying, slowly, without new tokens.
      if (this.failures === 1 && this.db.auth) this.db.auth.refused(token);
      if (this.failures === 3) this.onError('the database keeps refusing this stream; still trying');
      this.retryLater();
    });
    if (this.onOpen) es.addEventListener('open', this.onOpen);
  }

  reopen() {
    if (this.closed) return;
    this.db.counts.reopens += 1;
    this.connect();
  }

  retryLater() {
    if (this.closed) return;
    // 0.5 s, 1 s, 2 s ... up to 10 s, with jitter: many streams failing at once do not return
    // in step.
    const delay = Math.min(10000, 500 * 2 ** Math.min(this.failures, 5)) * (0.5 + Math.random() / 2);
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.reopen(), delay);
  }

  diff(before, after) {
    const a = isObject(before) ? before : {};
    const b = isObject(after) ? after : {};
    for (const key of Object.keys(a)) {
      if (!(key in b)) this.onChild('removed', key, null);
    }
    for (const key of Object.keys(b)) {
      if (!(key in a)) this.onChild('added', key, b[key]);
      else if (JSON.stringify(a[key]) !== JSON.stringify(b[key])) this.onChild('changed', key, b[key]);
    }
  }

  close() {
    this.closed = true;
    clearTimeout(this.retryTimer);
    if (this.es) this.es.close();
  }
}

function segments(path) {
  return path.split('/').filter((s) => s.length > 0);
}

function isObject(v) {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function clone(v) {
  return v === null || v === undefined ? null : JSON.parse(JSON.stringify(v));
}

/** Sets (or merges, for `patch`) `data` at `segs` inside `root`; nulls and empty objects vanish. */
function applyAt(root, segs, data, merge) {
  if (segs.length === 0) {
    if (!merge) return prune(clone(data));
    // A patch: each key (possibly a path) is set below this location.
    let out = root;
    for (const [k, v] of Object.entries(data || {})) out = applyAt(out, segments(k), v, false);
    return prune(out);
  }
  const base = isObject(root) ? root : {};
  const [head, ...rest] = segs;
  const child = applyAt(base[head] === undefined ? null : base[head], rest, data, merge);
  setChild(base, head, child);
  return prune(base);
}

function setChild(obj, key, value) {
  // `undefined` and `null` both delete: the database never stores nulls.
  if (value === null || value === undefined) delete obj[key];
  else obj[key] = value;
}

function prune(v) {
  if (!isObject(v)) return v === undefined ? null : v;
  for (const k of Object.keys(v)) {
    const c = prune(v[k]);
    if (c === null) delete v[k];
    else v[k] = c;
  }
  return Object.keys(v).length ? v : null;
}
