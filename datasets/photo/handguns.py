"""Photo families held in one or two hands: semi-automatic pistol, revolver and submachine gun.

Generic outlines only (a slide over a frame and a grip; a cylinder in a frame; a short receiver with a
long magazine), sizes from broad ranges. The bore lies on y = 0 and the muzzle points to +x.
"""

from __future__ import annotations

import numpy as np

from armscan.datasets.photo.canvas import PhotoCanvas
from armscan.datasets.photo.parts import (
    STEEL,
    Drawn,
    Mat,
    barrel,
    bent,
    box_magazine,
    finish,
    frame_mat,
    furniture,
    hidden_cartridges,
    pistol_grip,
    poly,
    rect,
    rod,
    trigger_guard,
)


def semi_auto_pistol(rng: np.random.Generator, build: str, pitch: float = 0.8) -> Drawn:
    """A slide over a frame with an angled grip; overall length 150-230 mm."""
    return pistol_drawing(rng, build, pitch, ("barrel", "slide", "frame"))


def pistol_drawing(rng: np.random.Generator, build: str, pitch: float, parts: tuple[str, ...]) -> Drawn:
    """The pistol's ``parts`` (any of barrel, slide, frame): all three, or one alone as a loose part."""
    c = PhotoCanvas(300, 250, pitch)
    L = rng.uniform(150, 230)
    sh = L * rng.uniform(0.15, 0.19)  # slide height
    prot = rng.uniform(0, 6) if rng.random() < 0.5 else 0.0  # barrel beyond the slide
    ls = L - prot
    fm = frame_mat(rng, build)
    sm = (
        Mat("pla", fm.dens, "printed2" if rng.random() < 0.4 else "printed")
        if build == "printed" and rng.random() < 0.6
        else STEEL
    )
    st = rng.uniform(20, 27) if sm is STEEL else rng.uniform(24, 32)
    top, bot = -sh * 0.45, sh * 0.55  # slide edges around the bore
    br = rng.uniform(5, 7)
    bx0 = L * rng.uniform(0.42, 0.5)
    hood = L * rng.uniform(0.16, 0.22)
    bar = None
    if "barrel" in parts:
        bar = barrel(c, bx0, L, br)
        rect(c, STEEL, bx0 + 2, top + 2, hood, sh * 0.42, st + 0.5, tag="barrel")  # chamber hood in the port
    if "slide" in parts:
        rect(c, sm, 0, top, ls, sh, st)
        for k in range(int(rng.integers(4, 9))):  # rear serrations
            rect(c, sm, 6 + k * 3.2, top + 3, 1.4, sh - 6, -1.2)
        if "barrel" not in parts:  # an empty ejection port
            rect(c, sm, bx0 + 2, top + 2, hood, sh * 0.42, -3)
        rect(c, sm, ls - 9, top - 3.5, 5, 4, st * 0.3)  # front sight
        rect(c, sm, 4, top - 3.5, 8, 4, st * 0.3)  # rear sight
        if rng.random() < 0.3 and build == "metal":  # external hammer
            poly(c, STEEL, [(-3, top + 4), (4, top + 2), (6, top + 12), (-1, top + 12)], st - 1)
    gw = rng.uniform(28, 36) + (6 if build == "printed" else 0)
    gh = L * rng.uniform(0.45, 0.55)
    if "frame" in parts:  # dust cover and an angled grip at the rear
        slant = gh * np.tan(np.deg2rad(rng.uniform(6, 14) if build == "printed" else rng.uniform(12, 22)))
        gx = slant + rng.uniform(-2, 8)
        ft = st + rng.uniform(-2, 4)
        dc = rng.uniform(8, 14)
        poly(
            c,
            fm,
            [
                (gx - 10, bot - 1),
                (ls * rng.uniform(0.86, 0.97), bot - 1),
                (ls * 0.9, bot + dc),
                (gx + gw + 40, bot + dc),
                (gx + gw + 6, bot + dc + 3),
                (gx + gw, bot + 8),
                (gx - 4, bot + 8),
            ],
            ft,
        )
        pistol_grip(c, fm, gx, bot + 6, gw, gh - 6, slant, ft)
        if build == "metal":  # grip panels
            poly(
                c,
                furniture(rng, build, wood_p=0.5),
                [
                    (gx + 4, bot + 14),
                    (gx + gw - 5, bot + 14),
                    (gx + gw - slant * 0.9 - 5, bot + gh - 10),
                    (gx - slant * 0.9 + 4, bot + gh - 10),
                ],
                ft + 1.5,
            )
        rect(c, fm, gx - slant - 2, bot + gh - 1, gw + 4, 5, ft + 0.5)  # magazine base plate
        trigger_guard(c, fm, gx + gw + 3, bot + dc, rng.uniform(30, 38), rng.uniform(18, 24), 2.5 if build == "metal" else 4)
        hidden_cartridges(c, gx - slant * 0.3 + 4, bot + 14, int(rng.integers(0, 8)), 9, 9.0)
    if len(parts) == 3:
        with c.style(tag="hidden"):
            c.spring((bx0 + 10, bot - 2), (L - 12, bot - 2), 3, 0.6, int(rng.integers(8, 14)))
    label = "semi_auto_pistol" if len(parts) == 3 else "part_only"
    part = None if len(parts) == 3 else {"barrel": "barrel", "slide": "slide", "frame": "frame_receiver"}[parts[0]]
    return finish(c, label, build, bar, {"slide": sm.look, "frame": fm.look, "grip_height_mm": round(gh, 1)}, part)


def revolver(rng: np.random.Generator, build: str, pitch: float = 0.8) -> Drawn:
    """A cylinder in a frame, a barrel with an under-lug, a hammer and a curved grip; 180-350 mm."""
    c = PhotoCanvas(400, 250, pitch)
    L = rng.uniform(180, 350)
    cl, ch = rng.uniform(38, 48), rng.uniform(36, 46)
    rear = rng.uniform(55, 75)
    xc = rear  # cylinder's rear face
    bl = L - rear - cl - 4
    fm = frame_mat(rng, build) if build != "metal" else STEEL
    ft = rng.uniform(28, 34)
    cy = ch * 0.22  # cylinder axis below the bore
    ctop, cbot = cy - ch / 2, cy + ch / 2
    poly(
        c,
        fm,
        [
            (xc - 14, ctop - 5),
            (xc + cl + 8, ctop - 5),
            (xc + cl + 8, cbot + 2),
            (xc + cl - 6, cbot + 10),
            (xc - 8, cbot + 10),
            (xc - 20, cbot + 4),
        ],
        ft,
    )
    cm = STEEL if build != "printed" or rng.random() < 0.5 else fm
    rect(c, cm, xc, ctop, cl, ch, ft + rng.uniform(6, 10))  # cylinder
    for k in range(int(rng.integers(2, 4))):  # flutes
        rect(c, cm, xc + cl * 0.18, ctop + ch * (0.2 + 0.28 * k), cl * 0.6, ch * 0.1, -1.5)
    br = rng.uniform(8, 11)
    bar = barrel(c, xc + cl + 2, L, br)
    lug = rng.random() < 0.6
    if lug:  # ejector-rod lug under the barrel
        ll = bl * (1.0 if rng.random() < 0.4 else rng.uniform(0.4, 0.7))
        rect(c, fm if fm.mat != "aluminium" else STEEL, xc + cl + 4, br - 2, ll - 2, rng.uniform(7, 11), 2 * br - 1)
    rect(c, STEEL, L - 12, -br - 5, 8, 6, br)  # front sight
    rect(c, fm, xc - 10, ctop - 9, cl + 16, 6, ft - 4)  # top strap and rear sight
    poly(
        c,
        STEEL,
        [(xc - 16, ctop - 2), (xc - 10, ctop + 10), (xc - 26, ctop + 6), (xc - 40, ctop - 8), (xc - 34, ctop - 9)],
        ft - 6,
    )  # hammer spur
    gm = furniture(rng, build, wood_p=0.6) if build == "metal" else fm
    gh, slant = rng.uniform(75, 105), rng.uniform(18, 34)
    poly(
        c,
        gm,
        [
            (xc - 30, cbot - 2),
            (xc - 4, cbot + 4),
            (xc - 6 - slant * 0.6, cbot + gh * 0.7),
            (xc - 8 - slant, cbot + gh),
            (xc - 30 - slant, cbot + gh + 4),
            (xc - 42 - slant * 0.9, cbot + gh * 0.7),
            (xc - 40, cbot + 14),
        ],
        ft + 1,
    )
    trigger_guard(c, fm, xc - 4, cbot + 8, rng.uniform(24, 30), rng.uniform(18, 22), 2.6)
    hidden_cartridges(c, xc + 2, ctop + 8, 3, 11, 9.5)
    return finish(c, "revolver", build, bar, {"cylinder_mm": round(cl, 1), "grip": gm.look, "under_lug": lug})


def submachine_gun(rng: np.random.Generator, build: str, pitch: float = 0.8) -> Drawn:
    """A short receiver, pistol grip, long straight magazine, short barrel and a wire, folded or no stock."""
    c = PhotoCanvas(800, 400, pitch)
    L = rng.uniform(350, 650)
    stock = str(rng.choice(["wire", "folded", "none"], p=[0.45, 0.3, 0.25]))
    sl = L * rng.uniform(0.3, 0.42) if stock == "wire" else 0.0
    rl = (L - sl) * rng.uniform(0.62, 0.78)
    x_rr, x_rf = sl, sl + rl
    fm = frame_mat(rng, build)
    tube = rng.random() < 0.45 and build != "printed"
    rh = rng.uniform(20, 24) if tube else rng.uniform(26, 34)
    rt = rng.uniform(26, 34)
    if tube:
        rod(c, fm, (x_rr + rh, 0), (x_rf - rh, 0), rh)
        rect(c, fm, x_rr + rl * 0.15, rh - 4, rl * 0.6, 14, 2 * rh - 2)  # lower frame
        bottom = rh + 10
    else:
        rect(c, fm, x_rr, -rh * 0.45, rl, rh * 1.45, rt)
        bottom = rh
    rect(c, fm, x_rr + rl * 0.45, -rh * 0.2, rl * 0.2, rh * 0.25, -1.5)  # ejection port
    bx0 = x_rf - rl * rng.uniform(0.3, 0.45)
    br = rng.uniform(6, 8.5)
    bar = barrel(c, bx0, L, br)
    if rng.random() < 0.35 and L - x_rf > 60:  # perforated shroud over the barrel
        sr = br + rng.uniform(4, 7)
        rod(c, STEEL, (x_rf - 4, 0), (L - rng.uniform(8, 18), 0), sr)
        for k in range(int((L - x_rf - 30) // 16)):
            with c.style("steel"):
                c.ellipse(x_rf + 12 + 16 * k, 0, 4, 4, -1.5, "steel")
    gw, gh = rng.uniform(28, 34), rng.uniform(85, 110)
    gx = x_rr + rl * rng.uniform(0.18, 0.3)
    pistol_grip(c, fm if build != "metal" else furniture(rng, "polymer"), gx, bottom - 2, gw, gh, gh * 0.25, rt + 2)
    mw, ml = rng.uniform(26, 34), rng.uniform(150, 260)
    mm = STEEL if build == "metal" else Mat("nylon", 1.0, "polymer") if build == "polymer" else fm
    in_grip = rng.random() < 0.3
    if in_grip:
        box_magazine(c, mm, gx + 2 - gh * 0.25, bottom + gh - 40, gw - 4, ml - gh + 60, 0, rt - 2)
    else:
        box_magazine(c, mm, gx + gw + rng.uniform(30, 60), bottom - 4, mw, ml, rng.uniform(0, 12), rt - 2)
    trigger_guard(c, fm, gx + gw + 2, bottom, rng.uniform(26, 32), rng.uniform(18, 22), 2.6 if build == "metal" else 4)
    rect(c, STEEL, x_rf - 30, -rh * 0.45 - 8, 6, 9, rt * 0.4)  # front sight
    wire = Mat("steel", 1.0, "steel")
    if stock == "wire":
        h0 = rng.uniform(60, 90)
        bent(c, wire, [(x_rr + 10, -rh * 0.3), (0, -rh * 0.3), (0, h0), (x_rr * 0.5, h0 * 0.7), (x_rr + 10, bottom)], 3.5)
        rect(c, Mat("polyethylene", 1.0, "rubber"), -6, -rh * 0.3 - 2, 8, h0 + 4, 10)
    elif stock == "folded":
        fl = rl * rng.uniform(0.7, 0.95)
        bent(
            c,
            wire,
            [(x_rr + 6, -rh * 0.45 - 4), (x_rr + fl, -rh * 0.45 - 4), (x_rr + fl, -rh * 0.45 - 14), (x_rr + 6, -rh * 0.45 - 14)],
            3.0,
        )
    hidden_cartridges(c, gx + gw + 40, bottom + 10, int(rng.integers(0, 10)), 10, 9.0)
    return finish(
        c, "submachine_gun", build, bar, {"stock": stock, "receiver": "tube" if tube else "box", "magazine_in_grip": in_grip}
    )
