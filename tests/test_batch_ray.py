"""``armscan batch --engine ray``: the same rows as the local engine, on a real local Ray instance."""

import json
import os
import secrets
import sys
import zipfile
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

from armscan.datasets.synth.scene import SceneConfig  # noqa: E402
from armscan.datasets.synth.writer import write_dataset  # noqa: E402
from armscan.serve.batch import read_ledger, run_batch  # noqa: E402
from armscan.serve.batch_ray import run_batch_ray  # noqa: E402

MODEL = Path(__file__).resolve().parents[1] / "models" / "bundled" / "armscan-det.onnx"
pytestmark = [
    pytest.mark.slow,  # starts Ray and its actors: about 20 s on 2 cores
    pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.*"),  # Ray Data warns about its own settings
]


@pytest.fixture(scope="module")
def local_ray():
    env = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_TOKEN": secrets.token_hex(32)}  # nothing written to ~/.ray
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="module")
def scans(tmp_path_factory):
    """10 generated scans, two more in a zip, an unreadable JPEG and a broken archive; and the local engine's rows."""
    root = tmp_path_factory.mktemp("ray_inputs")
    write_dataset(root, 12, seed=7100, width=320, height=240, cfg=SceneConfig(threat_prob=0.7))
    images = sorted((root / "images").glob("*.png"))
    images[0].unlink()  # one scan the bundled model alarms on for sure (an SMG with its trigger group and rounds)
    sample = Path(__file__).resolve().parent.parent / "datasets" / "samples" / "images" / "scan_300000005.png"
    (root / "images" / sample.name).write_bytes(sample.read_bytes())
    with zipfile.ZipFile(root / "night.zip", "w") as zf:
        for p in images[10:]:
            zf.write(p, f"bags/{p.name}")
            p.unlink()
    (root / "images" / "corrupt.jpg").write_bytes(b"\xff\xd8 truncated")
    (root / "broken.zip").write_bytes(b"not a zip")
    inputs = [str(root / "images"), str(root / "night.zip"), str(root / "broken.zip")]
    local = root / "local"
    assert run_batch(inputs, local, MODEL, threads=1, progress=False) == 1
    return inputs, read_ledger(local / "scans.jsonl")


def _outcome(row):
    return row["status"], row.get("error"), row.get("decision"), row.get("detections")


def test_ray_engine_gives_the_local_engines_rows(local_ray, scans, tmp_path):
    inputs, local_rows = scans
    out = tmp_path / "out"
    assert run_batch_ray(inputs, out, MODEL, workers=2, progress=False) == 1
    rows = read_ledger(out / "scans.jsonl")
    keys = [r["key"] for r in rows]
    assert len(keys) == len(set(keys)) == len(local_rows) == 14
    assert {r["key"]: _outcome(r) for r in rows} == {r["key"]: _outcome(r) for r in local_rows}
    errors = {Path(r["key"]).name: r["error"] for r in rows if r["status"] == "error"}
    assert set(errors) == {"corrupt.jpg", "broken.zip"} and "unreadable archive" in errors["broken.zip"]
    assert {"parcel_id", "model_version", "latency_ms"} <= set(next(r for r in rows if r["status"] == "ok"))
    for name in ("parcels.jsonl", "results.csv", "report.html"):
        assert (out / name).is_file()
    alarms = [r for r in rows if r.get("decision") == "alarm"]
    assert alarms and all((out / r["thumb"]).is_file() and (out / r["tdr"]).is_file() for r in alarms)


def test_ray_engine_resumes_from_the_ledger(local_ray, scans, tmp_path, capsys):
    inputs, local_rows = scans
    out = tmp_path / "out"
    out.mkdir()
    done = local_rows[:5]  # what a killed run had written, and a torn last line
    (out / "scans.jsonl").write_text("".join(json.dumps(r) + "\n" for r in done) + '{"key": "tor')
    assert run_batch_ray(inputs, out, MODEL, progress=False) == 1
    assert "resuming: 5 of 14" in capsys.readouterr().out
    rows = read_ledger(out / "scans.jsonl")
    assert rows[:5] == done
    assert sorted(r["key"] for r in rows) == sorted(r["key"] for r in local_rows)


def test_unreachable_address_or_missing_ray_exits_2(tmp_path, scans, monkeypatch, capsys):
    inputs, _ = scans
    monkeypatch.setattr(ray, "is_initialized", lambda: False)  # as in a fresh `armscan batch` process
    assert run_batch_ray(inputs, tmp_path / "a", MODEL, address="127.0.0.1:1", progress=False) == 2
    assert "cannot connect to Ray at 127.0.0.1:1" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` fails as if it were not installed
    assert run_batch_ray(inputs, tmp_path / "b", MODEL, progress=False) == 2
    assert "pip install 'armscan[ray]'" in capsys.readouterr().err


def test_actors_the_cluster_cannot_place_exit_2_instead_of_waiting_forever(local_ray, scans, tmp_path, capsys):
    inputs, _ = scans  # the local instance has 2 CPUs
    assert run_batch_ray(inputs, tmp_path / "a", MODEL, threads=3, progress=False) == 2
    assert "--threads 3 is more CPUs than the largest Ray node has (2)" in capsys.readouterr().err
    assert run_batch_ray(inputs, tmp_path / "b", MODEL, workers=2, threads=2, progress=False) == 2
    assert "needs 4 CPUs" in capsys.readouterr().err
    assert not (tmp_path / "a" / "scans.jsonl").exists() or not (tmp_path / "a" / "scans.jsonl").read_text()


def test_a_corrupt_ledger_line_exits_2_naming_it_as_the_local_engine_does(local_ray, scans, tmp_path, capsys):
    inputs, local_rows = scans
    out = tmp_path / "out"
    out.mkdir()
    (out / "scans.jsonl").write_text(json.dumps(local_rows[0]) + "\nGARBAGE\n" + json.dumps(local_rows[1]) + "\n")
    assert run_batch_ray(inputs, out, MODEL, progress=False) == 2
    assert "scans.jsonl:2: corrupt ledger line" in capsys.readouterr().err
