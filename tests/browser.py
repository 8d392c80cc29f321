"""Open a Snakemake HTML report in headless Chromium, click through it as a reader would, and
report what is on screen. Used by the report test and by hand:

    python tests/browser.py report.html Figures "Figure 3HL" --screenshot shot.png

The report is a single-page app without URLs for its views, so a copy of it gets a small script
that clicks the menu entry, then the first link of the row whose text is given, and then writes
what the page shows (images with their decoded sizes, iframes, visible text) into a <pre> element
that ``--dump-dom`` returns.
"""
from __future__ import annotations

import argparse
import html
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

PROBE = """<script>
(function () {
  const clickText = (sel, text) => {
    const el = [...document.querySelectorAll(sel)].find(e => e.textContent.trim() === text);
    if (el) { el.click(); }
    return !!el;
  };
  const report = (found) => {
    const out = document.createElement("pre");
    out.id = "ecgfm-probe";
    const images = [...document.querySelectorAll("img")].map(e => ({
      src: (e.currentSrc || e.src).slice(0, 30), width: e.naturalWidth, height: e.naturalHeight,
      shown: e.getBoundingClientRect().width}));
    const frames = [...document.querySelectorAll("iframe")].map(f => {
      let text = "";
      try { text = f.contentDocument.body.innerText; } catch (err) { text = "(unreadable: " + err + ")"; }
      return {shown: f.getBoundingClientRect().width, text: text.slice(0, 4000)};
    });
    out.textContent = JSON.stringify({found: found, images: images, frames: frames,
                                      text: document.body.innerText.slice(0, 4000)});
    document.body.appendChild(out);
  };
  setTimeout(() => {
    const menu = clickText("a", %(menu)s);
    setTimeout(() => {
      const row = [...document.querySelectorAll("tr")].find(e => e.textContent.trim() === %(row)s);
      if (row && row.querySelector("a")) { row.querySelector("a").click(); }
      setTimeout(() => report({menu: menu, row: !!row}), 1500);
    }, 700);
  }, 1000);
})();
</script>"""


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def show(report: Path, menu: str, row: str, workdir: Path, screenshot: Path | None = None) -> dict:
    """Click ``menu`` then the row ``row`` of the report; return what the page shows."""
    exe = chromium()
    if exe is None:
        raise FileNotFoundError("no chromium on PATH (Debian: apt-get install chromium)")
    source = Path(report).read_text()
    cut = source.rfind("</body>")
    page = Path(workdir) / "report-probe.html"
    page.write_text(source[:cut] + PROBE % {"menu": json.dumps(menu), "row": json.dumps(row)} + source[cut:])
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--allow-file-access-from-files",
             "--virtual-time-budget=8000", "--window-size=1400,1000"]
    dom = subprocess.run(["timeout", "120", exe, *flags, "--dump-dom", page.as_uri()], capture_output=True,
                         text=True, check=False)
    if screenshot is not None:
        subprocess.run(["timeout", "120", exe, *flags, f"--screenshot={screenshot}", page.as_uri()],
                       capture_output=True, check=False)
    match = re.search(r'<pre id="ecgfm-probe">(.*?)</pre>', dom.stdout, re.DOTALL)
    if not match:
        raise RuntimeError(f"the report did not render (chromium exit {dom.returncode}): {dom.stderr[-2000:]}")
    return json.loads(html.unescape(match.group(1)))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", type=Path)
    parser.add_argument("menu")
    parser.add_argument("row")
    parser.add_argument("--screenshot", type=Path)
    args = parser.parse_args(argv)
    out = show(args.report, args.menu, args.row, args.report.resolve().parent, args.screenshot)
    json.dump(out, sys.stdout, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
