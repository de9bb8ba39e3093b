"""Small helpers the tests share (not fixtures)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from typer.testing import CliRunner

from wanclip.cli.app import app

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "workflows" / "wan22_t2v_lightx2v_4step.json"
SHIPPED_CORE = ROOT / "workflows" / "wan22_t2v_lightx2v_4step_core.json"


def run_cli(*args: str, env: dict | None = None):
    """Run ``wanclip ARGS`` in-process; returns click's Result (exit_code, stdout, stderr)."""
    return CliRunner().invoke(app, [str(a) for a in args], env=env, catch_exceptions=False)


BOX = str.maketrans("", "", "│╭╮╰╯─")  # the panels' borders in --help


def help_words(*args: str, env: dict | None = None) -> str:
    """``wanclip ARGS --help`` as one line of words: no panel borders, no line breaks (for phrases)."""
    result = run_cli(*args, "--help", env=env)
    assert result.exit_code == 0, result.output
    return " ".join(result.output.translate(BOX).split())


def load(path: Path) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def write_shots(folder: Path, text: str, name: str = "film.yaml") -> Path:
    path = Path(folder) / name
    path.write_text(text, encoding="utf-8")
    return path


def wait_until(check, tries: int | None = None, interval: float = 0.01,
               message=lambda: "condition never became true", timeout: float = 60.0):
    """Poll ``check`` every ``interval`` s until it is true. The wait ends at the event, never at a
    time: ``timeout`` (or ``tries`` x ``interval``, whichever is longer) only bounds a stuck run, and
    is long enough that two busy cores never reach it (500 x 10 ms was 5 s: a flake under load)."""
    deadline = time.monotonic() + max(timeout, (tries or 0) * interval)
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(message())
        time.sleep(interval)


def kill_render_when(shots: Path, server: str, out: Path, ready, interval: float = 0.05) -> None:
    """Run `wanclip render` in its own process and SIGKILL it once ``ready(ledger)`` holds (a killed
    client: no Ctrl-C handling, no cleanup), at most 60 s in; the ledger is read as it is written."""
    from wanclip.ledger import load_ledger

    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    said = Path(out).parent / f"{Path(out).name}.killed-render.jsonl"  # its events, for a failing test to show
    with open(said, "wb") as stdout:
        proc = subprocess.Popen([sys.executable, "-m", "wanclip", "render", str(shots), "--server", server,
                                 "--out", str(out), "--json"], env=env, stdout=stdout, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if (Path(out) / "ledger.json").exists() and ready(load_ledger(out)):
            break
        time.sleep(interval)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)


# What `Capabilities.describe()` says of each simulator profile (the render's "server" event): the
# routes as probed, and the behaviours no route shows as not known yet.
BEHAVIOURS = ("409 for a re-posted id {dup}, credential handshake {cred}, progress_state {state}, "
              "its activity/seconds {activity}")
UNSEEN = dict.fromkeys(("dup", "cred", "state", "activity"), "not known yet")
ROUTES = {
    "0.3.64": "ComfyUI 0.3.64: jobs API no, cancel routes no, /api prefix yes, node replacements no, ",
    "0.9": "ComfyUI 0.9.2: jobs API read-only, cancel routes no, /api prefix yes, node replacements no, ",
    "0.33": "ComfyUI 0.33.0: jobs API yes, cancel routes yes, /api prefix yes, node replacements yes (0), ",
    "0.38": "ComfyUI 0.38.1: jobs API yes, cancel routes yes, /api prefix yes, node replacements yes (0), ",
}
FEATURES = {key: routes + BEHAVIOURS.format(**UNSEEN) for key, routes in ROUTES.items()}
# doctor's "ComfyUI features" row: it opens one event socket (the credential handshake is seen there)
DOCTOR_NOTE = " (doctor opened one event socket and posted nothing: the rest shows only while a prompt runs)"
DOCTOR_FEATURES = {key: routes + BEHAVIOURS.format(**{**UNSEEN, "cred": "yes (seen)" if key == "0.38" else "no (seen)"})
                   + DOCTOR_NOTE for key, routes in ROUTES.items()}
