// Screening view: choose what is sent (X-ray scans or seizure photos), drop or pick files, upload them two at a
// time, follow each one to its result. The list and the choice survive moving to a result and back (they live in
// this module, not in the page).

import { ApiError, api, uploadScan } from "./api.js";
import { KINDS, answerWords, decisionBadge, fill, h, kindTag } from "./dom.js";

const PARALLEL = 2;
const ACCEPT = ".jpg,.jpeg,.png,.tif,.tiff,.bmp,.dcs,.dcm,image/jpeg,image/png,image/tiff,image/bmp,application/dicom";
const queue = []; // {id, file, kind, status: waiting|uploading|screening|done|failed, progress, text, scan}
let kind = "xray"; // what the next files are: "xray" or "photo"
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
  if (item.status === "screening") return item.text || (item.kind === "photo" ? "Classifying…" : "Screening…");
  if (item.status === "done" && item.scan.photo) {
    const p = item.scan.photo;
    return `Classified: ${answerWords(p.answer)} (${p.band})`;
  }
  if (item.status === "done") {
    const n = item.scan.detections.length;
    return `Screened: ${n ? `${n} item${n === 1 ? "" : "s"} marked` : "nothing marked"}`;
  }
  return item.text;
}

function itemEl(item) {
  const li = h("li", { class: `qitem q-${item.status}`, dataset: { status: item.status, file: item.file.name, kind: item.kind } });
  const head = h("div", { class: "qhead" },
    kindTag(item.kind),
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
      kind: item.kind,
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
  for (const file of files) queue.push({ id: nextId++, file, kind, status: "waiting", progress: 0, text: "", scan: null });
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

const DROP_TEXT = {
  xray: { title: "Drop X-ray scans here", formats: "JPEG, PNG, TIFF, BMP or DICOS. You can drop several files at once.",
    pick: "Choose scan files…" },
  photo: { title: "Drop seizure photos here", formats: "JPEG, PNG, TIFF or BMP photos of a seized item, ideally with "
    + "an ID card or a ruler beside it for its length. You can drop several files at once.", pick: "Choose photo files…" },
};

/** The choice "X-ray scan / Seizure photo"; the photo choice is disabled while the service has no photo model. */
function kindChoice(onChange) {
  const radio = (value) => {
    const input = h("input", { type: "radio", name: "kind", id: `kind-${value}`, value, checked: kind === value,
      onchange: () => onChange(value) });
    return h("label", { class: "kind-option", for: `kind-${value}` }, input, " ", KINDS[value].label);
  };
  const note = h("p", { class: "hint", id: "kind-note", hidden: true });
  const group = h("fieldset", { class: "kind-choice", id: "kind-choice" },
    h("legend", {}, "What are you sending?"), radio("xray"), radio("photo"), note);
  api("GET", "/v1/models").then((m) => {
    if ((m.kinds || ["xray"]).includes("photo")) return;
    const photo = group.querySelector("#kind-photo");
    photo.disabled = true;
    note.hidden = false;
    note.textContent = "Seizure photos cannot be classified here yet: no photo model is loaded on this service.";
    if (kind === "photo") {
      group.querySelector("#kind-xray").checked = true;
      onChange("xray");
    }
  }).catch(() => {}); // the upload itself will say what is wrong
  return group;
}

export function renderScreen(view, ctx) {
  ctx.setTitle("Screen parcels");
  const input = h("input", { type: "file", id: "file-input", multiple: true, accept: ACCEPT, class: "visually-hidden", tabindex: "-1" });
  input.addEventListener("change", () => {
    addFiles([...input.files]);
    input.value = "";
  });
  const pick = h("button", { type: "button", class: "primary big", id: "pick-files", onclick: () => input.click() });
  const title = h("p", { class: "drop-title", id: "drop-title" });
  const formats = h("p", { id: "drop-formats" });
  const showKind = () => {
    const t = DROP_TEXT[kind];
    title.textContent = t.title;
    formats.textContent = t.formats;
    pick.textContent = t.pick;
  };
  showKind();
  const choice = kindChoice((value) => {
    kind = value;
    showKind();
  });
  const drop = h("div", { class: "dropzone", id: "dropzone" }, title, formats, h("p", {}, "or"), pick, input);
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
    choice,
    drop,
    h("section", { class: "card" },
      h("div", { class: "row-between" }, h("h2", {}, "Scans sent"), clear),
      summaryEl, listEl));
  renderList();
}
