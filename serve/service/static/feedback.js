// The officer's feedback on one scan: a verdict and an optional corrected class per detection, missed
// items drawn on the image, a comment; sent with POST /v1/scans/{id}/feedback. Also lists stored feedback.

import { ApiError, api } from "./api.js";
import { fill, formatTime, h, message, words } from "./dom.js";
import { detectionLabel } from "./overlay.js";

const VERDICT_WORDS = { confirmed: "Confirmed", rejected: "Rejected" };

function classOptions(classes, firstText) {
  return [h("option", { value: "" }, firstText), ...classes.map((c) => h("option", { value: c }, words(c)))];
}

export function createFeedback({ scan: initialScan, viewer, positions, vocabulary, onSaved }) {
  let scan = initialScan;
  let classList = [];
  let buildList = [];
  const verdicts = new Map(); // detection index -> "confirmed" | "rejected"
  const corrections = new Map(); // detection index -> class name
  let missed = []; // [{box, cls, build}]
  let hot = null;
  let drawMode = false;
  const selects = []; // corrected-class selects, filled when the class list arrives
  const buttons = new Map(); // detection index -> {confirm, reject}

  const status = h("div", { id: "feedback-status", "aria-live": "polite" });
  const missedList = h("ol", { class: "missed", id: "missed-list" });
  const markBtn = h("button", { type: "button", class: "secondary", id: "mark-missed", "aria-pressed": "false", onclick: () => setDrawMode(!drawMode) },
    "Mark missed item");
  const drawHint = h("p", { class: "hint", id: "draw-hint", hidden: true },
    "Drag a rectangle around the missed item on the image. Press Escape to stop.");
  const comment = h("textarea", { id: "comment", rows: "3", maxlength: "2000" });
  const send = h("button", { type: "button", class: "primary big", id: "send-feedback", onclick: () => submit() }, "Send feedback");

  vocabulary.then((v) => {
    classList = v.classes;
    buildList = v.builds;
    for (const s of selects) s.append(...classOptions(classList, "").slice(1));
    renderMissed();
  }).catch((err) => {
    markBtn.disabled = true;
    fill(status, message("error", `The list of classes could not be loaded, so classes cannot be corrected. ${err.message}`));
  });

  function marks() {
    const out = scan.detections.map((d) => ({
      box: d.box, kind: d.level, label: detectionLabel(positions.get(d.index), d),
      state: verdicts.get(d.index) || "", hot: hot === d.index,
    }));
    for (const f of scan.feedback || []) {
      for (const m of f.missed || []) out.push({ box: m.box, kind: "stored", label: `missed: ${words(m.cls)}`, state: "", hot: false });
    }
    missed.forEach((m, i) => out.push({ box: m.box, kind: "missed", label: `M${i + 1} ${m.cls ? words(m.cls) : "?"}`, state: "", hot: false }));
    return out;
  }

  function redraw() {
    viewer.draw(marks());
    for (const [index, b] of buttons) {
      const v = verdicts.get(index);
      b.confirm.setAttribute("aria-pressed", String(v === "confirmed"));
      b.reject.setAttribute("aria-pressed", String(v === "rejected"));
    }
  }

  function toggle(index, verdict) {
    verdicts.set(index, verdicts.get(index) === verdict ? undefined : verdict);
    if (!verdicts.get(index)) verdicts.delete(index);
    redraw();
  }

  function controlsFor(d, position) {
    const confirm = h("button", { type: "button", class: "toggle confirm", "aria-pressed": "false", onclick: () => toggle(d.index, "confirmed"),
      "aria-label": `Confirm detection ${position}` }, "✓ Confirm");
    const reject = h("button", { type: "button", class: "toggle reject", "aria-pressed": "false", onclick: () => toggle(d.index, "rejected"),
      "aria-label": `Reject detection ${position}` }, "✗ Reject");
    buttons.set(d.index, { confirm, reject });
    const selId = `correct-${d.index}`;
    const select = h("select", { id: selId, class: "correct", onchange: (e) => {
      if (e.target.value) corrections.set(d.index, e.target.value);
      else corrections.delete(d.index);
    } }, classOptions(classList, "(class is right)"));
    selects.push(select);
    return h("div", { class: "det-feedback" },
      h("div", { class: "toggles", role: "group", "aria-label": `Your verdict on detection ${position}` }, confirm, reject),
      h("div", { class: "correct-group" }, h("label", { for: selId, class: "inline" }, "Correct class: "), select));
  }

  function setDrawMode(on) {
    drawMode = on;
    viewer.setDrawMode(on);
    markBtn.setAttribute("aria-pressed", String(on));
    markBtn.textContent = on ? "Stop marking" : "Mark missed item";
    drawHint.hidden = !on;
    if (on) viewer.el.scrollIntoView({ block: "nearest" });
    if (on) document.addEventListener("keydown", onKey);
    else document.removeEventListener("keydown", onKey);
  }

  function onKey(e) {
    if (e.key === "Escape") setDrawMode(false);
  }

  function addMissed(box) {
    missed.push({ box, cls: "", build: "" });
    setDrawMode(false);
    renderMissed();
    redraw();
    const selects = missedList.querySelectorAll("select");
    if (selects.length) selects[selects.length - 1].focus();
  }

  function renderMissed() {
    fill(missedList, missed.map((m, i) => {
      const id = `missed-cls-${i}`;
      const select = h("select", { id, class: "missed-cls", required: true, onchange: (e) => {
        m.cls = e.target.value;
        redraw();
      } }, classOptions(classList, "— choose what it is —"));
      select.value = m.cls;
      const buildId = `missed-build-${i}`;
      const build = buildList.length
        ? h("select", { id: buildId, class: "missed-build", onchange: (e) => {
          m.build = e.target.value;
        } }, h("option", { value: "" }, "build not known"), buildList.map((b) => h("option", { value: b }, words(b))))
        : null;
      if (build) build.value = m.build;
      return h("li", {},
        h("label", { for: id }, `Missed item M${i + 1}: `), select,
        build ? [h("label", { for: buildId, class: "visually-hidden" }, `Build of missed item M${i + 1}`), build] : null, " ",
        h("button", { type: "button", class: "secondary small", onclick: () => {
          missed.splice(i, 1);
          renderMissed();
          redraw();
        } }, "Remove"));
    }));
  }

  function body() {
    const indices = new Set([...verdicts.keys(), ...corrections.keys()]);
    return {
      // A corrected class without a verdict means: there is an object, of that class.
      detections: [...indices].sort((a, b) => a - b).map((index) => ({
        index, verdict: verdicts.get(index) || "confirmed", cls: corrections.get(index) || null,
      })),
      missed: missed.map((m) => (m.build ? { box: m.box, cls: m.cls, build: m.build } : { box: m.box, cls: m.cls })),
      comment: comment.value.trim() || null,
    };
  }

  async function submit() {
    const b = body();
    const unnamed = missed.findIndex((m) => !m.cls);
    if (unnamed >= 0) {
      fill(status, message("error", `Choose what missed item M${unnamed + 1} is before sending.`));
      missedList.querySelectorAll("select")[unnamed].focus();
      return;
    }
    if (!b.detections.length && !b.missed.length && !b.comment) {
      fill(status, message("error", "There is nothing to send yet: confirm or reject a detection, mark a missed item, or write a comment."));
      return;
    }
    send.disabled = true;
    fill(status, message("info", "Sending feedback…"));
    try {
      await api("POST", `/v1/scans/${encodeURIComponent(scan.id)}/feedback`, { json: b });
    } catch (err) {
      fill(status, message("error", `Feedback not sent. ${err instanceof ApiError ? err.message : String(err)}`));
      send.disabled = false;
      return;
    }
    verdicts.clear();
    corrections.clear();
    for (const s of selects) s.value = "";
    missed = [];
    comment.value = "";
    renderMissed();
    fill(status, message("success", "Thank you. Your feedback was saved."));
    send.disabled = false;
    try {
      await onSaved();
    } catch (err) {
      fill(status, message("error", `Feedback saved, but the scan could not be reloaded. ${err.message}`));
    }
    redraw();
  }

  const el = h("section", { class: "card", id: "feedback" },
    h("h2", {}, "Your feedback"),
    h("p", { class: "hint" }, "Confirm or reject each marked item above. If something was missed, press "
      + "“Mark missed item” under the image and drag a rectangle around it."),
    missedList,
    h("label", { for: "comment" }, "Comment (optional)"), comment,
    send, status);

  const markControls = h("div", { class: "mark-controls" }, markBtn, drawHint);

  return {
    el, markControls, controlsFor, addMissed, setDrawMode, redraw,
    highlight(index) {
      hot = index;
      redraw();
    },
    setScan(next) {
      scan = next;
    },
  };
}

function describeFeedback(f, positions) {
  const lines = [];
  for (const d of f.detections || []) {
    const n = positions.get(d.index);
    const what = `${VERDICT_WORDS[d.verdict] || d.verdict} detection ${n ?? `#${d.index}`}`;
    lines.push(d.cls ? `${what}, class corrected to ${words(d.cls)}` : what);
  }
  for (const m of f.missed || []) lines.push(`Missed item: ${words(m.cls)}${m.build ? ` (${words(m.build)})` : ""} at (${m.box.map((v) => Math.round(v)).join(", ")})`);
  if (f.comment) lines.push(`Comment: “${f.comment}”`);
  return lines;
}

export function renderStoredFeedback(el, scan, positions) {
  const list = scan.feedback || [];
  fill(el,
    h("h2", {}, `Feedback given (${list.length})`),
    list.length
      ? h("ol", { class: "stored" }, list.map((f) => h("li", { class: "stored-item" },
        h("p", { class: "stored-head" }, h("strong", {}, f.officer), ` · ${formatTime(f.created_at)}`),
        h("ul", {}, describeFeedback(f, positions).map((line) => h("li", {}, line))))))
      : h("p", { class: "empty" }, "No feedback has been given on this scan yet."));
}
