"""Decoding uploads (seed 000 section 5 step 1) and turning them into backbone input."""

from __future__ import annotations


import cv2
import numpy as np
import pytest
from support.images import png, png_declaring

from anomalia.core.image import ImageDecodeError, ImageTooLargeError, decode_image, to_model_input
from anomalia.core.image_header import declared_size


def _colour_image() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(20, 30, 3), dtype=np.uint8)


def test_bgr_png_decodes_to_the_same_pixels():
    image = _colour_image()
    decoded = decode_image(png(image))
    assert decoded.dtype == np.uint8 and decoded.shape == (20, 30, 3)
    np.testing.assert_array_equal(decoded, image)


def test_bgra_drops_alpha_and_keeps_colour():
    image = _colour_image()
    alpha = np.full((20, 30, 1), 7, dtype=np.uint8)
    decoded = decode_image(png(np.concatenate([image, alpha], axis=2)))
    assert decoded.shape == (20, 30, 3)
    np.testing.assert_array_equal(decoded, image)


def test_gray_is_replicated_into_three_channels():
    gray = _colour_image()[:, :, 0]
    decoded = decode_image(png(gray))
    assert decoded.shape == (20, 30, 3)
    for channel in range(3):
        np.testing.assert_array_equal(decoded[:, :, channel], gray)


def test_sixteen_bit_png_is_scaled_to_eight_bits():
    values = np.array([[0, 257, 65535], [32896, 1000, 12850]], dtype=np.uint16)
    decoded = decode_image(png(values))
    assert decoded.dtype == np.uint8
    np.testing.assert_array_equal(decoded[:, :, 0], [[0, 1, 255], [128, 4, 50]])


def test_jpeg_decodes():
    ok, data = cv2.imencode(".jpg", np.full((16, 24, 3), 120, dtype=np.uint8))
    assert ok
    decoded = decode_image(data.tobytes())
    assert decoded.shape == (16, 24, 3)
    assert abs(int(decoded.mean()) - 120) <= 2


def test_empty_bytes_are_refused_with_the_seed_message():
    with pytest.raises(ImageDecodeError, match=r"^Archivo vacío\.$"):
        decode_image(b"")


@pytest.mark.parametrize("garbage", [b"not an image at all", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, bytes(range(256))])
def test_garbage_is_refused_with_the_seed_message(garbage):
    with pytest.raises(ImageDecodeError, match=r"^No se pudo decodificar la imagen\.$"):
        decode_image(garbage)


def test_header_pixel_limit_refuses_a_declared_giant_before_decoding():
    """The file only declares 100 000² pixels: a decoder would fail on it, so the size error
    proves the header was checked first, without allocating anything."""
    bomb = png_declaring(100_000, 100_000)
    assert len(bomb) < 64
    assert declared_size(bomb) == (100_000, 100_000)
    with pytest.raises(ImageTooLargeError, match="100000x100000"):
        decode_image(bomb, max_pixels=50_000_000)
    with pytest.raises(ImageDecodeError):
        decode_image(bomb)  # without a limit it is simply not decodable


def test_pixel_limit_is_inclusive():
    data = png(_colour_image())  # 30 × 20 = 600 pixels
    assert decode_image(data, max_pixels=600).shape == (20, 30, 3)
    with pytest.raises(ImageTooLargeError):
        decode_image(data, max_pixels=599)


@pytest.mark.parametrize("extension", [".jpg", ".bmp", ".tiff", ".ppm", ".pgm", ".ras"])
def test_declared_size_reads_other_headers(extension):
    channels = (17, 41) if extension == ".pgm" else (17, 41, 3)
    ok, data = cv2.imencode(extension, np.zeros(channels, dtype=np.uint8))
    assert ok
    assert declared_size(data.tobytes()) == (41, 17)


@pytest.mark.parametrize("params", [[cv2.IMWRITE_WEBP_QUALITY, 80], [cv2.IMWRITE_WEBP_QUALITY, 101]],
                         ids=["lossy VP8", "lossless VP8L"])
def test_declared_size_reads_webp_headers(params):
    ok, data = cv2.imencode(".webp", np.full((17, 41, 3), 90, dtype=np.uint8), params)
    assert ok
    assert declared_size(data.tobytes()) == (41, 17)
    with pytest.raises(ImageTooLargeError):
        decode_image(data.tobytes(), max_pixels=41 * 17 - 1)


def test_a_format_whose_size_cannot_be_read_is_refused_under_a_pixel_limit():
    ok, data = cv2.imencode(".hdr", np.zeros((17, 41, 3), dtype=np.float32))  # Radiance HDR: RLE-compressed
    assert ok and declared_size(data.tobytes()) is None
    assert decode_image(data.tobytes()).shape == (17, 41, 3)  # no limit: decoded as usual
    with pytest.raises(ImageDecodeError, match="No se pudo decodificar"):
        decode_image(data.tobytes(), max_pixels=10**6)


def test_model_input_gray_mode_replicates_and_unit_keeps_zero_to_one():
    image = _colour_image()
    batch = to_model_input([image], 32, "gray", "unit")
    assert tuple(batch.shape) == (1, 3, 32, 32)
    array = batch.numpy()
    assert 0.0 <= array.min() and array.max() <= 1.0
    np.testing.assert_array_equal(array[0, 0], array[0, 1])
    np.testing.assert_array_equal(array[0, 0], array[0, 2])


def test_model_input_rgb_mode_is_rgb_ordered_and_imagenet_normalised():
    image = np.zeros((8, 8, 3), dtype=np.uint8)
    image[:, :, 2] = 255  # pure red in BGR
    array = to_model_input([image], 8, "rgb", "imagenet").numpy()[0]
    np.testing.assert_allclose(array[:, 0, 0], [(1 - 0.485) / 0.229, -0.456 / 0.224, -0.406 / 0.225], rtol=1e-5)
