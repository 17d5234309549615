"""Small seed images for the decoder's fuzz target, one per code path worth reaching: JPEG
(baseline, 4:2:0 and 4:4:4, grayscale, progressive, optimised tables, restart markers, CMYK),
PNG (every colour type, 1/2/4/8/16-bit, palette with tRNS), BMP (1/8/24/32-bit) and GIF
(single frame, transparent, interlaced, animated). All made here with Pillow from synthetic
pixels, plus, when a photo is given, a small crop of it re-encoded (the pixels of a real
photo give the JPEG coder realistic coefficients). Every file stays far below the fuzz
target's 64 KiB input limit.

    python csrc/fuzz/make_seeds.py OUT_DIR [--photo some.jpg]

Needs Pillow (a test dependency: the project's .venv has it). Nothing written here is
committed: seeds are made into a temporary folder for each run (csrc/fuzz/run_fuzz.sh).
"""
import argparse
import io
from pathlib import Path

import numpy as np
from PIL import Image


def synthetic(h, w, seed):
    """Smooth gradients plus noise and a hard edge: both low and high frequencies."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([x * 255 // max(w - 1, 1), y * 255 // max(h - 1, 1), (x + y) * 127 // max(h + w - 2, 1)], -1)
    base[h // 2:, : w // 3] = 255 - base[h // 2:, : w // 3]
    noise = rng.integers(-20, 21, size=base.shape)
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def encode(img, fmt, **kw):
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def seeds(photo=None):
    rgb = Image.fromarray(synthetic(24, 32, 1))
    odd = Image.fromarray(synthetic(13, 17, 2))  # sizes that are not multiples of 8/16
    sources = {"synth": rgb, "odd": odd}
    if photo is not None:
        with Image.open(photo) as im:
            im = im.convert("RGB")
            side = min(im.size)
            sources["photo"] = im.crop((0, 0, side, side)).resize((40, 40), Image.BILINEAR)

    out = {}
    for name, im in sources.items():
        out[f"{name}_baseline444.jpg"] = encode(im, "JPEG", quality=90, subsampling=0)
        out[f"{name}_baseline420.jpg"] = encode(im, "JPEG", quality=75, subsampling=2)
        out[f"{name}_progressive420.jpg"] = encode(im, "JPEG", quality=75, progressive=True, subsampling=2)
        out[f"{name}_progressive444.jpg"] = encode(im, "JPEG", quality=95, progressive=True, subsampling=0)
    out["synth_gray.jpg"] = encode(rgb.convert("L"), "JPEG", quality=80)
    out["synth_gray_progressive.jpg"] = encode(rgb.convert("L"), "JPEG", quality=80, progressive=True)
    out["synth_optimized422.jpg"] = encode(rgb, "JPEG", quality=60, optimize=True, subsampling=1)
    out["synth_restart.jpg"] = encode(rgb, "JPEG", quality=70, restart_marker_blocks=2)
    out["synth_progressive_restart.jpg"] = encode(rgb, "JPEG", quality=70, progressive=True,
                                                  restart_marker_rows=1)
    out["synth_cmyk.jpg"] = encode(rgb.convert("CMYK"), "JPEG", quality=80)

    out["rgb8.png"] = encode(rgb, "PNG")
    out["rgba8.png"] = encode(rgb.convert("RGBA"), "PNG")
    out["gray8.png"] = encode(rgb.convert("L"), "PNG")
    out["gray_alpha8.png"] = encode(rgb.convert("LA"), "PNG")
    out["gray16.png"] = encode(rgb.convert("L").convert("I;16"), "PNG")
    out["gray1.png"] = encode(rgb.convert("1"), "PNG")
    for bits in (2, 4):
        out[f"palette{bits}.png"] = encode(rgb.quantize(1 << bits), "PNG", bits=bits)
    pal = rgb.quantize(16)
    out["palette_trns.png"] = encode(pal, "PNG", transparency=3)
    out["rgb_trns.png"] = encode(rgb, "PNG", transparency=(10, 20, 30))
    out["odd_rgb8.png"] = encode(odd, "PNG", optimize=True)

    out["rgb24.bmp"] = encode(rgb, "BMP")
    out["rgba32.bmp"] = encode(rgb.convert("RGBA"), "BMP")
    out["palette8.bmp"] = encode(rgb.quantize(200), "BMP")
    out["gray8.bmp"] = encode(rgb.convert("L"), "BMP")
    out["mono1.bmp"] = encode(rgb.convert("1"), "BMP")
    out["odd_rgb24.bmp"] = encode(odd, "BMP")

    out["single.gif"] = encode(rgb, "GIF")
    out["transparent.gif"] = encode(rgb.quantize(32), "GIF", transparency=5)
    out["interlaced.gif"] = encode(rgb, "GIF", interlace=True)
    frames = [Image.fromarray(synthetic(24, 32, s)).quantize(64) for s in (3, 4, 5)]
    out["animated.gif"] = encode(frames[0], "GIF", save_all=True, append_images=frames[1:],
                                 duration=50, loop=0, disposal=2)
    out["odd.gif"] = encode(odd, "GIF")
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--photo", type=Path, help="a JPEG photo to crop a 40x40 seed from")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    made = seeds(args.photo)
    for name, data in made.items():
        assert len(data) < 65536, name
        (args.out / name).write_bytes(data)
    print(f"make_seeds: {len(made)} seeds, {sum(map(len, made.values()))} bytes, in {args.out}")


if __name__ == "__main__":
    main()
