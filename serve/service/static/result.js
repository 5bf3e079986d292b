// Result view for one scan: the decision banner, the image with its boxes, the detections and the
// officer's feedback (confirm, reject, correct the class, mark missed items, comment).

import { ApiError, api, fetchImage } from "./api.js";
import { DECISIONS, fill, formatTime, h, percent, words } from "./dom.js";
import { createFeedback, renderStoredFeedback } from "./feedback.js";
import { createViewer, detectionLabel } from "./overlay.js";

const LEVELS = { alarm: "Alarm", uncertain: "Uncertain", below: "Below threshold" };
let modelsPromise = null;
let imageUrl = null; // object URL of the image shown last; released when another is shown

/** {classes, builds} the officer may choose: those of the model that screened this scan, else the default model's. */
async function vocabularyFor(scan) {
  modelsPromise = modelsPromise || api("GET", "/v1/models").catch((err) => {
    modelsPromise = null;
    throw err;
  });
  const m = await modelsPromise;
  const models = m.models || [];
  const model = models.find((x) => x.name === scan.model_name) || models.find((x) => x.name === m.default) || models[0];
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

function meta(scan) {
  const item = (k, v) => h("div", {}, h("dt", {}, k), h("dd", {}, v));
  return h("dl", { class: "meta" },
    item("File", scan.filename),
    item("Screened", formatTime(scan.created_at)),
    item("Officer", scan.officer),
    item("Image size", `${scan.width} × ${scan.height} px`),
    item("Model", `${scan.model_name} ${scan.model_version}`),
    item("Time taken", `${Math.round(scan.total_ms ?? scan.latency_ms)} ms`));
}

async function showImage(viewer, scan) {
  const alt = `X-ray scan ${scan.filename}`;
  let url;
  try {
    if (scan.image_stored === false) throw new ApiError(410, "");
    url = await fetchImage(scan.image_url);
  } catch (err) {
    if (!(err instanceof ApiError) || err.status !== 410) {
      viewer.setMessage(`The image cannot be shown. ${err.message}`);
      return;
    }
    try {
      url = await fetchImage(scan.thumbnail_url);
      viewer.setMessage("The full-resolution image is no longer kept; showing the small preview.");
    } catch (err2) {
      viewer.setMessage(`The image is no longer kept. ${err2.message}`);
      return;
    }
  }
  if (imageUrl) URL.revokeObjectURL(imageUrl);
  imageUrl = url;
  viewer.setImage(url, alt);
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
  await showImage(viewer, scan);
}
