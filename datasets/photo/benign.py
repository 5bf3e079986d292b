"""Benign things on the table: hard negatives (tools shaped or coloured like a gun, long dark tubes), everyday
clutter, and the two reference objects of known size (an ID-1 card and a ruler).

Objects are drawn on :class:`PhotoCanvas` like the firearms, long axis along x, so the same painter
colours them and they could be X-ray items too.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from armscan.datasets.photo.canvas import PhotoCanvas
from armscan.datasets.photo.parts import STEEL, Mat, bent, poly, rect, rod
from armscan.datasets.taxonomy import ID1_CARD_MM

Maker = Callable[[np.random.Generator], PhotoCanvas]
PLASTIC, RUBBER = Mat("abs", 1.0, "plastic"), Mat("polyethylene", 1.0, "rubber")
DARK = Mat("aluminium", 1.0, "rubber")  # anodised black: matte and dark like a gun


def rounded_rect(x: float, y: float, w: float, h: float, r: float, n: int = 5) -> list[tuple[float, float]]:
    """Outline of a rectangle with corner radius ``r`` (n points per corner)."""
    pts: list[tuple[float, float]] = []
    for cx, cy, a0 in ((x + w - r, y + r, -90), (x + w - r, y + h - r, 0), (x + r, y + h - r, 90), (x + r, y + r, 180)):
        for a in np.deg2rad(np.linspace(a0, a0 + 90, n)):
            pts.append((cx + r * float(np.cos(a)), cy + r * float(np.sin(a))))
    return pts


def _drill(rng: np.random.Generator) -> PhotoCanvas:
    c, L, r = PhotoCanvas(350, 350), rng.uniform(150, 210), rng.uniform(24, 32)
    rod(c, PLASTIC, (r, 0), (L - r, 0), r)
    rod(c, STEEL, (L - 5, 0), (L + rng.uniform(30, 50), 0), rng.uniform(9, 13))  # chuck
    rod(c, STEEL, (L + 40, 0), (L + rng.uniform(70, 130), 0), 3)  # bit
    poly(c, RUBBER, [(L * 0.3, r - 4), (L * 0.3 + 45, r - 4), (L * 0.3 + 30, r + 100), (L * 0.3 - 12, r + 100)], 2 * r + 2)
    rect(c, PLASTIC, L * 0.3 - 40, r + 95, 110, rng.uniform(30, 45), 2 * r + 6)  # battery
    return c


def _glue_gun(rng: np.random.Generator) -> PhotoCanvas:
    c, L, r = PhotoCanvas(300, 250), rng.uniform(120, 170), rng.uniform(17, 22)
    rod(c, PLASTIC, (r, 0), (L - r, 0), r)
    rod(c, Mat("brass", 1.0, "brass"), (L - 4, 0), (L + 25, 0), 4)
    poly(c, PLASTIC, [(20, r - 3), (60, r - 3), (48, r + 90), (8, r + 90)], 2 * r)
    rod(c, Mat("polyethylene", 1.0, "glass"), (-rng.uniform(40, 90), 0), (20, 0), 5.5)  # glue stick
    rect(c, PLASTIC, 62, r, 10, 30, r)  # trigger
    return c


def _hair_dryer(rng: np.random.Generator) -> PhotoCanvas:
    c, L, r = PhotoCanvas(350, 300), rng.uniform(150, 220), rng.uniform(30, 40)
    rod(c, PLASTIC, (r, 0), (L - r, 0), r)
    rect(c, PLASTIC, L - 10, -r * 0.6, rng.uniform(40, 70), r * 1.2, 2 * r - 10)  # nozzle
    poly(c, PLASTIC, [(L * 0.35, r - 5), (L * 0.35 + 40, r - 5), (L * 0.35 + 30, r + 110), (L * 0.35, r + 110)], 2 * r - 6)
    return c


def _umbrella(rng: np.random.Generator) -> PhotoCanvas:
    c, L = PhotoCanvas(1100, 200), rng.uniform(600, 950)
    fab = Mat("cotton", 1.0, "fabric")
    poly(c, fab, [(90, -26), (L * 0.6, -18), (L - 50, -3), (L - 50, 3), (L * 0.6, 18), (90, 26)], 40)
    rod(c, STEEL, (L - 60, 0), (L, 0), 3.5)
    bent(c, Mat("wood", 1.0, "wood") if rng.random() < 0.5 else RUBBER, [(95, 0), (20, 0), (0, 20), (10, 45), (35, 45)], 12)
    return c


def _tube(rng: np.random.Generator) -> PhotoCanvas:
    """A pipe, a flashlight or a folded tripod: long and dark."""
    c = PhotoCanvas(1100, 200)
    kind = rng.integers(3)
    if kind == 0:
        L, r = rng.uniform(250, 900), rng.uniform(8, 20)
        m = STEEL if rng.random() < 0.6 else Mat("copper", 1.0, "copper")
        rod(c, m, (r, 0), (L - r, 0), r)
        for x in (0, L - 40):
            rod(c, m, (x + r + 4, 0), (x + 36 - r, 0), r + 4)
    elif kind == 1:
        L, r = rng.uniform(150, 320), rng.uniform(12, 19)
        rod(c, DARK, (r, 0), (L - 60, 0), r)
        rod(c, DARK, (L - 70, 0), (L - r - 6, 0), r + 7)
    else:
        L = rng.uniform(400, 750)
        for y in (-14, 0, 14):
            rod(c, DARK, (60, y), (L, y * 1.3), rng.uniform(7, 11))
        rect(c, RUBBER, 0, -30, 70, 60, 40)
    return c


def _wrench(rng: np.random.Generator) -> PhotoCanvas:
    c, L, w = PhotoCanvas(400, 100), rng.uniform(150, 350), rng.uniform(12, 22)
    poly(c, STEEL, [(20, -w / 2), (L - 20, -w / 2), (L - 20, w / 2), (20, w / 2)], 6)
    for x, s in ((0, 1), (L, -1)):
        poly(
            c,
            STEEL,
            [
                (x, -w * 1.4),
                (x + s * 30, -w * 0.9),
                (x + s * 30, w * 0.9),
                (x, w * 1.4),
                (x + s * 10, w * 0.5),
                (x + s * 10, -w * 0.5),
            ],
            7,
        )
    return c


def _pliers(rng: np.random.Generator) -> PhotoCanvas:
    c, L = PhotoCanvas(300, 150), rng.uniform(150, 240)
    grip = Mat("polyethylene", 1.0, "plastic")
    for s in (1, -1):
        poly(c, grip, [(0, s * 30), (L * 0.6, s * 8), (L * 0.6, s * 16), (0, s * 42)], 12)
        poly(c, STEEL, [(L * 0.55, s * 6), (L, s * 1), (L, s * 5), (L * 0.55, s * 18)], 10)
    with c.style("steel"):
        c.ellipse(L * 0.6, 0, 8, 8, 14, "steel")
    return c


def _small(rng: np.random.Generator) -> PhotoCanvas:
    """A phone, a pen, a wallet, keys, a remote control or a screwdriver."""
    c = PhotoCanvas(300, 200)
    kind = rng.integers(6)
    if kind == 0:
        w, h = rng.uniform(140, 168), rng.uniform(68, 78)
        poly(c, PLASTIC if rng.random() < 0.5 else RUBBER, rounded_rect(0, 0, w, h, 9), 8)
        poly(c, Mat("glass", 1.0, "screen"), rounded_rect(3, 3, w - 6, h - 6, 7), 8.2)
    elif kind == 1:
        L = rng.uniform(125, 150)
        rod(c, PLASTIC, (4, 0), (L - 8, 0), rng.uniform(4, 5.5))
        rod(c, STEEL, (L - 12, 0), (L, 0), 1.5)
        rect(c, STEEL, 10, -7, 40, 2.5, 9)  # clip
    elif kind == 2:
        leather = Mat("cotton", 1.0, "leather")
        poly(c, leather, rounded_rect(0, 0, rng.uniform(95, 120), rng.uniform(75, 95), 6), 14)
        with c.style("ink"):
            c.stroke([(3, 8), (110, 8)], 0.5, "cotton")
    elif kind == 3:
        m = STEEL if rng.random() < 0.5 else Mat("brass", 1.0, "brass")
        with c.style("steel"):
            c.polyline([(14 * np.cos(a), 14 * np.sin(a)) for a in np.linspace(0, 2 * np.pi, 17)], 1.2, "steel")
        for k in range(int(rng.integers(1, 5))):
            a = rng.uniform(-0.9, 0.9) + k * 0.5
            ux, uy = np.cos(a), np.sin(a)
            x0, y0 = 14 * ux, 14 * uy
            poly(
                c,
                m,
                [
                    (x0 + 12 * ux - 10 * uy, y0 + 12 * uy + 10 * ux),
                    (x0 + 30 * ux - 10 * uy, y0 + 30 * uy + 10 * ux),
                    (x0 + 30 * ux + 10 * uy, y0 + 30 * uy - 10 * ux),
                    (x0 + 12 * ux + 10 * uy, y0 + 12 * uy - 10 * ux),
                ],
                2,
            )
            rod(c, m, (x0 + 30 * ux, y0 + 30 * uy), (x0 + 70 * ux, y0 + 70 * uy), 4)
    elif kind == 4:
        w, h = rng.uniform(150, 200), rng.uniform(38, 50)
        poly(c, RUBBER, rounded_rect(0, 0, w, h, 10), 18)
        for k in range(int(rng.integers(6, 14))):
            with c.style("plastic"):
                c.ellipse(20 + (k // 3) * 14, 10 + (k % 3) * (h - 20) / 2, 4, 4, 19, "abs")
    else:
        L, hr = rng.uniform(150, 250), rng.uniform(12, 16)
        rod(c, PLASTIC, (hr, 0), (L * 0.45, 0), hr)
        rod(c, STEEL, (L * 0.45, 0), (L, 0), 3)
    return c


def _blob(rng: np.random.Generator) -> PhotoCanvas:
    """A toy-like blob of bright shapes, a cat-like furry blob, or a shoe."""
    c = PhotoCanvas(600, 300)
    kind = rng.integers(3)
    if kind == 0:
        for _ in range(int(rng.integers(3, 7))):
            with c.style("toy"):
                c.ellipse(
                    rng.uniform(0, 120),
                    rng.uniform(0, 80),
                    rng.uniform(15, 45),
                    rng.uniform(15, 45),
                    rng.uniform(20, 50),
                    "abs",
                    rng.uniform(0, 180),
                )
    elif kind == 1:
        L, h = rng.uniform(250, 420), rng.uniform(120, 180)
        with c.style("fur"):
            c.ellipse(L / 2, 0, L / 2, h / 2, h * 0.6, "cotton", rng.uniform(-10, 10))
            c.ellipse(L + 20, -h * 0.2, 45, 40, h * 0.55, "cotton")
            c.poly([(L, -h * 0.4), (L + 10, -h * 0.75), (L + 25, -h * 0.5)], h * 0.5, "cotton")
            c.poly([(L + 30, -h * 0.5), (L + 48, -h * 0.72), (L + 52, -h * 0.4)], h * 0.5, "cotton")
            c.polyline([(10, h * 0.2), (-60, h * 0.4), (-120, h * 0.1)], 12, "cotton")
    else:
        L = rng.uniform(240, 310)
        poly(c, RUBBER, rounded_rect(0, 0, L, L * 0.36, L * 0.15), 25)
        upper = Mat("cotton", 1.0, "leather" if rng.random() < 0.5 else "fabric")
        poly(c, upper, rounded_rect(8, 6, L - 16, L * 0.36 - 12, L * 0.13), 60)
        with c.style("ink"):
            for k in range(5):
                c.stroke([(L * 0.45 + k * 12, L * 0.1), (L * 0.45 + k * 12 + 4, L * 0.26)], 1.5, "cotton")
    return c


def cartridges(rng: np.random.Generator) -> PhotoCanvas:
    """A few loose rounds (only next to a firearm or a part)."""
    c = PhotoCanvas(200, 200)
    cal = rng.uniform(8, 12)
    for _ in range(int(rng.integers(1, 7))):
        x, y, a = rng.uniform(0, 80), rng.uniform(0, 80), rng.uniform(0, 2 * np.pi)
        ux, uy, n = np.cos(a), np.sin(a), cal * rng.uniform(2.2, 3.2)
        rod(c, Mat("brass", 1.0, "brass"), (x, y), (x + ux * n * 0.6, y + uy * n * 0.6), cal / 2)
        rod(c, Mat("copper", 1.0, "copper"), (x + ux * n * 0.6, y + uy * n * 0.6), (x + ux * n, y + uy * n), cal * 0.42)
    return c


#: Hard negatives (gun-shaped tools, long dark tubes) and everyday clutter.
HARD_NEGATIVES: dict[str, Maker] = {
    "drill": _drill,
    "glue_gun": _glue_gun,
    "hair_dryer": _hair_dryer,
    "umbrella": _umbrella,
    "tube": _tube,
    "wrench": _wrench,
}
CLUTTER: dict[str, Maker] = {"pliers": _pliers, "small": _small, "blob": _blob}
BENIGN: dict[str, Maker] = {**HARD_NEGATIVES, **CLUTTER}


def benign(name: str, rng: np.random.Generator) -> PhotoCanvas:
    """Draw the benign object ``name`` (a key of :data:`BENIGN`), trimmed to its extent."""
    if name not in BENIGN:
        raise KeyError(f"Unknown benign object {name!r}. Valid: {', '.join(BENIGN)}")
    c = BENIGN[name](rng)
    c.trim()
    return c


def id1_card(rng: np.random.Generator) -> PhotoCanvas:
    """An ID-1 card (85.60 x 53.98 mm, corner radius 3.18 mm) with a chip, a stripe and text-like print.

    The card's outer corners are (0, 0), (85.60, 0), (85.60, 53.98) and (0, 53.98) in its frame.
    """
    w, h = ID1_CARD_MM
    c = PhotoCanvas(w, h)
    poly(c, Mat("abs", 1.0, "card"), rounded_rect(0, 0, w, h, 3.18, 6), 0.76)
    if rng.random() < 0.6:
        rect(c, Mat("abs", 1.0, "ink"), 0.01, rng.uniform(6, 14), w - 0.02, rng.uniform(5, 10), 0.77)  # stripe
    if rng.random() < 0.8:
        x, y = rng.uniform(8, 14), rng.uniform(17, 23)
        poly(c, Mat("copper", 1.0, "gold"), rounded_rect(x, y, 11.5, 9, 1.5, 3), 0.78)
    with c.style("ink", lift=0.76):
        for row in range(int(rng.integers(2, 5))):
            y = 36 + row * 4.2 if row < 3 else 20
            x0 = rng.uniform(26, 32) if row == 3 else rng.uniform(5, 10)
            c.stroke([(x0, y), (x0 + rng.uniform(20, 60), y)], 0.6, "paper")
    return c


def ruler(rng: np.random.Generator, length_mm: int) -> tuple[PhotoCanvas, float]:
    """A ruler with a ``length_mm`` scale (mm ticks, longer 5 and 10 mm ticks, cm marks); returns it and
    the x of its zero mark. Wood, steel or plastic."""
    margin, width = rng.uniform(5, 12), rng.uniform(18, 34)
    kind = str(rng.choice(["wood", "steel", "plastic"]))
    body = {
        "wood": Mat("wood", 1.0, "wood"),
        "steel": Mat("steel", 1.0, "steel"),
        "plastic": Mat("abs", 1.0, "plastic" if rng.random() < 0.5 else "paper"),
    }[kind]
    thick = {"wood": 4.0, "steel": 1.0, "plastic": 2.0}[kind]
    c = PhotoCanvas(length_mm + 2 * margin, width)
    poly(c, body, rounded_rect(0, 0, length_mm + 2 * margin, width, 1.5, 3), thick)
    with c.style("ink", lift=thick):
        for every, tick in ((1, 0.18 * width), (5, 0.27 * width), (10, 0.38 * width)):  # one comb-like stroke each
            comb = [(margin + k, y) for k in range(0, length_mm + 1, every) for y in (0.0, tick, 0.0)]
            c.stroke(comb, 0.12, "paper")
        for k in range(10, length_mm + 1, 10):  # numerals, as small marks
            x = margin + k - 1.2 * len(str(k // 10))
            c.stroke([(x, 0.45 * width), (x + 2.4 * len(str(k // 10)), 0.45 * width + 2.5)], 0.35, "paper")
    return c, margin
