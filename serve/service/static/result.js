// Result view for one scan: the decision banner, the image with its boxes, the detections and the
// officer's feedback (confirm, reject, correct the class, mark missed items, comment).

import { api } from "./api.js";
import { DECISIONS, fill, h, percent, words } from "./dom.js";
import { createFeedback, renderStoredFeedback } from "./feedback.js";
import { createViewer } from "./overlay.js";
import { renderPhotoResult } from "./photo.js";
import { meta, showImage } from "./scanparts.js";

const LEVELS = { alarm: "Alarm", uncertain: "Uncertain", below: "Below threshold" };
let modelsPromise = null;

/**
 * {classes, builds} the officer may choose: those of the model that handled this scan, else the default model
 * of the scan's kind (X-ray detector or photo classifier).
 */
export async function vocabularyFor(scan) {
  modelsPromise = modelsPromise || api("GET", "/v1/models").catch((err) => {
    modelsPromise = null;
    throw err;
  });
  const m = await modelsPromise;
  const kind = scan.kind || "xray";
  const models = (m.models || []).filter((x) => (x.kind || "xray") === kind);
  const fallback = kind === "photo" ? m.default_photo : m.default;
  const model = models.find((x) => x.name === scan.model_name) || models.find((x) => x.name === fallback) || models[0];
  if (!model || !model.classes || !model.classes.length) throw new Error("the service lists no model classes");
  return { classes: model.classes, builds: model.builds || [] };
}

function banner(scan) {
  const d = DECISIONS[scan.decision] || { banner: String(scan.decision).toUpperCase(), hint: "" };
  const flags = Object.entries(scan.flags || {}).filter(([, v]) => v).map(([k]) => words(k).replace("printed or polymer", "printed or polymer part"));
  const found = flags.join(" · ");
  return h("div", { class: `banner banner-${scan.decision}`, id: "banner", dataset: { decision: scan.decision } },
    h("h1", { class: "banner-title" }, d.banner),
    h("p", { class: "banner-hint" }, d.hint),
    found ? h("p", { class: "banner-flags" }, `Found: ${found}`) : null);
}

function detectionItem(d, position, fb) {
  const level = LEVELS[d.level] || String(d.level);
  const facts = [
    d.type ? `Type: ${words(d.type)}${d.type_score != null ? ` (${percent(d.type_score)})` : ""}` : null,
    d.build ? `Build: ${words(d.build)}${d.build_score != null ? ` (${percent(d.build_score)})` : ""}` : null,
    `Confidence: ${percent(d.score)}`,
  ].filter(Boolean);
  const li = h("li", { class: `det det-${d.level}`, id: `det-${d.index}`, dataset: { index: String(d.index) } },
    h("div", { class: "det-head" },
      h("span", { class: `det-num num-${d.level}`, "aria-hidden": "true" }, String(position)),
      h("strong", { class: "det-cls" }, words(d.cls)),
      h("span", { class: `badge badge-${d.level}` }, level)),
    h("p", { class: "det-facts" }, facts.join(" · ")),
    fb.controlsFor(d, position));
  const hot = (on) => () => fb.highlight(on ? d.index : null);
  li.addEventListener("mouseenter", hot(true));
  li.addEventListener("mouseleave", hot(false));
  li.addEventListener("focusin", hot(true));
  li.addEventListener("focusout", hot(false));
  return li;
}

export async function renderResult(view, ctx, id) {
  ctx.setTitle("Scan result");
  fill(view, h("p", { class: "loading", role: "status" }, "Loading the scan…"));
  let scan = await api("GET", `/v1/scans/${encodeURIComponent(id)}`);
  if (!ctx.isCurrent()) return;
  if (scan.kind === "photo") {
    await renderPhotoResult(view, ctx, scan, vocabularyFor(scan));
    return;
  }
  const title = (DECISIONS[scan.decision] || {}).badge || scan.decision;
  ctx.setTitle(`${title}: ${scan.filename}`);

  const positions = new Map(scan.detections.map((d, i) => [d.index, i + 1]));
  const viewer = createViewer({ width: scan.width, height: scan.height, onDraw: (box) => fb.addMissed(box), onCancel: () => fb.setDrawMode(false) });
  const storedEl = h("section", { class: "card", id: "stored-feedback", "aria-live": "polite" });
  const fb = createFeedback({
    scan,
    user: ctx.user,
    viewer,
    positions,
    vocabulary: vocabularyFor(scan),
    onSaved: async () => {
      scan = await api("GET", `/v1/scans/${encodeURIComponent(id)}`);
      fb.setScan(scan);
      renderStoredFeedback(storedEl, scan, positions);
    },
  });

  const dets = scan.detections.length
    ? h("ol", { class: "dets", id: "detections" }, scan.detections.map((d, i) => detectionItem(d, i + 1, fb)))
    : h("p", { class: "empty", id: "detections" }, "Nothing was marked on this scan.");

  fill(view,
    h("p", { class: "crumbs" }, h("a", { href: "#/screen" }, "← Screen more parcels"), " ", h("a", { href: "#/history" }, "History")),
    banner(scan),
    meta(scan),
    h("div", { class: "result-grid" },
      h("figure", { class: "card figure" },
        viewer.el,
        h("figcaption", {},
          fb.markControls,
          h("ul", { class: "legend" },
            h("li", {}, h("span", { class: "swatch sw-alarm" }), "Alarm"),
            h("li", {}, h("span", { class: "swatch sw-uncertain" }), "Uncertain"),
            scan.detections.some((d) => d.level === "below") ? h("li", {}, h("span", { class: "swatch sw-below" }), "Below threshold") : null,
            h("li", {}, h("span", { class: "swatch sw-missed" }), "Missed item marked by an officer")),
          h("p", { class: "links" },
            h("a", { href: scan.image_url, target: "_blank", rel: "noopener" }, "Open full image"), " · ",
            h("a", { href: scan.overlay_url, download: `${scan.id}-overlay.png` }, "Download image with boxes")))),
      h("div", { class: "side" },
        h("section", { class: "card" }, h("h2", {}, `Detections (${scan.detections.length})`), dets),
        fb.el,
        storedEl)));
  fb.redraw();
  renderStoredFeedback(storedEl, scan, positions);
  await showImage(viewer, scan, `X-ray scan ${scan.filename}`);
}
