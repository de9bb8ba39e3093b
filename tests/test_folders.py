"""Film folders (#19.1, #19.2): each film and each clip gets a folder of its own, named with its
title's letters in any script, and wanclip never writes into a folder that is another film's or
holds the user's own files. A user's session on the simulator, then the files."""

from __future__ import annotations

import hashlib
import json
import random
import re
import string
import unicodedata
from pathlib import Path
from urllib.parse import quote

import pytest
from PIL import Image

import wanclip
from helpers import load, run_cli, write_shots
from test_media import make_clip
from wanclip.errors import FolderRefused
from wanclip.ledger import load_ledger
from wanclip.planning.names import clip_folder_name, name_problem, slugify
from wanclip.planning.plan import example_names, example_path
from wanclip.planning.shots import load_film


def legacy_slug(text: str) -> str:
    """The slug every version before this one gave a title (ASCII letters and digits only)."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:64] or "film"


def film(folder: Path, title: str, shots: list[tuple[str, str]] | None = None, extra: str = "",
         name: str = "film.yaml") -> Path:
    lines = [f"title: {json.dumps(title, ensure_ascii=False)}", "width: 64", "height: 64", "frames: 5",
             "transition: {type: fade, duration: 0.1}", extra, "shots:"]
    for shot, prompt in shots or [("one", f"{title}, the first shot"), ("two", f"{title}, the second shot")]:
        lines.append(f"  - {{name: {json.dumps(shot, ensure_ascii=False)}, prompt: {json.dumps(prompt, ensure_ascii=False)}}}")
    return write_shots(folder, "\n".join(lines) + "\n", name)


def render(sim, *args):
    return run_cli("render", *args, "--server", sim.url, "--json")


def files_of(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` and the sha256 of its bytes."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def users_folder(folder: Path) -> dict[str, str]:
    """A folder of the user's own: a web page, a film, a contact sheet and posters."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "index.html").write_text("<h1>my holiday</h1>\n", encoding="utf-8")
    (folder / "film.mp4").write_bytes(b"my own film, not wanclip's")
    (folder / "contact_sheet.png").write_bytes(b"my own contact sheet")
    (folder / "posters").mkdir()
    (folder / "posters" / "01.png").write_bytes(b"my poster")
    return files_of(folder)


# ---- names -----------------------------------------------------------------------------------

def test_ascii_titles_keep_the_slugs_they_always_had():
    """Existing users' folders (out/<slug>) and ledgers must be found again."""
    assert slugify("Tomato & Egg!") == "tomato-egg"
    titles = [load_film(example_path(n)).title for n in example_names()]
    shuffle = random.Random(19)
    titles += ["".join(shuffle.choice(string.printable) for _ in range(shuffle.randint(1, 90)))
               for _ in range(2000)]
    for title in titles:
        if legacy_slug(title) != "film" and legacy_slug(title) not in ("con", "prn", "aux", "nul"):
            assert slugify(title) == legacy_slug(title), title


@pytest.mark.parametrize("title,slug", [
    ("番茄炒蛋", "番茄炒蛋"),
    ("小猫的一天", "小猫的一天"),
    ("猫の一日 (2026)", "猫の一日-2026"),
    ("한국어 영화", "한국어-영화"),
    ("फ़िल्म की कहानी", "फ़िल्म-की-कहानी"),  # Devanagari vowel signs and nukta are kept with their letters
    ("فيلم عربي", "فيلم-عربي"),
    ("Straße Café", "strasse-café"),
    ("ＦＵＬＬ　ｗｉｄｔｈ", "full-width"),
    ("../../etc/passwd", "etc-passwd"),
    (".hidden\x00title\n", "hidden-title"),
    ("番茄/炒蛋\\🍅", "番茄-炒蛋"),
    ("CON", "con-film"),
    ("com1", "com1-film"),
])
def test_titles_keep_their_letters_in_any_script(title, slug):
    assert slugify(title) == slug


def test_a_title_of_emoji_only_gets_a_stable_name_of_its_own():
    tomato, kitten = slugify("🍅🥚"), slugify("🐱☀️")
    assert re.fullmatch(r"film-[0-9a-f]{8}", tomato) and re.fullmatch(r"film-[0-9a-f]{8}", kitten)
    assert tomato != kitten and tomato == slugify("🍅🥚") and slugify("") != "film"


def test_slugs_are_bounded_in_bytes_and_never_cut_a_letter_from_its_marks():
    assert slugify("a" * 100) == "a" * 64
    long_chinese = slugify("番" * 100)
    assert len(long_chinese.encode("utf-8")) <= 120 and set(long_chinese) == {"番"}
    marked = slugify("कि" * 100)  # KA + vowel sign I, 6 bytes a pair
    assert len(marked.encode("utf-8")) <= 120 and marked == "कि" * (len(marked) // 2)
    assert len(slugify("𝔘" * 100).encode("utf-8")) <= 120  # NFKC makes it "u": 64 of them


def test_any_text_gives_a_safe_slug_that_is_also_a_valid_shot_name():
    """Letters, marks, emoji, joiners, full-width forms and controls mixed at random (seeded)."""
    pools = [range(0x20, 0x250), range(0x300, 0x370), range(0x900, 0x980), range(0x1100, 0x1200),
             range(0x3040, 0x3100), range(0x4e00, 0x4e80), range(0xac00, 0xac80), range(0xfb00, 0xfb50),
             range(0xff00, 0xff60), range(0x1f300, 0x1f400), range(0x1d400, 0x1d500), range(0, 0x20),
             [0x200d, 0x200c, 0xfe0f, 0x20e3, 0x1e9e, 0x130, 0x3a3, 0x345, 0x2f, 0x5c, 0x2e]]
    pick = random.Random(19)
    for _ in range(5000):
        text = "".join(chr(pick.choice(pick.choice(pools))) for _ in range(pick.randint(1, 80)))
        slug = slugify(text)
        assert name_problem(slug) is None, (text, slug)
        assert len(slug.encode("utf-8")) <= 120 and not slug.startswith((".", "-")) and slug == slugify(text)
        assert "/" not in slug and "\\" not in slug and slug not in ("con", "nul", "com1")


def test_a_clip_folder_is_one_per_prompt_seed_size_and_length():
    base = clip_folder_name("一只猫", 7, 832, 480, 81)
    assert base.startswith("clip-一只猫-") and base == clip_folder_name("一只猫", 7, 832, 480, 81)
    others = {clip_folder_name("一只狗", 7, 832, 480, 81), clip_folder_name("一只猫", 8, 832, 480, 81),
              clip_folder_name("一只猫", 7, 480, 832, 81), clip_folder_name("一只猫", 7, 832, 480, 161)}
    assert base not in others and len(others) == 4
    prefix = "a" * 60
    assert clip_folder_name(prefix + " fox", 1, 64, 64, 5) != clip_folder_name(prefix + " dog", 1, 64, 64, 5)
    assert re.fullmatch(r"clip-[0-9a-f]{8}", clip_folder_name("🐱", 1, 64, 64, 5))


@pytest.mark.parametrize("name", ["开场", "小猫-醒来", "한국어", "कहानी", "shot_1", "a-b", "étape-2"])
def test_shot_names_may_be_letters_of_any_script(name):
    assert name_problem(name) is None


@pytest.mark.parametrize("name", ["Big", "a/b", "..", "", "-a", "a b", "🍅", "ｆｕｌｌ", "a" * 65, "番" * 41])
def test_shot_names_that_cannot_be_file_names_are_refused(name):
    assert name_problem(name)


def test_a_shot_name_typed_decomposed_is_the_same_name(tmp_path):
    decomposed = unicodedata.normalize("NFD", "étape")
    loaded = load_film(film(tmp_path, "NFD", [(decomposed, "a shot")]))
    assert loaded.shots[0].name == "étape"


def test_an_upper_case_or_emoji_shot_name_is_refused_with_a_name_to_write(tmp_path):
    with pytest.raises(wanclip.ShotsFileError) as err:
        load_film(film(tmp_path, "x", [("开场 Big 🍅", "a shot")]))
    assert "is not a slug" in err.value.message and "write '开场-big'" in err.value.message


# ---- #19.1: non-Latin titles and prompts -------------------------------------------------------

def test_two_chinese_films_get_two_folders_and_both_stay_intact(sim, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    first = render(sim, film(tmp_path, "番茄炒蛋", name="tomato.yaml"))
    assert first.exit_code == 0, first.output
    tomato = tmp_path / "out" / "番茄炒蛋"
    made = files_of(tomato)
    assert "film.mp4" in made and load_ledger(tomato).film["title"] == "番茄炒蛋"
    second = render(sim, film(tmp_path, "小猫的一天", name="kitten.yaml"))
    assert second.exit_code == 0, second.output
    kitten = tmp_path / "out" / "小猫的一天"
    assert load_ledger(kitten).film["title"] == "小猫的一天" and (kitten / "film.mp4").is_file()
    after = files_of(tomato)
    assert {k: v for k, v in after.items() if k.startswith(("clips/", "film.mp4", "ledger.json"))} == \
        {k: v for k, v in made.items() if k.startswith(("clips/", "film.mp4", "ledger.json"))}
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(["番茄炒蛋", "小猫的一天"])


def test_a_chinese_shot_name_renders_stitches_and_names_its_clip(sim, tmp_path):
    shots = film(tmp_path, "小猫的一天", [("醒来", "一只小猫醒来，伸懒腰"), ("吃饭", "小猫吃饭，特写")])
    out = tmp_path / "小猫"
    result = render(sim, shots, "--out", out)
    assert result.exit_code == 0, result.output
    assert [s.clip for s in load_ledger(out).shots] == ["clips/01_醒来.mp4", "clips/02_吃饭.mp4"]
    assert (out / "clips" / "01_醒来.mp4").is_file() and (out / "film.mp4").is_file()
    assert quote("clips/01_醒来.mp4") in (out / "index.html").read_text(encoding="utf-8")  # the page links it
    again = run_cli("stitch", "--from", out, "--no-pieces", "--json")
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["clips"] == 2


def test_two_chinese_clips_get_two_folders(sim, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for prompt in ("一只猫", "一只狗"):
        result = run_cli("clip", prompt, "--frames", "5", "--width", "64", "--height", "64", "-s", sim.url, "--json")
        assert result.exit_code == 0, result.output
    folders = sorted((tmp_path / "out").iterdir())
    assert {f.name.rsplit("-", 1)[0]: [c.name for c in (f / "clips").glob("*.mp4")] for f in folders} == \
        {"clip-一只猫": ["01_一只猫.mp4"], "clip-一只狗": ["01_一只狗.mp4"]}


def test_another_seed_keeps_the_first_clip_and_a_rerun_resumes(sim, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = ("clip", "a red fox in the snow", "--frames", "5", "--width", "64", "--height", "64", "-s", sim.url)
    assert run_cli(*args).exit_code == 0
    (first,) = (tmp_path / "out").iterdir()
    kept = files_of(first)
    assert run_cli(*args, "--seed", "7").exit_code == 0
    assert len(list((tmp_path / "out").iterdir())) == 2 and files_of(first) == kept
    posted = len(sim.log())
    assert run_cli(*args).exit_code == 0  # the same prompt and options: the same folder, nothing rendered
    assert len(sim.log()) == posted and len(list((tmp_path / "out").iterdir())) == 2
    assert files_of(first)["clips/01_a-red-fox-in-the-snow.mp4"] == kept["clips/01_a-red-fox-in-the-snow.mp4"]


def test_another_films_ledger_is_refused_with_both_titles(sim, tmp_path):
    out = tmp_path / "common"
    assert render(sim, film(tmp_path, "番茄炒蛋", name="tomato.yaml"), "--out", out).exit_code == 0
    made = files_of(out)
    posted = len(sim.log())
    refused = render(sim, film(tmp_path, "小猫的一天", name="kitten.yaml"), "--out", out)
    assert refused.exit_code == 2
    said = json.loads(refused.stdout.splitlines()[-1])
    assert "番茄炒蛋" in said["error"] and "小猫的一天" in said["error"] and str(out) in said["error"]
    assert "--out" in said["hint"]
    assert files_of(out) == made and len(sim.log()) == posted
    planned = run_cli("plan", tmp_path / "kitten.yaml", "--out", out)
    assert planned.exit_code == 2 and "番茄炒蛋" in planned.stderr and files_of(out) == made


def test_a_retitled_film_or_a_moved_shots_file_is_the_same_film(sim, tmp_path):
    out = tmp_path / "mine"
    shots = film(tmp_path, "Tomato & Egg")
    assert render(sim, shots, "--out", out).exit_code == 0
    retitled = shots.read_text(encoding="utf-8").replace('title: "Tomato & Egg"', 'title: "番茄炒蛋"')
    shots.write_text(retitled, encoding="utf-8")
    again = render(sim, shots, "--out", out)  # the same shots file: the same film, retitled
    assert again.exit_code == 0, again.output
    assert load_ledger(out).film["title"] == "番茄炒蛋"
    moved = tmp_path / "elsewhere" / "renamed.yaml"
    moved.parent.mkdir()
    shots.rename(moved)
    assert render(sim, moved, "--out", out).exit_code == 0  # the same title: the same film, moved


def test_a_ledger_from_before_shots_path_is_still_recognised(sim, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shots = film(tmp_path, "Old Film")
    assert render(sim, "film.yaml", "--out", "old").exit_code == 0
    ledger = load(tmp_path / "old" / "ledger.json")
    del ledger["film"]["shots_path"]  # as wanclip wrote it before: shots_file as given, relative
    assert ledger["film"]["shots_file"] == "film.yaml"
    (tmp_path / "old" / "ledger.json").write_text(json.dumps(ledger), encoding="utf-8")
    shots.write_text(shots.read_text(encoding="utf-8").replace("Old Film", "Old Film, retitled"), encoding="utf-8")
    assert render(sim, "film.yaml", "--out", "old").exit_code == 0


# ---- #19.2: a folder of the user's own ---------------------------------------------------------

def test_render_out_a_folder_of_the_users_files_is_refused(sim, tmp_path):
    folder = tmp_path / "Documents"
    before = users_folder(folder)
    result = render(sim, film(tmp_path, "Holiday"), "--out", folder)
    assert result.exit_code == 2
    said = json.loads(result.stdout.splitlines()[-1])
    assert "not a wanclip film folder" in said["error"]
    assert all(name in said["error"] for name in ("index.html", "film.mp4", "contact_sheet.png", "posters/"))
    assert str(folder / "holiday") in said["hint"]
    assert files_of(folder) == before and sorted(p.name for p in folder.iterdir()) == \
        ["contact_sheet.png", "film.mp4", "index.html", "posters"]  # no lock, no graphs, nothing
    assert sim.log() == []


def test_out_in_a_shots_file_pointing_at_the_users_files_is_refused(sim, tmp_path):
    folder = tmp_path / "Documents"
    before = users_folder(folder)
    shots = film(tmp_path, "Holiday", extra=f"out: {folder}")
    result = run_cli("render", shots, "--server", sim.url)
    assert result.exit_code == 2 and "line 6: out:" in result.stderr and "not a wanclip film folder" in result.stderr
    assert run_cli("plan", shots).exit_code == 2
    demo = run_cli("demo", "--shots", shots, "--quiet")
    assert demo.exit_code == 2
    assert files_of(folder) == before and sim.log() == []


def test_plan_refuses_the_users_folder_before_writing_its_graphs(tmp_path):
    folder = tmp_path / "Documents"
    before = users_folder(folder)
    result = run_cli("plan", film(tmp_path, "Holiday"), "--out", folder)
    assert result.exit_code == 2 and "not a wanclip film folder" in result.stderr
    assert files_of(folder) == before and not (folder / "graphs").exists()


def test_the_library_refuses_the_users_folder_too(tmp_path):
    folder = tmp_path / "Documents"
    users_folder(folder)
    with pytest.raises(FolderRefused) as err:
        wanclip.plan_film(film(tmp_path, "Holiday"), out=folder)
    assert err.value.folder == str(folder) and err.value.exit_code == 2


def test_an_empty_folder_os_litter_and_wanclips_own_leftovers_are_fine(sim, tmp_path):
    shots = film(tmp_path, "Holiday")
    empty = tmp_path / "empty"
    empty.mkdir()
    litter = tmp_path / "litter"
    litter.mkdir()
    for name in (".DS_Store", "Thumbs.db", "desktop.ini"):
        (litter / name).write_bytes(b"os")
    (litter / "clips").mkdir()  # empty (a disk mounted there for the clips): nothing in it to replace
    planned = tmp_path / "planned"  # `wanclip plan` first (graphs/), then a first render cut short (the lock)
    assert run_cli("plan", shots, "--out", planned).exit_code == 0
    (planned / ".render.lock").write_bytes(b"")
    for out in (empty, litter, planned, tmp_path / "new" / "folder"):
        result = render(sim, shots, "--out", out)
        assert result.exit_code == 0, result.output
        assert (out / "film.mp4").is_file()
    assert (litter / ".DS_Store").read_bytes() == b"os"


def test_a_film_folder_whose_ledger_is_gone_is_refused_not_overwritten(sim, tmp_path):
    out = tmp_path / "film"
    assert render(sim, film(tmp_path, "Holiday"), "--out", out).exit_code == 0
    (out / "ledger.json").rename(tmp_path / "ledger.json")
    made = files_of(out)
    result = render(sim, film(tmp_path, "Another", name="another.yaml"), "--out", out)
    assert result.exit_code == 2 and "ledger.json is gone" in result.stdout
    assert files_of(out) == made


def test_a_file_that_is_no_ledger_is_refused_and_left_alone(sim, tmp_path):
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "ledger.json").write_text("my accounts, 2026\n", encoding="utf-8")
    result = render(sim, film(tmp_path, "Holiday"), "--out", folder)
    assert result.exit_code == 2 and "cannot be read as a wanclip ledger" in result.stdout
    assert (folder / "ledger.json").read_text(encoding="utf-8") == "my accounts, 2026\n"


# ---- #19.2: the stitcher's contact sheet -------------------------------------------------------

def test_stitch_o_leaves_an_unrelated_contact_sheet_alone(tmp_path):
    clips = [make_clip(tmp_path / "clips" / f"{i}.mp4", frames=9) for i in (1, 2)]
    mine = tmp_path / "contact_sheet.png"
    mine.write_bytes(b"my own contact sheet")
    result = run_cli("stitch", *clips, "-o", tmp_path / "x.mp4")
    assert result.exit_code == 0, result.output
    assert mine.read_bytes() == b"my own contact sheet"
    sheet = tmp_path / "x.contact_sheet.png"
    with Image.open(sheet) as image:
        assert image.size[1] > 0
    assert run_cli("stitch", *clips, "-o", tmp_path / "x.mp4").exit_code == 0  # its own sheet: replaced
    theirs = tmp_path / "y.contact_sheet.png"
    theirs.write_bytes(b"not wanclip's")
    kept = run_cli("stitch", *clips, "-o", tmp_path / "y.mp4")
    assert kept.exit_code == 0 and theirs.read_bytes() == b"not wanclip's"
    assert "no contact sheet" in kept.stdout and (tmp_path / "y.mp4").is_file()


def test_stitch_from_a_film_folder_to_a_file_elsewhere_leaves_that_folder_alone(sim, tmp_path):
    out = tmp_path / "film"
    assert render(sim, film(tmp_path, "Holiday"), "--out", out).exit_code == 0
    elsewhere = tmp_path / "share"
    elsewhere.mkdir()
    (elsewhere / "contact_sheet.png").write_bytes(b"my own contact sheet")
    result = run_cli("stitch", "--from", out, "-o", elsewhere / "holiday.mp4")
    assert result.exit_code == 0, result.output
    assert (elsewhere / "contact_sheet.png").read_bytes() == b"my own contact sheet"
    assert (elsewhere / "holiday.contact_sheet.png").is_file()


def test_doctor_checks_a_films_graphs_whatever_its_default_folder_holds(sim, tmp_path, monkeypatch):
    """doctor writes nothing in the film folder: a folder of the user's there is no reason to refuse."""
    monkeypatch.chdir(tmp_path)
    before = users_folder(tmp_path / "out" / "holiday")
    result = run_cli("doctor", film(tmp_path, "Holiday"), "-s", sim.url)
    assert result.exit_code != 2, result.output
    assert "not a wanclip film folder" not in result.output and files_of(tmp_path / "out" / "holiday") == before


def test_two_titles_of_one_slug_do_not_share_the_default_folder(sim, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert render(sim, film(tmp_path, "Tomato & Egg", name="a.yaml")).exit_code == 0
    made = files_of(tmp_path / "out" / "tomato-egg")
    assert run_cli("plan", "a.yaml").exit_code == 0  # the same film: its own folder is fine
    refused = render(sim, film(tmp_path, "Tomato Egg", name="b.yaml"))
    assert refused.exit_code == 2
    said = json.loads(refused.stdout.splitlines()[-1])
    assert "'Tomato & Egg'" in said["error"] and "'Tomato Egg'" in said["error"]
    assert re.search(r"--out \S*out/tomato-egg-[0-9a-f]{8}", said["hint"])
    assert {k: v for k, v in files_of(tmp_path / "out" / "tomato-egg").items() if not k.startswith("graphs/")} == \
        {k: v for k, v in made.items() if not k.startswith("graphs/")}


def test_stitch_from_a_folder_without_a_ledger_writes_nothing_there(tmp_path):
    folder = tmp_path / "Documents"
    before = users_folder(folder)
    result = run_cli("stitch", "--from", folder)
    assert result.exit_code == 2 and "ledger.json" in result.stderr
    assert files_of(folder) == before and not (folder / ".render.lock").exists()
