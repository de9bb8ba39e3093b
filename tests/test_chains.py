"""Continuity (image-to-video): chains, keyframes and end frames, from the shots file to the film.

A user's session: write a shots file with `continue: true`, `image:` and `end_image:`, plan it,
render it on the simulated ComfyUI, then look at the frames of the clips and of the film, at the
pictures the server was given, and at what it executed.
"""

from __future__ import annotations

import json
import math

import pytest
from PIL import Image, ImageChops, ImageDraw, ImageFilter, ImageStat

from helpers import kill_render_when, run_cli, write_shots
from wanclip import media
from wanclip.ledger import load_ledger
from wanclip.planning.plan import plan_film

FRAMES = 9  # 4n+1, small: the simulator draws and encodes every frame
W, H = 96, 64


def chain_film(folder, links: int = 3, extra: str = "", head: str = "", colour_match: bool = True) -> object:
    lines = ["title: Chain Film", f"width: {W}", f"height: {H}", f"frames: {FRAMES}", "seed_base: 7",
             "transition: {type: fade, duration: 0.125}", f"colour_match: {str(colour_match).lower()}", extra,
             "shots:", f"  - {{name: walk-1, prompt: 'a dancer turns, link one'{head}}}"]
    lines += [f"  - {{name: walk-{i}, prompt: 'the dancer keeps turning, link {i}', continue: true}}"
              for i in range(2, links + 1)]
    return write_shots(folder, "\n".join(lines) + "\n")


def picture(path, size=(W, H), colour=(200, 80, 40), mark=(20, 200, 220)):
    """A photo-like keyframe: a soft blob on a colour (H.264's 4:2:0 chroma blurs hard colour edges)."""
    img = Image.new("RGB", size, colour)
    draw = ImageDraw.Draw(img)
    draw.ellipse((size[0] // 4, size[1] // 4, size[0] // 2, size[1] // 2), fill=mark)
    img.filter(ImageFilter.GaussianBlur(max(size) / 24)).save(path)
    return path


def psnr(a: Image.Image, b: Image.Image) -> float:
    diff = ImageChops.difference(a.convert("RGB"), b.convert("RGB"))
    mse = sum(v * v for v in ImageStat.Stat(diff).rms) / 3
    return math.inf if mse == 0 else 10 * math.log10(255 * 255 / mse)


def frame(clip, index: int) -> Image.Image:
    info = media.probe(clip)
    index = index if index >= 0 else info.frames + index
    raw = media.grab_frames(info, [index], info.width, info.height)[0]
    return Image.frombytes("RGB", (info.width, info.height), raw)


def render(sim_url, shots_file, out, *args):
    return run_cli("render", shots_file, "--server", sim_url, "--out", out, "--json", *args)


def executed(sim) -> list[dict]:
    """Each successful prompt (id and graph, from the server's history), in the order it ran them."""
    history = sim.engine.history()
    return [{"prompt_id": e["prompt_id"], "prompt": history[e["prompt_id"]]["prompt"][2]}
            for e in sim.log() if e["status"] == "success"]


# -- the shots file and the plan (no server) ---------------------------------------------------------

def test_plan_shows_the_chain_and_what_each_link_waits_for(tmp_path):
    shots = chain_film(tmp_path, 3)
    result = run_cli("plan", shots, "--out", tmp_path / "planned")
    assert result.exit_code == 0, result.output
    assert "1 → 2 → 3" in result.stdout
    assert "waits for walk-1" in result.stdout and "waits for walk-2" in result.stdout
    plan = plan_film(shots)
    assert [s.continues for s in plan.shots] == [None, "walk-1", "walk-2"]
    # Σ kept frames / fps: each continued clip loses its first frame (its predecessor's last)
    assert plan.seconds == pytest.approx((FRAMES + 2 * (FRAMES - 1)) / 16)
    head, link = plan.shots[0].graph, plan.shots[1].graph
    assert not any(n["class_type"] == "LoadImage" for n in head.values())  # a plain T2V head
    assert any(n["class_type"] == "WanImageToVideo" for n in link.values())


def test_plan_refuses_a_continued_first_shot_with_file_line_and_field(tmp_path):
    shots = write_shots(tmp_path, "title: T\nshots:\n  - name: a\n    prompt: x\n    continue: true\n")
    result = run_cli("plan", shots, "--out", tmp_path / "planned")
    assert result.exit_code == 2
    assert "line 5" in result.output and "shots[1] (a).continue" in result.output
    assert "no shot before it" in result.output


def test_plan_refuses_a_soft_cut_into_a_continued_shot(tmp_path):
    shots = chain_film(tmp_path, 2)
    text = shots.read_text().replace("continue: true}", "continue: true, transition: dissolve}")
    shots.write_text(text)
    result = run_cli("plan", shots, "--out", tmp_path / "planned")
    assert result.exit_code == 2
    assert "hard cut" in result.output and "shots[2] (walk-2).transition" in result.output


def test_plan_refuses_a_keyframe_past_pillows_decompression_bomb_limit_with_a_message(tmp_path):
    """#19.12: a picture whose header claims 40000x40000 pixels was a DecompressionBombError traceback."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 40000, 40000, 8, 2, 0, 0, 0)  # 8-bit RGB; only the header is read
    (tmp_path / "key.png").write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
                                       + chunk(b"IDAT", zlib.compress(b"\0")) + chunk(b"IEND", b""))
    result = run_cli("plan", chain_film(tmp_path, 2, head=", image: key.png"), "--out", tmp_path / "planned")
    assert result.exit_code == 2 and "40000x40000" in result.output and "Traceback" not in result.output


def test_plan_refuses_a_missing_keyframe_and_a_far_aspect_and_notes_a_crop(tmp_path):
    shots = chain_film(tmp_path, 2, head=", image: key.png")
    result = run_cli("plan", shots, "--out", tmp_path / "planned")
    assert result.exit_code == 2 and "image" in result.output and "no such file" in result.output
    picture(tmp_path / "key.png", size=(64, 192))  # portrait for a landscape film
    result = run_cli("plan", shots, "--out", tmp_path / "planned")
    assert result.exit_code == 2 and "crop away" in result.output
    picture(tmp_path / "key.png", size=(160, 100))
    result = run_cli("plan", shots, "--out", tmp_path / "planned")
    assert result.exit_code == 0, result.output
    assert "centre-cropped" in result.output


# -- rendering a chain on the simulator --------------------------------------------------------------

def test_a_chain_renders_seamlessly_and_the_film_drops_each_duplicated_frame(sim, tmp_path):
    out = tmp_path / "film"
    result = render(sim.url, chain_film(tmp_path, 3, colour_match=False), out)
    assert result.exit_code == 0, result.output
    ledger = load_ledger(out)
    clips = [out / s.clip for s in ledger.shots]
    for before, after in zip(clips, clips[1:], strict=False):
        assert psnr(frame(before, -1), frame(after, 0)) >= 35  # the link starts where the last one ended
    assert [s.continues for s in ledger.shots] == [None, "walk-1", "walk-2"]
    assert ledger.shots[1].start_sha256 == ledger.shots[0].clip_sha256
    assert (out / ledger.shots[0].last_frame).is_file()
    # every link's start picture went through /upload/image into the server's input folder
    graphs = [e["prompt"] for e in executed(sim)]
    loads = [n["inputs"]["image"] for g in graphs for n in g.values() if n["class_type"] == "LoadImage"]
    assert len(loads) == 2 and all((sim.output_dir.parent / "input" / name).is_file() for name in loads)
    film = media.probe(out / "film.mp4")
    assert film.frames == FRAMES + 2 * (FRAMES - 1)
    # seamless: the frame after the seam is the second frame of the continued clip
    assert psnr(frame(out / "film.mp4", FRAMES), frame(clips[1], 1)) >= 35


def test_re_rendering_the_second_link_re_renders_exactly_the_links_after_it(sim, tmp_path):
    out = tmp_path / "film"
    shots = chain_film(tmp_path, 4, extra="", head="")
    assert render(sim.url, shots, out).exit_code == 0
    first = {s.name: s.clip_sha256 for s in load_ledger(out).shots}
    sim.reset(sim.output_dir)
    shots.write_text(shots.read_text().replace("link 2'", "link 2, slower'"))
    result = render(sim.url, shots, out)
    assert result.exit_code == 0, result.output
    again = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    rendered = [e["shot"] for e in again if e["event"] == "done"]
    assert rendered == ["walk-2", "walk-3", "walk-4"]
    assert [e["shot"] for e in again if e["event"] == "skipped"] == ["walk-1"]
    now = {s.name: s.clip_sha256 for s in load_ledger(out).shots}
    assert now["walk-1"] == first["walk-1"] and now["walk-3"] != first["walk-3"]


def test_only_a_middle_link_brings_the_links_after_it(sim, tmp_path):
    out = tmp_path / "film"
    shots = chain_film(tmp_path, 3)
    assert render(sim.url, shots, out).exit_code == 0
    sim.reset(sim.output_dir)
    result = render(sim.url, shots, out, "--only", "walk-2", "--force")
    assert result.exit_code == 0, result.output
    done = [json.loads(line)["shot"] for line in result.stdout.splitlines()
            if line.startswith("{") and json.loads(line)["event"] == "done"]
    assert done == ["walk-2", "walk-3"]


def test_independent_shots_are_queued_while_a_chain_waits(sim, tmp_path):
    """The GPU never idles for a chain: the other shots are queued at once and run while a link
    waits for its predecessor, and each link, once ready, goes to the front of the queue."""
    shots = chain_film(tmp_path, 3)
    text = shots.read_text() + "".join(f"  - {{name: cut-{i}, prompt: 'an unrelated shot {i}'}}\n" for i in range(4))
    shots.write_text(text)
    result = render(sim.url, shots, tmp_path / "film")
    assert result.exit_code == 0, result.output
    ledger = load_ledger(tmp_path / "film")
    names = {s.prompt_id: s.name for s in ledger.shots}
    log = [e for e in sim.log() if e["status"] == "success"]
    ran = [names[e["prompt_id"]] for e in log]
    assert set(ran) == {s.name for s in ledger.shots} and len(ran) == len(ledger.shots)
    assert ran.index("walk-2") > ran.index("cut-0") > ran.index("walk-1")  # a cut ran while walk-2 waited
    numbers = {names[e["prompt_id"]]: e["number"] for e in log}
    assert numbers["walk-2"] < 0 and numbers["walk-3"] < 0 < numbers["cut-3"]  # front of the queue


def test_a_keyframe_start_and_an_end_frame(sim, tmp_path):
    picture(tmp_path / "start.png")
    picture(tmp_path / "end.png", colour=(30, 60, 200), mark=(250, 250, 20))
    shots = write_shots(tmp_path, f"title: Key Film\nwidth: {W}\nheight: {H}\nframes: {FRAMES}\nshots:\n"
                        "  - {name: land, prompt: 'from one picture to another', image: start.png, "
                        "end_image: end.png}\n")
    out = tmp_path / "film"
    result = render(sim.url, shots, out)
    assert result.exit_code == 0, result.output
    clip = out / load_ledger(out).shots[0].clip
    assert psnr(frame(clip, 0), Image.open(tmp_path / "start.png")) >= 35
    assert psnr(frame(clip, -1), Image.open(tmp_path / "end.png")) >= 35
    graph = executed(sim)[0]["prompt"]
    assert any(n["class_type"] == "WanFirstLastFrameToVideo" for n in graph.values())


def test_a_failed_link_fails_the_links_after_it_and_a_rerun_finishes_the_chain(sim, tmp_path):
    out = tmp_path / "film"
    shots = chain_film(tmp_path, 3)
    sim.faults.fail_prompt(2)  # the second prompt the server runs: walk-2
    result = render(sim.url, shots, out)
    assert result.exit_code == 1
    ledger = load_ledger(out)
    assert [s.status for s in ledger.shots] == ["done", "failed", "failed"]
    assert "walk-2, which failed" in ledger.shots[2].error["message"]
    result = render(sim.url, shots, out)
    assert result.exit_code == 0, result.output
    assert [s.status for s in load_ledger(out).shots] == ["done"] * 3


def test_colour_match_holds_a_drifting_chain_to_its_first_keyframe(sim_server, tmp_path):
    """With the simulator's per-link drift, the last link's colour stays near the chain's first
    keyframe when colour_match is on, and drifts link after link when it is off."""
    from wanclip.render.drift import colour_stats, distance
    from wanclip.sim import serve_in_thread

    drifts = {}
    with_drift = serve_in_thread(tmp_path / "comfy" / "output", load_seconds=0.01, step_seconds=0.002, drift=0.03)
    try:
        for match in (True, False):
            out = tmp_path / f"film-{match}"
            (tmp_path / f"s{match}").mkdir()
            shots = chain_film(tmp_path / f"s{match}", 5, colour_match=match)
            assert render(with_drift.url, shots, out).exit_code == 0
            ledger = load_ledger(out)
            reference = colour_stats(frame(out / ledger.shots[0].clip, -1))
            drifts[match] = distance(reference, colour_stats(frame(out / ledger.shots[-1].clip, -1))).mean_delta
    finally:
        with_drift.stop()
    assert drifts[True] < drifts[False] / 2


# -- fault paths, for chains too -----------------------------------------------------------------------

def seam_psnrs(out) -> list[float]:
    clips = [out / s.clip for s in load_ledger(out).shots]
    return [psnr(frame(a, -1), frame(b, 0)) for a, b in zip(clips, clips[1:], strict=False)]


def test_a_server_restart_mid_chain_resubmits_the_lost_link_from_the_same_frame(sim, tmp_path):
    sim.faults.restart_during(2)  # while walk-2 renders: its prompt (and the uploaded input) must survive
    out = tmp_path / "film"
    result = render(sim.url, chain_film(tmp_path, 3), out)
    assert result.exit_code == 0, result.output
    lost = [json.loads(line)["shot"] for line in result.stdout.splitlines()
            if line.startswith("{") and json.loads(line)["event"] == "lost"]
    assert lost == ["walk-2"]
    ledger = load_ledger(out)
    assert [s.status for s in ledger.shots] == ["done"] * 3 and ledger.shots[1].attempts == 2
    assert all(p >= 35 for p in seam_psnrs(out))


def test_a_killed_client_mid_chain_reattaches_and_renders_no_link_twice(sim, tmp_path):
    sim.engine.config.step_seconds = 0.1  # each link takes ~0.5 s: the kill lands mid-chain
    try:
        shots, out = chain_film(tmp_path, 4), tmp_path / "film"
        kill_render_when(shots, sim.url, out, lambda ledger: ledger.shots[1].status in ("queued", "running"),
                         interval=0.02)  # once walk-2 is on the server
        assert load_ledger(out).shots[1].prompt_id
        result = render(sim.url, shots, out)
        assert result.exit_code == 0, result.output
    finally:
        sim.engine.config.step_seconds = 0.005
    ledger = load_ledger(out)
    assert [s.status for s in ledger.shots] == ["done"] * 4
    ran = [e["prompt_id"] for e in sim.log() if e["status"] == "success"]
    assert sorted(ran) == sorted(s.prompt_id for s in ledger.shots)  # each link rendered exactly once
    assert all(p >= 35 for p in seam_psnrs(out))


def test_two_chains_spread_over_two_servers_each_link_uploaded_where_it_renders(sim, tmp_path):
    from wanclip.sim import serve_in_thread

    second = serve_in_thread(tmp_path / "second" / "output", load_seconds=0.02, step_seconds=0.005)
    try:
        shots = chain_film(tmp_path, 3)
        text = shots.read_text() + "".join(
            f"  - {{name: pour-{i}, prompt: 'water pours, part {i}'{', continue: true' if i > 1 else ''}}}\n"
            for i in range(1, 4))
        shots.write_text(text)
        out = tmp_path / "film"
        result = render(f"{sim.url},{second.url}", shots, out)
        assert result.exit_code == 0, result.output
    finally:
        second.stop()
    ledger = load_ledger(out)
    assert {s.server for s in ledger.shots} == {sim.url, second.url}
    for handle, folder in ((sim, sim.output_dir.parent), (second, tmp_path / "second")):
        mine = [s for s in ledger.shots if s.server == handle.url and s.continues]
        history = handle.engine.history()
        for record in mine:  # its start picture was uploaded to the server that rendered it
            graph = history[record.prompt_id]["prompt"][2]
            name = next(n["inputs"]["image"] for n in graph.values() if n["class_type"] == "LoadImage")
            assert (folder / "input" / name).is_file()
    assert all(p >= 35 for p in seam_psnrs(out)[:2])


def test_demo_of_the_chain_example_makes_a_seamless_30_s_film(tmp_path):
    """`wanclip demo --shots dancer_chain`: six 5 s links, colour_match on, one continuous take."""
    out = tmp_path / "dancer"
    result = run_cli("demo", "--shots", "dancer_chain", "--out", out, "--load-seconds", "0.05",
                     "--step-seconds", "0.002", "--json")
    assert result.exit_code == 0, result.output
    ledger = load_ledger(out)
    assert [s.continues for s in ledger.shots][1:] == [s.name for s in ledger.shots][:-1]
    film = out / "film.mp4"
    assert media.probe(film).frames == 6 * 81 - 5  # 30.06 s: each repeated first frame dropped
    clips = [out / s.clip for s in ledger.shots]
    seam = 0
    for before, after in zip(clips, clips[1:], strict=False):
        seam += media.probe(before).frames - (1 if seam else 0)  # film index of `after`'s frame 1
        assert psnr(frame(film, seam - 1), frame(before, -1)) >= 35  # the film shows the last frame once
        assert psnr(frame(film, seam), frame(after, 1)) >= 35  # ... then the link's second frame
        assert psnr(frame(before, -1), frame(after, 0)) >= 35  # the link began on that last frame


def test_links_added_after_their_head_was_rendered_start_from_its_clip(sim, tmp_path):
    """A film rendered without chains, then given `continue:` shots: the head is not rendered
    again; its last frame is decoded from the clip already there, and the links follow."""
    out = tmp_path / "film"
    shots = chain_film(tmp_path, 1)
    assert render(sim.url, shots, out).exit_code == 0
    head = load_ledger(out).shots[0]
    assert head.last_frame is None  # nothing continued from it yet
    chain_film(tmp_path, 3)
    result = render(sim.url, shots, out)
    assert result.exit_code == 0, result.output
    ledger = load_ledger(out)
    assert ledger.shots[0].clip_sha256 == head.clip_sha256  # the head was kept
    assert (out / "clips" / "01_walk-1.last.png").is_file()
    assert all(p >= 35 for p in seam_psnrs(out))


def test_a_link_follows_the_take_its_predecessor_is_pinned_to(sim, tmp_path):
    """Pinning an earlier take of a chain's head (`take: 1`) changes the clip the next link must start
    from: the link renders again from that take's last frame, and the seam in the film is seamless.
    It kept starting from the newest take's last frame, so the film showed a jump at the cut."""
    out = tmp_path / "film"
    shots = chain_film(tmp_path, 2)
    assert render(sim.url, shots, out).exit_code == 0
    shots.write_text(shots.read_text().replace("link one'", "link one, in the rain'"))
    assert render(sim.url, shots, out).exit_code == 0  # walk-1 take 2, walk-2 follows it (its take 2)
    head_take_1 = load_ledger(out).shots[0].takes[0]
    shots.write_text(shots.read_text().replace("link one, in the rain'", "link one, in the rain', take: 1"))
    before = len(executed(sim))
    result = render(sim.url, shots, out)
    assert result.exit_code == 0, result.output
    ran = executed(sim)[before:]
    assert len(ran) == 1  # walk-2 again, from take 1's last frame; walk-1 not at all
    ledger = load_ledger(out)
    head, link = ledger.shots
    assert link.take == 3 and link.start_sha256 == head_take_1["clip_sha256"]
    assert ledger.film_clip(head) == out / head_take_1["clip"]
    a, b = ledger.film_clip(head), ledger.film_clip(link)
    assert psnr(frame(a, -1), frame(b, 0)) >= 35  # the link starts on the pinned take's last frame
