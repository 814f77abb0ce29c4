"""Hardware queries that answer "not available" instead of raising (nvitop's habit).

GPU figures come from nvidia-ml-py (whole-device view, as nvidia-smi shows) and from torch
(this process's allocator). RAM and disk come from psutil / shutil.
"""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

MB = 1024 * 1024

_nvml_lock = threading.Lock()
_nvml_state: dict = {"init": None, "reason": None}


def _nvml():
    """The pynvml module, initialised once; None (with a reason) when NVML is missing."""
    with _nvml_lock:
        if _nvml_state["init"] is None:
            try:
                import pynvml

                pynvml.nvmlInit()
                _nvml_state["init"] = pynvml
            except Exception as exc:  # NVMLError_LibraryNotFound without a driver, ImportError...
                _nvml_state["init"] = False
                _nvml_state["reason"] = f"NVML not available ({type(exc).__name__})"
        return _nvml_state["init"] or None


def cuda_available() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except Exception:
        return False


def gpu_info(index: int = 0) -> dict:
    """Static facts for pre-flight: {"available": bool, "reason"?, "name", "cuda_version", "total_mb", "free_mb"}."""
    if not cuda_available():
        reason = "no CUDA GPU visible to torch"
        return {"available": False, "reason": reason}
    import torch

    props = torch.cuda.get_device_properties(index)
    free, total = torch.cuda.mem_get_info(index)
    return {
        "available": True,
        "index": index,
        "name": props.name,
        "cuda_version": torch.version.cuda,
        "capability": f"{props.major}.{props.minor}",
        "total_mb": round(total / MB, 1),
        "free_mb": round(free / MB, 1),
        "bf16": bool(torch.cuda.is_bf16_supported()),
    }


def gpu_sample(index: int = 0) -> dict:
    """A live sample for the event stream; {"available": False, "reason": ...} without a GPU."""
    if not cuda_available():
        return {"available": False, "reason": "no GPU"}
    import torch

    out: dict = {"available": True, "index": index}
    nv = _nvml()
    if nv is not None:
        try:
            h = nv.nvmlDeviceGetHandleByIndex(index)
            mem = nv.nvmlDeviceGetMemoryInfo(h)
            util = nv.nvmlDeviceGetUtilizationRates(h)
            name = nv.nvmlDeviceGetName(h)
            out.update(
                name=name.decode() if isinstance(name, bytes) else name,
                total_mb=round(mem.total / MB, 1),
                used_mb=round(mem.used / MB, 1),
                free_mb=round(mem.free / MB, 1),
                util_percent=int(util.gpu),
                source="nvml",
            )
        except Exception as exc:  # a query can fail on some virtualised GPUs
            out["nvml_error"] = type(exc).__name__
    if "total_mb" not in out:
        free, total = torch.cuda.mem_get_info(index)
        out.update(
            name=torch.cuda.get_device_name(index), total_mb=round(total / MB, 1),
            used_mb=round((total - free) / MB, 1), free_mb=round(free / MB, 1), util_percent=None,
            source="torch",
        )
    out["torch_allocated_mb"] = round(torch.cuda.memory_allocated(index) / MB, 1)
    out["torch_reserved_mb"] = round(torch.cuda.memory_reserved(index) / MB, 1)
    out["torch_peak_allocated_mb"] = round(torch.cuda.max_memory_allocated(index) / MB, 1)
    out["torch_peak_reserved_mb"] = round(torch.cuda.max_memory_reserved(index) / MB, 1)
    return out


def ram_sample() -> dict:
    import psutil

    vm = psutil.virtual_memory()
    proc = psutil.Process(os.getpid())
    rss = proc.memory_info().rss
    for child in proc.children(recursive=True):  # data-loader workers
        try:
            rss += child.memory_info().rss
        except psutil.Error:
            pass
    return {
        "total_mb": round(vm.total / MB, 1),
        "available_mb": round(vm.available / MB, 1),
        "used_percent": vm.percent,
        "process_rss_mb": round(rss / MB, 1),
    }


def disk_free_mb(path: str | Path) -> float:
    p = Path(path)
    while not p.exists() and p != p.parent:
        p = p.parent
    return round(shutil.disk_usage(p).free / MB, 1)
