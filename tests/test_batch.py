"""``armscan batch``: inputs of every kind, outputs, exit codes, and resume after ``kill -9``."""

import csv
import json
import shutil
import signal
import subprocess
import sys
import time
import zipfile

import pytest

pytest.importorskip("torch")  # the tiny model fixture is exported with torch

from armscan.serve.batch import read_ledger, run_batch  # noqa: E402
from armscan.serve.cli import main  # noqa: E402


@pytest.fixture()
def inputs(tmp_path, tiny_coco):
    images = sorted((tiny_coco / "images").glob("*.png"))
    folder = tmp_path / "folder"
    folder.mkdir()
    for p in images[:4]:
        shutil.copy(p, folder / p.name)
    (folder / "corrupt.jpg").write_bytes(b"\xff\xd8 truncated")
    with zipfile.ZipFile(tmp_path / "night.zip", "w") as zf:
        for p in images[4:7]:
            zf.write(p, f"bags/{p.name}")
    manifest = tmp_path / "parcels.csv"
    with manifest.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["parcel_id", "sender", "consignee", "timestamp", "scans"])
        w.writerow(["P1", "ACME", "J. Doe", "2026-11-30T01:00:00Z", f"{images[7]};{images[8]}"])
        w.writerow(["P2", "ACME", "J. Doe", "2026-11-30T02:00:00Z", "missing_view.png"])
    return [str(folder), str(tmp_path / "night.zip"), str(manifest)]


def test_batch_screens_every_input_once_and_writes_reports(inputs, tiny_onnx, tmp_path):
    out = tmp_path / "out"
    code = run_batch(inputs, out, tiny_onnx, threads=1, progress=False)
    assert code == 1  # corrupt.jpg and missing_view.png are error rows; the rest is screened
    rows = read_ledger(out / "scans.jsonl")
    assert len(rows) == 5 + 3 + 3 and len({r["key"] for r in rows}) == len(rows)
    errors = {r["key"].split("/")[-1]: r["error"] for r in rows if r["status"] == "error"}
    assert set(errors) == {"corrupt.jpg", "missing_view.png"} and "No such file" in errors["missing_view.png"]
    assert any("night.zip::bags/" in r["key"] for r in rows)
    parcels = {p["parcel_id"]: p for p in map(json.loads, (out / "parcels.jsonl").read_text().splitlines())}
    assert len(parcels["P1"]["scans"]) == 2 and parcels["P1"]["consignee"] == "J. Doe"
    assert parcels["P2"]["decision"] == "error"
    with (out / "results.csv").open() as f:
        assert len(list(csv.DictReader(f))) == len(rows)
    report = (out / "report.html").read_text()
    assert "armscan batch report" in report and "missing_view.png" in report
    assert run_batch(inputs, out, tiny_onnx, progress=False) == 1  # a rerun adds nothing
    assert len(read_ledger(out / "scans.jsonl")) == len(rows)


def test_alarms_get_thumbnails_in_the_report(tiny_coco, tiny_onnx, tmp_path):
    from armscan.inference.engine import Detector
    from armscan.inference.metadata import Thresholds
    from armscan.training.export import write_metadata

    sensitive = tmp_path / "sensitive.onnx"  # the same model, alarming on anything
    shutil.copy(tiny_onnx, sensitive)
    md = Detector.from_onnx(sensitive).metadata
    md.thresholds = Thresholds(alarm=dict.fromkeys(md.classes, 0.0), min_score=0.01)
    write_metadata(sensitive, md)
    out = tmp_path / "out"
    assert run_batch([str(tiny_coco / "images")], out, sensitive, progress=False) == 0
    rows = read_ledger(out / "scans.jsonl")
    assert all(r["decision"] == "alarm" and (out / r["thumb"]).is_file() for r in rows)
    tdr = json.loads((out / rows[0]["tdr"]).read_text())
    assert tdr["format"] == "armscan-tdr-json/1" and tdr["assessment"] == "threat" and tdr["scan"] == rows[0]["key"]
    assert len(tdr["threat_objects"]) == sum(d["alarm"] for d in rows[0]["detections"]) > 0
    assert len(tdr["threat_objects"][0]["bounding_polygon"]) == 4
    assert (out / "report.html").read_text().count("data:image/jpeg;base64,") == len(rows)


def test_unusable_model_or_manifest_exits_2(tmp_path, tiny_onnx, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"parcel_id": "P9"}\n')
    assert main(["batch", str(bad), "--out", str(tmp_path / "o"), "--model", str(tiny_onnx)]) == 2
    assert "needs 'parcel_id' and 'scans'" in capsys.readouterr().err
    bad.write_text('{"parcel_id": "P9", "scans": 5}\n')
    assert main(["batch", str(bad), "--out", str(tmp_path / "o"), "--model", str(tiny_onnx)]) == 2
    assert "'scans' must be a list" in capsys.readouterr().err
    assert main(["batch", str(tmp_path), "--out", str(tmp_path / "o"), "--model", str(tmp_path / "x.onnx")]) == 2


def test_resume_after_kill_9_keeps_every_input_exactly_once(tiny_coco, tiny_onnx, tmp_path):
    folder = tmp_path / "many"
    folder.mkdir()
    images = sorted((tiny_coco / "images").glob("*.png"))
    for k in range(300):
        shutil.copy(images[k % len(images)], folder / f"scan_{k:04d}.png")
    out = tmp_path / "out"
    cmd = [sys.executable, "-c", "from armscan.serve.cli import main; raise SystemExit(main())", "batch", str(folder),
           "--out", str(out), "--model", str(tiny_onnx), "--threads", "1", "--no-progress"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ledger = out / "scans.jsonl"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not ledger.exists() or len(ledger.read_bytes().splitlines()) < 20):
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = len(read_ledger(ledger))
    assert 0 < before < 300, f"the kill should land mid-batch ({before} rows)"
    with ledger.open("a") as f:
        f.write('{"key": "torn')  # what a crash in the middle of a write leaves
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    keys = [r["key"] for r in read_ledger(ledger)]
    assert len(keys) == 300 and len(set(keys)) == 300
    assert f"resuming: {before} of 300" in done.stdout


def test_an_unexpected_decoder_failure_becomes_an_error_row(tmp_path, tiny_onnx, monkeypatch, tiny_coco):
    import armscan.serve.batch_inputs as bi

    real = bi.read_scan

    def flaky(path, reduce_to=None):
        if path.name.endswith("0.png"):
            raise MemoryError("simulated")
        return real(path, reduce_to)

    monkeypatch.setattr(bi, "read_scan", flaky)
    out = tmp_path / "out"
    assert run_batch([str(tiny_coco / "images")], out, tiny_onnx, progress=False) == 1
    rows = read_ledger(out / "scans.jsonl")
    assert len(rows) == 12 and any("MemoryError: simulated" in r.get("error", "") for r in rows)
