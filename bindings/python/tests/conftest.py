# Makes the in-tree package importable (CTest also sets PYTHONPATH) and gives each test its own
# data directory. The library comes from $SHOAL_LIBRARY (CTest passes the built libshoal).
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))


@pytest.fixture
def db(tmp_path):
    import shoal

    with shoal.open(str(tmp_path / "data")) as handle:
        yield handle
