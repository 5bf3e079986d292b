"""Benign parcel contents and containers: clutter, hard negatives and the parcel itself.

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


def container(rng: np.random.Generator, pitch: float, w_mm: float, h_mm: float) -> Item:
    """The parcel itself: a carton, a padded envelope or a suitcase filling most of the scan."""
    kind = rng.choice(["carton", "envelope", "suitcase"], p=[0.5, 0.2, 0.3])
    c = Canvas(w_mm, h_mm, pitch)
    if kind == "carton":
        c.frame(0, 0, w_mm, h_mm, rng.uniform(4, 8), rng.uniform(150, 300), "paper")
        c.rect(0, 0, w_mm, h_mm, 8, "paper")
        c.rect(0, h_mm * 0.48, w_mm, 50, 0.2, "polyethylene")  # tape
    elif kind == "envelope":
        c.rect(0, 0, w_mm, h_mm, 1.5, "paper")
        c.rect(3, 3, w_mm - 6, h_mm - 6, 8, "polyethylene", 0.1)  # bubble lining
    else:
        c.frame(0, 0, w_mm, h_mm, 10, 200, "abs")
        c.rect(0, 0, w_mm, h_mm, 6, "abs")
        for x in (w_mm * 0.3, w_mm * 0.7):
            c.rod((x, 4), (x, h_mm - 4), 6, "aluminium", bore=5)  # handle rails
        for x, y in ((12, 12), (w_mm - 12, 12), (12, h_mm - 12), (w_mm - 12, h_mm - 12)):
            c.ellipse(x, y, 11, 11, 40, "polyethylene")
            c.rod((x - 8, y), (x + 8, y), 2.5, "steel")
    return Item(c, name=f"container_{kind}")
