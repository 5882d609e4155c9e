"""Media conversions alone (media.py), then CSVLogger keeping every kind of media as indexed files."""

from __future__ import annotations

import csv
import io
import json
import wave
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image as PILImage

from tracklight import TracklightError, TracklightWarning, media
from tracklight.loggers import CSVLogger


def _figure() -> Any:
    figure, axis = plt.subplots(figsize=(1.5, 1.0), dpi=50)
    axis.plot([0, 1, 2], [1, 0, 1])
    return figure


def _decode(png: bytes) -> np.ndarray:
    with PILImage.open(io.BytesIO(png)) as image:
        return np.asarray(image)


# ---- images -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "shape"),
    [
        (lambda: torch.rand(3, 5, 7), (5, 7, 3)),  # torch: CHW
        (lambda: torch.rand(1, 5, 7), (5, 7, 1)),
        (lambda: torch.rand(4, 5, 7), (5, 7, 4)),
        (lambda: torch.rand(5, 7), (5, 7, 1)),  # HW
        (lambda: torch.rand(5, 7, 3), (5, 7, 3)),  # only HWC reads as an image
        (lambda: np.random.rand(5, 7, 3), (5, 7, 3)),  # numpy: HWC
        (lambda: np.random.rand(5, 7), (5, 7, 1)),
        (lambda: np.random.rand(3, 5, 7), (5, 7, 3)),  # only CHW reads as an image
        (lambda: np.random.rand(5, 7, 1), (5, 7, 1)),
        (lambda: torch.rand(3, 4, 3), (4, 3, 3)),  # ambiguous: torch means CHW
        (lambda: np.random.rand(3, 4, 3), (3, 4, 3)),  # ambiguous: numpy means HWC
        (lambda: torch.rand(3, 5, 7, dtype=torch.bfloat16), (5, 7, 3)),
        (lambda: torch.rand(3, 5, 7, dtype=torch.float64), (5, 7, 3)),
        (lambda: np.random.rand(5, 7).astype(np.float16), (5, 7, 1)),
        (lambda: torch.randint(0, 256, (3, 5, 7), dtype=torch.uint8), (5, 7, 3)),
        (lambda: np.random.randint(0, 256, (5, 7, 4)), (5, 7, 4)),
        (lambda: torch.rand(5, 7) > 0.5, (5, 7, 1)),
        (lambda: np.random.rand(5, 7) > 0.5, (5, 7, 1)),
        (lambda: PILImage.new("RGB", (7, 5)), (5, 7, 3)),
        (lambda: PILImage.new("RGBA", (7, 5)), (5, 7, 4)),
        (lambda: PILImage.new("L", (7, 5)), (5, 7, 1)),
        (lambda: PILImage.new("P", (7, 5)), (5, 7, 4)),
        (lambda: PILImage.new("F", (7, 5)), (5, 7, 3)),
        (lambda: PILImage.new("1", (7, 5)), (5, 7, 3)),
    ],
)
def test_image_pixels_are_hwc_uint8(make: Any, shape: tuple[int, ...]) -> None:
    pixels = media.image_pixels(make())
    assert pixels.shape == shape
    assert pixels.dtype == np.uint8 and pixels.flags["C_CONTIGUOUS"]


@pytest.mark.parametrize(
    ("make", "dataformats"),
    [
        (lambda: np.zeros((3, 5, 7)), "CHW"),
        (lambda: np.zeros((5, 7, 3)), "HWC"),
        (lambda: np.zeros((5, 7)), "HW"),
        (lambda: torch.zeros(5, 7, 3), "HWC"),
        (lambda: np.zeros((5, 3, 7)), "HCW"),
    ],
)
def test_dataformats_says_where_the_channels_are(make: Any, dataformats: str) -> None:
    assert media.image_pixels(make(), dataformats).shape[:2] == (5, 7)


def test_wrong_or_ambiguous_layouts_say_how_to_fix_them() -> None:
    with pytest.raises(TracklightError, match=r"dataformats='CHW' does not describe an array of shape \(5, 7\)"):
        media.image_pixels(np.zeros((5, 7)), "CHW")
    with pytest.raises(TracklightError, match="pass dataformats='CHW' or 'HWC'"):
        media.image_pixels(np.zeros((5, 7, 9)))
    with pytest.raises(TracklightError, match="2 or 3 dimensions"):
        media.image_pixels(np.zeros(5))


def test_float_images_are_scaled_from_unit_range_and_clipped() -> None:
    pixels = media.image_pixels(np.array([[0.0, 0.5, 1.0, 2.0, -1.0, np.nan]]))
    assert pixels[0, :, 0].tolist() == [0, 128, 255, 255, 0, 0]


def test_integer_and_bool_images() -> None:
    assert media.image_pixels(np.array([[0, 7, 255, 300, -5]]))[0, :, 0].tolist() == [0, 7, 255, 255, 0]
    assert media.image_pixels(np.array([[True, False]]))[0, :, 0].tolist() == [255, 0]
    assert media.image_pixels(torch.tensor([[True, False]]))[0, :, 0].tolist() == [255, 0]


def test_torch_and_numpy_give_the_same_pixels() -> None:
    chw = torch.rand(3, 6, 4)
    from_torch = media.image_pixels(chw)
    from_numpy = media.image_pixels(chw.permute(1, 2, 0).numpy())
    np.testing.assert_array_equal(from_torch, from_numpy)
    if torch.cuda.is_available():  # pragma: no cover - only on a GPU machine
        np.testing.assert_array_equal(media.image_pixels(chw.cuda()), from_torch)


def test_pil_pixels_are_kept_exactly() -> None:
    array = np.random.randint(0, 256, (5, 7, 3), dtype=np.uint8)
    np.testing.assert_array_equal(media.image_pixels(PILImage.fromarray(array)), array)


def test_matplotlib_figure_becomes_an_rgba_image() -> None:
    figure = _figure()
    try:
        pixels = media.image_pixels(figure)
    finally:
        plt.close(figure)
    assert pixels.ndim == 3 and pixels.shape[2] == 4 and pixels.shape[0] > 10
    assert pixels.min() < 255  # the line was drawn


@pytest.mark.parametrize(
    ("make", "count"),
    [
        (lambda: torch.rand(2, 3, 5, 7), 2),  # NCHW
        (lambda: np.random.rand(3, 5, 7, 3), 3),  # NHWC
        (lambda: [np.random.rand(5, 7), torch.rand(3, 8, 8), PILImage.new("RGB", (4, 4))], 3),
        (lambda: (np.random.rand(5, 7),), 1),
        (lambda: np.random.rand(5, 7, 3), 1),
    ],
)
def test_batches_and_lists_give_one_image_each(make: Any, count: int) -> None:
    images = media.to_images(make(), captions="same")
    assert len(images) == count
    assert all(image.caption == "same" and image.pixels.dtype == np.uint8 for image in images)


def test_captions_one_per_image_or_a_clear_error() -> None:
    images = media.to_images(torch.rand(2, 3, 4, 4), captions=["a", "b"])
    assert [image.caption for image in images] == ["a", "b"]
    assert [image.caption for image in media.to_images(np.zeros((4, 4)))] == [None]
    with pytest.raises(TracklightError, match="Got 2 images but 3 captions"):
        media.to_images(torch.rand(2, 3, 4, 4), captions=["a", "b", "c"])


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_png_bytes_decode_to_the_same_pixels(channels: int) -> None:
    pixels = np.random.randint(0, 256, (6, 9, channels), dtype=np.uint8)
    png = media.png_bytes(pixels)
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    np.testing.assert_array_equal(_decode(png).reshape(pixels.shape), pixels)
    if channels != 2:  # decode_png gives gray+alpha back as RGBA, the form every backend takes
        np.testing.assert_array_equal(media.decode_png(png), pixels)
    assert media.Image(pixels).png() == png


def test_png_bytes_rejects_what_is_not_hwc_uint8() -> None:
    with pytest.raises(TracklightError, match="uint8"):
        media.png_bytes(np.zeros((4, 4, 3), dtype=np.float32))
    with pytest.raises(TracklightError, match=r"\(H, W, C\)"):
        media.png_bytes(np.zeros((4, 4), dtype=np.uint8))


# ---- audio --------------------------------------------------------------------------------------------


def _read_wav(data: bytes) -> tuple[int, int, np.ndarray]:
    with wave.open(io.BytesIO(data), "rb") as handle:
        assert handle.getsampwidth() == 2
        frames = np.frombuffer(handle.readframes(handle.getnframes()), dtype="<i2")
        return handle.getnchannels(), handle.getframerate(), frames.reshape(-1, handle.getnchannels())


def test_mono_audio_reads_back_with_wave() -> None:
    samples = np.sin(np.linspace(0, 20, 800))
    clip = media.to_audio(samples, 8000, caption="tone")
    channels, rate, frames = _read_wav(clip.wav())
    assert (channels, rate, frames.shape, clip.caption) == (1, 8000, (800, 1), "tone")
    np.testing.assert_array_equal(frames[:, 0], np.round(samples * 32767).astype(np.int16))


@pytest.mark.parametrize("layout", ["channels_first", "channels_last"])
def test_stereo_audio_reads_back_with_wave(layout: str) -> None:
    left, right = torch.linspace(-1, 1, 500), torch.linspace(1, -1, 500)
    audio = torch.stack([left, right]) if layout == "channels_first" else torch.stack([left, right], dim=1)
    channels, rate, frames = _read_wav(media.to_audio(audio, 16000).wav())
    assert (channels, rate) == (2, 16000)
    np.testing.assert_array_equal(frames[:, 0], np.round(left.numpy().astype(np.float64) * 32767).astype(np.int16))
    np.testing.assert_array_equal(frames[:, 1], np.round(right.numpy().astype(np.float64) * 32767).astype(np.int16))


def test_audio_int16_is_scaled_and_out_of_range_is_clipped() -> None:
    clip = media.to_audio(np.array([-32768, 0, 16384], dtype=np.int16), 100)
    assert clip.samples[:, 0].tolist() == [-1.0, 0.0, 0.5]
    loud = media.to_audio(np.array([2.0, -3.0, np.nan]), 100)
    assert loud.samples[:, 0].tolist() == [1.0, -1.0, 0.0]


def test_audio_errors_name_the_fix() -> None:
    with pytest.raises(TracklightError, match="sample_rate must be a positive int"):
        media.to_audio(np.zeros(10), 0)
    with pytest.raises(TracklightError, match="1-D or 2-D"):
        media.to_audio(np.zeros((2, 2, 2)), 100)


# ---- histograms ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("make", [lambda: torch.randn(4, 5), lambda: np.random.randn(20), lambda: list(range(20))])
def test_histogram_values_are_flat_floats(make: Any) -> None:
    values = media.histogram_values(make(), "weights")
    assert values.shape == (20,) and values.dtype == np.float64
    counts, edges = media.histogram_counts(values, bins=5)
    assert counts.sum() == 20 and len(edges) == 6


def test_histogram_errors_name_the_key() -> None:
    with pytest.raises(TracklightError, match=r"log_histogram\('layer1/weight'\) got no values"):
        media.histogram_values(np.array([]), "layer1/weight")
    with pytest.raises(TracklightError, match=r"log_histogram\('grad'\) got 2 NaN or infinite"):
        media.histogram_values(torch.tensor([1.0, float("nan"), float("inf")]), "grad")


# ---- tables and text ----------------------------------------------------------------------------------


def test_table_from_columns_and_rows() -> None:
    table = media.to_table(columns=["name", "score"], data=[["a", 1], ["b", 2.5]])
    assert (table.columns, table.rows) == (["name", "score"], [["a", 1], ["b", 2.5]])
    assert list(csv.reader(io.StringIO(table.csv()))) == [["name", "score"], ["a", "1"], ["b", "2.5"]]
    assert table.markdown().splitlines() == ["| name | score |", "|---|---|", "| a | 1 |", "| b | 2.5 |"]
    assert media.to_table(data=[[1, 2]]).columns == ["column_0", "column_1"]


def test_table_from_pandas() -> None:
    frame = pd.DataFrame({"epoch": [0, 1], "loss": [0.5, 0.25], "note": ["x", "y"]})
    table = media.to_table(dataframe=frame)
    assert table.columns == ["epoch", "loss", "note"]
    assert table.rows == [[0, 0.5, "x"], [1, 0.25, "y"]]


def test_table_errors_name_the_fix() -> None:
    with pytest.raises(TracklightError, match="Row 1 of the table has 1 cells but there are 2 columns"):
        media.to_table(columns=["a", "b"], data=[[1, 2], [3]])
    with pytest.raises(TracklightError, match="needs data="):
        media.to_table(columns=["a"])
    with pytest.raises(TracklightError, match="must be a pandas DataFrame, got dict"):
        media.to_table(dataframe={"a": [1]})


def test_text_is_str() -> None:
    assert media.to_text("**bold**") == "**bold**"
    assert (media.to_text(3), media.to_text(float("nan")), media.to_text(None)) == ("3", "nan", "None")


# ---- CSVLogger keeps media as files -------------------------------------------------------------------


def _index(logger: CSVLogger) -> list[dict[str, Any]]:
    with open(Path(logger.log_dir) / "media" / "index.jsonl") as handle:
        return [json.loads(line) for line in handle]


def test_csv_logger_keeps_every_kind_of_media_as_indexed_files(tmp_path: Path) -> None:
    logger = CSVLogger(tmp_path)
    pixels = np.random.randint(0, 256, (4, 6, 3), dtype=np.uint8)
    figure = _figure()
    with pytest.warns(TracklightWarning, match="keeps them as files") as caught:
        logger.log_image("samples", [pixels, PILImage.fromarray(pixels)], step=3, caption=["a", "b"])
        logger.log_histogram("weights", torch.arange(10.0), step=3, bins=5)
        logger.log_text("notes", "# hello", step=3)
        logger.log_audio("tone", np.zeros(100), step=3, sample_rate=8000, caption="silence")
        logger.log_figure("curve", figure, step=3)
        logger.log_table("scores", columns=["a", "b"], data=[[1, 2]], step=3)
        logger.log_table("frame", dataframe=pd.DataFrame({"x": [1.5]}), step=4)
    assert not plt.fignum_exists(figure.number)  # close=True, as TensorBoard's add_figure
    kinds = {"image", "histogram", "text", "audio", "figure", "table"}
    said = [str(w.message) for w in caught if issubclass(w.category, TracklightWarning)]
    assert len(said) == len(kinds)  # once per kind, not once per call
    for kind in kinds:
        assert sum(f"display {kind} media" in message for message in said) == 1

    log_dir = Path(logger.log_dir)
    records = {record["key"]: record for record in _index(logger)}
    assert set(records) == {"samples", "weights", "notes", "tone", "curve", "scores", "frame"}
    assert records["samples"]["files"] == ["media/image/samples/3_0.png", "media/image/samples/3_1.png"]
    assert records["samples"]["captions"] == ["a", "b"]
    for relative in records["samples"]["files"]:
        np.testing.assert_array_equal(_decode((log_dir / relative).read_bytes()), pixels)
    with open(log_dir / records["weights"]["files"][0], newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(row["count"]) for row in rows] == [2, 2, 2, 2, 2]
    assert (records["weights"]["min"], records["weights"]["max"], records["weights"]["num"]) == (0.0, 9.0, 10)
    assert (log_dir / records["notes"]["files"][0]).read_text() == "# hello"
    assert records["tone"]["sample_rate"] == 8000 and records["tone"]["caption"] == "silence"
    assert _read_wav((log_dir / records["tone"]["files"][0]).read_bytes())[:2] == (1, 8000)
    assert _decode((log_dir / records["curve"]["files"][0]).read_bytes()).ndim == 3
    assert (log_dir / records["scores"]["files"][0]).read_text() == "a,b\n1,2\n"
    assert (log_dir / records["frame"]["files"][0]).read_text() == "x\n1.5\n"
    assert all(record["step"] == (4 if key == "frame" else 3) for key, record in records.items())


def test_csv_media_never_overwrites_a_file(tmp_path: Path) -> None:
    logger = CSVLogger(tmp_path)
    with pytest.warns(TracklightWarning):
        logger.log_text("notes", "first", step=0)
    logger.log_text("notes", "second", step=0)
    logger.log_text("notes", "no step")
    folder = Path(logger.log_dir) / "media" / "text" / "notes"
    assert (folder / "0_0.md").read_text() == "first"
    assert (folder / "0_1.md").read_text() == "second"
    assert (folder / "none_0.md").read_text() == "no step"
    assert [record["step"] for record in _index(logger)] == [0, 0, None]


def test_media_keys_become_safe_folder_names(tmp_path: Path) -> None:
    logger = CSVLogger(tmp_path)
    with pytest.warns(TracklightWarning):
        logger.log_text("val/../../escape me", "x", step=1)
    [record] = _index(logger)
    assert record["key"] == "val/../../escape me"
    path = (Path(logger.log_dir) / record["files"][0]).resolve()
    assert path.is_relative_to((Path(logger.log_dir) / "media").resolve())


def test_bad_media_raise_before_anything_is_written(tmp_path: Path) -> None:
    logger = CSVLogger(tmp_path)
    with pytest.raises(TracklightError, match=r"log_histogram\('w'\) got no values"):
        logger.log_histogram("w", [])
    with pytest.raises(TracklightError, match="captions"):
        logger.log_image("x", [np.zeros((2, 2))], caption=["a", "b"])
    assert not (Path(logger.log_dir) / "media").exists()
