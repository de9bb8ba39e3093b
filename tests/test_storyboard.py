"""The storyboard page's content, read as text (tests/test_storyboard_browser.py loads it in Chromium)."""

from __future__ import annotations

import html
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace

import requests

from helpers import ROOT, run_cli, wait_until, write_shots
from wanclip.ledger import OWNER_NAME, film_lock
from wanclip.review.board import Prompt, shot_prompt, split_style
from wanclip.review.page import LIVE_MARK, script_json
from wanclip.review.storyboard import PAGE_NAME, render_running, serve_folder, write_page
from wanclip.review.timings import time_split

HOSTILE = "</script><img src=x onerror=alert(1)>"
SHOTS = """title: Review Film
style: warm light
negative: blurry
shots:
  - {name: one, prompt: 'a red tomato'}
  - {name: two, prompt: '</script><img src=x onerror=alert(1)>', style: '', negative: 'no <b>bold</b>'}
  - {name: three, prompt: 'eggs'}
"""


def shot(index: int, name: str, status: str = "done", **extra) -> dict:
    record = {"index": index, "name": name, "graph_sha256": "g", "seed": 100 + index, "frames": 81, "width": 832,
              "height": 480, "fps": 16.0, "status": status, "server": "http://gpu-1:8188",
              "clip": f"clips/{index:02d}_{name}.mp4" if status == "done" else None,
              "node_seconds": {"high-noise sampler": 8.0, "low-noise sampler": 7.5, "decode": 1.5},
              "transition": {"type": "fade", "duration": 0.3} if index > 1 else None}
    return record | extra


def film_folder(tmp_path, shots: list[dict], shots_text: str | None = SHOTS, **film) -> tuple:
    shots_file = write_shots(tmp_path, shots_text) if shots_text else tmp_path / "gone.yaml"
    folder = tmp_path / "out" / "review-film"
    folder.mkdir(parents=True)
    data = {"version": 1, "film": {"title": "Review Film", "slug": "review-film", "shots_file": str(shots_file),
                                   "fps": 16.0} | film, "shots": shots}
    (folder / "ledger.json").write_text(json.dumps(data), encoding="utf-8")
    return folder, shots_file


def page_of(folder) -> str:
    return (write_page(folder)).read_text(encoding="utf-8")


def embedded_data(page: str) -> dict:
    block = re.search(r'<script type="application/json" id="storyboard-data">(.*?)</script>', page, re.S)
    return json.loads(block.group(1))


class Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.links += [value for name, value in attrs if name in ("src", "href", "poster", "action")]


def parsed(page: str) -> Links:
    parser = Links()
    parser.feed(page)
    return parser


def test_hostile_prompt_error_and_title_are_escaped_text(tmp_path):
    error = {"node": "8", "class": "VAEDecode", "type": "RuntimeError", "message": "<script>alert(2)</script>"}
    folder, _ = film_folder(tmp_path, [shot(1, "one"), shot(2, "two"), shot(3, "three", "failed", error=error)],
                            title="<b>Review</b> & Film")
    page = page_of(folder)
    assert html.escape(HOSTILE) in page and HOSTILE not in page
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in page
    assert "<title>&lt;b&gt;Review&lt;/b&gt; &amp; Film · wanclip</title>" in page
    assert "no &lt;b&gt;bold&lt;/b&gt;" in page
    assert parsed(page).tags.count("img") == 0 and parsed(page).tags.count("script") == 2


def test_embedded_json_cannot_close_its_script_element():
    text = script_json({"command": "wanclip render '</script><!--x.yaml' & \u2028\u2029"})
    assert not re.search("[<>&\u2028\u2029]", text)
    assert json.loads(text) == {"command": "wanclip render '</script><!--x.yaml' & \u2028\u2029"}


def test_failed_card_shows_node_class_and_message_and_stands_out(tmp_path):
    error = {"node": "8", "class": "VAEDecode", "type": "RuntimeError", "message": "CUDA error: out of memory"}
    folder, _ = film_folder(tmp_path, [shot(1, "one"), shot(2, "two", "failed", error=error), shot(3, "three")])
    page = page_of(folder)
    card = re.search(r'<article class="card failed" id="shot-two"[^>]*>.*?</article>', page, re.S).group(0)
    assert '<div class="where">8 · VAEDecode</div>' in card
    assert '<div class="message">CUDA error: out of memory</div>' in card
    assert "<video" not in card and '<span class="badge failed">failed</span>' in card
    assert 'href="#shot-two"' in page  # the header links to the shot that needs a look
    assert not embedded_data(page)["live"] and 'http-equiv="refresh"' not in page


def test_pending_queued_running_cards_wait_and_the_page_refreshes_while_the_render_runs(tmp_path):
    shots = [shot(1, "one"), shot(2, "two", "running"), shot(3, "three", "pending")]
    folder, _ = film_folder(tmp_path, shots)
    with film_lock(folder):  # what a running `wanclip render` holds
        page = page_of(folder)
    assert page.count('class="card waiting"') == 2
    assert '<div class="placeholder">running</div>' in page and '<div class="placeholder">pending</div>' in page
    assert embedded_data(page)["live"] is True and LIVE_MARK in page
    assert '<noscript><meta http-equiv="refresh" content="5"></noscript>' in page
    assert "no film.mp4 yet" in page and "refreshes every 5 s while the render runs" in page


def refreshes(page: str) -> bool:
    return embedded_data(page)["live"] or LIVE_MARK in page or 'http-equiv="refresh"' in page


def test_an_interrupted_film_does_not_refresh_its_page(tmp_path):
    """#19.16: the page of an interrupted film (shots left queued, running or pending, no render running)
    reloaded itself every 5 s forever, restarting the video being watched."""
    shots = [shot(1, "one"), shot(2, "two", "queued", prompt_id="p-2"), shot(3, "three", "pending")]
    folder, _ = film_folder(tmp_path, shots)
    page = page_of(folder)
    assert not refreshes(page) and "no render is running" in page
    assert '<div class="placeholder">queued</div>' in page  # the cards still say where each shot stands
    # a render that was killed (no cleanup) leaves its lock's owner file behind, naming a dead process
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (folder / OWNER_NAME).write_text(f"render (pid {int(dead.stdout)})", encoding="utf-8")
    assert not render_running(folder) and not refreshes(page_of(folder))
    (folder / OWNER_NAME).write_text(f"stitch (pid {os.getpid()})", encoding="utf-8")  # a stitch is no render
    assert not refreshes(page_of(folder))


def test_a_finished_film_does_not_refresh_its_page(tmp_path):
    folder, _ = film_folder(tmp_path, [shot(1, "one"), shot(2, "two")])
    assert not refreshes(page_of(folder))
    with film_lock(folder):  # the render's own last page, written before it lets go of the lock
        write_page(folder, rendering=False)
    assert not refreshes((folder / PAGE_NAME).read_text(encoding="utf-8"))


def test_a_render_stopped_by_sigterm_leaves_a_page_that_does_not_refresh(sim, tmp_path):
    """The real session: the render is stopped with shots pending; its last page must not refresh."""
    sim.faults.stall_prompt(1)
    shots = write_shots(tmp_path, "title: Stopped\nwidth: 64\nheight: 64\nframes: 5\nshots:\n"
                        "  - {name: one, prompt: 'a fox'}\n  - {name: two, prompt: 'a hen'}\n")
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    with subprocess.Popen([sys.executable, "-m", "wanclip", "render", str(shots), "--no-stitch", "--server", sim.url,
                           "--out", str(out), "--json"], env=env, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL) as proc:
        wait_until(lambda: (out / PAGE_NAME).is_file() and refreshes((out / PAGE_NAME).read_text(encoding="utf-8")),
                   message=lambda: "the running render never wrote a refreshing page")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 143
    page = (out / PAGE_NAME).read_text(encoding="utf-8")
    assert not refreshes(page), "the page of a stopped render still refreshes itself"
    requests.post(sim.url + "/interrupt", timeout=5)  # whatever the server still runs, for the next test


def test_copy_command_rerenders_one_shot_with_the_shots_file_quoted(tmp_path):
    odd = tmp_path / "my films" / "it's.yaml"
    odd.parent.mkdir()
    folder, _ = film_folder(tmp_path, [shot(1, "one"), shot(2, "two")], shots_text=None)
    ledger = json.loads((folder / "ledger.json").read_text())
    ledger["film"]["shots_file"] = str(odd)
    (folder / "ledger.json").write_text(json.dumps(ledger))
    page = page_of(folder)
    commands = [s["command"] for s in embedded_data(page)["shots"]]
    assert [shlex.split(c) for c in commands] == [  # the servers of its shots (the ledger names no others)
        ["wanclip", "render", str(odd), "-s", "http://gpu-1:8188", "--out", str(folder), "--only", name]
        for name in ("one", "two")]
    assert f"<code>{html.escape(commands[1])}</code>" in page
    assert page.count('<button type="button" class="copy"') == 3  # the film's own, and one per shot
    assert shlex.split(embedded_data(page)["command"]) == shlex.split(commands[0])[:-2]


def test_links_are_relative_inside_the_folder_and_nothing_points_at_the_web(tmp_path):
    shots = [shot(1, "one"), shot(2, "two", clip="/etc/passwd"), shot(3, "three", clip="../../escape.mp4"),
             shot(4, "four", clip=".")]
    folder, _ = film_folder(tmp_path, shots)
    (folder / "film.mp4").write_bytes(b"not really a film")
    (folder / "clips").mkdir()
    (folder / "clips" / "01_one.mp4").write_bytes(b"not really a clip")  # no poster, still linked
    page = page_of(folder)
    assert parsed(page).links == ["film.mp4", "clips/01_one.mp4", "ledger.json"]
    without_servers = page.replace("http://gpu-1:8188", "")
    assert not re.search(r"https?:|//[a-z]|data:|@import|url\(", without_servers)


def test_prompt_from_an_older_ledger_comes_from_the_shots_file_with_style_apart(tmp_path):
    folder, _ = film_folder(tmp_path, [shot(1, "one"), shot(2, "two")])
    page = page_of(folder)
    assert '<p class="prompt">a red tomato<span class="style" title="style suffix">warm light</span></p>' in page
    assert '<span class="label">negative</span>blurry</summary>' in page
    assert f'<p class="prompt">{html.escape(HOSTILE)}</p>' in page  # shot two: style '' -> no suffix


def test_prompt_recorded_in_the_ledger_wins_over_the_shots_file(tmp_path):
    recorded = shot(1, "one", prompt="a green tomato, film grain", style="film grain", negative="text, <logo>")
    folder, _ = film_folder(tmp_path, [recorded])
    page = page_of(folder)
    assert '<p class="prompt">a green tomato<span class="style" title="style suffix">film grain</span></p>' in page
    assert '<span class="label">negative</span>text, &lt;logo&gt;</summary>' in page and "a red tomato" not in page


def test_prompt_recorded_in_the_ledger_is_split_at_the_style():
    record = SimpleNamespace(name="one", prompt="a red tomato, warm light", style="warm light", negative=None)
    assert shot_prompt(record, None) == Prompt("a red tomato", "warm light", None)
    assert split_style("a red tomato, warm light", "") == ("a red tomato, warm light", "")
    assert split_style("a red tomato", "something else") == ("a red tomato", "")


def test_without_shots_file_or_prompts_the_page_shows_what_the_ledger_has(tmp_path):
    folder, _ = film_folder(tmp_path, [shot(1, "one")], shots_text=None)
    page = page_of(folder)
    assert "prompt unknown" in page and "seed</dt><dd>101" in page and "81 · 5.06 s @ 16 fps" in page


def test_render_time_is_split_by_node_and_the_stitch_counted(tmp_path):
    first = shot(1, "one", node_seconds={"model load": 60.0, "text encode": 0.5, "high-noise sampler": 8.0,
                                         "low-noise sampler": 7.0, "decode": 2.0, "combine": 0.5})
    assert time_split([first["node_seconds"], {"decode": 1.0, "odd": 2.0}]) == {
        "model load": 60.0, "text encode": 0.5, "sampling": 15.0, "decode": 3.0, "video encode": 0.5, "other": 2.0}
    folder, _ = film_folder(tmp_path, [first, shot(2, "two")], stitch_seconds=4.0)
    page = page_of(folder)
    assert "<dt>render time</dt><dd>1 m 39 s</dd>" in page  # 78 + 17 + 4 s of stitching
    assert "stitch <b>4.0 s</b>" in page and "sampling <b>30 s</b>" in page


def test_review_command_writes_the_page_and_refuses_a_folder_without_ledger(tmp_path):
    folder, _ = film_folder(tmp_path, [shot(1, "one")])
    result = run_cli("review", folder, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["page"] == str(folder / PAGE_NAME) and (folder / PAGE_NAME).is_file()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert run_cli("review", empty).exit_code == 2
    assert run_cli("review", tmp_path / "missing").exit_code == 2
    assert json.loads(run_cli("review", empty, "--json").stdout)["exit_code"] == 2


def test_served_folder_is_loopback_only_and_nothing_outside_it(tmp_path):
    folder, _ = film_folder(tmp_path, [shot(1, "one")])
    write_page(folder)
    (tmp_path / "out" / "secret.txt").write_text("outside")
    server = serve_folder(folder, 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        host, port = server.server_address[:2]
        assert host == "127.0.0.1"
        with requests.Session() as session:
            page = session.get(f"http://127.0.0.1:{port}/index.html", timeout=10)
            assert page.status_code == 200 and "Review Film" in page.text
            assert session.get(f"http://127.0.0.1:{port}/../secret.txt", timeout=10).status_code == 404
            assert session.get(f"http://127.0.0.1:{port}/%2e%2e/secret.txt", timeout=10).status_code == 404
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


CHAIN_SHOTS = """title: Review Film
shots:
  - {name: one, prompt: 'a kitchen'}
  - {name: walk, prompt: 'a dancer starts'}
  - {name: onward, prompt: 'she spins', continue: true}
  - {name: more, prompt: 'she bows', continue: true}
  - {name: door, prompt: 'the door', image: keys/door.png, end_image: keys/open.png}
"""


def chain_folder(tmp_path):
    from PIL import Image

    (tmp_path / "keys").mkdir()
    for name in ("door", "open"):
        Image.new("RGB", (832, 480), (90, 60, 30)).save(tmp_path / "keys" / f"{name}.png")
    cut = {"type": "cut", "duration": 0.0}
    shots = [shot(1, "one"), shot(2, "walk", last_frame="clips/02_walk.last.png"),
             shot(3, "onward", continues="walk", transition=cut, last_frame="clips/03_onward.last.png"),
             shot(4, "more", continues="onward", transition=cut), shot(5, "door")]
    folder, _ = film_folder(tmp_path, shots, CHAIN_SHOTS)
    (folder / "clips").mkdir()
    for name in ("02_walk", "03_onward"):
        Image.new("RGB", (832, 480), (200, 120, 40)).save(folder / "clips" / f"{name}.last.png")
    return folder


def card_of(page: str, name: str) -> str:
    return re.search(rf'<article class="card [^"]*" id="shot-{name}"[^>]*>.*?</article>', page, re.S).group(0)


def test_a_chain_is_one_row_of_joined_cards_each_saying_what_it_continues(tmp_path):
    page = page_of(chain_folder(tmp_path))
    chains = re.findall(r'<section class="chain".*?</section>', page, re.S)
    assert len(chains) == 1
    row = chains[0]
    assert re.findall(r'id="shot-([^"]+)"', row) == ["walk", "onward", "more"]  # in film order, and only them
    assert "chain</span> 02 → 03 → 04 · 15 s continuous · 3 links" in row  # (81 + 80 + 80) / 16 s
    joints = re.findall(r'<div class="joint".*?</div>', row, re.S)
    assert len(joints) == 2 and all("→" in j for j in joints)
    assert '<img src="clips/02_walk.last.png" alt="last frame of walk">' in joints[0]
    assert '<img src="clips/03_onward.last.png"' in joints[1]
    assert "continues from 02 walk" in card_of(page, "onward") and "continues from 03 onward" in card_of(page, "more")
    assert "continues from" not in card_of(page, "walk") and "continues from" not in card_of(page, "one")
    assert "cut (first frame dropped: it is the last of walk)" in card_of(page, "onward")
    assert 'class="card done link"' in card_of(page, "more")
    assert page.index('id="shot-one"') < page.index('<section class="chain"') < page.index('id="shot-door"')


def test_a_keyframe_started_shot_says_so_and_names_where_it_lands(tmp_path):
    page = page_of(chain_folder(tmp_path))
    door = card_of(page, "door")
    assert '<span class="from keyframe" title="keys/door.png">starts from keyframe door.png</span>' in door
    assert '<span class="from end" title="keys/open.png">lands on open.png</span>' in door
    assert "starts from keyframe" not in card_of(page, "walk")
    assert "keys/door.png" not in parsed(page).links  # named, never linked: it lives outside the folder


def test_a_link_whose_shot_before_is_elsewhere_stands_alone_but_still_says_what_it_continues(tmp_path):
    shots = [shot(1, "one"), shot(2, "two", continues="zero", transition={"type": "cut", "duration": 0.0})]
    folder, _ = film_folder(tmp_path, shots, shots_text=None)
    page = page_of(folder)
    assert '<section class="chain"' not in page
    assert "continues from zero" in card_of(page, "two")


def test_copy_command_reruns_the_film_as_it_was_run_servers_masked_and_quoted(sim, tmp_path):
    """#19.16: the Copy command left out -s and --out. It names the film's servers (user:pass@ masked as
    ***@, never the password), its out folder, all shell-quoted, Chinese paths and names included; and
    run as it stands (the password put back), it renders nothing again."""
    folder = tmp_path / "我的 片子"
    folder.mkdir()
    shots = write_shots(folder, "title: 番茄炒蛋\nwidth: 64\nheight: 64\nframes: 5\nshots:\n"
                        "  - {name: cut, prompt: '番茄切块'}\n  - {name: stir, prompt: '炒蛋'}\n", name="番茄 炒蛋.yaml")
    out = tmp_path / "成片" / "第 1 版"
    secret_url = sim.url.replace("http://", "http://me:s3cr%40t@")
    first = run_cli("render", shots, "-s", secret_url, "--out", out, "--json")
    assert first.exit_code == 0, first.output
    page = (out / PAGE_NAME).read_text(encoding="utf-8")
    masked = sim.url.replace("http://", "http://***@")
    film_command = embedded_data(page)["command"]
    assert shlex.split(film_command) == ["wanclip", "render", str(shots), "-s", masked, "--out", str(out)]
    assert [shlex.split(s["command"]) for s in embedded_data(page)["shots"]] == [
        shlex.split(film_command) + ["--only", name] for name in ("cut", "stir")]
    assert "s3cr" not in page and "s3cr" not in (out / "ledger.json").read_text(encoding="utf-8")
    assert html.escape(film_command) in page  # shown as it is copied
    again = shlex.split(film_command)[1:]
    again[again.index(masked)] = secret_url
    rerun = run_cli(*again, "--json")
    assert rerun.exit_code == 0, rerun.output
    assert len(sim.log()) == 2  # the same film in the same folder: nothing rendered twice


def test_copy_command_of_an_older_ledger_names_the_servers_its_shots_rendered_on(tmp_path):
    shots = [shot(1, "one", server="http://gpu-2:8188"), shot(2, "two"), shot(3, "three", server="http://gpu-2:8188")]
    folder, shots_file = film_folder(tmp_path, shots)
    words = shlex.split(embedded_data(page_of(folder))["command"])
    assert words == ["wanclip", "render", str(shots_file), "-s", "http://gpu-2:8188", "-s", "http://gpu-1:8188",
                     "--out", str(folder)]
    ledger = json.loads((folder / "ledger.json").read_text(encoding="utf-8"))
    ledger["film"]["servers"] = ["https://user:pw@gpu.example/comfy?token=abc"]  # masked even when written plain
    (folder / "ledger.json").write_text(json.dumps(ledger), encoding="utf-8")
    page = page_of(folder)
    assert shlex.split(embedded_data(page)["command"])[3:5] == ["-s", "https://***@gpu.example/comfy"]
    assert "pw@" not in page and "token" not in page


def test_copy_command_leaves_out_out_when_the_folder_is_the_default(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shots = write_shots(tmp_path, "title: Default Out\nshots:\n  - {name: one, prompt: 'a fox'}\n")
    folder = tmp_path / "out" / "default-out"
    folder.mkdir(parents=True)
    (folder / "ledger.json").write_text(json.dumps({"version": 1, "film": {"title": "Default Out", "shots_file": str(
        shots), "servers": ["http://127.0.0.1:8188"]}, "shots": [shot(1, "one")]}), encoding="utf-8")
    assert shlex.split(embedded_data(page_of(folder))["command"]) == [
        "wanclip", "render", str(shots), "-s", "http://127.0.0.1:8188"]


CJK_FONTS = ('"PingFang SC"', '"Hiragino Sans"', '"Microsoft YaHei"', '"Noto Sans CJK SC"', '"Source Han Sans SC"')


def test_every_font_stack_falls_back_to_cjk_fonts_of_every_system(tmp_path):
    """#19.16: a Chinese negative prompt showed as boxes: no font stack named a CJK font."""
    folder, _ = film_folder(tmp_path, [shot(1, "one", prompt="番茄炒蛋", negative="模糊，低质量")])
    page = page_of(folder)
    css = re.search(r"<style>(.*?)</style>", page, re.S).group(1)
    stacks = re.findall(r"font(?:-family)?\s*:\s*([^;}]+)", css)
    named = [s for s in stacks if "," in s]  # a stack of families (font: inherit / font-size are not)
    assert len(named) >= 4
    for stack in named:
        families = [f.strip() for f in stack.split(",")]
        assert all(font in families for font in CJK_FONTS), stack
        assert families[-1] in ("sans-serif", "monospace", "serif"), stack  # the generic family closes it
        assert max(families.index(f) for f in CJK_FONTS) < len(families) - 1
    # the controls (the Copy button, the summaries) take the page's fonts too, not the system's own
    assert re.search(r"button,[^{]*summary\{font:inherit\}", css)
    assert "模糊，低质量" in page


HUGE = "a tomato on a board, " * 60 + "x" * 300  # 1560 characters, 300 of them one unbroken word


def test_a_huge_prompt_is_clamped_in_its_card_with_a_toggle_for_the_whole_text(tmp_path):
    """#19.16: a huge prompt made its card enormous."""
    folder, _ = film_folder(tmp_path, [shot(1, "one", prompt=HUGE), shot(2, "two", prompt="a short one"),
                                       shot(3, "three", prompt="番茄" * 120)])
    page = page_of(folder)
    huge = card_of(page, "one")
    assert re.search(r'<div class="prompt-box"><details class="more"><summary[^>]*></summary></details>'
                     r'<p class="prompt">' + re.escape(HUGE) + "</p></div>", huge)  # the whole text, once
    assert '<details class="more">' not in card_of(page, "two") and '<p class="prompt">a short one</p>' in page
    assert '<details class="more">' in card_of(page, "three")  # 240 wide characters: long too
    css = re.search(r"<style>(.*?)</style>", page, re.S).group(1)
    clamp = re.search(r"\.more:not\(\[open\]\)\+\.prompt\{([^}]*)\}", css).group(1)
    assert "-webkit-line-clamp:4" in clamp and "overflow:hidden" in clamp
    assert re.search(r"body\{[^}]*overflow-wrap:anywhere", css)  # a long unbroken word wraps, never overflows
    assert re.search(r"\.prompt\{[^}]*overflow-wrap:anywhere", css)


def test_a_hostile_prompt_in_a_clamped_card_or_a_take_is_text(tmp_path):
    hostile = HOSTILE + " " + "<script>alert(3)</script>" * 20
    record = shot(1, "one", prompt=hostile, take=2, takes=[{"take": 1, "clip": "clips/01_one.mp4", "seed": 1,
                                                             "prompt": "<script>alert(4)</script>"}])
    folder, _ = film_folder(tmp_path, [record])
    (folder / "clips").mkdir()
    (folder / "clips" / "01_one.mp4").write_bytes(b"take one")
    page = page_of(folder)
    assert "<script>alert" not in page and html.escape(hostile) in page
    assert html.escape("<script>alert(4)</script>") in page
    assert parsed(page).tags.count("script") == 2


def takes_folder(tmp_path) -> Path:
    """A ledger in the shape the takes contract gives (written by hand): shot one rendered three times,
    the film pinned to take 2 (take 1 graded by the user, with another prompt); shot two rendered once
    and edited; shot three from before takes."""
    one = shot(1, "one", seed=300, clip="clips/01_one.take3.mp4", clip_sha256="s3", prompt="a red tomato, warm light",
               style="warm light", take=3, rendered_at="2026-12-07T18:02:11Z", use_take=2, edited_sha256=None,
               takes=[{"take": 1, "clip": "clips/01_one.mp4", "clip_sha256": "s1", "seed": 101, "graph_sha256": "g1",
                       "prompt": "a green <tomato>, warm light", "rendered_at": "2026-12-07T17:00:05Z", "edited": True},
                      {"take": 2, "clip": "clips/01_one.take2.mp4", "clip_sha256": "s2", "seed": 200,
                       "graph_sha256": "g2", "prompt": "a red tomato, warm light", "rendered_at": "2026-12-07T17:30:00Z",
                       "edited": False}])
    two = shot(2, "two", take=1, takes=[], rendered_at="2026-12-07T17:10:00Z", use_take=None, edited_sha256="e2")
    folder, _ = film_folder(tmp_path, [one, two, shot(3, "three")])
    (folder / "clips").mkdir()
    for name in ("01_one.mp4", "01_one.take2.mp4", "01_one.take3.mp4", "02_two.mp4", "03_three.mp4"):
        (folder / "clips" / name).write_bytes(name.encode())
    return folder


def test_a_card_plays_the_take_the_film_uses_and_lists_its_other_takes(tmp_path):
    """#19.5: the page shows, per shot, the clip the film uses and its other takes, each playable."""
    page = page_of(takes_folder(tmp_path))
    one = card_of(page, "one")
    assert parsed(one).links[0] == "clips/01_one.take2.mp4"  # the card's player: the take the film uses
    assert "the film uses <b>take 2</b> · not the newest (3)" in one
    takes = re.findall(r'<li class="take" id="shot-one-take-(\d)"><video controls preload="metadata" src="([^"]+)">', one)
    assert takes == [("1", "clips/01_one.mp4"), ("3", "clips/01_one.take3.mp4")]
    first = re.search(r'id="shot-one-take-1">.*?</li>', one).group(0)
    assert "<b>take 1</b> · seed 101 · " in first and ">2026-12-07 17:00 UTC</time>" in first
    assert '<span class="edited">edited by you</span>' in first
    assert "prompt: a green &lt;tomato&gt;, warm light" in first  # it differs from the shot's prompt now
    third = re.search(r'id="shot-one-take-3">.*?</li>', one).group(0)
    assert "seed 300" in third and "18:02 UTC" in third and "prompt:" not in third and "edited" not in third
    assert "2 other takes" in one
    two = card_of(page, "two")
    assert parsed(two).links[0] == "clips/02_two.mp4" and "the film uses <b>take 1</b> · the newest" in two
    assert '<span class="edited">edited by you</span>' in two and "other take" not in two
    three = card_of(page, "three")
    assert 'class="takes"' not in three and parsed(three).links[0] == "clips/03_three.mp4"


def test_the_page_asks_the_ledger_which_clip_the_film_uses_when_it_can(tmp_path, monkeypatch):
    """``Ledger.film_clip`` (the takes contract) decides; the page's own reading is for older ledgers."""
    from wanclip.ledger import Ledger

    folder = takes_folder(tmp_path)
    monkeypatch.setattr(Ledger, "film_clip", lambda self, record: self.folder / "clips" / "01_one.mp4"
                        if record.name == "one" else self.clip_path(record), raising=False)
    one = card_of(page_of(folder), "one")
    assert parsed(one).links[0] == "clips/01_one.mp4" and "the film uses <b>take 1</b>" in one
    assert re.findall(r'id="shot-one-take-(\d)"', one) == ["2", "3"]


def test_a_ledger_from_before_takes_shows_no_takes(tmp_path):
    folder, _ = film_folder(tmp_path, [shot(1, "one"), shot(2, "two")])
    (folder / "clips").mkdir()
    (folder / "clips" / "01_one.mp4").write_bytes(b"clip")
    page = page_of(folder)
    assert 'class="takes"' not in page and "take " not in page.split("<main", 1)[1].split("<script", 1)[0]
    assert parsed(card_of(page, "one")).links == ["clips/01_one.mp4"]


def test_takes_fields_of_an_odd_shape_are_left_out_never_shown_raw(tmp_path):
    odd = shot(1, "one", take="<b>3</b>", use_take="x", takes=[{"take": "<i>1</i>", "clip": "clips/01_one.mp4"},
                                                               "not a take", {"take": True}])
    folder, _ = film_folder(tmp_path, [odd, shot(2, "two", takes={"take": 1})])
    page = page_of(folder)
    assert "<b>3</b>" not in page and "<i>1</i>" not in page and 'class="takes"' not in page
