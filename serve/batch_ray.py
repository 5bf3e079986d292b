"""``armscan batch --engine ray``: the batch pipeline of :mod:`armscan.serve.batch` on Ray Data.

The driver (the ``armscan batch`` process) expands the inputs and reads the ledger exactly as the local
engine does, sends the inputs still to do through ``map_batches`` to a pool of actors, each holding one
onnxruntime session, and appends every row to ``scans.jsonl`` as soon as it comes back. The outputs are
the local engine's: the same ledger rows, thumbnails, TDRs, reports and exit codes, and a rerun after a
crash (even ``kill -9`` of the driver) screens only the inputs that have no row yet. Rows are written in
the order they finish, not in input order.

On a cluster the actors decode the scans and write the thumbnails and TDRs themselves, so the inputs,
the model and ``--out`` must be on storage that every node mounts at the same path (NFS, CephFS, ...).
Relative input paths resolve against the driver's working directory, which must exist on every node.

    armscan batch /data/night1 --out /data/runs/night1 --engine ray                 # a local Ray instance
    armscan batch /data/night1 --out /data/runs/night1 --engine ray --address auto  # the cluster of this node

Needs the ``ray`` extra: ``pip install 'armscan[ray]'``.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import socket
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from tqdm import tqdm

from armscan.inference.engine import Detector, ModelLoadError
from armscan.serve.batch import LedgerError, LedgerWriter, finish, load_item, prepare, screen_loaded
from armscan.serve.batch_inputs import ManifestError, ScanInput

ROWS_PER_CALL = 8  # inputs per actor call; each call's rows reach the ledger together, when it ends
MAX_CALLS = 1000  # a large batch gets more rows per call instead: each call is a Ray Data block


def _pack(items: list[ScanInput]) -> list[bytes]:
    """Each item with its loader, for the Ray workers. Loaders are closures, hence cloudpickle."""
    from ray import cloudpickle

    return [cloudpickle.dumps(it) for it in items]  # type: ignore[no-untyped-call]


class _Screener:
    """A Ray Data actor: loads the model once, then decodes and screens the inputs it is given."""

    def __init__(self, model: str, out: str, threads: int, cwd: str) -> None:
        os.chdir(cwd)  # relative input paths mean what they mean for the driver
        self._detector = Detector.from_onnx(model, threads=threads)
        self._out = Path(out)
        self._decoder = ThreadPoolExecutor(1)  # decodes the next input while this one is screened

    def __call__(self, batch: dict[str, NDArray[Any]]) -> dict[str, NDArray[np.str_]]:
        from ray import cloudpickle

        reduce_to = self._detector.spec.size
        items: list[ScanInput] = [cloudpickle.loads(b) for b in batch["item"]]
        loaded = self._decoder.map(lambda it: load_item(it, reduce_to), items)
        rows = [json.dumps(screen_loaded(self._detector, self._out, x)) for x in loaded]
        return {"row": np.asarray(rows, dtype=np.str_)}


def _error(message: str) -> int:
    print(f"armscan: error: {message}", file=sys.stderr)
    return 2


def _check_listening(address: str) -> None:
    """Fail in seconds, not minutes, when nothing answers at ``[ray://]HOST:PORT`` (Ray itself waits long)."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"invalid Ray address {address!r}: use auto, HOST:PORT or ray://HOST:PORT")
    with socket.create_connection((host, int(port)), timeout=5):
        pass


def _connect(address: str | None) -> bool:
    """Join Ray (already initialised in this process: reuse it); True if this call started it."""
    import ray

    if ray.is_initialized():
        return False
    if address not in (None, "auto", "local"):
        _check_listening(address)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no usage reports sent from a screening site
    options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.WARNING}
    if address is None:  # a fresh local instance, even if this machine runs a cluster
        options |= {"address": "local", "num_cpus": len(os.sched_getaffinity(0))}
        os.environ.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(32))  # its own token, not one saved in ~/.ray
    else:
        options["address"] = address
    ray.init(**options)
    return True


def _quiet_ray_data() -> None:
    """Ray Data's own progress bars and INFO lines off: the driver's bar counts rows, as the local engine's does."""
    import ray.data

    ray.data.DataContext.get_current().enable_progress_bars = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    logging.getLogger("ray.data._internal.progress").setLevel(logging.ERROR)  # "progress bars disabled"


def run_batch_ray(inputs: list[str], out: Path, model: Path, address: str | None = None, workers: int | None = None,
                  threads: int = 1, progress: bool = True, rows_per_call: int = ROWS_PER_CALL) -> int:
    """Screen every input not yet in ``out``'s ledger on Ray; returns the exit code of ``run_batch``.

    ``address``: None starts a local Ray instance for this job; ``"auto"`` joins the cluster this node
    belongs to (``ray start``); ``"HOST:6379"`` a given head node. ``workers`` actors (default: the CPUs
    Ray has free, divided by ``threads``) each hold one onnxruntime session of ``threads`` threads.
    """
    try:
        import ray
        import ray.data
    except ImportError:
        return _error("--engine ray needs Ray, which is not installed: pip install 'armscan[ray]'")
    out, model = out.absolute(), model.absolute()
    try:
        Detector.from_onnx(model, threads=1)  # an unusable model stops the job here, not in every actor
        todo, _ = prepare(inputs, out)
    except (ModelLoadError, ManifestError, LedgerError, OSError) as exc:
        return _error(str(exc))
    if not todo:
        return finish(out)
    try:
        started = _connect(address)
    except (OSError, RuntimeError, ValueError, ImportError) as exc:  # ImportError: ray:// needs 'ray[client]'
        if address is None:
            return _error(f"cannot start a local Ray instance ({exc})")
        return _error(f"cannot connect to Ray at {address} ({exc}); start the cluster with 'ray start --head' "
                      "on its head node, or leave out --address for a local instance")
    per_call = max(rows_per_call, -(-len(todo) // MAX_CALLS))
    calls = -(-len(todo) // per_call)
    free_cpus = int(ray.available_resources().get("CPU", 1))  # type: ignore[no-untyped-call,unused-ignore]
    n_workers = min(workers or max(1, free_cpus // threads), calls)
    problem = _unplaceable(threads, n_workers, free_cpus, _largest_node_cpus(ray))
    if problem:  # Ray would wait forever for actors it cannot place
        if started:
            ray.shutdown()
        return _error(problem)
    ledger = LedgerWriter(out)
    bar = tqdm(total=len(todo), unit="scan", desc="screening", disable=not progress, mininterval=2.0)
    try:
        _quiet_ray_data()
        ds = ray.data.from_items([{"item": b} for b in _pack(todo)], override_num_blocks=calls).map_batches(
            _Screener, batch_size=per_call, compute=ray.data.ActorPoolStrategy(size=n_workers), num_cpus=threads,
            fn_constructor_kwargs={"model": str(model), "out": str(out), "threads": threads, "cwd": os.getcwd()})
        _drain(ds.iter_rows(), ledger.write, bar.update)
    except ray.exceptions.RayError as exc:
        return _error(f"the Ray job failed ({exc}); what was screened is kept: rerun the same command to resume")
    finally:
        ledger.close()
        bar.close()
        if started:
            ray.shutdown()
    return finish(out)


def _largest_node_cpus(ray: Any) -> int:
    """The CPUs of the largest live node of the Ray cluster (an actor's CPUs must fit on one node)."""
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    return int(max((n.get("Resources", {}).get("CPU", 0) for n in nodes), default=0))


def _unplaceable(threads: int, workers: int, free_cpus: int, node_cpus: int) -> str:
    """Why ``workers`` actors of ``threads`` CPUs each cannot all run on the cluster ('' if they can)."""
    if threads > node_cpus:
        return (f"--threads {threads} is more CPUs than the largest Ray node has ({node_cpus}): no screening actor "
                f"could start; use --threads {max(node_cpus, 1)} or fewer")
    if workers * threads > free_cpus:
        return (f"--workers {workers} x --threads {threads} needs {workers * threads} CPUs, but the Ray cluster has "
                f"{free_cpus} free: use fewer workers or threads (or leave out --workers to fit the free CPUs)")
    return ""


def _drain(rows: Any, write: Callable[[dict[str, Any]], None], tick: Callable[[int], Any]) -> None:
    """Write each row once as it arrives (a retried Ray task must not add a second row)."""
    seen: set[str] = set()
    for r in rows:
        row = json.loads(r["row"])
        if row["key"] not in seen:
            seen.add(row["key"])
            write(row)
            tick(1)
