// Result view for a seizure photo: the answer (firearm family) with its band and probability, the best guesses,
// the build, the lengths measured against a card or ruler, the photo with the card outlined, and the officer's
// verdict (confirm the answer, or correct the family and build), sent with POST /v1/scans/{id}/feedback.

import { ApiError, api } from "./api.js";
import { BANDS, DECISIONS, answerWords, bandBadge, fill, formatTime, h, message, percent, svg, words } from "./dom.js";
import { meta, showImage } from "./scanparts.js";

const BUILD_ALERT = new Set(["printed", "polymer"]);
const REFERENCE = { card: "an ID-1 card (85.60 × 53.98 mm)", ruler: "a ruler" };

function banner(scan, p) {
  const title = p.answer === "uncertain" ? "NOT IDENTIFIED – EXPERT NEEDED" : words(p.answer).toUpperCase();
  const band = BANDS[p.band] || { hint: "" };
  return h("div", { class: `banner banner-${scan.decision}`, id: "banner",
    dataset: { decision: scan.decision, kind: "photo", band: p.band } },
  h("h1", { class: "banner-title" }, title),
  h("p", { class: "banner-band" }, bandBadge(p.band), ` Probability ${percent(p.probability)}`,
    p.answer === "uncertain" ? ` (best guess: ${words(p.label)})` : ""),
  h("p", { class: "banner-hint" }, band.hint),
  (DECISIONS[scan.decision] || {}).badge ? h("p", { class: "banner-flags" }, `Recorded in the history as: ${DECISIONS[scan.decision].badge}`) : null);
}

function lengthText(l) {
  return `${Math.round(l.mm)} mm ± ${Math.max(1, Math.round(l.plus_minus_mm))} mm`;
}

function facts(p) {
  const item = (k, ...v) => h("div", { class: "fact" }, h("dt", {}, k), h("dd", {}, ...v));
  const alert = p.build && BUILD_ALERT.has(p.build);
  const build = p.build
    ? h("span", { class: alert ? "build build-alert" : "build", id: "photo-build" },
      `${words(p.build)} (${percent(p.build_probability)})`,
      alert ? h("span", { class: "build-note" }, " Printed or polymer weapon: it may pass a metal detector.") : null)
    : h("span", { id: "photo-build" }, "none (no weapon)");
  const lengths = p.overall_length
    ? [item("Overall length", h("span", { id: "overall-length" }, lengthText(p.overall_length))),
      item("Barrel length", h("span", { id: "barrel-length" }, p.barrel_length ? lengthText(p.barrel_length) : "not measured")),
      item("Measured against", REFERENCE[p.reference] || words(p.reference))]
    : [item("Length", h("span", { class: "length-note", id: "length-note" }, p.length_note || "not measured"))];
  return h("section", { class: "card", id: "photo-facts" },
    h("h2", {}, "What the model sees"),
    h("dl", { class: "facts" },
      item("Answer", h("strong", { id: "photo-answer" }, answerWords(p.answer)), " ", bandBadge(p.band)),
      item("Probability", percent(p.probability)),
      item("Best guesses", h("ol", { class: "guesses", id: "top-guesses" },
        p.top.map((g) => h("li", {}, `${words(g.label)} `, h("span", { class: "guess-p" }, percent(g.probability)))))),
      item("Build", build),
      lengths));
}

/** The photo with the reference card's outline drawn over it (an SVG in the photo's own pixel grid). */
function createPhotoViewer(p) {
  const img = h("img", { class: "scan-img", alt: "", draggable: "false" });
  const note = h("p", { class: "viewer-note", hidden: true });
  const layer = svg("svg", { class: "boxes", id: "card-layer", viewBox: `0 0 ${p.width} ${p.height}`, preserveAspectRatio: "none",
    role: "img", "aria-label": p.card_corners ? "The reference card, outlined" : "No reference card found" });
  if (p.card_corners) {
    layer.append(svg("polygon", { class: "card-outline", points: p.card_corners.map(([x, y]) => `${x},${y}`).join(" "),
      "vector-effect": "non-scaling-stroke" }));
  }
  const el = h("div", { class: "viewer" }, img, layer, note);
  el.style.aspectRatio = `${p.width} / ${p.height}`; // CSSOM: the Content-Security-Policy forbids inline styles
  el.style.width = `min(100%, calc(72vh * ${p.width / p.height}))`;
  return {
    el,
    setImage(url, alt) {
      img.src = url;
      img.alt = alt;
    },
    setMessage(text) {
      note.textContent = text || "";
      note.hidden = !text;
    },
  };
}

function describe(f) {
  const lines = [];
  const v = f.photo;
  if (v && v.verdict === "confirmed") lines.push(`Confirmed the answer: ${words(v.family)}${v.build ? ` (${words(v.build)})` : ""}`);
  if (v && v.verdict === "corrected") lines.push(`Corrected to: ${words(v.family)}${v.build ? ` (${words(v.build)})` : ""}`);
  if (f.comment) lines.push(`Comment: “${f.comment}”`);
  return lines;
}

function renderStored(el, scan) {
  const list = scan.feedback || [];
  fill(el,
    h("h2", {}, `Feedback given (${list.length})`),
    list.length
      ? h("ol", { class: "stored" }, list.map((f) => h("li", { class: "stored-item" },
        h("p", { class: "stored-head" }, h("strong", {}, f.officer), ` · ${formatTime(f.created_at)}`),
        h("ul", {}, describe(f).map((line) => h("li", {}, line))))))
      : h("p", { class: "empty" }, "No feedback has been given on this photo yet."));
}

function createVerdict(scan, vocabulary, onSaved) {
  const p = scan.photo;
  let confirmed = false;
  const status = h("div", { id: "feedback-status", "aria-live": "polite" });
  const confirm = p.answer === "uncertain" ? null : h("button", {
    type: "button", class: "toggle confirm", id: "confirm-answer", "aria-pressed": "false",
    onclick: () => setConfirmed(!confirmed),
  }, `✓ Yes, it is ${answerWords(p.answer)}`);
  const family = h("select", { id: "correct-family", onchange: () => family.value && setConfirmed(false) },
    h("option", { value: "" }, p.answer === "uncertain" ? "— choose what it is —" : "(the answer is right)"));
  const build = h("select", { id: "correct-build" }, h("option", { value: "" }, "build not known"));
  const comment = h("textarea", { id: "photo-comment", rows: "3", maxlength: "2000" });
  const send = h("button", { type: "button", class: "primary big", id: "send-feedback", onclick: () => submit() }, "Send feedback");

  function setConfirmed(on) {
    confirmed = on;
    if (confirm) confirm.setAttribute("aria-pressed", String(on));
    if (on) family.value = "";
  }

  vocabulary.then((v) => {
    family.append(...v.classes.map((c) => h("option", { value: c }, words(c))));
    build.append(...v.builds.map((b) => h("option", { value: b }, words(b))));
  }).catch((err) => {
    fill(status, message("error", `The list of families could not be loaded, so the answer cannot be corrected. ${err.message}`));
  });

  function body() {
    const b = { comment: comment.value.trim() || null };
    if (family.value) b.photo = { verdict: "corrected", family: family.value, build: build.value || null };
    else if (confirmed) b.photo = { verdict: "confirmed", build: build.value || null };
    return b;
  }

  async function submit() {
    const b = body();
    if (!b.photo && !b.comment) {
      fill(status, message("error", p.answer === "uncertain"
        ? "There is nothing to send yet: choose what the item is, or write a comment."
        : "There is nothing to send yet: confirm the answer, choose the right family, or write a comment."));
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
    setConfirmed(false);
    family.value = "";
    build.value = "";
    comment.value = "";
    fill(status, message("success", "Thank you. Your feedback was saved."));
    send.disabled = false;
    try {
      await onSaved();
    } catch (err) {
      fill(status, message("error", `Feedback saved, but the photo could not be reloaded. ${err.message}`));
    }
  }

  return h("section", { class: "card", id: "feedback" },
    h("h2", {}, "Your verdict"),
    h("p", { class: "hint" }, p.answer === "uncertain"
      ? "The model did not identify this item. If you know what it is, choose it below."
      : "Is the answer right? Confirm it, or choose the right family."),
    confirm ? h("div", { class: "toggles" }, confirm) : null,
    h("label", { for: "correct-family" }, p.answer === "uncertain" ? "What it is" : "Correct family"), family,
    h("label", { for: "correct-build" }, "Build (metal, polymer or printed)"), build,
    h("label", { for: "photo-comment" }, "Comment (optional)"), comment,
    send, status);
}

export async function renderPhotoResult(view, ctx, scan, vocabulary) {
  const p = scan.photo;
  ctx.setTitle(`${answerWords(p.answer)}: ${scan.filename}`);
  const viewer = createPhotoViewer(p);
  const storedEl = h("section", { class: "card", id: "stored-feedback", "aria-live": "polite" });
  const verdict = createVerdict(scan, vocabulary, async () => {
    const fresh = await api("GET", `/v1/scans/${encodeURIComponent(scan.id)}`);
    renderStored(storedEl, fresh);
  });
  fill(view,
    h("p", { class: "crumbs" }, h("a", { href: "#/screen" }, "← Screen more"), " ", h("a", { href: "#/history" }, "History")),
    banner(scan, p),
    meta(scan, [["Kind", "Seizure photo"]]),
    h("div", { class: "result-grid" },
      h("figure", { class: "card figure" },
        viewer.el,
        h("figcaption", {},
          p.card_corners ? h("ul", { class: "legend" }, h("li", {}, h("span", { class: "swatch sw-card" }), "Reference card")) : null,
          h("p", { class: "links" },
            h("a", { href: scan.image_url, target: "_blank", rel: "noopener" }, "Open full image"), " · ",
            h("a", { href: scan.overlay_url, download: `${scan.id}-overlay.png` }, "Download image with the answer")))),
      h("div", { class: "side" }, facts(p), verdict, storedEl)));
  renderStored(storedEl, scan);
  await showImage(viewer, scan, `Seizure photo ${scan.filename}`);
}
