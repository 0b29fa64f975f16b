"""Class-colour keys and text boxes drawn onto images: the one legend behind `predict`'s pictures, the
demo's HUD and the training figures (which draw the same entries with matplotlib).

A key is laid out once per image size (`legend_layout`: pure arithmetic on the font's measured text
widths, so tests can check what goes where), rendered once with Pillow into a small RGBA patch and
then alpha-blended onto each image with numpy. The demo thus pays a few microseconds per frame for its
key, not a text rendering. numpy and Pillow only.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgeseg.overlay import Overlay, class_colors

__all__ = [
    "Legend",
    "LegendEntry",
    "LegendLayout",
    "MaskPictures",
    "Patch",
    "font_px_over",
    "legend_entries",
    "legend_layout",
    "render_legend",
    "text_patch",
]

_PANEL = (24, 24, 24)  # the key's background: dark, so white text reads over any image
_PANEL_ALPHA = 190  # of 255: the image stays faintly visible under a key drawn over it
_OUTLINE = (200, 200, 200)  # swatch frames: a black swatch stays visible on the dark panel
_TEXT = (255, 255, 255)


@dataclass(frozen=True)
class LegendEntry:
    """One line of a key: a class name and its RGB colour; `colour` None for a class that is drawn
    uncoloured (class 0 on overlays), whose swatch is an empty, crossed-out frame."""

    name: str
    colour: tuple[int, int, int] | None


def legend_entries(
    names: Sequence[str], *, background: str = "black", ignored: str | None = None
) -> list[LegendEntry]:
    """The key of classes `names` (ids 0..N-1) in `class_colors`' colours.

    Args:
        names: the class names, in id order.
        background: how class 0 is drawn: "black" as in `colorize` and `Overlay.colour_mask`, or
            "clear" as in `Overlay.blend`, which leaves it uncoloured.
        ignored: a name for white pixels (ignored or unknown ids, as `colorize` draws them); None
            leaves them out of the key.
    """
    if background not in ("black", "clear"):
        raise ValueError(f"background must be 'black' or 'clear'; got {background!r}")
    colours = class_colors(len(names))
    entries = [
        LegendEntry(str(name), None if i == 0 and background == "clear" else _rgb(colours[i]))
        for i, name in enumerate(names)
    ]
    if ignored is not None:
        entries.append(LegendEntry(ignored, (255, 255, 255)))
    return entries


def _rgb(colour: np.ndarray) -> tuple[int, int, int]:
    return int(colour[0]), int(colour[1]), int(colour[2])


@functools.lru_cache(maxsize=16)
def _font(px: int) -> Any:
    """Pillow's bundled font at `px` pixels (its fixed-size bitmap font where Pillow lacks FreeType
    or is older than 10.1; the layouts measure whichever font they get)."""
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=px)
    except TypeError:  # Pillow < 10.1: no size argument
        return ImageFont.load_default()


def _text_width(font: Any, text: str) -> int:
    return math.ceil(font.getlength(text))


def _line_height(font: Any) -> int:
    ascent, descent = font.getmetrics()
    return int(ascent + descent)


@dataclass(frozen=True)
class LegendLayout:
    """Where a key's parts go, in pixels of the key's own box (x right, y down; boxes are
    (x0, y0, x1, y1) with x1, y1 excluded). Entries fill columns top to bottom, left to right."""

    entries: tuple[LegendEntry, ...]
    font_px: int
    size: tuple[int, int]  # (width, height) of the whole key
    swatches: tuple[tuple[int, int, int, int], ...]
    labels: tuple[tuple[int, int], ...]  # top-left of each name's text


def legend_layout(entries: Sequence[LegendEntry], font_px: int, max_height: int) -> LegendLayout:
    """Lay out `entries` in rows of `font_px` text, in as few columns as keep the key within
    `max_height` pixels (one row per column at least)."""
    font = _font(font_px)
    pad = max(2, font_px // 3)
    row = max(_line_height(font), font_px) + pad
    n = len(entries)
    rows = max(1, min(n, (max_height - pad) // row))
    columns = math.ceil(n / rows) if n else 0
    rows = math.ceil(n / columns) if n else 0  # balanced columns
    side = max(4, font_px - 2)
    swatches, labels = [], []
    x = pad
    for c in range(columns):
        column = entries[c * rows : (c + 1) * rows]
        for r, _ in enumerate(column):
            y = pad + r * row
            top = y + (row - pad - side) // 2
            swatches.append((x, top, x + side, top + side))
            labels.append((x + side + pad, y))
        x += side + pad + max(_text_width(font, e.name) for e in column) + 2 * pad
    size = (x - pad if columns else 2 * pad, pad + rows * row)
    return LegendLayout(tuple(entries), font_px, size, tuple(swatches), tuple(labels))


class Patch:
    """A small RGBA picture (`rgb` HxWx3 uint8 in some channel order, `alpha` HxW uint8) to blend
    onto images; the blend's image-independent terms are computed once, here."""

    def __init__(self, rgb: np.ndarray, alpha: np.ndarray) -> None:
        self.rgb, self.alpha = rgb, alpha
        a = alpha[:, :, None].astype(np.uint16)
        self._pre = rgb.astype(np.uint16) * a + 128  # the patch's share, +128 to round
        self._keep = np.repeat(255 - a, 3, axis=2)  # the image's weight, of 255

    @property
    def size(self) -> tuple[int, int]:
        return self.rgb.shape[1], self.rgb.shape[0]

    def paste(self, image: np.ndarray, x: int, y: int) -> None:
        """Blend onto `image` (HxWx3 uint8, same channel order) in place, top-left at (x, y); the parts
        outside the image are cut off."""
        h, w = image.shape[:2]
        x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + self.rgb.shape[1], w), min(y + self.rgb.shape[0], h)
        if x0 >= x1 or y0 >= y1:
            return
        region = image[y0:y1, x0:x1]
        part = np.s_[y0 - y : y1 - y, x0 - x : x1 - x]
        acc = np.multiply(region, self._keep[part], dtype=np.uint16)
        acc += self._pre[part]
        acc += acc >> 8  # (v + (v >> 8)) >> 8 == round(v / 255) here, without a division
        acc >>= 8
        region[...] = acc


def _canvas(size: tuple[int, int]) -> tuple[Any, Any]:
    from PIL import Image, ImageDraw

    img = Image.new("RGBA", size, (*_PANEL, _PANEL_ALPHA))
    return img, ImageDraw.Draw(img)


def _patch(img: Any, order: str) -> Patch:
    rgba = np.asarray(img)
    rgb = rgba[:, :, 2::-1] if order == "bgr" else rgba[:, :, :3]
    return Patch(np.ascontiguousarray(rgb), np.ascontiguousarray(rgba[:, :, 3]))


def render_legend(layout: LegendLayout, order: str = "rgb") -> Patch:
    """The key of `layout` as a patch: swatches and white names on a dark, slightly see-through
    panel."""
    img, draw = _canvas(layout.size)
    font = _font(layout.font_px)
    for entry, box, label in zip(layout.entries, layout.swatches, layout.labels, strict=True):
        x0, y0, x1, y1 = box
        fill = None if entry.colour is None else (*entry.colour, 255)
        draw.rectangle((x0, y0, x1 - 1, y1 - 1), fill=fill, outline=(*_OUTLINE, 255))
        if entry.colour is None:  # "no colour": the crossed-out box of drawing programs
            draw.line((x0, y1 - 1, x1 - 1, y0), fill=(*_OUTLINE, 255))
        draw.text(label, entry.name, font=font, fill=(*_TEXT, 255))
    return _patch(img, order)


class _Glyphs:
    """One font size's characters, each rasterised once (Pillow) and then set side by side with
    numpy: the demo's HUD changes ten times a second, and Pillow's text rendering of its lines cost
    more than the rest of a frame's drawing."""

    def __init__(self, px: int) -> None:
        self.font = _font(px)
        self.height = _line_height(self.font)
        self.space = max(self.font.getlength(" "), 0.3 * px)  # the font's own space reads as none
        self._cache: dict[str, tuple[np.ndarray, int, float]] = {}
        self._lines: dict[str, np.ndarray] = {}

    def _glyph(self, char: str) -> tuple[np.ndarray, int, float]:
        """(alpha, x offset from the pen, advance) of `char`."""
        glyph = self._cache.get(char)
        if glyph is None:
            from PIL import Image, ImageDraw

            x0, _, x1, _ = self.font.getbbox(char)
            left = min(0, math.floor(x0))
            img = Image.new("L", (max(1, math.ceil(x1) - left), self.height), 0)
            ImageDraw.Draw(img).text((-left, 0), char, font=self.font, fill=255)
            advance = self.space if char == " " else self.font.getlength(char)
            glyph = self._cache[char] = (np.asarray(img), left, advance)
        return glyph

    def line(self, text: str) -> np.ndarray:
        """`text`'s coverage (HxW uint8, 0..255); the last lines drawn are kept, since most of the
        HUD's lines are the same from one refresh to the next."""
        cached = self._lines.pop(text, None)
        if cached is None:
            cached = np.zeros((self.height, math.ceil(sum(self._glyph(c)[2] for c in text)) + 2), np.uint8)
            pen = 0.0
            for char in text:
                a, left, advance = self._glyph(char)
                gx = round(pen) + left
                x0, x1 = max(gx, 0), min(gx + a.shape[1], cached.shape[1])
                if x0 < x1:
                    region = cached[:, x0:x1]
                    np.maximum(region, a[:, x0 - gx : x1 - gx], out=region)  # neighbours' edges overlap
                pen += advance
            if len(self._lines) >= 64:
                self._lines.pop(next(iter(self._lines)))
        self._lines[text] = cached  # most recent last
        return cached


@functools.lru_cache(maxsize=8)
def _glyphs(px: int) -> _Glyphs:
    return _Glyphs(px)


@functools.lru_cache(maxsize=1)
def _over_panel() -> tuple[np.ndarray, np.ndarray]:
    """(RGB, alpha) of white text of coverage 0..255 laid over the panel: 256-entry tables."""
    t = np.arange(256, dtype=np.float64) / 255
    panel = _PANEL_ALPHA / 255 * (1 - t)
    alpha = t + panel
    rgb = (255 * t[:, None] + np.asarray(_PANEL, np.float64) * panel[:, None]) / alpha[:, None]
    return np.rint(rgb).astype(np.uint8), np.rint(alpha * 255).astype(np.uint8)


def text_patch(lines: Sequence[str], font_px: int, order: str = "rgb") -> Patch:
    """Lines of white text on the same dark panel as the keys (the demo's HUD)."""
    glyphs = _glyphs(font_px)
    pad = max(2, font_px // 3)
    row = glyphs.height + max(1, pad // 2)
    drawn = [glyphs.line(line) for line in lines]
    text = np.zeros(
        (2 * pad + row * len(lines), max((d.shape[1] for d in drawn), default=0) + 2 * pad), np.uint8
    )
    for i, d in enumerate(drawn):
        text[pad + i * row : pad + i * row + d.shape[0], pad : pad + d.shape[1]] = d
    rgb, alpha = _over_panel()
    return Patch(np.take(rgb[:, ::-1] if order == "bgr" else rgb, text, axis=0), np.take(alpha, text))


def _scaled(height: int, per: float, lo: int, hi: int) -> int:
    return int(min(hi, max(lo, round(height / per))))


def font_px_over(height: int) -> int:
    """The font size of text drawn over an image `height` pixels high (the demo's key and HUD):
    1/36 of the height, 9..28 px, so the text keeps its share of any frame (10 px at 360, 20 at 720)."""
    return _scaled(height, 36, 9, 28)


class Legend:
    """A class-colour key sized to each image it is drawn on, rendered once per image size.

    Args:
        entries: the key's lines (`legend_entries`).
        order: the channel order of the images ("rgb" or "bgr").
        max_share: the most of an image's height the key may take when drawn over it (`draw`); more
            columns when the entries need it. A key that would still cover more than a quarter of
            the image, or half its width, is not drawn over it (a thumbnail-sized frame).
    """

    def __init__(self, entries: Sequence[LegendEntry], *, order: str = "rgb", max_share: float = 0.5) -> None:
        if order not in ("rgb", "bgr"):
            raise ValueError(f"order must be 'rgb' or 'bgr'; got {order!r}")
        self.entries, self.order, self.max_share = tuple(entries), order, float(max_share)
        self._patches: dict[tuple[int, int], Patch] = {}

    def layout(self, width: int, height: int, *, beside: bool = False) -> LegendLayout:
        """The key's layout for an image of `width` x `height`: drawn over it (`font_px_over`, at most
        `max_share` of the height) or `beside` it (font 1/24 of the height, 10..28 px, up to the full
        height)."""
        if beside:
            return legend_layout(self.entries, _scaled(height, 24, 10, 28), max(height, 1))
        return legend_layout(self.entries, font_px_over(height), max(1, int(height * self.max_share)))

    def _patch(self, width: int, height: int, beside: bool) -> Patch:
        key = (width, height) if not beside else (-width, -height)
        patch = self._patches.get(key)
        if patch is None:
            if len(self._patches) > 8:  # a stream of many sizes: keep the cache bounded
                self._patches.clear()
            patch = self._patches[key] = render_legend(self.layout(width, height, beside=beside), self.order)
        return patch

    def draw(self, image: np.ndarray, margin: int | None = None) -> np.ndarray:
        """Draw the key over `image` (HxWx3 uint8) in its bottom-right corner, in place (unless it would
        cover too much of it); returns `image`."""
        h, w = image.shape[:2]
        patch = self._patch(w, h, beside=False)
        m = max(2, h // 80) if margin is None else margin
        pw, ph = patch.size
        if pw * ph > w * h / 4 or pw > w / 2:
            return image
        patch.paste(image, max(0, w - pw - m), max(0, h - ph - m))
        return image

    def beside(self, image: np.ndarray) -> np.ndarray:
        """A new image: `image` (HxWx3 uint8) at the top left, the key in a panel on its right (the
        picture grows in height where the key is taller than the image)."""
        h, w = image.shape[:2]
        patch = self._patch(w, h, beside=True)
        pw, ph = patch.size
        out = np.empty((max(h, ph), w + pw, 3), np.uint8)
        out[...] = _PANEL[::-1] if self.order == "bgr" else _PANEL
        out[:h, :w] = image
        patch.paste(out, w, 0)
        return out


class MaskPictures:
    """The pictures `predict` writes per image, by file suffix (`SUFFIXES`): "mask" the class ids as
    given, "color" the mask in class colours, "overlay" the
    colours over the image (class 0 uncoloured). With `legend` the two colour pictures carry the
    class key in a panel on their right; the image's own pixels stay the left W x H.

    Safe to call from several threads at once (each thread blends with its own `Overlay`, which keeps
    buffers between calls).
    """

    SUFFIXES = ("mask", "color", "overlay")

    def __init__(self, class_names: Sequence[str], alpha: float = 0.5, *, legend: bool = True) -> None:
        import threading

        self.num_classes, self.alpha = len(class_names), float(alpha)
        self._local = threading.local()
        self._keys = (
            {
                "color": Legend(legend_entries(class_names, background="black")),
                "overlay": Legend(legend_entries(class_names, background="clear")),
            }
            if legend
            else {}
        )

    def _overlay(self) -> Overlay:
        overlay = getattr(self._local, "overlay", None)
        if overlay is None:
            overlay = self._local.overlay = Overlay(self.num_classes, self.alpha)
        return overlay

    def __call__(self, image: np.ndarray, mask: np.ndarray) -> dict[str, np.ndarray]:
        """The pictures of `image` (HxWx3 RGB or HxW(x1) gray uint8) and its `mask` (HxW ids)."""
        overlay = self._overlay()
        out = {"mask": mask, "color": overlay.colour_mask(mask), "overlay": overlay.blend(image, mask)}
        for suffix, key in self._keys.items():
            out[suffix] = key.beside(out[suffix])
        return out
