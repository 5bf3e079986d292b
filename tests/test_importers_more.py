"""Importers, continued: the service's feedback merged per scan, per-image groups, YOLO's data.yaml, invalid boxes,
mapping files, and upright (EXIF-turned) image sizes."""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from PIL import Image

from armscan.datasets.check import check, split
from armscan.datasets.coco import read_coco
from armscan.datasets.importers import DatasetImportError, Mapping, import_dataset
from armscan.datasets.readers import decode_image


def _img(seed: int, w: int = 48, h: int = 32) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (h, w, 3), np.uint8)


def _turned(fmt: str, w: int = 300, h: int = 100) -> bytes:
    """A ``w`` x ``h`` image stored with EXIF orientation 6 (shown turned by 90 degrees: ``h`` x ``w``)."""
    im = Image.fromarray(_img(5, w, h))
    exif = im.getexif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    im.save(buf, format=fmt, exif=exif.tobytes())
    return buf.getvalue()


@pytest.fixture(scope="module")
def feedback(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A service started from its own folder with a relative data folder (as ``armscan serve`` runs by default),
    feedback given several times on one scan, a missed box on an EXIF-turned JPEG, and the export."""
    from service_helpers import sample, start_service

    root = tmp_path_factory.mktemp("service")
    (root / "svc").mkdir()
    cwd = os.getcwd()
    os.chdir(root)
    try:
        it = start_service("sqlite", Path("svc"))  # data folder svc/data, relative
        svc = next(it)
        officer, analyst = svc.add_user("officer"), svc.add_user("analyst")

        def post(scan_id: str, who: str, body: dict[str, Any]) -> None:
            r = svc.client.post(f"/v1/scans/{scan_id}/feedback", json=body, headers=svc.as_(who))
            assert r.status_code == 201, r.text

        scan = svc.upload(officer, sample())
        assert len(scan["detections"]) >= 2
        missed = [{"box": [5, 6, 55, 66], "cls": "barrel"}, {"box": [70, 10, 120, 40], "cls": "magazine"}]
        post(scan["id"], officer, {"detections": [{"index": 0, "verdict": "confirmed"},
                                                  {"index": 1, "verdict": "confirmed"}], "missed": missed[:1]})
        post(scan["id"], analyst, {"comment": "parcel opened, seized"})  # a comment alone changes nothing
        post(scan["id"], analyst, {"detections": [{"index": 1, "verdict": "rejected"}], "missed": missed})
        turned = svc.upload(officer, _turned("JPEG"), "turned.jpg")
        post(turned["id"], officer, {"missed": [{"box": [10, 200, 90, 290], "cls": "firearm"}]})
        export = root / "feedback.jsonl"
        export.write_text(svc.client.get("/v1/feedback/export", headers=svc.as_(analyst)).text)
        it.close()
    finally:
        os.chdir(cwd)
    yield {"export": export, "scan": scan, "turned": turned}


def test_every_feedback_row_of_a_scan_counts_not_only_the_last(feedback: dict[str, Any], tmp_path: Path) -> None:
    rows = [json.loads(line) for line in feedback["export"].read_text().splitlines()]
    assert len([r for r in rows if r["scan"]["id"] == feedback["scan"]["id"]]) == 3  # verdicts, a comment, more verdicts
    import_dataset("feedback", feedback["export"], tmp_path / "fb", Mapping())
    rec = next(r for r in read_coco(tmp_path / "fb") if r.meta["group"] == feedback["scan"]["id"])
    first = feedback["scan"]["detections"][0]
    x0, y0, x1, y1 = first["box"]
    # detection 0 stays confirmed, detection 1 was rejected later, the missed barrel given twice is one box
    assert sorted((b["cls"], [round(v, 3) for v in b["bbox"]]) for b in rec.boxes) == sorted([
        (first["cls"], [round(v, 3) for v in (x0, y0, x1 - x0, y1 - y0)]),
        ("barrel", [5.0, 6.0, 50.0, 60.0]), ("magazine", [70.0, 10.0, 50.0, 30.0])])


def test_feedback_export_paths_are_absolute_so_the_import_runs_from_anywhere(
        feedback: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    paths = [json.loads(line)["scan"]["image_path"] for line in feedback["export"].read_text().splitlines()]
    assert paths and all(Path(p).is_absolute() and Path(p).is_file() for p in paths)
    monkeypatch.chdir(tmp_path)  # not the service's folder
    rep = import_dataset("feedback", feedback["export"], tmp_path / "fb", Mapping())
    assert rep.images == 2 and not rep.skipped_images


def test_sizes_are_upright_so_feedback_boxes_on_a_turned_jpeg_fit(feedback: dict[str, Any], tmp_path: Path) -> None:
    assert (feedback["turned"]["width"], feedback["turned"]["height"]) == (100, 300)  # the service's size
    import_dataset("feedback", feedback["export"], tmp_path / "fb", Mapping())
    rec = next(r for r in read_coco(tmp_path / "fb") if r.meta["group"] == feedback["turned"]["id"])
    assert (rec.width, rec.height) == (100, 300) and rec.boxes[0]["bbox"] == [10.0, 200.0, 80.0, 90.0]
    assert check([tmp_path / "fb"]).by_kind().get("size mismatch") is None

    src = tmp_path / "folder" / "gun"
    src.mkdir(parents=True)
    for fmt, suffix in (("JPEG", "jpg"), ("PNG", "png"), ("TIFF", "tif")):
        (src / f"turned.{suffix}").write_bytes(_turned(fmt))
    import_dataset("imagefolder", tmp_path / "folder", tmp_path / "if", Mapping())
    for r in read_coco(tmp_path / "if"):
        h, w = decode_image(r.file.read_bytes()).shape[:2]
        assert (r.width, r.height) == (w, h) == (100, 300), r.meta["source"]


def _coco_folder(root: Path, n: int) -> Path:
    (root / "images").mkdir(parents=True)
    ims, anns = [], []
    for i in range(n):
        cv2.imwrite(str(root / "images" / f"xray_{i:05d}.png"), _img(i))
        ims.append({"id": i + 1, "file_name": f"xray_{i:05d}.png", "width": 48, "height": 32})
        anns.append({"id": i + 1, "image_id": i + 1, "category_id": 1, "bbox": [4, 4, 20, 10]})
    (root / "annotations.json").write_text(json.dumps({"images": ims, "annotations": anns,
                                                       "categories": [{"id": 1, "name": "Gun"}]}))
    return root


def test_formats_without_groups_give_each_image_its_own(tmp_path: Path) -> None:
    import_dataset("coco", _coco_folder(tmp_path / "coco", 30), tmp_path / "all", Mapping())
    recs = read_coco(tmp_path / "all")
    assert all(r.meta["group"] == r.meta["sha256"] for r in recs)
    sizes = split(tmp_path / "all", tmp_path / "by_group")  # --by group, the default
    assert sum(sizes.values()) == 30 and sizes["train"] < 30 and sizes["val"] + sizes["test"] > 0
    by_hash = split(tmp_path / "all", tmp_path / "by_hash", by="hash")
    assert check([tmp_path / "by_hash" / n for n in by_hash]).ok  # no false "leak between splits (group)"

    y = tmp_path / "yolo"
    (y / "images").mkdir(parents=True)
    (y / "classes.txt").write_text("gun\n")
    f = tmp_path / "folder" / "gun"
    f.mkdir(parents=True)
    for i in range(2):
        cv2.imwrite(str(y / "images" / f"{i}.png"), _img(40 + i))
        cv2.imwrite(str(f / f"{i}.png"), _img(50 + i))
    for fmt, folder in (("yolo", y), ("imagefolder", tmp_path / "folder")):
        import_dataset(fmt, folder, tmp_path / fmt, Mapping())
        assert len({r.meta["group"] for r in read_coco(tmp_path / fmt)}) == 2, fmt

    g = tmp_path / "gdx" / "B0049"  # formats with real groups keep them: a GDXray series, a VOC parcel
    g.mkdir(parents=True)
    for k in (1, 2):
        cv2.imwrite(str(g / f"B0049_{k:04d}.png"), _img(60 + k))
    import_dataset("gdxray", tmp_path / "gdx", tmp_path / "o_gdx", Mapping())
    assert {r.meta["group"] for r in read_coco(tmp_path / "o_gdx")} == {"B0049"}


def _yolo(root: Path, names: str | None, labels: str = "0 0.5 0.5 0.25 0.5\n") -> Path:
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    cv2.imwrite(str(root / "images" / "a.png"), _img(1, 160, 120))
    (root / "labels" / "a.txt").write_text(labels)
    if names is not None:
        (root / "data.yaml").write_text(names)
    return root


def test_yolo_names_by_index_bad_data_yaml_and_a_corrupt_image(tmp_path: Path) -> None:
    y = _yolo(tmp_path / "dict", "names:\n  1: gun\n  2: bullet\n", "1 0.5 0.5 0.25 0.5\n2 0.1 0.1 0.1 0.1\n")
    import_dataset("yolo", y, tmp_path / "o_dict", Mapping())
    (rec,) = read_coco(tmp_path / "o_dict")
    assert [b["cls"] for b in rec.boxes] == ["firearm", "ammunition"]  # looked up by key, not by position

    for name, text in (("empty", ""), ("list", "- gun\n"), ("bad_names", "names: gun\n")):
        with pytest.raises(DatasetImportError, match=r"data\.yaml"):
            import_dataset("yolo", _yolo(tmp_path / name, text), tmp_path / f"o_{name}", Mapping())

    y = _yolo(tmp_path / "corrupt", "names: [gun]\n")
    (y / "images" / "bad.png").write_bytes(b"not an image")
    rep = import_dataset("yolo", y, tmp_path / "o_corrupt", Mapping())  # skipped and reported, as other formats do
    assert rep.images == 1 and rep.boxes == 1 and len(rep.skipped_images) == 1 and "bad.png" in rep.skipped_images[0]


def _strict_json(path: Path) -> Any:
    def refuse(c: str) -> None:
        raise ValueError(f"{c} in {path}")

    return json.loads(path.read_text(), parse_constant=refuse)


def test_invalid_boxes_are_skipped_and_reported(tmp_path: Path) -> None:
    v = tmp_path / "voc"
    (v / "JPEGImages").mkdir(parents=True)
    (v / "Annotations").mkdir()
    cv2.imwrite(str(v / "JPEGImages" / "P00001.jpg"), _img(2, 200, 100))
    box = "<object><name>Gun</name><bndbox><xmin>{}</xmin><ymin>10</ymin><xmax>{}</xmax><ymax>60</ymax></bndbox></object>"
    (v / "Annotations" / "P00001.xml").write_text(
        f"<annotation><filename>P00001.jpg</filename>{box.format(150, 20)}{box.format(20, 150)}</annotation>")
    rep = import_dataset("voc", v, tmp_path / "o_voc", Mapping())
    assert rep.boxes == 1 and len(rep.skipped_boxes) == 1 and "no area" in rep.skipped_boxes[0]
    ann = _strict_json(tmp_path / "o_voc" / "annotations.json")["annotations"]
    assert [a["bbox"] for a in ann] == [[20.0, 10.0, 130.0, 50.0]] and all(a["area"] > 0 for a in ann)

    y = _yolo(tmp_path / "yolo", "names: [gun]\n", "0 0.5 0.5 nan 0.2\n0 0.5 0.5 0.2 0.2\n0 0.5 oops 0.2 0.2\n0 0.5\n")
    rep = import_dataset("yolo", y, tmp_path / "o_yolo", Mapping())
    assert rep.boxes == 1 and len(rep.skipped_boxes) == 3
    assert "not four finite numbers" in rep.skipped_boxes[-1] and "a.txt:3" in " ".join(rep.skipped_boxes)
    assert len(_strict_json(tmp_path / "o_yolo" / "annotations.json")["annotations"]) == 1


@pytest.mark.parametrize(("text", "match"), [
    ("gun: [firearm]\n", r"label 'gun': expected a class name.*got a list"),
    ("gun: {clas: firearm}\n", r"label 'gun': unknown keys \['clas'\]"),
    ("gun: {class: [firearm]}\n", r"label 'gun': values must be names"),
    ("gun: {type: pistol}\n", r"label 'gun': needs 'class'"),
])
def test_malformed_mapping_entries_name_the_label(tmp_path: Path, text: str, match: str) -> None:
    (tmp_path / "map.yaml").write_text(text)
    with pytest.raises(DatasetImportError, match=match):
        Mapping.load(tmp_path / "map.yaml")


def test_a_photo_only_mapping_entry_in_an_xray_import_is_an_error_naming_the_label(tmp_path: Path) -> None:
    (tmp_path / "map.yaml").write_text("gun: {photo: revolver}\n")
    mapping = Mapping.load(tmp_path / "map.yaml")
    f = tmp_path / "folder" / "gun"
    f.mkdir(parents=True)
    cv2.imwrite(str(f / "1.png"), _img(3))
    with pytest.raises(DatasetImportError, match=r"label 'gun'.*photo.*--photos"):
        import_dataset("imagefolder", tmp_path / "folder", tmp_path / "xray", mapping)
    rep = import_dataset("imagefolder", tmp_path / "folder", tmp_path / "photos", mapping, photos=True)
    assert rep.images == 1 and read_coco(tmp_path / "photos")[0].meta["label"] == "revolver"
    (tmp_path / "both.yaml").write_text("gun: {class: firearm, type: revolver, photo: revolver}\n")
    import_dataset("imagefolder", tmp_path / "folder", tmp_path / "both", Mapping.load(tmp_path / "both.yaml"))
    assert read_coco(tmp_path / "both")[0].meta["image_labels"] == ["firearm"]


def test_the_import_command_names_the_boxes_it_skipped(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from armscan.serve.cli import main

    y = _yolo(tmp_path / "yolo", "names: [gun]\n", "0 0.5 0.5 nan 0.2\n0 0.5 0.5 0.2 0.2\n")
    assert main(["data", "import", "yolo", str(y), "--out", str(tmp_path / "out")]) == 0
    err = capsys.readouterr().err
    assert "skipped" in err and "a.png: box [nan" in err and "not four finite numbers" in err, err
