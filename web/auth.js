// Anonymous sign-in for the web guest, with Firebase Authentication's REST API as the official
// SDKs use it: `accounts:signUp` for a new anonymous user, the Secure Token `token` endpoint to
// turn the kept refresh token into a fresh ID token. The page asks its own origin: huddle-db serves
// both endpoints at the Auth emulator's paths (crates/rtdb/src/identity/), so this is the same
// code path a Firebase client takes against the emulator. The uid is the guest's peer id, so the
// database rules can require `auth.uid` to be the writer's peer id.

/**
 * The web API key the page sends. huddle-db accepts any non-empty key unless it was started with
 * `--api-key`; a host who sets one must set this value (or serve a page that sends theirs).
 */
export const API_KEY = 'huddle-web';

/** Firebase's SDKs refresh five minutes before expiry... */
const REFRESH_BEFORE_EXPIRY_MS = 5 * 60 * 1000;
const STORE_KEY = 'huddle-auth';

/** ...or at three quarters of the lifetime for short tokens (test servers issue seconds-long ones). */
function refreshMargin(lifetimeMs) {
  return Math.min(REFRESH_BEFORE_EXPIRY_MS, lifetimeMs / 4);
}

/** A sign-in that failed, with words for a person. */
export class SignInError extends Error {}

/**
 * One signed-in guest on `origin`. `token()` hands out a valid ID token, refreshing it when due;
 * every caller shares the one refresh in flight. `refused(token)` is what a 401 or an
 * `auth_revoked` reports: the token is refreshed once, however many requests and streams
 * were refused with it.
 */
export class Auth {
  constructor(origin, apiKey = API_KEY) {
    this.origin = origin.replace(/\/+$/, '');
    this.apiKey = apiKey;
    this.uid = null;
    this.refreshToken = null;
    this.idToken = null;
    this.expiresAt = 0; // local clock, ms
    this.dueAt = 0;
    this.inflight = null;
    this.timer = null;
    // What tests read: how many times the page signed up and refreshed.
    this.counts = { signUps: 0, refreshes: 0, refused: 0 };
    const saved = load();
    if (saved) {
      this.uid = saved.uid;
      this.refreshToken = saved.refreshToken;
    }
  }

  /** Signs in (a new anonymous user, or the one this browser kept); resolves to the uid. */
  async signIn() {
    await this.token();
    return this.uid;
  }

  /** A valid ID token: the held one, or a fresh one when it is due (or was refused). */
  async token() {
    if (this.idToken && Date.now() < this.dueAt) return this.idToken;
    return this.renew();
  }

  /** The held token without waiting (a request sent while the page unloads cannot wait). */
  current() {
    return this.idToken;
  }

  /** The database refused `token`: the next `token()` gets a fresh one, unless another did it already. */
  refused(token) {
    this.counts.refused += 1;
    if (token && token === this.idToken) this.dueAt = 0;
  }

  renew() {
    if (!this.inflight) {
      this.inflight = this.fetchToken().finally(() => {
        this.inflight = null;
      });
    }
    return this.inflight;
  }

  async fetchToken() {
    if (this.refreshToken) {
      try {
        const r = await this.call('securetoken.googleapis.com/v1/token', 'application/x-www-form-urlencoded',
          new URLSearchParams({ grant_type: 'refresh_token', refresh_token: this.refreshToken }).toString());
        this.counts.refreshes += 1;
        return this.take(r.user_id, r.refresh_token, r.id_token, r.expires_in);
      } catch (e) {
        // The server no longer knows this guest (its data was reset, or this is another
        // server on the same address): start again as a new guest rather than stay locked out.
        if (!(e.code && /INVALID_REFRESH_TOKEN|USER_NOT_FOUND|USER_DISABLED|TOKEN_EXPIRED/.test(e.code))) throw e;
        console.warn('the saved sign-in was refused; signing in as a new guest', e.code);
        this.refreshToken = null;
        this.uid = null;
      }
    }
    const r = await this.call('identitytoolkit.googleapis.com/v1/accounts:signUp', 'application/json',
      JSON.stringify({ returnSecureToken: true }));
    this.counts.signUps += 1;
    return this.take(r.localId, r.refreshToken, r.idToken, r.expiresIn);
  }

  take(uid, refreshToken, idToken, expiresIn) {
    const secs = Number(expiresIn);
    if (typeof uid !== 'string' || !uid || typeof idToken !== 'string' || !idToken || !(secs > 0)) {
      throw new SignInError('The server answered the sign-in with something that is not a sign-in. Reload the page; if it keeps happening, the address may not be a Huddle server.');
    }
    if (this.uid && this.uid !== uid) console.warn(`signed in as a new guest ${uid} (was ${this.uid})`);
    this.uid = uid;
    if (typeof refreshToken === 'string' && refreshToken) this.refreshToken = refreshToken;
    this.idToken = idToken;
    // The lifetime as the server states it, on our clock: a wrong clock on this computer
    // does not make a fresh token look expired.
    const lifetime = secs * 1000;
    this.expiresAt = Date.now() + lifetime;
    this.dueAt = this.expiresAt - refreshMargin(lifetime);
    save({ uid: this.uid, refreshToken: this.refreshToken });
    // Refresh ahead of need, so that requests and reopened streams rarely wait for one.
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.renew().catch((e) => console.warn('token refresh failed', e.message)),
      Math.max(0, this.dueAt - Date.now()));
    return idToken;
  }

  async call(path, type, body) {
    const url = `${this.origin}/${path}?key=${encodeURIComponent(this.apiKey)}`;
    let resp;
    try {
      resp = await fetch(url, { method: 'POST', headers: { 'Content-Type': type }, body });
    } catch (e) {
      throw new SignInError(`Could not reach the Huddle server to sign in (${e.message}). Check your connection, then reload the page.`);
    }
    let value = null;
    try {
      value = await resp.json();
    } catch {
      value = null;
    }
    if (resp.ok && value) return value;
    const code = (value && value.error && value.error.message) || `HTTP ${resp.status}`;
    const err = new SignInError(words(code));
    err.code = code;
    throw err;
  }
}

/** Google's error codes, as a guest would want to read them. */
function words(code) {
  if (/API key not valid|missing a valid API key/i.test(code)) {
    return 'This Huddle server does not accept the web page\'s sign-in key (it was started with --api-key). Ask the person who runs it to allow web guests.';
  }
  if (/OPERATION_NOT_ALLOWED|ADMIN_ONLY_OPERATION/.test(code)) {
    return 'Guest sign-in is turned off on this server, so you cannot join from a browser. Ask the host for another way in.';
  }
  if (/TOO_MANY_ATTEMPTS/.test(code)) return 'Too many sign-ins from this browser just now. Wait a minute, then reload the page.';
  if (/INVALID_REFRESH_TOKEN|USER_NOT_FOUND|USER_DISABLED|TOKEN_EXPIRED/.test(code)) {
    return 'Your saved sign-in is no longer valid. Reload the page to join as a new guest.';
  }
  return `Could not sign in to the Huddle server (${code}). Reload the page to try again.`;
}

// localStorage is per origin: a guest keeps one uid per Huddle server, across reloads.
function load() {
  try {
    const v = JSON.parse(localStorage.getItem(STORE_KEY) || 'null');
    if (v && typeof v.uid === 'string' && typeof v.refreshToken === 'string') return v;
  } catch {
    // Unreadable or blocked storage: sign in as a new guest.
  }
  return null;
}

function save(v) {
  try {
    localStorage.setItem(STORE_KEY, JSON.stringify(v));
  } catch {
    // Private browsing: a new uid each visit is fine.
  }
}
