"""Hard negatives: benign items that share a threat's outline or material, so the detector must not box them.

Toy guns are gun-shaped but all plastic (no metal part at all); glue guns, drills and hair dryers are
gun-shaped tools with motors, coils and batteries; kitchenware, shoes with steel shanks, rods and springs
bring long dense metal; a bag of screws, nuts and washers mirrors a bag of loose gun springs and pins (which
is labelled ``trigger_group``); benign 3D-printed brackets, figurines and enclosures are printed polymer at
infill density, the same faint material as a printed frame. Geometry is generic (outlines, boxes, rods).
"""

from __future__ import annotations

import numpy as np

from armscan.datasets.synth.canvas import Canvas
from armscan.datasets.synth.threats import _PRINTED_DENSITY, Item


def _gun_outline(L: float, body_h: float, grip_h: float, grip_w: float, slant: float) -> list[tuple[float, float]]:
    """A generic pistol-grip outline (body bar + slanted handle), millimetres from the top-left corner."""
    gx = L * 0.6
    return [(4, 4), (L, 4), (L, body_h), (gx + grip_w, body_h), (gx + grip_w - slant, body_h + grip_h),
            (gx - slant, body_h + grip_h), (gx, body_h), (4, body_h)]


def toy_gun(rng: np.random.Generator, pitch: float) -> Item:
    """A toy or replica gun: gun-shaped hollow ABS/PE shell (toy) or solid nylon (replica), no metal."""
    L, bh, gh, gw = rng.uniform(140, 320), rng.uniform(25, 45), rng.uniform(70, 110), rng.uniform(28, 40)
    c = Canvas(L + 10, bh + gh + 10, pitch)
    outline = _gun_outline(L, bh, gh, gw, rng.uniform(8, 25))
    if rng.random() < 0.7:  # hollow toy: two thin walls, a dart tube or water tank inside
        c.poly(outline, rng.uniform(3, 6), str(rng.choice(["abs", "polyethylene"])))
        c.rod((10, bh / 2 + 2), (L - 6, bh / 2 + 2), rng.uniform(5, 9), "polyethylene", bore=4)
        if rng.random() < 0.4:
            c.ellipse(L * 0.35, bh + 10, 25, 15, 30, "water")  # water-gun tank
        name = "toy_gun"
    else:  # replica / prop: solid polymer
        c.poly(outline, rng.uniform(18, 28), str(rng.choice(["nylon", "pom", "abs"])))
        name = "replica_gun"
    return Item(c, name=name)


def glue_gun(rng: np.random.Generator, pitch: float) -> Item:
    """A hot-glue gun: gun-shaped ABS shell, aluminium nozzle block, heater wire, glue stick."""
    L, bh = rng.uniform(150, 220), rng.uniform(35, 50)
    c = Canvas(L + 40, bh + 110, pitch)
    c.poly(_gun_outline(L, bh, rng.uniform(80, 100), 32, 10), 5, "abs")
    c.rect(L - 10, bh / 2 - 8, 25, 16, 14, "aluminium")
    c.rod((L + 15, bh / 2), (L + 32, bh / 2), 2.5, "brass", bore=1.0)
    c.rod((0, bh / 2), (L - 10, bh / 2), 5.5, "polyethylene")  # glue stick
    c.polyline([(L * 0.6 + 10, bh + 90), (L * 0.6 + 10, bh + 10), (L - 10, bh / 2)], 0.6, "copper")
    return Item(c, name="glue_gun")


def drill(rng: np.random.Generator, pitch: float) -> Item:
    """A cordless drill: motor (copper + steel), gearbox, steel chuck and bit, battery pack below the handle."""
    L, bh, gh = rng.uniform(160, 230), rng.uniform(55, 70), rng.uniform(90, 120)
    c = Canvas(L + 80, bh + gh + 60, pitch)
    c.poly(_gun_outline(L, bh, gh, 40, rng.uniform(5, 15)), 6, "abs")
    c.rod((20, bh / 2), (75, bh / 2), 18, "steel", bore=16)  # motor can
    c.rod((25, bh / 2), (70, bh / 2), 12, "copper", bore=4)  # windings
    c.rect(80, bh / 2 - 16, 45, 32, 35, "zinc_alloy", 0.6)  # gearbox
    c.rod((L - 5, bh / 2), (L + 35, bh / 2), 11, "steel", bore=2)  # chuck
    c.rod((L + 35, bh / 2), (L + 75, bh / 2), rng.uniform(2, 5), "steel")  # bit
    by = bh + gh
    c.rect(L * 0.6 - 45, by, 90, 45, 60, "abs")
    for k in range(int(rng.integers(2, 6))):  # 18650 cells
        c.rod((L * 0.6 - 38 + k * 19, by + 5), (L * 0.6 - 38 + k * 19, by + 40), 9, "steel", bore=8.7)
    return Item(c, name="drill")


def hair_dryer(rng: np.random.Generator, pitch: float) -> Item:
    """A hair dryer: barrel with a nichrome coil on mica, a small motor, handle with a cable."""
    L, r, gh = rng.uniform(150, 230), rng.uniform(28, 40), rng.uniform(90, 130)
    c = Canvas(L + 10, 2 * r + gh + 20, pitch)
    c.rod((5 + r, r + 5), (L, r + 5), r, "abs", bore=r - 3)
    c.ellipse(5 + r, r + 5, r * 0.9, r * 0.9, 25, "abs")
    c.rod((10, r + 5), (45, r + 5), r * 0.5, "copper", bore=r * 0.3)  # motor
    c.spring((55, r + 5), (L - 10, r + 5), r * 0.6, 0.4, int(rng.integers(10, 20)), "steel")  # heater coil
    c.rect(55, r - 5, L - 70, 20, 1.0, "glass")  # mica board
    c.rod((L * 0.35, 2 * r), (L * 0.3, 2 * r + gh), 14, "abs", bore=12)
    c.polyline([(L * 0.3, 2 * r + gh), (L * 0.28, 2 * r + gh + 15)], 1.2, "copper")
    return Item(c, name="hair_dryer")


def kitchenware(rng: np.random.Generator, pitch: float) -> Item:
    """A pan or pot with a handle, or a bundle of cutlery."""
    kind = str(rng.choice(["pan", "cutlery"]))
    if kind == "pan":
        r, hl = rng.uniform(80, 140), rng.uniform(120, 190)
        c = Canvas(2 * r + hl + 10, 2 * r + 10, pitch)
        mat = str(rng.choice(["aluminium", "steel"]))
        base, wall_h = (4.0 if mat == "aluminium" else 1.5), rng.uniform(30, 70)
        c.ellipse(r + 5, r + 5, r, r, base + wall_h, mat)  # the side wall seen from above is a dense ring
        c.ellipse(r + 5, r + 5, r - base, r - base, -wall_h, mat)
        c.rod((2 * r + 5, r + 5), (2 * r + hl, r + 5), 10, "abs")
        c.rod((2 * r - 5, r + 5), (2 * r + 30, r + 5), 3, "steel")  # rivets / handle bracket
    else:
        L = rng.uniform(170, 230)
        c = Canvas(L + 10, 80, pitch)
        for k in range(int(rng.integers(3, 9))):
            y = 10 + k * rng.uniform(5, 9)
            c.rod((5, y), (L * 0.6, y), 2.5, "steel")
            c.ellipse(L * 0.75, y, L * 0.15, 6, 1.5, "steel", rng.uniform(-10, 10))
    return Item(c, name=kind)


def shoe(rng: np.random.Generator, pitch: float) -> Item:
    """A shoe: rubber sole, leather/textile upper, often a steel shank (and eyelets or a steel toe cap)."""
    L, w = rng.uniform(250, 310), rng.uniform(85, 110)
    c = Canvas(L + 10, w + 10, pitch)
    c.ellipse(L / 2 + 5, w / 2 + 5, L / 2, w / 2, 25, "polyethylene")  # sole
    c.ellipse(L / 2 + 5, w / 2 + 5, L * 0.45, w * 0.42, 40, "cotton")  # upper and lining
    if rng.random() < 0.7:
        c.rect(L * 0.3, w / 2 - 6, L * 0.35, 14, 1.5, "steel")  # shank
    if rng.random() < 0.3:
        c.ellipse(L * 0.9, w / 2 + 5, L * 0.1, w * 0.45, 2.0, "steel")  # safety toe cap
    for k in range(int(rng.integers(0, 6))):
        c.ellipse(L * (0.55 + 0.05 * k), w / 2 - 10, 2.5, 2.5, 1, "brass")
        c.ellipse(L * (0.55 + 0.05 * k), w / 2 + 20, 2.5, 2.5, 1, "brass")
    return Item(c, name="shoe")


def rod_or_tube(rng: np.random.Generator, pitch: float) -> Item:
    """A solid rod, tent pole, threaded bar or curtain rod: long dense metal, barrel-like at a glance."""
    L, r = rng.uniform(150, 600), rng.uniform(3, 12)
    c = Canvas(L + 10, 2 * r + 10, pitch)
    bore = float(rng.choice([0.0, r * 0.8]))
    c.rod((5, r + 5), (L, r + 5), r, str(rng.choice(["steel", "aluminium", "brass"])), bore=bore)
    return Item(c, name="rod")


def spring_item(rng: np.random.Generator, pitch: float) -> Item:
    """Springs in benign items: clothes pegs, a spring clamp, retractable pens, a loose spare spring."""
    kind = str(rng.choice(["pegs", "clamp", "pens", "spring"]))
    c = Canvas(160, 90, pitch)
    if kind == "pegs":
        for k in range(int(rng.integers(2, 8))):
            x = 10 + k * 18
            c.rect(x, 10, 10, 70, 10, str(rng.choice(["wood", "polyethylene"])))
            c.spring((x + 5, 35), (x + 5, 50), 5, 0.6, 3)
    elif kind == "clamp":
        c.poly([(10, 20), (150, 30), (150, 45), (10, 40)], 12, "nylon")
        c.poly([(10, 50), (150, 45), (150, 60), (10, 75)], 12, "nylon")
        c.spring((70, 30), (70, 65), 8, 1.2, 4)
    elif kind == "pens":
        for k in range(int(rng.integers(1, 5))):
            y = 12 + k * 16
            c.rod((5, y), (145, y), 5, "polyethylene", bore=4)
            c.spring((100, y), (125, y), 1.8, 0.25, 10)
            c.rod((10, y), (100, y), 1.5, "brass")  # refill
    else:
        c.spring((10, 45), (rng.uniform(60, 150), 45), rng.uniform(3, 12), rng.uniform(0.5, 1.5),
                 int(rng.integers(5, 15)))
    return Item(c, name=f"spring_{kind}")


def printed_benign(rng: np.random.Generator, pitch: float) -> Item:
    """A benign 3D-printed part (PLA at infill density): a bracket, a figurine or an electronics enclosure."""
    kind = str(rng.choice(["bracket", "figurine", "enclosure"]))
    dens = float(rng.uniform(*_PRINTED_DENSITY))
    if kind == "bracket":
        L, h = rng.uniform(60, 180), rng.uniform(40, 120)
        c = Canvas(L + 10, h + 10, pitch)
        t = rng.uniform(5, 12)
        c.poly([(5, 5), (5 + t, 5), (5 + t, h - t), (L, h - t), (L, h), (5, h)], rng.uniform(20, 40), "pla", dens)
        for k in range(int(rng.integers(1, 4))):
            c.ellipse(20 + k * (L - 30) / 3, h - t / 2, 2.5, 2.5, -10, "pla", 0.0, dens)  # screw holes
    elif kind == "figurine":
        s = rng.uniform(50, 140)
        c = Canvas(s, s * 1.6, pitch)
        c.ellipse(s / 2, s * 0.3, s * 0.22, s * 0.22, s * 0.4, "pla", 0.0, dens)
        c.ellipse(s / 2, s * 0.9, s * 0.35, s * 0.45, s * 0.5, "pla", 0.0, dens)
        c.rect(s * 0.2, s * 1.35, s * 0.6, s * 0.2, s * 0.5, "pla", dens)
    else:
        w, h = rng.uniform(60, 160), rng.uniform(40, 110)
        c = Canvas(w + 10, h + 10, pitch)
        c.rect(5, 5, w, h, 4, "pla", 1.0)  # solid lid and floor
        c.frame(5, 5, w, h, 3, rng.uniform(25, 50), "pla")
        c.rect(12, 12, w - 14, h - 14, 1.6, "glass")  # a circuit board
        for _ in range(int(rng.integers(3, 10))):
            c.rect(rng.uniform(14, w - 10), rng.uniform(14, h - 10), 5, 5, 1.5, "copper")
    return Item(c, name=f"{kind}_3d")


def hardware_bag(rng: np.random.Generator, pitch: float) -> Item:
    """A small bag of DIY hardware: screws with heads, nuts, washers and perhaps a spring. The benign twin of a
    bag of loose gun springs and pins (:func:`armscan.datasets.synth.threats.spring_pin_kit`), so it stays unlabelled."""
    w, h = rng.uniform(70, 130), rng.uniform(50, 90)
    c = Canvas(w + 10, h + 10, pitch)
    c.rect(5, 5, w, h, 0.15, "polyethylene")
    mat = str(rng.choice(["steel", "brass", "zinc_alloy"]))
    for _ in range(int(rng.integers(2, 7))):  # screws: shank and head
        x, y, L, a = rng.uniform(15, w - 5), rng.uniform(15, h - 5), rng.uniform(12, 40), rng.uniform(0, 2 * np.pi)
        x1, y1 = x + L * float(np.cos(a)), y + L * float(np.sin(a))
        c.rod((x, y), (min(max(x1, 6.0), w + 4), min(max(y1, 6.0), h + 4)), rng.uniform(1.5, 2.5), mat)
        c.ellipse(x, y, 4.5, 4.5, 2.5, mat)
    for _ in range(int(rng.integers(1, 6))):  # nuts and washers: rings
        x, y, r, t = rng.uniform(12, w - 2), rng.uniform(12, h - 2), rng.uniform(4, 8), rng.uniform(1.0, 5.0)
        c.ellipse(x, y, r, r, t, mat)
        c.ellipse(x, y, r * 0.5, r * 0.5, -t, mat)
    if rng.random() < 0.3:
        c.spring((12, 12), (12 + rng.uniform(20, w - 20), 12), rng.uniform(2, 5), rng.uniform(0.4, 0.8), 8)
    return Item(c, name="hardware_bag")


HARD_NEGATIVES = (toy_gun, toy_gun, glue_gun, drill, hair_dryer, kitchenware, shoe, rod_or_tube, spring_item,
                  printed_benign, printed_benign, hardware_bag)
