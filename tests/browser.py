"""What every results page must do in a real browser (tests/test_page.py, and the end-to-end test on a
pulled job): open from disk, load every audio element's metadata with the file's duration, decode
every image, reference nothing off the machine, log no console error; and its screenshot."""

from __future__ import annotations

import io
import re
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
import soundfile


def open_page(driver, page: Path) -> None:
    driver.get_log("browser")  # drain what earlier pages logged
    driver.set_window_size(1200, 900)
    driver.get(page.resolve().as_uri())


def check_page(driver, page: Path) -> dict:
    """The checks every page passes in the browser; returns what the page shows, for the layout's own checks."""
    from selenium.webdriver.support.ui import WebDriverWait

    # Every <audio> loads its metadata (preload="metadata"), and reports the file's duration.
    WebDriverWait(driver, 30, poll_frequency=0.2).until(lambda d: d.execute_script(
        "return [...document.querySelectorAll('audio')].every(a => a.readyState >= 1 || a.error)"))
    audio = driver.execute_script(
        "return [...document.querySelectorAll('audio')].map(a => ({src: a.currentSrc, duration: a.duration,"
        " error: a.error && a.error.code, preload: a.getAttribute('preload'), controls: a.controls,"
        " type: a.querySelector('source') && a.querySelector('source').type}))")
    for a in audio:
        assert a["error"] is None, a
        assert a["preload"] == "metadata" and a["controls"] and a["type"] == "audio/ogg", a
        path = Path(unquote(urlsplit(a["src"]).path))
        assert path.parent in (page.parent, page.parent / "samples"), a
        assert a["duration"] == pytest.approx(soundfile.info(str(path)).duration, abs=0.1), a
    # Every image decodes.
    images = driver.execute_script(
        "return [...document.images].map(i => ({src: i.getAttribute('src'), ok: i.complete && i.naturalWidth > 0,"
        " alt: i.alt}))")
    assert images and all(i["ok"] and i["alt"] for i in images), images
    # Nothing leaves the machine: every reference is a relative path to a file in the folder.
    refs = driver.execute_script(
        "return [...document.querySelectorAll('[src],[href]')]"
        ".map(e => e.getAttribute('src') || e.getAttribute('href'))")
    for ref in refs:
        assert not re.match(r"^(https?:)?//", ref, re.I), ref
        if ref.startswith(("data:", "#")):
            continue
        assert not urlsplit(ref).scheme and not ref.startswith("/"), ref
        assert (page.parent / unquote(ref)).is_file(), ref
    assert not re.search(r"https?://", page.read_text(), re.I), "the page names an http(s) URL"
    # No console errors (a missing file, a failed decode, a script error would show here).
    severe = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert not severe, severe
    return {
        "audio": [Path(unquote(urlsplit(a["src"]).path)).name for a in audio],
        "images": [i["src"] for i in images],
        "pieces": driver.execute_script("return [...document.querySelectorAll('.piece h3')].map(h => h.textContent)"),
        "columns": driver.execute_script(
            "return [...document.querySelectorAll('table.quality thead th')].map(t => t.textContent)"),
        "text": driver.execute_script("return document.body.innerText"),
    }


def screenshot(driver, path: Path, top: int | None = None) -> Path:
    """The whole page at 1200 px wide (the window as tall as the document), downscaled to stay small;
    with `top`, only the page's first `top` pixels are kept in the file (a README's picture)."""
    from PIL import Image, ImageStat

    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1200, height + 200)  # the window's frame takes some of its height
    inner = driver.execute_script("return window.innerHeight")
    driver.set_window_size(1200, height + (height + 200 - inner))
    shot = Image.open(io.BytesIO(driver.get_screenshot_as_png())).convert("RGB")
    assert shot.height >= height * 0.95  # the whole document, not the first screen
    if top is not None:
        shot = shot.crop((0, 0, shot.width, min(top, shot.height)))
    small = shot.resize((600, round(shot.height * 600 / shot.width)), Image.LANCZOS)
    small = small.quantize(colors=128, method=Image.Quantize.MEDIANCUT)  # a palette PNG: a fraction of the bytes
    path.parent.mkdir(parents=True, exist_ok=True)
    small.save(path, optimize=True)
    # Not blank: the page's text, images and colours make a varied picture.
    gray = Image.open(path).convert("L")
    assert ImageStat.Stat(gray).stddev[0] > 15 and len(gray.getcolors(256) or []) > 32
    return path
