"""The analysts' retraining loop end to end, as the README's walkthrough tells it:

1. a "new seizure" set arrives from a site whose scanner shows materials in other colours (its
   palette is the generator's turned 120 degrees in hue), which the bundled model handles badly;
2. it is imported (YOLO labels) and split by hash into a training part and a held-out part;
3. the bundled model is fine-tuned on it with synthetic replay;
4. the gate compares it with the champion: the parcel Pd and mAP50 on the held-out new-site scans rise
   while no old class's Pd drops by more than the tolerance beyond its sampling error on generated scans;
5. it is promoted;
6. the running service answers with the new version.

This takes about two minutes on 2 cores; it is the one slow test of the loop.
"""

from __future__ import annotations

import json
import shutil

import pytest
from service_helpers import sample, start_service

from armscan.datasets.synth.scene import SceneConfig
from armscan.datasets.synth.writer import turn_hue, write_dataset
from armscan.datasets.taxonomy import CLASSES
from armscan.serve.cli import main
from armscan.serve.registry import Registry
from armscan.serve.scan import DEFAULT_MODEL
from armscan.serve.service.settings import get_settings

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")
pytest.importorskip("torch")
pytest.importorskip("pycocotools")

TOLERANCE = 0.02  # largest Pd drop allowed per class, beyond its sampling error (the gate's default)
# training/finetune.yaml, shortened; its learning rate is the recipe's own (bench/finetune_forgetting.py compares rates)
RECIPE = ["--set", "batch_size=8", "epochs=8", "iters_per_epoch=20", "warmup_iters=5", "ema_decay=0.99",
          "val_images=0", 'data={"cache_size": 240}']


def test_new_seizures_are_imported_finetuned_gated_promoted_and_served(tmp_path, monkeypatch, capsys):
    models = tmp_path / "models"
    monkeypatch.setenv("ARMSCAN_MODELS_DIR", str(models))
    monkeypatch.setenv("ARMSCAN_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    reg = Registry(models)
    champion = reg.register(DEFAULT_MODEL, "test")  # the bundled model and its weights (.pt) become the champion
    reg.promote(champion.key, "test")
    assert (models / champion.file).with_suffix(".pt").is_file()

    # 1-2. the new site's labelled scans, as YOLO files, imported and split by image hash
    site = tmp_path / "site"
    write_dataset(site, 300, seed=320_000_000, width=416, height=416, cfg=SceneConfig(threat_prob=0.8), yolo=True)
    (site / "classes.txt").write_text("\n".join(CLASSES) + "\n")
    turn_hue(site, 120)  # the new site's palette
    assert main(["data", "import", "yolo", str(site), "--out", str(tmp_path / "imported")]) == 0
    assert main(["data", "split", str(tmp_path / "imported"), "--out", str(tmp_path / "split"), "--by", "hash",
                 "--ratios", "0.6", "0", "0.4"]) == 0
    old = tmp_path / "old"  # the frozen suite of generated scans, in the old palettes
    write_dataset(old, 200, seed=310_000_000, width=416, height=416, cfg=SceneConfig(threat_prob=0.5))
    calib = tmp_path / "calib"
    write_dataset(calib, 220, seed=100_000_000, width=416, height=416, cfg=SceneConfig(threat_prob=0.5))

    # 3. fine-tune the champion, export with thresholds chosen on the calibration scans, register
    run = tmp_path / "run"
    assert main(["train", "--init-from", "champion", "--data", str(tmp_path / "split" / "train"),
                 *RECIPE, f"out_dir={run}"]) == 0
    candidate = tmp_path / "candidate.onnx"
    assert main(["export", "--checkpoint", str(run / "last.pt"), "--out", str(candidate), "--version", "0.2.0-site",
                 "--calib", str(calib)]) == 0
    assert main(["models", "register", str(candidate), "--parent", champion.key,
                 "--data", str(tmp_path / "split" / "train")]) == 0
    entry = reg.get("armscan_det_small@0.2.0-site")
    assert entry.parent == champion.key and entry.datasets and entry.status == "candidate"

    # 4. the gate: on the new site's held-out scans, the parcel alarm's Pd rises and mAP50 holds; on the old suite
    # no class drops by more than the tolerance beyond its sampling error. (0.4.0 and later already box the turned
    # palette about as well as this short fine-tune does; its gain is at the operating point, the alarm's Pd. With
    # 0.13.0 and the recipe's learning rate, 0.0001: site mAP50 0.392 -> 0.416, Pd 0.437 -> 0.678, old-suite mAP50
    # 0.559 -> 0.542; at 0.0003 (the recipe's earlier rate) the old suite's trigger groups fell 0.474 -> 0.237, beyond
    # the tolerance (0.12.0 at 0.0003: Pd 0.517 -> 0.575). With 0.7.0 at 0.001 the site's mAP50 fell (0.332 ->
    # 0.309) and barrels and frame/receivers failed on the old suite: bench/finetune_forgetting.py. With
    # equal loss weights instead of the parent's (class loss x2), 0.5.0's frame/receivers and trigger groups dropped
    # on the old suite beyond the tolerance.)
    report = tmp_path / "compare.json"
    main(["models", "compare", entry.key, "--suite", str(tmp_path / "split" / "test"), "--suite", str(old),
          "--tolerance", str(TOLERANCE), "--json", str(report)])
    c = json.loads(report.read_text())
    site = c["suites"]["test"]
    parcel = site["classes"]["any_threat"]
    assert parcel["pd_challenger"] > parcel["pd_champion"] + 0.05, site["classes"]
    assert site["mAP50"]["challenger"] > site["mAP50"]["champion"] - 0.02, site["mAP50"]
    assert not [f for f in c["failures"] if f.startswith(f"{old.name}:")], c["failures"]

    # 5-6. promote; the running service answers with the new version
    it = start_service("sqlite", tmp_path, models_dir=models, models_poll_s=0.1, rate_limit_per_minute=0)
    svc = next(it)
    try:
        who = svc.add_user("officer")
        before = svc.client.post("/v1/scans", files={"file": ("a.png", sample(), "image/png")}, headers=svc.as_(who))
        assert before.json()["model_version"] == champion.key.split("@")[1]
        assert main(["models", "promote", entry.key, "--suite", str(old), "--tolerance", str(TOLERANCE)]) == 0
        assert reg.champion().key == entry.key
        import time

        deadline, version = time.time() + 20, ""
        while time.time() < deadline and version != "0.2.0-site":
            r = svc.client.post("/v1/scans", files={"file": ("a.png", sample(), "image/png")}, headers=svc.as_(who))
            assert r.status_code == 201
            version = r.json()["model_version"]
            time.sleep(0.2)
        assert version == "0.2.0-site"
    finally:
        it.close()
        get_settings.cache_clear()
    shutil.rmtree(run, ignore_errors=True)
