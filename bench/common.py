"""Helpers shared by the benchmarks: synthetic folders, child processes, peak memory, medians."""
from __future__ import annotations

import json
import os
import platform
import resource
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def synthetic_split(dest: Path, n_train: int, n_val: int, n_test: int = 8, seed: int = 0) -> Path:
    """A split folder with n_train/n_val/n_test images, half CEX and half PG, at real sizes."""
    from gacrystal.synthetic.crops import generate_dataset
    if (dest / "done").exists():
        return dest
    shutil.rmtree(dest, ignore_errors=True)
    per_class = (n_train + n_val + n_test) // 2
    written = generate_dataset(dest / "source", per_class, per_class, seed=seed, progress=False)
    for name, files in written.items():
        bounds = {"train": (0, n_train // 2), "val": (n_train // 2, (n_train + n_val) // 2),
                  "test": ((n_train + n_val) // 2, per_class)}
        for split, (lo, hi) in bounds.items():
            folder = dest / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for path in files[lo:hi]:
                shutil.copyfile(path, folder / path.name)
    (dest / "done").write_text("")
    return dest


def peak_rss_mb() -> float:
    """This process's peak resident memory, from the operating system.

    Linux: VmHWM of /proc/self/status, which starts afresh at exec. (ru_maxrss does not: a child
    inherits its parent's peak through fork and exec, so it would report the parent's.)
    """
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmHWM")) / 1024
    except (OSError, StopIteration):
        scale = 1 if sys.platform == "darwin" else 1024  # macOS reports bytes, Linux KiB
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20


def run_child(script: Path, args: list[str], env: dict | None = None) -> dict:
    """Runs `script --child ARGS` in a fresh process (with `env` added to the environment) and
    returns the JSON it prints last."""
    return run_script(script, ["--child", *args], env)


def run_script(script: Path, args: list[str], env: dict | None = None) -> dict:
    """Runs `script ARGS` in a fresh process (with `env` added to the environment) and returns
    the JSON it prints last."""
    result = subprocess.run([sys.executable, str(script), *args], cwd=ROOT,
                            capture_output=True, text=True,
                            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", **(env or {})))
    if result.returncode != 0:
        raise RuntimeError(f"{script.name} {args} failed:\n{result.stdout[-3000:]}\n"
                           f"{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def median(values) -> float:
    values = sorted(values)
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2


def machine() -> str:
    """Cores, CPU name with its family and model (the generation: the same name covers several),
    Python, the flags that decide speed, and the load when the benchmark starts (a shared
    machine's other work slows every figure)."""
    cpu = platform.processor() or ""
    try:
        info = dict(line.split(":", 1) for line in open("/proc/cpuinfo").read().split("\n\n")[0]
                    .splitlines() if ":" in line)
        info = {key.strip(): value.strip() for key, value in info.items()}
        cpu = f"{info['model name']} (CPU family {info['cpu family']}, model {info['model']})"
    except (OSError, KeyError):
        pass
    load = f"; load average {os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else ""
    return (f"{os.cpu_count()} cores, {cpu}, Python {platform.python_version()}; {cpu_flags()}"
            f"{load}")


def cpu_flags() -> str:
    """The CPU features that decide this model's speed: AVX2, AVX-512, bfloat16, AMX."""
    try:
        flags = set(next(line.split(":", 1)[1].split() for line in open("/proc/cpuinfo")
                         if line.startswith("flags")))
    except (OSError, StopIteration):
        return "CPU flags unknown"
    wanted = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_tile")
    return "flags: " + " ".join(f if f in flags else f"no-{f}" for f in wanted)
