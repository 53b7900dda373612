"""The live panels' JavaScript (web/live/hw2live.js) under Node's own test runner, against torch.

The models are exported from the stored runs and torch's answers written to a golden file
(hw2lib.web_export) in a temporary folder; then ``node --test tests/js`` checks the forward
passes, both decoders and the text handling against them, without a browser. A second test
corrupts one exported weight and shows that the Node tests then fail.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from hw2lib import web_export

REPO = Path(__file__).resolve().parents[1]
NODE_TESTS = REPO / "tests" / "js"


def node_binary() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.fail("Node.js (20 or newer) is needed for the live panels' tests: install it (it also builds the book)")
    version = subprocess.run([node, "--version"], capture_output=True, text=True).stdout.strip()
    if int(version.lstrip("v").split(".")[0]) < 20:
        pytest.fail(f"Node.js 20 or newer is needed (its built-in test runner), found {version}")
    return node


@pytest.fixture(scope="module")
def exported(tmp_path_factory, mirror_dir, shared_cache) -> Path:
    """The exported models and a small golden file (30 sentences, 200 images) in a temporary folder."""
    folder = tmp_path_factory.mktemp("live")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HW2LIB_MIRROR", str(mirror_dir) if mirror_dir else "off")
        patch.setenv("HW2LIB_CACHE", str(shared_cache))
        web_export.export_live_models(folder)
        web_export.write_golden(folder / "golden.json", sentences=30, images=200)
    return folder


def run_node_tests(folder: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([node_binary(), "--test", *extra, str(NODE_TESTS)], capture_output=True, text=True,
                          env={**os.environ, "HW2LIVE_DIR": str(folder)}, cwd=REPO, timeout=600)


def summary(output: str) -> dict[str, int]:
    return {key: int(value) for key, value in re.findall(r"^# (tests|pass|fail|skipped) (\d+)$", output, re.M)}


def test_the_node_tests_pass_against_torchs_answers(exported):
    result = run_node_tests(exported)
    counts = summary(result.stdout)
    assert result.returncode == 0, f"node --test failed:\n{result.stdout[-6000:]}\n{result.stderr[-2000:]}"
    assert counts.get("tests", 0) >= 15 and counts["pass"] == counts["tests"], counts
    assert counts["fail"] == 0 and counts["skipped"] == 0, counts


def test_a_wrong_weight_makes_the_node_tests_fail(exported, tmp_path):
    """The test of the tests: the CNN's last bias nudged by 0.05 in the exported script."""
    broken = tmp_path / "broken"
    shutil.copytree(exported, broken)
    script = broken / "cnn.js"
    text = script.read_text(encoding="utf-8")
    prefix, payload = text.split("] = ", 1)
    data = json.loads(payload.rstrip().rstrip(";"))
    weights = np.frombuffer(base64.b64decode(data["weights"]), dtype="<f4").copy()
    _, offset = data["tensors"]["fc3.bias"]
    weights[offset + 3] += 0.05
    data["weights"] = base64.b64encode(weights.tobytes()).decode("ascii")
    script.write_text(f"{prefix}] = {json.dumps(data)};\n", encoding="utf-8")
    result = run_node_tests(broken, "--test-name-pattern", "CNN gives")
    assert result.returncode != 0, result.stdout[-3000:]
    assert "largest probability difference" in result.stdout or "image" in result.stdout


def test_without_exported_models_the_node_tests_say_how_to_run_them(tmp_path):
    result = run_node_tests(tmp_path / "absent")
    assert result.returncode == 0
    assert "python -m pytest tests/test_live_js.py" in result.stdout
    assert summary(result.stdout)["skipped"] >= 10
