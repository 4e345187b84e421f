import base64
import html
import io
import json
import re

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pytest
import torch
from PIL import Image

import gmlib as gm


def frames_of(slider_html: str) -> dict:
    block = re.search(
        r'<script type="application/json" class="gm-frames">(.*?)</script>',
        slider_html,
        re.S,
    )
    return json.loads(html.unescape(block.group(1)))


def decode_png(uri: str) -> Image.Image:
    assert uri.startswith("data:image/png;base64,")
    return Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])))


def test_static_slider_html_holds_every_frame_and_a_range_input():
    frames = [torch.full((1, 4, 4), v, dtype=torch.uint8) for v in (0, 128, 255)]
    slider = gm.static_slider(
        frames, labels=["dark", "grey", "bright"], title="brightness", start=1
    )
    page = slider._repr_html_()
    data = frames_of(page)
    assert data["labels"] == ["dark", "grey", "bright"] and len(data["src"]) == 3
    # each frame decodes to a PNG of its own brightness
    means = [
        float(np.asarray(decode_png(uri).convert("L")).mean()) for uri in data["src"]
    ]
    assert means == [0, 128, 255]
    range_input = re.search(r'<input type="range"[^>]*>', page).group(0)
    assert (
        'min="0"' in range_input
        and 'max="2"' in range_input
        and 'value="1"' in range_input
    )
    assert "oninput=" in range_input
    assert f'src="{data["src"][1]}"' in page  # the start frame shows first
    assert "<output>grey</output>" in page
    assert page.count('class="gm-slider"') == 1


def test_static_slider_accepts_figures_and_batches(tmp_path):
    fig, ax = plt.subplots(figsize=(2, 2))
    ax.plot([0, 1], [0, 1])
    batch = torch.rand(4, 1, 8, 8)
    slider = gm.static_slider([fig, batch])
    data = frames_of(slider.html)
    assert data["labels"] == ["0", "1"]
    # 4 images of 8 px + padding 2
    assert decode_png(data["src"][1]).size == (2 + 4 * 10, 12)
    assert not plt.fignum_exists(fig.number)  # frames are closed once rendered
    slider.save(tmp_path / "slider.html")
    assert (tmp_path / "slider.html").read_text().startswith("<!doctype html>")


def test_static_slider_lays_out_nrow_images_per_row():
    batch = torch.rand(6, 1, 8, 8)
    data = frames_of(gm.static_slider([batch], nrow=3).html)
    assert decode_png(data["src"][0]).size == (2 + 3 * 10, 2 + 2 * 10)  # 3 x 2
    with pytest.raises(ValueError, match="nrow"):
        gm.static_slider([batch], nrow=0)


def test_two_sliders_do_not_share_ids():
    frames = [torch.zeros(1, 2, 2)]
    assert gm.static_slider(frames).id != gm.static_slider(frames).id


def test_static_slider_rejects_bad_input():
    with pytest.raises(ValueError, match="at least one frame"):
        gm.static_slider([])
    with pytest.raises(ValueError, match="2 frames but 1 labels"):
        gm.static_slider([torch.zeros(1, 2, 2)] * 2, labels=["a"])
    with pytest.raises(ValueError, match="start"):
        gm.static_slider([torch.zeros(1, 2, 2)], start=3)


def test_image_grid_and_show_images():
    images = torch.randint(0, 256, (10, 1, 28, 28), dtype=torch.uint8)
    grid = gm.viz.image_grid(images, nrow=5)
    assert grid.shape == (3, 2 * 30 + 2, 5 * 30 + 2)
    assert torch.allclose(grid[0, 2:30, 2:30], images[0, 0].float() / 255)
    fig = gm.show_images(images, nrow=5, title="random pixels")
    assert fig.axes[0].get_title() == "random pixels"
    plt.close(fig)
    fig = gm.show_images(images, nrow=5, padding=0)
    assert fig.axes[0].images[0].get_array().shape == (2 * 28, 5 * 28, 3)
    plt.close(fig)
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        gm.viz.image_grid(torch.zeros(2, 5, 4, 4))
    with pytest.raises(TypeError, match="uint8 or float"):
        gm.viz.image_grid(torch.zeros(2, 1, 4, 4, dtype=torch.int32))


def test_plot_curves_labels_its_axes():
    fig = gm.viz.plot_curves(
        {"train": [3, 2, 1], "test": [3, 2.5, 2]}, xlabel="epoch", ylabel="NLL"
    )
    ax = fig.axes[0]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("epoch", "NLL")
    assert [line.get_label() for line in ax.get_lines()] == ["train", "test"]
    plt.close(fig)


def test_static_slider_text_has_no_memory_address():
    """The text a notebook shows for a slider is the same on every run (the
    repeatability test compares it)."""
    frames = [torch.zeros(2, 1, 4, 4), torch.ones(2, 1, 4, 4)]
    slider = gm.viz.static_slider(frames, labels=["t=0", "t=1"], title="noise")
    assert repr(slider) == "<StaticSlider 'noise': 2 frames, 't=0' to 't=1'>"
    assert "0x" not in repr(gm.viz.static_slider(frames))
