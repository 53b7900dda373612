"""Interactive browsers (ipywidgets) for the book's notebooks, one section per chapter.

Each widget has a static matplotlib figure beside it in the book, because a rendered
page cannot run Python; the widget is for readers who run the notebook.
"""

from __future__ import annotations

from typing import Callable

import ipywidgets as widgets
import matplotlib.pyplot as plt
import torch
from IPython.display import Image, display

from .plots import figure_png, plot_activation_maps, plot_attention_grid, plot_conv_matrix



def figure_picture(figure) -> Image:
    """``figure`` rendered as the book renders figures (:func:`hw2lib.plot_style.figure_png`) and closed,
    ready to display in an Output widget.

    Rendered before anything is written to the widget: JupyterLab echoes each output back to the
    kernel on another thread, and a figure rendered while that echo is handled comes out blank."""
    data, metadata = figure_png(figure)
    plt.close(figure)
    return Image(data=data, width=metadata["width"])


# ---------------------------------------------------------------- chapter 1: convolution as a matrix


def conv_matrix_explorer(height: int = 4, width: int = 5, kernel_height: int = 2, kernel_width: int = 3,
                         largest: int = 8) -> widgets.VBox:
    """Sliders for H, W, M, N that redraw the matrix **M** of a valid convolution (chapter 1, Q1.1 (b))."""
    from .convolution import conv_matrix, counting_kernel, is_doubly_block_toeplitz

    # Two sliders a row, each long enough to drag with a mouse.
    sliders = {name: widgets.IntSlider(value=value, min=1, max=largest, description=name, continuous_update=False,
                                       style={"description_width": "1.5em"}, layout=widgets.Layout(width="260px"))
               for name, value in (("H", height), ("W", width), ("M", kernel_height), ("N", kernel_width))}
    output = widgets.Output()

    def redraw(_change=None) -> None:
        h, w, m, n = (sliders[name].value for name in ("H", "W", "M", "N"))
        try:
            matrix = conv_matrix(counting_kernel(m, n), (h, w))
        except ValueError as error:  # a kernel larger than the image: say so instead of drawing
            with output:
                output.clear_output(wait=True)
                print(error)
            return
        out_w = w - n + 1
        picture = figure_picture(plot_conv_matrix(
            matrix, (out_w, w), f"M for {h}x{w} and {m}x{n}: {tuple(matrix.shape)}, "
            f"doubly block Toeplitz: {is_doubly_block_toeplitz(matrix, (out_w, w))}"))
        with output:
            output.clear_output(wait=True)
            display(picture)

    for slider in sliders.values():
        slider.observe(redraw, names="value")
    redraw()
    rows = [widgets.HBox([sliders["H"], sliders["W"]]), widgets.HBox([sliders["M"], sliders["N"]])]
    return widgets.VBox([*rows, output])


# ---------------------------------------------------------------- chapter 2: the CNN


def cnn_activation_browser(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, *,
                           class_name: Callable[[int], str] = str, start: int = 0) -> widgets.VBox:
    """Browse the conv1 / conv2 feature maps of ``model`` over ``images`` (chapter 2, Q2.5).

    A slider picks the example, buttons pick the layer, a checkbox applies the ReLU.
    ``class_name(class_index)`` names a class in the title (default: its number).
    """
    from .cnn import activation_maps, predict  # imported here so widgets of other chapters do not need the CNN

    if len(images) == 0:
        raise ValueError("the browser needs at least one image")
    predictions = predict(model, images)
    index_slider = widgets.IntSlider(value=start, min=0, max=len(images) - 1, description="example",
                                     continuous_update=False)
    layer_buttons = widgets.ToggleButtons(options=["conv1", "conv2"], value="conv1", description="layer")
    relu_box = widgets.Checkbox(value=False, description="after ReLU")
    output = widgets.Output()

    def redraw(_change=None) -> None:
        index = index_slider.value
        maps = activation_maps(model, images[index], layer=layer_buttons.value, after_relu=relu_box.value)
        title = (f"example {index}: {class_name(int(labels[index]))}\n"
                 f"predicted: {class_name(int(predictions[index]))}")
        picture = figure_picture(plot_activation_maps(images[index], maps, title=title, after_relu=relu_box.value))
        with output:
            output.clear_output(wait=True)
            display(picture)

    for control in (index_slider, layer_buttons, relu_box):
        control.observe(redraw, names="value")
    redraw()
    return widgets.VBox([widgets.HBox([index_slider, relu_box]), layer_buttons, output])


# ---------------------------------------------------------------- chapter 3: translation


def translation_figure(models: dict, data, text: str, *, beam_size: int = 5):
    """What :func:`translation_explorer` shows for ``text`` (chapter 3): a text summary (normalised
    input, notes, greedy and beam translations per model) and a figure of the attention of every
    model that has it, greedy and beam side by side (None when there is none to draw)."""
    from .translate import translate

    lines, panels = [], []
    for name, model in models.items():
        greedy = translate(model, data, text)
        beam = translate(model, data, text, beam_size=beam_size)
        if not lines:
            lines.append(f"normalised input: {greedy.normalised!r}")
            lines += [f"note: {note}" for note in greedy.notes]
        lines.append(f"{name}: greedy {greedy.translation!r} (log p {greedy.log_prob:.2f})" if greedy.log_prob is not None
                     else f"{name}: greedy {greedy.translation!r}")
        if beam.log_prob is not None:
            lines.append(f"{name}: beam {beam_size} {beam.translation!r} (log p {beam.log_prob:.2f})")
        if greedy.attention is not None:
            panels += [(f"{name}, greedy", greedy), (f"{name}, beam {beam_size}", beam)]
    figure = None
    if panels:
        figure = plot_attention_grid([translation for _, translation in panels], columns=len(panels),
                                     titles=[f"{title}\n{translation.translation}" for title, translation in panels])
    return "\n".join(lines), figure


def translation_explorer(models: dict, data, *, text: str = "¿Quién eres?",
                         beam_size: int = 5) -> widgets.VBox:
    """Type Spanish, see the normalised input, greedy and beam translations of every model in
    ``models`` (name -> Seq2Seq) and the attention heatmaps (chapter 3)."""
    if not models:
        raise ValueError("the explorer needs at least one model")
    text_box = widgets.Text(value=text, description="Spanish", continuous_update=False,
                            layout=widgets.Layout(width="60%"))
    beam_slider = widgets.IntSlider(value=beam_size, min=1, max=10, description="beam size", continuous_update=False)
    output = widgets.Output()

    def redraw(_change=None) -> None:
        summary, figure = translation_figure(models, data, text_box.value, beam_size=beam_slider.value)
        picture = None if figure is None else figure_picture(figure)
        with output:
            output.clear_output(wait=True)
            print(summary)
            if picture is not None:
                display(picture)

    for control in (text_box, beam_slider):
        control.observe(redraw, names="value")
    redraw()
    return widgets.VBox([widgets.HBox([text_box, beam_slider]), output])
