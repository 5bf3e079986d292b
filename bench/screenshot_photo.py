"""Screenshot of a seizure photo's result in the officers' web page, for docs/img/service-photo.png.

Starts ``armscan serve`` on a free loopback port with a fresh data folder and a models folder holding the bundled
X-ray detector and a photo model, creates an officer with the CLI, then, in headless Chromium (Debian's
/usr/bin/chromium through the playwright package, no browser download): signs in, chooses "Seizure photo", sends a
rendered photo of a handgun lying beside an ID-1 card, opens its result and saves a full-page screenshot.

    python bench/screenshot_photo.py                                  # with models/bundled/armscan-photo.onnx
    python bench/screenshot_photo.py --photo-model runs/photo/armscan-photo.onnx
    python bench/screenshot_photo.py --tiny       # no photo model yet: an untrained tiny one (needs torch, ~1 min)

With ``--tiny`` the model knows nothing, so the page shows it abstaining ("not identified"); regenerate the
screenshot with the real model once it is bundled. Exit status: 0 when the screenshot is written, 2 when it cannot
be set up (no photo model, no Chromium or playwright, the server does not start or the page fails).
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import cv2

REPO = Path(__file__).resolve().parent.parent
BUNDLED = REPO / "models" / "bundled"
CHROMIUM = Path("/usr/bin/chromium")
CLI = [sys.executable, "-m", "armscan.serve.cli"]
OFFICER, PASSWORD = "olga", "Screenshot-Passw0rd-7"


class SetupError(Exception):
    """The screenshot cannot be taken; the message says which step failed."""


def tiny_photo_model(out: Path) -> Path:
    """An untrained photo model at 128 px (2 short epochs on 24 renders), exported with its metadata."""
    from armscan.training.config import TrainConfig
    from armscan.training.photo_eval import export_photo
    from armscan.training.train import train

    cfg = TrainConfig.load(
        None,
        {
            "task": "photo",
            "model": "armscan_photo_small",
            "input_size": 128,
            "batch_size": 4,
            "epochs": 2,
            "iters_per_epoch": 2,
            "warmup_iters": 2,
            "out_dir": str(out / "train"),
            "val_images": 0,
            "data": {"kind": "photo", "cache_size": 24},
        },
    )
    onnx = out / "armscan-photo.onnx"
    export_photo(train(cfg), onnx, version="tiny-untrained", calib_n=40)
    return onnx


def handgun_photo(out: Path, first_seed: int) -> Path:
    """The first rendered photo from ``first_seed`` of a handgun beside an ID-1 card, as a JPEG."""
    from armscan.datasets.photo import render_photo

    for seed in range(first_seed, first_seed + 500):
        s = render_photo(seed)
        if s.reference == "card" and s.label in ("semi_auto_pistol", "revolver"):
            path = out / f"seizure-{seed}.jpg"
            cv2.imwrite(str(path), s.image, [cv2.IMWRITE_JPEG_QUALITY, 92])
            return path
    raise SetupError(f"no handgun beside a card among seeds {first_seed}..{first_seed + 499}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_healthy(base: str, proc: subprocess.Popen[bytes], log: Path, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SetupError(f"armscan serve exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{base}/healthz", timeout=2) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.3)
    raise SetupError(f"armscan serve did not answer /healthz within {timeout_s:.0f} s:\n{log.read_text()[-3000:]}")


def shoot(base: str, photo: Path, out: Path) -> None:
    """Sign in, send ``photo`` as a seizure photo, open its result and save the page to ``out``."""
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_context(viewport={"width": 1440, "height": 1000}).new_page()
            page.set_default_timeout(30_000)
            page.goto(f"{base}/")
            page.fill("#username", OFFICER)
            page.fill("#password", PASSWORD)
            page.click("#login-form button[type=submit]")
            expect(page.locator("#user-name")).to_have_text(OFFICER)
            expect(page.locator("#kind-photo")).to_be_enabled()
            page.check("#kind-photo")
            page.set_input_files("#file-input", str(photo))
            item = page.locator(f'#queue li[data-file="{photo.name}"]')
            expect(item).to_have_attribute("data-status", "done")
            item.get_by_role("link", name="Open result").click()
            expect(page.locator("#banner")).to_have_attribute("data-kind", "photo")
            page.wait_for_function(
                "() => { const i = document.querySelector('.scan-img'); return i?.complete && i.naturalWidth > 0; }"
            )
            out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(out), full_page=True)
        finally:
            browser.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photo-model", type=Path, default=BUNDLED / "armscan-photo.onnx", help="exported photo model")
    ap.add_argument("--tiny", action="store_true", help="use an untrained tiny photo model (when none exists yet)")
    ap.add_argument("--seed", type=int, default=0, help="render from the first handgun-with-card photo at or after this seed")
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "img" / "service-photo.png")
    args = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="armscan-shot-"))
    proc: subprocess.Popen[bytes] | None = None
    try:
        if not CHROMIUM.exists():
            raise SetupError(f"Chromium is not installed at {CHROMIUM} (Debian: apt-get install chromium)")
        models = work / "models"
        models.mkdir()
        photo_model = tiny_photo_model(work) if args.tiny else args.photo_model
        if not photo_model.is_file():
            raise SetupError(f"no photo model at {photo_model}; pass --photo-model PATH, or --tiny for an untrained one")
        shutil.copy(BUNDLED / "armscan-det.onnx", models / "armscan-det.onnx")
        shutil.copy(photo_model, models / "armscan-photo.onnx")
        data = work / "data"
        env = {
            **os.environ,
            "ARMSCAN_DATA_DIR": str(data),
            "ARMSCAN_DATABASE_URL": f"sqlite:///{data}/armscan.db",
            "ARMSCAN_MODELS_DIR": str(models),
        }
        r = subprocess.run(
            [*CLI, "users", "create", "--username", OFFICER, "--role", "officer", "--password-stdin"],
            input=PASSWORD + "\n",
            text=True,
            capture_output=True,
            env=env,
            cwd=REPO,
            timeout=120,
        )
        if r.returncode != 0:
            raise SetupError(f"creating the officer failed:\n{r.stderr}")
        port, log = _free_port(), work / "server.log"
        with log.open("wb") as f:
            proc = subprocess.Popen(
                [*CLI, "serve", "--host", "127.0.0.1", "--port", str(port)], stdout=f, stderr=subprocess.STDOUT, env=env, cwd=REPO
            )
        base = f"http://127.0.0.1:{port}"
        _wait_healthy(base, proc, log)
        shoot(base, handgun_photo(work, args.seed), args.out)
    except (SetupError, OSError, AssertionError) as exc:
        print(f"screenshot_photo: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # playwright's timeouts and errors: say what failed, keep the exit status documented
        print(f"screenshot_photo: the page failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(work, ignore_errors=True)
    print(f"wrote {args.out} ({'an untrained tiny photo model' if args.tiny else args.photo_model})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
