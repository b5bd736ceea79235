"""Take the README screenshot: start the studio, run a real separation in headless chromium, save
a full-page PNG (palette-quantised to stay small).

    python -m studio.screenshot --mix MIX.wav --query QUERY.wav [--gt GT.wav] --out docs/studio.png

Uses the registry the studio would use (``AUDIO_STUDIO_MODELS`` or ``assets/models``).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--mix", required=True)
    p.add_argument("--query", required=True)
    p.add_argument("--gt", default=None)
    p.add_argument("--out", default=str(ROOT / "docs" / "studio.png"))
    p.add_argument("--width", type=int, default=1280)
    p.add_argument("--colors", type=int, default=256, help="palette size of the saved PNG")
    args = p.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from PIL import Image
    from playwright.sync_api import sync_playwright

    from tests.studio.conftest import CHROMIUM, CHROMIUM_ARGS, start_studio, stop_process
    from tests.studio.helpers import open_tab, upload

    tmp = Path(tempfile.mkdtemp(prefix="studio-shot-"))
    # the studio's real limits (start_studio's defaults are the tests' small ones)
    proc, url, _log = start_studio(tmp, {"AUDIO_STUDIO_MAX_SECONDS": "900", "AUDIO_STUDIO_MAX_UPLOAD_MB": "200"})
    try:
        with sync_playwright() as pw:
            b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = b.new_page(viewport={"width": args.width, "height": 900})
            page.set_default_timeout(180_000)
            page.goto(url)
            page.wait_for_selector("button[role=tab]")
            open_tab(page, "Separate")
            upload(page, "sep-mix", args.mix)
            upload(page, "sep-query", args.query)
            if args.gt:
                upload(page, "sep-gt", args.gt)
            page.locator("#sep-run").click()
            page.wait_for_selector("#sep-timeline .js-plotly-plot")
            page.wait_for_timeout(1500)
            raw = tmp / "raw.png"
            page.screenshot(path=str(raw), full_page=True)
            print(page.locator("#sep-summary").inner_text())
            b.close()
    finally:
        stop_process(proc)
    img = Image.open(raw).convert("RGB").quantize(colors=args.colors, method=Image.Quantize.MEDIANCUT)
    img.save(args.out, optimize=True)
    print(f"wrote {args.out} ({Path(args.out).stat().st_size / 1024:.0f} KB, {img.size[0]}x{img.size[1]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
