"""Benchmark: `wanclip setup` vs `hf_hub_download` in six threads (the write-up's method).

Six files scaled down from the real ones (same proportions, >= 600 MB in all) are served by the
loopback fake hub of the tests; each client runs in a subprocess so its wall time and peak RSS are
its own. Then each client is killed (SIGKILL) once half the bytes were served and run again:
"re-fetched" is the bytes served twice, as a share of the bytes served before the kill.

    .venv/bin/python scripts/bench_setup.py [--mb 640]

The test files live in a temporary folder that is deleted at the end.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "src"))

from fakehub import FakeHub  # noqa: E402
from wanclip.files import sha256_file  # noqa: E402
from wanclip.models.manifest import load_manifest  # noqa: E402

THEIRS = """
import os, sys
from concurrent.futures import ThreadPoolExecutor
from huggingface_hub import hf_hub_download
endpoint, stage, models = sys.argv[1], sys.argv[2], sys.argv[3]
jobs = [line.split("\\t") for line in sys.stdin.read().splitlines()]
def one(job):
    repo, path, dest = job
    got = hf_hub_download(repo, path, local_dir=stage, endpoint=endpoint, token=False)
    os.makedirs(os.path.dirname(os.path.join(models, dest)), exist_ok=True)
    os.replace(got, os.path.join(models, dest))
with ThreadPoolExecutor(6) as pool:
    list(pool.map(one, jobs))
"""


def make_files(total_mb: int, folder: Path) -> tuple[list[dict], dict]:
    """Six payloads in the real files' proportions; returns manifest entries and the bytes by path."""
    items = load_manifest()
    scale = total_mb * 1_000_000 / sum(i.bytes for i in items)
    entries, payloads = [], {}
    for item in items:
        data = os.urandom(max(1_000_000, int(item.bytes * scale)))
        payloads[(item.repo, item.path)] = data
        entries.append(item.model_dump() | {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()})
    (folder / "bench-models.yaml").write_text(yaml.safe_dump({"files": entries}))
    return entries, payloads


def env_for(tmp: Path) -> dict:
    return dict(os.environ, WANCLIP_HOME=str(tmp / "home"), HF_HOME=str(tmp / "hf"), HF_HUB_DISABLE_XET="1",
                HF_HUB_DISABLE_TELEMETRY="1", HF_HUB_DISABLE_PROGRESS_BARS="1", PYTHONPATH=str(ROOT / "src"))


def ours(hub: FakeHub, tmp: Path, models: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "wanclip", "setup", "--endpoint", hub.url, "--models-dir",
                             str(models), "--manifest", str(tmp / "bench-models.yaml"), "--json"],
                            env=env_for(tmp), stdout=open(tmp / "ours.log", "w"), stderr=subprocess.STDOUT)


def theirs(hub: FakeHub, tmp: Path, models: Path, entries: list[dict]) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", THEIRS, hub.url, str(tmp / "stage"), str(models)],
                            env=env_for(tmp), stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, text=True)
    proc.stdin.write("".join(f"{e['repo']}\t{e['path']}\t{e['dest']}\n" for e in entries))
    proc.stdin.close()
    return proc


def wait(proc: subprocess.Popen) -> tuple[int, int]:
    """(exit status, peak RSS in bytes) of the client program.

    Not ru_maxrss: it keeps the high-water mark of the fork of this process (which holds the
    payloads) across exec. VmHWM belongs to the exec'd program's own memory; sampled until exit.
    """
    peak = 0
    while proc.poll() is None:
        peak = max(peak, _vm_hwm(proc.pid))
        time.sleep(0.01)
    return proc.returncode, peak


def _vm_hwm(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


def full_run(start, hub: FakeHub, total: int) -> dict:
    hub.served.clear()
    began = time.perf_counter()
    code, rss = wait(start())
    wall = time.perf_counter() - began
    assert code == 0, f"the client failed with exit code {code}: {_log_tail()}"
    return {"wall": wall, "rss": rss, "served": sum(hub.served.values()), "MB/s": total / wall / 1e6}


def killed_run(start, hub: FakeHub, total: int, models: Path) -> dict:
    hub.served.clear()
    proc = start()
    while sum(hub.served.values()) < total // 2:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    wait(proc)
    before = sum(hub.served.values())
    kept = sum(p.stat().st_size for p in models.rglob("*.part"))
    hub.served.clear()
    code, _ = wait(start())
    assert code == 0, f"the rerun failed with exit code {code}: {_log_tail()}"
    after = sum(hub.served.values())
    again = before + after - total  # bytes on the wire twice, including the kernel's in-flight buffers
    return {"before_kill": before, "kept": kept, "refetched": again, "share": again / before,
            "client_refetched": max(0, after - (total - kept))}


def _log_tail() -> str:
    logs = list(Path(tempfile.gettempdir()).glob("wanclip-bench-*/ours.log"))
    return logs[0].read_text()[-1500:] if logs else ""


def check_installed(models: Path, entries: list[dict]) -> None:
    for e in entries:
        assert sha256_file(models / e["dest"]) == e["sha256"], f"{e['dest']} is wrong"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=640, help="total size of the six files in MB")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="wanclip-bench-") as tmpdir:
        tmp = Path(tmpdir)
        entries, payloads = make_files(args.mb, tmp)
        total = sum(e["bytes"] for e in entries)
        hub = FakeHub()
        for (repo, path), data in payloads.items():
            hub.add(repo, path, data)
        hub.start()
        try:
            rows = bench(hub, tmp, entries, total)
        finally:
            hub.stop()
    print_table(rows, total)


def bench(hub: FakeHub, tmp: Path, entries: list[dict], total: int) -> dict:
    def fresh(name: str) -> Path:
        for sub in ("home", "hf", "stage"):
            subprocess.run(["rm", "-rf", str(tmp / sub)], check=True)
        return tmp / name

    rows = {}
    m = fresh("m-ours")
    rows["wanclip setup"] = full_run(lambda: ours(hub, tmp, m), hub, total)
    check_installed(m, entries)
    m = fresh("m-theirs")
    rows["hf_hub_download x6"] = full_run(lambda: theirs(hub, tmp, m, entries), hub, total)
    check_installed(m, entries)
    m = fresh("k-ours")
    rows["wanclip setup"] |= killed_run(lambda: ours(hub, tmp, m), hub, total, m)
    check_installed(m, entries)
    m = fresh("k-theirs")
    rows["hf_hub_download x6"] |= killed_run(lambda: theirs(hub, tmp, m, entries), hub, total, m)
    check_installed(m, entries)
    return rows


def print_table(rows: dict, total: int) -> None:
    print(f"six files, {total / 1e6:.0f} MB in all, loopback fake hub, {os.cpu_count()} CPUs")
    print(f"{'client':<20} {'wall s':>7} {'MB/s':>7} {'peak RSS MB':>12} {'sha256':>7} "
          f"{'served before kill MB':>22} {'resumable .part MB':>19} {'re-fetched MB':>14} {'re-fetched %':>13}")
    for name, r in rows.items():
        print(f"{name:<20} {r['wall']:>7.2f} {r['MB/s']:>7.0f} {r['rss'] / 1e6:>12.0f} "
              f"{'yes' if name.startswith('wanclip') else 'no':>7} {r['before_kill'] / 1e6:>22.0f} {r['kept'] / 1e6:>19.0f} "
              f"{r['refetched'] / 1e6:>14.1f} {100 * r['share']:>12.1f}% "
              f"{100 * r['client_refetched'] / max(r['kept'], 1) if r['kept'] else 100.0:>18.1f}%")
    ours_, theirs_ = rows["wanclip setup"], rows["hf_hub_download x6"]
    print(f"wall ratio ours/theirs: {ours_['wall'] / theirs_['wall']:.2f} (target <= 1.0); "
          f"peak RSS {ours_['rss'] / 1e6:.0f} MB (target <= 200); "
          f"re-fetched after kill {100 * ours_['share']:.1f}% (target <= 2%)")


if __name__ == "__main__":
    main()
