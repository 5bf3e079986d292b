"""Importers for the user's own data, the dataset check (duplicates, leakage, bad boxes) and splits."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from armscan.datasets.check import card, check, dhash, split
from armscan.datasets.coco import read_coco
from armscan.datasets.importers import DatasetImportError, Mapping, import_dataset
from armscan.serve.cli import main


def _img(seed: int, w: int = 160, h: int = 120) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = cv2.resize(rng.integers(0, 255, (h // 8, w // 8, 3), np.uint8), (w, h), interpolation=cv2.INTER_CUBIC)
    return np.asarray(img, np.uint8)


def _voc(root: Path) -> None:
    (root / "JPEGImages").mkdir(parents=True)
    (root / "Annotations").mkdir()
    for k, objects in enumerate([[("Gun", (10, 20, 60, 80))], [("Knife", (5, 5, 40, 30)), ("Gun", (50, 40, 150, 110))],
                                 []]):
        cv2.imwrite(str(root / "JPEGImages" / f"P{k:05d}.jpg"), _img(k))
        objs = "".join(f"<object><name>{n}</name><bndbox><xmin>{b[0]}</xmin><ymin>{b[1]}</ymin><xmax>{b[2]}</xmax>"
                       f"<ymax>{b[3]}</ymax></bndbox></object>" for n, b in objects)
        (root / "Annotations" / f"P{k:05d}.xml").write_text(
            f"<annotation><filename>P{k:05d}.jpg</filename>{objs}</annotation>")


def test_voc_import_maps_labels_and_reports_unknown_ones(tmp_path: Path) -> None:
    _voc(tmp_path / "sixray")
    rep = import_dataset("voc", tmp_path / "sixray", tmp_path / "out", Mapping())
    assert (rep.images, rep.boxes) == (3, 2) and rep.unknown_labels == {"Knife": 1}
    recs = read_coco(tmp_path / "out")
    boxes = [b for r in recs for b in r.boxes]
    assert {b["cls"] for b in boxes} == {"firearm"} and boxes[0]["bbox"] == [10.0, 20.0, 50.0, 60.0]
    assert all(r.file.is_file() and len(r.meta["sha256"]) == 64 and r.meta["format"] == "voc" for r in recs)
    (tmp_path / "map.yaml").write_text("Knife: null\nGun: {class: firearm, type: pistol, build: metal}\n")
    rep = import_dataset("voc", tmp_path / "sixray", tmp_path / "out2", Mapping.load(tmp_path / "map.yaml"))
    assert rep.benign_labels == {"Knife": 1} and not rep.unknown_labels
    assert {(b["type"], b["build"]) for r in read_coco(tmp_path / "out2") for b in r.boxes} == {("pistol", "metal")}
    with pytest.raises(DatasetImportError, match="unknown labels"):
        import_dataset("voc", tmp_path / "sixray", tmp_path / "out3", Mapping(), strict=True)
    (tmp_path / "bad.yaml").write_text("Gun: sword\n")
    with pytest.raises(DatasetImportError, match="Gun"):
        Mapping.load(tmp_path / "bad.yaml")


def test_yolo_coco_gdxray_and_imagefolder_imports(tmp_path: Path) -> None:
    y = tmp_path / "yolo"
    (y / "images").mkdir(parents=True)
    (y / "labels").mkdir()
    (y / "classes.txt").write_text("handgun\nbullet\n")
    cv2.imwrite(str(y / "images" / "a.png"), _img(1))
    (y / "labels" / "a.txt").write_text("0 0.5 0.5 0.25 0.5\n1 0.1 0.1 0.1 0.1\n")
    import_dataset("yolo", y, tmp_path / "o_yolo", Mapping())
    (rec,) = read_coco(tmp_path / "o_yolo")
    assert [b["cls"] for b in rec.boxes] == ["firearm", "ammunition"]
    assert rec.boxes[0]["bbox"] == pytest.approx([60.0, 30.0, 40.0, 60.0])

    c = tmp_path / "pidray"
    (c / "images").mkdir(parents=True)
    cv2.imwrite(str(c / "images" / "x.png"), _img(2))
    (c / "annotations.json").write_text(json.dumps({
        "images": [{"id": 7, "file_name": "x.png", "width": 160, "height": 120}],
        "annotations": [{"id": 1, "image_id": 7, "category_id": 3, "bbox": [1, 2, 30, 40]},
                        {"id": 2, "image_id": 7, "category_id": 9, "bbox": [50, 20, 30, 40]}],
        "categories": [{"id": 3, "name": "Gun"}, {"id": 9, "name": "Bullet"}]}))
    import_dataset("pidray", c, tmp_path / "o_pidray", Mapping())
    assert sorted(b["cls"] for b in read_coco(tmp_path / "o_pidray")[0].boxes) == ["ammunition", "firearm"]

    g = tmp_path / "gdx" / "B0049"
    g.mkdir(parents=True)
    for k in (1, 2):
        cv2.imwrite(str(g / f"B0049_{k:04d}.png"), _img(10 + k))
    (g / "ground_truth.txt").write_text("1 10 70 20 90\n")
    (tmp_path / "gdx.yaml").write_text("B0049: {class: firearm, type: pistol}\n")
    import_dataset("gdxray", tmp_path / "gdx", tmp_path / "o_gdx", Mapping.load(tmp_path / "gdx.yaml"))
    recs = {r.meta["source"].split("/")[-1]: r for r in read_coco(tmp_path / "o_gdx")}
    assert recs["B0049_0001.png"].boxes[0]["bbox"] == [10.0, 20.0, 60.0, 70.0] and not recs["B0049_0002.png"].boxes
    assert recs["B0049_0001.png"].meta["group"] == "B0049"

    f = tmp_path / "photos"
    for label in ("revolver", "cat"):
        (f / label).mkdir(parents=True)
        cv2.imwrite(str(f / label / "1.png"), _img(hash(label) % 100))
    rep = import_dataset("imagefolder", f, tmp_path / "o_photos", Mapping())
    assert rep.unknown_labels == {"cat": 1}
    labels = [r.meta.get("image_labels") for r in read_coco(tmp_path / "o_photos")]
    assert ["firearm"] in labels and None in labels


def test_check_finds_bad_boxes_duplicates_and_leaks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _voc(tmp_path / "src")
    base = _img(0)
    cv2.imwrite(str(tmp_path / "src" / "JPEGImages" / "P00003.jpg"), base, [cv2.IMWRITE_JPEG_QUALITY, 60])  # near dup
    (tmp_path / "src" / "Annotations" / "P00003.xml").write_text(
        "<annotation><filename>P00003.jpg</filename><object><name>gun</name><bndbox><xmin>100</xmin><ymin>10</ymin>"
        "<xmax>400</xmax><ymax>50</ymax></bndbox></object><object><name>gun</name><bndbox><xmin>3</xmin><ymin>3"
        "</ymin><xmax>4</xmax><ymax>50</ymax></bndbox></object></annotation>")
    import_dataset("voc", tmp_path / "src", tmp_path / "train", Mapping())
    import_dataset("voc", tmp_path / "src", tmp_path / "val", Mapping())  # the same scans again: leakage
    rep = check([tmp_path / "train"])
    kinds = rep.by_kind()
    assert kinds["box out of the image"] == 1 and kinds["degenerate box"] == 1 and kinds["near duplicate"] == 1
    assert "leak between splits (identical file)" not in kinds
    both = check([tmp_path / "train", tmp_path / "val"])
    assert both.by_kind()["leak between splits (identical file)"] == 4
    assert both.by_kind()["leak between splits (group)"] >= 1
    md = card([tmp_path / "train"], rep)
    assert "| firearm |" in md and "degenerate box" in md
    assert main(["data", "check", str(tmp_path / "train"), "--card", str(tmp_path / "CARD.md")]) == 1
    assert (tmp_path / "CARD.md").is_file() and "box out of the image" in capsys.readouterr().out
    assert main(["data", "check", str(tmp_path / "nowhere")]) == 2
    assert dhash(base) == dhash(cv2.resize(base, (320, 240)))


def test_group_split_keeps_groups_together_and_is_deterministic(tmp_path: Path) -> None:
    _voc(tmp_path / "src")
    for k in range(3, 40):  # more scans, two views per parcel group
        cv2.imwrite(str(tmp_path / "src" / "JPEGImages" / f"G{k // 2:03d}_{k}.jpg"), _img(100 + k))
        (tmp_path / "src" / "Annotations" / f"G{k // 2:03d}_{k}.xml").write_text(
            f"<annotation><filename>G{k // 2:03d}_{k}.jpg</filename></annotation>")
    import_dataset("voc", tmp_path / "src", tmp_path / "all", Mapping())
    sizes = split(tmp_path / "all", tmp_path / "s1", by="group")
    assert sum(sizes.values()) == 40 and sizes == split(tmp_path / "all", tmp_path / "s2", by="group")
    where: dict[str, set[str]] = {}
    for name in sizes:
        for r in read_coco(tmp_path / "s1" / name):
            where.setdefault(r.meta["group"], set()).add(name)
    assert all(len(v) == 1 for v in where.values())
    assert check([tmp_path / "s1" / n for n in sizes]).by_kind().get("leak between splits (group)") is None
    with pytest.raises(ValueError, match="sum to 1"):
        split(tmp_path / "all", tmp_path / "s3", ratios=(0.5, 0.1, 0.1))


@pytest.mark.filterwarnings("ignore::ResourceWarning")
def test_officer_feedback_from_the_service_becomes_training_boxes(tmp_path: Path) -> None:
    from service_helpers import sample, start_service

    it = start_service("sqlite", tmp_path / "svc")
    svc = next(it)
    who = svc.add_user("officer")
    scan = svc.upload(who, sample())
    n = len(scan["detections"])
    body = {"detections": [{"index": 0, "verdict": "confirmed", "cls": "magazine"}]
            + [{"index": k, "verdict": "rejected"} for k in range(1, n)],
            "missed": [{"box": [5, 6, 55, 66], "cls": "barrel", "build": "printed"}]}
    assert svc.client.post(f"/v1/scans/{scan['id']}/feedback", json=body, headers=svc.as_(who)).status_code == 201
    export = tmp_path / "feedback.jsonl"
    export.write_text(svc.client.get("/v1/feedback/export", headers=svc.as_("chief")).text)
    it.close()
    rep = import_dataset("feedback", export, tmp_path / "fb", Mapping())
    (rec,) = read_coco(tmp_path / "fb")
    assert rep.images == 1 and rec.meta["group"] == scan["id"] and rec.meta["sha256"] == scan["sha256"]
    assert sorted(b["cls"] for b in rec.boxes) == ["barrel", "magazine"]  # corrected class kept, rejected ones dropped
    barrel = next(b for b in rec.boxes if b["cls"] == "barrel")
    assert barrel["bbox"] == [5.0, 6.0, 50.0, 60.0] and barrel["build"] == "printed"


def _coco_with(folder: Path, categories: list[dict], annotations: list[dict]) -> Path:
    (folder / "images").mkdir(parents=True)
    cv2.imwrite(str(folder / "images" / "x.png"), _img(3))
    (folder / "annotations.json").write_text(json.dumps({
        "images": [{"id": 1, "file_name": "x.png", "width": 160, "height": 120}],
        "annotations": [{"image_id": 1, "bbox": [10, 10, 60, 40], **a} for a in annotations],
        "categories": categories}))
    return folder


def test_a_box_of_an_unknown_or_undefined_category_is_an_error_not_a_clean_scan(tmp_path: Path,
                                                                                capsys: pytest.CaptureFixture[str]) -> None:
    from armscan.datasets.coco import CocoFormatError

    cats = [{"id": 1, "name": "Pistol"}, {"id": 2, "name": "Firearms"}, {"id": 3, "name": "Laptop"}]
    unknown = _coco_with(tmp_path / "unknown", cats, [{"id": 1, "category_id": 1}, {"id": 2, "category_id": 2}])
    with pytest.raises(CocoFormatError, match=r"\{'Firearms': 1\}.*classes firearm, barrel.*handgun.*data import coco"):
        read_coco(unknown)  # 'Laptop' is defined but unused: not an error
    (rec,) = read_coco(unknown, skip_unknown=True)  # for tools that report them
    assert [(b["cls"], b["type"]) for b in rec.boxes] == [("firearm", "pistol")]  # a name the taxonomy maps
    undefined = _coco_with(tmp_path / "undefined", cats[:1], [{"id": 5, "category_id": 7}])
    with pytest.raises(CocoFormatError, match=r"annotation 5 \(category_id 7\).*defined: \{1: 'Pistol'\}"):
        read_coco(undefined)

    rep = check([unknown, undefined])  # the check reports both instead of failing
    assert rep.by_kind()["unknown label"] == 1 and rep.by_kind()["undefined category"] == 1
    assert main(["data", "check", str(undefined)]) == 1
    assert "annotation 5: undefined category: category_id 7" in capsys.readouterr().out

    (tmp_path / "map.yaml").write_text("Firearms: {class: firearm, type: rifle}\nLaptop: null\n")
    import_dataset("coco", unknown, tmp_path / "mapped", Mapping.load(tmp_path / "map.yaml"))  # the way to map them
    (rec,) = read_coco(tmp_path / "mapped")
    assert sorted((b["cls"], b["type"]) for b in rec.boxes) == [("firearm", "pistol"), ("firearm", "rifle")]
