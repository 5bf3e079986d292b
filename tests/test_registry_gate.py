"""The model registry, the champion/challenger gate, and the service swapping models without dropping requests."""

from __future__ import annotations

import json
import shutil
import threading
import time
from pathlib import Path

import pytest
from service_helpers import Service, sample, start_service

from armscan.datasets.coco import read_coco
from armscan.datasets.synth.scene import SceneConfig
from armscan.datasets.synth.writer import write_dataset
from armscan.inference.engine import Detector
from armscan.serve.cli import main
from armscan.serve.registry import Registry, RegistryError
from armscan.serve.scan import DEFAULT_MODEL
from armscan.serve.service.settings import get_settings

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")
pytest.importorskip("pycocotools")


def _version(src: Path, dst: Path, version: str) -> Path:
    """A copy of ``src`` with another version in its metadata (same weights)."""
    from armscan.training.export import write_metadata

    shutil.copy(src, dst)
    md = Detector.from_onnx(dst).metadata
    md.version = version
    write_metadata(dst, md)
    return dst


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    models = tmp_path / "models"
    monkeypatch.setenv("ARMSCAN_MODELS_DIR", str(models))
    monkeypatch.setenv("ARMSCAN_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    yield models
    get_settings.cache_clear()


@pytest.fixture(scope="module")
def suite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("suite")
    write_dataset(out, 60, seed=77_000_000, width=256, height=224, cfg=SceneConfig(threat_prob=0.5))
    return out


@pytest.fixture(scope="module")
def one_sided(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two small suites: 16 scans with threats, and 16 clean scans."""
    threats, clean = tmp_path_factory.mktemp("threats_only"), tmp_path_factory.mktemp("clean_only")
    write_dataset(threats, 16, seed=77_100_000, width=256, height=224, cfg=SceneConfig(threat_prob=1.0))
    write_dataset(clean, 16, seed=77_200_000, width=256, height=224, cfg=SceneConfig(threat_prob=0.0))
    return threats, clean


def _thresholds(src: Path, dst: Path, **changes: object) -> Path:
    """A copy of ``src`` with its stored thresholds changed (same weights)."""
    from armscan.training.export import write_metadata

    shutil.copy(src, dst)
    md = Detector.from_onnx(dst).metadata
    md.thresholds = md.thresholds.model_copy(update=changes)
    write_metadata(dst, md)
    return dst


def test_gate_refuses_suites_without_clean_scans_or_threats(one_sided: tuple[Path, Path],
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    from armscan.serve.gate import _print, compare

    threats, clean = one_sided
    # without clean scans no FAR is defined: the gate used to find Pd 1.0 for any model (even one finding nothing)
    c = compare(DEFAULT_MODEL, DEFAULT_MODEL, [[threats], [clean]], tolerance=0.02)
    assert not c["passed"]
    assert any(f.startswith(f"{threats.name}: no clean scans") for f in c["failures"]), c["failures"]
    assert any(f.startswith(f"{clean.name}: no threat scans") for f in c["failures"]), c["failures"]
    rows = c["suites"][threats.name]["classes"]
    assert rows["any_threat"]["n"] == 16 and rows["any_threat"]["pd_champion"] is None
    assert c["suites"][clean.name]["classes"] == {} and c["suites"][clean.name]["mAP50"]["champion"] is None
    json.dumps(c)
    _print(c, "a", "b")
    assert "GATE FAILED" in capsys.readouterr().out


def test_gate_holds_the_challenger_to_its_own_thresholds(env: Path, one_sided: tuple[Path, Path],
                                                         monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    from armscan.serve import gate
    from armscan.serve.gate import _print, compare

    monkeypatch.setattr(gate, "_latency_ms", lambda detector, files: 0.0)  # not what this test measures
    suite = list(one_sided)  # pooled: 16 threat and 16 clean scans
    name = " + ".join(f.name for f in suite)
    classes = Detector.from_onnx(DEFAULT_MODEL).metadata.classes
    # badly calibrated: every class alarms at the score floor; its swept Pd at 1% FAR is the champion's own
    loose = _thresholds(DEFAULT_MODEL, env.parent / "loose.onnx", alarm=dict.fromkeys(classes, 0.05), uncertain=None)
    c = compare(loose, DEFAULT_MODEL, [suite], tolerance=0.02)
    t = c["suites"][name]["at_thresholds"]
    assert t["far"]["challenger"] > 0.5 and t["far"]["target"] == 0.01 and t["far"]["n"] == 16
    assert [f for f in c["failures"] if "parcel FAR at its own alarm thresholds" in f], c["failures"]
    _print(c, "loose", "bundled")
    out = capsys.readouterr().out
    assert "parcel Pd" in out and "parcel FAR" in out and "challenger's target 0.01" in out
    # deaf, and uncalibrated: it alarms only on saturated scores, so its parcel Pd in service drops, and its
    # metadata has no target FAR; both are reasons to refuse it
    deaf = _thresholds(DEFAULT_MODEL, env.parent / "deaf.onnx", alarm=dict.fromkeys(classes, 1.0), uncertain=None,
                       target_far=None)
    c = compare(deaf, DEFAULT_MODEL, [suite], tolerance=0.02)
    assert c["suites"][name]["at_thresholds"]["pd"]["challenger"] < 0.1
    assert c["failures"][0] == ("the challenger's metadata has no target_far: its alarm thresholds were never "
                                "calibrated (export it with --calib), so the FAR it will alarm at is unknown")
    assert [f for f in c["failures"] if "parcel Pd at the models' own alarm thresholds drops" in f], c["failures"]


def test_gate_refuses_a_worse_model_unless_forced_and_audited(env: Path, suite: Path, tiny_onnx: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "register", str(DEFAULT_MODEL)]) == 0
    champion = Registry(env).read().models[0].key
    assert main(["models", "promote", champion]) == 0  # the first champion needs no comparison
    worse = _version(tiny_onnx, env.parent / "worse.onnx", "0.0.1-worse")
    assert main(["models", "register", str(worse), "--parent", champion]) == 0
    challenger = Detector.from_onnx(worse).metadata.name + "@0.0.1-worse"
    capsys.readouterr()
    assert main(["models", "promote", challenger, "--suite", str(suite)]) == 1
    out = capsys.readouterr()
    assert "GATE FAILED" in out.out and "Pd at FAR" in out.out and "refused" in out.err
    assert "note: a FAR of 0.01 is set by the 1 highest-scoring of" in out.out  # too few clean scans, and said so
    assert Registry(env).champion().key == champion  # type: ignore[union-attr]
    assert main(["models", "promote", challenger, "--suite", str(suite), "--force"]) == 2  # no reason
    assert main(["models", "promote", challenger, "--suite", str(suite), "--force", "--reason", "lab test"]) == 0
    reg = Registry(env)
    assert reg.champion().key == challenger and reg.get(champion).status == "retired"  # type: ignore[union-attr]
    assert reg.get(challenger).parent == champion
    assert main(["models", "rollback", "--reason", "worse after all"]) == 0
    assert Registry(env).champion().key == champion  # type: ignore[union-attr]
    assert main(["audit", "verify"]) == 0
    from armscan.serve.service.db import make_engine, session_factory
    from armscan.serve.service.tables import AuditEntry

    engine = make_engine(get_settings().db_url)
    with session_factory(engine)() as db:
        actions = [(e.action, e.details_json) for e in db.query(AuditEntry).order_by(AuditEntry.seq)]
    engine.dispose()
    forced = [d for a, d in actions if a == "model.promote_forced"]
    assert len(forced) == 1 and "lab test" in forced[0] and [a for a, _ in actions][-1] == "model.rollback"


def test_gate_passes_an_equal_model_and_registry_refuses_changed_files(env: Path, suite: Path) -> None:
    reg = Registry(env)
    first = reg.register(DEFAULT_MODEL, "test")
    reg.promote(first.key, "test")
    same = reg.register(_version(DEFAULT_MODEL, env.parent / "same.onnx", "0.1.1"), "test", parent=first.key)
    assert main(["models", "compare", same.key, "--suite", str(suite), str(suite), "--json", str(env.parent / "c.json")]) == 0
    pooled = json.loads((env.parent / "c.json").read_text())["suites"][f"{suite.name} + {suite.name}"]
    assert pooled["images"] == 120 and pooled["clean_scans"] == 2 * sum(not r.boxes for r in read_coco(suite))
    at = pooled["at_thresholds"]  # the same thresholds: the same decisions
    assert at["pd"]["delta"] == 0.0 and at["far"]["champion"] == at["far"]["challenger"] and at["far"]["target"] == 0.01
    assert main(["models", "promote", same.key, "--suite", str(suite)]) == 0
    with pytest.raises(RegistryError, match="already registered"):
        reg.register(DEFAULT_MODEL, "test")
    with (env / same.file).open("ab") as f:
        f.write(b"tampered")
    with pytest.raises(RegistryError, match="refusing a file that changed"):
        reg.verify(reg.get(same.key))
    from armscan.inference.engine import ModelLoadError
    from armscan.serve.service.screening import ModelSet

    with pytest.raises(ModelLoadError, match="changed after registration"):
        ModelSet(env)


def test_service_swaps_to_the_promoted_model_without_dropping_requests(tmp_path: Path) -> None:
    models = tmp_path / "models"
    reg = Registry(models)
    old = reg.register(DEFAULT_MODEL, "test")
    reg.promote(old.key, "test")
    old_v, new_v = old.key.split("@")[1], "99.0.0-swap"  # the bundled model's version, and a later one
    new = reg.register(_version(DEFAULT_MODEL, tmp_path / "new.onnx", new_v), "test", parent=old.key)
    it = start_service("sqlite", tmp_path, models_dir=models, models_poll_s=0.1, rate_limit_per_minute=0)
    svc: Service = next(it)
    who = svc.add_user("officer")
    assert svc.client.get("/v1/models", headers=svc.as_(who)).json()["default"] == old.key
    versions: list[str] = []
    codes: list[int] = []
    stop = threading.Event()

    def upload() -> None:
        while not stop.is_set():
            r = svc.client.post("/v1/scans", files={"file": ("a.png", sample(), "image/png")}, headers=svc.as_(who))
            codes.append(r.status_code)
            if r.status_code == 201:
                versions.append(r.json()["model_version"])

    threads = [threading.Thread(target=upload) for _ in range(2)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    reg.promote(new.key, "test")
    deadline = time.time() + 20
    while time.time() < deadline and (not versions or versions[-1] != new_v):
        time.sleep(0.2)
    time.sleep(0.5)
    stop.set()
    for t in threads:
        t.join()
    it.close()
    assert set(codes) == {201}, codes  # nothing dropped while the models were swapped
    assert versions[0] == old_v and versions[-1] == new_v
    assert versions.index(new_v) > 0 and old_v not in versions[versions.index(new_v) + 2:]
