"""Tests for hw2lib.widgets: the controls change what the browser shows."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402
import torch  # noqa: E402

from hw2lib.cnn import CNN  # noqa: E402
from hw2lib.widgets import cnn_activation_browser  # noqa: E402


def test_cnn_browser_redraws_for_each_control(monkeypatch):
    shown = []  # the figures behind the pictures the browser displays
    monkeypatch.setattr("hw2lib.widgets.figure_picture", lambda figure: shown.append(figure) or figure)
    monkeypatch.setattr("hw2lib.widgets.display", lambda picture: None)
    torch.manual_seed(0)
    browser = cnn_activation_browser(CNN(), torch.rand(3, 1, 28, 28), torch.tensor([0, 1, 2]),
                                     class_name=lambda index: f"class {index}")
    (slider, relu_box), layer_buttons = browser.children[0].children, browser.children[1]
    assert len(shown) == 1 and len([a for a in shown[0].axes if a.images]) == 1 + 8
    assert shown[0].axes[0].get_title().startswith("example 0: class 0")
    slider.value = 2
    assert shown[-1].axes[0].get_title().startswith("example 2: class 2")
    layer_buttons.value = "conv2"
    assert len([a for a in shown[-1].axes if a.images]) == 1 + 16
    relu_box.value = True
    assert shown[-1].axes[1].images[0].get_clim()[0] == 0.0  # after the ReLU nothing is negative
    assert len(shown) == 4
    with pytest.raises(ValueError, match="at least one image"):
        cnn_activation_browser(CNN(), torch.empty(0, 1, 28, 28), torch.empty(0, dtype=torch.long))


def test_pictures_are_rendered_before_the_output_is_touched(monkeypatch):
    """JupyterLab echoes every output back to the kernel on another thread: a figure drawn while that
    echo is handled comes out blank, so each browser renders its PNG before writing to its Output."""
    from hw2lib import widgets

    events = []
    real_picture = widgets.figure_picture
    monkeypatch.setattr(widgets, "figure_picture", lambda figure: events.append("render") or real_picture(figure))
    monkeypatch.setattr(widgets, "display", lambda picture: events.append(("display", type(picture).__name__)))
    torch.manual_seed(0)
    browser = cnn_activation_browser(CNN(), torch.rand(2, 1, 28, 28), torch.tensor([0, 1]))
    browser.children[0].children[0].value = 1
    assert events == ["render", ("display", "Image"), "render", ("display", "Image")]
    picture = real_picture(__import__("matplotlib.pyplot").pyplot.figure(figsize=(1, 1)))
    assert picture.data.startswith(b"\x89PNG")
