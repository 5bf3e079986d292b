// History view: past scans and seizure photos with filters and pages. The filters live in the address
// (#/history?kind=photo&decision=alarm&from=2026-11-01&offset=25), so Back and bookmarks work.

import { api } from "./api.js";
import { answerWords, bandBadge, decisionBadge, fill, formatTime, h, kindTag, words } from "./dom.js";

const PAGE = 25;

/** A local calendar day -> the UTC instant of its first moment (plus `days`). */
function dayStart(day, days = 0) {
  const [y, m, d] = day.split("-").map(Number);
  return new Date(y, m - 1, d + days).toISOString();
}

function apiQuery(q, canFilterOfficer) {
  const p = new URLSearchParams({ limit: String(PAGE), offset: q.get("offset") || "0" });
  if (q.get("decision")) p.set("decision", q.get("decision"));
  if (q.get("kind")) p.set("kind", q.get("kind"));
  if (canFilterOfficer && q.get("officer")) p.set("officer", q.get("officer"));
  if (q.get("from")) p.set("since", dayStart(q.get("from")));
  if (q.get("to")) p.set("until", dayStart(q.get("to"), 1));
  return p;
}

function go(params) {
  for (const [k, v] of [...params]) if (!v || (k === "offset" && v === "0")) params.delete(k);
  const s = params.toString();
  location.hash = `#/history${s ? `?${s}` : ""}`;
}

function filters(q, canFilterOfficer) {
  const decision = h("select", { id: "f-decision", name: "decision" },
    h("option", { value: "" }, "Any result"),
    h("option", { value: "alarm" }, "Alarm"),
    h("option", { value: "uncertain" }, "Uncertain"),
    h("option", { value: "clear" }, "Clear"));
  decision.value = q.get("decision") || "";
  const kind = h("select", { id: "f-kind", name: "kind" },
    h("option", { value: "" }, "Scans and photos"),
    h("option", { value: "xray" }, "X-ray scans"),
    h("option", { value: "photo" }, "Seizure photos"));
  kind.value = q.get("kind") || "";
  const officer = canFilterOfficer ? h("input", { id: "f-officer", name: "officer", value: q.get("officer") || "", autocomplete: "off" }) : null;
  const from = h("input", { id: "f-from", name: "from", type: "date", value: q.get("from") || "" });
  const to = h("input", { id: "f-to", name: "to", type: "date", value: q.get("to") || "" });
  const field = (id, label, input) => h("div", { class: "field" }, h("label", { for: id }, label), input);
  return h("form", {
    class: "filters card", id: "filters", onsubmit: (e) => {
      e.preventDefault();
      go(new URLSearchParams({ kind: kind.value, decision: decision.value, officer: officer ? officer.value.trim() : "",
        from: from.value, to: to.value }));
    },
  },
  field("f-kind", "Kind", kind),
  field("f-decision", "Result", decision),
  officer ? field("f-officer", "Officer", officer) : null,
  field("f-from", "From date", from),
  field("f-to", "To date", to),
  h("div", { class: "field buttons" },
    h("button", { type: "submit", class: "primary" }, "Show"),
    h("button", { type: "button", class: "secondary", onclick: () => go(new URLSearchParams()) }, "Reset")));
}

function row(item) {
  const href = `#/scan/${encodeURIComponent(item.id)}`;
  const tr = h("tr", { class: "clickable", dataset: { id: item.id } },
    h("td", {}, h("img", {
      class: "thumb", src: item.thumbnail_url, alt: "", loading: "lazy", width: "96",
      onerror: (e) => e.target.replaceWith(h("span", { class: "no-thumb" }, "no preview")),
    })),
    h("td", {}, formatTime(item.created_at)),
    h("td", {}, item.officer),
    h("td", { class: "kind" }, kindTag(item.kind)),
    h("td", { class: "fname" }, h("a", { href }, item.filename)),
    h("td", {}, decisionBadge(item.decision)),
    item.kind === "photo"
      ? h("td", { class: "answer" }, `${answerWords(item.answer)} `, item.band ? bandBadge(item.band) : null)
      : h("td", { class: "num" }, String(item.n_detections),
        item.classes && item.classes.length ? h("span", { class: "classes" }, ` (${item.classes.map(words).join(", ")})`) : null),
    h("td", { class: "fb" }, item.has_feedback ? h("span", { class: "fb-yes" }, "✓ Yes") : h("span", { class: "fb-no" }, "—")));
  tr.addEventListener("click", (e) => {
    if (!e.target.closest("a")) location.hash = href;
  });
  return tr;
}

function pager(page, q) {
  const from = page.total ? page.offset + 1 : 0;
  const to = Math.min(page.offset + page.items.length, page.total);
  const move = (offset) => () => {
    const next = new URLSearchParams(q);
    next.set("offset", String(Math.max(0, offset)));
    go(next);
  };
  return h("nav", { class: "pager", "aria-label": "Pages" },
    h("button", { type: "button", class: "secondary", disabled: page.offset <= 0, onclick: move(page.offset - page.limit) }, "← Newer"),
    h("span", { id: "page-info" }, `Showing ${from}–${to} of ${page.total}`),
    h("button", { type: "button", class: "secondary", disabled: to >= page.total, onclick: move(page.offset + page.limit) }, "Older →"));
}

export async function renderHistory(view, ctx, q) {
  ctx.setTitle("History");
  const canFilterOfficer = ctx.user.role === "analyst" || ctx.user.role === "admin";
  const results = h("div", { id: "history-results" }, h("p", { class: "loading", role: "status" }, "Loading…"));
  fill(view,
    h("h1", {}, "History"),
    h("p", { class: "lead" }, canFilterOfficer ? "All scans, newest first." : "Your scans, newest first."),
    filters(q, canFilterOfficer),
    results);
  const page = await api("GET", `/v1/scans?${apiQuery(q, canFilterOfficer)}`);
  if (!ctx.isCurrent()) return;
  const filtered = ["kind", "decision", "officer", "from", "to"].some((k) => q.get(k));
  if (!page.items.length) {
    fill(results, h("p", { class: "empty card" }, page.total
      ? "There are no more scans on this page."
      : filtered ? "No scans match these filters." : "No scans yet. Screen a parcel to see it here."),
    page.offset > 0 ? pager(page, q) : null);
    return;
  }
  fill(results,
    h("div", { class: "table-wrap" },
      h("table", { class: "history", id: "history-table" },
        h("caption", { class: "visually-hidden" }, "Past scans; select a row to open its result"),
        h("thead", {}, h("tr", {}, ["Image", "Time", "Officer", "Kind", "File", "Result", "Items marked or answer", "Feedback"].map((t) => h("th", { scope: "col" }, t)))),
        h("tbody", {}, page.items.map(row)))),
    pager(page, q));
}
