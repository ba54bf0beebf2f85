#!/usr/bin/env python3
"""Opens a slaw HTML report in headless Chromium and checks that it loads without console
errors and shows its figures. Standard library only. Usage:

    scripts/check_report.py REPORT.html SCREENSHOT.png

It runs Chromium twice: once dumping the DOM (which must hold the figures' <svg> elements and
the report's sections) with console logging on, once taking a full-page screenshot, which
must not be blank. Exit status 1 on any failure.
"""
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib

report, shot = sys.argv[1], sys.argv[2]
browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
if not browser:
    print("check_report: no chromium on PATH (apt-get install chromium)")
    sys.exit(1)
url = "file://" + os.path.abspath(report)
failures = []


def chromium(*extra):
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run(
            [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--no-first-run", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0",
             "--virtual-time-budget=5000", *extra, url],
            capture_output=True, text=True, timeout=120)


dom = chromium("--dump-dom")
if dom.returncode != 0:
    failures.append(f"chromium exited with {dom.returncode}: {dom.stderr[-2000:]}")
console = [l for l in dom.stderr.splitlines() if "CONSOLE" in l or "Uncaught" in l]
if console:
    failures.append("console messages:\n  " + "\n  ".join(console))
svgs = dom.stdout.count("<svg")
print(f"DOM: {len(dom.stdout)} characters, {svgs} inline SVG figures")
if svgs < 4:
    failures.append(f"only {svgs} figures in the page")
for section in ["Predictions for the next model size", "Fitted laws", "Figures", "Trials", "Sweep definition"]:
    if section not in dom.stdout:
        failures.append(f"section {section!r} missing")

page = chromium(f"--screenshot={os.path.abspath(shot)}", "--window-size=1400,5000", "--hide-scrollbars")
if not os.path.exists(shot):
    failures.append(f"no screenshot: {page.stderr[-2000:]}")
else:
    data = open(shot, "rb").read()
    width, height = struct.unpack(">II", data[16:24])
    # Decode enough of the PNG to count distinct pixel rows: a blank page has one.
    idat = b"".join(data[i + 8:i + 8 + struct.unpack(">I", data[i:i + 4])[0]]
                    for i in [m.start() - 4 for m in re.finditer(b"IDAT", data)])
    raw = zlib.decompress(idat)
    stride = len(raw) // height
    rows = {raw[r * stride + 1:(r + 1) * stride] for r in range(0, height, 7)}
    print(f"screenshot {shot}: {width}×{height}, {len(data)} bytes, {len(rows)} distinct sampled rows")
    if len(rows) < 50:
        failures.append("the screenshot looks blank")

if failures:
    print("FAILED:\n" + "\n".join(failures))
    sys.exit(1)
print("report loads with no console errors and shows its figures")
