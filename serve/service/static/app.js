// armscan officers' page: session, header and hash routes (#/login, #/screen, #/scan/<id>, #/history).
// Plain ES modules, no build step, nothing loaded from outside this service.

import { ApiError, api, setCsrfToken, setSignedOutHandler } from "./api.js";
import { fill, h, loading, message } from "./dom.js";
import { renderHistory } from "./history.js";
import { renderLogin } from "./login.js";
import { renderResult } from "./result.js";
import { renderScreen } from "./screen.js";

const state = { user: null, afterLogin: "#/screen", notice: null };
const view = document.getElementById("view");
const userBox = document.getElementById("user");
const nav = document.getElementById("nav");

function signedIn(user) {
  state.user = user;
  setCsrfToken(user ? user.csrf_token : null);
  renderUser();
}

function renderUser() {
  const u = state.user;
  nav.hidden = !u;
  if (!u) {
    fill(userBox);
    return;
  }
  fill(
    userBox,
    h("span", { class: "who" }, "Signed in as ", h("strong", { id: "user-name" }, u.username), " ",
      h("span", { class: "role", id: "user-role" }, u.role)),
    h("button", { type: "button", class: "secondary", id: "sign-out", onclick: signOut }, "Sign out"),
  );
}

async function signOut() {
  try {
    await api("POST", "/v1/auth/logout");
  } catch {
    // Signing out locally is what matters; the cookie expires on its own.
  }
  signedIn(null);
  state.notice = { kind: "info", text: "You are signed out." };
  location.hash = "#/login";
}

setSignedOutHandler((text) => {
  if (!state.user) return;
  signedIn(null);
  state.notice = { kind: "info", text };
  if (!location.hash.startsWith("#/login")) state.afterLogin = location.hash;
  location.hash = "#/login";
});

function parseRoute() {
  const raw = location.hash.replace(/^#\/?/, "");
  const [path, query = ""] = raw.split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  return { name: parts[0] || "screen", arg: parts[1], query: new URLSearchParams(query) };
}

function markNav(name) {
  for (const a of nav.querySelectorAll("a")) {
    if (a.dataset.route === name) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
}

let renderToken = 0;

async function route() {
  const token = ++renderToken;
  const r = parseRoute();
  if (!state.user && r.name !== "login") {
    state.afterLogin = location.hash || "#/screen";
    location.hash = "#/login";
    return;
  }
  if (state.user && r.name === "login") {
    location.hash = "#/screen";
    return;
  }
  markNav(r.name);
  const ctx = {
    user: state.user,
    isCurrent: () => token === renderToken,
    setTitle: (t) => {
      document.title = `${t} – armscan`;
    },
  };
  view.replaceChildren();
  try {
    if (r.name === "login") {
      const notice = state.notice;
      state.notice = null;
      renderLogin(view, ctx, notice, (user) => {
        signedIn(user);
        const next = state.afterLogin && !state.afterLogin.startsWith("#/login") ? state.afterLogin : "#/screen";
        state.afterLogin = "#/screen";
        location.hash = next;
      });
    } else if (r.name === "screen") renderScreen(view, ctx);
    else if (r.name === "scan" && r.arg) await renderResult(view, ctx, r.arg);
    else if (r.name === "history") await renderHistory(view, ctx, r.query);
    else fill(view, h("h1", {}, "Page not found"), h("p", {}, h("a", { href: "#/screen" }, "Go to screening")));
  } catch (err) {
    if (!ctx.isCurrent()) return;
    const text = err instanceof ApiError ? err.message : `Something went wrong on this page: ${err}`;
    fill(view, message("error", text), h("p", {}, h("a", { href: "#/screen" }, "Back to screening")));
    if (!(err instanceof ApiError)) console.error(err);
  }
  if (ctx.isCurrent()) {
    const focusTarget = view.querySelector("[autofocus]") || view.querySelector("h1");
    if (focusTarget) {
      if (focusTarget.tagName === "H1") focusTarget.tabIndex = -1;
      focusTarget.focus({ preventScroll: true });
    }
  }
}

async function start() {
  fill(view, loading("Connecting to the service…"));
  try {
    signedIn(await api("GET", "/v1/auth/me"));
  } catch (err) {
    signedIn(null);
    if (!(err instanceof ApiError) || err.status !== 401) state.notice = { kind: "error", text: err.message };
  }
  window.addEventListener("hashchange", route);
  route();
}

start();
