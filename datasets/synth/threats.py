"""Procedural threat objects: generic firearm silhouettes, loose parts and ammunition.

Besides single threats (:func:`random_threat`), a firearm can come taken apart (:func:`disassembled_gun`):
a pistol field-stripped or a long gun broken down, each controlled part labelled with its class and the
gun's build, stocks and fore-ends unlabelled. Loose fire-control springs and pins in a bag
(:func:`spring_pin_kit`) are labelled ``trigger_group``, the taxonomy having no spring class.

All geometry is deliberately generic (boxes, rods, tubes and simple outlines with sizes
drawn from broad ranges) and exists only as attenuation maps for imaging. Nothing here
describes a real weapon design or anything printable.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from armscan.datasets.synth.canvas import Canvas, Point

# Printed parts are PLA at 20-60% infill with solid walls: their bulk density is a fraction of PLA's.
_PRINTED_DENSITY = (0.35, 0.75)


@dataclass
class Item:
    """One object drawn on its own canvas, with its label (``cls`` is None for benign items)."""

    canvas: Canvas
    cls: str | None = None
    type: str = "unknown"
    build: str = "unknown"
    name: str = ""


def _frame_material(rng: np.random.Generator, build: str) -> tuple[str, float, float]:
    """(material, density scale, wall thickness mm) of a frame or receiver of this build."""
    if build == "metal":
        return str(rng.choice(["steel", "aluminium"], p=[0.6, 0.4])), 1.0, float(rng.uniform(6, 12))
    if build == "polymer":
        return str(rng.choice(["nylon", "pom"])), 1.0, float(rng.uniform(6, 10))
    return "pla", float(rng.uniform(*_PRINTED_DENSITY)), float(rng.uniform(12, 26))


def _cartridge(c: Canvas, x: float, y: float, length: float, cal: float, angle: float = 0.0) -> None:
    """A cartridge lying on its side: brass case (tube) + lead bullet with copper jacket."""
    ux, uy = np.cos(angle), np.sin(angle)
    case_len = length * 0.62
    p1 = (x + ux * case_len, y + uy * case_len)
    c.rod((x, y), p1, cal / 2, "brass", bore=cal / 2 - 0.5)
    tip = (x + ux * length, y + uy * length)
    c.rod(p1, tip, cal / 2 * 0.9, "lead")


def _pistol_like(rng: np.random.Generator, pitch: float, build: str, slide_mat: str) -> Canvas:
    L = rng.uniform(150, 215)
    sh = rng.uniform(26, 34)  # slide height
    gh = rng.uniform(85, 115)  # grip height
    gw = rng.uniform(30, 38)
    slant = rng.uniform(12, 24)
    c = Canvas(L + 10, sh + gh + 20, pitch)
    fmat, fscale, fwall = _frame_material(rng, build)
    gx = L * rng.uniform(0.62, 0.72)
    # frame: dust cover + grip (an outline, walls project as thickness)
    frame = [(8, sh), (L - 5, sh), (L - 5, sh + 14), (gx + gw + 6, sh + 16), (gx + gw - slant + 6, sh + gh),
             (gx - slant - 2, sh + gh), (gx - 6, sh + 18), (10, sh + 16)]
    c.poly(frame, fwall, fmat, fscale)
    # trigger guard
    tgx = gx - 32
    c.polyline([(gx - 4, sh + 18), (tgx, sh + 20), (tgx - 2, sh + 36), (gx - 8, sh + 38)], 2.5, fmat)
    # magazine in the grip: thin steel shell with a stack of cartridges
    m0, m1 = (gx + gw / 2, sh + 8), (gx + gw / 2 - slant, sh + gh - 4)
    c.rod(m0, m1, gw / 2 - 4, "steel", bore=gw / 2 - 5)
    n = int(rng.integers(3, 9))
    for k in range(n):
        f = 0.1 + 0.8 * k / max(n, 1)
        _cartridge(c, m0[0] + (m1[0] - m0[0]) * f - 8, m0[1] + (m1[1] - m0[1]) * f, 20, 9, 0.0)
    # slide (hollow: two walls) with a barrel inside
    if slide_mat == "pla":
        c.rect(4, 4, L - 4, sh - 4, rng.uniform(14, 22), "pla", rng.uniform(*_PRINTED_DENSITY))
    else:
        c.rect(4, 4, L - 4, sh - 4, rng.uniform(8, 12), slide_mat)
    bar = rng.choice(["steel", "steel", "steel", "none"]) if build == "printed" else "steel"
    if bar == "steel":
        c.rod((L - 4, 4 + sh / 2 - 2), (L * 0.35, 4 + sh / 2 - 2), 6.5, "steel", bore=4.5)
    else:  # all-printed single-shot: only a steel pin or nail as firing pin
        c.rod((12, 4 + sh / 2), (60, 4 + sh / 2), 1.6, "steel")
    # trigger and springs
    c.rod((gx - 12, sh + 16), (gx - 16, sh + 32), 2.5, "steel" if build != "printed" else "pla")
    c.spring((20, sh / 2 + 6), (L * 0.5, sh / 2 + 6), 2.5, 0.5, int(rng.integers(6, 12)))
    return c


def pistol(rng: np.random.Generator, pitch: float, build: str) -> Item:
    """A self-loading pistol of the given build (metal, polymer or printed)."""
    slide = "pla" if build == "printed" and rng.random() < 0.6 else "steel"
    return Item(_pistol_like(rng, pitch, build, slide), "firearm", "pistol", build, "pistol")


def revolver(rng: np.random.Generator, pitch: float, build: str) -> Item:
    """A revolver: barrel, cylinder with chambers, frame and grip."""
    bl = rng.uniform(50, 150)
    L = bl + 140
    c = Canvas(L + 10, 150, pitch)
    fmat = "steel" if build == "metal" else "aluminium"
    c.rect(60, 20, 70, 40, 14, fmat)  # frame around the cylinder
    c.rect(68, 22, 50, 36, 22, "steel")  # cylinder (effective steel after chambers)
    for k in range(3):
        _cartridge(c, 70, 28 + k * 11, 30, 9.5)
    c.rod((125, 28), (125 + bl, 28), 9, "steel", bore=4.5)
    grip = [(60, 55), (85, 55), (70, 135), (35, 135), (30, 120)]
    c.poly(grip, 28, str(rng.choice(["wood", "nylon"])))
    c.rod((60, 60), (20, 130), 3, "steel")  # grip frame
    c.polyline([(75, 60), (72, 78), (95, 78), (100, 60)], 2.5, "steel")
    return Item(c, "firearm", "revolver", "metal", "revolver")


def long_gun(rng: np.random.Generator, pitch: float, build: str, kind: str) -> Item:
    """A rifle, shotgun or smg laid flat: barrel, receiver, stock and magazine."""
    if kind == "smg":
        L, bl, bore_r, rec_l = rng.uniform(380, 520), rng.uniform(100, 200), 7.0, rng.uniform(180, 260)
    elif kind == "shotgun":
        L, bl, bore_r, rec_l = rng.uniform(850, 1100), rng.uniform(450, 700), 11.5, rng.uniform(170, 220)
    else:
        L, bl, bore_r, rec_l = rng.uniform(800, 1050), rng.uniform(400, 600), 8.5, rng.uniform(180, 260)
    c = Canvas(L + 10, 200, pitch)
    stock_l = max(L - bl - rec_l + 60, 60)
    y = 40
    rmat, rscale, rwall = _frame_material(rng, build)
    c.rect(stock_l - 10, y - 12, rec_l, 40, rwall + 10, rmat, rscale)  # receiver
    c.rod((stock_l + rec_l - 30, y), (L, y), bore_r, "steel", bore=bore_r - (2.5 if kind != "shotgun" else 1.2))
    if kind == "smg":
        c.polyline([(stock_l, y), (10, y + 5), (10, y + 45), (stock_l, y + 25)], 3, "steel")  # wire stock
        c.rect(stock_l + rec_l * 0.45, y + 25, 28, rng.uniform(110, 180), 24, "steel")  # long magazine
    else:
        stock = [(stock_l, y - 8), (stock_l, y + 25), (5, y + 60), (5, y + 10)]
        c.poly(stock, 38, str(rng.choice(["wood", "polyethylene", "nylon"])))
        if kind == "rifle":
            c.rect(stock_l + rec_l * 0.5, y + 26, 30, rng.uniform(50, 90), 22, "steel")
            c.rod((stock_l + rec_l * 0.3, y), (stock_l + rec_l * 0.3 + 12, y + 30), 4, "steel")  # bolt handle
        else:
            c.rect(stock_l + rec_l + 40, y + 8, 160, 26, 40, str(rng.choice(["wood", "abs"])))  # fore-end
    c.polyline([(stock_l + 30, y + 28), (stock_l + 25, y + 50), (stock_l + 65, y + 50), (stock_l + 70, y + 28)], 2.5,
               "steel")
    c.spring((stock_l + 20, y), (stock_l + rec_l - 40, y), 3.5, 0.6, int(rng.integers(8, 16)))
    return Item(c, "firearm", kind, build, kind)


def barrel(rng: np.random.Generator, pitch: float, build: str = "metal", length_mm: float | None = None) -> Item:
    """A loose barrel: a steel tube, sometimes with a chamber block or thread. ``build`` labels the gun it
    belongs to (a printed gun's barrel is still a steel tube); ``length_mm`` fixes its length."""
    L = rng.uniform(70, 520) if length_mm is None else length_mm
    r = rng.uniform(5.5, 12.0)
    c = Canvas(L + 10, 2 * r + 16, pitch)
    c.rod((4, r + 6), (L, r + 6), r, "steel", bore=r - rng.uniform(2.0, 3.5))
    if rng.random() < 0.5:
        c.rect(4, 2, rng.uniform(15, 30), 2 * r + 8, 2 * r + 4, "steel")
    return Item(c, "barrel", build=build, name="barrel")


def slide(rng: np.random.Generator, pitch: float, build: str) -> Item:
    """A loose pistol slide: a hollow box with an ejection port."""
    L, h = rng.uniform(140, 200), rng.uniform(24, 34)
    c = Canvas(L + 10, h + 10, pitch)
    if build == "printed":
        c.rect(4, 4, L, h, rng.uniform(16, 24), "pla", rng.uniform(*_PRINTED_DENSITY))
    else:
        c.rect(4, 4, L, h, rng.uniform(8, 12), "steel")
        c.rect(L * 0.55, 6, L * 0.2, h * 0.5, -rng.uniform(3, 6), "steel")  # ejection port
    c.rect(8, 8, L * 0.2, h * 0.3, 5, "steel")  # striker block
    return Item(c, "slide", build=build, name="slide")


def frame_receiver(rng: np.random.Generator, pitch: float, build: str, shape: str | None = None) -> Item:
    """A loose frame (pistol) or receiver (rifle) of the given build; ``shape`` ("pistol" or "receiver")
    chooses one, None draws either."""
    if shape not in (None, "pistol", "receiver"):
        raise ValueError(f"Unknown frame shape {shape!r}. Valid shapes: pistol, receiver (or None for either)")
    mat, scale, wall = _frame_material(rng, build)
    if (rng.random() < 0.5) if shape is None else shape == "pistol":  # pistol frame
        L, gh, gw, sl = rng.uniform(150, 200), rng.uniform(85, 115), rng.uniform(30, 38), rng.uniform(12, 24)
        c = Canvas(L + 10, gh + 40, pitch)
        gx = L * rng.uniform(0.62, 0.72)
        c.poly([(4, 4), (L, 4), (L, 20), (gx + gw, 22), (gx + gw - sl, gh + 20), (gx - sl - 6, gh + 20), (gx - 6, 24),
                (6, 20)], wall, mat, scale)
        c.polyline([(gx - 4, 24), (gx - 34, 26), (gx - 36, 42), (gx - 8, 44)], 2.5, mat)
    else:  # receiver block with a magazine well
        L, h = rng.uniform(180, 260), rng.uniform(40, 60)
        c = Canvas(L + 10, h + 60, pitch)
        c.rect(4, 4, L, h, wall + 10, mat, scale)
        c.frame(L * 0.35, h, 34, 40, 4, 20, mat)
        c.rect(L * 0.75, h, 25, 45, 28, mat, scale)  # grip stub
    return Item(c, "frame_receiver", build=build, name="frame_receiver")


def bolt(rng: np.random.Generator, pitch: float, build: str = "metal") -> Item:
    """A loose bolt: a steel cylinder with a handle or lugs (``build`` labels the gun it belongs to)."""
    L, r = rng.uniform(60, 130), rng.uniform(7, 11)
    c = Canvas(L + 20, 2 * r + 50, pitch)
    c.rod((6, r + 6), (L, r + 6), r, "steel", bore=r * 0.4)
    if rng.random() < 0.6:
        hx = rng.uniform(0.2, 0.6) * L
        c.rod((hx, r + 6), (hx + rng.uniform(-10, 10), r + 40), 3.5, "steel")
        c.ellipse(hx, r + 42, 6, 6, 12, "steel")
    else:
        c.rect(L - 14, 2, 10, 2 * r + 8, 2 * r, "steel")  # lugs
    return Item(c, "bolt", build=build, name="bolt")


def magazine(rng: np.random.Generator, pitch: float, build: str) -> Item:
    """A loose box magazine: a shell with a spring, follower and maybe cartridges."""
    w, h = rng.uniform(28, 36), rng.uniform(90, 200)
    c = Canvas(w + 14, h + 14, pitch)
    mat = "steel" if build == "metal" else "nylon"
    c.frame(4, 4, w, h, 2.5, 22, mat)
    c.rect(4, 4, w, h, 2.0 if build == "metal" else 5.0, mat)
    c.spring((4 + w / 2, h * 0.35), (4 + w / 2, h), w / 2 - 5, 0.7, int(rng.integers(5, 10)))
    n = int(rng.integers(0, 8))
    for k in range(n):
        _cartridge(c, 8, 10 + k * 10.5, w - 8, 9)
    return Item(c, "magazine", build=build, name="magazine")


def trigger_group(rng: np.random.Generator, pitch: float, build: str) -> Item:
    """A trigger group: housing with hammer, sear, trigger, pins and springs."""
    w, h = rng.uniform(45, 75), rng.uniform(30, 45)
    c = Canvas(w + 20, h + 30, pitch)
    if build in ("polymer", "printed"):
        mat, sc = ("pla", rng.uniform(*_PRINTED_DENSITY)) if build == "printed" else ("nylon", 1.0)
        c.rect(4, 4, w, h, 18, mat, sc)
    else:
        c.frame(4, 4, w, h, 3, 18, "steel")
    c.poly([(w * 0.3, 10), (w * 0.45, 8), (w * 0.45, h + 20), (w * 0.35, h + 18)], 6, "steel")  # trigger
    c.ellipse(w * 0.75, h * 0.4, 9, 7, 6, "steel")  # hammer
    for px in (w * 0.2, w * 0.6, w * 0.85):
        c.rod((px, 4), (px, h + 4), 1.6, "steel")  # pins, seen end-on as bars
    c.spring((10, h * 0.7), (w, h * 0.7), 3, 0.5, int(rng.integers(4, 8)))
    return Item(c, "trigger_group", build=build, name="trigger_group")


def ammunition(rng: np.random.Generator, pitch: float) -> Item:
    """Loose rounds in a cluster, or a carton of rounds standing in rows (one box for the lot)."""
    cal = float(rng.choice([5.7, 7.6, 9.0, 11.4, 9.0]))
    length = cal * rng.uniform(2.6, 3.6)
    if rng.random() < 0.5:
        n = int(rng.integers(1, 7))
        size = length * 2.2 + n * 6
        c = Canvas(size, size, pitch)
        for _ in range(n):
            a = rng.uniform(0, 2 * np.pi)
            x = size / 2 - np.cos(a) * length / 2 + rng.uniform(-n * 2, n * 2)
            y = size / 2 - np.sin(a) * length / 2 + rng.uniform(-n * 2, n * 2)
            _cartridge(c, x, y, length, cal, a)
    else:
        rows, cols = int(rng.integers(2, 6)), int(rng.integers(3, 8))
        c = Canvas(cols * (cal + 2) + 16, rows * (cal + 2) + 16, pitch)
        c.frame(4, 4, cols * (cal + 2) + 6, rows * (cal + 2) + 6, 2, 60, "paper")
        for i in range(rows):
            for j in range(cols):
                cx, cy = 8 + j * (cal + 2) + cal / 2, 8 + i * (cal + 2) + cal / 2
                c.ellipse(cx, cy, cal / 2, cal / 2, length * 0.62, "brass")  # standing: seen end-on
                c.ellipse(cx, cy, cal / 2 * 0.8, cal / 2 * 0.8, length * 0.38, "lead")
    return Item(c, "ammunition", build="metal", name="ammunition")


def _lay(rng: np.random.Generator, w: float, h: float, length: float, pad: float) -> tuple[Point, Point]:
    """A segment of about ``length`` mm at a random angle, its ends ``pad`` mm inside the box (5, 5, w, h)."""
    a = rng.uniform(0, np.pi)
    ux, uy = float(np.cos(a)), float(np.sin(a))
    L = length * min(1.0, (w - 2 * pad) / max(abs(ux) * length, 1e-6), (h - 2 * pad) / max(abs(uy) * length, 1e-6))
    ex, ey = abs(ux) * L / 2 + pad, abs(uy) * L / 2 + pad
    cx, cy = 5 + ex + rng.random() * max(w - 2 * ex, 0.0), 5 + ey + rng.random() * max(h - 2 * ey, 0.0)
    return (cx - ux * L / 2, cy - uy * L / 2), (cx + ux * L / 2, cy + uy * L / 2)


def spring_pin_kit(rng: np.random.Generator, pitch: float, build: str = "metal", recoil: bool = False) -> Item:
    """Loose fire-control springs and pins in a small bag, labelled ``trigger_group`` (see the taxonomy): coil
    springs, plain pins, sometimes a firing pin, and a recoil spring on its guide rod (always when ``recoil``)."""
    w, h = rng.uniform(80, 140), rng.uniform(50, 100)
    c = Canvas(w + 10, h + 10, pitch)
    c.rect(5, 5, w, h, 0.15, "polyethylene")  # zip bag
    if recoil or rng.random() < 0.4:
        p0, p1 = _lay(rng, w, h, rng.uniform(60, 110), 8)
        c.rod(p0, p1, rng.uniform(1.8, 3.2), "steel" if rng.random() < 0.7 else "pom")  # guide rod
        c.spring(p0, p1, rng.uniform(4.0, 6.0), rng.uniform(0.5, 0.8), int(rng.integers(12, 25)))
    for _ in range(int(rng.integers(1, 4))):  # small springs
        r = rng.uniform(1.5, 4.0)
        p0, p1 = _lay(rng, w, h, rng.uniform(15, 50), r + 2)
        c.spring(p0, p1, r, rng.uniform(0.3, 0.7), int(rng.integers(5, 14)))
    for _ in range(int(rng.integers(2, 7))):  # pins
        r = rng.uniform(0.8, 2.0)
        p0, p1 = _lay(rng, w, h, rng.uniform(10, 35), r + 2)
        c.rod(p0, p1, r, "steel")
    if rng.random() < 0.5:  # firing pin: a thin rod with a shoulder
        p0, p1 = _lay(rng, w, h, rng.uniform(40, 75), 6)
        c.rod(p0, p1, rng.uniform(1.2, 2.2), "steel")
        c.rod(p0, (p0[0] + (p1[0] - p0[0]) * 0.2, p0[1] + (p1[1] - p0[1]) * 0.2), 3.5, "steel")
    return Item(c, "trigger_group", build=build, name="spring_pin_kit")


def pistol_parts(rng: np.random.Generator, pitch: float, build: str) -> list[Item]:
    """A self-loading pistol field-stripped: slide, frame, barrel, recoil spring on its guide rod (with loose
    pins and springs), magazine and sometimes the trigger group, every part labelled with the gun's build."""
    parts = [
        slide(rng, pitch, "printed" if build == "printed" and rng.random() < 0.6 else "metal"),
        frame_receiver(rng, pitch, build, shape="pistol"),
        barrel(rng, pitch, build, length_mm=rng.uniform(75, 130)),
        spring_pin_kit(rng, pitch, build, recoil=True),
        magazine(rng, pitch, "metal" if build == "metal" else "polymer"),
    ]
    if rng.random() < 0.5:
        parts.append(trigger_group(rng, pitch, build))
    for p in parts:
        p.build = build
    return parts


def _long_barrel(rng: np.random.Generator, pitch: float, action: str, length: float, build: str) -> Item:
    """A long gun's barrel off its receiver: one tube (rifle, smg, pump) or a side-by-side pair (break action)."""
    shotgun = action in ("pump", "break_action")
    r = rng.uniform(10.5, 12.0) if shotgun else rng.uniform(8.0, 10.5) if action == "rifle" else rng.uniform(6.5, 8.5)
    n = 2 if action == "break_action" else 1
    c = Canvas(length + 10, 2 * r * n + 30, pitch)
    y0 = 15 + r
    for k in range(n):
        c.rod((5, y0 + 2 * r * k), (length, y0 + 2 * r * k), r, "steel", bore=r - (1.2 if shotgun else 2.5))
    if action == "break_action":
        c.rect(5, y0 - r, rng.uniform(40, 70), 2 * r * n, 2 * r, "steel")  # breech block with the hinge lugs
        c.rect(60, y0 + r - 2, length - 70, 4, 6, "steel")  # rib between the barrels
    elif action == "pump":
        c.rect(rng.uniform(10, 30), y0 + r - 2, 30, 12, 12, "steel")  # barrel ring under the breech
    else:  # rifle or smg: thicker chamber end, sometimes a muzzle device
        c.rod((5, y0), (5 + rng.uniform(40, 80), y0), r + rng.uniform(3, 6), "steel", bore=r)
        if rng.random() < 0.5:
            c.rod((length - rng.uniform(30, 60), y0), (length, y0), r + rng.uniform(2, 5), "steel", bore=r)
    return Item(c, "barrel", build=build, name="barrel")


def _long_receiver(rng: np.random.Generator, pitch: float, action: str, build: str, stock_len: float,
                   max_len: float) -> Item:
    """A long gun's receiver (trigger guard, magazine well or tube) with its stock still on when ``stock_len`` > 0."""
    mat, scale, wall = ("steel", 1.0, rng.uniform(25, 35)) if action == "break_action" else _frame_material(rng, build)
    rl = rng.uniform(90, 130) if action == "break_action" else rng.uniform(170, 240)
    rh = rng.uniform(45, 60)
    tube = min(rng.uniform(150, 300), max_len - stock_len - rl - 20) if action == "pump" else 0.0
    c = Canvas(stock_len + rl + max(tube, 0.0) + 15, rh + 80, pitch)
    x0, y = 5 + stock_len, 10.0
    c.rect(x0, y, rl, rh, wall + (0 if action == "break_action" else 10), mat, scale)
    c.polyline([(x0 + rl * 0.3, y + rh), (x0 + rl * 0.28, y + rh + 22), (x0 + rl * 0.6, y + rh + 22),
                (x0 + rl * 0.62, y + rh)], 2.5, "steel")  # trigger guard
    if action in ("rifle", "smg"):
        c.frame(x0 + rl * 0.45, y + rh, 32, 36, 3.5, 20, mat)  # magazine well
    if tube > 20:
        c.rod((x0 + rl, y + rh - 12), (x0 + rl + tube, y + rh - 12), 9, "steel", bore=8)  # magazine tube stays on
    if stock_len > 0:
        drop = rng.uniform(25, 50)
        c.poly([(x0, y + 4), (x0, y + rh), (5, y + rh + drop), (5, y + 8)], rng.uniform(34, 42),
               str(rng.choice(["wood", "polyethylene", "nylon"])))
        c.rod((15, y + rh / 2 + drop / 3), (x0 + 15, y + rh / 2), 3, "steel")  # stock bolt
    return Item(c, "frame_receiver", build=build, name="receiver")


def _stock(rng: np.random.Generator, pitch: float, length: float) -> Item:
    """A detached shoulder stock: wood or polymer with its steel stock bolt. Not a controlled part: unlabelled."""
    h = rng.uniform(100, 150)
    c = Canvas(length + 10, h + 10, pitch)
    c.poly([(length, 5 + h * 0.1), (length, 5 + h * 0.45), (5, 5 + h), (5, 5 + h * 0.15)], rng.uniform(34, 42),
           str(rng.choice(["wood", "polyethylene", "nylon"])))
    c.rect(5, 5 + h * 0.15, 14, h * 0.85, 30, "polyethylene", 0.8)  # butt pad
    c.rod((20, 5 + h * 0.5), (length - 5, 5 + h * 0.3), 3, "steel")
    return Item(c, name="stock")


def _fore_end(rng: np.random.Generator, pitch: float, action: str) -> Item:
    """A detached fore-end (wood or polymer with a steel latch, or a pump's slide with its action bars). Unlabelled."""
    L, w = rng.uniform(150, 260), rng.uniform(30, 45)
    c = Canvas(L + 10, w + 10, pitch)
    c.rect(5, 5, L, w, rng.uniform(25, 40), str(rng.choice(["wood", "abs", "nylon"])))
    if action == "pump":
        for y in (8.0, w + 2):
            c.rod((5, y), (L + rng.uniform(0, 4), y), 2.5, "steel")  # action bars
    else:
        c.rect(L * 0.4, 5 + w * 0.3, 30, w * 0.4, 8, "steel")  # latch
    return Item(c, name="fore_end")


def long_gun_parts(rng: np.random.Generator, pitch: float, build: str, kind: str, max_len_mm: float = 1200.0) -> list[Item]:
    """A rifle, shotgun or smg taken down, no piece longer than about ``max_len_mm``: the barrel off the receiver
    (a shotgun is a pump or a break action with its barrels off), the stock on or apart, bolt, magazine and
    trigger group out. Controlled parts carry their class and the gun's build; stock and fore-end are unlabelled."""
    if kind not in ("rifle", "shotgun", "smg"):
        raise ValueError(f"Unknown long gun kind {kind!r}. Valid kinds: rifle, shotgun, smg")
    action = kind if kind != "shotgun" else "break_action" if rng.random() < 0.5 else "pump"
    lo, hi = {"rifle": (380, 600), "smg": (100, 200)}.get(kind, (450, 700))
    parts = [_long_barrel(rng, pitch, action, min(rng.uniform(lo, hi), max_len_mm), build)]
    stock_len = 0.0 if kind == "smg" else min(rng.uniform(280, 380), max_len_mm)
    attached = stock_len + 270 < max_len_mm and rng.random() < (0.7 if action == "break_action" else 0.3)
    parts.append(_long_receiver(rng, pitch, action, build, stock_len if attached else 0.0, max_len_mm))
    if stock_len > 0 and not attached:
        parts.append(_stock(rng, pitch, stock_len))
    if action != "break_action":
        parts.append(bolt(rng, pitch, build))
    if action in ("rifle", "smg"):
        parts.append(magazine(rng, pitch, "metal" if build == "metal" else "polymer"))
    if action in ("pump", "break_action") or rng.random() < 0.4:
        parts.append(trigger_group(rng, pitch, build))
    if kind == "shotgun" or (kind == "rifle" and rng.random() < 0.4):
        parts.append(_fore_end(rng, pitch, action))
    for p in parts:
        if p.cls is not None:
            p.build = build
    return parts


def opened_shotgun(rng: np.random.Generator, pitch: float) -> Item:
    """A break-action shotgun opened at the hinge: stock and receiver in line, the barrels dropped 20-45 degrees."""
    bl, sl, rl, rh = rng.uniform(450, 700), rng.uniform(280, 380), rng.uniform(90, 130), rng.uniform(45, 60)
    ang, r = np.radians(rng.uniform(20, 45)), rng.uniform(10.5, 12.0)
    ux, uy = float(np.cos(ang)), float(np.sin(ang))
    over_under = rng.random() < 0.5  # over/under: two tubes seen apart; side by side: one behind the other
    c = Canvas(sl + rl + bl * ux + 40, bl * uy + rh + 110, pitch)
    y = 20.0
    c.poly([(5 + sl, y + 4), (5 + sl, y + rh), (5, y + rh + 40), (5, y + 8)], rng.uniform(34, 42),
           str(rng.choice(["wood", "polyethylene"])))
    c.rect(5 + sl, y, rl, rh, rng.uniform(25, 35), "steel")
    c.polyline([(sl + rl * 0.3, y + rh), (sl + rl * 0.28, y + rh + 22), (sl + rl * 0.7, y + rh + 22),
                (sl + rl * 0.72, y + rh)], 2.5, "steel")
    hx, hy = 5 + sl + rl, y + rh - r
    for k in range(2 if over_under else 1):
        ox, oy = -uy * 2 * r * k, ux * 2 * r * k
        scale = 1.0 if over_under else 2.0  # side by side: the beam crosses both tubes
        c.rod((hx + ox, hy + oy), (hx + ox + bl * ux, hy + oy + bl * uy), r, "steel", bore=r - 1.2,
              density_scale=scale)
    below = 2 * r * (2 if over_under else 1)  # the fore-end lies along the barrels' underside
    fx, fy = hx + ux * 40 - uy * below, hy + uy * 40 + ux * below
    c.rod((fx, fy), (fx + ux * 200, fy + uy * 200), 14, "wood")  # fore-end under the barrels
    return Item(c, "firearm", "shotgun", "metal", "shotgun_open")


def disassembled_gun(rng: np.random.Generator, pitch: float, max_len_mm: float) -> tuple[str, str, list[Item]]:
    """One firearm taken apart: ``(type, build, parts)``. A rifle or shotgun only when its barrel can fit in
    ``max_len_mm`` (at least 400 mm); a shotgun is metal, as in :func:`random_threat`."""
    kinds = ["pistol", "smg", "rifle", "shotgun"]
    p = np.array([0.45, 0.15, 0.22, 0.18] if max_len_mm >= 400 else [0.75, 0.25, 0.0, 0.0])
    kind = str(rng.choice(kinds, p=p / p.sum()))
    build = str(rng.choice(list(BUILD_WEIGHTS), p=list(BUILD_WEIGHTS.values())))
    if kind == "shotgun":
        build = "metal"
    parts = pistol_parts(rng, pitch, build) if kind == "pistol" else long_gun_parts(rng, pitch, build, kind, max_len_mm)
    return kind, build, parts


BUILD_WEIGHTS = {"metal": 0.4, "polymer": 0.3, "printed": 0.3}


def random_threat(rng: np.random.Generator, pitch: float, allow_long: bool) -> Item:
    """Draw one threat: a whole firearm (any type; a shotgun sometimes opened), a loose part (a bag of loose
    springs and pins counts as a trigger group) or ammunition."""
    builds, weights = list(BUILD_WEIGHTS), list(BUILD_WEIGHTS.values())
    build = str(rng.choice(builds, p=weights))
    kinds = ["pistol", "revolver", "smg", "barrel", "slide", "frame_receiver", "bolt", "magazine", "trigger_group",
             "ammunition", "spring_pin_kit"]
    p = np.array([0.16, 0.05, 0.05, 0.09, 0.09, 0.11, 0.09, 0.09, 0.09, 0.10, 0.04])
    if allow_long:
        kinds += ["rifle", "shotgun"]
        p = np.concatenate([p * 0.92, [0.05, 0.03]])
    kind = str(rng.choice(kinds, p=p / p.sum()))
    if kind == "pistol":
        return pistol(rng, pitch, build)
    if kind == "revolver":
        return revolver(rng, pitch, "metal")
    if kind == "shotgun" and rng.random() < 0.3:
        return opened_shotgun(rng, pitch)
    if kind in ("smg", "rifle", "shotgun"):
        return long_gun(rng, pitch, build if kind != "shotgun" else "metal", kind)
    if kind == "slide":
        return slide(rng, pitch, "printed" if build == "printed" else "metal")
    if kind == "frame_receiver":
        return frame_receiver(rng, pitch, build)
    if kind == "magazine":
        return magazine(rng, pitch, "polymer" if build != "metal" else "metal")
    if kind == "trigger_group":
        return trigger_group(rng, pitch, build)
    if kind == "spring_pin_kit":
        return spring_pin_kit(rng, pitch)
    if kind == "barrel":
        return barrel(rng, pitch)
    if kind == "bolt":
        return bolt(rng, pitch)
    return ammunition(rng, pitch)
