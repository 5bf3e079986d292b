"""The evaluation report: PR curves per class, parcel Pd-vs-FAR curves and a reliability diagram as PNG,
the metrics as JSON, and ``report.md`` with their tables (needs matplotlib, in the ``train`` extra).

    python -m armscan.training.report --model models/bundled/armscan-det.onnx --data runs/test --out runs/report
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from armscan.datasets.coco import Record
from armscan.training.metrics import FARS, PDS, Prediction, ScoreTable, pd_far_curve, pr_curves

FIGURES = {"pr": "pr_curves.png", "pd_far": "pd_far.png", "reliability": "reliability.png"}


def write_report(out: Path, metrics: dict[str, Any], records: list[Record], preds: list[Prediction],
                 classes: list[str], title: str = "armscan evaluation") -> Path:
    """Write ``metrics.json``, the three figures and ``report.md`` into ``out``; returns the report's path."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    _plot_pr(out / FIGURES["pr"], pr_curves(records, preds, classes), metrics["AP50_per_class"])
    _plot_pd_far(out / FIGURES["pd_far"], ScoreTable.build(records, preds, classes), records)
    _plot_reliability(out / FIGURES["reliability"], metrics["calibration"])
    path = out / "report.md"
    path.write_text(render_markdown(metrics, title))
    return path


def _figure(rows: int = 1, cols: int = 1, size: tuple[float, float] = (6.0, 4.5)) -> tuple[Any, Any]:
    from matplotlib.figure import Figure  # no pyplot: no global state, no display needed

    fig = Figure(figsize=size, layout="constrained")
    return fig, fig.subplots(rows, cols, squeeze=False)


def _plot_pr(path: Path, curves: dict[str, np.ndarray], ap50: dict[str, Any]) -> None:
    cols = 3
    rows = -(-len(curves) // cols)
    fig, axes = _figure(rows, cols, (4.0 * cols, 3.2 * rows))
    recall = np.linspace(0.0, 1.0, 101)
    for ax, (c, precision) in zip(axes.flat, curves.items(), strict=False):
        m = precision > -1
        ax.plot(recall[m], precision[m], color="tab:blue")
        ax.set(title=f"{c} (AP50 {ap50.get(c) if ap50.get(c) is not None else '-'})", xlim=(0, 1), ylim=(0, 1.02),
               xlabel="recall", ylabel="precision")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(curves):]:
        ax.set_axis_off()
    fig.suptitle("Precision-recall per class (IoU 0.5)")
    fig.savefig(path, dpi=90)


def _plot_pd_far(path: Path, table: ScoreTable, records: list[Record]) -> None:
    fig, axes = _figure(size=(7.0, 5.0))
    ax = axes[0, 0]
    neg = table.negatives(None)
    if len(neg) == 0:  # no false-alarm rate is defined: say so instead of drawing every curve at one edge
        ax.text(0.5, 0.5, "undefined: the data holds no clean scans,\nso there is no false-alarm rate",
                ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        ax.set_title("Parcel Pd vs false-alarm rate")
        fig.savefig(path, dpi=90)
        return
    lowest = 0.5 / len(neg)  # FAR 0 drawn at half the resolution of the clean scans
    curves: list[tuple[str, np.ndarray | None, str | None, str]] = [("all threats", None, None, "-")]
    for diff in sorted({str(r.meta["difficulty"]) for r in records if r.meta.get("difficulty")}):
        curves.append((diff, np.array([r.meta.get("difficulty") == diff for r in records]), None, "--"))
    for build in sorted(set(table.box_build.tolist()) - {"unknown"}):
        curves.append((f"{build} items", None, build, ":"))
    drawn = 0
    for label, images, build, style in curves:
        pos = table.positives(None, images, build)
        if len(pos) == 0:
            continue
        far, pd = pd_far_curve(pos, neg)
        ax.step(np.maximum(far, lowest), pd, where="post", linestyle=style, label=f"{label} ({len(pos)} scans)")
        drawn += 1
    if not drawn:  # clean scans only: no Pd is defined
        ax.text(0.5, 0.5, "undefined: the data holds no threat scans", ha="center", va="center", transform=ax.transAxes)
    for rate in FARS:
        ax.axvline(rate, color="grey", linewidth=0.8, alpha=0.6)
    ax.set(xscale="log", xlim=(lowest, 1.0), ylim=(0, 1.02), xlabel=f"parcel false-alarm rate ({len(neg)} clean scans)",
           ylabel="Pd (parcel alarm)", title="Parcel Pd vs false-alarm rate")
    ax.grid(alpha=0.3, which="both")
    if drawn:
        ax.legend(fontsize=8, loc="lower right")
    fig.savefig(path, dpi=90)


def _plot_reliability(path: Path, calib: dict[str, Any]) -> None:
    fig, axes = _figure(size=(5.0, 5.0))
    ax = axes[0, 0]
    ax.plot([0, 1], [0, 1], color="grey", linewidth=0.8)
    sets = [("T = 1", calib["reliability_before"], calib["ece_before_scaling"])]
    if calib["temperature"] != 1.0:
        sets.append((f"T = {calib['temperature']:g}", calib["reliability"], calib["ece"]))
    for label, rows, ece in sets:
        ax.plot([r["score"] for r in rows], [r["right"] for r in rows], marker="o", label=f"{label}: ECE {ece}")
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="mean score in bin", ylabel="share of detections that are right",
           title=f"Reliability ({calib['detections']} detections, IoU 0.5)")
    ax.legend(fontsize=8, loc="upper left")
    fig.savefig(path, dpi=90)


def _cell(value: Any) -> str:
    """A figure as the report prints it: a dash where it is undefined (None)."""
    return "—" if value is None else str(value)


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(v) for v in r) + " |" for r in rows]
    return "\n".join(lines)


def _op_keys() -> list[str]:
    return [f"pd@far{f:g}" for f in FARS] + [f"far@pd{p:g}" for p in PDS]


def _op_header() -> list[str]:
    return [f"Pd @ FAR {f:g}" for f in FARS] + [f"FAR @ Pd {p:g}" for p in PDS]


def _pd_rows(pd: dict[str, dict[str, Any]], ap: dict[str, Any] | None = None) -> list[list[Any]]:
    rows = []
    for name, row in pd.items():
        label = "**any threat (parcel alarm)**" if name == "any_threat" else name
        ap_cell = [] if ap is None else ["" if name == "any_threat" else ap.get(name)]
        rows.append([label, *ap_cell, row["n"], *[row[k] for k in _op_keys()]])
    return rows


def render_markdown(m: dict[str, Any], title: str) -> str:
    """The report's Markdown text from an ``armscan eval`` metrics dict."""
    cal = m["calibration"]
    parts = [f"# {title}", "",
             f"{m['images']} scans: {m['threat_scans']} with threats, {m['clean_scans']} clean. COCO mAP@[.5:.95] "
             f"**{_cell(m['mAP'])}**, mAP50 **{_cell(m['mAP50'])}** (pycocotools; undefined without threat boxes). "
             "Definitions: `armscan/training/metrics.py`; "
             "thresholds for every breakdown are set on all clean scans.", "",
             "## Pd at parcel false-alarm rates, and FAR at Pd", "",
             _table(["class", "AP50", "scans with it", *_op_header()], _pd_rows(m["pd"], m["AP50_per_class"])), "",
             f"![Pd vs FAR]({FIGURES['pd_far']})", "", f"![PR curves]({FIGURES['pr']})", ""]
    if "by_difficulty" in m:
        rows = [[d, v["images"], v["threat_scans"], v["mAP50"], *[v["pd"].get("any_threat", {}).get(k) for k in _op_keys()]]
                for d, v in m["by_difficulty"].items()]
        parts += ["## By difficulty (parcel alarm)", "",
                  _table(["difficulty", "scans", "with threats", "mAP50", *_op_header()], rows), ""]
    if "by_build" in m:
        rows = [[b, v["boxes"], v["images"], v["mAP50"], *[v["pd"].get("any_threat", {}).get(k) for k in _op_keys()]]
                for b, v in m["by_build"].items()]
        parts += ["## By build (parcel alarm on scans holding such an item)", "",
                  _table(["build", "boxes", "scans", "AP50 (other builds ignored)", *_op_header()], rows), ""]
        for b, v in m["by_build"].items():
            parts += [f"### {b}", "", _table(["class", "AP50", "scans with it", *_op_header()],
                                             _pd_rows(v["pd"], v["AP50_per_class"])), ""]
    if "by_difficulty" in m and "by_build" in m:
        rows = []
        for d, v in m["by_difficulty"].items():
            for b, w in v["by_build"].items():
                for name in ("any_threat", "firearm"):
                    if name in w["pd"]:
                        r = w["pd"][name]
                        rows.append([d, b, name.replace("_", " "), r["n"], *[r[k] for k in _op_keys()]])
        parts += ["## Difficulty × build", "", _table(["difficulty", "build", "row", "scans", *_op_header()], rows), ""]
    parts += ["## Calibration", "",
              f"Expected calibration error of the detection scores ({cal['detections']} detections, "
              f"{cal['right']} right at IoU 0.5, 10 bins): **{cal['ece_before_scaling']}** at temperature 1, "
              f"**{cal['ece']}** with the model's temperature {cal['temperature']:g}.", "",
              _table(["score bin", "detections", "mean score", "share right"],
                     [[f"{r['lo']:.1f}–{r['hi']:.1f}", r["n"], r["score"], r["right"]] for r in cal["reliability"]]),
              "", f"![Reliability]({FIGURES['reliability']})", ""]
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="exported .onnx or a training checkpoint")
    ap.add_argument("--data", type=Path, required=True, help="COCO folder, e.g. written by 'armscan synth'")
    ap.add_argument("--out", type=Path, required=True, help="folder for report.md, metrics.json and the PNGs")
    ap.add_argument("--no-progress", action="store_true")
    a = ap.parse_args(argv)
    from armscan.training.evaluate import evaluate

    m = evaluate(a.model, a.data, progress=not a.no_progress, report_dir=a.out)
    print(json.dumps({"report": str(a.out / "report.md"), "mAP50": m["mAP50"], "pd": m["pd"]["any_threat"],
                      "ece": m["calibration"]["ece"]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
