"""Time the post stage's graphs on a running ComfyUI: per variant 1 cold run + N warm runs.

usage: post_probe.py SERVER CLIP OUTDIR --comfy-out DIR [--ffmpeg FF] [--variants interp,upscale,both[:WARM]]
                     [--warm 3] [--deadline EPOCH] [--fps 16] [--interp-model N] [--upscale-model N]
                     [--scale-method bicubic]
Stdlib only. The clip is uploaded under a new name for every run, so ComfyUI's cache re-executes
everything from LoadVideo on while the model loaders stay cached: a warm run is what each later shot
of a film costs. Before each variant's cold run the server is asked to unload its models and drop its
cache (POST /free), so the cold run includes loading that variant's models (page cache warm).
Times: execution_start -> execution_success from /history (server ms stamps), wall from POST to the
finished history entry, per-node seconds from the websocket 'executing' messages. Each output is
checked with ffmpeg (frames, fps, size). Writes OUTDIR/post_probe.json (+ ws_events.jsonl).
Graphs follow the post contract: load -> upscale (model, then ImageScale to the target size) ->
interpolate -> CreateVideo(fps * multiplier) -> SaveVideo(mp4, h264); node ids "load" and "save".
"""
from __future__ import annotations

import argparse
import base64
import json
import os
import re
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from post_names import default_names  # noqa: E402

EVENTS: list = []


def ws_listen(host: str, port: int, cid: str) -> None:
    try:
        s = socket.create_connection((host, port))
        key = base64.b64encode(os.urandom(16)).decode()
        s.sendall((f"GET /ws?clientId={cid} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                   f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        buf = b""
        while b"\r\n\r\n" not in buf:
            c = s.recv(4096)
            if not c:
                return
            buf += c
        buf = buf.split(b"\r\n\r\n", 1)[1]

        def need(n):
            nonlocal buf
            while len(buf) < n:
                c = s.recv(1 << 16)
                if not c:
                    raise EOFError
                buf += c
            out, buf = buf[:n], buf[n:]
            return out
        frag = b""
        while True:
            b0, b1 = need(2)
            op, ln = b0 & 0x0F, b1 & 0x7F
            if ln == 126:
                ln = struct.unpack(">H", need(2))[0]
            elif ln == 127:
                ln = struct.unpack(">Q", need(8))[0]
            mask = need(4) if b1 & 0x80 else None
            pay = need(ln)
            if mask:
                pay = bytes(p ^ mask[i % 4] for i, p in enumerate(pay))
            t = time.time()
            if op == 8:
                return
            if op == 9:
                m = os.urandom(4)
                s.sendall(bytes([0x8A, 0x80 | len(pay)]) + m + bytes(p ^ m[i % 4] for i, p in enumerate(pay)))
                continue
            if op in (0, 1):
                frag += pay
                if b0 & 0x80:
                    try:
                        msg = json.loads(frag.decode())
                        EVENTS.append((t, msg.get("type"), msg.get("data")))
                    except ValueError as e:
                        EVENTS.append((t, "bad", repr(e)))
                    frag = b""
    except Exception as e:  # noqa: BLE001 - a bench: record and go on
        EVENTS.append((time.time(), "ws_error", repr(e)))


class Server:
    def __init__(self, url: str):
        self.url = url.rstrip("/")

    def call(self, path: str, data=None, timeout=60):
        req = urllib.request.Request(self.url + path, data=None if data is None else json.dumps(data).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=timeout) as r:
            body = r.read()
        try:
            return json.loads(body or b"null")
        except ValueError:
            return body.decode(errors="replace")

    def upload(self, path: str, name: str) -> str:
        bnd = uuid.uuid4().hex
        data = open(path, "rb").read()
        body = b"".join([
            f"--{bnd}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"{name}\"\r\n"
            f"Content-Type: video/mp4\r\n\r\n".encode(), data, b"\r\n",
            f"--{bnd}\r\nContent-Disposition: form-data; name=\"overwrite\"\r\n\r\ntrue\r\n".encode(),
            f"--{bnd}\r\nContent-Disposition: form-data; name=\"type\"\r\n\r\ninput\r\n--{bnd}--\r\n".encode()])
        req = urllib.request.Request(self.url + "/upload/image", data=body,
                                     headers={"Content-Type": f"multipart/form-data; boundary={bnd}"})
        with urllib.request.urlopen(req, timeout=120) as r:
            ans = json.loads(r.read())
        return ans["name"] if not ans.get("subfolder") else f"{ans['subfolder']}/{ans['name']}"


def post_graph(video: str, prefix: str, *, interpolate: int, size: tuple[int, int] | None, fps: float,
               interp_model: str, upscale_model: str, scale_method: str) -> dict:
    """size: the upscaled (w, h), or None for no upscale."""
    g = {"load": {"class_type": "LoadVideo", "inputs": {"file": video}},
         "parts": {"class_type": "GetVideoComponents", "inputs": {"video": ["load", 0]}}}
    img = ["parts", 0]
    if size:
        g["upmodel"] = {"class_type": "UpscaleModelLoader", "inputs": {"model_name": upscale_model}}
        g["upscale"] = {"class_type": "ImageUpscaleWithModel", "inputs": {"upscale_model": ["upmodel", 0], "image": img}}
        g["fit"] = {"class_type": "ImageScale", "inputs": {"image": ["upscale", 0], "upscale_method": scale_method,
                                                            "width": size[0], "height": size[1], "crop": "disabled"}}
        img = ["fit", 0]
    if interpolate > 1:
        g["fimodel"] = {"class_type": "FrameInterpolationModelLoader", "inputs": {"model_name": interp_model}}
        g["interp"] = {"class_type": "FrameInterpolate", "inputs": {"model": ["fimodel", 0], "images": img,
                                                                    "multiplier": interpolate}}
        img = ["interp", 0]
    g["video"] = {"class_type": "CreateVideo", "inputs": {"images": img, "fps": fps * interpolate}}
    g["save"] = {"class_type": "SaveVideo", "inputs": {"video": ["video", 0], "filename_prefix": prefix,
                                                       "format": "mp4", "codec": "h264"}}
    return g


def wanclip_graph_maker(srv: Server):
    """wanclip's own post graphs (planning.postgraph, the post contract) when the wanclip on sys.path has them:
    -> (maker(video, prefix, mult, size, base) -> graph, output node id), or (None, why)."""
    try:
        from wanclip.planning import postgraph
        from wanclip.planning.post import PostJob
    except Exception as e:  # noqa: BLE001 - a bench: fall back to our own graphs
        return None, f"no wanclip postgraph ({e!r})"
    try:
        info = {}
        for c in postgraph.POST_CLASSES:
            try:
                got = srv.call(f"/object_info/{urllib.request.quote(c)}")
            except (urllib.error.URLError, OSError):
                got = None
            if isinstance(got, dict) and c in got:
                info[c] = got[c]
        nodes = postgraph.post_nodes(info)
    except Exception as e:  # noqa: BLE001
        return None, f"wanclip post_nodes failed ({e!r})"

    def make(video, prefix, mult, size, base):
        w, h = size or (base["width"], base["height"])
        job = PostJob(interpolate=mult, width=w, height=h, base_frames=base["frames"], base_fps=base["fps"],
                      base_width=base["width"], base_height=base["height"])
        return postgraph.post_graph(job, nodes, video, prefix)
    return (make, getattr(postgraph, "OUTPUT", "save")), repr(nodes)


def probe_video(ff: str, path: str) -> dict:
    crc = subprocess.run([ff, "-hide_banner", "-nostdin", "-i", path, "-map", "0:v:0", "-c", "copy", "-f", "framecrc", "-"],
                         capture_output=True, text=True)
    frames = sum(1 for ln in crc.stdout.splitlines() if ln.startswith("0,"))
    m = re.search(r"Video: .*?, (\d+)x(\d+)[, ].*?([\d.]+) fps", crc.stderr)
    out = {"frames": frames, "bytes": os.path.getsize(path)}
    if m:
        out.update(width=int(m.group(1)), height=int(m.group(2)), fps=float(m.group(3)))
    return out


def main() -> int:
    interp_name, upscale_name = default_names()
    ap = argparse.ArgumentParser()
    ap.add_argument("server")
    ap.add_argument("clip")
    ap.add_argument("outdir")
    ap.add_argument("--comfy-out", required=True)
    ap.add_argument("--ffmpeg", default="ffmpeg")
    ap.add_argument("--variants", default="interp,upscale,both")
    ap.add_argument("--warm", type=int, default=3)
    ap.add_argument("--deadline", type=float, default=time.time() + 3600)
    ap.add_argument("--fps", type=float, default=16.0)
    ap.add_argument("--multiplier", type=int, default=2)
    ap.add_argument("--upscale-factor", type=int, default=2)
    ap.add_argument("--interp-model", default=interp_name)
    ap.add_argument("--upscale-model", default=upscale_name)
    ap.add_argument("--scale-method", default="bicubic")
    ap.add_argument("--no-free", action="store_true", help="skip POST /free before each variant")
    ap.add_argument("--graphs", choices=("auto", "wanclip", "own"), default="auto",
                    help="auto: wanclip's planning.postgraph when importable (what the product sends), else our own")
    a = ap.parse_args()
    os.makedirs(a.outdir, exist_ok=True)
    base = probe_video(a.ffmpeg, a.clip)
    print("clip", json.dumps(base), flush=True)
    srv = Server(a.server)
    host, port = a.server.split("//")[1].rstrip("/").split(":")
    cid = uuid.uuid4().hex
    threading.Thread(target=ws_listen, args=(host, int(port), cid), daemon=True).start()
    time.sleep(0.5)
    up = (base["width"] * a.upscale_factor, base["height"] * a.upscale_factor)
    maker, why = (None, "own graphs asked for") if a.graphs == "own" else wanclip_graph_maker(srv)
    if maker is None and a.graphs == "wanclip":
        print("graphs: wanclip's asked for, but", why, flush=True)
        return 2
    print("graphs:", "wanclip planning.postgraph" if maker else "own", "-", why[:300], flush=True)
    kinds = {"interp": (a.multiplier, None), "upscale": (1, up), "both": (a.multiplier, up)}
    results, runs_left = [], True
    for spec in a.variants.split(","):   # NAME or NAME:WARM (this variant's own warm count)
        v, _, nw = spec.partition(":")
        warm = int(nw) if nw else a.warm
        mult, size = kinds[v]
        if not a.no_free:
            srv.call("/free", {"unload_models": True, "free_memory": True})
            time.sleep(1.5)
        last = None
        for r in range(1 + warm):
            est = (last or 60) * 1.2 + 5
            if time.time() + est > a.deadline:
                results.append({"variant": v, "run": r, "skipped": f"{a.deadline - time.time():.0f} s left"})
                runs_left = False
                break
            name = srv.upload(a.clip, f"post_{v}_{r}_{uuid.uuid4().hex[:6]}.mp4")
            src, out_id = "own", "save"
            if maker:
                try:
                    g, src, out_id = maker[0](name, f"postprobe/{v}_{r}", mult, size, base), "wanclip", maker[1]
                except Exception as e:  # noqa: BLE001 - e.g. unavailable(): measure our own graph instead
                    print(f"{v}: wanclip's post_graph refused ({e!r}); using our own", flush=True)
            if src == "own":
                g = post_graph(name, f"postprobe/{v}_{r}", interpolate=mult, size=size, fps=a.fps,
                               interp_model=a.interp_model, upscale_model=a.upscale_model, scale_method=a.scale_method)
            t_post = time.time()
            try:
                pid = srv.call("/prompt", {"prompt": g, "client_id": cid})["prompt_id"]
            except urllib.error.HTTPError as e:
                results.append({"variant": v, "run": r, "status": "rejected", "error": e.read().decode()[:4000]})
                print(f"{v} run {r}: rejected {results[-1]['error'][:800]}", flush=True)
                break
            h, state = None, "timeout"
            while time.time() < a.deadline:
                try:
                    hh = srv.call(f"/history/{pid}")
                except (urllib.error.URLError, OSError):
                    hh = {}
                st = (hh.get(pid) or {}).get("status") or {}
                if st.get("status_str") in ("success", "error"):
                    h, state = hh[pid], st["status_str"]
                    break
                time.sleep(0.1)
            t_done = time.time()
            rec = {"variant": v, "run": r, "cold": r == 0, "prompt_id": pid, "status": state, "post": t_post, "graph": src,
                   "classes": sorted({n["class_type"] for n in g.values()}),
                   "seen_done": t_done, "wall_s": round(t_done - t_post, 3), "frames_in": base["frames"],
                   "expect": {"frames": (base["frames"] - 1) * mult + 1, "fps": a.fps * mult,
                              "width": (size or (base["width"], base["height"]))[0],
                              "height": (size or (base["width"], base["height"]))[1]}}
            if h is None:
                try:
                    srv.call("/interrupt", {})
                except (urllib.error.URLError, OSError):
                    pass
                rec["note"] = "not done by the deadline: interrupted"
            else:
                msgs = h.get("status", {}).get("messages", [])
                ts = {m[0]: m[1].get("timestamp") for m in msgs}
                if ts.get("execution_start") and ts.get("execution_success"):
                    rec["exec_start"] = ts["execution_start"] / 1000
                    rec["exec_end"] = ts["execution_success"] / 1000
                    rec["exec_s"] = round(rec["exec_end"] - rec["exec_start"], 3)
                for m in msgs:
                    if m[0] in ("execution_error", "execution_interrupted"):
                        rec["error"] = {k: m[1].get(k) for k in ("node_id", "node_type", "exception_type", "exception_message")}
                        rec["traceback"] = "".join(m[1].get("traceback") or [])[-4000:]
                outs = [o for lst in (h.get("outputs", {}).get(out_id) or {}).values() if isinstance(lst, list)
                        for o in lst if isinstance(o, dict) and o.get("filename")]
                for o in outs[-1:]:
                    p = o.get("fullpath") or os.path.join(a.comfy_out, o.get("subfolder", ""), o["filename"])
                    rec["video"] = p
                    if os.path.isfile(p):
                        rec["got"] = probe_video(a.ffmpeg, p)
                        rec["ok"] = all(rec["got"].get(k) == rec["expect"][k] for k in ("frames", "width", "height")) and \
                            abs(rec["got"].get("fps", 0) - rec["expect"]["fps"]) < 0.01
            time.sleep(0.3)   # let the last 'executing' message arrive
            ev = [e for e in EVENTS if isinstance(e[2], dict) and e[2].get("prompt_id") == pid]
            ex = [(t, d.get("node")) for t, ty, d in ev if ty == "executing"]
            nodes: dict[str, float] = {}
            for (t0, n0), (t1, _) in zip(ex, ex[1:], strict=False):
                if n0 is not None:
                    nodes[n0] = round(nodes.get(n0, 0) + t1 - t0, 3)
            rec["node_s"] = nodes
            results.append(rec)
            last = rec["wall_s"]
            print(f"{v} run {r}{' (cold)' if r == 0 else ''}: {state} exec {rec.get('exec_s')} s wall {rec['wall_s']} s "
                  f"nodes { {k: t for k, t in nodes.items() if t >= 0.05} } got {rec.get('got')} ok {rec.get('ok')} "
                  f"{rec.get('error', '')}", flush=True)
            if state != "success":
                break
        if not runs_left:
            break
    json.dump({"server": a.server, "clip": a.clip, "base": base, "args": vars(a), "results": results},
              open(os.path.join(a.outdir, "post_probe.json"), "w"), indent=1)
    with open(os.path.join(a.outdir, "ws_events.jsonl"), "w") as f:
        for t, ty, d in EVENTS:
            if ty not in ("progress",):
                f.write(json.dumps({"t": t, "type": ty, "data": d}) + "\n")
    bad = [r for r in results if r.get("status") != "success" or not r.get("ok")]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
