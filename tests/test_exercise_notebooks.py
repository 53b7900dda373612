"""The exercises as a reader meets them in the chapter notebooks.

Every exercise has a statement, a starter cell whose stub raises NotImplementedError, check cells
whose stored output says "not implemented yet", and a solution folded in a dropdown. Then the reader's
workflow, run for real: a copy of each chapter is executed in a temporary folder with every stub
replaced by its solution (each check cell must say "Passed") and, in added cells, by a typical wrong
answer (the check must name that mistake's hint).
"""

from __future__ import annotations

import copy
import os
import re
from pathlib import Path

import nbformat
import pytest

from hw2lib.exercises import MISTAKES

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = Path(os.environ.get("HW2BOOK_NOTEBOOKS") or REPO / "book")
CHAPTERS = ["ch1_convolutions.ipynb", "ch2_cnn.ipynb", "ch3_translation.ipynb"]

# A reader's wrong answer for every exercise with a starter cell, and the mistake its check must name.
WRONG = {
    "conv-output-shape": ("def my_conv_output_shape(H, W, M, N):\n    return H - M, W - N", "off-by-one"),
    "conv-matrix-entry": ("def my_conv_matrix_entry(kernel, H, W, i, j):\n"
                          "    flat = kernel.reshape(-1)  # the seed report's M[i, j] = m_(i-j)\n"
                          "    return float(flat[i - j]) if 0 <= i - j < len(flat) else 0.0", "one-d-rule"),
    "conv-matrix": ("def my_conv_matrix(kernel, H, W):\n"
                    "    M, N = kernel.shape\n"
                    "    flipped = torch.flip(kernel, dims=(0, 1))  # a true convolution\n"
                    "    matrix = torch.zeros((H - M + 1) * (W - N + 1), H * W, dtype=kernel.dtype)\n"
                    "    for a in range(H - M + 1):\n"
                    "        for b in range(W - N + 1):\n"
                    "            for m in range(M):\n"
                    "                for n in range(N):\n"
                    "                    matrix[a * (W - N + 1) + b, (a + m) * W + b + n] = flipped[m, n]\n"
                    "    return matrix", "flipped-kernel"),
    "parameter-counts": ("def my_conv_net_parameters(H, W, M, N):\n"
                         "    return M * N + 3 * ((H - M + 1) // 2) * ((W - N + 1) // 2)\n\n\n"
                         "def my_fc_net_parameters(H, W, M, N):  # the seed report's count\n"
                         "    return (N * M + 3) * ((H - M + 1) / 2) * ((W - N + 1) / 2)", "seed-fc-count"),
    "self-attention": ("def my_self_attention(x):\n"
                       "    p = torch.softmax(torch.outer(x, x), dim=0)\n"
                       "    return p, p @ x", "softmax-axis"),
    "cnn-without-first-pool": ("predicted_parameters = 420_906", "pool-has-no-weights"),
    "cnn": ("class MyCNN(nn.Module):\n"
            "    def __init__(self, dropout=0.3):\n"
            "        super().__init__()\n"
            "        self.conv1 = nn.Conv2d(1, 8, 5)\n"
            "        self.conv2 = nn.Conv2d(8, 16, 3)\n"
            "        self.fc1, self.fc2, self.fc3 = nn.Linear(400, 600), nn.Linear(600, 120), nn.Linear(120, 10)\n\n"
            "    def forward(self, images):\n"
            "        raise AssertionError('the check must stop before running a model without padding')",
            "cnn-padding"),
    "greedy-decode": ("def my_greedy_decode(model, source, max_length):\n"
                      "    encoded = model.encode(source[None], torch.tensor([len(source)]))\n"
                      "    state, previous, tokens = encoded.state, torch.tensor([SOS]), []\n"
                      "    for _ in range(max_length):  # never stops at EOS\n"
                      "        log_probs, state, _ = model.step(previous, state, encoded)\n"
                      "        tokens.append(int(log_probs[0].argmax()))\n"
                      "        previous = torch.tensor([tokens[-1]])\n"
                      "    return tokens", "past-eos"),
    "bilinear-attention": ("def my_bilinear_attention(query, encoder_outputs, source_mask, linear_in, linear_out):\n"
                           "    scores = linear_in(query) @ encoder_outputs.transpose(1, 2)  # no mask\n"
                           "    probabilities = torch.softmax(scores, dim=-1)\n"
                           "    context = probabilities @ encoder_outputs\n"
                           "    return torch.tanh(linear_out(torch.cat([query, context], dim=-1))), probabilities",
                           "padding-mask"),
    "beam-search": ("def my_beam_search(model, source, beam_size, max_length):\n"
                    "    encoded = model.encode(source[None], torch.tensor([len(source)]))\n"
                    "    beam = [([], 0.0, encoded.state)]\n"
                    "    for _ in range(max_length):\n"
                    "        candidates = []\n"
                    "        for tokens, score, state in beam:\n"
                    "            previous = torch.tensor([tokens[-1] if tokens else SOS])\n"
                    "            log_probs, new_state, _ = model.step(previous, state, encoded)\n"
                    "            candidates += [(tokens + [token], score + value, new_state)\n"
                    "                           for token, value in enumerate(log_probs[0].tolist())\n"
                    "                           if token != EOS]  # finished hypotheses dropped\n"
                    "        beam = sorted(candidates, key=lambda entry: entry[1], reverse=True)[:beam_size]\n"
                    "    return beam[0][0]", "beam-drops-finished"),
}


def exercises(notebook) -> dict[str, dict[str, int]]:
    """exercise id -> role -> cell index, in the notebook's order."""
    found: dict[str, dict[str, int]] = {}
    for index, cell in enumerate(notebook.cells):
        marker = cell.metadata.get("exercise")
        if marker:
            found.setdefault(marker["id"], {})[marker["role"]] = index
    return found


def read_chapter(name: str):
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    if not exercises(notebook):
        pytest.skip(f"{NOTEBOOKS / name} holds no exercises")
    return notebook


def output_text(cell) -> str:
    parts = []
    for output in cell.get("outputs", []):
        if output.get("output_type") == "stream":
            parts.append(output.get("text", ""))
        parts.append(output.get("data", {}).get("text/plain", ""))
        if output.get("output_type") == "error":
            parts.append(f"ERROR {output.get('ename')}: {output.get('evalue')}")
    return "".join(parts)


def solution_code(markdown: str) -> str:
    match = re.search(r"```python\n(.*?)\n```", markdown, re.DOTALL)
    assert match, "the solution shows its code in a ```python block"
    return match.group(1)


def starter_imports(starter: str) -> str:
    """The import lines the starter cell opens with (a reader keeps them when filling in the stub)."""
    lines = []
    for line in starter.splitlines():
        if line and not line.startswith(("import ", "from ")):
            break
        lines.append(line)
    return "\n".join(lines)


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_every_exercise_has_a_stub_a_check_and_a_folded_solution(chapter):
    notebook = read_chapter(chapter)
    with_starter = [exercise for exercise, roles in exercises(notebook).items() if "starter" in roles]
    assert sorted(with_starter) == sorted(WRONG_FOR[chapter])
    for exercise, roles in exercises(notebook).items():
        statement, solution = (notebook.cells[roles[role]].source for role in ("statement", "solution"))
        assert statement.startswith("```{exercise}") and f":label: ex-{exercise}\n" in statement
        assert solution.startswith(f"````{{solution}} ex-{exercise}\n:class: dropdown\n")
        assert min(roles.values()) == roles["statement"]
        assert max(roles.values()) == roles["solution"]
        if "starter" not in roles:
            assert "check" not in roles  # a question to think about: statement and solution only
            continue
        starter = notebook.cells[roles["starter"]]
        assert "exercise-starter" in starter.metadata["tags"]
        assert "NotImplementedError" in starter.source or "= None" in starter.source
        checks = [notebook.cells[index] for role, index in roles.items() if role.startswith("check")]
        assert checks and all("exercise-check" in cell.metadata["tags"] for cell in checks)
        for cell in checks:  # what the book shows: the verdict on the stub, not an error
            assert "not implemented yet" in output_text(cell), (exercise, output_text(cell))
            assert all(output["output_type"] != "error" for output in cell.outputs)


def with_answers(notebook):
    """A copy in which every stub holds its solution, followed by added cells holding a wrong answer
    and copies of the check cells. Returns the copy and [(check cell index, expected text)]."""
    notebook = copy.deepcopy(notebook)
    expectations, cells = [], []
    found = exercises(notebook)
    ends = {max(roles.values()): exercise for exercise, roles in found.items() if "starter" in roles}
    for index, cell in enumerate(notebook.cells):
        marker = cell.metadata.get("exercise", {})
        exercise, roles = marker.get("id"), found.get(marker.get("id"), {})
        if marker.get("role") == "starter":
            solution = solution_code(notebook.cells[roles["solution"]].source)
            cell.source = f"{starter_imports(cell.source)}\n\n{solution}".strip()
        if marker.get("role", "").startswith("check"):
            expectations.append((len(cells), "✓ Passed"))
        cells.append(cell)
        if index in ends:
            exercise, roles = ends[index], found[ends[index]]
            wrong, mistake = WRONG[exercise]
            starter = notebook.cells[roles["starter"]].source
            cells.append(nbformat.v4.new_code_cell(f"{starter_imports(starter)}\n\n{wrong}".strip()))
            checks = [role for role in roles if role.startswith("check")]
            for number, role in enumerate(checks):
                cells.append(nbformat.v4.new_code_cell(notebook.cells[roles[role]].source))
                if number == 0:  # the checks on the tiny, seeded inputs; a trained model may hide a mistake
                    expectations.append((len(cells) - 1, MISTAKES[mistake]))
    for cell in cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    notebook.cells = cells
    return notebook, expectations


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_a_reader_fills_in_the_stubs_and_the_checks_say_passed_or_name_the_mistake(chapter, tmp_path, monkeypatch,
                                                                                     use_mirror):
    from nbclient import NotebookClient

    notebook, expectations = with_answers(read_chapter(chapter))
    monkeypatch.setenv("HW2LIB_PROFILE", "quick")  # the kernel inherits this process's environment
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # one thread per kernel: steps of a tiny model, cores shared
    path = tmp_path / chapter
    nbformat.write(notebook, path)
    NotebookClient(notebook, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    for index, expected in expectations:
        text = output_text(notebook.cells[index])
        assert expected in text, f"cell {index} ({notebook.cells[index].source[:60]!r}) shows {text!r}"


WRONG_FOR = {
    "ch1_convolutions.ipynb": ["conv-output-shape", "conv-matrix-entry", "conv-matrix", "parameter-counts",
                               "self-attention"],
    "ch2_cnn.ipynb": ["cnn-without-first-pool", "cnn"],
    "ch3_translation.ipynb": ["greedy-decode", "bilinear-attention", "beam-search"],
}


def test_every_wrong_answer_belongs_to_a_chapter():
    assert sorted(WRONG) == sorted(exercise for chapter in WRONG_FOR.values() for exercise in chapter)
