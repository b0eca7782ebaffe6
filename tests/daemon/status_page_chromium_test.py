#!/usr/bin/env python3
"""tests/daemon/status_page_chromium_test.py: proves that a real browser renders the daemon's
status page as intended: headless Chromium loads the page that shoal-status-demo serves on
127.0.0.1 (a fixed snapshot with three peers: hot and up, warm and up, hot and partitioned).

How: `chromium --headless --screenshot` at 1200x800 must write a PNG of that size whose pixels
(decoded here with zlib alone) hold the hot and the warm peer colours and the partitioned grey,
i.e. the inline SVG was drawn; `chromium --dump-dom` must give a DOM with one <svg> and each
peer's label. Skipped (exit 77) when no Chromium is installed; it is not in scripts/setup.sh's
default packages because it is big:  sudo apt-get install --no-install-recommends chromium

    status_page_chromium_test.py <path to shoal-status-demo>
"""
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import zlib

SKIP = 77
PEERS = ["gw-kitchen-7c21", "gw-attic-9e03", "gw-garage-b2d8"]
WIDTH, HEIGHT = 1200, 800
# The renderer's colours (node/daemon/status_page.cpp): hot, warm, partitioned.
COLOURS = {"hot": (0xE8, 0x59, 0x0C), "warm": (0x1C, 0x7E, 0xD6), "partitioned": (0x86, 0x8E, 0x96)}


def find_chromium():
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


def decode_png(data):
    """(width, height, rows of RGB(A) bytes) of an 8-bit RGB or RGBA, non-interlaced PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG file"
    pos, idat, header = 8, b"", None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind = data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    width, height, depth, colour, _, _, interlace = header
    assert depth == 8 and colour in (2, 6) and interlace == 0, f"unexpected PNG format {header}"
    bpp = 3 if colour == 2 else 4
    raw = zlib.decompress(idat)
    stride = width * bpp
    assert len(raw) == height * (stride + 1), "PNG data size does not match its header"
    rows, prev = [], bytearray(stride)
    for y in range(height):
        kind = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        if kind == 1:
            for i in range(bpp, stride):
                line[i] = (line[i] + line[i - bpp]) & 0xFF
        elif kind == 2:
            line = bytearray((a + b) & 0xFF for a, b in zip(line, prev))
        elif kind == 3:
            for i in range(stride):
                left = line[i - bpp] if i >= bpp else 0
                line[i] = (line[i] + ((left + prev[i]) >> 1)) & 0xFF
        elif kind == 4:
            for i in range(stride):
                a = line[i - bpp] if i >= bpp else 0
                b = prev[i]
                c = prev[i - bpp] if i >= bpp else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[i] = (line[i] + pred) & 0xFF
        rows.append(line)
        prev = line
    return width, height, bpp, rows


def count_colour(rows, bpp, rgb, tolerance=3):
    n = 0
    for line in rows:
        for x in range(0, len(line), bpp):
            if all(abs(line[x + k] - rgb[k]) <= tolerance for k in range(3)):
                n += 1
    return n


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    demo = sys.argv[1]
    chromium = find_chromium()
    if chromium is None:
        print("SKIP: Chromium is not installed (it is an optional test dependency, not in "
              "scripts/setup.sh's default list). Install it with:\n"
              "  sudo apt-get install --no-install-recommends chromium")
        return SKIP

    failures = []
    with tempfile.TemporaryDirectory(prefix="shoal-chromium-") as tmp:
        server = subprocess.Popen([demo, "0"], stdout=subprocess.PIPE, text=True)
        try:
            line = server.stdout.readline().strip()
            assert line.startswith("listening http://127.0.0.1:"), f"demo said {line!r}"
            url = line.split(" ", 1)[1]
            common = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                      "--no-first-run", "--disable-dev-shm-usage", f"--user-data-dir={tmp}/profile"]
            shot = os.path.join(tmp, "status.png")
            subprocess.run(common + [f"--screenshot={shot}", f"--window-size={WIDTH},{HEIGHT}", url],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120, check=False)
            dom = subprocess.run(common + ["--dump-dom", url], capture_output=True, text=True, timeout=120,
                                 check=False).stdout
        finally:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()

        # The DOM: one inline SVG, every peer's label, the partitioned state.
        if dom.count("<svg") != 1:
            failures.append(f"the DOM holds {dom.count('<svg')} <svg> elements, not 1")
        for peer in PEERS:
            if peer not in dom:
                failures.append(f"the DOM lacks peer {peer}")
        if "partitioned" not in dom:
            failures.append("the DOM does not say that a peer is partitioned")

        # The screenshot: the window's size, and the picture drawn in the tiers' colours.
        if not os.path.exists(shot):
            failures.append("Chromium wrote no screenshot")
        else:
            data = open(shot, "rb").read()
            print(f"screenshot: {len(data)} bytes")
            if len(data) < 10_000:
                failures.append(f"the screenshot is only {len(data)} bytes: a blank page?")
            width, height, bpp, rows = decode_png(data)
            if (width, height) != (WIDTH, HEIGHT):
                failures.append(f"the screenshot is {width}x{height}, not {WIDTH}x{HEIGHT}")
            for name, rgb in COLOURS.items():
                n = count_colour(rows, bpp, rgb)
                print(f"pixels in the {name} colour: {n}")
                if n < 100:
                    failures.append(f"only {n} pixels in the {name} colour: the SVG was not drawn")
            if os.environ.get("SHOAL_KEEP_SCREENSHOT"):
                shutil.copy(shot, os.environ["SHOAL_KEEP_SCREENSHOT"])

    for f in failures:
        print("FAIL:", f)
    if not failures:
        print("ok: the status page renders in headless Chromium with its SVG and every peer")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
