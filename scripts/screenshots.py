"""The README's screenshots: the first screen of a report.html and of an explain.html.

    python scripts/screenshots.py DEMO_DIR/report.html EXPLAIN_DIR/explain.html docs/img

Drives headless Chromium (Debian: apt-get install -y chromium) through tests/chromium.py;
the explain page is shot with its largest-gap token selected, as it opens.
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
    p.add_argument("--height", type=int, default=820)
    args = p.parse_args()
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with Chromium() as browser:
        for name, html, scroll in (("report", args.report, None), ("explain", args.explain, "#prompt-0")):
            page = browser.open(Path(html).resolve().as_uri(), width=args.width, height=args.height)
            if scroll:
                page.evaluate(f"document.querySelector('{scroll}').scrollIntoView({{block: 'start'}})")
            if page.errors:
                raise SystemExit(f"{html}: {page.errors}")
            print(page.screenshot(out / f"{name}.png"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
