// The scan image with its boxes drawn over it in an SVG whose viewBox is the scan's original pixel grid,
// so boxes stay in place at any displayed size. In "mark missed item" mode the officer drags a rectangle.

import { h, percent, svg, words } from "./dom.js";

const LABEL_PX = 14; // label text height on screen, whatever the zoom
const MIN_BOX_PX = 6; // a drag smaller than this on screen is a click, not a box
const PRIORITY = { alarm: 0, missed: 1, uncertain: 2, stored: 3, below: 4 };

/**
 * createViewer({width, height, onDraw}) -> {el, setImage(url, alt), setMessage(text), draw(marks), setDrawMode(on)}
 * marks: [{box: [x0,y0,x1,y1], kind: "alarm"|"uncertain"|"missed"|"stored", label, state: ""|"confirmed"|"rejected", hot}]
 */
export function createViewer({ width, height, onDraw, onCancel }) {
  const img = h("img", { class: "scan-img", alt: "", draggable: "false" });
  const note = h("p", { class: "viewer-note", hidden: true });
  const layer = svg("svg", {
    class: "boxes", id: "boxes", viewBox: `0 0 ${width} ${height}`, preserveAspectRatio: "none",
    role: "img", "aria-label": "Marked areas on the scan",
  });
  const el = h("div", { class: "viewer" }, img, layer, note);
  // Through the CSSOM, not a style attribute: the service's Content-Security-Policy forbids inline styles.
  el.style.aspectRatio = `${width} / ${height}`;
  el.style.width = `min(100%, calc(72vh * ${width / height}))`;
  let marks = [];
  let drawMode = false;
  let drag = null; // {x0, y0, rect}

  function unitsPerPx() {
    const w = layer.getBoundingClientRect().width;
    return w > 0 ? width / w : 1;
  }

  /** Boxes first, then labels: the most important placed first, each where it overlaps no earlier label. */
  function render() {
    layer.replaceChildren();
    const u = unitsPerPx();
    const groups = marks.map((m) => {
      const [x0, y0, x1, y1] = m.box;
      const g = svg("g", { class: `mark mark-${m.kind}${m.state ? ` is-${m.state}` : ""}${m.hot ? " is-hot" : ""}` });
      g.append(svg("rect", { class: "box", x: x0, y: y0, width: Math.max(x1 - x0, 1), height: Math.max(y1 - y0, 1),
        "vector-effect": "non-scaling-stroke" }));
      layer.append(g);
      return g;
    });
    const order = marks.map((m, i) => i).filter((i) => marks[i].label)
      .sort((a, b) => (PRIORITY[marks[a].kind] ?? 9) - (PRIORITY[marks[b].kind] ?? 9));
    const placed = [];
    const fs = LABEL_PX * u;
    const pad = 3 * u;
    const lh = fs + 2 * pad;
    const labels = [];
    for (const i of order) {
      const m = marks[i];
      const [x0, y0, x1, y1] = m.box;
      const text = svg("text", { class: "label", "font-size": fs }, m.label);
      const bg = svg("rect", { class: "label-bg", height: lh });
      groups[i].append(bg, text);
      const lw = (text.getComputedTextLength() || m.label.length * fs * 0.6) + 2 * pad;
      const x = Math.min(Math.max(x0, 0), Math.max(width - lw, 0));
      const spots = [y0 - lh, y0, y1, y1 - lh].filter((y) => y >= 0 && y + lh <= height);
      const free = (y) => !placed.some((r) => x < r.x + r.w && r.x < x + lw && y < r.y + r.h && r.y < y + lh);
      const y = spots.find(free) ?? spots[0] ?? Math.max(0, y0);
      placed.push({ x, y, w: lw, h: lh });
      bg.setAttribute("x", x);
      bg.setAttribute("y", y);
      bg.setAttribute("width", lw);
      text.setAttribute("x", x + pad);
      text.setAttribute("y", y + pad + fs * 0.8);
      labels.push(groups[i]);
    }
    // Important labels are painted last, so they stay on top where boxes cross them; the highlighted one above all.
    for (const g of labels.reverse()) layer.append(g);
    marks.forEach((m, i) => m.hot && layer.append(groups[i]));
    if (drag) layer.append(drag.rect);
  }

  function toImage(e) {
    const r = layer.getBoundingClientRect();
    const x = ((e.clientX - r.left) / r.width) * width;
    const y = ((e.clientY - r.top) / r.height) * height;
    return [Math.min(Math.max(x, 0), width), Math.min(Math.max(y, 0), height)];
  }

  function dragBox(e) {
    const [x, y] = toImage(e);
    return [Math.min(drag.x0, x), Math.min(drag.y0, y), Math.max(drag.x0, x), Math.max(drag.y0, y)];
  }

  layer.addEventListener("pointerdown", (e) => {
    if (!drawMode || e.button !== 0) return;
    e.preventDefault();
    layer.setPointerCapture(e.pointerId);
    const [x0, y0] = toImage(e);
    drag = { x0, y0, rect: svg("rect", { class: "drawing", x: x0, y: y0, width: 0, height: 0, "vector-effect": "non-scaling-stroke" }) };
    layer.append(drag.rect);
  });
  layer.addEventListener("pointermove", (e) => {
    if (!drag) return;
    const [x0, y0, x1, y1] = dragBox(e);
    drag.rect.setAttribute("x", x0);
    drag.rect.setAttribute("y", y0);
    drag.rect.setAttribute("width", x1 - x0);
    drag.rect.setAttribute("height", y1 - y0);
  });
  const finish = (e, cancelled) => {
    if (!drag) return;
    const box = dragBox(e);
    drag = null;
    render();
    const min = MIN_BOX_PX * unitsPerPx();
    if (!cancelled && box[2] - box[0] >= min && box[3] - box[1] >= min) onDraw(box.map((v) => Math.round(v * 10) / 10));
  };
  layer.addEventListener("pointerup", (e) => finish(e, false));
  layer.addEventListener("pointercancel", (e) => finish(e, true));
  el.addEventListener("keydown", (e) => {
    if (e.key === "Escape" && drawMode && onCancel) onCancel();
  });

  new ResizeObserver(() => render()).observe(layer);

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
    draw(next) {
      marks = next;
      render();
    },
    setDrawMode(on) {
      drawMode = on;
      el.classList.toggle("drawing-mode", on);
    },
  };
}

/** The text drawn next to a detection's box: "1 firearm 75 %". */
export function detectionLabel(position, d) {
  return `${position} ${words(d.cls)} ${percent(d.score)}`;
}
