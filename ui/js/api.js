// The backend, as the page sees it: commands (invoke) and the two channels (typed events,
// binary frame bundles). Nothing here touches the network: the Rust side does.

const core = window.__TAURI__?.core;

/** Calls a command; errors come back as {message, hint}. */
export async function call(cmd, args = {}) {
  if (!core) throw { message: 'Huddle must run inside the app window.' };
  try {
    return await core.invoke(cmd, args);
  } catch (e) {
    if (typeof e === 'string') throw { message: e };
    throw e;
  }
}

/** Opens the event channel; `onEvent` gets every UiEvent ({type, ...}). */
export async function subscribe(onEvent) {
  const ch = new core.Channel();
  ch.onmessage = onEvent;
  await call('subscribe', { events: ch });
}

/** Opens the frame channel; `onBundle` gets each ArrayBuffer. */
export async function subscribeFrames(onBundle) {
  const ch = new core.Channel();
  ch.onmessage = onBundle;
  await call('frames_subscribe', { frames: ch });
}
