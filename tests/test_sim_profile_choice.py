"""Which ComfyUI `wanclip sim` speaks by default, and what its help says of each profile: the
default is one checked against a real server's recordings; 0.38 is built from source, unverified."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from helpers import ROOT, help_words
from wanclip.cli.cmd_sim import DEFAULT_PROFILE
from wanclip.sim.profiles import NEWEST_VERIFIED, PROFILES, VERIFIED, get_profile


def test_the_default_profile_is_a_verified_one():
    assert DEFAULT_PROFILE == NEWEST_VERIFIED and DEFAULT_PROFILE in VERIFIED
    assert "0.38" not in VERIFIED and set(VERIFIED) < set(PROFILES)
    # each verified profile has its conformance test against its recordings
    for key in VERIFIED:
        name = {"0.3.64": "test_sim_conformance.py"}.get(key, f"test_sim_conformance_{key.replace('.', '')}*.py")
        assert list((ROOT / "tests").glob(name)), key


def test_the_help_names_the_default_and_says_038_is_unverified():
    text = help_words("sim")
    assert "default the newest verified one, 0.33" in text
    assert "0.38 is built from source, unverified" in text
    assert "0.38 (built from source, unverified)" in text  # the command's own description


def test_wanclip_sim_without_a_version_speaks_the_verified_default(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.Popen([sys.executable, "-m", "wanclip", "sim", "--port", "0", "--output-dir", str(tmp_path / "out")],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline, line = time.monotonic() + 60, ""
        while time.monotonic() < deadline and "simulated ComfyUI" not in line:
            line = proc.stdout.readline()
            if not line and proc.poll() is not None:
                break
        assert line.startswith(f"simulated ComfyUI {get_profile(DEFAULT_PROFILE).version} on "), line
    finally:
        proc.send_signal(signal.SIGTERM)  # (a SIGINT may be ignored by a test run in the background)
        try:
            assert proc.wait(timeout=60) == 143
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stdout.close()
