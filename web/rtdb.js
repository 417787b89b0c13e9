// The database as docs/protocol.md uses it: Firebase REST (`fetch`) and streaming
// (`EventSource`), with the child events (added / changed / removed) that Firebase's SDKs derive
// from a stream. No SDK: the page talks to huddle-db (or real Firebase) over plain HTTP.

/** `{".sv": "timestamp"}`: the server writes its own clock. */
export const SERVER_TIME = Object.freeze({ '.sv': 'timestamp' });

/** A database at `base` (e.g. `http://127.0.0.1:9000`), with an optional secret or token. */
export class Db {
  constructor(base, auth) {
    this.base = base.replace(/\/+$/, '');
    this.auth = auth || '';
  }

  url(path, extra = '') {
    const clean = path.replace(/^\/+|\/+$/g, '');
    const q = [];
    if (this.auth) q.push('auth=' + encodeURIComponent(this.auth));
    if (extra) q.push(extra);
    return `${this.base}/${clean}.json${q.length ? '?' + q.join('&') : ''}`;
  }

  async request(method, path, body, headers = {}, keepalive = false) {
    const init = { method, headers: { ...headers }, keepalive };
    if (body !== undefined) {
      init.body = JSON.stringify(body);
      init.headers['Content-Type'] = 'application/json';
    }
    let resp;
    try {
      resp = await fetch(this.url(path), init);
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
    if (!resp.ok && resp.status !== 412) {
      const why = value && value.error ? value.error : resp.statusText;
      throw new DbError(resp.status, `the database refused ${method} ${path}: ${why}`);
    }
    return { status: resp.status, value, etag: resp.headers.get('ETag') };
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
    return new ChildStream(this.url(path), handlers);
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
 * reports which direct children were added, changed or removed. EventSource reconnects by itself;
 * the server then sends the whole value again, and the diff reports only what really changed.
 */
export class ChildStream {
  constructor(url, { onChild, onValue, onError, onOpen } = {}) {
    this.value = null;
    this.onChild = onChild || (() => {});
    this.onValue = onValue || (() => {});
    this.onError = onError || (() => {});
    this.loaded = false;
    this.es = new EventSource(url);
    const apply = (ev, merge) => {
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
    this.es.addEventListener('put', (ev) => apply(ev, false));
    this.es.addEventListener('patch', (ev) => apply(ev, true));
    this.es.addEventListener('cancel', () => this.onError('the database cancelled the stream (permission denied)'));
    this.es.addEventListener('auth_revoked', () => this.onError('the database credentials are no longer valid'));
    if (onOpen) this.es.addEventListener('open', onOpen);
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
    this.es.close();
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
