// Screening view: drop or pick scans, upload them two at a time, follow each one to its result.
// The list survives moving to a result and back (it lives in this module, not in the page).

import { ApiError, uploadScan } from "./api.js";
import { decisionBadge, fill, h } from "./dom.js";

const PARALLEL = 2;
const ACCEPT = ".jpg,.jpeg,.png,.tif,.tiff,.bmp,.dcs,.dcm,image/jpeg,image/png,image/tiff,image/bmp,application/dicom";
const queue = []; // {id, file, status: waiting|uploading|screening|done|failed, progress, text, scan}
let nextId = 1;
let running = 0;
let listEl = null;
let summaryEl = null;

function humanSize(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(0)} KB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

function statusText(item) {
  if (item.status === "waiting") return "Waiting…";
  if (item.status === "uploading") return `Sending… ${Math.round(item.progress * 100)} %`;
  if (item.status === "screening") return item.text || "Screening…";
  if (item.status === "done") {
    const n = item.scan.detections.length;
    return `Screened: ${n ? `${n} item${n === 1 ? "" : "s"} marked` : "nothing marked"}`;
  }
  return item.text;
}

function itemEl(item) {
  const li = h("li", { class: `qitem q-${item.status}`, dataset: { status: item.status, file: item.file.name } });
  const head = h("div", { class: "qhead" },
    h("span", { class: "qname" }, item.file.name),
    h("span", { class: "qsize" }, humanSize(item.file.size)));
  const right = h("div", { class: "qstate" });
  if (item.status === "done") {
    right.append(decisionBadge(item.scan.decision), " ",
      h("a", { class: "button primary", href: `#/scan/${encodeURIComponent(item.scan.id)}`,
        "aria-label": `Open result for ${item.file.name}` }, "Open result"));
  }
  const progress = item.status === "uploading" || item.status === "screening"
    ? h("progress", { max: "100", value: item.status === "uploading" ? String(Math.round(item.progress * 100)) : null,
      "aria-label": `Progress for ${item.file.name}` })
    : null;
  const text = h("p", { class: item.status === "failed" ? "qtext error-text" : "qtext" }, statusText(item));
  if (item.status === "failed") text.setAttribute("role", "alert");
  li.append(head, h("div", { class: "qbody" }, h("div", {}, text, progress), right));
  return li;
}

function onScreen() {
  return Boolean(listEl && listEl.isConnected);
}

function renderSummary() {
  const done = queue.filter((q) => q.status === "done");
  const count = (d) => done.filter((q) => q.scan.decision === d).length;
  const failed = queue.filter((q) => q.status === "failed").length;
  const pending = queue.length - done.length - failed;
  fill(summaryEl, queue.length
    ? `${done.length} screened: ${count("alarm")} alarm, ${count("uncertain")} uncertain, ${count("clear")} clear`
      + (failed ? `; ${failed} failed` : "") + (pending ? `; ${pending} still in progress` : "")
    : "No scans sent yet in this session.");
}

/** Redraw one item in place (other items keep their focus), or the whole list. */
function renderList(item) {
  if (!onScreen()) return;
  if (item && item.el && item.el.isConnected) {
    const el = itemEl(item);
    item.el.replaceWith(el);
    item.el = el;
  } else {
    for (const q of queue) q.el = itemEl(q);
    fill(listEl, queue.slice().reverse().map((q) => q.el));
  }
  renderSummary();
}

async function work(item) {
  item.status = "uploading";
  item.progress = 0;
  renderList(item);
  try {
    item.scan = await uploadScan(item.file, {
      onProgress: (p) => {
        item.progress = p;
        if (p >= 1) item.status = "screening";
        renderList(item);
      },
      onBusy: (seconds, attempt) => {
        item.status = "screening";
        item.text = `The service is busy, retrying in ${Math.round(seconds)} s… (try ${attempt + 1})`;
        renderList(item);
      },
    });
    item.status = "done";
  } catch (err) {
    item.status = "failed";
    item.text = `Not screened. ${err instanceof ApiError ? err.message : String(err)}`;
  }
  renderList(item);
}

function pump() {
  while (running < PARALLEL) {
    const item = queue.find((q) => q.status === "waiting");
    if (!item) return;
    running++;
    work(item).finally(() => {
      running--;
      pump();
    });
  }
}

function addFiles(files) {
  for (const file of files) queue.push({ id: nextId++, file, status: "waiting", progress: 0, text: "", scan: null });
  renderList();
  pump();
}

// A file dropped outside the drop area must not replace the page; on this view it is screened too.
const hasFiles = (e) => Boolean(e.dataTransfer && [...e.dataTransfer.types].includes("Files"));
window.addEventListener("dragover", (e) => {
  if (hasFiles(e)) e.preventDefault();
});
window.addEventListener("drop", (e) => {
  if (!hasFiles(e)) return;
  e.preventDefault();
  const files = [...(e.dataTransfer ? e.dataTransfer.files : [])];
  if (onScreen() && files.length) addFiles(files);
});

export function renderScreen(view, ctx) {
  ctx.setTitle("Screen parcels");
  const input = h("input", { type: "file", id: "file-input", multiple: true, accept: ACCEPT, class: "visually-hidden", tabindex: "-1" });
  input.addEventListener("change", () => {
    addFiles([...input.files]);
    input.value = "";
  });
  const pick = h("button", { type: "button", class: "primary big", id: "pick-files", onclick: () => input.click() }, "Choose scan files…");
  const drop = h("div", { class: "dropzone", id: "dropzone" },
    h("p", { class: "drop-title" }, "Drop X-ray scans here"),
    h("p", {}, "JPEG, PNG, TIFF, BMP or DICOS. You can drop several files at once."),
    h("p", {}, "or"), pick, input);
  let depth = 0;
  drop.addEventListener("dragenter", (e) => {
    e.preventDefault();
    depth++;
    drop.classList.add("over");
  });
  drop.addEventListener("dragover", (e) => {
    e.preventDefault();
    e.dataTransfer.dropEffect = "copy";
  });
  drop.addEventListener("dragleave", () => {
    depth = Math.max(0, depth - 1);
    if (!depth) drop.classList.remove("over");
  });
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    e.stopPropagation();
    depth = 0;
    drop.classList.remove("over");
    const files = [...(e.dataTransfer ? e.dataTransfer.files : [])];
    if (files.length) addFiles(files);
  });

  listEl = h("ol", { class: "queue", id: "queue", "aria-label": "Scans sent in this session, newest first" });
  summaryEl = h("p", { class: "summary", id: "queue-summary", role: "status" });
  const clear = h("button", {
    type: "button", class: "secondary", onclick: () => {
      for (let i = queue.length - 1; i >= 0; i--) if (["done", "failed"].includes(queue[i].status)) queue.splice(i, 1);
      renderList();
    },
  }, "Clear finished from list");
  fill(view,
    h("h1", {}, "Screen parcels"),
    drop,
    h("section", { class: "card" },
      h("div", { class: "row-between" }, h("h2", {}, "Scans sent"), clear),
      summaryEl, listEl));
  renderList();
}
