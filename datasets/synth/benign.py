"""Benign parcel contents and containers: clutter, hard negatives and the parcel itself (carton, padded
envelope, suitcase or backpack; a backpack's zips, frame stays and metal buckles are benign metal).

Hard negatives (``hard_negatives.py``) are benign items that share a threat's shape or material:
toy guns, gun-shaped tools, springs, rods and benign 3D-printed parts.
"""

from __future__ import annotations

import numpy as np

from armscan.datasets.synth.canvas import Canvas
from armscan.datasets.synth.hard_negatives import HARD_NEGATIVES
from armscan.datasets.synth.threats import Item


def clothing(rng: np.random.Generator, pitch: float) -> Item:
    """Folded textiles: overlapping soft blobs of cotton."""
    w, h = rng.uniform(120, 320), rng.uniform(100, 260)
    c = Canvas(w, h, pitch)
    for _ in range(int(rng.integers(3, 8))):
        c.ellipse(rng.uniform(0.3, 0.7) * w, rng.uniform(0.3, 0.7) * h, rng.uniform(0.2, 0.5) * w,
                  rng.uniform(0.2, 0.5) * h, rng.uniform(10, 40), "cotton", rng.uniform(0, 180))
    if rng.random() < 0.3:  # a zip or buttons
        c.polyline([(0.2 * w, 0.1 * h), (0.25 * w, 0.9 * h)], 1.5, "brass")
    return Item(c, name="clothing")


def book(rng: np.random.Generator, pitch: float) -> Item:
    """A book or a stack of paper."""
    w, h = rng.uniform(120, 240), rng.uniform(150, 300)
    c = Canvas(w, h, pitch)
    c.rect(0, 0, w, h, rng.uniform(10, 50), "paper")
    return Item(c, name="book")


def bottle(rng: np.random.Generator, pitch: float) -> Item:
    """A bottle of liquid lying down: PET or glass wall around water."""
    L, r = rng.uniform(150, 300), rng.uniform(25, 45)
    c = Canvas(L + 10, 2 * r + 10, pitch)
    wall = "glass" if rng.random() < 0.3 else "polyethylene"
    c.rod((r + 4, r + 4), (L - r * 0.5, r + 4), r, wall, bore=r - (3 if wall == "glass" else 0.4))
    c.rod((r + 4, r + 4), (L - r * 0.5, r + 4), r - 1, "water")
    c.rod((L - r * 0.5, r + 4), (L, r + 4), r * 0.35, wall)
    return Item(c, name="bottle")


def electronics(rng: np.random.Generator, pitch: float) -> Item:
    """A laptop, phone or power bank: shell, board, battery cells and wiring."""
    kind = rng.choice(["laptop", "phone", "powerbank"])
    if kind == "laptop":
        w, h = rng.uniform(280, 360), rng.uniform(190, 250)
        c = Canvas(w, h, pitch)
        c.rect(0, 0, w, h, 2.0, "aluminium")
        c.rect(0, 0, w, h, 8, "abs")
        c.rect(w * 0.1, h * 0.55, w * 0.8, h * 0.35, 6, "aluminium")  # battery pack
        c.rect(w * 0.2, h * 0.1, w * 0.5, h * 0.35, 1.6, "glass")  # board
        for _ in range(12):
            x, y = rng.uniform(0.2, 0.7) * w, rng.uniform(0.1, 0.45) * h
            c.rect(x, y, rng.uniform(5, 20), rng.uniform(5, 20), rng.uniform(1, 3), "copper")
    elif kind == "phone":
        w, h = rng.uniform(65, 80), rng.uniform(140, 165)
        c = Canvas(w, h, pitch)
        c.rect(0, 0, w, h, 1.5, "glass")
        c.frame(0, 0, w, h, 3, 8, "aluminium")
        c.rect(w * 0.1, h * 0.3, w * 0.8, h * 0.55, 5, "aluminium")
        c.rect(w * 0.2, h * 0.05, w * 0.6, h * 0.2, 1.2, "copper")
    else:
        n = int(rng.integers(2, 5))
        w, h = n * 19 + 10, rng.uniform(70, 140)
        c = Canvas(w, h, pitch)
        c.rect(0, 0, w, h, 22, "abs")
        for k in range(n):
            c.rod((14 + k * 19, 6), (14 + k * 19, h - 6), 9, "steel", bore=8.7)
            c.rod((14 + k * 19, 6), (14 + k * 19, h - 6), 8.6, "aluminium")
    return Item(c, name=str(kind))


def cable(rng: np.random.Generator, pitch: float) -> Item:
    """A coiled or loose cable: copper core in PVC (modelled as polyethylene)."""
    size = rng.uniform(80, 250)
    c = Canvas(size, size, pitch)
    pts = [(rng.uniform(0.1, 0.9) * size, rng.uniform(0.1, 0.9) * size) for _ in range(int(rng.integers(4, 12)))]
    c.polyline(pts, 2.5, "polyethylene")
    c.polyline(pts, 0.8, "copper")
    return Item(c, name="cable")


def small_metal(rng: np.random.Generator, pitch: float) -> Item:
    """Keys, coins or a belt buckle: small dense metal items."""
    c = Canvas(80, 80, pitch)
    for _ in range(int(rng.integers(1, 5))):
        x, y = rng.uniform(15, 65), rng.uniform(15, 65)
        if rng.random() < 0.5:
            c.ellipse(x, y, rng.uniform(8, 14), rng.uniform(8, 14), 2, str(rng.choice(["brass", "steel", "copper"])))
        else:
            a = rng.uniform(0, np.pi)
            c.rod((x, y), (x + 40 * np.cos(a), y + 40 * np.sin(a)), 3.5, "steel")
    return Item(c, name="keys_coins")


def tool(rng: np.random.Generator, pitch: float) -> Item:
    """Hard negatives: a wrench, pliers, screwdriver, pipe or spring in a benign item."""
    kind = rng.choice(["wrench", "pliers", "screwdriver", "pipe", "stapler"])
    L = rng.uniform(120, 300)
    c = Canvas(L + 20, 70, pitch)
    if kind == "wrench":
        c.rect(20, 27, L - 40, 14, 6, "steel")
        c.ellipse(18, 34, 16, 16, 7, "steel")
        c.ellipse(L - 2, 34, 14, 14, 7, "steel")
    elif kind == "pliers":
        c.poly([(5, 30), (L * 0.4, 28), (L, 10), (L, 18), (L * 0.45, 35), (5, 38)], 8, "steel")
        c.poly([(5, 40), (L * 0.4, 42), (L, 60), (L, 52), (L * 0.45, 35), (5, 32)], 8, "steel")
        c.rect(L * 0.5, 6, L * 0.5, 60, 3, "polyethylene")
    elif kind == "screwdriver":
        c.rod((5, 35), (L * 0.4, 35), 13, "abs")
        c.rod((L * 0.4, 35), (L, 35), 3, "steel")
    elif kind == "pipe":
        c.rod((5, 35), (L, 35), rng.uniform(8, 16), str(rng.choice(["steel", "copper", "aluminium"])), bore=6)
    else:
        c.rect(5, 20, L * 0.6, 30, 25, "abs")
        c.rect(8, 26, L * 0.55, 8, 3, "steel")
        c.spring((10, 42), (L * 0.5, 42), 3, 0.5, 8)
    return Item(c, name=str(kind))


BENIGN = (clothing, clothing, book, bottle, electronics, cable, small_metal, tool, tool)
#: Clutter dense enough to hide a threat under (the "hidden" difficulty places threats there).
DENSE_CLUTTER = frozenset({"laptop", "clothing", "book", "powerbank", "wrench", "pliers", "drill", "hair_dryer",
                           "pan", "shoe", "enclosure_3d"})


def random_benign(rng: np.random.Generator, pitch: float) -> Item:
    """Draw one benign item: everyday clutter, or (about one in three) a hard negative."""
    if rng.random() < 0.35:
        return HARD_NEGATIVES[int(rng.integers(len(HARD_NEGATIVES)))](rng, pitch)
    return BENIGN[int(rng.integers(len(BENIGN)))](rng, pitch)


def _fitting(c: Canvas, x: float, y: float, w: float, h: float, metal: bool, rng: np.random.Generator) -> None:
    """A buckle or strap adjuster centred at (x, y): a w x h frame with a cross bar, steel/die-cast or moulded plastic
    (drawn as one stroke: left-top, top, right-top, bar, left-bottom, bottom, right-bottom)."""
    mat = str(rng.choice(["steel", "aluminium", "zinc_alloy"])) if metal else str(rng.choice(["pom", "nylon"]))
    x0, x1, y0, y1 = x - w / 2, x + w / 2, y - h / 2, y + h / 2
    path = [(x0, y), (x0, y0), (x1, y0), (x1, y), (x0, y), (x0, y1), (x1, y1), (x1, y)]
    c.stroke(path, rng.uniform(1.0, 1.8) if metal else rng.uniform(2.0, 3.0), mat)


def _backpack(c: Canvas, rng: np.random.Generator, w: float, h: float) -> None:
    """A backpack seen from the back: fabric body with gussets, padded back panel and shoulder straps, aluminium
    frame stays (flat bars or a bent tube), metal zips with pullers, and buckles and strap adjusters (metal or plastic)."""
    r = min(w, h) * rng.uniform(0.15, 0.3)  # rounded top
    top = [(r * (1 - float(np.cos(a))), r * (1 - float(np.sin(a)))) for a in np.linspace(0, np.pi / 2, 6)]
    cloth, gusset, wall = rng.uniform(1.5, 3.0), rng.uniform(6, 12), rng.uniform(8, 14)
    fabric = str(rng.choice(["nylon", "cotton"]))
    c.rect(0, 0, w, h, cloth + gusset, fabric)  # front and back fabric, side gussets seen edge-on as a border
    c.rect(wall, wall, w - 2 * wall, h - 2 * wall, -gusset, fabric)
    c.poly([(0.0, 0.0), *top], -cloth - gusset, fabric)  # round the top corners
    c.poly([(w, 0.0), *((w - x, y) for x, y in top)], -cloth - gusset, fabric)
    c.rect(w * 0.12, h * 0.1, w * 0.76, h * 0.8, rng.uniform(10, 25), "polyethylene", rng.uniform(0.04, 0.1))  # foam
    sw = rng.uniform(45, 70)
    for x in (w * 0.3, w * 0.7):  # shoulder straps: foam in webbing, with a strap adjuster near the bottom
        c.rect(x - sw / 2, h * 0.05, sw, h * 0.7, rng.uniform(10, 18), "polyethylene", 0.08)
        c.rect(x - 13, h * 0.75, 26, h * 0.2, 1.5, "nylon")
        _fitting(c, x, h * rng.uniform(0.76, 0.86), rng.uniform(28, 40), rng.uniform(14, 22), rng.random() < 0.4, rng)
    if rng.random() < 0.6:  # two flat aluminium stays
        for x in (w * 0.4, w * 0.6):
            c.rect(x - 10, h * 0.12, rng.uniform(15, 25), h * 0.7, rng.uniform(1.5, 3.0), "aluminium")
    else:  # a bent aluminium tube frame
        x0, x1, y0 = w * 0.25, w * 0.75, h * 0.1
        c.polyline([(x0, h * 0.85), (x0, y0), (x1, y0), (x1, h * 0.85)], rng.uniform(3.5, 5.5), "aluminium", bore=3.0)
    zip_mat = str(rng.choice(["steel", "brass", "aluminium"], p=[0.4, 0.4, 0.2]))
    zips = [[(x, y + r * 0.35) for x, y in top] + [(w - x, y + r * 0.35) for x, y in reversed(top)]]  # main zip
    for _ in range(int(rng.integers(1, 3))):  # pocket zips
        y = h * rng.uniform(0.45, 0.85)
        zips.append([(w * rng.uniform(0.1, 0.3), y), (w * rng.uniform(0.7, 0.9), y)])
    for pts in zips:
        c.stroke(pts, rng.uniform(1.0, 1.8), zip_mat)  # the teeth chain
        px, py = pts[int(rng.integers(len(pts)))]
        c.poly([(px - 4, py), (px + 4, py), (px + 4, py + 18), (px - 4, py + 18)], 2.0, "zinc_alloy")  # puller
    for _ in range(int(rng.integers(2, 5))):  # sternum and hip-belt buckles, compression straps
        _fitting(c, rng.uniform(0.1, 0.9) * w, rng.uniform(0.3, 0.95) * h, rng.uniform(25, 50), rng.uniform(20, 35),
                 rng.random() < 0.35, rng)


CONTAINERS = {"carton": 0.42, "envelope": 0.18, "suitcase": 0.25, "backpack": 0.15}


def container(rng: np.random.Generator, pitch: float, w_mm: float, h_mm: float, kind: str | None = None) -> Item:
    """The parcel itself, filling most of the scan: one of :data:`CONTAINERS`, drawn by its weight unless ``kind``."""
    if kind is None:
        kind = str(rng.choice(list(CONTAINERS), p=list(CONTAINERS.values())))
    elif kind not in CONTAINERS:
        raise ValueError(f"Unknown container {kind!r}. Valid containers: {', '.join(CONTAINERS)}")
    c = Canvas(w_mm, h_mm, pitch)
    if kind == "carton":
        c.frame(0, 0, w_mm, h_mm, rng.uniform(4, 8), rng.uniform(150, 300), "paper")
        c.rect(0, 0, w_mm, h_mm, 8, "paper")
        c.rect(0, h_mm * 0.48, w_mm, 50, 0.2, "polyethylene")  # tape
    elif kind == "envelope":
        c.rect(0, 0, w_mm, h_mm, 1.5, "paper")
        c.rect(3, 3, w_mm - 6, h_mm - 6, 8, "polyethylene", 0.1)  # bubble lining
    elif kind == "backpack":
        _backpack(c, rng, w_mm, h_mm)
    else:
        c.frame(0, 0, w_mm, h_mm, 10, 200, "abs")
        c.rect(0, 0, w_mm, h_mm, 6, "abs")
        for x in (w_mm * 0.3, w_mm * 0.7):
            c.rod((x, 4), (x, h_mm - 4), 6, "aluminium", bore=5)  # handle rails
        for x, y in ((12, 12), (w_mm - 12, 12), (12, h_mm - 12), (w_mm - 12, h_mm - 12)):
            c.ellipse(x, y, 11, 11, 40, "polyethylene")
            c.rod((x - 8, y), (x + 8, y), 2.5, "steel")
    return Item(c, name=f"container_{kind}")
