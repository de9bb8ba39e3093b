"""`wanclip render` end to end on the simulated ComfyUI: the user's session, then the files."""

from __future__ import annotations

import json
import os

import pytest
import requests

from helpers import ROOT, kill_render_when, load, run_cli, wait_until, write_shots
from wanclip import media
from wanclip.errors import Interrupted
from wanclip.ledger import load_ledger
from wanclip.planning.plan import plan_film
from wanclip.render.loop import RenderOptions, render_film
from wanclip.sim import serve_in_thread


def tiny_film(folder, shots: int = 3, extra: str = "", workflow: str | None = None):
    lines = ["title: Tiny Film", "width: 64", "height: 64", "frames: 5", "seed_base: 100",
             "transition: {type: fade, duration: 0.1}"]
    if workflow:
        lines.append(f"workflow: {workflow}")
    lines.append(extra)
    lines.append("shots:")
    lines += [f"  - {{name: shot-{i}, prompt: 'test shot number {i}'}}" for i in range(1, shots + 1)]
    return write_shots(folder, "\n".join(lines) + "\n")


def edited_workflow(folder, node: str, name: str, value) -> str:
    """A copy of the shipped graph with one input changed; returns its file name (beside the shots)."""
    graph = load(ROOT / "workflows" / "wan22_t2v_lightx2v_4step.json")
    graph[node]["inputs"][name] = value
    (folder / f"edited_{node}_{name}.json").write_text(json.dumps(graph))
    return f"edited_{node}_{name}.json"


def render(sim_url, shots_file, out, *args):
    return run_cli("render", shots_file, "--server", sim_url, "--out", out, "--json", *args)


def events(result) -> list[dict]:
    return [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]


def successes(sim) -> list[dict]:
    return [e for e in sim.log() if e["status"] == "success"]


def test_whole_film_renders_clips_ledger_and_film(sim, tmp_path):
    out = tmp_path / "film"
    result = render(sim.url, tiny_film(tmp_path, 4), out)
    assert result.exit_code == 0, result.output
    ledger = load_ledger(out)
    assert [s.status for s in ledger.shots] == ["done"] * 4
    assert [s.seed for s in ledger.shots] == [101, 102, 103, 104]
    plan = plan_film(tmp_path / "film.yaml", out=out)
    for record, planned in zip(ledger.shots, plan.shots, strict=True):
        assert record.graph_sha256 == planned.graph_sha256
        assert record.server == sim.url and record.prompt_id
        clip = media.probe(out / record.clip)
        assert (clip.frames, clip.width, clip.height) == (5, 64, 64)
        assert record.execution_success_ms >= record.execution_start_ms > 0
        assert {"high-noise sampler", "low-noise sampler", "decode", "combine"} <= set(record.node_seconds)
    assert "model load" in ledger.shots[0].node_seconds  # only the first shot loads the experts
    assert ledger.shots[1].transition == {"type": "fade", "duration": 0.1} and ledger.shots[0].transition is None
    film = media.probe(out / "film.mp4")
    assert abs(film.frames - (4 * 5 - 3 * 0.1 * 16)) <= 1  # Σ frames − overlaps, within a frame
    assert (out / "contact_sheet.png").is_file()
    page = (out / "index.html").read_text(encoding="utf-8")  # the storyboard, written by render
    assert "test shot number 4" in page and "clips/01_shot-1.mp4" in page
    summary = events(result)[-1]
    # the samplers ran (node_seconds above), so the summary names the stage; its seconds can round to
    # 0.0 at the simulator's 5 ms steps when the reader sees both samplers' messages at once
    assert summary["page"] == str(out / "index.html") and summary["seconds"]["sampling"] >= 0
    kinds = [e["event"] for e in events(result)]
    assert kinds.count("submitted") == 4 and kinds.count("done") == 4 and kinds[-1] == "summary"
    assert kinds.index("submitted") < kinds.index("started")
    # queue-ahead: every shot was submitted before the first one finished
    assert max(i for i, k in enumerate(kinds) if k == "submitted") < kinds.index("done")


def test_rerun_after_a_finished_film_submits_nothing(sim, tmp_path):
    shots = tiny_film(tmp_path, 3)
    assert render(sim.url, shots, tmp_path / "out").exit_code == 0
    before = len(sim.log())
    result = render(sim.url, shots, tmp_path / "out")
    assert result.exit_code == 0
    assert len(sim.log()) == before
    assert [e["event"] for e in events(result)].count("skipped") == 3


def test_changed_seed_rerenders_only_that_shot_and_damaged_clip_is_redone(sim, tmp_path):
    shots = tiny_film(tmp_path, 3)
    assert render(sim.url, shots, tmp_path / "out").exit_code == 0
    (tmp_path / "out" / "clips" / "02_shot-2.mp4").write_bytes(b"damaged")
    shots.write_text(shots.read_text().replace("'test shot number 3'}", "'test shot number 3', seed: 7}"))
    before = len(sim.log())
    result = render(sim.url, shots, tmp_path / "out")
    assert result.exit_code == 0
    rendered = [e["shot"] for e in events(result) if e["event"] == "done"]
    assert sorted(rendered) == ["shot-2", "shot-3"] and len(sim.log()) == before + 2
    assert load_ledger(tmp_path / "out").shot("shot-3").seed == 7


def test_only_and_force_rerender_on_purpose(sim, tmp_path):
    shots = tiny_film(tmp_path, 3)
    assert render(sim.url, shots, tmp_path / "out").exit_code == 0
    result = render(sim.url, shots, tmp_path / "out", "--only", "shot-2", "--no-stitch")
    assert [e["shot"] for e in events(result) if e["event"] == "submitted"] == ["shot-2"]
    result = render(sim.url, shots, tmp_path / "out", "--force", "--no-stitch")
    assert len([e for e in events(result) if e["event"] == "submitted"]) == 3
    assert run_cli("render", shots, "--server", sim.url, "--out", tmp_path / "out", "--only", "nope").exit_code == 2


def test_execution_error_in_shot_5_fails_it_and_the_others_finish(sim, tmp_path):
    sim.faults.fail_prompt(5, "VAEDecode", "CUDA error: an illegal memory access was encountered")
    out = tmp_path / "out"
    result = render(sim.url, tiny_film(tmp_path, 6), out)
    assert result.exit_code == 1
    ledger = load_ledger(out)
    assert [s.status for s in ledger.shots] == ["done"] * 4 + ["failed", "done"]
    error = ledger.shot("shot-5").error
    assert (error["node"], error["class"]) == ("87", "VAEDecode")
    assert error["message"] == "CUDA error: an illegal memory access was encountered"
    summary = events(result)[-1]
    assert summary["film"] is None and summary["note"] == "film not stitched (failed: shot-5)"
    assert not (out / "film.mp4").exists()


def test_rerun_after_a_failure_renders_only_the_failed_shot(sim, tmp_path):
    sim.faults.fail_prompt(2)
    shots = tiny_film(tmp_path, 3)
    assert render(sim.url, shots, tmp_path / "out").exit_code == 1
    result = render(sim.url, shots, tmp_path / "out")
    assert result.exit_code == 0
    assert [e["shot"] for e in events(result) if e["event"] == "submitted"] == ["shot-2"]
    assert (tmp_path / "out" / "film.mp4").is_file()


def test_validation_error_refuses_before_any_gpu_work(sim, tmp_path):
    bad = edited_workflow(tmp_path, "81", "cfg", 500.0)  # past the max of 100: ComfyUI answers 400
    result = render(sim.url, tiny_film(tmp_path, 3, workflow=bad), tmp_path / "out")
    assert result.exit_code == 2
    assert "Value 500.0 bigger" in result.stderr and "refused the prompt" in result.stderr
    assert "KSamplerAdvanced" in result.stderr and "cfg" in result.stderr
    assert sim.log() == []
    assert {s.status for s in load_ledger(tmp_path / "out").shots} == {"pending"}


def test_wrong_vae_is_refused_in_preflight(sim, tmp_path):
    wrong_vae = edited_workflow(tmp_path, "73", "vae_name", "wan2.2_vae.safetensors")
    result = render(sim.url, tiny_film(tmp_path, 2, workflow=wrong_vae), tmp_path / "out")
    assert result.exit_code == 2
    assert "48-channel" in result.stderr and "wan_2.1_vae.safetensors" in result.stderr
    assert "nothing was submitted" in result.stderr
    assert sim.log() == []


def test_missing_model_is_refused_with_did_you_mean(sim, tmp_path):
    typo = edited_workflow(tmp_path, "75", "unet_name", "wan2.2_t2v_high_noise_14B_fp8.safetensors")
    result = render(sim.url, tiny_film(tmp_path, 2, workflow=typo), tmp_path / "out")
    assert result.exit_code == 2
    assert "did you mean wan2.2_t2v_high_noise_14B_fp8_scaled.safetensors" in result.stderr
    assert sim.log() == []


def test_server_not_running_is_refused_with_exit_2(tmp_path):
    result = render("http://127.0.0.1:9", tiny_film(tmp_path, 1), tmp_path / "out")
    assert result.exit_code == 2
    assert "did not answer" in result.stderr and "nothing was submitted" in result.stderr


def test_websocket_dropped_mid_shot_still_finishes_every_shot_once(sim, tmp_path):
    sim.faults.close_ws_after(25)
    result = render(sim.url, tiny_film(tmp_path, 4), tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert "socket_lost" in [e["event"] for e in events(result)]
    assert len(successes(sim)) == 4


def test_server_restart_mid_queue_resubmits_the_lost_shots(sim, tmp_path):
    sim.faults.restart_during(2)
    result = render(sim.url, tiny_film(tmp_path, 4), tmp_path / "out")
    assert result.exit_code == 0, result.output
    lost = sorted(e["shot"] for e in events(result) if e["event"] == "lost")
    assert lost == ["shot-2", "shot-3", "shot-4"]
    ledger = load_ledger(tmp_path / "out")
    assert [s.status for s in ledger.shots] == ["done"] * 4
    assert [s.attempts for s in ledger.shots] == [1, 2, 2, 2]
    assert len(successes(sim)) == 4


def test_ctrl_c_touches_only_our_prompts(sim, tmp_path):
    sim.faults.stall_prompt(1)
    other = {"prompt": load(ROOT / "workflows" / "wan22_t2v_lightx2v_4step.json"), "client_id": "someone-else"}
    other["prompt"]["74"]["inputs"].update(width=64, height=64, length=5)
    plan = plan_film(tiny_film(tmp_path, 3), out=tmp_path / "out")
    theirs = {}

    def on_event(event):
        if event.kind == "started":
            theirs.update(requests.post(sim.url + "/prompt", json=other, timeout=5).json())
            raise KeyboardInterrupt

    with pytest.raises(Interrupted):
        render_film(plan, RenderOptions(servers=[sim.url]), on_event)
    ledger = load_ledger(tmp_path / "out")
    assert {s.status for s in ledger.shots} == {"pending"}
    wait_until(lambda: any(e["prompt_id"] == theirs["prompt_id"] for e in successes(sim)))
    log = sim.log()
    assert [e["status"] for e in log if e["client_id"] != "someone-else"] == ["interrupted"]
    assert [e["status"] for e in log if e["client_id"] == "someone-else"] == ["success"]


def test_ctrl_c_exits_130_and_the_next_run_resumes(sim, tmp_path):
    sim.faults.stall_prompt(1)
    plan = plan_film(tiny_film(tmp_path, 2), out=tmp_path / "out")

    def stop(event):
        if event.kind == "started":
            raise KeyboardInterrupt

    with pytest.raises(Interrupted) as err:
        render_film(plan, RenderOptions(servers=[sim.url]), stop)
    assert err.value.exit_code == 130
    result = render(sim.url, tmp_path / "film.yaml", tmp_path / "out")
    assert result.exit_code == 0
    assert [s.status for s in load_ledger(tmp_path / "out").shots] == ["done", "done"]


def test_killed_client_then_rerun_renders_no_shot_twice_and_loses_none(sim, tmp_path):
    sim.engine.config.step_seconds = 0.3  # each shot takes ~1 s, so the kill lands mid-film
    try:
        shots, out = tiny_film(tmp_path, 4), tmp_path / "out"
        kill_render_when(shots, sim.url, out, lambda ledger: any(s.status == "done" for s in ledger.shots))
        statuses = [s.status for s in load_ledger(out).shots]
        assert "done" in statuses and statuses != ["done"] * 4
        result = render(sim.url, shots, out)
        assert result.exit_code == 0, result.output
        assert "reattached" in [e["event"] for e in events(result)]
    finally:
        sim.engine.config.step_seconds = 0.005
    ledger = load_ledger(out)
    assert [s.status for s in ledger.shots] == ["done"] * 4
    log = successes(sim)
    assert len(log) == 4 and len({e["prompt_id"] for e in log}) == 4
    assert {e["prompt_id"] for e in log} == {s.prompt_id for s in ledger.shots}


def test_two_servers_share_the_film_and_one_killed_mid_run_hands_over(sim, tmp_path):
    second = serve_in_thread(tmp_path / "second", load_seconds=0.02, step_seconds=0.2)
    try:
        plan = plan_film(tiny_film(tmp_path, 6), out=tmp_path / "out")
        seen = []

        def on_event(event):
            seen.append(event)
            if event.kind == "started" and event.server == second.url:
                second.stop()

        options = RenderOptions(servers=[sim.url, second.url], server_grace=1.0, poll_interval=0.2)
        result = render_film(plan, options, on_event)
    finally:
        second.engine.stop()
    assert result.exit_code == 0
    ledger = result.ledger
    assert [s.status for s in ledger.shots] == ["done"] * 6
    assert {s.server for s in ledger.shots} == {sim.url}  # every clip ended up made by the survivor
    moved = [e.shot for e in seen if e.kind == "lost"]
    assert moved and all(e.server == second.url for e in seen if e.kind == "lost")
    assert "server_down" in [e.kind for e in seen]
    seeds = {s.name: s.seed for s in ledger.shots}
    assert seeds == {f"shot-{i}": 100 + i for i in range(1, 7)}


def test_two_healthy_servers_each_make_clips(sim, tmp_path):
    second = serve_in_thread(tmp_path / "second", load_seconds=0.02, step_seconds=0.005)
    try:
        result = render(f"{sim.url},{second.url}", tiny_film(tmp_path, 6), tmp_path / "out")
    finally:
        second.stop()
    assert result.exit_code == 0
    servers = [s.server for s in load_ledger(tmp_path / "out").shots]
    assert set(servers) == {sim.url, second.url}


class HostileHistory(requests.Session):
    """A server (or proxy) that names an output file outside ComfyUI's output folder."""

    def request(self, method, url, *args, **kwargs):
        response = super().request(method, url, *args, **kwargs)
        if "/history/" in url and response.ok and response.content != b"{}":
            text = response.text.replace('"filename": "', '"filename": "../../../escaped_')
            response._content = text.replace('"filename":"', '"filename":"../../../escaped_').encode()
        return response


def test_hostile_history_filename_cannot_escape_the_film_folder(sim, tmp_path):
    plan = plan_film(tiny_film(tmp_path, 1), out=tmp_path / "films" / "out")
    result = render_film(plan, RenderOptions(servers=[sim.url], session_factory=HostileHistory, stitch=False))
    record = result.ledger.shots[0]
    assert record.status == "failed"
    assert "unsafe output file" in record.error["message"] and "../../../escaped_" in record.error["message"]
    assert not list(tmp_path.rglob("escaped_*"))


def test_credentials_are_used_but_never_printed_or_saved(sim, tmp_path):
    url = sim.url.replace("http://", "http://alice:s3cret-pass@")
    result = run_cli("render", tiny_film(tmp_path, 1), "--server", url, "--out", tmp_path / "out", "--json",
                     "--header", "X-Api-Key: TOPSECRET", env={"WANCLIP_HEADERS": "X-Other: ALSOSECRET"})
    assert result.exit_code == 0, result.output
    ledger_text = (tmp_path / "out" / "ledger.json").read_text()
    for secret in ("s3cret-pass", "alice", "TOPSECRET", "ALSOSECRET"):
        assert secret not in result.output and secret not in ledger_text


def test_clip_renders_one_shot_from_a_prompt(sim, tmp_path):
    result = run_cli("clip", "a red fox in the snow", "--frames", "9", "--width", "64", "--height", "64",
                     "--server", sim.url, "--out", tmp_path / "clip", "--json")
    assert result.exit_code == 0, result.output
    clip = media.probe(tmp_path / "clip" / "clips" / "01_a-red-fox-in-the-snow.mp4")
    assert (clip.frames, clip.width) == (9, 64)
    refused = run_cli("clip", "x", "--frames", "80", "--server", sim.url)
    assert refused.exit_code == 2 and "--frames: 80 frames is not 4n+1" in refused.stderr
    refused = run_cli("clip", "x", "--seed", "-1", "--server", sim.url)
    assert refused.exit_code == 2 and "--seed: Input should be greater than or equal to 0" in refused.stderr
    refused = run_cli("clip", "x", "--seconds", "5", "--frames", "81", "--server", sim.url)
    assert refused.exit_code == 2 and "give --seconds or --frames, not both" in refused.stderr
    assert len(sim.log()) == 1  # only the valid clip reached the server


def test_rich_progress_prints_a_summary(sim, tmp_path):
    result = run_cli("render", tiny_film(tmp_path, 2), "--server", sim.url, "--out", tmp_path / "out")
    assert result.exit_code == 0
    assert "render summary" in result.stdout and "2/2 shots done" in result.stdout
    assert f"{sim.url}: ComfyUI 0.3.64 on cuda:0 wanclip simulated GPU" in result.stdout
    assert "film:" in result.stdout and "storyboard: " in result.stdout and "where the time went: " in result.stdout


def test_rerun_keeps_the_stitched_film_when_clips_and_cuts_are_unchanged(sim, tmp_path):
    shots = tiny_film(tmp_path, 2)
    assert render(sim.url, shots, tmp_path / "out").exit_code == 0
    film = tmp_path / "out" / "film.mp4"
    stamp = film.stat().st_mtime_ns
    result = render(sim.url, shots, tmp_path / "out")
    assert "stitch_kept" in [e["event"] for e in events(result)] and film.stat().st_mtime_ns == stamp
    shots.write_text(shots.read_text().replace("{type: fade, duration: 0.1}", "{type: wipeleft, duration: 0.2}"))
    result = render(sim.url, shots, tmp_path / "out")
    assert "stitched" in [e["event"] for e in events(result)] and len(sim.log()) == 2
    assert load_ledger(tmp_path / "out").shots[1].transition == {"type": "wipeleft", "duration": 0.2}


def test_clip_at_the_wrong_frame_rate_fails_the_shot(sim, tmp_path):
    wrong_fps = edited_workflow(tmp_path, "90", "frame_rate", 24)
    shots = tiny_film(tmp_path, 1, workflow=wrong_fps)
    plan = plan_film(shots, out=tmp_path / "out")
    plan.shots[0].graph["90"]["inputs"]["frame_rate"] = 24.0  # a graph edited behind wanclip's back
    result = render_film(plan, RenderOptions(servers=[sim.url], stitch=False))
    error = result.ledger.shots[0].error["message"]
    assert result.exit_code == 1
    assert "24 fps (0.208 s), expected 16 fps (0.312 s)" in error


def test_a_second_render_of_the_same_film_is_refused_while_one_runs(sim, tmp_path):
    from wanclip.ledger import film_lock

    shots = tiny_film(tmp_path, 1)
    with film_lock(tmp_path / "out"):
        result = render(sim.url, shots, tmp_path / "out")
    assert result.exit_code == 2
    assert f"another wanclip render (pid {os.getpid()}) is working on" in result.stderr
    assert sim.log() == []
    assert render(sim.url, shots, tmp_path / "out").exit_code == 0


def test_server_whose_websocket_is_blocked_is_refused_before_submitting(sim, tmp_path):
    """HTTP passes, but a proxy does not pass websocket upgrades (a common nginx mistake)."""
    from wanclip.errors import PreflightError

    def refuse(*args, **kwargs):
        raise ConnectionRefusedError("upgrade refused")

    plan = plan_film(tiny_film(tmp_path, 1), out=tmp_path / "out")
    with pytest.raises(PreflightError, match="cannot open the event socket") as err:
        render_film(plan, RenderOptions(servers=[sim.url], ws_connect=refuse))
    assert "websocket upgrades" in err.value.hint and err.value.exit_code == 2
    assert sim.log() == []
