"""A film through the Comfy API v2: the real comfy-api-proxy in front of the simulator."""

from __future__ import annotations

import json

from helpers import run_cli, write_shots
from wanclip.ledger import load_ledger


def tiny_film(folder, shots: int = 2):
    lines = ["title: Tiny Film", "width: 64", "height: 64", "frames: 5", "seed_base: 100",
             "transition: {type: fade, duration: 0.1}", "shots:"]
    lines += [f"  - {{name: shot-{i}, prompt: 'test shot number {i}'}}" for i in range(1, shots + 1)]
    return write_shots(folder, "\n".join(lines) + "\n")


def render(url, shots_file, out, *args):
    return run_cli("render", shots_file, "--server", url, "--out", out, "--json", *args)


def events(result) -> list[dict]:
    return [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]


def executed(sim) -> list[dict]:
    return [e for e in sim.log() if e["status"] == "success"]


def test_a_film_renders_through_the_proxy_each_shot_once_with_its_job_in_the_ledger(sim, v2_proxy, tmp_path):
    out = tmp_path / "film"
    result = render(v2_proxy.url, tiny_film(tmp_path, 3), out)
    assert result.exit_code == 0, result.output
    ledger = load_ledger(out)
    assert [s.status for s in ledger.shots] == ["done"] * 3
    assert all(s.backend == "v2" and s.submit_state == "confirmed" for s in ledger.shots)
    assert all((out / s.clip).is_file() and s.clip.endswith(".mp4") for s in ledger.shots)
    assert not list((out / "clips").glob("*.part"))
    runs = executed(sim)
    assert sorted(e["prompt_id"] for e in runs) == sorted(s.job_id for s in ledger.shots)  # once each
    assert all(s.output_refs and s.output_refs[0]["url"].startswith(v2_proxy.url) for s in ledger.shots)
    assert (out / "film.mp4").is_file()
