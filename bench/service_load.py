"""Load benchmark of the screening service on loopback: how many 1024x768 JPEG uploads per second it sustains,
with what latency and memory. Bounded in request count and time; it reports, it does not assert.

    python bench/service_load.py --requests 5000 --concurrency 4
    python bench/service_load.py --requests 500 --sweep 1,2,4,8        # one row per concurrency
    python bench/service_load.py --requests 3000 --rate 25 --concurrency 16 --json runs/service_load.json

It creates a temporary data folder (SQLite), an admin `bench` and an API key with `armscan.serve.cli users`,
starts `python -m armscan.serve.cli serve --host 127.0.0.1 --port P` (rate limit off), waits for /healthz,
sends a warm-up, then POSTs /v1/scans (multipart `file`, header X-API-Key) from a pool of threads, each
request cycling through a few distinct generated scans. Without --rate each thread sends the next request as
soon as its last one answered (closed loop); with --rate R, request i is due at i/R s (open loop) and its
latency counts from that time, so a saturated server cannot hide its queue; scans/s is then answered scans per
scheduled second (at most R), and whether the server kept up shows in the latency. --max-seconds bounds the measured
requests (a sweep splits it between levels). The server is always stopped at exit.

Prints one row per concurrency (errors by status, sustained scans/s, latency percentiles, server resident
memory from /proc: VmRSS now and VmHWM peak, server and client CPU per request) and the issue's targets
(>= 25 scans/s, p99 <= 300 ms, no errors, RSS <= 300 MB after 5,000 requests) marked PASS or FAIL.
Exit status: 2 when the server cannot be set up or started, 0 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import httpx
import numpy as np

from armscan.datasets.synth.scene import generate

TARGET_RATE, TARGET_P99_MS, TARGET_RSS_MB, TARGET_AFTER = 25.0, 300.0, 300.0, 5000
CLI = [sys.executable, "-m", "armscan.serve.cli"]
TICKS = os.sysconf("SC_CLK_TCK")


class SetupError(Exception):
    """The service could not be set up or started; the message says which step failed."""


@dataclass
class Run:
    concurrency: int
    rate: float | None
    requests: int = 0
    ok: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    duration_s: float = 0.0
    scans_per_s: float = 0.0
    p50_ms: float = 0.0
    p90_ms: float = 0.0
    p99_ms: float = 0.0
    max_ms: float = 0.0
    rss_mb: float = 0.0
    peak_rss_mb: float = 0.0
    server_cpu_ms_per_req: float = 0.0
    client_cpu_ms_per_req: float = 0.0
    total_requests_after: int = 0
    stopped_by_time: bool = False


# ---- the server ---------------------------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cli(args: list[str], env: dict[str, str], stdin: str | None = None) -> str:
    p = subprocess.run(CLI + args, env=env, input=stdin, capture_output=True, text=True, timeout=120)
    if p.returncode != 0:
        raise SetupError(f"`armscan.serve.cli {' '.join(args)}` exited {p.returncode}: {p.stderr.strip()[-800:]}")
    return p.stdout


def _tree(pid: int) -> list[int]:
    """pid and its descendants (uvicorn may run worker processes)."""
    children: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(d.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children.get(p, [])
    return out


def _memory_mb(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) in MB, summed over the server's process tree."""
    rss = hwm = 0.0
    for p in _tree(pid):
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    rss += int(line.split()[1]) / 1024
                elif line.startswith("VmHWM:"):
                    hwm += int(line.split()[1]) / 1024
        except OSError:
            pass
    return rss, hwm


def _cpu_s(pid: int) -> float:
    """utime + stime of the server's process tree, in seconds."""
    total = 0
    for p in _tree(pid):
        try:
            f = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(f[11]) + int(f[12])
        except (OSError, IndexError, ValueError):
            pass
    return total / TICKS


class Server:
    """`armscan.serve.cli serve` in its own process group, with a fresh data folder, an admin and an API key."""

    def __init__(self, port: int, extra_env: dict[str, str], keep: bool) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="armscan-bench-"))
        self.keep = keep
        self.port = port or _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "ARMSCAN_DATA_DIR": str(self.dir), "ARMSCAN_DATABASE_URL": f"sqlite:///{self.dir}/armscan.db",
                    "ARMSCAN_RATE_LIMIT_PER_MINUTE": "0", **extra_env}
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = self.dir / "server.log"

    def create_key(self) -> str:
        _cli(["users", "create-admin", "--username", "bench", "--password-stdin"], self.env, secrets.token_urlsafe(18) + "\n")
        lines = [s.strip() for s in _cli(["users", "api-key", "bench"], self.env).splitlines() if s.strip()]
        if not lines:
            raise SetupError("`armscan.serve.cli users api-key bench` printed no key")
        return lines[-1]

    def start(self, timeout_s: float) -> None:
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(CLI + ["serve", "--host", "127.0.0.1", "--port", str(self.port)], env=self.env,
                                         stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout_s
        with httpx.Client(trust_env=False, timeout=2.0) as c:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise SetupError(f"the server exited with {self.proc.returncode} before /healthz answered:\n"
                                     f"{self.log_tail()}")
                try:
                    if c.get(f"{self.url}/healthz").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                time.sleep(0.2)
        raise SetupError(f"/healthz did not answer 200 within {timeout_s:.0f} s:\n{self.log_tail()}")

    def log_tail(self, n: int = 25) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no server log)"

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
            except ProcessLookupError:
                pass
        if not self.keep:
            shutil.rmtree(self.dir, ignore_errors=True)


# ---- the client ---------------------------------------------------------------------------------------------

def _jpegs(n: int, quality: int) -> list[bytes]:
    out = []
    for i in range(n):
        ok, buf = cv2.imencode(".jpg", generate(700_000_000 + i, 1024, 768).image, [cv2.IMWRITE_JPEG_QUALITY, quality])
        assert ok
        out.append(buf.tobytes())
    return out


def _load(client: httpx.Client, jpegs: list[bytes], n: int, concurrency: int, rate: float | None,
          max_s: float) -> tuple[list[float], Counter[str], float, float, bool]:
    """Send n uploads from `concurrency` threads.

    Returns latencies (ms) of the 2xx answers, outcomes by status or exception, the wall time (s), the time the
    sent requests were scheduled over (s; the wall time without --rate) and whether --max-seconds stopped it.
    """
    lock = threading.Lock()
    next_i = iter(range(n))
    lat: list[float] = []
    outcomes: Counter[str] = Counter()
    t0 = time.perf_counter()
    deadline = t0 + max_s
    stopped = threading.Event()
    last_due = -1

    def worker() -> None:
        nonlocal last_due
        while True:
            with lock:
                i = next(next_i, None)
            if i is None:
                return
            start = time.perf_counter()
            if rate:
                due = t0 + i / rate
                if due > start:
                    time.sleep(due - start)
                start = due  # latency from the due time: a late start is the server's queue, not hidden
            if time.perf_counter() > deadline:
                stopped.set()
                return
            try:
                r = client.post("/v1/scans", files={"file": (f"scan_{i % len(jpegs)}.jpg", jpegs[i % len(jpegs)], "image/jpeg")})
                r.read()
                key = str(r.status_code)
            except httpx.HTTPError as e:
                key = type(e).__name__
            except RuntimeError:  # the client was closed under us: interrupted, the main thread is leaving
                return
            ms = (time.perf_counter() - start) * 1000
            with lock:
                outcomes[key] += 1
                last_due = max(last_due, i)
                if key.startswith("2"):
                    lat.append(ms)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    return lat, outcomes, wall, (last_due + 1) / rate if rate else wall, stopped.is_set()


def _client_cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _measure(server: Server, client: httpx.Client, jpegs: list[bytes], n: int, concurrency: int, rate: float | None,
             max_s: float, done_before: int) -> Run:
    assert server.proc is not None
    cpu0, ccpu0 = _cpu_s(server.proc.pid), _client_cpu_s()
    lat, outcomes, dur, span, stopped = _load(client, jpegs, n, concurrency, rate, max_s)
    sent = sum(outcomes.values())
    run = Run(concurrency, rate, requests=sent, ok=len(lat), duration_s=dur, stopped_by_time=stopped,
              errors={k: v for k, v in sorted(outcomes.items()) if not k.startswith("2")},
              total_requests_after=done_before + sent)
    if lat:
        run.p50_ms, run.p90_ms, run.p99_ms = (float(q) for q in np.percentile(lat, [50, 90, 99]))
        run.max_ms = max(lat)
        run.scans_per_s = len(lat) / span
    run.rss_mb, run.peak_rss_mb = _memory_mb(server.proc.pid)
    run.server_cpu_ms_per_req = (_cpu_s(server.proc.pid) - cpu0) * 1000 / max(sent, 1)
    run.client_cpu_ms_per_req = (_client_cpu_s() - ccpu0) * 1000 / max(sent, 1)
    return run


# ---- the report ---------------------------------------------------------------------------------------------

_HEAD = (f"{'conc':>4} {'rate/s':>6} {'sent':>6} {'ok':>6} {'errors':<18} {'time s':>7} {'scans/s':>8} {'p50':>6} {'p90':>6} "
         f"{'p99':>6} {'max':>6} {'RSS MB':>7} {'peak':>6} {'srv CPU':>8} {'cli CPU':>8}  targets")


def _mark(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def _targets(r: Run) -> dict[str, bool]:
    t = {"scans/s": r.scans_per_s >= TARGET_RATE, "p99": r.ok > 0 and r.p99_ms <= TARGET_P99_MS, "errors": not r.errors}
    if r.total_requests_after >= TARGET_AFTER:
        t["RSS"] = r.rss_mb <= TARGET_RSS_MB
    return t


def _row(r: Run) -> str:
    errs = ",".join(f"{k}x{v}" for k, v in r.errors.items()) or "0"
    marks = " ".join(f"{k} {_mark(v)}" for k, v in _targets(r).items())
    return (f"{r.concurrency:>4} {r.rate or '-':>6} {r.requests:>6} {r.ok:>6} {errs:<18.18} {r.duration_s:>7.1f} "
            f"{r.scans_per_s:>8.1f} {r.p50_ms:>6.0f} {r.p90_ms:>6.0f} {r.p99_ms:>6.0f} {r.max_ms:>6.0f} {r.rss_mb:>7.0f} "
            f"{r.peak_rss_mb:>6.0f} {r.server_cpu_ms_per_req:>6.1f}ms {r.client_cpu_ms_per_req:>6.1f}ms  {marks}"
            + ("  (time limit)" if r.stopped_by_time else ""))


def _ignore_signals() -> None:
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)


def _on_signal(signum: int, _frame: object) -> None:
    """First Ctrl-C or SIGTERM: leave through the cleanup; later ones (timeout(1) sends two) must not cut it short."""
    _ignore_signals()
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    sys.exit(128 + signum)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=5000, help="measured requests (per level with --sweep)")
    ap.add_argument("--concurrency", type=int, default=4, help="client threads, i.e. requests in flight at most")
    ap.add_argument("--sweep", type=str, default=None, help="comma-separated concurrencies, one row each, e.g. 1,2,4,8")
    ap.add_argument("--rate", type=float, default=None, help="fixed arrival rate in requests/s (open loop)")
    ap.add_argument("--max-seconds", type=float, default=600.0, help="time budget of the measured requests, all levels")
    ap.add_argument("--warmup", type=int, default=20, help="requests sent before measuring, not counted")
    ap.add_argument("--port", type=int, default=0, help="server port on 127.0.0.1 (0: a free one)")
    ap.add_argument("--images", type=int, default=6, help="distinct generated scans, cycled")
    ap.add_argument("--quality", type=int, default=90, help="JPEG quality")
    ap.add_argument("--start-timeout", type=float, default=120.0, help="seconds to wait for /healthz")
    ap.add_argument("--env", action="append", default=[], metavar="KEY=VALUE", help="extra server environment, repeatable")
    ap.add_argument("--keep", action="store_true", help="keep the temporary data folder and server log")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures to this JSON file")
    a = ap.parse_args()
    levels = [int(c) for c in a.sweep.split(",")] if a.sweep else [a.concurrency]
    if any(c < 1 for c in levels) or a.requests < 1:
        ap.error("--requests and every concurrency must be at least 1")
    if a.rate is not None and a.rate <= 0:
        ap.error(f"--rate must be positive, got {a.rate}")
    extra = dict(kv.split("=", 1) for kv in a.env)

    jpegs = _jpegs(a.images, a.quality)
    server = Server(a.port, extra, a.keep)
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    try:
        try:
            key = server.create_key()
            server.start(a.start_timeout)
        except (SetupError, OSError, subprocess.TimeoutExpired) as e:
            print(f"service_load: cannot start the service: {e}", file=sys.stderr)
            return 2
        assert server.proc is not None
        pid = server.proc.pid
        print(f"server {server.url} pid {pid}, data {server.dir}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}; "
              f"{len(jpegs)} distinct 1024x768 JPEG q{a.quality}, {np.mean([len(j) for j in jpegs]) / 1024:.0f} KB on average")
        rss_start = _memory_mb(pid)
        with httpx.Client(base_url=server.url, headers={"X-API-Key": key}, trust_env=False, timeout=60.0,
                          limits=httpx.Limits(max_connections=max(levels), max_keepalive_connections=max(levels))) as client:
            r = client.post("/v1/scans", files={"file": ("scan_0.jpg", jpegs[0], "image/jpeg")})
            body = r.json() if r.headers.get("content-type", "").startswith("application/json") else r.text[:200]
            print(f"first answer: {r.status_code} {sorted(body) if isinstance(body, dict) else body}")
            warm = _measure(server, client, jpegs, max(a.warmup - 1, 1), min(levels[0], 2), None, a.max_seconds, 1)
            print(f"server RSS: at start {rss_start[0]:.0f} MB, after {warm.total_requests_after} warm-up requests "
                  f"{warm.rss_mb:.0f} MB (peak {warm.peak_rss_mb:.0f}); warm-up errors: {warm.errors or 'none'}")
            due = "; latency counted from the due time" if a.rate else ""
            print(f"\nlatency in ms; CPU per request (server process tree, this client){due}")
            print(_HEAD)
            runs, done = [], warm.total_requests_after
            for c in levels:
                run = _measure(server, client, jpegs, a.requests, c, a.rate, a.max_seconds / len(levels), done)
                done = run.total_requests_after
                runs.append(run)
                print(_row(run), flush=True)
                if server.proc.poll() is not None:
                    print(f"the server exited with {server.proc.returncode} during the run:\n{server.log_tail()}")
                    break
        print(f"\ntargets: >= {TARGET_RATE:.0f} scans/s sustained, p99 <= {TARGET_P99_MS:.0f} ms, no errors, "
              f"server RSS <= {TARGET_RSS_MB:.0f} MB after {TARGET_AFTER} requests (RSS judged once {TARGET_AFTER} were sent)")
        last = runs[-1]
        print("last row: " + ", ".join(f"{k} {_mark(v)}" for k, v in _targets(last).items())
              + f"; server RSS after {last.total_requests_after} requests {last.rss_mb:.0f} MB, peak {last.peak_rss_mb:.0f} MB"
              + f"; load average now {os.getloadavg()[0]:.1f}")
        if a.json:
            a.json.parent.mkdir(parents=True, exist_ok=True)
            a.json.write_text(json.dumps({
                "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(a).items()},
                "cpus": os.cpu_count(), "jpeg_kb": [len(j) / 1024 for j in jpegs],
                "rss_mb_start": rss_start[0], "rss_mb_after_warmup": warm.rss_mb,
                "targets": {"scans_per_s": TARGET_RATE, "p99_ms": TARGET_P99_MS, "rss_mb": TARGET_RSS_MB, "after": TARGET_AFTER},
                "runs": [asdict(r) | {"pass": _targets(r)} for r in runs]}, indent=1))
            print(f"figures written to {a.json}")
        return 0
    finally:
        _ignore_signals()
        server.stop()


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("service_load: interrupted, server stopped", file=sys.stderr)
        sys.exit(130)
