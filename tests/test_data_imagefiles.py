"""Image files written byte by byte (PNG, BMP, GIF, TIFF header) and decoded by catdog's C
decoder: every format and colour layout the issue names, with exact expected pixels."""
import struct
import zlib

import numpy as np
import pytest


# ---- writers (pure Python; also imported by the other data tests) ---------------------------
def png_chunk(tag, data):
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)


def png_bytes(arr, bit_depth=8, palette=None):
    """arr: (h, w) gray, (h, w, 2) gray+alpha, (h, w, 3) RGB, (h, w, 4) RGBA; uint8 or uint16
    (bit_depth 16); palette: (k, 3) uint8 with arr (h, w) of indices."""
    arr = np.asarray(arr)
    if palette is not None:
        color_type = 3
    else:
        color_type = {2: 0, 3: 4 if arr.ndim == 3 and arr.shape[2] == 2 else 0}.get(arr.ndim, 0)
        if arr.ndim == 3:
            color_type = {1: 0, 2: 4, 3: 2, 4: 6}[arr.shape[2]]
    h, w = arr.shape[:2]
    dtype = ">u2" if bit_depth == 16 else "u1"
    rows = arr.astype(dtype).reshape(h, -1)
    raw = b"".join(b"\x00" + r.tobytes() for r in rows)
    out = b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, bit_depth, color_type, 0, 0, 0))
    if palette is not None:
        out += png_chunk(b"PLTE", np.asarray(palette, np.uint8).tobytes())
    return out + png_chunk(b"IDAT", zlib.compress(raw)) + png_chunk(b"IEND", b"")


def png_header_only(width, height):
    """A valid PNG signature + IHDR claiming width x height, then a first IDAT holding one
    empty row: a decompression bomb's header. The IDAT is there because stb's header scan
    reads up to the first IDAT (for a tRNS chunk): without it the file is merely truncated."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib.compress(b"\0")))


def bmp_bytes(rgb):
    """24-bit bottom-up BMP of (h, w, 3) uint8."""
    rgb = np.asarray(rgb, np.uint8)
    h, w = rgb.shape[:2]
    stride = (w * 3 + 3) & ~3
    rows = b""
    for y in range(h - 1, -1, -1):
        rows += rgb[y, :, ::-1].tobytes() + b"\x00" * (stride - w * 3)
    header = struct.pack("<2sIHHI", b"BM", 54 + len(rows), 0, 0, 54)
    info = struct.pack("<IiiHHIIiiII", 40, w, h, 1, 24, 0, len(rows), 2835, 2835, 0, 0)
    return header + info + rows


def gif_bytes(frames, palette):
    """GIF89a of frames (each (h, w) palette indices < 256), palette (256, 3) uint8.
    LZW with 9-bit codes only: a clear code every 254 literals keeps the table small."""
    h, w = frames[0].shape
    out = b"GIF89a" + struct.pack("<HHBBB", w, h, 0xF7, 0, 0) + np.asarray(palette, np.uint8).tobytes()
    for f in frames:
        out += b"\x21\xf9\x04\x00\x00\x00\x00\x00"  # graphic control
        out += b"\x2c" + struct.pack("<HHHHB", 0, 0, w, h, 0)
        codes = []
        for k, v in enumerate(np.asarray(f, np.uint8).ravel()):
            if k % 254 == 0:
                codes.append(256)
            codes.append(int(v))
        codes.append(257)
        bits = 0
        nbits = 0
        data = bytearray()
        for c in codes:
            bits |= c << nbits
            nbits += 9
            while nbits >= 8:
                data.append(bits & 0xFF)
                bits >>= 8
                nbits -= 8
        if nbits:
            data.append(bits & 0xFF)
        out += b"\x08"
        for i in range(0, len(data), 255):
            block = bytes(data[i:i + 255])
            out += bytes([len(block)]) + block
        out += b"\x00"
    return out + b"\x3b"


def tiff_bytes():
    """A minimal little-endian TIFF (1x1 RGB): a format catdog does not decode."""
    entries = [(256, 3, 1, 1), (257, 3, 1, 1), (258, 3, 1, 8), (259, 3, 1, 1), (262, 3, 1, 2),
               (273, 4, 1, 8 + 2 + 12 * 9 + 4), (277, 3, 1, 3), (278, 3, 1, 1), (279, 4, 1, 3)]
    ifd = struct.pack("<H", len(entries)) + b"".join(struct.pack("<HHII", *e) for e in entries) + b"\0\0\0\0"
    return b"II*\x00" + struct.pack("<I", 8) + ifd + b"\x10\x20\x30"


def rng_image(h, w, c=3, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(h, w, c), dtype=np.uint8)


# ---- tests ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def engine():
    import catdog  # noqa: F401  (loads the libraries)
    from catdog import _engine

    return _engine


def test_png_rgb_rgba_gray_palette_exact(engine):
    rgb = rng_image(7, 5)
    assert np.array_equal(engine.decode_image(png_bytes(rgb)), rgb)
    rgba = rng_image(7, 5, 4, seed=1)
    assert np.array_equal(engine.decode_image(png_bytes(rgba)), rgba[..., :3])  # alpha dropped
    gray = rng_image(6, 4, 1, seed=2)[..., 0]
    assert np.array_equal(engine.decode_image(png_bytes(gray)), np.repeat(gray[..., None], 3, axis=2))
    ga = rng_image(6, 4, 2, seed=3)
    assert np.array_equal(engine.decode_image(png_bytes(ga)), np.repeat(ga[..., :1], 3, axis=2))
    pal = rng_image(256, 1, 3, seed=4)[:, 0]
    idx = rng_image(5, 6, 1, seed=5)[..., 0]
    assert np.array_equal(engine.decode_image(png_bytes(idx, palette=pal)), pal[idx])


def test_png_16bit_keeps_high_byte(engine):
    v = np.random.default_rng(6).integers(0, 65536, size=(4, 5, 3)).astype(np.uint16)
    got = engine.decode_image(png_bytes(v, bit_depth=16))
    assert np.array_equal(got, (v >> 8).astype(np.uint8))


def test_bmp_exact(engine):
    rgb = rng_image(5, 7, seed=7)
    assert np.array_equal(engine.decode_image(bmp_bytes(rgb)), rgb)


def test_gif_first_frame(engine):
    pal = rng_image(256, 1, 3, seed=8)[:, 0]
    f0 = rng_image(9, 30, 1, seed=9)[..., 0]
    f1 = rng_image(9, 30, 1, seed=10)[..., 0]
    assert np.array_equal(engine.decode_image(gif_bytes([f0, f1], pal)), pal[f0])


@pytest.mark.parametrize("name,data", [
    ("empty", b""),
    ("text", b"this is not an image, just text named .jpg\n" * 3),
    ("tiff", tiff_bytes()),
    ("huge_header", png_header_only(30000, 30000)),
    ("truncated_png", png_bytes(rng_image(40, 40))[:60]),
])
def test_bad_bytes_are_value_errors(engine, name, data):
    with pytest.raises(ValueError):
        engine.decode_image(data)


def test_huge_header_refused_before_allocating(engine):
    import resource

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(ValueError):  # stb itself refuses > 2^30 bytes
        engine.decode_image(png_header_only(30000, 30000))
    with pytest.raises(ValueError, match="limit"):  # catdog's pixel limit (default 2^26)
        engine.decode_image(png_header_only(20000, 15000))
    with pytest.raises(ValueError, match="limit"):
        engine.decode_image(png_bytes(rng_image(20, 20)), max_pixels=399)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert after - before < 100_000  # KiB: nothing near the 2.7 GB such an image would take
