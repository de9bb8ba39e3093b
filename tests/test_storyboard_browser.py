"""The storyboard page in a real browser: headless Chromium (Debian's ``chromium``) driven over the
DevTools protocol with websocket-client (already a wanclip dependency; no browser download).

A small film is rendered on the simulator (one shot with a hostile prompt, one failed with a hostile
error), its page written, then loaded from ``file://`` and from ``wanclip review --serve``'s server.
Checked: every clip plays, nothing is logged as an error, no request leaves the folder, the hostile
text is text, the copy button works. The screenshot lands in the test's tmp dir and in
``out/test-artifacts/storyboard.png``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest
import websocket

from helpers import ROOT, run_cli, write_shots
from wanclip.ledger import film_lock
from wanclip.review.page import REFRESH_SECONDS
from wanclip.review.storyboard import serve_folder, write_page

HOSTILE = "</script><img src=x onerror=alert(1)>"
HOSTILE_ERROR = "<img src=y onerror=alert(2)> CUDA error"
ARTIFACT = ROOT / "out" / "test-artifacts" / "storyboard.png"
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--autoplay-policy=no-user-gesture-required", "--remote-debugging-port=0"]


def chromium_exe() -> str:
    found = next((p for p in map(shutil.which, CHROMIUM_NAMES) if p), None)
    if not found:
        pytest.skip(f"no Chromium on PATH (looked for {', '.join(CHROMIUM_NAMES)}); install one to run this test "
                    "(Debian: `sudo apt-get install chromium`). `make test` installs it only in CI (CI=true, as "
                    "root): see scripts/ensure_chromium.sh")
    return found


class Chromium:
    """One headless Chromium and one flat-session DevTools socket to it."""

    def __init__(self, proc: subprocess.Popen, profile: Path):
        self.proc, self.profile = proc, profile
        self.ws = websocket.create_connection(self._devtools_url(), timeout=60, suppress_origin=True)
        self.next_id = 0
        self.events: list[dict] = []

    def _devtools_url(self) -> str:
        active = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"chromium exited {self.proc.returncode}; see chromium.log beside {self.profile}")
            lines = active.read_text().split() if active.is_file() else []
            if len(lines) == 2:
                return f"ws://127.0.0.1:{lines[0]}{lines[1]}"
            time.sleep(0.05)
        raise RuntimeError("chromium did not open its DevTools port in 60 s")

    def send(self, method: str, session: str | None = None, **params) -> dict:
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params}
        self.ws.send(json.dumps(msg | ({"sessionId": session} if session else {})))
        while True:
            reply = self._read()
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    def _read(self) -> dict:
        reply = json.loads(self.ws.recv())
        if "method" in reply:
            self.events.append(reply)
            if reply["method"] == "Page.javascriptDialogOpening":  # an alert ran: note it, let it go
                self.ws.send(json.dumps({"id": 0, "method": "Page.handleJavaScriptDialog",
                                         "params": {"accept": True}, "sessionId": reply["sessionId"]}))
        return reply

    def wait_for(self, method: str, timeout: float = 30, after: int = 0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [e for e in self.events[after:] if e["method"] == method]
            if found:
                return found[0]
            self.ws.settimeout(max(0.1, deadline - time.monotonic()))
            try:
                self._read()
            except websocket.WebSocketTimeoutException:
                break
            finally:
                self.ws.settimeout(60)
        raise AssertionError(f"no {method} within {timeout} s")

    def open(self, url: str) -> str:
        """A fresh tab with every domain the checks listen to enabled, at ``url``; its session id."""
        target = self.send("Target.createTarget", url="about:blank")["targetId"]
        session = self.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.send(f"{domain}.enable", session)
        mark = len(self.events)
        self.send("Page.navigate", session, url=url)
        self.wait_for("Page.loadEventFired", after=mark)
        return session

    def evaluate(self, session: str, expression: str):
        result = self.send("Runtime.evaluate", session, expression=expression, awaitPromise=True,
                           returnByValue=True, userGesture=True)
        if "exceptionDetails" in result:
            raise AssertionError(f"page script failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    def screenshot(self, session: str, path: Path, width: int = 1360) -> Path:
        self.send("Emulation.setDeviceMetricsOverride", session, width=width, height=900, deviceScaleFactor=1,
                  mobile=False)
        height = self.send("Page.getLayoutMetrics", session)["cssContentSize"]["height"]
        self.send("Emulation.setDeviceMetricsOverride", session, width=width, height=min(int(height) + 1, 6000),
                  deviceScaleFactor=1, mobile=False)
        shot = self.send("Page.captureScreenshot", session, format="png")
        path.write_bytes(__import__("base64").b64decode(shot["data"]))
        return path

    def events_of(self, session: str, *methods: str) -> list[dict]:
        return [e for e in self.events if e.get("sessionId") == session and e["method"] in methods]

    def close(self) -> None:
        try:
            self.send("Browser.close")
        except (RuntimeError, OSError, websocket.WebSocketException):
            pass
        self.ws.close()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    exe = chromium_exe()
    profile = tmp_path_factory.mktemp("chromium") / "profile"
    argv = [exe, *FLAGS, f"--user-data-dir={profile}", "about:blank"]
    with open(profile.parent / "chromium.log", "wb") as log, \
            subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT) as proc:
        chrome = Chromium(proc, profile)
        try:
            chrome.send("Browser.grantPermissions", permissions=["clipboardReadWrite", "clipboardSanitizedWrite"])
            yield chrome
        finally:
            chrome.close()


@pytest.fixture
def film_dir(sim, tmp_path) -> Path:
    """Three done shots (the second with the hostile prompt) stitched, then a fourth that failed."""
    out = tmp_path / "out" / "browser-film"
    lines = ["title: Browser <Film> & Co", "width: 64", "height: 64", "frames: 5", "seed_base: 100",
             "style: warm kitchen light", "transition: {type: fade, duration: 0.1}", "shots:",
             "  - {name: opening, prompt: 'a tomato on a wooden board'}",
             f"  - {{name: hostile, prompt: '{HOSTILE}', negative: 'blurry & <b>bold</b>'}}",
             "  - {name: closing, prompt: 'eggs in a bowl'}"]
    shots = write_shots(tmp_path, "\n".join(lines) + "\n")
    first = run_cli("render", shots, "--server", sim.url, "--out", out, "--json")
    assert first.exit_code == 0, first.output
    with shots.open("a", encoding="utf-8") as fh:
        fh.write("  - {name: broken, prompt: 'the wok catches fire'}\n")
    sim.faults.fail_prompt(len(sim.log()) + 1, "VAEDecode", HOSTILE_ERROR)
    assert run_cli("render", shots, "--server", sim.url, "--out", out, "--json").exit_code == 1
    write_page(out)
    return out


PLAY_ALL = """Promise.all(Array.from(document.querySelectorAll('video')).map(v => new Promise(resolve => {
  const report = () => resolve({src: v.getAttribute('src'), readyState: v.readyState, width: v.videoWidth,
                                error: v.error && v.error.code, played: v.currentTime > 0 || v.ended});
  v.muted = true;
  v.addEventListener('ended', report, {once: true});
  v.addEventListener('error', report, {once: true});
  setTimeout(report, 15000);
  v.play().catch(report);
})))"""

COPY_HOSTILE = """(async () => {
  const button = document.querySelector('#shot-hostile button.copy');
  button.click();
  await new Promise(r => setTimeout(r, 300));
  return {label: button.textContent, clipboard: await navigator.clipboard.readText().catch(e => 'ERR ' + e)};
})()"""


def check_page(browser: Chromium, url: str, allowed_prefix: str) -> str:
    """Load the page at ``url``; assert every check; returns the tab's session id."""
    session = browser.open(url)
    videos = browser.evaluate(session, PLAY_ALL)
    assert [v["src"] for v in videos] == ["film.mp4", "clips/01_opening.mp4", "clips/02_hostile.mp4",
                                          "clips/03_closing.mp4"]
    for video in videos:  # H.264 decodes in Debian's chromium: each clip has a frame and reached its end
        assert video["readyState"] >= 2 and video["width"] == 64 and video["error"] is None, video
        assert video["played"], video
    assert browser.evaluate(session, "document.body.textContent.includes(" + json.dumps(HOSTILE) + ")")
    assert browser.evaluate(session, "document.body.textContent.includes(" + json.dumps(HOSTILE_ERROR) + ")")
    assert browser.evaluate(session, "document.querySelectorAll('img').length") == 0
    assert browser.evaluate(session, "document.querySelectorAll('article.card.failed').length") == 1
    copied = browser.evaluate(session, COPY_HOSTILE)
    assert copied["label"] == "Copied"
    assert copied["clipboard"].startswith("wanclip render ") and copied["clipboard"].endswith("--only hostile")
    time.sleep(0.3)  # let late console messages and requests arrive
    browser.send("Runtime.evaluate", session, expression="1")
    assert not browser.events_of(session, "Page.javascriptDialogOpening"), "a script in the page ran an alert"
    errors = [e["params"] for e in browser.events_of(session, "Runtime.exceptionThrown")]
    errors += [e["params"] for e in browser.events_of(session, "Runtime.consoleAPICalled")
               if e["params"]["type"] in ("error", "assert", "warning")]
    errors += [e["params"]["entry"] for e in browser.events_of(session, "Log.entryAdded")
               if e["params"]["entry"]["level"] in ("error", "warning")]
    assert errors == []
    # data: URLs are Chromium's own media-control icons (the page has none: test_storyboard.py): no request
    requests = [e["params"]["request"]["url"] for e in browser.events_of(session, "Network.requestWillBeSent")
                if not e["params"]["request"]["url"].startswith("data:")]
    assert requests and all(u.startswith(allowed_prefix) for u in requests), [u[:120] for u in requests if not u.startswith(allowed_prefix)]
    assert {u[len(allowed_prefix):] for u in requests} >= {"index.html", "film.mp4", "clips/01_opening.mp4",
                                                          "posters/01_opening.jpg"}
    return session


def test_page_plays_every_clip_offline_and_shows_hostile_text_as_text(browser, film_dir, tmp_path):
    folder_url = film_dir.resolve().as_uri() + "/"
    session = check_page(browser, folder_url + "index.html", folder_url)
    assert browser.evaluate(session, "document.title") == "Browser <Film> & Co · wanclip"
    shot = browser.screenshot(session, tmp_path / "storyboard.png")
    ARTIFACT.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(shot, ARTIFACT)
    assert shot.stat().st_size > 10_000


def test_served_page_asks_only_its_own_loopback_server(browser, film_dir):
    server = serve_folder(film_dir, 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}/"
        check_page(browser, base + "index.html", base)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


RESTORED = """new Promise(resolve => {  // the film player's position once the page put it back (or 0)
  const v = document.querySelector('video.film');
  const deadline = Date.now() + 20000;
  const look = () => (v.currentTime > 0 || Date.now() > deadline) ? resolve(v.currentTime) : setTimeout(look, 50);
  look();
})"""


def test_page_reloads_itself_while_a_render_runs_and_puts_a_paused_video_back(browser, film_dir):
    """From file:// the page can only reload: it does so while a render runs (here: the test holds the
    film's render lock, as `wanclip render` does), and a video paused midway is where it was after."""
    with film_lock(film_dir):
        write_page(film_dir)
        session = browser.open(film_dir.resolve().as_uri() + "/index.html")
        browser.evaluate(session, """new Promise(resolve => { const v = document.querySelector('video.film');
          const at = () => { v.currentTime = 0.5; resolve(true); };
          v.readyState >= 1 ? at() : v.addEventListener('loadedmetadata', at, {once: true}); })""")
        mark = len(browser.events)
        reload = browser.wait_for("Page.loadEventFired", timeout=REFRESH_SECONDS + 20, after=mark)
        assert reload["sessionId"] == session
        assert abs(browser.evaluate(session, RESTORED) - 0.5) < 0.05


SWAPPED = """new Promise(resolve => {  // wait for the live page to take the new ledger in
  const deadline = Date.now() + 40000;
  const look = () => {
    const done = document.body.textContent.includes(%s);
    (done || Date.now() > deadline) ? resolve(done) : setTimeout(look, 100);
  };
  look();
})"""

PLAYING = """(() => { const v = document.querySelector('#shot-opening video');
  return {same: v === window.watched, paused: v.paused, looped: v.loop, muted: v.muted}; })()"""


def test_served_page_takes_changes_in_without_reloading_and_a_playing_video_plays_on(browser, film_dir):
    """#19.16: a refresh restarted the video being watched. Served, the page swaps only the parts that
    changed; the playing video moves into its card's new markup as it is, and never reloads."""
    server = serve_folder(film_dir, 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    ledger_file = film_dir / "ledger.json"
    try:
        with film_lock(film_dir):
            write_page(film_dir)
            session = browser.open(f"http://127.0.0.1:{server.server_address[1]}/index.html")
            browser.evaluate(session, """(async () => { const v = document.querySelector('#shot-opening video');
              v.loop = true; v.muted = true; window.watched = v; await v.play(); return true; })()""")
            mark = len(browser.events)
            ledger = json.loads(ledger_file.read_text(encoding="utf-8"))
            ledger["shots"][0]["node_seconds"] = {"high-noise sampler": 640.0}  # the watched card changes
            ledger["shots"][-1]["error"]["message"] = "the wok is out: 换一个锅"
            ledger_file.write_text(json.dumps(ledger, ensure_ascii=False), encoding="utf-8")
            write_page(film_dir)
            assert browser.evaluate(session, SWAPPED % json.dumps("换一个锅"))
            assert "10 m 40 s" in browser.evaluate(session, "document.querySelector('#shot-opening').textContent")
            assert browser.evaluate(session, PLAYING) == {"same": True, "paused": False, "looped": True, "muted": True}
            assert not [e for e in browser.events[mark:] if e["method"] == "Page.loadEventFired"
                        and e.get("sessionId") == session], "it reloaded"
        write_page(film_dir)  # the render ended: the page says so and stops asking
        assert browser.evaluate(session, SWAPPED % json.dumps("no render is running"))
        assert browser.evaluate(session, "JSON.parse(document.getElementById('storyboard-data').textContent).live") \
            is False
        assert browser.evaluate(session, PLAYING)["same"]
        errors = [e for e in browser.events_of(session, "Runtime.exceptionThrown", "Log.entryAdded")
                  if e["method"] == "Runtime.exceptionThrown" or e["params"]["entry"]["level"] == "error"]
        assert errors == []
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture
def chain_dir(sim, tmp_path) -> Path:
    """A film rendered on the simulator: a shot, then a three-link chain (02 → 03 → 04)."""
    out = tmp_path / "out" / "chain-film"
    lines = ["title: Chain Film", "width: 64", "height: 64", "frames: 9", "seed_base: 7",
             "transition: {type: fade, duration: 0.125}", "shots:",
             "  - {name: kitchen, prompt: 'a kitchen at dawn'}",
             "  - {name: step, prompt: 'a dancer steps in'}",
             "  - {name: spin, prompt: 'she spins', continue: true}",
             "  - {name: bow, prompt: 'she bows', continue: true}"]
    shots = write_shots(tmp_path, "\n".join(lines) + "\n")
    done = run_cli("render", shots, "--server", sim.url, "--out", out, "--json")
    assert done.exit_code == 0, done.output
    write_page(out)
    return out


CHAIN_LAYOUT = """(() => {
  const chain = document.querySelector('section.chain');
  const box = e => { const r = e.getBoundingClientRect(); return {left: r.left, right: r.right, top: r.top}; };
  return {cards: Array.from(chain.querySelectorAll('article.card')).map(c => [c.id, box(c)]),
          joints: Array.from(chain.querySelectorAll('.joint')).map(box),
          frames: Array.from(chain.querySelectorAll('.joint img')).map(i => i.complete && i.naturalWidth),
          labels: Array.from(chain.querySelectorAll('.from.continues')).map(s => s.textContent),
          head: chain.querySelector('.chain-head').textContent,
          alone: document.querySelectorAll('main > article.card').length};
})()"""


def test_a_chain_shows_as_joined_cards_in_one_row(browser, chain_dir, tmp_path):
    from wanclip import media

    assert media.probe(chain_dir / "film.mp4").frames == 4 * 9 - 2 - 2  # two dropped frames, one 2-frame fade
    session = browser.open(chain_dir.resolve().as_uri() + "/index.html")
    browser.send("Emulation.setDeviceMetricsOverride", session, width=1360, height=900, deviceScaleFactor=1,
                 mobile=False)
    got = browser.evaluate(session, CHAIN_LAYOUT)
    assert [name for name, _ in got["cards"]] == ["shot-step", "shot-spin", "shot-bow"] and got["alone"] == 1
    boxes = [b for _, b in got["cards"]]
    assert len({round(b["top"]) for b in boxes}) == 1  # one row
    for before, joint, after in zip(boxes[:-1], got["joints"], boxes[1:], strict=True):  # card, joint, card
        assert before["right"] <= joint["left"] + 1 and joint["right"] <= after["left"] + 1
    assert got["labels"] == ["continues from 02 step", "continues from 03 spin"]
    assert all(got["frames"]) and len(got["frames"]) == 2  # the shared frame, from the render's .last.png
    assert "02 → 03 → 04" in got["head"]
    errors = [e for e in browser.events_of(session, "Runtime.exceptionThrown", "Log.entryAdded")
              if e["method"] == "Runtime.exceptionThrown" or e["params"]["entry"]["level"] == "error"]
    assert errors == []
    shot = browser.screenshot(session, tmp_path / "storyboard-chain.png")
    ARTIFACT.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(shot, ARTIFACT.with_name("storyboard-chain.png"))


HUGE = "a tomato on a board, " * 60 + "x" * 300  # 300 characters without a place to break

CLAMP = """(async () => {
  const card = document.querySelector('#shot-huge');
  const prompt = card.querySelector('.prompt');
  const line = parseFloat(getComputedStyle(prompt).lineHeight);
  const closed = {card: card.getBoundingClientRect().height, prompt: prompt.getBoundingClientRect().height,
                  wide: card.scrollWidth - card.clientWidth, page: document.documentElement.scrollWidth - innerWidth};
  card.querySelector('details.more summary').click();
  await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
  const open = {prompt: prompt.getBoundingClientRect().height, wide: card.scrollWidth - card.clientWidth,
                page: document.documentElement.scrollWidth - innerWidth};
  const fonts = Array.from(document.querySelectorAll('body, .negative, .prompt, button.copy, .cmd code, h1'))
    .map(e => getComputedStyle(e).fontFamily);
  return {line, closed, open, fonts};
})()"""


def test_a_huge_prompt_keeps_its_card_small_until_asked_and_nothing_overflows(browser, sim, tmp_path):
    out = tmp_path / "out" / "huge"
    shots = write_shots(tmp_path, "title: 番茄炒蛋\nwidth: 64\nheight: 64\nframes: 5\nshots:\n"
                        f"  - {{name: huge, prompt: '{HUGE}', negative: '模糊，低质量，{'字' * 80}'}}\n"
                        "  - {name: small, prompt: '番茄炒蛋'}\n")
    assert run_cli("render", shots, "--server", sim.url, "--out", out, "--json").exit_code == 0
    session = browser.open(out.resolve().as_uri() + "/index.html")
    browser.send("Emulation.setDeviceMetricsOverride", session, width=1200, height=900, deviceScaleFactor=1,
                 mobile=False)
    got = browser.evaluate(session, CLAMP)
    assert got["closed"]["prompt"] <= 4.5 * got["line"]  # four lines
    assert got["open"]["prompt"] > 20 * got["line"]  # the whole text, once asked
    assert got["closed"]["wide"] <= 0 and got["open"]["wide"] <= 0  # the unbroken word wraps inside the card
    assert got["closed"]["page"] <= 0 and got["open"]["page"] <= 0
    for family in got["fonts"]:
        assert "Noto Sans CJK SC" in family and "Microsoft YaHei" in family and "PingFang SC" in family, family


def test_every_take_of_a_shot_plays(browser, film_dir):
    """Takes (#19.5), in the ledger's shape: the opening shot rendered twice, the film pinned to take 1."""
    clips = film_dir / "clips"
    shutil.copyfile(clips / "02_hostile.mp4", clips / "01_opening.take2.mp4")
    ledger_file = film_dir / "ledger.json"
    ledger = json.loads(ledger_file.read_text(encoding="utf-8"))
    first = ledger["shots"][0]
    first["takes"] = [{"take": 1, "clip": first["clip"], "clip_sha256": first["clip_sha256"], "seed": first["seed"],
                       "prompt": "an older prompt", "graph_sha256": "old", "rendered_at": "2026-12-07T17:00:00Z",
                       "edited": True}]
    first.update(take=2, clip="clips/01_opening.take2.mp4", seed=first["seed"] + 1, use_take=1,
                 rendered_at="2026-12-07T18:00:00Z")
    ledger_file.write_text(json.dumps(ledger, ensure_ascii=False), encoding="utf-8")
    write_page(film_dir)
    session = browser.open(film_dir.resolve().as_uri() + "/index.html")
    browser.evaluate(session, "document.querySelectorAll('details.other-takes').forEach(d => d.open = true)")
    videos = browser.evaluate(session, PLAY_ALL)
    assert [v["src"] for v in videos] == ["film.mp4", "clips/01_opening.mp4", "clips/01_opening.take2.mp4",
                                          "clips/02_hostile.mp4", "clips/03_closing.mp4"]
    for video in videos:
        assert video["readyState"] >= 2 and video["width"] == 64 and video["error"] is None and video["played"], video
    card = browser.evaluate(session, "document.querySelector('#shot-opening').textContent")
    assert "the film uses take 1" in card and "edited by you" in card and "take 2" in card
