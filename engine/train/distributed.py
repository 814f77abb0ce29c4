"""Data-parallel training on several GPUs (or several CPU processes with gloo) with torch.distributed.

How a distributed run is put together (docs/training.md, "Several GPUs"):

- `xtts-ft train ... --gpus 0,1` writes run_config.json with `gpus`, `world_size`, then starts
  `python -m engine.train.distributed R` detached. That launcher is torchrun itself, used as a
  library (`torch.distributed.launcher.api.elastic_launch`, the code behind `torchrun`): it
  starts one `engine.train.worker R` per GPU with the standard RANK / LOCAL_RANK / WORLD_SIZE /
  MASTER_ADDR environment and a rendezvous (standalone, or `--nnodes` + `--rdzv-endpoint`).
- Each worker pins its GPU (CUDA_VISIBLE_DEVICES = its one GPU, so coqui's Trainer sees a single
  device and never starts its own DDP), joins the process group (nccl on CUDA, gloo on CPU)
  and wraps the XTTS GPT in `torch.nn.parallel.DistributedDataParallel`.
- A DistributedSampler gives each rank every W-th item; every item's random clip / conditioning
  draw is seeded by (seed, epoch, item number), so the data of a run does not depend on the
  number of processes: 2 ranks x batch 1 see the same clips as 1 process x batch 1 x accum 2.
- One tiny all-reduce per step carries the step losses (the logged loss is the mean over all
  ranks), the stop request and the early-stop decision, so every rank stops after the same
  optimizer step. Every `gpu_sample_seconds` the ranks all-gather their GPU samples.
- Only global rank 0 writes events.jsonl, checkpoints, the best model and samples.
- A rank that fails records its reason in torchrun's error file; the launcher picks the root
  cause (a rank whose error is not "lost contact with another rank") and, when rank 0 has not
  written a final state, writes `failed` with that rank's reason.
"""

from __future__ import annotations

import json
import math
import os
import socket
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

COMM_ERROR_PREFIX = "lost contact with another rank"


# ---------------------------------------------------------------------------- options
class GpuSpecError(ValueError):
    pass


def parse_gpus(spec: str, available: int | None = None) -> list[int]:
    """'' -> [] (one process, as before); '0,1' -> [0, 1]; 'all' -> every visible GPU."""
    spec = (spec or "").strip().lower()
    if not spec:
        return []
    if spec == "all":
        if available is None:
            available = _cuda_count()
        if available < 1:
            raise GpuSpecError("--gpus all: no CUDA GPU is visible")
        return list(range(available))
    out: list[int] = []
    for part in spec.split(","):
        part = part.strip()
        if not part.isdigit():
            raise GpuSpecError(f"--gpus {spec!r}: expected GPU indices like 0,1 or 'all'")
        i = int(part)
        if i in out:
            raise GpuSpecError(f"--gpus {spec!r}: GPU {i} is listed twice")
        out.append(i)
    if available is not None and any(i >= available for i in out):
        raise GpuSpecError(f"--gpus {spec!r}: only {available} GPU(s) visible (indices 0..{available - 1})")
    return out


def _cuda_count() -> int:
    try:
        import torch

        return torch.cuda.device_count() if torch.cuda.is_available() else 0
    except Exception:  # noqa: BLE001
        return 0


def resolve_layout(cfg: dict, available: int | None = None) -> dict:
    """Fill gpus / nproc_per_node / world_size / backend into a run config (validated)."""
    gpus = parse_gpus(cfg.get("gpus") or "", available)
    cpu_procs = int(cfg.get("cpu_processes") or 0)
    nnodes = int(cfg.get("nnodes") or 1)
    if gpus and cpu_procs:
        raise GpuSpecError("--gpus and --cpu-processes exclude each other")
    if gpus and cfg.get("device") == "cpu":
        raise GpuSpecError("--gpus with --device cpu: use --cpu-processes N for several CPU processes")
    if nnodes > 1 and not cfg.get("rdzv_endpoint"):
        raise GpuSpecError("--nnodes > 1 needs --rdzv-endpoint HOST:PORT (a host every node can reach)")
    nproc = len(gpus) or cpu_procs or 1
    cfg["gpus"] = ",".join(map(str, gpus))
    cfg["nproc_per_node"] = nproc
    cfg["world_size"] = nproc * nnodes
    cfg["distributed"] = cfg["world_size"] > 1 or nnodes > 1
    cfg["backend"] = "nccl" if gpus else "gloo"
    return cfg


def world_size(cfg: dict) -> int:
    return int(cfg.get("world_size") or 1)


def effective_batch(cfg: dict, batch: int | None = None, accum: int | None = None) -> int:
    b = int(cfg["batch_size"] if batch is None else batch)
    a = int(cfg["grad_accum"] if accum is None else accum)
    return b * a * world_size(cfg)


def batch_breakdown(cfg: dict, batch: int | None = None, accum: int | None = None) -> str:
    b = int(cfg["batch_size"] if batch is None else batch)
    a = int(cfg["grad_accum"] if accum is None else accum)
    w = world_size(cfg)
    if w > 1:
        return f"{b * a * w} ({b} per GPU x {w} GPUs x {a} accumulation)" if cfg.get("backend") == "nccl" \
            else f"{b * a * w} ({b} per process x {w} processes x {a} accumulation)"
    return f"{b * a} ({b} x {a})"


def per_rank_items(n: int, cfg: dict) -> int:
    """Items one rank sees per epoch (DistributedSampler pads to a multiple of the world size)."""
    return math.ceil(n / world_size(cfg))


# the guide's learning rates were found for single-GPU runs with small effective batches
LR_REFERENCE_BATCH = 4


def lr_advice(cfg: dict) -> list[str]:
    """Learning-rate advice that accounts for the effective batch (empty when nothing to say)."""
    eb = effective_batch(cfg)
    if world_size(cfg) <= 1 or eb <= 2 * LR_REFERENCE_BATCH:
        return []
    k = eb / LR_REFERENCE_BATCH
    lr = float(cfg["lr"])
    return [f"The effective batch ({eb}) is {k:g}x the single-GPU batch ({LR_REFERENCE_BATCH}) the guide's learning "
            f"rates were found with: each optimizer step averages {k:g}x more clips and an epoch has {k:g}x fewer steps.",
            f"Consider --lr {lr * math.sqrt(k):.2g} (square-root scaling, safe for AdamW) up to {lr * k:.2g} (linear "
            "scaling) with --warmup-steps, or keep the rate and train more epochs."]


# ---------------------------------------------------------------------------- worker side
class NullEvents:
    """The event writer of ranks other than 0: they never write events.jsonl."""

    def emit(self, event_type: str, **fields) -> dict:
        return {"type": event_type, **fields}

    def close(self) -> None:
        pass


@dataclass
class Dist:
    rank: int = 0
    local_rank: int = 0
    world: int = 1
    backend: str = "gloo"
    enabled: bool = False
    gpu: int | None = None  # physical index of this rank's GPU

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def context(cfg: dict) -> Dist:
    """This process's place in the run, from torchrun's environment (RANK, LOCAL_RANK, WORLD_SIZE)."""
    if not cfg.get("distributed") or "RANK" not in os.environ:
        return Dist()
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", 0))
    world = int(os.environ.get("WORLD_SIZE", 1))
    gpus = [int(g) for g in (cfg.get("gpus") or "").split(",") if g.strip()]
    d = Dist(rank=rank, local_rank=local, world=world, backend=cfg.get("backend", "gloo"), enabled=True)
    if gpus:
        d.gpu = gpus[local % len(gpus)]
        # one GPU per process: coqui's Trainer then sees a single device (no home-grown DDP there)
        os.environ["CUDA_VISIBLE_DEVICES"] = str(d.gpu)
    return d


def init_process_group(d: Dist) -> None:
    import datetime

    import torch.distributed as tdist

    if not d.enabled or tdist.is_initialized():
        return
    if d.backend == "nccl":
        import torch

        torch.cuda.set_device(0)
    # long timeout: rank 0 writes checkpoints and samples while the others wait at the next collective
    tdist.init_process_group(d.backend, timeout=datetime.timedelta(minutes=60))


def shutdown() -> None:
    try:
        import torch.distributed as tdist

        if tdist.is_initialized():
            tdist.destroy_process_group()
    except Exception:  # noqa: BLE001
        pass


def wrap_gpt(model, d: Dist):
    """DistributedDataParallel around the trainable XTTS GPT (weights broadcast from rank 0)."""
    from torch.nn.parallel import DistributedDataParallel as DDP

    gpt = model.xtts.gpt
    # gradient_as_bucket_view: the gradients live in DDP's communication buckets instead of beside
    # them, so DDP costs no second copy of the gradients (~1.6 GiB for the full-size GPT) and the
    # single-GPU memory estimate (engine/train/memory.py) holds per GPU
    ddp = DDP(gpt, device_ids=[0] if d.backend == "nccl" else None, find_unused_parameters=True,
              gradient_as_bucket_view=True)
    # not a registered submodule: state_dict keys stay those of a single-GPU run
    object.__setattr__(model, "_xf_ddp", ddp)
    return ddp


def is_comm_error(exc: BaseException) -> bool:
    text = f"{type(exc).__name__}: {exc}".lower()
    import torch.distributed as tdist

    if isinstance(exc, getattr(tdist, "DistBackendError", ())) or isinstance(exc, getattr(tdist, "DistError", ())):
        return True
    return any(s in text for s in ("connection closed by peer", "connection reset", "gloo", "nccl",
                                   "broken pipe", "socket timeout", "timed out", "process group"))


def record_error(reason: str) -> None:
    """Write torchrun's per-rank error file (TORCHELASTIC_ERROR_FILE) so the launcher learns why."""
    path = os.environ.get("TORCHELASTIC_ERROR_FILE")
    if not path:
        return
    data = {"message": reason, "timestamp": int(time.time())}
    try:
        Path(path).write_text(json.dumps(data))
    except OSError:
        pass


class StepSync:
    """One small all-reduce per step: losses (mean over ranks), stop request, early stop."""

    def __init__(self, d: Dist):
        self.d = d

    def __call__(self, text_ce, mel_ce, stop: bool, early: bool) -> tuple:
        import torch
        import torch.distributed as tdist

        dev = "cuda" if self.d.backend == "nccl" else "cpu"
        ok = text_ce is not None and mel_ce is not None
        # a rank whose loss is not finite (e.g. NaN mel_ce of an empty target) is left out of the mean
        t = torch.tensor([text_ce if ok else 0.0, mel_ce if ok else 0.0, 1.0 if ok else 0.0, float(stop), float(early)],
                         dtype=torch.float64, device=dev)
        tdist.all_reduce(t)
        v = t.tolist()
        n = v[2]
        return ((v[0] / n) if n else None, (v[1] / n) if n else None, v[3] > 0, v[4] > 0)


def gather_gpu_samples(d: Dist, period: float, state: dict) -> list | None:
    """All ranks call this at each step end; every `period` seconds they all-gather a GPU sample.
    The decision to gather is rank 0's clock, shared through a broadcast of one flag."""
    import torch
    import torch.distributed as tdist

    now = time.time()
    dev = "cuda" if d.backend == "nccl" else "cpu"
    flag = torch.tensor([1.0 if now - state.get("last", 0.0) >= period else 0.0], device=dev)
    tdist.broadcast(flag, 0)
    if flag.item() < 0.5:
        return None
    state["last"] = now
    sample = rank_sample(d)
    out: list = [None] * d.world
    tdist.all_gather_object(out, sample)
    return out


def rank_sample(d: Dist) -> dict:
    from engine.gpu import gpu_sample

    if d.backend == "nccl":
        g = gpu_sample(0)  # CUDA_VISIBLE_DEVICES holds this rank's GPU only
        if "index" in g:
            g["index"] = d.gpu
    else:
        g = {"available": False, "reason": "no GPU (CPU process)"}
    g.update(rank=d.rank, local_rank=d.local_rank, host=socket.gethostname(), pid=os.getpid())
    return g


# ---------------------------------------------------------------------------- deterministic draws
def item_seed(seed: int, epoch: int, item: int) -> int:
    return (int(seed) * 1_000_003 + int(epoch) * 7_919 + int(item)) % (2**31 - 1)


def seed_item_draws(dataset, key):
    """Make each item's random draw a function of (seed, epoch, item number) only.

    XTTSDataset picks a random clip and a random conditioning slice for every item from Python's
    `random`; seeding per item makes a run's data independent of how items are spread over
    processes (and keeps ranks from drawing identical clips). `key()` -> (seed, epoch, offset).
    """
    import random

    base = type(dataset)
    if getattr(base, "_xf_seeded", False):
        return dataset

    class Seeded(base):  # type: ignore[misc, valid-type]
        _xf_seeded = True
        _xf_depth = 0

        def __getitem__(self, index):
            if self._xf_depth:  # XTTSDataset retries failed items recursively: keep drawing
                return base.__getitem__(self, index)
            seed, epoch, offset = key()
            state = random.getstate()
            random.seed(item_seed(seed, epoch, offset + int(index)))
            self._xf_depth = 1
            try:
                return base.__getitem__(self, index)
            finally:
                self._xf_depth = 0
                random.setstate(state)

    Seeded.__name__ = base.__name__
    dataset.__class__ = Seeded
    return dataset


def seed_step(engine, step: int) -> None:
    """Seed torch (dropout) by the first item of this rank's batch: item r + s*B*W (+ items already
    done this epoch), the same number the clip draw of that item is keyed by. So 1 process x batch 1
    x accumulation 2 and 2 processes x batch 1 draw the same clips and the same dropout masks."""
    import torch

    seed, epoch, done = engine.draw_key()
    d = engine.dist
    torch.manual_seed(item_seed(seed + 1, epoch, done + int(step) * engine.batch_size * max(1, d.world) + d.rank))


def sampler(dataset, d: Dist):
    from torch.utils.data.distributed import DistributedSampler

    # no shuffle: items are independent random draws anyway; rank r takes items r, r+W, r+2W, ...
    return DistributedSampler(dataset, num_replicas=d.world, rank=d.rank, shuffle=False, drop_last=False)


# ---------------------------------------------------------------------------- launcher
def launch_config(cfg: dict, run_id: str):
    from torch.distributed.launcher.api import LaunchConfig

    nnodes = int(cfg.get("nnodes") or 1)
    if nnodes > 1:
        endpoint, rdzv_configs = cfg["rdzv_endpoint"], {}
    else:
        endpoint, rdzv_configs = "localhost:0", {"is_host": True}  # torchrun --standalone
    return LaunchConfig(min_nodes=nnodes, max_nodes=nnodes, nproc_per_node=int(cfg["nproc_per_node"]),
                        run_id=run_id, rdzv_endpoint=endpoint, rdzv_backend="c10d", rdzv_configs=rdzv_configs,
                        max_restarts=0, monitor_interval=0.2, start_method="spawn")


def root_cause(failures: dict) -> tuple[int, str]:
    """(global rank, reason) of the failure that caused the others."""
    items = []
    for rank, f in failures.items():
        msg = _failure_text(f)
        items.append((rank, msg.splitlines()[0][:500], getattr(f, "timestamp", 0)))
    primary = [i for i in items if not i[1].startswith(COMM_ERROR_PREFIX)]
    pick = min(primary or items, key=lambda i: (i[2], i[0]))
    return pick[0], pick[1]


def _failure_text(f) -> str:
    msg = getattr(f, "message", "") or ""
    if isinstance(msg, dict):
        msg = msg.get("message") or ""
    msg = str(msg).strip()
    code = getattr(f, "exitcode", None)
    if not msg or msg.startswith("To enable traceback"):  # torchrun's text when a rank left no error file
        msg = f"exited with code {code} without a reason (see train.log)"
    elif code is not None and code < 0 and msg.startswith("Signal"):
        msg = f"killed by {msg}"
    return msg


def _last_state(run: Path) -> dict | None:
    from engine.events import read_events

    evs, _ = read_events(run / "events.jsonl")
    for e in reversed(evs):
        if e.get("type") == "state":
            return e
    return None


def launch(run: Path, resume: bool) -> int:
    """Body of `python -m engine.train.distributed R [--resume]`: torchrun's launcher as a library."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import elastic_launch

    run = Path(run).resolve()
    cfg = json.loads((run / "run_config.json").read_text(encoding="utf-8"))
    os.environ.setdefault("OMP_NUM_THREADS", str(cfg.get("threads") or 1))
    if cfg.get("gpus"):
        os.environ.pop("CUDA_VISIBLE_DEVICES", None)  # the workers pin their own GPU (physical index)
    run_id = f"xtts-ft-{run.name}-{uuid.uuid4().hex[:8]}" if int(cfg.get("nnodes") or 1) == 1 else run.name
    args = ["-u", "-m", "engine.train.worker", str(run)] + (["--resume"] if resume else [])
    print(f"[INFO] torch.distributed launcher: {cfg['nproc_per_node']} process(es) per node x "
          f"{cfg.get('nnodes') or 1} node(s), backend {cfg['backend']}", flush=True)
    try:
        elastic_launch(launch_config(cfg, run_id), sys.executable)(*args)
        return 0
    except ChildFailedError as exc:
        rank, reason = root_cause(exc.failures)
        last = _last_state(run)
        if last is None or last.get("state") not in ("stopped", "finished", "failed"):
            from engine.events import EventWriter

            ev = EventWriter(run / "events.jsonl")
            ev.emit("state", state="failed", reason=f"rank {rank}: {reason}", rank=rank,
                    failures=[{"rank": r, "exitcode": getattr(f, "exitcode", None),
                               "reason": _failure_text(f).splitlines()[0][:300]}
                              for r, f in sorted(exc.failures.items())])
            ev.close()
        print(f"[ERROR] rank {rank} failed: {reason}", flush=True)
        last = _last_state(run)
        return 130 if last and last.get("state") == "stopped" else (0 if last and last.get("state") == "finished"
                                                                     else 1)
    except BaseException as exc:  # noqa: BLE001 - the launcher itself was signalled or broke
        last = _last_state(run)
        if last is None or last.get("state") not in ("stopped", "finished", "failed"):
            from engine.events import EventWriter

            ev = EventWriter(run / "events.jsonl")
            ev.emit("state", state="failed", reason=f"launcher: {type(exc).__name__}: {exc}")
            ev.close()
        return 1


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        print("usage: python -m engine.train.distributed RUN_DIR [--resume]", file=sys.stderr)
        return 2
    from engine.train.worker import held

    return held(argv[0], lambda: launch(Path(argv[0]), resume="--resume" in argv))


if __name__ == "__main__":
    sys.exit(main())
