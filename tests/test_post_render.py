"""The post stage, as a user meets it: a film with `post:` renders its shots, then a second prompt per
clip on the server makes the 32 fps (or upscaled) clip the film uses. Changing only `post:` samples
nothing again; the rendered clips stay. The user's session on the simulator, then the files and what
the server ran."""

from __future__ import annotations

import json

import pytest

from helpers import run_cli, write_shots
from wanclip import media
from wanclip.files import sha256_file
from wanclip.ledger import load_ledger


def film_text(post: str | None = "{interpolate: 2}", extra: str = "", chain: bool = True) -> str:
    lines = ["title: Post Film", "width: 64", "height: 64", "frames: 9", "seed_base: 10",
             "transition: {type: fade, duration: 0.125}", *([f"post: {post}"] if post else []), extra, "shots:",
             "  - {name: a, prompt: 'a cat on the table'}",
             "  - {name: b, prompt: 'a dog in the park'}",
             "  - {name: c, prompt: 'the dog runs off'" + (", continue: true}" if chain else "}")]
    return "\n".join(line for line in lines if line) + "\n"


def render(server, shots, out, *args):
    return run_cli("render", shots, "--server", server.url, "--out", out, "--json", *args)


def events(result, kind: str | None = None) -> list[dict]:
    found = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    return [e for e in found if kind is None or e["event"] == kind]


def ran(server) -> list[str]:
    """The prompt ids the server executed, in order."""
    return [e["prompt_id"] for e in server.log() if e["status"] == "success"]


def post_ids(out) -> set[str]:
    return {s.post["prompt_id"] for s in load_ledger(out).shots if s.post}


def plan_json(shots, out) -> dict:
    result = run_cli("plan", shots, "--out", out, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def probe(path):
    info = media.probe(path)
    return info.frames, info.fps, info.width, info.height


@pytest.mark.parametrize("sim_profile", ["0.38"], indirect=True)
def test_a_film_with_post_interpolate_2_is_32_fps_and_changing_only_post_samples_nothing(sim_profile, tmp_path):
    sim = sim_profile
    shots, out = write_shots(tmp_path, film_text()), tmp_path / "out"
    plan = plan_json(shots, out)
    assert plan["film"]["fps"] == 32 and plan["film"]["rendered_fps"] == 16
    assert [s["post"]["frames"] for s in plan["shots"]] == [17, 17, 17]

    result = render(sim, shots, out)
    assert result.exit_code == 0, result.output
    ledger = load_ledger(out)
    assert len(ran(sim)) == 6 and len(post_ids(out)) == 3  # three shots sampled, three post prompts
    assert sorted(e["shot"] for e in events(result, "post_done")) == ["a", "b", "c"]
    for record in ledger.shots:
        assert probe(out / record.clip) == (9, 16, 64, 64)  # the rendered clip stays
        post = ledger.post_clip(record)
        assert post["from_sha256"] == record.clip_sha256 and post["key"] == "i2"
        assert probe(out / post["clip"]) == (17, 32, 64, 64)
        assert ledger.film_clip(record) == out / post["clip"]
    frames, fps, _, _ = probe(out / "film.mp4")
    assert fps == 32 and frames == round(plan["film"]["seconds"] * 32)  # what plan said, to the frame
    rendered = {r.name: sha256_file(out / r.clip) for r in ledger.shots}

    shots.write_text(film_text("{interpolate: 3, upscale: 2}"), encoding="utf-8")
    table = run_cli("plan", shots, "--out", out).stdout
    assert "render will render nothing" in table and "post settings changed" in table
    before = len(ran(sim))
    result = render(sim, shots, out)
    assert result.exit_code == 0, result.output
    new = ran(sim)[before:]
    assert len(new) == 3 and set(new) <= post_ids(out)  # only post prompts: no shot sampled again
    assert events(result, "submitted") == []
    assert {r.name: sha256_file(out / r.clip) for r in load_ledger(out).shots} == rendered
    assert probe(out / "film.mp4")[1:] == (48, 128, 128)
    assert (out / "clips" / "01_a.i2.mp4").is_file()  # the earlier post clip is kept

    shots.write_text(film_text(None), encoding="utf-8")  # no post: the rendered clips, no GPU work
    before = len(ran(sim))
    result = render(sim, shots, out)
    assert result.exit_code == 0, result.output
    assert len(ran(sim)) == before and probe(out / "film.mp4")[1:] == (16, 64, 64)

    shots.write_text(film_text(), encoding="utf-8")  # back: the i2 clips are made already
    result = render(sim, shots, out)
    assert result.exit_code == 0, result.output
    assert len(ran(sim)) == before and probe(out / "film.mp4")[1] == 32


@pytest.mark.parametrize("sim_profile", ["0.38"], indirect=True)
def test_an_edited_clip_gets_a_new_post_clip_from_the_users_version_and_is_not_sampled_again(sim_profile, tmp_path):
    sim = sim_profile
    shots, out = write_shots(tmp_path, film_text()), tmp_path / "out"
    assert render(sim, shots, out).exit_code == 0
    ledger = load_ledger(out)
    a, b = ledger.shot("a"), ledger.shot("b")
    (out / a.clip).write_bytes((out / b.clip).read_bytes())  # the user's "grade" of clip a
    edited = sha256_file(out / a.clip)

    before = len(ran(sim))
    result = render(sim, shots, out)
    assert result.exit_code == 0, result.output
    assert len(ran(sim)) == before + 1 and ran(sim)[-1] in post_ids(out)  # a's post step only
    assert any("clip a changed since it was rendered" in e.get("message", "") for e in events(result, "warning"))
    ledger = load_ledger(out)
    post = ledger.post_clip(ledger.shot("a"))
    assert post["from_sha256"] == edited and sha256_file(out / ledger.shot("a").clip) == edited


def test_a_server_that_cannot_interpolate_is_refused_before_any_gpu_work_with_the_fix(sim, tmp_path):
    shots, out = write_shots(tmp_path, film_text()), tmp_path / "out"  # 0.3.64: no FrameInterpolate, no RIFE VFI
    result = run_cli("render", shots, "--server", sim.url, "--out", out)
    assert result.exit_code == 2, result.output
    assert "no server can run the post step of shot a" in result.output
    assert "FrameInterpolate" in result.output and "RIFE VFI" in result.output
    assert "wanclip setup --with interpolation" in result.output
    assert sim.log() == []


def test_upscaling_alone_runs_on_0364_with_the_model_upscaler(sim, tmp_path):
    shots, out = write_shots(tmp_path, film_text("{upscale: 2}")), tmp_path / "out"
    result = render(sim, shots, out)
    assert result.exit_code == 0, result.output
    assert probe(out / "film.mp4")[1:] == (16, 128, 128)
    assert probe(out / "clips" / "01_a.u128x128.mp4") == (9, 16, 128, 128)


@pytest.fixture(scope="module")
def rife_sim(tmp_path_factory):
    """ComfyUI 0.3.64 with ComfyUI-Frame-Interpolation (RIFE VFI) and wanclip's node pack installed."""
    from wanclip.sim import serve_in_thread

    handle = serve_in_thread(tmp_path_factory.mktemp("rife") / "output", load_seconds=0.02, step_seconds=0.005,
                             nodes=("frame-interpolation", "wanclip"))
    yield handle
    handle.stop()


def test_rife_vfi_where_there_is_no_core_node_the_node_packs_encoder_and_post_at_end_after_every_shot(
        rife_sim, tmp_path):
    rife_sim.reset(tmp_path / "comfy" / "output")
    # no chain: a link is submitted when its predecessor is done, so a post prompt may run before it
    shots, out = write_shots(tmp_path, film_text(chain=False)), tmp_path / "out"
    result = render(rife_sim, shots, out)  # at-end is the default
    assert result.exit_code == 0, result.output
    order, posts = ran(rife_sim), post_ids(out)
    assert [p in posts for p in order] == [False, False, False, True, True, True]  # every shot, then the posts
    assert probe(out / "film.mp4")[1] == 32
    history = rife_sim.engine.history()
    posted = [json.dumps(history[p]["prompt"]) for p in posts]
    assert all('"RIFE VFI"' in g and "FrameInterpolate" not in g for g in posted)
    assert all('"WanclipSaveVideo"' in g and '"SaveVideo"' not in g for g in posted)  # encoded off the GPU's path


@pytest.mark.parametrize("sim_profile", ["0.38"], indirect=True)
def test_a_failed_post_step_keeps_the_clip_exits_1_and_the_rerun_runs_only_the_post_step(sim_profile, tmp_path):
    sim = sim_profile
    shots, out = write_shots(tmp_path, film_text(chain=False)), tmp_path / "out"
    sim.faults.fail_prompt(4, node="FrameInterpolate", message="CUDA out of memory")  # the first post prompt (at the end)
    result = render(sim, shots, out, "--post-order", "at-end", "--no-stitch")
    assert result.exit_code == 1, result.output
    failed = events(result, "post_failed")
    assert len(failed) == 1 and "CUDA out of memory" in json.dumps(failed[0])
    ledger = load_ledger(out)
    assert all(r.status == "done" for r in ledger.shots)  # every shot's clip is kept
    assert sum(ledger.post_wanted(r) for r in ledger.shots) == 1

    sim.faults.clear()
    before = len(ran(sim))
    result = render(sim, shots, out)
    assert result.exit_code == 0, result.output
    assert len(ran(sim)) == before + 1 and events(result, "submitted") == []
    assert probe(out / "film.mp4")[1] == 32


def test_post_keys_are_checked_with_the_line_and_what_to_write(tmp_path):
    for text, words in [("{interpolate: 2.5}", "a whole number of times the frames"),
                        ("{upscale: 9}", "a factor from 1 (none) to 4"),
                        ("{upscale: huge}", "target height such as 720p"),
                        ("{interp: 2}", "did you mean 'interpolate'"),
                        ("{upscale: 5000p}", "a height from 144p to 4096p")]:
        shots = write_shots(tmp_path, film_text(text))
        result = run_cli("plan", shots, "--out", tmp_path / "o")
        assert result.exit_code == 2, (text, result.output)
        assert "line 7" in result.output and words in result.output, (text, result.output)


@pytest.mark.parametrize("sim_profile", ["0.38"], indirect=True)
def test_a_client_killed_during_a_post_step_re_attaches_and_each_prompt_runs_once(sim_profile, tmp_path):
    from helpers import kill_render_when

    sim = sim_profile
    shots, out = write_shots(tmp_path, film_text(chain=False)), tmp_path / "out"
    for n in range(1, 7):  # whichever prompt is a post prompt holds at its interpolation
        sim.faults.stall_prompt(n, node="FrameInterpolate")
    kill_render_when(shots, sim.url, out,
                     lambda ledger: any((s.post or {}).get("status") == "running" for s in ledger.shots))
    ledger = load_ledger(out)
    running = [s.name for s in ledger.shots if (s.post or {}).get("status") == "running"]
    assert running, "the client was killed while a post prompt ran"
    sim.faults.clear()  # the server goes on; the killed client's prompt finishes there

    result = render(sim, shots, out)
    assert result.exit_code == 0, result.output
    assert len(ran(sim)) == 6  # three shots and three post prompts, none twice
    assert running[0] in [e["shot"] for e in events(result, "post_reattached")]
    assert probe(out / "film.mp4")[1] == 32


@pytest.mark.parametrize("sim_profile", ["0.38"], indirect=True)
def test_prune_deletes_the_post_clips_the_film_no_longer_uses_and_keeps_the_rest(sim_profile, tmp_path):
    sim = sim_profile
    shots, out = write_shots(tmp_path, film_text(chain=False)), tmp_path / "out"
    assert render(sim, shots, out).exit_code == 0
    shots.write_text(film_text("{interpolate: 3}", chain=False), encoding="utf-8")
    assert render(sim, shots, out).exit_code == 0
    listed = run_cli("takes", str(out), "--prune")  # off a terminal: lists, deletes nothing without --yes
    assert listed.exit_code == 2 and "01_a.i2.mp4  (a, post clip i2)" in listed.output
    assert (out / "clips" / "01_a.i2.mp4").is_file()

    result = run_cli("takes", str(out), "--prune", "--yes", "--json")
    assert result.exit_code == 0, result.output
    assert sorted(json.loads(result.stdout)["deleted"]) == [f"clips/0{i}_{n}.i2.mp4" for i, n in ((1, "a"), (2, "b"),
                                                                                                  (3, "c"))]
    ledger = load_ledger(out)
    for record in ledger.shots:  # the clips the film uses, rendered and post, stay
        assert (out / record.clip).is_file() and ledger.film_clip(record).is_file()
        assert [p["key"] for p in record.posts] == ["i3"]
    before = len(ran(sim))
    shots.write_text(film_text(chain=False), encoding="utf-8")  # i2 again: made again, nothing sampled
    assert render(sim, shots, out).exit_code == 0 and len(ran(sim)) == before + 3


@pytest.mark.parametrize("sim_profile", ["0.38"], indirect=True)
def test_post_order_after_each_runs_a_post_prompt_ahead_of_the_shots_still_queued(sim_profile, tmp_path):
    from wanclip.planning.plan import plan_film
    from wanclip.render.loop import RenderOptions, render_film

    sim = sim_profile
    shots, out = write_shots(tmp_path, film_text(chain=False)), tmp_path / "out"
    sim.faults.stall_prompt(2)  # shot b holds the GPU until a's post prompt is queued

    def on_event(event):
        if event.kind == "post_submitted" and event.shot == "a":
            sim.faults.clear()

    result = render_film(plan_film(shots, out=out), RenderOptions(servers=[sim.url], stitch=False,
                                                                  post_order="after-each"), on_event)
    assert result.exit_code == 0
    ledger = load_ledger(out)
    order = ran(sim)
    post_a, shot_c = ledger.shot("a").post["prompt_id"], ledger.shot("c").prompt_id
    assert order.index(post_a) < order.index(shot_c)  # ahead of c, which was queued since the start
