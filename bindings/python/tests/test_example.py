# Runs examples/fashion_mnist.py on a small slice (it must ingest, search, and report a sane
# recall); skipped, saying why, when Debian's dataset-fashion-mnist is not installed.
import os
import subprocess
import sys

import pytest

EXAMPLE = os.path.join(os.path.dirname(__file__), "..", "examples", "fashion_mnist.py")
DATA = os.environ.get("SHOAL_FASHION_MNIST", "/usr/share/datasets/fashion-mnist")


def test_fashion_mnist_example_runs(tmp_path):
    if not os.path.exists(os.path.join(DATA, "train-images-idx3-ubyte.gz")):
        pytest.skip(f"Fashion-MNIST not found in {DATA} (Debian package dataset-fashion-mnist)")
    out = subprocess.run(
        [sys.executable, EXAMPLE, "--data-dir", DATA, "--train", "3000", "--queries", "100",
         "--dir", str(tmp_path / "fm")],
        capture_output=True, text=True, timeout=300, check=True).stdout
    print(out)
    recall = float(out.split("recall@10 ")[1].split()[0])
    assert recall >= 0.9


def test_fashion_mnist_example_skips_clearly_without_data(tmp_path):
    res = subprocess.run([sys.executable, EXAMPLE, "--data-dir", str(tmp_path / "none")],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0
    assert "SKIP" in res.stdout and "dataset-fashion-mnist" in res.stdout
