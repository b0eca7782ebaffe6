# shoal.connect (client mode) against tests/capi/shoal_test_server, the daemon stand-in that
# serves the local API on a Unix socket. CTest passes its path in SHOAL_TEST_SERVER; without it
# (a build without the daemon side) the tests are skipped.
import os
import subprocess

import numpy as np
import pytest

import shoal

SERVER = os.environ.get("SHOAL_TEST_SERVER")
pytestmark = pytest.mark.skipif(not SERVER, reason="SHOAL_TEST_SERVER not set (no daemon side built)")


@pytest.fixture
def server(tmp_path):
    sock = f"/tmp/shoal-py-{os.getpid()}-{id(tmp_path)}.sock"  # short: sockaddr_un holds 108 bytes
    proc = subprocess.Popen([SERVER, str(tmp_path / "data"), sock], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    yield sock
    proc.stdin.close()
    assert proc.wait(timeout=30) == 0


def test_connect_works_like_open(server):
    with shoal.connect(server) as db:
        db.create_collection("photos", 4, metric="l2")
        vectors = np.eye(4, dtype=np.float32)
        db.upsert_batch("photos", ["a", "b", "c", "d"], vectors,
                        metadata=[{"place": "indoor"}, {}, {}, {"place": "indoor"}])
        ids, distances = db.search("photos", vectors[1], k=2)
        assert ids[0] == "b" and distances[0] == 0.0
        ids, _ = db.search("photos", vectors[3], k=4, filter="place=indoor")
        assert list(ids) == ["d", "a"]
        assert db.get("photos", "zz") is None
        with pytest.raises(shoal.InvalidArgumentError) as e:
            db.upsert("photos", "x", np.ones(3, dtype=np.float32))
        assert e.value.code == shoal.E_DIMENSION
    # The data stays with the daemon: a new connection sees it.
    with shoal.connect(server) as db:
        assert db.get("photos", "a") is not None


def test_connect_nothing_listening(tmp_path):
    with pytest.raises(shoal.UnavailableError) as e:
        shoal.connect(str(tmp_path / "none.sock"))
    assert "none.sock" in e.value.message
