"""The typed render events: one class per kind, and `--json` lines exactly as before they were typed."""

from __future__ import annotations

import json

import pytest

from helpers import run_cli, write_shots
from wanclip.render import events as ev
from wanclip.render.events import RenderEvent


def json_line_before_types(kind: str, shot, index, server, data: dict) -> dict:
    """What `--json` printed when an event was a kind and a dict (less the time)."""
    out = {"event": kind}
    out.update({k: v for k, v in (("shot", shot), ("index", index), ("server", server)) if v is not None})
    out.update(data)
    return out


SERVER = "http://127.0.0.1:8188"
# what the render loop, the shot machine, the pool and the stitcher emit: kind, shot, index, server, data
EMITTED = [
    ("plan", None, None, None, {"shots": 3, "todo": 2, "servers": [SERVER]}),
    ("server", None, None, SERVER, {"version": "0.3.64", "device": "cuda:0 NVIDIA H100", "features": "jobs"}),
    ("warning", None, None, SERVER, {"message": "gets no shot"}),
    ("skipped", "a", 1, None, {"clip": "clips/01_a.mp4"}),
    ("reattached", "a", 1, SERVER, {"prompt_id": "p1"}),
    ("submitted", "a", 1, SERVER, {"prompt_id": "p1", "attempt": 1}),
    ("submitted", "a", 1, SERVER, {"prompt_id": "p1", "attempt": 2, "found": True}),
    ("submit_retry", "a", 1, SERVER, {"reason": "HTTP 502", "retry_in": 2.0, "tries": 1}),
    ("started", "a", 1, SERVER, {}),
    ("cached", "a", 1, SERVER, {"nodes": ["71", "72"]}),
    ("node", "a", 1, SERVER, {"node": "81", "label": "high-noise sampler"}),
    ("progress", "a", 1, SERVER, {"node": "81", "label": "high-noise sampler", "value": 2, "max": 4}),
    ("download_retry", "a", 1, SERVER, {"reason": "no answer", "retry_in": 1.0}),
    ("done", "a", 1, SERVER, {"clip": "clips/01_a.mp4", "seconds": 1.5, "node_seconds": {"decode": 0.1},
                              "frames": 81}),
    ("failed", "a", 1, SERVER, {"error": {"node": "87", "class": "VAEDecode", "message": "CUDA error"}}),
    ("lost", "a", 1, SERVER, {"reason": "the server no longer knows the prompt (restarted?)"}),
    ("cancelling", "a", 1, SERVER, {"where": "pending"}),
    ("cancelled", "a", 1, SERVER, {"how": "removed from the queue"}),
    ("socket_lost", None, None, SERVER, {"reason": "closed"}),
    ("socket_back", None, None, SERVER, {}),
    ("server_unreachable", None, None, SERVER, {"seconds": 12, "limit": 1800, "moves": False}),
    ("server_down", None, None, SERVER, {"seconds": 31.2}),
    ("server_back", None, None, SERVER, {"seconds": 4.0}),
    ("stitching", None, None, None, {"shots": 3}),
    ("stitched", None, None, None, {"output": "/films/x/film.mp4", "seconds": 6.2}),
    ("stitch_kept", None, None, None, {"output": "/films/x/film.mp4", "seconds": 6.2}),
    ("post_submitted", "a", 1, SERVER, {"prompt_id": "p2", "attempt": 1}),
    ("post_started", "a", 1, SERVER, {}),
    ("post_done", "a", 1, SERVER, {"clip": "clips/01_a.i2.mp4", "seconds": 0.8, "node_seconds": {"other": 0.8},
                                   "frames": 161}),
    ("post_failed", "a", 1, SERVER, {"error": {"node": "interpolate", "class": "FrameInterpolate",
                                               "message": "CUDA error"}}),
    ("a_kind_added_later", "a", 1, None, {"anything": 1}),
]


@pytest.mark.parametrize("kind,shot,index,server,data", EMITTED, ids=[f"{e[0]}-{i}" for i, e in enumerate(EMITTED)])
def test_each_emitted_kind_becomes_its_class_and_prints_the_same_json_line(kind, shot, index, server, data):
    event = RenderEvent.make(kind, shot, index, server, dict(data))
    line = event.to_json()
    assert isinstance(line.pop("time"), float)
    assert list(line.items()) == list(json_line_before_types(kind, shot, index, server, data).items())
    assert event.kind == kind and event.data == data
    assert (type(event) is ev.OtherEvent) == (kind == "a_kind_added_later")


def test_every_known_kind_has_its_own_frozen_class():
    kinds = {e[0] for e in EMITTED} - {"a_kind_added_later"}
    assert set(RenderEvent.KINDS) == kinds
    assert len(set(RenderEvent.KINDS.values())) == len(kinds)
    done = RenderEvent("done", "a", 1, SERVER, {"clip": "clips/01_a.mp4", "seconds": 1.0})  # the loop's old call
    assert isinstance(done, ev.ShotDone) and isinstance(done, ev.ShotClip) and done.clip == "clips/01_a.mp4"
    with pytest.raises(AttributeError):
        done.clip = "elsewhere"  # type: ignore[misc]


def test_a_key_the_class_does_not_declare_is_kept_not_dropped():
    event = RenderEvent.make("done", "a", 1, None, {"clip": "c.mp4", "sha256": "ab"})
    assert event.extra == {"sha256": "ab"} and event.to_json()["sha256"] == "ab"


# What `wanclip render --json` printed before the events were typed, key for key (a first run and a rerun).
JSON_KEYS = {
    "plan": ["event", "time", "shots", "todo", "servers"],
    "server": ["event", "time", "server", "version", "device", "features"],
    "submitted": ["event", "time", "shot", "index", "server", "prompt_id", "attempt"],
    "started": ["event", "time", "shot", "index", "server"],
    "node": ["event", "time", "shot", "index", "server", "node", "label"],
    "progress": ["event", "time", "shot", "index", "server", "node", "label", "value", "max"],
    "done": ["event", "time", "shot", "index", "server", "clip", "seconds", "node_seconds", "frames"],
    "skipped": ["event", "time", "shot", "index", "server", "clip"],
    "stitching": ["event", "time", "shots"],
    "stitched": ["event", "time", "output", "seconds"],
    "stitch_kept": ["event", "time", "output", "seconds"],
    "summary": ["event", "time", "ledger", "exit_code", "film", "note", "page", "seconds", "shots"],
}


def test_render_json_lines_keep_their_keys_and_order(sim, tmp_path):
    shots = write_shots(tmp_path, "title: T\nwidth: 64\nheight: 64\nframes: 5\nseed_base: 100\n"
                                  "shots:\n  - {name: a, prompt: 'one'}\n  - {name: b, prompt: 'two'}\n")
    seen: dict[str, list[str]] = {}
    for _ in range(2):  # the rerun brings skipped and stitch_kept
        result = run_cli("render", shots, "--server", sim.url, "--out", tmp_path / "out", "--json")
        assert result.exit_code == 0, result.output
        for line in result.stdout.splitlines():
            event = json.loads(line)
            assert seen.setdefault(event["event"], list(event)) == list(event), event
    assert {k: v for k, v in seen.items() if k != "cached"} == JSON_KEYS


def test_the_plain_log_draws_typed_events_one_line_per_change(capsys):
    from wanclip.cli.progress import RenderView

    view = RenderView("plain", [(1, "a", 81), (2, "b", 81)])
    for event in (ev.FilmPlanned(shots=2, todo=2, servers=[SERVER]),
                  ev.ServerFound(server=SERVER, version="0.3.64", device="cuda:0"),
                  ev.ShotQueued(shot="a", index=1, server=SERVER, prompt_id="p1", attempt=1),
                  ev.ShotProgress(shot="a", index=1, server=SERVER, node="81", label="high-noise sampler",
                                  value=1, max=4),
                  ev.ShotDone(shot="a", index=1, server=SERVER, clip="clips/01_a.mp4", seconds=2.25),
                  ev.ShotFailed(shot="b", index=2, server=SERVER, error={"class": "VAEDecode", "node": "87",
                                                                         "message": "CUDA error"}),
                  ev.ServerDown(server=SERVER, seconds=31.0),
                  ev.FilmStitched(output="film.mp4", seconds=5.0)):
        view(event)
    assert capsys.readouterr().out.splitlines() == [
        f"{SERVER}: ComfyUI 0.3.64 on cuda:0",
        f"[1/2] a: queued on {SERVER}",
        "[1/2] a: done in 2.2 s",
        "[2/2] b: failed at VAEDecode (node 87): CUDA error",
        f"{SERVER} stopped answering: its shots move to the other servers",
        "film.mp4 written"]
    assert view.film.done == {"a"} and view.status["b"].startswith("failed")
