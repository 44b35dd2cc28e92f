"""Images that go with a message: their kind (by their first bytes), size in pixels and
what they cost in prompt tokens.  Pure data, no I/O."""

from __future__ import annotations

import base64
import functools
import math
from dataclasses import dataclass

# The kinds OpenAI's chat API takes, by the bytes a file of that kind starts with.
_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)
EXTENSIONS = {"image/png": ".png", "image/jpeg": ".jpg", "image/gif": ".gif", "image/webp": ".webp"}

# The documented cost of an image at detail "auto"/"high": scaled to fit 2048 x 2048, then
# so its shorter side is at most 768, then 170 tokens per 512-pixel tile plus 85.
_BASE_TOKENS, _TILE_TOKENS, _TILE = 85, 170, 512
MOST_TOKENS = _BASE_TOKENS + _TILE_TOKENS * 8  # 2048 x 768: the costliest shape, for a size not known


def media_type(data: bytes) -> str | None:
    """image/png, image/jpeg, image/gif or image/webp from a file's first bytes; None for anything else."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return next((kind for signature, kind in _SIGNATURES if data.startswith(signature)), None)


def dimensions(data: bytes) -> tuple[int, int] | None:
    """Width and height in pixels, read from the image's header; None if it cannot be read."""
    kind = media_type(data)
    if kind == "image/png" and len(data) >= 24:
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    if kind == "image/gif" and len(data) >= 10:
        return int.from_bytes(data[6:8], "little"), int.from_bytes(data[8:10], "little")
    if kind == "image/webp" and len(data) >= 30:
        chunk = data[12:16]
        if chunk == b"VP8 ":
            return int.from_bytes(data[26:28], "little") & 0x3FFF, int.from_bytes(data[28:30], "little") & 0x3FFF
        if chunk == b"VP8L":
            bits = int.from_bytes(data[21:25], "little")
            return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
        if chunk == b"VP8X":
            return int.from_bytes(data[24:27], "little") + 1, int.from_bytes(data[27:30], "little") + 1
    if kind == "image/jpeg":
        return _jpeg_dimensions(data)
    return None


def _jpeg_dimensions(data: bytes) -> tuple[int, int] | None:
    """The size in a JPEG's start-of-frame segment, found by walking the segments before it."""
    index = 2
    while index + 9 <= len(data):
        if data[index] != 0xFF:
            return None
        marker = data[index + 1]
        if marker == 0xFF:  # fill byte
            index += 1
            continue
        if 0xD0 <= marker <= 0xD9 or marker == 0x01:  # markers with no length
            index += 2
            continue
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height = int.from_bytes(data[index + 5 : index + 7], "big")
            width = int.from_bytes(data[index + 7 : index + 9], "big")
            return width, height
        index += 2 + int.from_bytes(data[index + 2 : index + 4], "big")
    return None


def image_tokens(size: tuple[int, int] | None) -> int:
    """Prompt tokens an image of this size costs; the most an image can cost when the size is unknown."""
    if size is None or min(size) <= 0:
        return MOST_TOKENS
    width, height = size
    scale = min(1.0, 2048 / max(width, height))
    if min(width, height) * scale > 768:
        scale = 768 / min(width, height)
    tiles = math.ceil(width * scale / _TILE) * math.ceil(height * scale / _TILE)
    return _BASE_TOKENS + _TILE_TOKENS * tiles


@dataclass(frozen=True)
class Image:
    """An image that goes with a user message: a file's bytes, or a web address sent as it is."""

    name: str  # the file name or the address, as shown to the user
    data: bytes = b""
    url: str = ""  # for an image given by its address (then `data` is empty)

    @functools.cached_property
    def media_type(self) -> str:
        return media_type(self.data) or "" if self.data else ""

    @functools.cached_property
    def sha256(self) -> str:
        import hashlib  # loads OpenSSL: not worth it before an image is attached

        return hashlib.sha256(self.data).hexdigest()

    @functools.cached_property
    def sent_url(self) -> str:
        """What the request's image_url part carries: the address, or the bytes as a data URL."""
        if self.url:
            return self.url
        return f"data:{self.media_type};base64,{base64.b64encode(self.data).decode('ascii')}"

    @functools.cached_property
    def tokens(self) -> int:
        return image_tokens(dimensions(self.data) if self.data else None)

    @property
    def size(self) -> int:
        return len(self.data)

    def describe(self) -> str:
        """The name and, for a file, its size: `shot.png (120 KB)`."""
        return f"{self.name} ({size_text(self.size)})" if self.data else self.name


def from_data_url(url: str, name: str) -> Image:
    """An image from a `data:image/…;base64,` address; ValueError if it holds no image of a known kind."""
    header, _, payload = url.partition(",")
    if not header.startswith("data:") or not header.endswith(";base64"):
        raise ValueError("an image data URL must be base64")
    try:
        data = base64.b64decode(payload, validate=True)
    except ValueError:
        raise ValueError("an image data URL holds no valid base64") from None
    if media_type(data) is None:
        raise ValueError("an image data URL holds no PNG, JPEG, WEBP or GIF image")
    return Image(name, data)


def size_text(size: int) -> str:
    """A byte count as `ls -h` reckons it (1 KB = 1024 bytes): 900 B, 4.9 KB, 12 KB, 3.4 MB."""
    if size < 1024:
        return f"{size} B"
    amount, unit = (size / 1024, "KB") if size < 1024**2 else (size / 1024**2, "MB")
    return f"{amount:.1f} {unit}" if amount < 10 else f"{amount:.0f} {unit}"
