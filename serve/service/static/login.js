// Sign-in view.

import { ApiError, api } from "./api.js";
import { fill, h, message } from "./dom.js";

export function renderLogin(view, ctx, notice, onSignedIn) {
  ctx.setTitle("Sign in");
  const status = h("div", { id: "login-status" }, notice ? message(notice.kind, notice.text) : null);
  const username = h("input", { id: "username", name: "username", autocomplete: "username", required: true, autofocus: true });
  const password = h("input", { id: "password", name: "password", type: "password", autocomplete: "current-password", required: true });
  const submit = h("button", { type: "submit", class: "primary big" }, "Sign in");

  async function onSubmit(e) {
    e.preventDefault();
    if (!username.value.trim() || !password.value) {
      fill(status, message("error", "Enter your user name and your password."));
      return;
    }
    submit.disabled = true;
    fill(status, message("info", "Signing in…"));
    try {
      const user = await api("POST", "/v1/auth/login", { json: { username: username.value.trim(), password: password.value } });
      onSignedIn(user);
    } catch (err) {
      const text = err instanceof ApiError && err.status === 401
        ? `The user name or password is not correct.${err.detail ? ` (${err.detail})` : ""}`
        : err.message;
      fill(status, message("error", text));
      password.value = "";
      password.focus();
    } finally {
      submit.disabled = false;
    }
  }

  fill(
    view,
    h("section", { class: "card narrow" },
      h("h1", {}, "Sign in"),
      h("p", { class: "lead" }, "Sign in with your armscan user name to screen parcel X-ray scans."),
      status,
      h("form", { id: "login-form", onsubmit: onSubmit, novalidate: true },
        h("label", { for: "username" }, "User name"), username,
        h("label", { for: "password" }, "Password"), password,
        submit)),
  );
}
