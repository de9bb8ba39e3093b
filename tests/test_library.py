"""`import wanclip` is the library: a lazy facade whose names all resolve, and the README's example
("Use it from Python") runs as written against the simulator."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

import wanclip
from authproxy import AuthProxy
from helpers import ROOT

README_URL = "http://127.0.0.1:8188"


def test_every_name_in_all_resolves():
    for name in wanclip.__all__:
        assert getattr(wanclip, name) is not None, name
    assert {"plan_film", "Plan", "make_film", "FilmResult", "RenderOptions", "stitch_film", "StitchResult",
            "RenderEvent", "ShotDone", "ShotFailed", "WanclipError", "PromptRejected", "LocalIOError"} <= \
        set(wanclip.__all__)
    with pytest.raises(AttributeError):
        wanclip.no_such_name  # noqa: B018


def test_every_event_class_is_exported():
    from wanclip.render.events import RenderEvent

    assert {cls.__name__ for cls in RenderEvent.KINDS.values()} <= set(wanclip.__all__)


def test_import_wanclip_loads_none_of_the_library():
    code = "import sys, wanclip; print(sorted(m for m in sys.modules if m.startswith('wanclip')))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "['wanclip']"


def test_using_make_film_loads_no_stitcher_until_a_film_is_stitched():
    code = ("import sys, wanclip; wanclip.make_film; wanclip.plan_film; wanclip.ShotDone; "
            "print(sorted(m for m in ('wanclip.stitch.join', 'wanclip.stitch.graph', 'wanclip.stitch.pieces', 'aiohttp', 'rich') "
            "if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def readme_example() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Use it from Python", 1)[1].split("\n## ", 1)[0]
    [code] = re.findall(r"```python\n(.*?)```", section, re.S)
    return code


def test_the_readme_example_renders_the_film_and_reacts_to_events(sim, tmp_path, monkeypatch, capsys):
    code = readme_example()
    assert README_URL in code and "wanclip.make_film(" in code
    monkeypatch.chdir(tmp_path)
    with AuthProxy(sim.url, "X-Api-Key", "only if a proxy asks for one") as proxy:  # its headers= arrive
        with pytest.raises(SystemExit) as ended:
            exec(compile(code.replace(README_URL, proxy.url), "README.md", "exec"), {"__name__": "__main__"})
    assert ended.value.code == 0
    out = capsys.readouterr().out.splitlines()
    assert f"fox-in-snow: started on {proxy.url}" in out
    assert any(re.fullmatch(r"fox-in-snow: done in \d+\.\d s -> clips/01_fox-in-snow\.mp4", line) for line in out)
    assert "film: films/fox/film.mp4" in out, out
    assert "fox-in-snow done clips/01_fox-in-snow.mp4" in out
    assert (tmp_path / "films" / "fox" / "film.mp4").is_file()
    assert proxy.seen and all(ok for _, ok in proxy.seen)


def test_make_film_result_is_typed(sim, tmp_path):
    from wanclip.ledger import Ledger

    plan = wanclip.plan_film("single_5s", out=tmp_path / "fox")
    seen: list = []
    result = wanclip.make_film(plan, servers=[sim.url], on_event=seen.append, stitch=False)
    assert result.exit_code == 0 and result.film is None and isinstance(result.ledger, Ledger)
    assert all(isinstance(e, wanclip.RenderEvent) for e in seen)
    assert [type(e).__name__ for e in seen if isinstance(e, (wanclip.FilmPlanned, wanclip.ShotDone))] == \
        ["FilmPlanned", "ShotDone"]
    again = wanclip.make_film(plan, servers=[sim.url])  # nothing rendered twice; now stitched
    assert again.film == tmp_path / "fox" / "film.mp4" and again.film.is_file()
    assert again.stitched is not None and again.stitched.seconds > 0


def test_stitch_film_joins_a_rendered_folder_again(sim, tmp_path):
    plan = wanclip.plan_film("single_5s", out=tmp_path / "fox")
    assert wanclip.make_film(plan, servers=sim.url, stitch=False).exit_code == 0  # one URL is fine too
    film = wanclip.stitch_film(tmp_path / "fox", output=tmp_path / "again.mp4", contact_sheet=False)
    assert isinstance(film, wanclip.StitchResult) and film.output == tmp_path / "again.mp4"
    assert film.output.is_file() and film.frames == 81 and film.clips == 1


def test_the_readme_names_every_event_class():
    from wanclip.render.events import RenderEvent

    section = (ROOT / "README.md").read_text(encoding="utf-8").split("## Use it from Python", 1)[1].split("\n## ")[0]
    assert [cls.__name__ for cls in RenderEvent.KINDS.values() if f"`{cls.__name__}`" not in section] == []
