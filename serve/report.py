"""Batch outputs rebuilt from the ledger: parcel rows, a CSV and a self-contained HTML report."""

from __future__ import annotations

import base64
import csv
import html
import io
import json
from pathlib import Path
from typing import Any

CSV_FIELDS = ("key", "parcel_id", "sender", "consignee", "timestamp", "status", "decision", "classes", "max_score",
              "flags", "error", "model_version", "latency_ms")


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def _alarm_classes(row: dict[str, Any]) -> list[str]:
    return sorted({d["cls"] for d in row.get("detections", []) if d.get("alarm")})


def parcel_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per parcel: alarm if any of its scans alarms, else uncertain if any is; error if none could be screened.

    An error row that carries a decision (screened, but its thumbnail or threat report could not be written) counts
    with its decision, classes and flags: its parcel alarms, and its parts reach kit matching (``armscan kits``).
    """
    parcels: dict[str, dict[str, Any]] = {}
    for r in rows:
        p = parcels.setdefault(r.get("parcel_id") or r["key"], {
            "parcel_id": r.get("parcel_id") or r["key"], "sender": r.get("sender", ""),
            "consignee": r.get("consignee", ""), "timestamp": r.get("timestamp", ""), "scans": [], "errors": 0,
            "classes": set(), "flags": set(), "decision": "clear"})
        p["scans"].append(r["key"])
        if r["status"] != "ok":
            p["errors"] += 1
            if not r.get("decision"):  # not screened: nothing to merge
                continue
        p["screened"] = True
        p["classes"] |= set(_alarm_classes(r))
        p["flags"] |= {k for k, v in r.get("flags", {}).items() if v}
        if r.get("decision") == "alarm":
            p["decision"] = "alarm"
        elif r.get("decision") == "uncertain" and p["decision"] == "clear":
            p["decision"] = "uncertain"
    out = []
    for p in parcels.values():
        if not p.pop("screened", False):
            p["decision"] = "error"
        out.append({**p, "classes": sorted(p["classes"]), "flags": sorted(p["flags"])})
    return out


def _csv(rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_FIELDS, extrasaction="ignore")
    w.writeheader()
    for r in rows:
        scores = [d["score"] for d in r.get("detections", [])]
        w.writerow({**r, "classes": ";".join(_alarm_classes(r)), "max_score": max(scores) if scores else "",
                    "flags": ";".join(k for k, v in r.get("flags", {}).items() if v)})
    return buf.getvalue()


def _cards(out: Path, rows: list[dict[str, Any]], decision: str) -> str:
    e = html.escape
    cards = []
    for r in rows:
        if r.get("decision") != decision:
            continue
        thumb = out / r.get("thumb", "")
        img = (f'<img alt="overlay" src="data:image/jpeg;base64,{base64.b64encode(thumb.read_bytes()).decode()}">'
               if r.get("thumb") and thumb.is_file() else "<p>(no thumbnail)</p>")
        dets = "".join(f"<li>{e(d['cls'])}{'/' + e(d['type']) if d.get('type') else ''} [{e(d['build'])}] "
                       f"{d['score']:.2f}</li>" for d in r["detections"] if d.get("level", "alarm") == decision)
        cards.append(f"<div class=card>{img}<h3>{e(r['key'])}</h3><p>parcel {e(r.get('parcel_id', ''))} · "
                     f"consignee {e(r.get('consignee', '') or '—')}</p><ul>{dets}</ul></div>")
    return "".join(cards) or "<p>none</p>"


def _html(out: Path, rows: list[dict[str, Any]], parcels: list[dict[str, Any]], counts: dict[str, int]) -> str:
    e = html.escape
    errors = "".join(f"<tr><td>{e(r['key'])}</td><td>{e(r.get('decision') or 'not screened')}</td>"
                     f"<td>{e(str(r.get('error')))}</td></tr>" for r in rows if r["status"] != "ok")
    alarmed = "".join(f"<tr><td>{e(p['parcel_id'])}</td><td>{e(p['consignee'])}</td><td>{e(', '.join(p['classes']))}</td>"
                      f"<td>{len(p['scans'])}</td></tr>" for p in parcels if p["decision"] == "alarm")
    version = next((r.get("model_version") for r in rows if r.get("model_version")), "?")
    model = next((r.get("model_name") for r in rows if r.get("model_name")), "?")
    return f"""<!doctype html><html lang=en><meta charset=utf-8><title>armscan batch report</title>
<style>body{{font-family:sans-serif;margin:2em}} .n{{font-size:2em;font-weight:bold}} .alarm{{color:#c00}}
.grid{{display:flex;flex-wrap:wrap;gap:1em}} .card{{border:1px solid #ccc;padding:.5em;width:380px}}
.card img{{max-width:100%}} .card h3{{font-size:1em;overflow-wrap:anywhere}}
td,th{{padding:.2em .6em;text-align:left}} table{{border-collapse:collapse}}
tr:nth-child(even){{background:#f4f4f4}}</style>
<h1>armscan batch report</h1><p>model {e(str(model))} {e(str(version))}</p>
<table><tr><th>scans</th><th>alarm</th><th>uncertain</th><th>clear</th><th>errors</th><th>parcels</th>
<th>parcels alarmed</th></tr>
<tr><td class=n>{counts['scans']}</td><td class="n alarm">{counts['alarm']}</td><td class=n>{counts['uncertain']}</td>
<td class=n>{counts['clear']}</td>
<td class=n>{counts['error']}</td><td class=n>{counts['parcels']}</td>
<td class="n alarm">{counts['parcels_alarm']}</td></tr></table>
<h2>Alarmed parcels</h2><table><tr><th>parcel</th><th>consignee</th><th>classes</th><th>scans</th></tr>{alarmed}</table>
<h2>Alarms</h2><div class=grid>{_cards(out, rows, "alarm")}</div>
<h2>Uncertain: an officer should look</h2><div class=grid>{_cards(out, rows, "uncertain")}</div>
<h2>Errors</h2><p>Inputs that could not be screened, and scans that were screened (their decision counts for
their parcel, above) but whose thumbnail or threat report could not be written.</p>
<table><tr><th>input</th><th>decision</th><th>reason</th></tr>{errors}</table></html>
"""


def write_reports(out: Path, rows: list[dict[str, Any]]) -> dict[str, int]:
    """Write parcels.jsonl, results.csv and report.html (atomically); return the summary counts."""
    parcels = parcel_rows(rows)
    ok = [r for r in rows if r["status"] == "ok"]  # an error row may carry a result, but counts as an error only
    counts = {"scans": len(rows), "alarm": sum(r.get("decision") == "alarm" for r in ok),
              "uncertain": sum(r.get("decision") == "uncertain" for r in ok),
              "clear": sum(r.get("decision") == "clear" for r in ok), "error": len(rows) - len(ok),
              "parcels": len(parcels), "parcels_alarm": sum(p["decision"] == "alarm" for p in parcels)}
    _atomic_write(out / "parcels.jsonl", "".join(json.dumps(p) + "\n" for p in parcels))
    _atomic_write(out / "results.csv", _csv(rows))
    _atomic_write(out / "report.html", _html(out, rows, parcels, counts))
    return counts
