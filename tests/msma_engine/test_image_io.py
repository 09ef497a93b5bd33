"""Tests for msma_engine.image_io: every odd file a user may hand the engine."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import skimage.data
from PIL import Image, ImageOps

from msma_engine.errors import ImageError
from msma_engine.image_io import MAX_PIXELS, apply_exif_orientation, load_image, load_image_array, to_cv2_affine
from shared_data import PHOTOS



@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return skimage.data.astronaut()


class TestFormats:
    @pytest.mark.parametrize("ext,kwargs,tol", [
        ("png", {}, 0.0), ("tif", {}, 0.0), ("webp", {"lossless": True}, 0.0), ("jpg", {"quality": 95}, 4.0),
    ])
    def test_rgb_round_trip(self, tmp_path, astronaut, ext, kwargs, tol):
        path = tmp_path / f"a.{ext}"
        Image.fromarray(astronaut).save(path, **kwargs)
        img = load_image(path)
        assert img.pixels.shape == astronaut.shape and img.pixels.dtype == np.uint8
        assert np.abs(img.pixels.astype(float) - astronaut).mean() <= tol
        assert img.path == path and img.original_mode == "RGB" and img.original_size == (512, 512)

    @pytest.mark.parametrize("name", ["obama", "biden"])
    def test_real_portraits(self, name):
        path = PHOTOS / f"{name}_official_portrait.jpg"
        if not path.exists():
            pytest.skip(f"{path} not present")
        img = load_image(path)
        assert img.pixels.ndim == 3 and img.pixels.shape[2] == 3 and img.pixels.dtype == np.uint8
        assert img.pixels.shape[1::-1] == img.original_size

    def test_grayscale(self, tmp_path, astronaut):
        gray = np.asarray(Image.fromarray(astronaut).convert("L"))
        Image.fromarray(gray).save(tmp_path / "g.png")
        img = load_image(tmp_path / "g.png")
        assert img.original_mode == "L"
        for c in range(3):
            np.testing.assert_array_equal(img.pixels[..., c], gray)

    def test_palette(self, tmp_path, astronaut):
        pal = Image.fromarray(astronaut).convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
        pal.save(tmp_path / "p.png")
        img = load_image(tmp_path / "p.png")
        assert img.original_mode == "P"
        np.testing.assert_array_equal(img.pixels, np.asarray(pal.convert("RGB")))

    def test_rgba_composited_on_white(self, tmp_path):
        rgba = np.zeros((4, 4, 4), np.uint8)
        rgba[..., 0] = 200
        rgba[0, 0, 3] = 255   # opaque red-ish
        rgba[0, 1, 3] = 0     # transparent -> white
        rgba[0, 2, 3] = 128   # half
        Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
        px = load_image(tmp_path / "a.png").pixels
        np.testing.assert_array_equal(px[0, 0], [200, 0, 0])
        np.testing.assert_array_equal(px[0, 1], [255, 255, 255])
        np.testing.assert_allclose(px[0, 2], np.round(np.array([200, 0, 0]) * 128 / 255 + 255 * 127 / 255), atol=1)

    def test_16bit_gray_png(self, tmp_path):
        g = np.array([[0, 257, 32768], [65535, 1000, 12345]], np.uint16)
        Image.fromarray(g).save(tmp_path / "g16.png")
        img = load_image(tmp_path / "g16.png")
        assert img.original_mode.startswith("I;16")
        np.testing.assert_array_equal(img.pixels[..., 1], np.round(g / 257).astype(np.uint8))

    @pytest.mark.parametrize("ext", ["png", "tif"])
    def test_16bit_rgb(self, tmp_path, ext):
        import cv2  # Pillow cannot write 16-bit colour images; OpenCV can.

        rgb = np.random.default_rng(0).integers(0, 65536, (6, 7, 3)).astype(np.uint16)
        rgb[0, 0] = [0, 65535, 128]
        cv2.imwrite(str(tmp_path / f"c16.{ext}"), rgb[..., ::-1])
        img = load_image(tmp_path / f"c16.{ext}")
        np.testing.assert_array_equal(img.pixels, np.round(rgb / 257).astype(np.uint8))
        np.testing.assert_array_equal(img.pixels[0, 0], [0, 255, 0])

    def test_cmyk_jpeg(self, tmp_path, astronaut):
        Image.fromarray(astronaut).convert("CMYK").save(tmp_path / "c.jpg", quality=95)
        img = load_image(tmp_path / "c.jpg")
        assert img.original_mode == "CMYK" and img.pixels.shape == astronaut.shape
        assert np.abs(img.pixels.astype(float) - astronaut).mean() < 6.0

    def test_tiny_image(self, tmp_path):
        Image.new("RGB", (20, 20), (10, 20, 30)).save(tmp_path / "t.png")
        px = load_image(tmp_path / "t.png").pixels
        assert px.shape == (20, 20, 3) and (px == [10, 20, 30]).all()


class TestOrientation:
    def test_exif_orientation_6_rotates(self, tmp_path, astronaut):
        stored = astronaut[:, :300]  # non-square so the rotation shows in the shape
        exif = Image.Exif()
        exif[0x0112] = 6
        Image.fromarray(stored).save(tmp_path / "r.jpg", exif=exif, quality=95)
        img = load_image(tmp_path / "r.jpg")
        assert img.original_size == (300, 512)
        assert img.pixels.shape == (300, 512, 3)
        # Orientation 6: the stored image must be turned 90 degrees clockwise for display.
        expected = np.rot90(stored, k=-1)
        assert np.abs(img.pixels.astype(float) - expected).mean() < 4.0
        assert np.abs(img.pixels.astype(float) - np.rot90(stored, k=1)).mean() > 20.0

    @pytest.mark.parametrize("orientation", range(1, 9))
    def test_matches_pillow(self, astronaut, orientation):
        stored = astronaut[:200:3, :150:2]
        pil = Image.fromarray(stored)
        exif = pil.getexif()
        exif[0x0112] = orientation
        pil.info["exif"] = exif.tobytes()
        expected = np.asarray(ImageOps.exif_transpose(pil))
        np.testing.assert_array_equal(apply_exif_orientation(stored, orientation), expected)


class TestErrors:
    def test_missing(self, tmp_path):
        with pytest.raises(ImageError, match=r"nope\.jpg: file not found"):
            load_image(tmp_path / "nope.jpg")

    def test_folder(self, tmp_path):
        with pytest.raises(ImageError, match="folder"):
            load_image(tmp_path)

    def test_empty(self, tmp_path):
        (tmp_path / "e.png").write_bytes(b"")
        with pytest.raises(ImageError, match=r"e\.png: file is empty"):
            load_image(tmp_path / "e.png")

    def test_text_file_named_jpg(self, tmp_path):
        (tmp_path / "notes.jpg").write_text("this is not a photo\n" * 20)
        with pytest.raises(ImageError, match=r"notes\.jpg: not an image"):
            load_image(tmp_path / "notes.jpg")

    def test_truncated_jpeg(self, tmp_path, astronaut):
        Image.fromarray(astronaut).save(tmp_path / "full.jpg", quality=90)
        data = (tmp_path / "full.jpg").read_bytes()
        (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
        with pytest.raises(ImageError, match=r"cut\.jpg: truncated or corrupt"):
            load_image(tmp_path / "cut.jpg")

    @staticmethod
    def _png_header_only(path: Path, width: int, height: int) -> None:
        """A PNG whose header claims ``width``×``height`` (the pixel data is a stub)."""
        def chunk(kind: bytes, body: bytes) -> bytes:
            return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
        path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16))
                         + chunk(b"IEND", b""))

    @pytest.mark.parametrize("side", [15_000, 30_000])
    def test_huge(self, tmp_path, side):
        assert side * side > MAX_PIXELS
        self._png_header_only(tmp_path / "huge.png", side, side)
        before = Image.MAX_IMAGE_PIXELS
        with pytest.raises(ImageError, match=r"huge\.png: image is .*(megapixels|too large)"):
            load_image(tmp_path / "huge.png")
        assert Image.MAX_IMAGE_PIXELS == before

    def test_above_pillow_default_limit_accepted(self, tmp_path):
        # 100 MP exceeds Pillow's own 89 MP warning limit; the header is fine, the data is a stub.
        self._png_header_only(tmp_path / "big.png", 10_000, 10_000)
        with pytest.raises(ImageError, match="truncated or corrupt"):
            load_image(tmp_path / "big.png")


class TestArrays:
    def test_uint8_gray(self):
        px = load_image_array(np.full((3, 4), 7, np.uint8)).pixels
        assert px.shape == (3, 4, 3) and (px == 7).all()

    def test_uint16_rgb(self):
        a = np.array([[[0, 257, 65535]]], np.uint16)
        np.testing.assert_array_equal(load_image_array(a).pixels, [[[0, 1, 255]]])

    def test_float_unit_and_255(self):
        np.testing.assert_array_equal(load_image_array(np.full((1, 1, 3), 0.5)).pixels, [[[128] * 3]])
        np.testing.assert_array_equal(load_image_array(np.full((1, 1, 3), 200.0)).pixels, [[[200] * 3]])

    def test_rgba(self):
        a = np.zeros((1, 2, 4), np.uint8)
        a[0, 0, 3] = 255
        np.testing.assert_array_equal(load_image_array(a).pixels, [[[0, 0, 0], [255, 255, 255]]])

    @pytest.mark.parametrize("bad,match", [
        (np.zeros((3, 4, 2), np.uint8), r"got shape \(3, 4, 2\)"),
        (np.zeros((0, 4, 3), np.uint8), "zero size"),
        (np.full((2, 2, 3), np.nan), "NaN"),
        (np.zeros((2, 2, 3), np.complex64), "unsupported image dtype complex64"),
    ])
    def test_bad_arrays(self, bad, match):
        with pytest.raises(ImageError, match=match):
            load_image_array(bad, name="frame")


def test_to_cv2_affine_identity_and_scale():
    np.testing.assert_allclose(to_cv2_affine(np.eye(2, 3)), np.eye(2, 3))
    # Doubling about the corner: pixel centre 0.5 -> 1.0, i.e. OpenCV index 0 -> 0.5.
    np.testing.assert_allclose(to_cv2_affine(np.array([[2.0, 0, 0], [0, 2.0, 0]]))[:, 2], [0.5, 0.5])


def test_alpha_compositing_memory_is_bounded(tmp_path):
    """Issue 14.5: a 14000² RGBA PNG peaked at 8 GB (full-size float32 copies while compositing).

    NumPy reports its allocations to tracemalloc; the peak while loading a 2000² RGBA PNG must
    stay near the one uint8 result (12 MB), not several float32 images (the old code: ~150 MB).
    """
    import tracemalloc

    side = 2000
    row = np.random.default_rng(0).integers(0, 256, (side, 4), dtype=np.uint8)
    rgba = np.broadcast_to(row, (side, side, 4)).copy()  # rows repeat: a small PNG, fast to write
    rgba[:100, :100, 3] = 0
    Image.fromarray(rgba, "RGBA").save(tmp_path / "big.png", compress_level=1)
    del rgba
    a = row[:, 3:] / 255.0
    expected_row = np.round(row[:, :3] * a + 255.0 * (1 - a)).astype(np.uint8)
    tracemalloc.start()
    try:
        pixels = load_image(tmp_path / "big.png").pixels
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert np.all(pixels[:100, :100] == 255)
    assert np.array_equal(pixels[100:], np.broadcast_to(expected_row, (side - 100, side, 3)))
    assert peak < 3 * pixels.nbytes, f"peak {peak / 1e6:.0f} MB for a {pixels.nbytes / 1e6:.0f} MB image"
