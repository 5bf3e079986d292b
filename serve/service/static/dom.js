// Small helpers shared by the views: building elements safely (text is never parsed as HTML),
// the words shown for decisions, classes and times.

/** h("button", {class: "primary", onclick: fn}, "Sign in") -> HTMLButtonElement. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (k in el && typeof v !== "string") el[k] = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** Replace the children of `el`. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

const SVG_NS = "http://www.w3.org/2000/svg";

export function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== null && v !== undefined) el.setAttribute(k, v);
  append(el, children);
  return el;
}

export const DECISIONS = {
  clear: { badge: "Clear", banner: "CLEAR", hint: "No firearm, firearm part or ammunition was found." },
  uncertain: { badge: "Uncertain", banner: "UNCERTAIN – INSPECT", hint: "Something may be there. Look at the marked areas." },
  alarm: { badge: "Alarm", banner: "ALARM – OPEN PARCEL", hint: "A likely threat was found. Open the parcel." },
};

export function decisionBadge(decision) {
  const d = DECISIONS[decision];
  return h("span", { class: `badge badge-${decision}` }, d ? d.badge : String(decision));
}

export const KINDS = {
  xray: { label: "X-ray scan", short: "X-ray" },
  photo: { label: "Seizure photo", short: "Photo" },
};

export function kindTag(kind) {
  const k = KINDS[kind] || KINDS.xray;
  return h("span", { class: `kind-tag kind-${kind || "xray"}` }, k.short);
}

/** A seizure photo's confidence band: what it means for the officer. */
export const BANDS = {
  confident: { badge: "Confident", hint: "The model is confident of this answer." },
  probable: { badge: "Probable", hint: "The answer is likely, not certain: check it against the item." },
  uncertain: {
    badge: "Uncertain",
    hint: "The model cannot tell what this is. An officer or a firearms expert must identify it; "
      + "the model's best guesses are listed below.",
  },
};

export function bandBadge(band) {
  const b = BANDS[band];
  return h("span", { class: `badge band-${band}` }, b ? b.badge : String(band));
}

/** A photo's answer in words: "semi auto pistol", "no firearm", or "not identified" when the model abstains. */
export function answerWords(answer) {
  return answer === "uncertain" ? "not identified" : words(answer);
}

/** "frame_receiver" -> "frame receiver". */
export function words(name) {
  return name ? String(name).replaceAll("_", " ") : "";
}

export function percent(score) {
  return `${Math.round(Number(score) * 100)} %`;
}

const TIME = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });

export function formatTime(iso) {
  const t = new Date(iso);
  return Number.isNaN(t.getTime()) ? String(iso) : TIME.format(t);
}

/** A message box: kind is "error", "info" or "success". Errors are announced at once. */
export function message(kind, text) {
  return h("p", { class: `msg msg-${kind}`, role: kind === "error" ? "alert" : "status" }, text);
}

export function loading(text = "Loading…") {
  return h("p", { class: "loading", role: "status" }, text);
}
