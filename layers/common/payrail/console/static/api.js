// The API over the cookie session. No token is ever visible to this code: the HttpOnly cookies
// travel with same-origin requests, and the browser adds the Origin header that the API's CSRF
// guard checks on every POST.

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem?.detail || problem?.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem || {};
  }
}

/** The request may or may not have reached the API: retry it the same way. */
export class Unreachable extends Error {}

const listeners = new Set();
let reachable = true;

export function onReachability(listener) {
  listeners.add(listener);
}

function setReachable(value) {
  if (value === reachable) return;
  reachable = value;
  for (const listener of listeners) listener(value);
}

let signedOutHandler = () => {};
export function onSignedOut(handler) {
  signedOutHandler = handler;
}

async function send(method, path, body, headers) {
  const init = { method, credentials: "same-origin", headers: { Accept: "application/json", ...headers } };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers["Content-Type"] = "application/json";
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (error) {
    setReachable(false);
    throw new Unreachable(`The API could not be reached (${error.message}).`);
  }
  // A gateway that cannot reach its function is as good as unreachable for the user.
  if (response.status === 502 || response.status === 503 || response.status === 504) {
    setReachable(false);
    throw new Unreachable(`The API is unavailable (HTTP ${response.status}).`);
  }
  setReachable(true);
  return response;
}

// One refresh at a time: refresh tokens rotate, and presenting one twice revokes the session.
let refreshing = null;
export function refreshSession() {
  refreshing ??= send("POST", "/auth/refresh")
    .then((response) => response.ok)
    .finally(() => { refreshing = null; });
  return refreshing;
}

/** JSON in, JSON out; throws ApiError for a problem document and Unreachable for the network. */
export async function api(method, path, { body, headers = {} } = {}) {
  let response = await send(method, path, body, headers);
  if (response.status === 401 && !path.startsWith("/auth/")) {
    if (await refreshSession()) response = await send(method, path, body, headers);
    if (response.status === 401) signedOutHandler();
  }
  const text = await response.text();
  let payload = null;
  try {
    payload = text ? JSON.parse(text) : null;
  } catch {
    payload = { detail: text.slice(0, 200) };
  }
  if (!response.ok) throw new ApiError(response.status, payload);
  return { status: response.status, headers: response.headers, body: payload };
}
