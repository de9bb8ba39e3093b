"""`wanclip render` on the simulator when things go wrong, each as a new user met it (issue #9).

Every test here failed (hung, looped, rendered twice, printed a secret or a traceback) before the
render core was rebuilt; the defect's number is in the test's docstring.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest
import requests

from helpers import ROOT, run_cli, wait_until
from test_render import render, successes, tiny_film
from wanclip.errors import Interrupted, LocalIOError, PreflightError
from wanclip.ledger import load_ledger
from wanclip.planning.plan import plan_film
from wanclip.render.loop import RenderOptions, render_film

pytestmark = pytest.mark.timeout(90)
PROFILES = ["0.3.64", "0.9", "0.38"]


@pytest.fixture(params=PROFILES)
def sim(request, sim_servers, tmp_path):
    """Every fault case on every ComfyUI version the simulator speaks (the full film runs on one)."""
    handle = sim_servers(request.param)
    handle.reset(tmp_path / "comfy" / "output")
    handle.output_dir.mkdir(parents=True, exist_ok=True)
    yield handle
    handle.reset()


def fast(**kw) -> dict:
    return {"submit_backoff": (0.05, 0.1), "submit_tries": 3, "poll_interval": 0.1, **kw}


def test_a_malformed_websocket_frame_is_dropped_and_the_render_finishes(sim, tmp_path):
    """#1: a frame like {"type":"progress","data":{"value":"12%"}} killed the reader: the render hung."""
    sim.faults.send_raw('{"type":"progress","data":{"value":"12%"}}', after_messages=3)
    sim.faults.send_raw('{"type":"executed","data":{"output":[1]}}', after_messages=5)
    result = render(sim.url, tiny_film(tmp_path, 3), tmp_path / "out", "--no-stitch")
    assert result.exit_code == 0, result.output
    assert len(successes(sim)) == 3


def test_http_500_on_every_submission_refuses_the_render_before_any_gpu_work(sim, tmp_path):
    """#2: a 500 on every POST /prompt looped forever as "lost ... submitting again"."""
    sim.faults.fail_route("/prompt")
    plan = plan_film(tiny_film(tmp_path, 2), out=tmp_path / "out")
    seen = []
    with pytest.raises(PreflightError, match="did not accept the prompt after 3 tries") as err:
        render_film(plan, RenderOptions(servers=[sim.url], **fast()), seen.append)
    assert err.value.exit_code == 2 and "HTTP 500" in err.value.message
    assert "lost" not in [e.kind for e in seen] and [e.kind for e in seen].count("submit_retry") == 2
    assert sim.log() == [] and {s.status for s in load_ledger(tmp_path / "out").shots} == {"pending"}


def test_http_500_on_submissions_after_the_first_fails_those_shots_and_the_rest_finish(sim, tmp_path):
    """#2: once something was accepted, a prompt the server never takes fails its shot (exit 1)."""
    plan = plan_film(tiny_film(tmp_path, 3), out=tmp_path / "out")

    def on_event(event):
        if event.kind == "submitted" and event.shot == "shot-1":
            sim.faults.fail_route("/prompt")

    result = render_film(plan, RenderOptions(servers=[sim.url], stitch=False, **fast()), on_event)
    assert result.exit_code == 1
    ledger = result.ledger
    assert [s.status for s in ledger.shots] == ["done", "failed", "failed"]
    assert "HTTP 500" in ledger.shot("shot-2").error["message"] and len(successes(sim)) == 1


def test_a_transient_500_and_a_lost_answer_render_every_shot_exactly_once(sim, tmp_path):
    """#2 and #10's rule: a POST whose answer was lost is looked up, never blindly sent again."""
    sim.faults.fail_route("/prompt", times=2)
    sim.faults.bad_gateway_after("/prompt", times=1)  # queued, but the proxy answered 502
    plan = plan_film(tiny_film(tmp_path, 3), out=tmp_path / "out")
    result = render_film(plan, RenderOptions(servers=[sim.url], stitch=False, **fast()))
    assert result.exit_code == 0
    log = successes(sim)
    assert len(log) == 3 and {e["prompt_id"] for e in log} == {s.prompt_id for s in result.ledger.shots}


def test_ctrl_c_while_the_server_answers_errors_keeps_every_prompt_and_renders_none_twice(sim, tmp_path):
    """#3: the cancel swallowed the errors, forgot every prompt id: 3 shots became 6 renders.

    Shot 1 is held on the server (a stall, released by ``faults.clear()``): with a slow step instead,
    a loaded machine let it finish before the stop was handled, and the message rightly named no
    running shot (the test failed so once)."""
    sim.faults.stall_prompt(1)
    try:
        plan = plan_film(tiny_film(tmp_path, 3), out=tmp_path / "out")

        def on_event(event):
            if event.kind == "started":
                for route in ("/queue", "/interrupt", "/history", "/api/jobs"):
                    sim.faults.fail_route(route)
                raise KeyboardInterrupt

        with pytest.raises(Interrupted) as err:
            render_film(plan, RenderOptions(servers=[sim.url], stitch=False), on_event)
        assert "still on the server: shot-1 (running)" in err.value.message
        ledger = load_ledger(tmp_path / "out")
        first = ledger.shot("shot-1")
        assert first.status == "running" and first.prompt_id  # never forgotten: the server may still have it
        for record in ledger.shots[1:]:  # queued and kept, or never posted at all
            assert (record.status == "queued" and record.prompt_id) or (record.status, record.prompt_id) == \
                ("pending", None)
        kept = {s.prompt_id for s in ledger.shots if s.prompt_id}
        sim.faults.clear()
        result = render(sim.url, tmp_path / "film.yaml", tmp_path / "out", "--no-stitch")
        assert result.exit_code == 0, result.output
    finally:
        sim.faults.clear()
    log = successes(sim)
    final = load_ledger(tmp_path / "out")
    assert len(log) == 3 and {e["prompt_id"] for e in log} == {s.prompt_id for s in final.shots}
    assert kept <= {s.prompt_id for s in final.shots}  # re-attached, not rendered again


def test_the_only_server_restarting_for_seconds_is_waited_for_not_abandoned(sim, tmp_path):
    """#4: a single-server render aborted after 30 s unreachable; a ComfyUI restart takes 20-90 s."""
    sim.faults.down_for(2.0, during=2)
    plan = plan_film(tiny_film(tmp_path, 3), out=tmp_path / "out")
    seen = []
    result = render_film(plan, RenderOptions(servers=[sim.url], stitch=False, server_grace=0.5,
                                             **fast()), seen.append)
    kinds = [e.kind for e in seen]
    assert result.exit_code == 0 and "server_down" not in kinds and "server_back" in kinds
    assert [s.status for s in result.ledger.shots] == ["done"] * 3
    lost = {e.shot for e in seen if e.kind == "lost"}
    # shot-2 ran when the server went away; shot-3 is lost with it only if its POST reached the server
    # first (the first shot goes alone, the others after it: on a loaded machine shot-3 may be posted
    # only once the server is back). Either way every shot is done above, each rendered by the server.
    assert "shot-2" in lost and lost <= {"shot-2", "shot-3"}, lost


def _wait_for(predicate, message=lambda: "condition never became true") -> None:
    wait_until(predicate, tries=600, interval=0.05, message=message)  # 30 s


@pytest.mark.parametrize("command", ["render", "clip"])
def test_sigterm_stops_our_prompts_on_the_server_and_exits_143(sim, tmp_path, command):
    """#5: SIGTERM (docker stop, CI cancel) left our running and queued prompts on the GPU server."""
    sim.faults.stall_prompt(1)
    out = tmp_path / "out"
    args = ["render", str(tiny_film(tmp_path, 3)), "--no-stitch"] if command == "render" else \
        ["clip", "a fox", "--frames", "5", "--width", "64", "--height", "64"]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    with subprocess.Popen([sys.executable, "-m", "wanclip", *args, "--server", sim.url, "--out", str(out),
                           "--json"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        _wait_for(lambda: any(e.get("status") == "running" for e in requests.get(sim.url + "/sim/log",
                                                                              timeout=5).json()))
        _wait_for(lambda: (out / "ledger.json").exists() and load_ledger(out).shots[0].status == "running")
        proc.send_signal(signal.SIGTERM)
        stdout, _ = proc.communicate(timeout=30)
    assert proc.returncode == 143
    last = json.loads(stdout.strip().splitlines()[-1])
    assert last["event"] == "error" and last["exit_code"] == 143
    ledger = load_ledger(out)
    if "still on the server" in last["error"]:
        # a starved machine: the server did not confirm within the 10 s wanclip waits (or did not even
        # answer where the prompt was). What wanclip says and the ledger must agree: the shot is named
        # as still there and keeps its prompt id for the next run. Stop it here for the next test.
        [left] = [s for s in ledger.shots if s.prompt_id]
        assert f"still on the server: {left.name} (" in last["error"] and left.status in ("queued", "running")
        requests.post(sim.url + "/interrupt", timeout=5)
    else:
        assert {s.status for s in ledger.shots} == {"pending"}

    def idle() -> bool:  # execution_interrupted goes out a moment before the server clears its running entry
        queue = requests.get(sim.url + "/queue", timeout=5).json()
        return queue["queue_running"] == [] and queue["queue_pending"] == []

    _wait_for(idle, lambda: f"our prompt is still on the server: {requests.get(sim.url + '/queue', timeout=5).json()}")
    assert [e["status"] for e in sim.log()] == ["interrupted"]


def test_interrupted_is_said_only_once_the_server_stopped_the_prompt(sim, tmp_path):
    """#14: ComfyUI honours an interrupt at its next check; wanclip claimed "interrupted" at once."""
    sim.faults.stall_prompt(1).slow_interrupt(0.5)
    plan = plan_film(tiny_film(tmp_path, 2), out=tmp_path / "out")
    seen = []

    def on_event(event):
        seen.append(event)
        if event.kind == "started":
            raise KeyboardInterrupt

    with pytest.raises(Interrupted) as err:
        render_film(plan, RenderOptions(servers=[sim.url], stitch=False), on_event)
    kinds = [(e.kind, e.shot) for e in seen]
    assert kinds.index(("cancelling", "shot-1")) < kinds.index(("cancelled", "shot-1"))
    assert "none of our prompts is left on the server" in err.value.message
    assert [(s.status, s.prompt_id) for s in load_ledger(tmp_path / "out").shots] == [("pending", None)] * 2


def test_a_stop_the_server_has_not_honoured_yet_keeps_the_prompt_and_the_next_run_renders_it(sim, tmp_path):
    """#14: the prompt keeps its id until the server confirms; the message says it was asked to stop.

    The server honours the interrupt 3 s after it arrives; a second Ctrl-C the moment the render asks
    it to stop ends the wait there, so the render leaves before any confirmation whatever the machine's
    load (a wait of 2 s once ran out under load before the render could ask, and rightly said
    "(running)")."""
    sim.faults.stall_prompt(1).slow_interrupt(3.0)
    plan = plan_film(tiny_film(tmp_path, 2), out=tmp_path / "out")

    seen = []

    def on_event(event):
        seen.append(event.to_json())
        if event.kind in ("started", "cancelling") and event.shot == "shot-1":
            raise KeyboardInterrupt  # Ctrl-C; then Ctrl-C again once shot-1 is asked to stop

    with pytest.raises(Interrupted) as err:
        render_film(plan, RenderOptions(servers=[sim.url], stitch=False, cancel_wait=60.0), on_event)
    assert "shot-1 (asked to stop)" in err.value.message, (seen, sim.log())
    record = load_ledger(tmp_path / "out").shot("shot-1")
    assert record.prompt_id and record.cancelled and record.status == "running"
    _wait_for(lambda: [e["status"] for e in sim.log()] == ["interrupted"], message=lambda: (sim.log(), requests.get(sim.url + "/queue", timeout=5).json()))
    sim.faults.clear()
    result = render(sim.url, tmp_path / "film.yaml", tmp_path / "out", "--no-stitch")
    assert result.exit_code == 0, result.output
    assert [s.status for s in load_ledger(tmp_path / "out").shots] == ["done", "done"]
    assert len(successes(sim)) == 2


def test_a_server_streaming_forever_fails_the_shot_without_filling_the_disk(sim, tmp_path):
    """#9: /view had no size bound."""
    sim.faults.endless_view()
    plan = plan_film(tiny_film(tmp_path, 1), out=tmp_path / "out")
    result = render_film(plan, RenderOptions(servers=[sim.url], stitch=False))
    error = result.ledger.shots[0].error["message"]
    assert result.exit_code == 1 and "sent more than 67 MB" in error
    assert not list((tmp_path / "out").rglob("*.part")) and not list((tmp_path / "out").rglob("*.mp4"))


def test_a_full_disk_while_downloading_a_clip_stops_the_render_with_a_message(sim, tmp_path):
    """#8: ENOSPC while downloading a clip was a traceback; issue 19 item 6: it then rendered every
    queued shot for nothing. The shot keeps its prompt id (its clip waits on the server)."""
    clips = tmp_path / "out" / "clips"
    clips.mkdir(parents=True)
    (clips / "01_shot-1.mp4.part").symlink_to("/dev/full")  # every write there fails with ENOSPC
    (clips.parent / "ledger.json").write_text('{"film": {"title": "Tiny Film"}, "shots": []}')  # the film's folder
    plan = plan_film(tiny_film(tmp_path, 2), out=tmp_path / "out")
    seen = []
    with pytest.raises(LocalIOError) as caught:
        render_film(plan, RenderOptions(servers=[sim.url], stitch=False), seen.append)
    assert caught.value.exit_code == 1 and caught.value.message.startswith(f"no space left on the disk of {clips}")
    not_saved = [e for e in seen if e.kind == "warning" and e.shot == "shot-1"]
    assert "no room here for its clip" in not_saved[0].message and "the disk is full" in not_saved[0].message
    record = load_ledger(tmp_path / "out").shot("shot-1")
    assert record.status in ("queued", "running") and record.prompt_id and record.error is None
    assert not (clips / "01_shot-1.mp4.part").exists()


@pytest.mark.parametrize("url,why", [("ftp://alice:SECRETPW@127.0.0.1:8188", "not a server URL"),
                                     ("http://alice:SECRETPW@127.0.0.1:99999", "port is not a number"),
                                     ("http://alice:SECRETPW@[::1", "not a valid name or IPv6")])
def test_a_bad_server_url_is_refused_without_echoing_its_password(tmp_path, url, why):
    """#7 and #8: the password was printed; a bad port or IPv6 address was a traceback."""
    result = run_cli("render", tiny_film(tmp_path, 1), "-s", url, "--out", tmp_path / "out")
    assert result.exit_code == 2 and why in result.stderr
    assert "SECRETPW" not in result.output and "alice" not in result.output


def test_an_address_without_a_scheme_is_http_and_an_empty_one_is_refused(sim, tmp_path):
    """As ComfyUI prints its address (127.0.0.1:8188): -s with it was refused; -s '' silently used
    the default server."""
    address = sim.url.removeprefix("http://")
    result = run_cli("render", tiny_film(tmp_path, 1), "-s", address, "--out", tmp_path / "out", "--no-stitch")
    assert result.exit_code == 0, result.output
    assert load_ledger(tmp_path / "out").shots[0].server == sim.url
    empty = run_cli("render", tiny_film(tmp_path, 1), "-s", "", "--out", tmp_path / "out2", "--json")
    assert empty.exit_code == 2 and json.loads(empty.stdout.splitlines()[-1])["error"] == "--server is empty"


def test_a_malformed_header_is_refused_without_echoing_it(tmp_path):
    """#7: `-H SECRETTOKEN` printed the token."""
    result = run_cli("render", tiny_film(tmp_path, 1), "-H", "SECRETTOKEN", "--out", tmp_path / "out", "--json")
    assert result.exit_code == 2 and "SECRETTOKEN" not in result.output
    assert json.loads(result.stdout.splitlines()[-1])["exit_code"] == 2


def test_without_a_terminal_each_shot_state_change_is_one_plain_line(sim, tmp_path):
    """#13: in CI, nohup or a pipe a 5-minute render printed one line, then nothing until the end."""
    result = run_cli("render", tiny_film(tmp_path, 2), "--server", sim.url, "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert f"[1/2] shot-1: queued on {sim.url}" in lines
    assert any(line.startswith("[2/2] shot-2: done in ") for line in lines)
    assert lines.index(f"[1/2] shot-1: queued on {sim.url}") < next(
        i for i, line in enumerate(lines) if line.startswith("[1/2] shot-1: done in "))


def test_json_mode_always_ends_with_one_event_carrying_the_exit_code(tmp_path):
    """#15: --json errors were plain stderr text."""
    result = run_cli("render", tiny_film(tmp_path, 1), "--server", "http://127.0.0.1:9", "--out",
                     tmp_path / "out", "--json")
    last = json.loads(result.stdout.splitlines()[-1])
    assert result.exit_code == 2 and last["event"] == "error" and last["exit_code"] == 2


def test_ledger_and_clips_are_written_with_the_same_permissions(sim, tmp_path):
    """#15: the ledger was 0600 while the clips beside it were 0644."""
    old = os.umask(0o022)
    try:
        result = render(sim.url, tiny_film(tmp_path, 1), tmp_path / "out", "--no-stitch")
    finally:
        os.umask(old)
    assert result.exit_code == 0
    out = tmp_path / "out"
    assert (out / "ledger.json").stat().st_mode & 0o777 == 0o644
    assert (out / "clips" / "01_shot-1.mp4").stat().st_mode & 0o777 == 0o644


@pytest.mark.parametrize("sim", ["0.38"], indirect=True)
def test_force_on_a_server_that_caches_everything_still_makes_new_clips(sim, tmp_path):
    """#10.5: the RAM-pressure cache replays an identical prompt's old file name, or one since deleted."""
    shots = tiny_film(tmp_path, 2)
    assert render(sim.url, shots, tmp_path / "out", "--no-stitch").exit_code == 0
    first = {s.name: s.clip_sha256 for s in load_ledger(tmp_path / "out").shots}
    for old in sim.output_dir.rglob("*.mp4"):
        old.unlink()  # the server's output folder cleaned since
    result = render(sim.url, shots, tmp_path / "out", "--no-stitch", "--force")
    assert result.exit_code == 0, result.output
    assert len(list(sim.output_dir.rglob("*.mp4"))) == 2
    assert {s.name: s.status for s in load_ledger(tmp_path / "out").shots} == {"shot-1": "done", "shot-2": "done"}
    assert set(first) == {"shot-1", "shot-2"}


@pytest.mark.parametrize("sim", ["0.38"], indirect=True)
def test_a_reconnect_the_server_wants_credentials_for_presents_them(sim, tmp_path):
    """#10.4: a reconnect with the same client id while the server still holds the old socket must
    send credential_auth first, or newer ComfyUI closes it with 1008 (and a naive client loops)."""
    sim.faults.stale_ws(3.0).close_ws_after(12)
    seen = []
    plan = plan_film(tiny_film(tmp_path, 3), out=tmp_path / "out")
    result = render_film(plan, RenderOptions(servers=[sim.url], stitch=False), seen.append)
    kinds = [e.kind for e in seen]
    assert result.exit_code == 0 and "socket_back" in kinds
    assert not [e for e in seen if e.kind == "socket_lost" and "1008" in e.data.get("reason", "")]


@pytest.mark.parametrize("sim", ["0.38"], indirect=True)
def test_newer_servers_own_node_timings_put_the_model_load_where_it_happened(sim, tmp_path):
    """#10.6 / #11.5: progress_state's activity and seconds give real per-node timings."""
    sim.engine.config.load_seconds = 0.3
    try:
        plan = plan_film(tiny_film(tmp_path, 2), out=tmp_path / "out")
        result = render_film(plan, RenderOptions(servers=[sim.url], stitch=False))
    finally:
        sim.engine.config.load_seconds = 0.02
    first, second = result.ledger.shots
    assert first.node_seconds["model load"] >= 0.25 and second.node_seconds.get("model load", 0) < 0.1


@pytest.mark.timeout(60)
def test_a_server_with_wanclips_node_pack_encodes_the_clips_off_the_gpus_path(tmp_path):
    """#11.3: when the server lists WanclipSaveVideo, render swaps it in by role and waits for the
    file, which appears after the prompt has finished (the background encode)."""
    from wanclip.sim import serve_in_thread

    server = serve_in_thread(tmp_path / "comfy", load_seconds=0.02, step_seconds=0.005, nodes=("wanclip",),
                             video_delay=0.3)
    try:
        result = render(server.url, tiny_film(tmp_path, 2), tmp_path / "out", "--no-stitch")
        submitted = [e["prompt"] for e in requests.get(server.url + "/history", timeout=5).json().values()]
    finally:
        server.stop()
    assert result.exit_code == 0, result.output
    ledger = load_ledger(tmp_path / "out")
    assert [s.status for s in ledger.shots] == ["done", "done"]
    assert all(any(node["class_type"] == "WanclipSaveVideo" for node in p[2].values()) for p in submitted)
    # the real background encode (the node's wanclip.video event), apart from the output node's time
    assert all(s.node_seconds["background encode"] >= 0.3 for s in ledger.shots)
    summary = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")][-1]
    assert summary["background_encode"]["clips"] == 2 and summary["background_encode"]["median_seconds"] >= 0.3
    assert "background encode" not in summary["seconds"]  # not GPU time: the next shot ran meanwhile
    assert (tmp_path / "out" / "index.html").read_text(encoding="utf-8").count("encoded in the background") == 2


def test_demo_with_a_missing_shots_file_still_ends_its_json_with_the_exit_code(tmp_path):
    """#19.11: `demo --shots nope --json` exited 2 with an empty stdout."""
    result = run_cli("demo", "--shots", tmp_path / "nope.yaml", "--json")
    assert result.exit_code == 2
    last = json.loads(result.stdout.splitlines()[-1])
    assert last["event"] == "error" and last["exit_code"] == 2 and "no such shots file" in last["error"]


@pytest.mark.parametrize("text", ["[]", "null", '{"film": {}, "shots": 5}', '{"film": [], "shots": []}',
                                  '{"film": {}, "shots": [{"name": "shot-1"}]}', '{"film": {}, "shots": ["x"]}'])
def test_a_ledger_of_the_wrong_shape_is_a_message_and_is_left_alone(sim, tmp_path, text):
    """#19.12: a ledger.json that is valid JSON of another shape was a traceback (render, stitch, review)."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "ledger.json").write_text(text)
    before = len(sim.log())
    for args in (("render", tiny_film(tmp_path, 1), "-s", sim.url, "--out", out), ("stitch", "--from", out),
                 ("review", out)):
        result = run_cli(*args)
        assert result.exit_code == 2, (args[0], result.output)
        assert "is not a wanclip ledger" in result.stderr and "Traceback" not in result.output
    assert (out / "ledger.json").read_text() == text
    assert len(sim.log()) == before  # nothing was rendered


@pytest.mark.parametrize("command", ["sim", "serve"])
def test_a_port_out_of_range_is_refused_with_exit_2_not_a_traceback(command):
    """#19.12: `wanclip sim --port 70000` ended in an OverflowError traceback."""
    result = run_cli(command, "--port", "70000")
    assert result.exit_code == 2 and "70000 is not between" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize("body", ["[]", "null", '{"system": 5, "devices": "x"}', '{"system": {}, "devices": [1]}'])
def test_a_server_whose_system_stats_is_not_comfyuis_is_named_not_a_traceback(tmp_path, body):
    """#19.12: /system_stats answering JSON of another shape was an AttributeError in render and doctor."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Odd(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body.encode())

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Odd)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}"
    try:
        rendered = run_cli("render", tiny_film(tmp_path, 1), "-s", url, "--out", tmp_path / "out")
        doctor = run_cli("doctor", "-s", url)
    finally:
        server.shutdown()
        server.server_close()
    assert rendered.exit_code == 2 and "JSON of another shape than ComfyUI's" in rendered.stderr
    assert doctor.exit_code == 1 and "JSON of another shape than ComfyUI's" in doctor.output
    assert "Traceback" not in rendered.output + doctor.output


@pytest.mark.parametrize("command", ["render", "stitch"])
def test_a_film_folder_that_cannot_be_made_is_refused_with_exit_2_not_a_traceback(sim, tmp_path, command):
    """#19.12: an out folder under /proc (or on a read-only disk) was a FileNotFoundError traceback."""
    if command == "render":
        result = run_cli("render", tiny_film(tmp_path, 1), "-s", sim.url, "--out", "/proc/wanclip-cannot", "--json")
    else:
        result = run_cli("stitch", "--from", "/proc/wanclip-cannot", "--json")
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert json.loads(result.stdout.splitlines()[-1])["exit_code"] == 2


@pytest.mark.parametrize("value", ["0", "-5"])
def test_a_timeout_of_zero_or_less_is_refused_before_anything_is_submitted(sim, tmp_path, value):
    """#19.10: `render --timeout 0` (or -5) submitted every shot, then failed each one."""
    before = len(sim.log())
    result = run_cli("render", tiny_film(tmp_path, 2), "-s", sim.url, "--out", tmp_path / "out", "--timeout", value)
    assert result.exit_code == 2 and "--timeout" in result.output
    assert len(sim.log()) == before
