"""The suite's own rules: it reads only what a fresh clone has, and `make test` installs no system
package on a user's machine."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from helpers import ROOT

TESTS = ROOT / "tests"


def test_no_test_reads_outside_the_repository():
    """Recordings the tests need are copied into tests/data (a user's clone has no ../shared)."""
    outside = re.compile(r"""ROOT\.parent\b|\.parent\.parent\.parent|["'](\.\./)?shared(/reference)?["']""")
    offenders = [f"{path.name}:{n}" for path in sorted(TESTS.glob("*.py")) if path.name != Path(__file__).name
                 for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if outside.search(line)]
    assert offenders == []


def fake_bin(tmp_path: Path) -> tuple[Path, Path]:
    """A PATH with no Chromium and an apt-get that only records that it was called."""
    bin_dir, calls = tmp_path / "bin", tmp_path / "apt-calls"
    bin_dir.mkdir()
    for name in ("id", "sh"):
        os.symlink(next(p for p in ("/usr/bin/" + name, "/bin/" + name) if os.path.exists(p)), bin_dir / name)
    (bin_dir / "apt-get").write_text(f"#!/bin/sh\necho \"$@\" >> {calls}\nexit 1\n", encoding="utf-8")
    (bin_dir / "apt-get").chmod(0o755)
    return bin_dir, calls


@pytest.mark.skipif(os.name != "posix", reason="a POSIX shell script")
@pytest.mark.parametrize("ci", [None, "false", "1"])
def test_ensure_chromium_installs_nothing_outside_ci(tmp_path, ci):
    bin_dir, calls = fake_bin(tmp_path)
    env = {"PATH": str(bin_dir), **({"CI": ci} if ci is not None else {})}
    done = subprocess.run(["/bin/sh", str(ROOT / "scripts" / "ensure_chromium.sh")], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and not calls.exists()
    assert "outside CI (CI=true) nothing is installed" in done.stdout


@pytest.mark.skipif(os.name != "posix" or os.geteuid() != 0, reason="the install is tried as root only")
def test_ensure_chromium_installs_in_ci(tmp_path):
    bin_dir, calls = fake_bin(tmp_path)
    done = subprocess.run(["/bin/sh", str(ROOT / "scripts" / "ensure_chromium.sh")],
                          env={"PATH": str(bin_dir), "CI": "true"}, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0  # it never fails the build
    assert calls.read_text().startswith("update")  # it tried: apt-get update, then install chromium
