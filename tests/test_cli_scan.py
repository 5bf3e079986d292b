"""The ``armscan scan`` command: table, JSON, overlays, JSONL and bad input."""

import json
import shutil

import cv2
import numpy as np
import pytest

from armscan.serve.cli import main

pytest.importorskip("torch")  # the tiny model fixture is exported with torch


@pytest.fixture()
def scans(tmp_path, tiny_coco):
    folder = tmp_path / "in"
    shutil.copytree(tiny_coco / "images", folder)
    return folder


def test_scan_prints_one_json_object_per_scan(tiny_onnx, scans, capsys, tmp_path):
    code = main(["scan", str(scans), "--model", str(tiny_onnx), "--json", "--all", "--overlay", str(tmp_path / "ov"),
                 "--jsonl", str(tmp_path / "out.jsonl")])
    assert code == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(rows) == 12
    for r in rows:
        assert r["decision"] in ("clear", "alarm") and r["model_version"] == "test"
        assert set(r["flags"]) == {"firearm", "firearm_part", "ammunition", "printed_or_polymer"}
        assert r["latency_ms"] > 0
    assert len(list((tmp_path / "ov").glob("*.png"))) == 12
    assert len((tmp_path / "out.jsonl").read_text().splitlines()) == 12


def test_overlays_are_named_after_the_scans_path_and_never_collide(tiny_onnx, tiny_coco, tmp_path, capsys):
    first = sorted((tiny_coco / "images").glob("*.png"))[0]
    for day in ("day1", "day2"):
        (tmp_path / "in" / day).mkdir(parents=True)
        shutil.copy(first, tmp_path / "in" / day / "0001.png")
    image = cv2.imread(str(first))
    assert cv2.imwrite(str(tmp_path / "in" / "day1" / "0001.tif"), image)
    assert main(["scan", str(tmp_path / "in"), "--model", str(tiny_onnx), "--json", "--overlay", str(tmp_path / "ov")]) == 0
    written = sorted(p.relative_to(tmp_path / "ov").as_posix() for p in (tmp_path / "ov").rglob("*.png"))
    assert written == ["day1/0001.png.png", "day1/0001.tif.png", "day2/0001.png.png"]
    # two folders named on the command line: their common parent names them
    assert main(["scan", str(tmp_path / "in" / "day1"), str(tmp_path / "in" / "day2" / "0001.png"), "--model",
                 str(tiny_onnx), "--json", "--overlay", str(tmp_path / "ov2")]) == 0
    written = sorted(p.relative_to(tmp_path / "ov2").as_posix() for p in (tmp_path / "ov2").rglob("*.png"))
    assert written == ["day1/0001.png.png", "day1/0001.tif.png", "day2/0001.png.png"]
    capsys.readouterr()


def test_unreadable_files_are_reported_and_the_rest_still_screened(tiny_onnx, scans, capsys):
    (scans / "broken.png").write_bytes(b"\x89PNG not really")
    (scans / "empty.jpg").write_bytes(b"")
    code = main(["scan", str(scans), "--model", str(tiny_onnx)])
    out, err = capsys.readouterr()
    assert code == 1
    assert "broken.png: not a decodable image" in err and "empty.jpg: empty file" in err
    assert "12 screened" in out and "2 unreadable" in out


def test_16_bit_and_greyscale_scans_are_read(tiny_onnx, tmp_path, capsys):
    img16 = (np.random.default_rng(0).random((150, 200)) * 65535).astype(np.uint16)
    assert cv2.imwrite(str(tmp_path / "raw16.tif"), img16)
    assert main(["scan", str(tmp_path / "raw16.tif"), "--model", str(tiny_onnx), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["width"] == 200


def test_missing_model_exits_2_and_a_missing_input_1(tiny_onnx, tmp_path, capsys):
    assert main(["scan", str(tmp_path), "--model", str(tmp_path / "nope.onnx")]) == 2
    assert "model file not found" in capsys.readouterr().err
    assert main(["scan", str(tmp_path / "empty_dir_missing"), "--model", str(tiny_onnx)]) == 1


def test_a_model_without_metadata_is_refused(tmp_path, capsys):
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Identity", ["images"], ["y"])], "g",
                              [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    onnx.save(helper.make_model(graph), str(tmp_path / "plain.onnx"))
    assert main(["scan", str(tmp_path), "--model", str(tmp_path / "plain.onnx")]) == 2
    assert "no 'armscan' metadata" in capsys.readouterr().err


def test_synth_cli_rejects_bad_arguments(capsys):
    assert main(["synth", "--n", "0", "--out", "/tmp/x"]) == 2
    assert "--n must be >= 1" in capsys.readouterr().err
