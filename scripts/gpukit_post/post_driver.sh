#!/bin/bash
# The post stage on the bench (issue 21): the kit's driver.sh phases plus the post ones, in one command.
#   bash gpukit_post/post_driver.sh PHASE [PHASE ...]        (from the repo root on the GPU machine, .gpukit carried)
# Every phase of .gpukit/kit/driver.sh works here (setup smi server:TAG doctor:TAG wfilm:TAG pack:N ...), plus:
#   postsetup                 node pack wanclip_post_bench -> ComfyUI's custom_nodes (before the server starts),
#                             the two post models (random weights, real shapes) into ComfyUI/models/, a fallback clip
#   postprobe:TAG:SECS[:VARIANTS]
#                             with the server up: post_probe.py times interp / upscale / both (1 cold + POST_WARM=3 warm
#                             each) on one 81-frame 832x480 clip (the baseline film's first shot if there is one, else
#                             an ffmpeg-made noise clip) until SECS seconds into this call; what earlier postprobes
#                             of this machine measured counts (a variant short of warm runs gets 1 cold + the rest).
#                             Each variant starts with POST /free (models unloaded): run it on the film's server.
#                             Results in res/postprobe_TAG/. POST_MAX_S=N: at most N seconds for this phase.
#   pfilm:TAG:ORDER           wanclip renders the post film (POST_YAML, default shots/tomato_egg_post.yaml: the pack's
#                             own if it has one, else gpukit_post/tomato_egg_post.yaml) with --post-order ORDER into
#                             film_TAG, measured like wfilm (same result file names, tag TAG).
#   postinfo:TAG              does the running server list the post nodes and models? (res/postinfo_TAG.json)
set -u
G=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
POST_ARGS=("$@"); set --
# the kit's driver without its closing phase loop: its variables (W, K, FF, SERVER, CALL0 ...) and phase_* functions
# shellcheck disable=SC1090
source <(sed '/^for ph in "\$@"; do$/,$d' "$PWD/.gpukit/kit/driver.sh")
declare -F phase_setup > /dev/null || { echo "post_driver: could not load .gpukit/kit/driver.sh"; exit 1; }
set -- "${POST_ARGS[@]}"
CN=$W/src/ComfyUI/custom_nodes/wanclip_post_bench
PM=$W/src/ComfyUI/models
read -r INTERP_MODEL UPSCALE_MODEL < <($PY "$G/post_names.py")

phase_postsetup() {
  [ -f "$W/.unpacked" ] || { log "postsetup: run setup first"; exit 1; }
  rm -rf "$CN"; cp -r "$G/wanclip_post_bench" "$CN"; rm -rf "$CN/__pycache__"
  log "postsetup: node pack in $CN ($(ls "$CN" | tr '\n' ' '))"
  if [ ! -f "$W/.post_models_done" ]; then
    t0=$(date +%s.%N)
    $PY "$G/build_post_models.py" "$PM" --interp "$INTERP_MODEL" --upscale "$UPSCALE_MODEL" > "$W/res/post_models.json" \
      2> "$W/res/post_models.err" || { cat "$W/res/post_models.err"; log "postsetup: model build failed"; exit 1; }
    sync; log "postsetup: models built in $(dt "$(date +%s.%N)" "$t0") s: $(tr '\n' ' ' < "$W/res/post_models.json")"
    touch "$W/.post_models_done"
  fi
  PYTHONPATH=$SITE_C $PY -c "
from spandrel import ModelLoader, __version__ as v
d = ModelLoader().load_from_file('$PM/upscale_models/$UPSCALE_MODEL')
print('spandrel', v, d.architecture.id, 'scale', d.scale, 'in', d.input_channels, 'tags', d.tags)" > "$W/res/post_spandrel.txt" 2>&1
  log "postsetup: $(tail -1 "$W/res/post_spandrel.txt")"
  if [ ! -f "$W/post_clip_gen.mp4" ]; then   # fallback probe clip: 81 frames of blurred noise, 832x480, 16 fps, h264 crf 19
    $PY -c "
import sys, numpy as np
rng = np.random.default_rng(21)
for i in range(81):
    f = rng.integers(0, 256, (120, 208, 3), dtype=np.uint8).repeat(4, 0).repeat(4, 1)
    sys.stdout.buffer.write(f.tobytes())" | "$FF" -hide_banner -loglevel error -nostdin -y -f rawvideo -pix_fmt rgb24 \
      -s 832x480 -r 16 -i - -c:v libx264 -crf 19 -pix_fmt yuv420p "$W/post_clip_gen.mp4"
    log "postsetup: fallback clip $(stat -c %s "$W/post_clip_gen.mp4" 2>&1) bytes"
  fi
}

phase_postinfo() {  # postinfo:TAG
  tag=${1:-p}
  $PY - "$SERVER" "$W/res/postinfo_$tag.json" <<'PYEOF' 2>&1 | tee -a "$L"
import json, sys, urllib.request
server, out = sys.argv[1], sys.argv[2]
ans = {}
for c in ("FrameInterpolationModelLoader", "FrameInterpolate", "UpscaleModelLoader", "ImageUpscaleWithModel", "ImageScale",
          "LoadVideo", "GetVideoComponents", "CreateVideo", "SaveVideo", "VHS_LoadVideo", "RIFE VFI"):
    try:
        ans[c] = json.loads(urllib.request.urlopen(f"{server}/object_info/{urllib.request.quote(c)}", timeout=20).read()).get(c)
    except Exception as e:  # noqa
        ans[c] = repr(e)
json.dump(ans, open(out, "w"), indent=1)
def opts(c):
    i = ans.get(c)
    if not isinstance(i, dict):
        return None
    spec = i["input"]["required"]["model_name"]
    return spec[1].get("options") if spec[0] == "COMBO" else spec[0]
print("postinfo:", {c: bool(isinstance(v, dict)) for c, v in ans.items()}, "interp models", opts("FrameInterpolationModelLoader"),
      "upscale models", opts("UpscaleModelLoader"))
PYEOF
}

phase_postprobe() {  # postprobe:TAG:SECS[:VARIANTS]
  tag=${1%%:*}; rest=${1#*:}; secs=${rest%%:*}; want=interp,upscale,both; [ "$rest" != "$secs" ] && want=${rest#*:}
  curl -s -m 5 -o /dev/null $SERVER/system_stats || { log "postprobe $tag: no server"; return; }
  todo=$($PY - "$W/res" "$want" "${POST_WARM:-3}" <<'PYEOF'
import glob, json, sys
res, want, warm = sys.argv[1], sys.argv[2].split(","), int(sys.argv[3])
cold, hot = {}, {}
for f in glob.glob(f"{res}/postprobe_*/post_probe.json"):
    for r in json.load(open(f))["results"]:
        if r.get("status") == "success" and r.get("ok"):
            d = cold if r.get("cold") else hot
            d[r["variant"]] = d.get(r["variant"], 0) + 1
todo = []
for v in want:   # a variant is measured once it has 1 cold and WARM warm runs in all, over this machine's postprobes
    need = max(0, warm - hot.get(v, 0))
    if need or not cold.get(v):
        todo.append(f"{v}:{need}")
print(",".join(todo))
PYEOF
)
  [ -z "$todo" ] && { log "postprobe $tag: all of $want already measured"; return; }
  clip=${POST_CLIP:-$(ls "$W"/film_w/clips/*.mp4 2>/dev/null | grep -v -E '[._-](i[0-9]|u[0-9])' | sort | head -1)}
  [ -z "$clip" ] && clip=$W/post_clip_gen.mp4
  dl=$($PY -c "import time;print(int(min($CALL0 + $secs, time.time() + ${POST_MAX_S:-100000})))")   # POST_MAX_S caps this phase
  phase_postinfo "$tag"
  log "postprobe $tag: variants $todo on $clip until +$secs s ($($PY -c "import time;print(int($dl-time.time()))") s left)"
  PYTHONPATH=$SITE_W $PY "$G/post_probe.py" $SERVER "$clip" "$W/res/postprobe_$tag" --comfy-out "$W/comfy_out" --ffmpeg "$FF" \
    --variants "$todo" --warm "${POST_WARM:-3}" --deadline "$dl" --interp-model "$INTERP_MODEL" \
    --upscale-model "$UPSCALE_MODEL" 2>&1 | tee -a "$L"
  curl -s -m 10 -o "$W/res/postprobe_${tag}/system_stats_after.json" $SERVER/system_stats
}

phase_pfilm() {  # pfilm:TAG:ORDER
  tag=${1%%:*}; order=${1#*:}; [ "$order" = "$1" ] && order=""
  F=$W/film_$tag; rm -rf "$F"
  cd "$W/src/wanclip"
  y=${POST_YAML:-shots/tomato_egg_post.yaml}
  if [ ! -f "$y" ]; then cp "$G/tomato_egg_post.yaml" "$y"; log "pfilm $tag: $y from gpukit_post"; fi
  log "pfilm $tag: $y sha1 $(sha1sum "$y" | cut -c1-12), $(grep -E '^ *post:' "$y" | tr '\n' ' ')"
  flag=()
  if [ -n "$order" ]; then
    if wcl render --help 2>&1 | grep -q -- "--post-order"; then flag=(--post-order "$order")
    else log "pfilm $tag: this wanclip has no --post-order: rendering its default order"; fi
  fi
  log "pfilm $tag: start ${flag[*]}"
  setsid $PY "$K/poll_file.py" "$F/film.mp4" "$W/res/wfilm_${tag}_filmseen.txt" 900 > /dev/null 2>&1 < /dev/null & pp=$!
  PYTHONPATH=$SITE_W:$SITE_C $PY "$K/timed.py" "$W/res/wfilm_${tag}_timed.json" "$W/res/wfilm_${tag}_events.jsonl" -- \
    $PY -m wanclip render "$y" "${flag[@]}" --server $SERVER --json --out "$F" | tee -a "$L"
  kill $pp 2>/dev/null
  cd "$R"
  curl -s -m 30 -o "$W/res/history_$tag.json" "$SERVER/history?max_items=200"
  cp "$F/ledger.json" "$W/res/wfilm_${tag}_ledger.json" 2>/dev/null; cp "$F/contact_sheet.png" "$W/res/contact_sheet_$tag.png" 2>/dev/null
  ls -lR "$F" > "$W/res/wfilm_${tag}_files.txt" 2>&1
  [ -f "$F/film.mp4" ] && measure_film "$F/film.mp4" "$tag"
  $PY -c "import os;print(repr(os.stat('$F/film.mp4').st_mtime))" > "$W/res/film_${tag}_mtime.txt" 2>&1
  $PY - "$G" "$FF" "$F" > "$W/res/wfilm_${tag}_clips.txt" 2>&1 <<'PYEOF'
import glob, json, os, sys
sys.path.insert(0, sys.argv[1])
from post_probe import probe_video
for c in sorted(glob.glob(os.path.join(sys.argv[3], "clips", "*.mp4")))[:60]:   # post clips show 161 frames @ 32 fps
    print(json.dumps({"clip": os.path.basename(c), **probe_video(sys.argv[2], c)}))
PYEOF
  log "pfilm $tag: $(wc -l < "$W/res/wfilm_${tag}_clips.txt") clips; $(tail -2 "$W/res/wfilm_${tag}_clips.txt" | tr '\n' ' ')"
}

for ph in "$@"; do
  name=${ph%%:*}; arg=${ph#*:}; [ "$arg" = "$ph" ] && arg=""
  declare -F "phase_$name" > /dev/null || { log "post_driver: no phase $name"; continue; }
  phase_$name $arg
done
log "post call done after $($PY -c "import time;print(round(time.time()-$CALL0,1))") s"
