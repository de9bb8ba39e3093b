"""A film that changes after it was rendered: shots inserted, clips graded by hand, prompts rewritten,
takes kept and chosen. The user's session on the simulator, then the files and what the server ran."""

from __future__ import annotations

import json
import shutil

from helpers import ROOT, run_cli, write_shots
from wanclip.files import sha256_file
from wanclip.ledger import load_ledger

SHOTS = ["a", "b", "c", "d"]


def film_text(names=SHOTS, extra: dict[str, str] | None = None, chain: tuple[str, ...] = ()) -> str:
    lines = ["title: Takes Film", "width: 64", "height: 64", "frames: 5", "seed_base: 100",
             "transition: {type: fade, duration: 0.1}", "shots:"]
    for name in names:
        more = (extra or {}).get(name, "")
        cont = ", continue: true, transition: cut" if name in chain else ""
        lines.append(f"  - {{name: {name}, prompt: 'shot {name} on the table'{cont}{more}}}")
    return "\n".join(lines) + "\n"


def render(sim, shots, out, *args):
    return run_cli("render", shots, "--server", sim.url, "--out", out, "--json", *args)


def events(result, kind: str | None = None) -> list[dict]:
    found = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    return [e for e in found if kind is None or e["event"] == kind]


def executed(sim) -> int:
    return len([e for e in sim.log() if e["status"] == "success"])


def plan_json(shots, out, *args) -> dict:
    result = run_cli("plan", shots, "--out", out, "--json", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def rendered_film(sim, tmp_path, names=SHOTS, **kw):
    shots = write_shots(tmp_path, film_text(names, **kw))
    out = tmp_path / "out"
    result = render(sim, shots, out)
    assert result.exit_code == 0, result.output
    return shots, out


def test_inserting_a_shot_renders_only_that_shot_and_keeps_every_other_seed_and_clip(sim, tmp_path):
    shots, out = rendered_film(sim, tmp_path)
    before = {s.name: (s.seed, s.clip, s.clip_sha256) for s in load_ledger(out).shots}
    assert [before[n][0] for n in SHOTS] == [101, 102, 103, 104]
    shots.write_text(film_text(["a", "x", "b", "c", "d"]), encoding="utf-8")

    plan = plan_json(shots, out)
    by_name = {s["name"]: s for s in plan["shots"]}
    assert by_name["x"]["action"] == "render" and by_name["x"]["reason"] == "new shot"
    assert by_name["x"]["seed"] == 105 and by_name["x"]["seed_source"] == "next free"  # 102 is b's
    for name in SHOTS:
        assert by_name[name]["action"] == "keep" and by_name[name]["reason"] == "done"
        assert by_name[name]["seed"] == before[name][0] and by_name[name]["seed_source"] == "ledger"
    table = run_cli("plan", shots, "--out", out).stdout
    assert "render will render 1 shot: x (new shot)" in table and table.count("done") >= 4

    ran = executed(sim)
    result = render(sim, shots, out)
    assert result.exit_code == 0, result.output
    assert executed(sim) == ran + 1
    assert [e["shot"] for e in events(result, "submitted")] == ["x"]
    ledger = load_ledger(out)
    assert [s.name for s in ledger.shots] == ["a", "x", "b", "c", "d"]
    for name in SHOTS:  # the same seed and the same clip, untouched
        record = ledger.shot(name)
        assert (record.seed, record.clip, record.clip_sha256) == before[name]
        assert sha256_file(out / record.clip) == before[name][2]
    assert ledger.shot("x").clip == "clips/02_x.mp4" and (out / "film.mp4").is_file()


def test_an_edited_clip_is_kept_used_in_the_film_and_named_on_every_render(sim, tmp_path):
    shots, out = rendered_film(sim, tmp_path)
    clip = out / "clips" / "02_b.mp4"
    rendered = sha256_file(clip)
    shutil.copyfile(out / "clips" / "03_c.mp4", clip)  # the user's grade: other bytes, a valid clip
    graded = sha256_file(clip)

    plan = run_cli("plan", shots, "--out", out)
    assert "clip b changed since it was rendered: using your version" in plan.output
    assert {s["name"]: s for s in plan_json(shots, out)["shots"]}["b"]["action"] == "edited"

    ran = executed(sim)
    for _ in range(2):  # every render says so, and nothing is rendered
        result = render(sim, shots, out)
        assert result.exit_code == 0, result.output
        assert executed(sim) == ran and not events(result, "submitted")
        assert any("clip b changed since it was rendered: using your version" in e.get("message", "")
                   for e in events(result, "warning"))
    assert sha256_file(clip) == graded  # never overwritten
    ledger = load_ledger(out)
    record = ledger.shot("b")
    assert record.clip_sha256 == rendered and record.edited_sha256 == graded
    assert ledger.film_clip(record) == clip
    assert graded in ledger.film["stitched"]  # the film was made from the user's version
    assert run_cli("stitch", "--from", out, "-o", tmp_path / "again.mp4").exit_code == 0


def test_force_renders_a_new_take_and_keeps_the_edited_clip_as_a_take(sim, tmp_path):
    shots, out = rendered_film(sim, tmp_path)
    clip = out / "clips" / "02_b.mp4"
    shutil.copyfile(out / "clips" / "03_c.mp4", clip)
    graded = sha256_file(clip)
    ran = executed(sim)
    result = render(sim, shots, out, "--force", "--only", "b")
    assert result.exit_code == 0, result.output
    assert executed(sim) == ran + 1
    assert sha256_file(clip) == graded
    ledger = load_ledger(out)
    record = ledger.shot("b")
    assert record.take == 2 and record.clip == "clips/02_b.take2.mp4" and record.edited_sha256 is None
    assert [(t["take"], t["clip"], t["edited"]) for t in record.takes] == [(1, "clips/02_b.mp4", True)]
    assert ledger.film_clip(record) == out / "clips" / "02_b.take2.mp4"


def test_a_changed_prompt_makes_take_2_keeps_take_1_and_take_1_can_be_chosen(sim, tmp_path):
    shots, out = rendered_film(sim, tmp_path)
    take1 = sha256_file(out / "clips" / "02_b.mp4")
    shots.write_text(film_text(extra={"b": ", style: at night"}), encoding="utf-8")
    assert {s["name"]: s for s in plan_json(shots, out)["shots"]}["b"]["reason"] == "prompt changed"
    ran = executed(sim)
    assert render(sim, shots, out).exit_code == 0
    assert executed(sim) == ran + 1
    assert sha256_file(out / "clips" / "02_b.mp4") == take1  # take 1 is kept
    ledger = load_ledger(out)
    assert ledger.shot("b").take == 2 and ledger.film_clip(ledger.shot("b")).name == "02_b.take2.mp4"

    listed = run_cli("takes", shots, "b", "--out", out, "--json")
    assert listed.exit_code == 0, listed.output
    takes = json.loads(listed.stdout)["shots"][0]["takes"]
    assert [(t["take"], t["seed"], t["used"]) for t in takes] == [(1, 102, False), (2, 102, True)]
    assert "at night" in takes[1]["prompt"] and "at night" not in takes[0]["prompt"]
    assert all(t["rendered_at"] for t in takes)
    text = run_cli("takes", shots, "b", "--out", out).stdout
    assert "02_b.take2.mp4" in text and "02_b.mp4" in text

    # `take: 1` in the shots file: the film uses take 1 and nothing renders
    shots.write_text(film_text(extra={"b": ", style: at night, take: 1"}), encoding="utf-8")
    assert {s["name"]: s for s in plan_json(shots, out)["shots"]}["b"]["action"] == "pinned"
    result = render(sim, shots, out)
    assert result.exit_code == 0 and executed(sim) == ran + 1
    ledger = load_ledger(out)
    assert ledger.shot("b").use_take == 1 and ledger.film_clip(ledger.shot("b")) == out / "clips" / "02_b.mp4"
    assert take1 in ledger.film["stitched"]
    # a take that is not there is refused before any GPU work, naming the takes there are
    refused = render(sim, shots, out, "--take", "b=3")
    assert refused.exit_code == 2 and "takes 1, 2" in refused.output

    # `--take b=1` instead: kept for the next renders until `--take b=newest`
    shots.write_text(film_text(extra={"b": ", style: at night"}), encoding="utf-8")
    for args in (["--take", "b=1"], []):
        assert render(sim, shots, out, *args).exit_code == 0
        assert load_ledger(out).film_clip(load_ledger(out).shot("b")).name == "02_b.mp4"
    assert render(sim, shots, out, "--take", "b=newest").exit_code == 0
    assert load_ledger(out).film_clip(load_ledger(out).shot("b")).name == "02_b.take2.mp4"
    assert executed(sim) == ran + 1


def test_prune_deletes_only_the_takes_it_lists_and_only_when_asked(sim, tmp_path):
    shots, out = rendered_film(sim, tmp_path)
    shots.write_text(film_text(extra={"b": ", style: at night", "c": ", style: at dawn"}), encoding="utf-8")
    assert render(sim, shots, out).exit_code == 0
    shots.write_text(film_text(extra={"b": ", style: at night", "c": ", style: at dawn, take: 1"}),
                     encoding="utf-8")
    assert render(sim, shots, out).exit_code == 0
    files = sorted(p.name for p in (out / "clips").glob("*.mp4"))
    asked = run_cli("takes", shots, "--out", out, "--prune")  # not a terminal, no --yes: list, delete nothing
    assert asked.exit_code == 2 and "02_b.mp4" in asked.output and "--yes" in asked.output
    assert sorted(p.name for p in (out / "clips").glob("*.mp4")) == files
    pruned = run_cli("takes", shots, "--out", out, "--prune", "--yes", "--json")
    assert pruned.exit_code == 0, pruned.output
    assert json.loads(pruned.stdout)["deleted"] == ["clips/02_b.mp4"]  # c's take 1 is the one the film uses
    assert sorted(set(files) - {p.name for p in (out / "clips").glob("*.mp4")}) == ["02_b.mp4"]
    ledger = load_ledger(out)
    assert ledger.shot("b").takes == [] and [t["take"] for t in ledger.shot("c").takes] == [1]
    assert render(sim, shots, out).exit_code == 0  # the film still renders nothing and stitches


def test_reseed_picks_a_fresh_seed_on_purpose_and_keeps_it(sim, tmp_path):
    shots, out = rendered_film(sim, tmp_path)
    ran = executed(sim)
    result = render(sim, shots, out, "--reseed", "c")
    assert result.exit_code == 0, result.output
    assert executed(sim) == ran + 1
    record = load_ledger(out).shot("c")
    assert record.seed == 105 and record.seed_source == "reseed" and record.take == 2
    assert record.takes[0]["seed"] == 103
    assert render(sim, shots, out).exit_code == 0 and executed(sim) == ran + 1  # it stays with c
    assert load_ledger(out).shot("c").seed == 105


def test_a_link_after_an_edited_clip_is_not_rendered_again(sim, tmp_path):
    shots, out = rendered_film(sim, tmp_path, names=["a", "b", "c"], chain=("b", "c"))
    shutil.copyfile(out / "clips" / "03_c.mp4", out / "clips" / "01_a.mp4")  # a colour grade of the chain's head
    ran = executed(sim)
    result = render(sim, shots, out)
    assert result.exit_code == 0, result.output
    assert executed(sim) == ran


def test_a_ledger_from_before_takes_keeps_its_done_shots(sim, tmp_path):
    film = tmp_path / "old"
    shutil.copytree(ROOT / "tests" / "data" / "ledger_before_takes", film)
    shots = film / "film.yaml"
    plan = plan_json(shots, film)
    assert [(s["name"], s["action"], s["seed"]) for s in plan["shots"]] == \
        [("a", "keep", 101), ("b", "keep", 102), ("c", "keep", 103)]
    shots.write_text(shots.read_text(encoding="utf-8").replace(
        "shots:\n", "shots:\n  - {name: opening, prompt: 'a new first shot'}\n"), encoding="utf-8")
    ran = executed(sim)
    result = render(sim, shots, film)
    assert result.exit_code == 0, result.output
    assert executed(sim) == ran + 1 and [e["shot"] for e in events(result, "submitted")] == ["opening"]
    ledger = load_ledger(film)
    assert [(s.name, s.seed) for s in ledger.shots] == [("opening", 104), ("a", 101), ("b", 102), ("c", 103)]
    assert ledger.film["seed_base"] == 100


def test_reordering_and_removing_shots_renders_nothing_and_a_shot_put_back_keeps_its_clip(sim, tmp_path):
    shots, out = rendered_film(sim, tmp_path)
    b = load_ledger(out).shot("b")
    ran = executed(sim)
    for names in (["d", "c", "b", "a"], ["a", "c", "d"]):  # reordered, then b taken out
        shots.write_text(film_text(names), encoding="utf-8")
        result = render(sim, shots, out)
        assert result.exit_code == 0, result.output
        assert executed(sim) == ran and not events(result, "submitted")
    assert [s.name for s in load_ledger(out).shots] == ["a", "c", "d"]
    listed = json.loads(run_cli("takes", out, "b", "--json").stdout)["shots"][0]
    assert listed["removed"] and [t["clip"] for t in listed["takes"]] == ["clips/02_b.mp4"]

    shots.write_text(film_text(["a", "c", "b", "d"]), encoding="utf-8")  # b put back elsewhere
    assert render(sim, shots, out).exit_code == 0 and executed(sim) == ran
    back = load_ledger(out).shot("b")
    assert (back.seed, back.clip, back.clip_sha256, back.index) == (b.seed, b.clip, b.clip_sha256, 3)

    shots.write_text(film_text(["a", "c", "d"]), encoding="utf-8")
    assert render(sim, shots, out).exit_code == 0
    pruned = json.loads(run_cli("takes", out, "--prune", "--yes", "--json").stdout)
    assert pruned["deleted"] == ["clips/02_b.mp4"] and not (out / "clips" / "02_b.mp4").exists()
    assert "removed_shots" not in load_ledger(out).film


def test_a_new_seed_base_rerolls_the_shots_without_a_seed_of_their_own_as_new_takes(sim, tmp_path):
    shots, out = rendered_film(sim, tmp_path, extra={"c": ", seed: 7"})
    shots.write_text(film_text(extra={"c": ", seed: 7"}).replace("seed_base: 100", "seed_base: 500"),
                     encoding="utf-8")
    plan = {s["name"]: s for s in plan_json(shots, out)["shots"]}
    assert [(plan[n]["seed"], plan[n]["reason"]) for n in SHOTS] == \
        [(501, "seed changed"), (502, "seed changed"), (7, "done"), (504, "seed changed")]
    ran = executed(sim)
    assert render(sim, shots, out).exit_code == 0 and executed(sim) == ran + 3
    assert [t["seed"] for t in load_ledger(out).shot("a").takes] == [101]
    refused = render(sim, shots, out, "--reseed", "c")
    assert refused.exit_code == 2 and "seed:" in refused.output


def test_an_earlier_take_graded_after_it_was_kept_is_used_as_graded_when_pinned(sim, tmp_path):
    shots, out = rendered_film(sim, tmp_path)
    shots.write_text(film_text(extra={"b": ", style: at night"}), encoding="utf-8")
    assert render(sim, shots, out).exit_code == 0
    shutil.copyfile(out / "clips" / "01_a.mp4", out / "clips" / "02_b.mp4")  # take 1, graded afterwards
    graded = sha256_file(out / "clips" / "02_b.mp4")
    result = render(sim, shots, out, "--take", "b=1")
    assert result.exit_code == 0, result.output
    assert any("clip b changed since it was rendered" in e.get("message", "") for e in events(result, "warning"))
    ledger = load_ledger(out)
    assert ledger.film_clip_sha256(ledger.shot("b")) == graded and graded in ledger.film["stitched"]
    assert ledger.shot("b").takes[0]["edited"] is True


def test_a_deleted_clip_renders_again_in_its_place_and_is_no_take(sim, tmp_path):
    shots, out = rendered_film(sim, tmp_path)
    (out / "clips" / "02_b.mp4").unlink()
    assert {s["name"]: s for s in plan_json(shots, out)["shots"]}["b"]["reason"] == "clip missing"
    ran = executed(sim)
    assert render(sim, shots, out).exit_code == 0 and executed(sim) == ran + 1
    record = load_ledger(out).shot("b")
    assert (record.take, record.takes, record.clip) == (1, [], "clips/02_b.mp4")
    assert (out / "clips" / "02_b.mp4").is_file()


def test_prune_never_deletes_an_edited_take_or_a_path_outside_the_film_folder(sim, tmp_path):
    """--prune deletes what wanclip rendered, in the film folder: a take the user graded is theirs
    (kept, listed as kept), and a ledger edited to point a take at ../secret.txt deletes nothing there."""
    shots, out = rendered_film(sim, tmp_path)
    shots.write_text(film_text(extra={"b": ", style: at night", "c": ", style: at dawn"}), encoding="utf-8")
    assert render(sim, shots, out).exit_code == 0  # b and c: take 2 each, take 1 kept
    ledger = load_ledger(out)
    graded = out / ledger.shot("b").takes[0]["clip"]
    graded.write_bytes(graded.read_bytes() + b"\0")  # the user's grade of b's take 1, no render since
    secret = tmp_path / "secret.txt"
    secret.write_text("the user's own file")
    ledger.shot("c").takes[0]["clip"] = "../secret.txt"  # a tampered (shared) ledger
    ledger.save()
    pruned = run_cli("takes", shots, "--out", out, "--prune", "--yes", "--json")
    assert pruned.exit_code == 0, pruned.output
    assert json.loads(pruned.stdout)["deleted"] == []
    assert graded.is_file() and secret.read_text() == "the user's own file"
