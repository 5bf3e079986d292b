"""The CLI's errors: a scan that cannot be screened is reported and the others still are (exit 1, or 3 for an
unexpected error); a model or checkpoint that cannot be loaded is one ``armscan: error:`` line and exit 2, not a
traceback. Scans use the bundled models; the train-extra commands are skipped without torch."""

import itertools
import json
import shutil
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from armscan.inference.engine import Detector, ModelLoadError
from armscan.inference.photo import PhotoClassifier
from armscan.serve.cli import main

ROOT = Path(__file__).resolve().parent.parent
BUNDLED = ROOT / "models" / "bundled" / "armscan-det.onnx"
BUNDLED_PHOTO = ROOT / "models" / "bundled" / "armscan-photo.onnx"
SAMPLES = sorted((ROOT / "datasets" / "samples" / "images").glob("*.png"))[:2]


@pytest.fixture()
def scans(tmp_path: Path) -> Path:
    """Two sample scans (a.png, c.png) around b.png, which a test makes fail."""
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(SAMPLES[0], folder / "a.png")
    shutil.copy(SAMPLES[1], folder / "c.png")
    return folder


def _scan_json(folder: Path, tmp_path: Path, *extra: str) -> int:
    return main(["scan", str(folder), "--model", str(BUNDLED), "--threads", "1", "--json",
                 "--jsonl", str(tmp_path / "out.jsonl"), *extra])


def _rows(text: str) -> dict[str, dict]:  # type: ignore[type-arg]
    return {Path(r["source"]).name: r for r in map(json.loads, text.splitlines())}


def test_blank_and_tiny_frames_fail_alone_and_exit_1(scans, tmp_path, capsys):
    assert cv2.imwrite(str(scans / "b.png"), np.zeros((300, 400, 3), np.uint8))  # a blank frame
    tiny = (np.random.default_rng(0).random((16, 16, 3)) * 255).astype(np.uint8)
    assert cv2.imwrite(str(scans / "d.png"), tiny)
    assert _scan_json(scans, tmp_path) == 1
    out, err = capsys.readouterr()
    rows = _rows(out)
    assert set(rows) == {"a.png", "b.png", "c.png", "d.png"}
    assert "decision" in rows["a.png"] and "decision" in rows["c.png"]
    assert "no image content: a blank or uniform frame" in rows["b.png"]["error"]
    assert "too small to screen" in rows["d.png"]["error"]
    assert f"armscan: cannot screen {scans / 'b.png'}: no image content" in err and "Traceback" not in err
    assert _rows((tmp_path / "out.jsonl").read_text()) == rows
    assert main(["scan", str(scans), "--model", str(BUNDLED), "--threads", "1"]) == 1
    assert "2 screened" in capsys.readouterr().out.splitlines()[-1]


def test_non_finite_model_outputs_fail_that_scan_and_exit_1(scans, monkeypatch, tmp_path, capsys):
    shutil.copy(SAMPLES[0], scans / "b.png")
    real = Detector.from_onnx
    calls = itertools.count()

    def poisoned(cls, path, threads=None, spin=True):  # type: ignore[no-untyped-def]
        det = real(path, threads=threads, spin=spin)
        run = det._run

        def nan_on_second_scan(x):  # type: ignore[no-untyped-def]
            out = run(x)
            return {k: np.full_like(v, np.nan) for k, v in out.items()} if next(calls) == 1 else out

        det._run = nan_on_second_scan
        return det

    monkeypatch.setattr(Detector, "from_onnx", classmethod(poisoned))
    assert _scan_json(scans, tmp_path) == 1
    out, err = capsys.readouterr()
    rows = _rows(out)
    assert "decision" in rows["a.png"] and "decision" in rows["c.png"]
    assert "NaN or infinite" in rows["b.png"]["error"]
    assert f"armscan: cannot screen {scans / 'b.png'}: the model's outputs" in err


def test_an_unexpected_error_fails_that_scan_and_exits_3(scans, monkeypatch, tmp_path, capsys):
    shutil.copy(SAMPLES[0], scans / "b.png")

    class InvalidArgument(Exception):  # onnxruntime's errors derive from plain Exception
        pass

    real = Detector.detect

    def detect(self, image, source="", **kwargs):  # type: ignore[no-untyped-def]
        if source.endswith("b.png"):
            raise InvalidArgument("Got invalid dimensions for input")
        return real(self, image, source=source, **kwargs)

    monkeypatch.setattr(Detector, "detect", detect)
    assert _scan_json(scans, tmp_path) == 3
    out, err = capsys.readouterr()
    rows = _rows(out)
    assert "decision" in rows["a.png"] and "decision" in rows["c.png"]
    assert rows["b.png"]["error"] == "unexpected error (InvalidArgument: Got invalid dimensions for input)"
    assert "unexpected error (InvalidArgument" in err and "Traceback" not in err
    # an unreadable file as well: 3 still wins over 1
    (scans / "e.png").write_bytes(b"\x89PNG not really")
    assert _scan_json(scans, tmp_path) == 3
    assert "not a decodable image" in _rows(capsys.readouterr().out)["e.png"]["error"]


def test_a_failed_overlay_write_fails_that_scan_and_exits_3_not_2(scans, tmp_path, capsys):
    (tmp_path / "ov" / "a.png.png").mkdir(parents=True)  # a folder where a.png's overlay goes
    assert _scan_json(scans, tmp_path, "--overlay", str(tmp_path / "ov")) == 3
    out, err = capsys.readouterr()
    rows = _rows(out)
    assert "unexpected error (IsADirectoryError" in rows["a.png"]["error"] and "decision" in rows["c.png"]
    assert (tmp_path / "ov" / "c.png.png").is_file()
    assert err.count("armscan: cannot screen") == 1


def test_unreadable_files_are_error_objects_with_json(scans, tmp_path, capsys):
    (scans / "b.png").write_bytes(b"")
    assert _scan_json(scans, tmp_path) == 1
    rows = _rows(capsys.readouterr().out)
    assert rows["b.png"] == {"source": str(scans / "b.png"), "error": "empty file"}


def test_scan_help_lists_the_exit_codes(capsys):
    with pytest.raises(SystemExit):
        main(["scan", "--help"])
    out = " ".join(capsys.readouterr().out.split())  # argparse wraps the epilog to the terminal
    assert "exit codes: 0" in out and "3 some scans failed on an unexpected error" in out


@pytest.fixture()
def bad_files(tmp_path: Path) -> Path:
    (tmp_path / "bad.onnx").write_text("not a model\n")
    (tmp_path / "junk.pt").write_bytes(np.random.default_rng(0).bytes(2000))
    (tmp_path / "empty.pt").write_bytes(b"")
    with zipfile.ZipFile(tmp_path / "other.pt", "w") as z:  # a zip, but not torch's
        z.writestr("a.txt", "hello")
    return tmp_path


@pytest.mark.parametrize(("argv", "named", "reason"), [
    (["eval", "--model", "{d}/missing.onnx", "--data", "{d}"], "missing.onnx", "model file not found"),
    (["eval", "--model", "{d}/bad.onnx", "--data", "{d}"], "bad.onnx", "onnxruntime cannot load it"),
    (["eval", "--model", "{d}/junk.pt", "--data", "{d}"], "junk.pt", "UnpicklingError"),
    (["eval", "--model", "{d}/empty.pt", "--data", "{d}"], "empty.pt", "EOFError"),
    (["eval", "--model", "{d}/other.pt", "--data", "{d}"], "other.pt", "RuntimeError"),
    (["export", "--checkpoint", "{d}/junk.pt", "--out", "{d}/o.onnx"], "junk.pt", "UnpicklingError"),
    (["train", "--init-from", "{d}/bad.onnx"], "bad.onnx", "onnxruntime cannot load it"),
    (["train", "--init-from", "{d}/junk.pt"], "junk.pt", "UnpicklingError"),
    (["average", "{d}/junk.pt", "{d}/empty.pt", "--out", "{d}/avg.pt"], "junk.pt", "UnpicklingError"),
])
def test_unloadable_models_and_checkpoints_exit_2_naming_the_file(argv, named, reason, bad_files, capsys):
    pytest.importorskip("torch")  # the train extra's commands
    assert main([a.format(d=bad_files) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("armscan: error: ") and len(err.splitlines()) == 1, err
    assert str(bad_files / named) in err and reason in err


def test_scan_with_an_unloadable_model_exits_2(bad_files, scans, capsys):
    assert main(["scan", str(scans), "--model", str(bad_files / "bad.onnx")]) == 2
    assert capsys.readouterr().err.startswith(f"armscan: error: {bad_files / 'bad.onnx'}: onnxruntime cannot load")


@pytest.mark.parametrize("preprocess", [{"size": 0}, {"std": [0, 0, 0]}, {"channel_order": "rgb"}, {"bogus": 1}])
def test_bad_photo_preprocessing_is_a_model_load_error(preprocess, tmp_path, scans, capsys):
    onnx = pytest.importorskip("onnx")
    model = onnx.load(str(BUNDLED_PHOTO))
    for p in model.metadata_props:
        if p.key == "armscan":
            meta = json.loads(p.value)
            meta["preprocess"] = {**meta["preprocess"], **preprocess}
            p.value = json.dumps(meta)
    path = tmp_path / "photo.onnx"
    onnx.save(model, str(path))
    with pytest.raises(ModelLoadError, match="invalid armscan photo metadata.*preprocess"):
        PhotoClassifier.from_onnx(path)
    assert main(["scan", str(scans), "--kind", "photo", "--model", str(path)]) == 2
    assert capsys.readouterr().err.startswith(f"armscan: error: {path}: invalid armscan photo metadata")
