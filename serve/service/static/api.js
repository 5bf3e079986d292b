// Talking to the armscan service: the session cookie, the CSRF header, plain-language errors and
// polite retries when the service answers 503 with Retry-After.

const UNSAFE = new Set(["POST", "PUT", "PATCH", "DELETE"]);
const MAX_BUSY_RETRIES = 2;
const MAX_RETRY_WAIT_S = 30;

let csrfToken = null;
let onSignedOut = () => {};

/** The server refused or failed a request; `message` is what an officer should read. */
export class ApiError extends Error {
  constructor(status, detail) {
    super(describe(status, detail));
    this.status = status;
    this.detail = detail;
  }
}

export function setCsrfToken(token) {
  csrfToken = token || null;
}

/** Called with a message when a request answers 401: the session has ended. */
export function setSignedOutHandler(fn) {
  onSignedOut = fn;
}

function describe(status, detail) {
  const reason = detail ? String(detail) : "";
  const withReason = (text) => (reason ? `${text}: ${reason}` : text);
  if (status === 0) return withReason("The service cannot be reached. Check the network connection and try again");
  if (status === 401) return reason || "Please sign in again";
  if (status === 403) return withReason("This action is not allowed");
  if (status === 404) return withReason("Not found");
  if (status === 410) return withReason("No longer available");
  if (status === 413) return withReason("The file is too big");
  if (status === 409) return withReason("The service cannot do this now");
  if (status === 415 || status === 422) return withReason("The file could not be read as a scan or photo");
  if (status === 429) return withReason("Too many requests. Please wait a moment and try again");
  if (status === 503) return withReason("The service is busy. Please try again shortly");
  if (status >= 500) return withReason(`The service had a problem (error ${status})`);
  return withReason(`The request failed (error ${status})`);
}

/** FastAPI errors are {"detail": "reason"}; validation errors carry a list of {msg}. */
function detailOf(body) {
  if (!body || body.detail === undefined) return "";
  const d = body.detail;
  if (Array.isArray(d)) return d.map((e) => (e && e.msg ? e.msg : JSON.stringify(e))).join("; ");
  return typeof d === "string" ? d : JSON.stringify(d);
}

function parseJson(text) {
  try {
    return text ? JSON.parse(text) : null;
  } catch {
    return null;
  }
}

function retryAfterSeconds(value) {
  const s = Number.parseFloat(value);
  if (Number.isFinite(s)) return Math.min(Math.max(s, 1), MAX_RETRY_WAIT_S);
  const when = Date.parse(value || "");
  if (Number.isFinite(when)) return Math.min(Math.max((when - Date.now()) / 1000, 1), MAX_RETRY_WAIT_S);
  return 2;
}

const sleep = (s) => new Promise((resolve) => setTimeout(resolve, s * 1000));

function headersFor(method) {
  const h = { Accept: "application/json" };
  if (UNSAFE.has(method) && csrfToken) h["X-CSRF-Token"] = csrfToken;
  return h;
}

function fail(status, body, path) {
  const err = new ApiError(status, detailOf(body));
  if (status === 401 && !path.startsWith("/v1/auth/")) onSignedOut("Your session has ended. Please sign in again.");
  throw err;
}

/**
 * JSON request. `onBusy(seconds, attempt)` is told before each retry after a 503.
 * Resolves to the parsed body (null for 204).
 */
export async function api(method, path, { json, onBusy } = {}) {
  for (let attempt = 0; ; attempt++) {
    const headers = headersFor(method);
    const init = { method, headers, credentials: "same-origin" };
    if (json !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(json);
    }
    let res;
    try {
      res = await fetch(path, init);
    } catch {
      throw new ApiError(0, "");
    }
    if (res.status === 503 && attempt < MAX_BUSY_RETRIES) {
      const wait = retryAfterSeconds(res.headers.get("Retry-After"));
      if (onBusy) onBusy(wait, attempt + 1);
      await sleep(wait);
      continue;
    }
    const body = parseJson(await res.text());
    if (!res.ok) fail(res.status, body, path);
    return body;
  }
}

function xhrUpload(path, file, kind, onProgress) {
  return new Promise((resolve) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", path);
    for (const [k, v] of Object.entries(headersFor("POST"))) xhr.setRequestHeader(k, v);
    xhr.upload.onprogress = (e) => {
      if (e.lengthComputable && onProgress) onProgress(e.loaded / e.total);
    };
    xhr.onload = () => resolve({ status: xhr.status, text: xhr.responseText, retryAfter: xhr.getResponseHeader("Retry-After") });
    xhr.onerror = () => resolve({ status: 0, text: "", retryAfter: null });
    const form = new FormData();
    form.append("file", file, file.name);
    form.append("kind", kind);
    xhr.send(form);
  });
}

/**
 * Multipart upload of one X-ray scan (kind "xray") or seizure photo (kind "photo") with upload progress (0..1);
 * retries after 503 like `api`.
 */
export async function uploadScan(file, { kind = "xray", onProgress, onBusy } = {}) {
  for (let attempt = 0; ; attempt++) {
    const res = await xhrUpload("/v1/scans", file, kind, onProgress);
    if (res.status === 503 && attempt < MAX_BUSY_RETRIES) {
      const wait = retryAfterSeconds(res.retryAfter);
      if (onBusy) onBusy(wait, attempt + 1);
      await sleep(wait);
      continue;
    }
    const body = parseJson(res.text);
    if (res.status < 200 || res.status >= 300) fail(res.status, body, "/v1/scans");
    return body;
  }
}

/** Fetch an image as an object URL, so that the caller sees the status (e.g. 410 after retention). */
export async function fetchImage(path) {
  let res;
  try {
    res = await fetch(path, { credentials: "same-origin" });
  } catch {
    throw new ApiError(0, "");
  }
  if (!res.ok) fail(res.status, parseJson(await res.text()), path);
  return URL.createObjectURL(await res.blob());
}
