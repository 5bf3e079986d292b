"""``armscan kits``: find firearms sent as parts split across parcels.

Reads the ``parcels.jsonl`` of one or more batch runs, groups parcels by consignee (optionally also
by sender), and raises an alert when the parts found in one group's parcels within a time window
together make up a firearm, by readable rules such as "frame_receiver + slide + barrel".
A parcel that holds a whole kit alone already alarms; a kit alert needs at least two parcels. Parcels are
told apart by ``parcel_id``: one parcel in several batch runs (a rescan) counts once, with the parts of all its rows.

Rules file (YAML or JSON), replacing the defaults below::

    rules:
      - name: pistol kit
        all_of: [frame_receiver, slide, barrel]
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

DEFAULT_RULES: list[dict[str, Any]] = [
    {"name": "pistol kit: frame + slide + barrel", "all_of": ["frame_receiver", "slide", "barrel"]},
    {"name": "long-gun kit: receiver + bolt + barrel", "all_of": ["frame_receiver", "bolt", "barrel"]},
    {"name": "pistol kit with magazine: slide + barrel + magazine", "all_of": ["slide", "barrel", "magazine"]},
]


class KitRuleError(ValueError):
    """A rules file that cannot be used."""


@dataclass(frozen=True)
class KitRule:
    """Alert when the union of a group's parcel classes holds every class in ``all_of``."""

    name: str
    all_of: frozenset[str]
    min_parcels: int = 2


def load_rules(path: Path | None, known_classes: set[str]) -> list[KitRule]:
    """The rules in ``path`` (YAML or JSON with a ``rules`` list), or the defaults."""
    raw: Any = {"rules": DEFAULT_RULES}
    if path is not None:
        text = path.read_text()
        try:
            raw = json.loads(text) if path.suffix == ".json" else _yaml(text)
        except ValueError as exc:
            raise KitRuleError(f"{path}: unreadable rules ({exc})") from exc
    if not isinstance(raw, dict) or not isinstance(raw.get("rules"), list) or not raw["rules"]:
        raise KitRuleError(f"{path}: expected a non-empty 'rules' list")
    rules = []
    for k, r in enumerate(raw["rules"], start=1):
        if not isinstance(r, dict) or not r.get("all_of") or set(r) - {"name", "all_of", "min_parcels"}:
            raise KitRuleError(f"rule {k}: needs 'all_of' (and optionally 'name', 'min_parcels'), got {r}")
        unknown = set(r["all_of"]) - known_classes
        if unknown:
            raise KitRuleError(f"rule {k}: unknown classes {sorted(unknown)}; valid: {', '.join(sorted(known_classes))}")
        rules.append(KitRule(str(r.get("name", "+".join(r["all_of"]))), frozenset(r["all_of"]),
                             int(r.get("min_parcels", 2))))
    return rules


def _yaml(text: str) -> Any:
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(str(exc)) from exc


def _norm(s: str) -> str:
    return re.sub(r"\s+", " ", s.strip().lower())


def _time(s: object) -> datetime | None:
    """An ISO 8601 timestamp; one without a zone is taken as UTC."""
    try:
        t = datetime.fromisoformat(str(s or "").strip())
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def find_kits(parcels: list[dict[str, Any]], rules: list[KitRule], window: timedelta,
              by_sender: bool = False) -> list[dict[str, Any]]:
    """Kit alerts. Parcels without a readable timestamp count as inside every window of their group."""
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for p in parcels:
        if not p.get("consignee") or not p.get("classes"):
            continue
        key = (_norm(p["consignee"]),) + ((_norm(p.get("sender", "")),) if by_sender else ())
        groups.setdefault(key, []).append(p)
    alerts: dict[tuple[Any, ...], dict[str, Any]] = {}
    for key, members in groups.items():
        stamped = [(t, p) for p in members if (t := _time(p.get("timestamp"))) is not None]
        untimed = [p for p in members if _time(p.get("timestamp")) is None]
        starts: list[datetime | None] = [t for t, _ in stamped] or [None]
        for start in starts:
            inside = untimed + [p for t, p in stamped if start is None or start <= t <= start + window]
            found = set().union(*(set(p["classes"]) for p in inside)) if inside else set()
            for rule in rules:
                if not rule.all_of <= found:
                    continue
                used = [p for p in inside if rule.all_of & set(p["classes"])]
                parts: dict[str, set[str]] = {}  # parcel id -> its parts of the kit, over all its rows
                for p in used:
                    parts.setdefault(str(p["parcel_id"]), set()).update(rule.all_of & set(p["classes"]))
                if len(parts) < rule.min_parcels:
                    continue
                ids = tuple(sorted(parts))
                alerts[(key, rule.name, ids)] = {
                    "rule": rule.name, "consignee": used[0]["consignee"], "parcels": list(ids),
                    "parts": {k: sorted(parts[k]) for k in ids},
                    "first": min((str(p.get("timestamp", "")) for p in used), default=""),
                    "last": max((str(p.get("timestamp", "")) for p in used), default="")}
    # a kit found in a window is also found in any window holding it: keep the smallest parcel sets
    out = list(alerts.values())
    return [a for a in out if not any(b is not a and b["rule"] == a["rule"] and set(b["parcels"]) < set(a["parcels"])
                                      for b in out)]


def read_parcels(paths: list[str]) -> list[dict[str, Any]]:
    """``parcels.jsonl`` rows from batch output folders or files."""
    rows: list[dict[str, Any]] = []
    for s in paths:
        p = Path(s)
        f = p / "parcels.jsonl" if p.is_dir() else p
        if not f.is_file():
            raise FileNotFoundError(f"{f}: no parcels.jsonl (run 'armscan batch' first)")
        rows.extend(json.loads(line) for line in f.read_text().splitlines() if line.strip())
    return rows
