"""Photo families of long guns: bolt, lever, pump and break actions, sporting and military-style self-loaders,
and old (muzzle-loading) mechanisms.

Each is a generic outline with the one or two features that tell the mechanism apart in a photo: a bolt
handle, a lever loop, a pump fore-end, a hinge, a flush or a long box magazine, a lock with a ramrod.
The butt is at x = 0, the muzzle at x = L and the bore on y = 0; sizes come from broad ranges.
"""

from __future__ import annotations

import numpy as np

from armscan.datasets.photo.canvas import PhotoCanvas
from armscan.datasets.photo.parts import (
    BRASS,
    STEEL,
    Drawn,
    Mat,
    barrel,
    bent,
    box_magazine,
    finish,
    fore_end,
    frame_mat,
    furniture,
    pistol_grip,
    poly,
    rect,
    rod,
    scope,
    sporter_stock,
    trigger_guard,
)


def _layout(
    rng: np.random.Generator, length: tuple[float, float], barrel_frac: tuple[float, float], rec_len: tuple[float, float]
) -> tuple[float, float, float, float]:
    """(L, breech x, receiver rear x, receiver front x): the barrel's chamber sits 15-35 mm inside the receiver."""
    L = rng.uniform(*length)
    bx0 = L - L * rng.uniform(*barrel_frac)
    x_rf = bx0 + rng.uniform(15, 35)
    return L, bx0, x_rf - rng.uniform(*rec_len), x_rf


def bolt_action(rng: np.random.Generator, build: str, pitch: float = 0.8) -> Drawn:
    """A round receiver with a bolt handle and knob, a one-piece stock, often a scope; 900-1300 mm."""
    c = PhotoCanvas(1500, 400, pitch)
    L, bx0, x_rr, x_rf = _layout(rng, (900, 1300), (0.46, 0.58), (180, 230))
    rm, sm = frame_mat(rng, build), furniture(rng, build, 0.65)
    rr = rng.uniform(14, 17)
    bar = barrel(c, bx0, L, rng.uniform(7.5, 10))
    rod(c, rm, (x_rr + rr, 0), (x_rf - rr, 0), rr)
    st = rng.uniform(36, 44)
    sporter_stock(c, sm, rng, x_rr, rr, st, rng.random() < 0.6)
    fore_end(c, sm, x_rf - 5, L - (L - bx0) * rng.uniform(0.35, 0.6), 1, rng.uniform(26, 34), st)
    hx = x_rr + rng.uniform(25, 45)
    rod(c, STEEL, (hx, 0), (hx - rng.uniform(5, 20), rng.uniform(28, 40)), 4.0)  # bolt handle
    with c.style("steel"):
        c.ellipse(hx - 14, 38, 8, 8, st + 4, "steel")
    trigger_guard(c, STEEL if build == "metal" else rm, x_rr + 70, rr + 12, 45, 24)
    has_scope = rng.random() < 0.45
    if has_scope:
        scope(c, rng, x_rr - 10, x_rf + 40, -rr)
    return finish(c, "bolt_action", build, bar, {"stock": sm.look, "scope": has_scope})


def lever_action(rng: np.random.Generator, build: str, pitch: float = 0.8) -> Drawn:
    """A flat receiver, a lever loop under a straight wrist, a tube magazine under the barrel; 850-1100 mm."""
    c = PhotoCanvas(1400, 400, pitch)
    L, bx0, x_rr, x_rf = _layout(rng, (850, 1100), (0.45, 0.55), (150, 190))
    rm = Mat("brass", 1.0, "brass") if build == "metal" and rng.random() < 0.25 else frame_mat(rng, build)
    sm = furniture(rng, build, 0.85)
    br, tr = rng.uniform(8, 10), rng.uniform(6, 8)
    bar = barrel(c, bx0, L, br)
    rod(c, STEEL, (x_rf, br + tr), (bx0 + (L - bx0) * rng.uniform(0.8, 0.97), br + tr), tr)  # tube magazine
    rt, rb = rng.uniform(16, 20), rng.uniform(30, 38)
    poly(
        c,
        rm,
        [(x_rr, -rt), (x_rf, -rt + 2), (x_rf, rb - 6), (x_rf - 10, rb), (x_rr + 10, rb), (x_rr, rb - 12)],
        rng.uniform(28, 32),
    )
    st = rng.uniform(36, 42)
    wrist = sporter_stock(c, sm, rng, x_rr, rb - 14, st, pistol=False)
    fl = rng.uniform(160, 250)
    poly(c, sm, [(x_rf, -br * 0.3), (x_rf + fl, -br * 0.3), (x_rf + fl + 6, br + 2 * tr - 2), (x_rf, br + 2 * tr + 2)], st)
    rect(c, STEEL, x_rf + fl + 14, -br - 1, 8, br * 2 + 2 * tr + 2, st - 4)  # barrel band
    loop = rng.uniform(70, 100)
    bent(
        c,
        STEEL if rm.mat != "brass" else rm,
        [
            (x_rr + 40, rb - 2),
            (x_rr + 38, rb + 20),
            (x_rr - 10, wrist + 8),
            (x_rr - loop, wrist + 22),
            (x_rr - loop + 10, wrist + 44),
            (x_rr - 6, wrist + 34),
            (x_rr + 30, rb + 26),
        ],
        3.5,
    )  # the lever loop
    poly(c, STEEL, [(x_rr - 2, -rt + 4), (x_rr + 8, -rt + 2), (x_rr - 8, -rt - 12), (x_rr - 16, -rt - 10)], 20)  # hammer
    rect(c, STEEL, L - 30, -br - 6, 6, 7, br)  # front sight
    return finish(c, "lever_action", build, bar, {"receiver": rm.look, "stock": sm.look, "loop_mm": round(loop, 1)})


def pump_action(rng: np.random.Generator, build: str, pitch: float = 0.8) -> Drawn:
    """A tall receiver, a long barrel over a tube magazine and a ribbed pump fore-end clear of the receiver."""
    c = PhotoCanvas(1500, 400, pitch)
    L, bx0, x_rr, x_rf = _layout(rng, (650, 1250), (0.48, 0.6), (180, 230))
    rm, sm = frame_mat(rng, build), furniture(rng, build, 0.45)
    br, tr = rng.uniform(10, 12), rng.uniform(10, 12)
    bar = barrel(c, bx0, L, br)
    if rng.random() < 0.5:  # ventilated rib
        rect(c, STEEL, x_rf, -br - 5, L - x_rf - 6, 5, br)
    rod(c, STEEL, (x_rf, br + tr), (x_rf + (L - x_rf) * rng.uniform(0.55, 0.85), br + tr), tr)  # tube magazine
    rt, rb = rng.uniform(20, 26), rng.uniform(40, 50)
    rect(c, rm, x_rr, -rt, x_rf - x_rr, rt + rb, rng.uniform(30, 36))
    st = rng.uniform(36, 44)
    if rng.random() < 0.25:  # pistol grip and straight butt
        pistol_grip(c, sm, x_rr - 5, rb - 6, 34, 100, 28, st)
        poly(c, sm, [(0, -rt + 6), (x_rr + 1, -rt + 6), (x_rr + 1, rb - 8), (0, rng.uniform(110, 140))], st)
    else:
        sporter_stock(c, sm, rng, x_rr, rb - 10, st, pistol=rng.random() < 0.5)
    gap = rng.uniform(25, 90)
    pl = rng.uniform(170, 260)
    pm = sm if sm.look != "wood" or rng.random() < 0.7 else Mat("nylon", 1.0, "polymer")
    poly(
        c,
        pm,
        [
            (x_rf + gap, br * 0.2),
            (x_rf + gap + pl, br * 0.2),
            (x_rf + gap + pl + 4, br + 2 * tr + 4),
            (x_rf + gap + pl - 4, br + 2 * tr + 10),
            (x_rf + gap + 4, br + 2 * tr + 10),
            (x_rf + gap - 2, br + 2 * tr),
        ],
        rng.uniform(46, 56),
    )
    for k in range(int(rng.integers(5, 10))):  # grip grooves
        rect(c, pm, x_rf + gap + 15 + k * (pl - 30) / 9, br + 2, 3, 2 * tr + 2, -1.5)
    trigger_guard(c, rm, x_rr + 30, rb, 45, 22, 3)
    with c.style("brass"):
        c.ellipse(L - 6, -br - 2, 2.2, 2.2, br, "brass")  # bead sight
    return finish(c, "pump_action", build, bar, {"fore_end_gap_mm": round(gap, 1), "stock": sm.look})


def break_action(rng: np.random.Generator, build: str, pitch: float = 0.8) -> Drawn:
    """A short action block with a hinge knuckle, one or two long barrels and a short fore-end."""
    c = PhotoCanvas(1500, 400, pitch)
    L, bx0, x_rr, x_rf = _layout(rng, (900, 1250), (0.58, 0.68), (70, 105))
    variant = str(rng.choice(["single", "over_under", "side_by_side"], p=[0.35, 0.4, 0.25]))
    am = STEEL if build == "metal" else frame_mat(rng, build)
    sm = furniture(rng, build, 0.85)
    br = rng.uniform(9, 11.5)
    ys = [0.0, 2 * br + 1] if variant == "over_under" else [0.0]
    bar = barrel(c, bx0, L, br)
    if variant == "over_under":
        barrel(c, bx0, L - 2, br, ys[1])
    elif variant == "side_by_side":
        rect(c, STEEL, x_rf, -br - 3, L - x_rf - 8, 4, 2 * br)  # rib between the tubes
    bottom = ys[-1] + br
    rect(c, am, x_rr, -br - 6, x_rf - x_rr, bottom + br + 14, rng.uniform(36, 42))
    with c.style(am.look):
        c.ellipse(x_rf - 9, bottom + 1, 9, 9, 44, am.mat, density_scale=am.dens)  # hinge knuckle
    poly(c, STEEL, [(x_rr - 30, -br - 4), (x_rr + 6, -br - 7), (x_rr + 10, -br - 2), (x_rr - 28, -br)], 30)  # top lever
    st = rng.uniform(36, 42)
    sporter_stock(c, sm, rng, x_rr, bottom + 6, st, pistol=rng.random() < 0.55)
    fore_end(c, sm, x_rf + 1, x_rf + rng.uniform(150, 230), bottom - br * 0.6, rng.uniform(20, 28), st + 2)
    trigger_guard(c, am, x_rr + 10, bottom + 8, 40, 22, 3)
    return finish(c, "break_action", build, bar, {"barrels": variant, "stock": sm.look})


def semi_auto_rifle_sporting(rng: np.random.Generator, build: str, pitch: float = 0.8) -> Drawn:
    """A slab receiver with a small charging handle, a short flush magazine and a one-piece stock."""
    c = PhotoCanvas(1500, 400, pitch)
    L, bx0, x_rr, x_rf = _layout(rng, (950, 1200), (0.42, 0.52), (180, 230))
    rm, sm = frame_mat(rng, build), furniture(rng, build, 0.6)
    bar = barrel(c, bx0, L, rng.uniform(7, 9))
    rt, rb = rng.uniform(16, 20), rng.uniform(18, 24)
    rect(c, rm, x_rr, -rt, x_rf - x_rr, rt + rb, rng.uniform(30, 34))
    rect(c, rm, x_rr + 60, -rt + 4, 55, rt - 2, -1.5)  # ejection port
    with c.style("steel"):
        c.ellipse(x_rr + 130, -2, 5, 5, 40, "steel")  # charging handle knob
    st = rng.uniform(36, 44)
    sporter_stock(c, sm, rng, x_rr, rb - 2, st, pistol=rng.random() < 0.7)
    fore_end(c, sm, x_rf - 2, x_rf + (L - x_rf) * rng.uniform(0.45, 0.65), 1, rng.uniform(28, 36), st)
    box_magazine(c, STEEL if build == "metal" else rm, x_rf - 90, rb + 10, 50, rng.uniform(20, 45), 0, st - 6)
    trigger_guard(c, STEEL if build == "metal" else rm, x_rr + 40, rb + 10, 44, 22)
    has_scope = rng.random() < 0.4
    if has_scope:
        scope(c, rng, x_rr - 10, x_rf + 30, -rt)
    return finish(c, "semi_auto_rifle_sporting", build, bar, {"stock": sm.look, "scope": has_scope})


def semi_auto_rifle_military(rng: np.random.Generator, build: str, pitch: float = 0.8) -> Drawn:
    """A pistol grip, a long (often curved) box magazine, a handguard, a muzzle device; 750-1050 mm."""
    c = PhotoCanvas(1400, 450, pitch)
    L0, bx0, x_rr, x_rf = _layout(rng, (720, 1000), (0.38, 0.48), (190, 240))
    rm = frame_mat(rng, build)
    pm = furniture(rng, build, 0.15)
    bar = barrel(c, bx0, L0, rng.uniform(6.5, 8.5))
    fh = rng.uniform(45, 80)
    rod(c, STEEL, (L0 + 6, 0), (L0 + fh - 11, 0), 11)  # muzzle device
    rt, rb = rng.uniform(18, 24), rng.uniform(24, 30)
    rect(c, rm, x_rr, -rt, x_rf - x_rr, rt + rb, rng.uniform(30, 36))
    if rng.random() < 0.5:  # top rail with slots
        rect(c, rm, x_rr + 10, -rt - 8, x_rf - x_rr - 10, 8, 24)
        for k in range(int((x_rf - x_rr - 20) // 10)):
            rect(c, rm, x_rr + 15 + 10 * k, -rt - 8, 4, 6, -1.2)
    hl = (L0 - x_rf) * rng.uniform(0.45, 0.75)
    hr = rng.uniform(17, 24)
    rect(c, pm, x_rf - 2, -hr, hl, 2 * hr, rng.uniform(44, 54))  # handguard
    for k in range(int(rng.integers(3, 8))):
        rect(c, pm, x_rf + 12 + k * (hl - 24) / 7, -hr * 0.5, 6, hr, -1.5)  # vents
    poly(
        c,
        STEEL,
        [
            (x_rf + hl + 20, -8),
            (x_rf + hl + 30, -8),
            (x_rf + hl + 28, -rng.uniform(45, 60)),
            (x_rf + hl + 22, -rng.uniform(45, 60)),
        ],
        14,
    )  # front sight post
    st = rng.uniform(38, 46)
    if rng.random() < 0.5:  # fixed butt in line with the bore
        poly(c, pm, [(0, -rt + 6), (x_rr + 1, -rt + 6), (x_rr + 1, rb - 2), (0, rng.uniform(100, 130))], st)
    else:  # telescoping tube and butt
        rod(c, STEEL, (40, -4), (x_rr + 5, -4), rng.uniform(14, 17))
        poly(c, pm, [(0, -rt), (70, -rt), (80, 40), (60, rng.uniform(85, 110)), (0, rng.uniform(95, 120))], st)
    gx = x_rr + rng.uniform(10, 25)
    pistol_grip(c, pm, gx, rb - 2, 34, rng.uniform(90, 115), rng.uniform(22, 34), st + 2)
    box_magazine(
        c,
        STEEL if build == "metal" and rng.random() < 0.6 else Mat("nylon", 1.0, "polymer"),
        gx + rng.uniform(80, 110),
        rb - 4,
        rng.uniform(30, 38),
        rng.uniform(120, 240),
        rng.uniform(0, 60),
        st - 4,
    )
    trigger_guard(c, rm, gx + 38, rb, 42, 24, 3)
    return finish(c, "semi_auto_rifle_military", build, bar, {"muzzle_device_mm": round(fh, 1)})


def old_mechanism(rng: np.random.Generator, build: str, pitch: float = 0.8) -> Drawn:
    """A long slim stock with a full-length fore-end, a lock plate with hammer and frizzen, a ramrod."""
    c = PhotoCanvas(1500, 400, pitch)
    long_gun = rng.random() < 0.8
    if long_gun:
        L, bx0, x_rr, x_rf = _layout(rng, (950, 1300), (0.62, 0.72), (60, 90))
    else:
        L, bx0, x_rr, x_rf = _layout(rng, (280, 450), (0.5, 0.6), (40, 60))
    sm = Mat("wood", 1.0, "wood") if build != "printed" else furniture(rng, "printed")
    fit = BRASS if rng.random() < 0.6 else STEEL
    br = rng.uniform(8, 11) if long_gun else rng.uniform(7, 9)
    bar = barrel(c, bx0, L, br)
    st = rng.uniform(32, 38)
    fe_end = L - rng.uniform(40, 120 if long_gun else 40)
    poly(c, sm, [(x_rf - 20, 1), (fe_end, 1), (fe_end + 3, br + 12), (x_rf - 20, br + 16)], st)  # full-length fore-end
    rod(
        c,
        STEEL if rng.random() < 0.5 else Mat("wood", 1.0, "wood"),
        (x_rr + 80, br + 16),
        (fe_end + 10, br + 16),
        rng.uniform(3, 4.2) if long_gun else rng.uniform(2, 2.8),
    )  # ramrod
    for k in range(2 if long_gun else 1):
        rect(c, fit, fe_end - 40 - k * (fe_end - x_rf) * 0.4, -br - 1, 9, 2 * br + 19, st + 2)  # barrel bands
    if long_gun:
        butt_h = rng.uniform(90, 120)
        poly(
            c,
            sm,
            [(0, 6), (x_rr - 150, 10), (x_rf - 10, br - 2), (x_rf - 10, br + 16), (x_rr - 70, br + 30), (0, 6 + butt_h)],
            st,
        )
        rect(c, fit, -5, 6, 6, butt_h, st - 2)  # butt plate
    else:  # a curved pistol grip ending in a cap
        gh = rng.uniform(90, 120)
        poly(
            c,
            sm,
            [
                (x_rf - 10, br - 2),
                (x_rf - 10, br + 14),
                (x_rr - 20, br + 30),
                (x_rr - 70, gh),
                (x_rr - 100, gh - 10),
                (x_rr - 80, br + 4),
                (x_rr - 40, -2),
            ],
            st,
        )
    ks = 1.0 if long_gun else 0.6  # the lock's scale
    lx = x_rr - 20 * ks
    poly(c, STEEL, [(lx, br - 2), (lx + 110 * ks, br - 4), (lx + 120 * ks, br + 8), (lx + 10 * ks, br + 14)], st + 1)  # lock
    flint = rng.random() < 0.6
    poly(
        c,
        STEEL,
        [
            (lx + 20 * ks, br),
            (lx + 30 * ks, br - 2),
            (lx + 24 * ks, -br - 14 * ks),
            (lx + 34 * ks, -br - 22 * ks),
            (lx + 20 * ks, -br - 20 * ks),
            (lx + 12 * ks, -br - 4 * ks),
        ],
        st + 3,
    )  # hammer (cock)
    if flint:
        poly(
            c,
            STEEL,
            [(lx + 60 * ks, br - 2), (lx + 68 * ks, br - 2), (lx + 66 * ks, -br - 18 * ks), (lx + 58 * ks, -br - 14 * ks)],
            st + 3,
        )  # frizzen
    trigger_guard(c, fit, lx + 30 * ks, br + 22, 55 * ks, 20, 2.8)
    return finish(
        c, "old_mechanism", build, bar, {"ignition": "flint" if flint else "percussion", "form": "long" if long_gun else "pistol"}
    )
