"""The simulator's web server (aiohttp) is the `sim` extra: without it `wanclip demo` and `wanclip
sim` say how to get it and exit 2, instead of a traceback."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

# Started before anything else in the child: `import aiohttp` fails as if it were not installed.
NO_AIOHTTP = '''
import sys
class _NoAiohttp:
    def find_spec(self, name, path=None, target=None):
        if name == "aiohttp" or name.startswith("aiohttp."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
sys.meta_path.insert(0, _NoAiohttp())
'''


@pytest.mark.parametrize("args", [["sim", "--port", "0"], ["demo"]], ids=["sim", "demo"])
def test_without_aiohttp_the_simulator_commands_say_how_to_install_it(tmp_path, args):
    (tmp_path / "sitecustomize.py").write_text(NO_AIOHTTP, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-m", "wanclip", *args, "--out", str(tmp_path / "out")]
                          if args == ["demo"] else [sys.executable, "-m", "wanclip", *args],
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "pip install 'wanclip[sim]'" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()  # refused before anything was planned or written


def test_the_blocker_really_hides_aiohttp(tmp_path):
    (tmp_path / "sitecustomize.py").write_text(NO_AIOHTTP, encoding="utf-8")
    proc = subprocess.run([sys.executable, "-c", "import aiohttp"], env={**os.environ, "PYTHONPATH": str(tmp_path)},
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and "No module named 'aiohttp'" in proc.stderr
