"""The README's screenshots: the first screen of a report.html and of an explain.html.

    python scripts/screenshots.py DEMO_DIR/report.html EXPLAIN_DIR/explain.html docs/img

Drives headless Chromium (Debian: apt-get install -y chromium) through tests/chromium.py;
the explain page is shot as it opens (its first prompt's largest-gap token selected).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from chromium import Chromium  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("report")
    p.add_argument("explain")
    p.add_argument("out_dir")
    p.add_argument("--width", type=int, default=1100)
    p.add_argument("--height", type=int, default=820, help="the report's first screen")
    p.add_argument("--explain-height", type=int, default=1280, help="the explain page: header, tokens and detail panel")
    args = p.parse_args()
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with Chromium() as browser:
        for name, html, height in (("report", args.report, args.height), ("explain", args.explain, args.explain_height)):
            page = browser.open(Path(html).resolve().as_uri(), width=args.width, height=height)
            if page.errors:
                raise SystemExit(f"{html}: {page.errors}")
            print(page.screenshot(out / f"{name}.png"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
