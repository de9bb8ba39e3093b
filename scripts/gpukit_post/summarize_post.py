"""Print the post stage's bench tables from one lease's results.

usage: summarize_post.py RES_DIR [RES_DIR ...] [--json OUT]
RES_DIR: an unpacked res<N>.tar.gz of post_driver.sh (several: later ones win for the same file).
Tables: (1) per-shot post cost from postprobe_*/post_probe.json (cold, warm median, node split, peak GPU
memory from smi.csv); (2) the films (wfilm_<tag>_* files: w = without post, the pfilm tags with it):
time to film, prompts by kind and their order, post prompt cost on the server, last shot -> film.
"""
from __future__ import annotations

import glob
import json
import os
import statistics as st
import sys

POST_CLASSES = {"FrameInterpolate", "FrameInterpolationModelLoader", "ImageUpscaleWithModel", "RIFE VFI"}
SHOT_CLASSES = {"KSamplerAdvanced", "KSampler", "SamplerCustom", "SamplerCustomAdvanced", "WanImageToVideo"}


def files(dirs, pattern):
    seen = {}
    for d in dirs:
        for f in sorted(glob.glob(os.path.join(d, pattern))):
            seen[os.path.relpath(f, d)] = f
    return [seen[k] for k in sorted(seen)]


def load(dirs, name):
    fs = files(dirs, name)
    if not fs:
        return None
    try:
        return json.load(open(fs[-1]))
    except ValueError:
        return None


def smi_rows(dirs):
    rows = {}
    for f in files(dirs, "smi.csv"):
        for line in open(f):
            p = line.strip().split(",")
            if len(p) == 6 and p[0] != "t":
                try:
                    rows[float(p[0])] = (int(p[1]), float(p[3]), float(p[4]))
                except ValueError:
                    pass
    return sorted((t, *v) for t, v in rows.items())


def window(smi, t0, t1):
    return [r for r in smi if t0 <= r[0] <= t1]


def med(xs):
    xs = [x for x in xs if x is not None]
    return round(st.median(xs), 2) if xs else None


def fmt(x, nd=2):
    return "-" if x is None else (f"{x:.{nd}f}" if isinstance(x, float) else str(x))


def table(head, rows):
    w = [max(len(str(h)), *(len(str(r[i])) for r in rows)) if rows else len(str(h)) for i, h in enumerate(head)]
    print("  ".join(str(h).ljust(w[i]) for i, h in enumerate(head)))
    for r in rows:
        print("  ".join(str(c).ljust(w[i]) for i, c in enumerate(r)))


def post_cost(dirs, smi, out):
    recs, base = [], {}
    for f in files(dirs, "postprobe_*/post_probe.json"):
        d = json.load(open(f))
        recs += d["results"]
        base = d.get("base") or base
    if not recs:
        print("(no postprobe results)")
        return
    print(f"\n== Per-shot post cost (one clip of {base.get('frames')} frames {base.get('width')}x{base.get('height')} "
          f"@{base.get('fps')}; server clock; a cold run after POST /free, then warm runs) ==")
    rows, agg = [], {}
    for v in ("interp", "upscale", "both"):
        rs = [r for r in recs if r.get("variant") == v and r.get("status") == "success"]
        if not rs:
            continue
        cold = [r for r in rs if r.get("cold")]
        warm = [r for r in rs if not r.get("cold")]
        nodes = sorted({k for r in rs for k in r.get("node_s", {})})
        split = {k: med([r["node_s"].get(k) for r in warm]) for k in nodes}
        peaks = []
        for r in rs:
            if r.get("exec_start"):
                w = window(smi, r["exec_start"] - 0.2, r["exec_end"] + 0.2)
                before = window(smi, r["exec_start"] - 3, r["exec_start"])
                if w:
                    peaks.append((max(x[2] for x in w), min((x[2] for x in before), default=None),
                                  round(sum(1 for x in w if x[1] > 0) / len(w), 2)))
        got = (warm or cold)[-1].get("got", {})
        a = {"cold_s": cold[0].get("exec_s") if cold else None, "warm_median_s": med([r.get("exec_s") for r in warm]),
             "warm_range_s": [min(r["exec_s"] for r in warm), max(r["exec_s"] for r in warm)] if warm else None,
             "warm_wall_median_s": med([r.get("wall_s") for r in warm]), "n_warm": len(warm), "node_split_warm_s": split,
             "out": got, "all_ok": all(r.get("ok") for r in rs),
             "peak_gpu_mem_mib": max((p[0] for p in peaks), default=None),
             "gpu_mem_before_mib": min((p[1] for p in peaks if p[1] is not None), default=None),
             "gpu_busy_fraction_warm": med([p[2] for p in peaks[1:]])}
        fr = got.get("frames")
        a["warm_ms_per_output_frame"] = round(a["warm_median_s"] * 1000 / fr, 1) if fr and a["warm_median_s"] else None
        agg[v] = a
        rows.append([v, fmt(a["cold_s"]), fmt(a["warm_median_s"]), f"{a['n_warm']}" + (f" ({a['warm_range_s'][0]:.2f}-{a['warm_range_s'][1]:.2f})" if warm else ""),
                     " ".join(f"{k} {fmt(x)}" for k, x in split.items() if x and x >= 0.05),
                     f"{got.get('frames')}f {got.get('width')}x{got.get('height')} @{got.get('fps')}",
                     fmt(a["peak_gpu_mem_mib"], 0), fmt(a["gpu_busy_fraction_warm"]), "yes" if a["all_ok"] else "NO"])
    table(["graph", "cold s", "warm s", "warm n (range)", "warm node split s", "output", "peak GPU MiB", "GPU busy", "ok"], rows)
    for r in recs:
        if r.get("status") not in (None, "success") or r.get("skipped") or r.get("error"):
            print("  !", r.get("variant"), r.get("run"), r.get("status") or "", r.get("skipped") or "", r.get("error") or "")
    out["post_cost"] = agg


def classify(graph):
    classes = {n.get("class_type") for n in graph.values() if isinstance(n, dict)}
    if classes & POST_CLASSES:
        return "P"
    if classes & SHOT_CLASSES:
        return "S"
    return "?"


def films(dirs, smi, out):
    tags = sorted({os.path.basename(f)[len("wfilm_"):-len("_timed.json")] for f in files(dirs, "wfilm_*_timed.json")},
                  key=lambda t: (t != "w", t))
    if not tags:
        print("(no film results)")
        return
    print("\n== The 12-shot film, with and without post (each cold: server restarted, page cache dropped) ==")
    rows, res = [], {}
    for tag in tags:
        tw = load(dirs, f"wfilm_{tag}_timed.json")
        hist = load(dirs, f"history_{tag}.json") or {}
        film = load(dirs, f"film_{tag}.json") or {}
        seen = files(dirs, f"wfilm_{tag}_filmseen.txt")
        t_film = float(open(seen[-1]).read()) if seen else None
        ps = []
        for h in hist.values():
            msgs = {m[0]: m[1].get("timestamp") for m in h.get("status", {}).get("messages", [])}
            ps.append({"kind": classify(h["prompt"][2]), "n": h["prompt"][0], "start": (msgs.get("execution_start") or 0) / 1000,
                       "end": (msgs.get("execution_success") or msgs.get("execution_error") or 0) / 1000,
                       "status": h.get("status", {}).get("status_str")})
        ps.sort(key=lambda p: p["start"])
        shots = [p for p in ps if p["kind"] == "S"]
        posts = [p for p in ps if p["kind"] == "P"]
        order = "".join(p["kind"] for p in ps)
        span = (ps[0]["start"], ps[-1]["end"]) if ps else None
        w = window(smi, *span) if span else []
        r = {"rc": tw["rc"], "time_to_film_s": round(t_film - tw["start"], 2) if t_film else None,
             "wall_s": tw["wall_seconds"], "prompts": len(ps), "shots": len(shots), "posts": len(posts), "order": order,
             "shot_server_first_s": round(shots[0]["end"] - shots[0]["start"], 2) if shots else None,
             "shot_server_warm_median_s": med([p["end"] - p["start"] for p in shots[1:]]),
             "post_server_median_s": med([p["end"] - p["start"] for p in posts]),
             "post_server_total_s": round(sum(p["end"] - p["start"] for p in posts), 2) if posts else None,
             "last_prompt_done_to_film_s": round(t_film - ps[-1]["end"], 2) if t_film and ps else None,
             "last_shot_done_to_film_s": round(t_film - shots[-1]["end"], 2) if t_film and shots else None,
             "gpu_busy_fraction": round(sum(1 for x in w if x[1] > 0) / len(w), 3) if w else None,
             "peak_gpu_mem_mib": max((x[2] for x in w), default=None),
             "film": film, "statuses": sorted({p["status"] for p in ps if p["status"]})}
        res[tag] = r
    base = res.get("w", {}).get("time_to_film_s")
    for tag, r in res.items():
        d = round(r["time_to_film_s"] - base, 2) if base and r["time_to_film_s"] and tag != "w" else None
        rows.append([tag, r["rc"], fmt(r["time_to_film_s"]), fmt(d), f"{r['shots']}+{r['posts']}", r["order"][:40],
                     fmt(r["shot_server_first_s"]), fmt(r["shot_server_warm_median_s"]), fmt(r["post_server_median_s"]),
                     fmt(r["post_server_total_s"]), fmt(r["last_shot_done_to_film_s"]), fmt(r["last_prompt_done_to_film_s"]),
                     fmt(r["gpu_busy_fraction"]), f"{r['film'].get('frames', '-')}f {r['film'].get('banner', '')}"])
    table(["film", "rc", "to film s", "vs w s", "shots+posts", "order (S shot, P post)", "shot1 s", "shot warm s",
           "post s", "post total s", "last shot->film s", "last prompt->film s", "GPU busy", "film"], rows)
    print("  film w = shots/tomato_egg.yaml without post; the other tags = post_driver pfilm:TAG:ORDER (see driver log)")
    out["films"] = res


def main():
    args = sys.argv[1:]
    jout = None
    if "--json" in args:
        i = args.index("--json")
        jout = args[i + 1]
        del args[i:i + 2]
    if not args:
        print(__doc__)
        return 2
    smi = smi_rows(args)
    out = {}
    for f in files(args, "driver_*.log")[-1:]:
        gpu = [ln for ln in open(f, errors="replace") if "call start" in ln]
        if gpu:
            print("device:", gpu[0].split("gpu", 1)[-1].strip()[:160])
    post_cost(args, smi, out)
    films(args, smi, out)
    if jout:
        json.dump(out, open(jout, "w"), indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
