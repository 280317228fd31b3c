#!/usr/bin/env python3
"""SSIM and PSNR of a result against independent references: the one definition that the
reference tests (tests/it/reference_quality.rs) and the processing benchmark (bench/processing.py)
share, so a figure in a test and a figure in docs/benchmarks.md mean the same thing.

- PSNR: over R, G and B (alpha flattened onto white first), 8-bit, in dB; identical images are
  reported as 99.0.
- SSIM: Wang et al. 2004 as scikit-image and libvips's tools compute it: on luma (Rec.601
  weights), an 11x11 Gaussian window with sigma 1.5, K1 = 0.01, K2 = 0.03, mean over the valid
  windows.

References (every one from a full decode, EXIF orientation applied):
- `full`: Pillow decodes the whole source, LittleCMS converts it to sRGB through its embedded
  profile if it has one, and Lanczos3 (`Image.LANCZOS`, its support scaled
  with the reduction) resamples it to the result's size: what a result should approach when
  nothing is traded for speed. At the source's own size it is the colour conversion alone.
- `vips`: libvips's `thumbnail` to the result's size (shrink-on-load and all; an embedded
  profile converted to sRGB), the reference a user compares image servers against.

The colour conversions use the relative colorimetric intent. For matrix profiles (Adobe RGB,
Display P3) every intent gives the same result; for a v2 CMYK profile, LittleCMS's perceptual
intent towards Pillow's built-in sRGB (a v4 profile) also rescales the black point to the v4
perceptual reference medium, which neither libvips's default nor moxcms does: 28.7 dB from
either of them, against 51.8 dB with a v2 sRGB profile or the relative intent.

CLI (prints one JSON object):
  image_quality.py score OURS SOURCE [--against full,vips]
  image_quality.py compare A B
"""

import argparse
import io
import json
import sys

import numpy as np
from PIL import Image, ImageCms, ImageOps

Image.MAX_IMAGE_PIXELS = None  # the corpus is trusted; its photos are up to 8 MP


def rgb_array(im):
    """8-bit RGB as float64, alpha flattened onto white (as a viewer on a white page shows it)."""
    im = ImageOps.exif_transpose(im) if im.getexif().get(0x0112, 1) != 1 else im
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        im = im.convert("RGBA")
        white = Image.new("RGBA", im.size, (255, 255, 255, 255))
        im = Image.alpha_composite(white, im)
    return np.asarray(im.convert("RGB"), dtype=np.float64)


def psnr(a, b):
    mse = float(np.mean((a - b) ** 2))
    return 99.0 if mse == 0 else 10 * np.log10(255.0**2 / mse)


def _gaussian_filter(x, sigma=1.5, radius=5):
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    taps /= taps.sum()
    # "valid" separable convolution: rows, then columns, as sums of shifted slices.
    h, w = x.shape
    rows = sum(t * x[:, i : w - 2 * radius + i] for i, t in enumerate(taps))
    return sum(t * rows[i : h - 2 * radius + i, :] for i, t in enumerate(taps))


def ssim(a, b):
    weights = np.array([0.299, 0.587, 0.114])
    x, y = a @ weights, b @ weights
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mx, my = _gaussian_filter(x), _gaussian_filter(y)
    sxx = _gaussian_filter(x * x) - mx * mx
    syy = _gaussian_filter(y * y) - my * my
    sxy = _gaussian_filter(x * y) - mx * my
    index = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
    return float(index.mean())


def metrics(a, b):
    if a.shape != b.shape:
        raise SystemExit(f"sizes differ: {a.shape[1]}x{a.shape[0]} vs {b.shape[1]}x{b.shape[0]}")
    return {"ssim": round(ssim(a, b), 5), "psnr": round(psnr(a, b), 2)}


def full(source, size):
    im = ImageOps.exif_transpose(Image.open(source))
    profile = im.info.get("icc_profile")
    if profile:
        im = ImageCms.profileToProfile(
            im, ImageCms.ImageCmsProfile(io.BytesIO(profile)), ImageCms.createProfile("sRGB"),
            renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC,
            outputMode="RGBA" if "A" in im.getbands() else "RGB")
    if im.mode not in ("RGB", "RGBA"):
        im = im.convert("RGBA" if "A" in im.getbands() else "RGB")
    return rgb_array(im.resize(size, Image.LANCZOS))


def vips(source, size):
    import pyvips  # only where asked: the benchmark's interpreter may have no pyvips

    # `thumbnail` fits inside (w, h); asking for the result's exact size with size="force" keeps
    # a rounding difference from making the two images differ by a pixel.
    options = {"height": size[1], "size": "force"}
    if "icc_profile" in Image.open(source).info:
        options.update(export_profile="srgb")
    im = pyvips.Image.thumbnail(source, size[0], **options)
    return rgb_array(Image.open(io.BytesIO(im.write_to_buffer(".png"))))


REFERENCES = {"full": full, "vips": vips}


def score(ours, source, against):
    mine = rgb_array(Image.open(ours))  # upright, as the references are
    size = (mine.shape[1], mine.shape[0])
    return {name: metrics(mine, REFERENCES[name](source, size)) for name in against}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("score", help="a result against references made from its source")
    s.add_argument("ours")
    s.add_argument("source")
    s.add_argument("--against", default="full,vips")
    c = sub.add_parser("compare", help="two images of the same size")
    c.add_argument("a")
    c.add_argument("b")
    args = parser.parse_args()
    if args.command == "score":
        out = score(args.ours, args.source, args.against.split(","))
    else:
        out = metrics(rgb_array(Image.open(args.a)), rgb_array(Image.open(args.b)))
    json.dump(out, sys.stdout)
    print()


if __name__ == "__main__":
    main()
