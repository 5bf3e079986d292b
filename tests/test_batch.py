"""``armscan batch``: inputs of every kind, outputs, exit codes, and resume after ``kill -9``."""

import csv
import json
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

pytest.importorskip("torch")  # the tiny model fixture is exported with torch

from armscan.serve.batch import read_ledger, run_batch  # noqa: E402
from armscan.serve.cli import main  # noqa: E402

MODEL = Path(__file__).resolve().parents[1] / "models" / "bundled" / "armscan-det.onnx"
SAMPLES = Path(__file__).resolve().parents[1] / "datasets" / "samples" / "images"


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


@pytest.fixture()
def sensitive(tiny_onnx, tmp_path):
    """The tiny model, alarming on anything: every scan gets a thumbnail and a TDR."""
    from armscan.inference.engine import Detector
    from armscan.inference.metadata import Thresholds
    from armscan.training.export import write_metadata

    path = tmp_path / "sensitive.onnx"
    shutil.copy(tiny_onnx, path)
    md = Detector.from_onnx(path).metadata
    md.thresholds = Thresholds(alarm=dict.fromkeys(md.classes, 0.0), min_score=0.01)
    write_metadata(path, md)
    return path


def test_alarms_get_thumbnails_in_the_report(tiny_coco, sensitive, tmp_path):
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


def test_a_thin_flagged_scan_gets_a_thumbnail(tmp_path):
    import numpy as np

    from armscan.inference.result import ScanResult
    from armscan.serve.batch import _thumb

    (tmp_path / "thumbs").mkdir()
    result = ScanResult(width=1000, height=1, detections=[], flags={}, decision="alarm", model_name="m",
                        model_version="v", latency_ms=0.0)
    for shape in [(1, 1000, 3), (1000, 2, 3), (1, 1, 3)]:  # 1000 // 360 = 2 > the thin side
        name = _thumb(tmp_path, f"thin{shape}", np.zeros(shape, np.uint8), result)
        assert (tmp_path / name).stat().st_size > 0


def test_a_failing_thumbnail_or_tdr_becomes_an_error_row_and_the_batch_goes_on(tiny_coco, sensitive, tmp_path,
                                                                              monkeypatch):
    import armscan.serve.batch as batch

    real_thumb, real_tdr = batch._thumb, batch._tdr

    def thumb(out, key, image, result):
        if key.endswith("0.png"):
            raise ValueError("simulated thumbnail failure")
        return real_thumb(out, key, image, result)

    def tdr(out, item, result):
        if item.key.endswith("1.png"):
            raise OSError(28, "No space left on device")
        return real_tdr(out, item, result)

    monkeypatch.setattr(batch, "_thumb", thumb)
    monkeypatch.setattr(batch, "_tdr", tdr)
    out = tmp_path / "out"
    assert run_batch([str(tiny_coco / "images")], out, sensitive, progress=False) == 1  # finished, with error rows
    rows = read_ledger(out / "scans.jsonl")
    assert len(rows) == 12 and len({r["key"] for r in rows}) == 12
    errors = {r["key"][-5]: r["error"] for r in rows if r["status"] == "error"}
    assert set(errors) == {"0", "1"}, errors
    assert "screened alarm, but its thumbnail" in errors["0"] and "ValueError: simulated" in errors["0"]
    assert "threat report" in errors["1"] and "No space left" in errors["1"]
    kept = {r["key"][-5]: r for r in rows if r["status"] == "error"}  # the screening result is not lost
    assert kept["0"]["decision"] == "alarm" and kept["0"]["detections"] and "thumb" not in kept["0"]
    assert kept["1"]["decision"] == "alarm" and (out / kept["1"]["thumb"]).is_file() and "tdr" not in kept["1"]
    from armscan.serve.report import write_reports

    counts = write_reports(out, rows)  # an error row with a result is counted once, as an error
    assert counts["error"] == sum(r["status"] == "error" for r in rows)
    assert counts["alarm"] + counts["uncertain"] + counts["clear"] + counts["error"] == 12
    assert all((out / r["thumb"]).is_file() and (out / r["tdr"]).is_file() for r in rows if r["status"] == "ok")
    assert "simulated thumbnail failure" in (out / "report.html").read_text()
    assert run_batch([str(tiny_coco / "images")], out, sensitive, progress=False) == 1  # the resume does not crash
    assert len(read_ledger(out / "scans.jsonl")) == 12


def test_an_unexpected_error_exits_3_with_a_message(tmp_path, monkeypatch, capsys):
    import armscan.serve.batch as batch

    def broken(self, row):
        raise RuntimeError("simulated bug")

    monkeypatch.setattr(batch.LedgerWriter, "write", broken)
    argv = ["batch", str(SAMPLES / "scan_300000000.png"), "--out", str(tmp_path / "o"), "--model", str(MODEL),
            "--workers", "1", "--threads", "1", "--no-progress"]
    assert main(argv) == 3
    err = capsys.readouterr().err
    assert "unexpected error" in err and "RuntimeError: simulated bug" in err and "Traceback" in err
    assert "rerun the same command" in err


def test_a_full_disk_mid_run_exits_3_not_2(tmp_path, monkeypatch, capsys):
    import armscan.serve.batch as batch

    def full(self, row):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(batch.LedgerWriter, "write", full)
    argv = ["batch", str(SAMPLES / "scan_300000000.png"), "--out", str(tmp_path / "o"), "--model", str(MODEL),
            "--workers", "1", "--threads", "1", "--no-progress"]
    assert main(argv) == 3  # 2 would say that nothing was screened because the setup was unusable
    err = capsys.readouterr().err
    assert "No space left on device" in err and "rerun the same command" in err and "Traceback" not in err


def test_a_corrupt_ledger_line_names_the_file_and_line(tmp_path, capsys):
    ledger = tmp_path / "o" / "scans.jsonl"
    ledger.parent.mkdir()
    ledger.write_text('{"key": "a", "status": "ok"}\n{"key": "b", "sta\n{"key": "c", "status": "ok"}\n{"key": "torn')
    with pytest.raises(ValueError, match=rf"{ledger}:2: "):
        read_ledger(ledger)
    argv = ["batch", str(SAMPLES / "scan_300000000.png"), "--out", str(ledger.parent), "--model", str(MODEL),
            "--no-progress"]
    assert main(argv) == 2
    assert f"{ledger}:2: " in capsys.readouterr().err
    ledger.write_text('{"key": "a", "status": "ok"}\n{"key": "torn')  # a torn last line is still cut off
    assert read_ledger(ledger) == [{"key": "a", "status": "ok"}]
    assert ledger.read_text() == '{"key": "a", "status": "ok"}\n'


@pytest.mark.parametrize("flag", ["0", "-3"])
def test_prefetch_below_1_exits_2(tmp_path, capsys, flag):
    argv = ["batch", str(SAMPLES), "--out", str(tmp_path / "o"), "--model", str(MODEL), "--prefetch", flag]
    assert main(argv) == 2
    assert "--prefetch must be >= 1" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_a_screened_scan_whose_outputs_failed_still_alarms_its_parcel(tmp_path):
    from armscan.serve.report import parcel_rows, write_reports

    det = {"cls": "slide", "alarm": True, "level": "alarm", "score": 0.97, "build": "metal"}
    rows = [{"key": "a.png", "parcel_id": "P1", "status": "ok", "decision": "clear", "detections": [], "flags": {}},
            {"key": "b.png", "parcel_id": "P1", "status": "error", "decision": "alarm", "detections": [det],
             "flags": {"firearm_part": True}, "error": "screened alarm, but its threat report (TDR) could not be written"},
            {"key": "c.png", "parcel_id": "P2", "status": "error", "error": "unreadable image"}]
    parcels = {p["parcel_id"]: p for p in parcel_rows(rows)}
    assert parcels["P1"]["decision"] == "alarm" and parcels["P1"]["classes"] == ["slide"]
    assert parcels["P1"]["flags"] == ["firearm_part"] and parcels["P1"]["errors"] == 1
    assert parcels["P2"]["decision"] == "error" and parcels["P2"]["classes"] == []
    counts = write_reports(tmp_path, rows)
    assert counts["parcels_alarm"] == 1 and counts["error"] == 2
    assert "TDR) could not be written" in (tmp_path / "report.html").read_text()
