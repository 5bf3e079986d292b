"""The runtime (inference, readers, the scan CLI) must import and screen without torch installed.

A subprocess blocks every import of torch, torchvision, onnx and pycocotools, then screens a scan
with an exported model through the public API and the CLI. The declared runtime dependencies in
pyproject.toml must not include torch either.
"""

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

pytest.importorskip("torch")  # only to export the model the subprocess uses

BLOCKER = """
import sys, importlib.abc
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split('.')[0] in ('torch', 'torchvision', 'onnx', 'onnxscript', 'pycocotools'):
            raise ModuleNotFoundError(f'blocked {name}', name=name)
sys.meta_path.insert(0, Block())
"""


def test_runtime_dependencies_exclude_torch():
    deps = tomllib.loads(Path(__file__).parents[1].joinpath("pyproject.toml").read_text())["project"]["dependencies"]
    assert not [d for d in deps if d.split("=")[0].split(">")[0].strip() in ("torch", "torchvision")]


def test_inference_screens_a_scan_without_torch(tiny_onnx, tiny_coco):
    image = sorted((tiny_coco / "images").glob("*.png"))[0]
    code = BLOCKER + f"""
from armscan.inference.engine import Detector
from armscan.datasets.readers import read_image
det = Detector.from_onnx({str(tiny_onnx)!r})
res = det.detect(read_image({str(image)!r}), include_below_alarm=True)
assert res.decision in ('clear', 'alarm')
from armscan.serve.cli import main
assert main(['scan', {str(image)!r}, '--model', {str(tiny_onnx)!r}, '--json']) == 0
print('TORCH_FREE_OK', 'torch' in sys.modules)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "TORCH_FREE_OK False" in out.stdout


def test_training_commands_say_which_extra_they_need():
    code = BLOCKER + """
from armscan.serve.cli import main
raise SystemExit(main(['train']))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "pip install '.[train]'" in out.stderr
