"""Record the golden ffmpeg commands of ``tests/stitch_golden_cases.py`` with the code of commit e80e706,
the last one that built graphs with ffmpeg-python (issue 18 replaced it with ``wanclip.stitch.filtergraph``;
``tests/test_stitch_golden.py`` checks that today's code builds exactly these commands).

Run once, against that commit's sources, with a venv that still has ffmpeg-python::

    git archive e80e706 src | tar -x -C /tmp/wanclip-e80e706
    PYTHONPATH=/tmp/wanclip-e80e706/src python scripts/record_stitch_golden.py

It refuses to run against today's code (it would only record what it then checks).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from stitch_golden_cases import GOLDEN, Api, build  # noqa: E402


def old_api() -> Api:
    from wanclip.media import ClipInfo
    from wanclip.stitch import core, pieces  # only e80e706 has these (core.py built with ffmpeg-python)
    from wanclip.stitch.contact_sheet import thumb_picks, thumb_size

    return Api(ClipInfo, core.Cut, core.plan_stitch, pieces.layout, pieces.piece_argv, pieces.Encoder,
               thumb_picks, thumb_size)


def main() -> None:
    import wanclip

    if Path(wanclip.__file__).resolve().is_relative_to(ROOT):
        sys.exit("run this against commit e80e706's sources (see the docstring), not this tree")
    GOLDEN.mkdir(parents=True, exist_ok=True)
    for name, got in build(old_api()).items():
        (GOLDEN / f"{name}.json").write_text(json.dumps(got, indent=1) + "\n", encoding="utf-8")
    print(f"recorded {len(list(GOLDEN.glob('*.json')))} cases into {GOLDEN}")


if __name__ == "__main__":
    main()
