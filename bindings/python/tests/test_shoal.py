# Proves the Python binding end to end against the built libshoal: the cdef comes from shoal.h
# (every export of node/capi/exports.txt is declared and callable, the codes are the header's),
# collections, single and batch upserts from NumPy arrays (float64 and non-contiguous input
# converted), get with metadata and model, delete, search returning NumPy ids and distances that
# agree with brute force, filters, persistence across a reopen, collections listed and described
# (shoal_collection_list/info), and every failure as ShoalError carrying the C code and message,
# of the subclass of its primary code (or a Python TypeError/ValueError before any C call).
import os
import threading

import numpy as np
import pytest

import shoal
from shoal._header import HeaderError, parse_header

SOURCE = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))


def exports():
    with open(os.path.join(SOURCE, "node", "capi", "exports.txt")) as f:
        return [line.split()[0] for line in f if line.strip() and not line.startswith("#")]


def test_every_export_is_declared_from_the_header_and_callable():
    names = exports()
    assert "shoal_search" in names
    # shoal_internal_* entry points are for Shoal's own libraries (libshoal_mesh), not in shoal.h.
    for name in (n for n in names if not n.startswith("shoal_internal_")):
        assert callable(getattr(shoal.lib, name)), name
    assert shoal.version() == "%d.%d.%d" % (
        shoal.constants["SHOAL_VERSION_MAJOR"], shoal.constants["SHOAL_VERSION_MINOR"],
        shoal.constants["SHOAL_VERSION_PATCH"])
    assert shoal.lib.shoal_version_number() == shoal.constants["SHOAL_VERSION_NUMBER"]


def test_codes_and_layouts_come_from_the_header():
    assert (shoal.E_DIMENSION, shoal.EINVAL, shoal.E_NORECORD) == (0x101, 1, 0x202)
    assert shoal.ffi.sizeof("shoal_error") >= shoal.constants["SHOAL_ERROR_MESSAGE_BYTES"] + 4
    assert shoal.ffi.sizeof(shoal.ffi.typeof("shoal_hit").fields[2][1].type) == \
        shoal.constants["SHOAL_MAX_ID_BYTES"] + 1
    assert "SHOAL_API" not in parse_header(open(shoal.header_path).read())[0]


def test_header_parser_refuses_what_it_cannot_read():
    with pytest.raises(HeaderError, match="function-like"):
        parse_header("#define SHOAL_F(x) (x)\n")
    with pytest.raises(HeaderError, match="cannot evaluate"):
        parse_header("#if SHOAL_X > 2\n#endif\n")
    with pytest.raises(HeaderError, match="neither an integer"):
        parse_header("#define SHOAL_S \"text\"\n")
    cdef, consts = parse_header("#define A 2\n#define B (A * 3 + 0x10)\n#ifdef __cplusplus\n"
                                "extern \"C\" {\n#endif\nint f(void);\n")
    assert consts == {"A": 2, "B": 22} and "extern" not in cdef and "int f(void);" in cdef


def test_collections_create_count_drop(db):
    db.create_collection("a", 8, metric="cosine")
    db.create_collection("b", 3)
    info = db.collection_info("a")
    assert (info.name, info.dimension, info.metric, info.count) == ("a", 8, "cosine", 0)
    assert db.collections() == ["a", "b"]
    with pytest.raises(shoal.ShoalError) as e:
        db.create_collection("a", 8)
    assert e.value.code == shoal.E_EXISTS and e.value.primary == shoal.ECONFLICT
    db.drop_collection("a")
    with pytest.raises(shoal.ShoalError) as e:
        db.count("a")
    assert e.value.code == shoal.E_NOCOLLECTION and "a" in e.value.message
    with pytest.raises(ValueError, match="metric"):
        db.create_collection("c", 4, metric="hamming")
    with pytest.raises(shoal.ShoalError) as e:
        db.create_collection("bad name!", 4)
    assert e.value.primary == shoal.EINVAL


def test_batch_upsert_and_search_agree_with_brute_force(db):
    rng = np.random.default_rng(7)
    data = rng.standard_normal((300, 16)).astype(np.float32)
    ids = [f"v{i}" for i in range(len(data))]
    db.create_collection("v", 16)
    db.upsert_batch("v", ids, data)
    assert db.count("v") == 300
    recall = 0
    for qi in range(0, 300, 15):
        got_ids, dist = db.search("v", data[qi], k=10, ef=100)
        assert isinstance(got_ids, np.ndarray) and got_ids.dtype == object
        assert dist.dtype == np.float32 and len(got_ids) == len(dist) == 10
        assert got_ids[0] == ids[qi] and dist[0] == pytest.approx(0.0, abs=1e-4)
        assert np.all(np.diff(dist) >= 0)
        exact = np.argsort(((data - data[qi]) ** 2).sum(axis=1))[:10]
        recall += len(set(got_ids) & {ids[i] for i in exact})
        # Distances are squared L2, as the brute force computes them.
        assert dist[1] == pytest.approx(((data[exact[1]] - data[qi]) ** 2).sum(), rel=1e-3)
    assert recall / (20 * 10) >= 0.95


def test_float64_and_non_contiguous_input_is_converted(db):
    db.create_collection("c", 4)
    wide = np.arange(40, dtype=np.float64).reshape(5, 8)
    view = wide[:, ::2]  # 5 x 4, not contiguous, float64
    db.upsert_batch("c", [b"r0", "r1", "r2", "r3", "r4"], view)
    np.testing.assert_array_equal(db.get("c", "r3").vector, view[3].astype(np.float32))
    db.upsert("c", "single", [1, 2, 3, 4])
    assert db.get("c", "single").vector.dtype == np.float32


def test_metadata_model_get_delete_and_filters(db):
    db.create_collection("p", 2)
    vecs = np.array([[1, 0], [0.9, 0.1], [0, 1]], dtype=np.float32)
    meta = [{"place": "outdoor", "year": 2024, "ok": True, "score": 0.5},
            {"place": "outdoor", "year": 2019},
            None]
    db.upsert_batch("p", ["beach", "forest", "kitchen"], vecs, metadata=meta, model="emb-v1")
    rec = db.get("p", "beach")
    assert rec.id == "beach" and rec.model == "emb-v1"
    assert rec.metadata == {"place": "outdoor", "year": 2024, "ok": True, "score": 0.5}
    assert len(rec.siblings) == 1
    assert db.get("p", "kitchen").metadata == {}
    ids, _ = db.search("p", [1, 0], k=3, filter="year>=2020")
    assert list(ids) == ["beach"]
    ids, _ = db.search("p", [1, 0], k=3, filter="place=outdoor")
    assert list(ids) == ["beach", "forest"]
    assert db.get("p", "nope") is None
    assert db.delete("p", "beach") is True
    assert db.delete("p", "beach") is False
    assert db.get("p", "beach") is None
    assert db.count("p") == 2
    db.upsert("p", "beach", [1, 0], metadata={"place": "é"})
    assert db.get("p", "beach").metadata == {"place": "é"}


def test_errors_carry_the_code_and_the_message(db):
    db.create_collection("e", 3)
    with pytest.raises(shoal.ShoalError) as e:
        db.upsert("e", "x", [1, 2])
    assert e.value.code == shoal.E_DIMENSION and e.value.primary == shoal.EINVAL
    assert "dimension 2" in e.value.message and "0x101" in str(e.value)
    with pytest.raises(shoal.ShoalError) as e:
        db.upsert("e", "x", [1, np.nan, 2])
    assert e.value.code == shoal.E_NONFINITE
    with pytest.raises(shoal.ShoalError) as e:
        db.upsert("e", b"bad\xff", [1, 2, 3])
    assert e.value.code == shoal.E_MALFORMED and "UTF-8" in e.value.message
    with pytest.raises(shoal.ShoalError) as e:
        db.search("e", [1, 2, 3], k=3, filter="year>>2021")
    assert e.value.code == shoal.E_MALFORMED and "at byte" in e.value.message
    with pytest.raises(shoal.ShoalError) as e:
        db.upsert("missing", "x", [1, 2, 3])
    assert e.value.code == shoal.E_NOCOLLECTION
    # A rejected batch changes nothing.
    with pytest.raises(shoal.ShoalError):
        db.upsert_batch("e", ["a", "b"], [[1, 2, 3], [np.inf, 0, 0]])
    assert db.count("e") == 0
    with pytest.raises(ValueError, match="2-d"):
        db.upsert_batch("e", ["a"], [1, 2, 3])
    with pytest.raises(ValueError, match="2 ids for 1 vectors"):
        db.upsert_batch("e", ["a", "b"], [[1, 2, 3]])
    with pytest.raises(TypeError, match="metadata value"):
        db.upsert("e", "a", [1, 2, 3], metadata={"k": [1]})
    # k beyond the API's limit is refused naming it before a hit array is allocated (k=10**9
    # raised a bare MemoryError); the limit itself is served.
    db.upsert("e", "a", [1, 2, 3])
    for k in (0, shoal.MAX_K + 1, 10**9):
        with pytest.raises(ValueError, match=f"k must be 1..1000, got {k}$"):
            db.search("e", [1, 2, 3], k=k)
    assert list(db.search("e", [1, 2, 3], k=shoal.MAX_K)[0]) == ["a"]
    # An int past 64 bits names its key and the range (it raised a bare OverflowError); the
    # extremes of the range are stored.
    with pytest.raises(ValueError, match=r"key 'big' must be a 64-bit signed integer .* got 9223372036854775808$"):
        db.upsert("e", "a", [1, 2, 3], metadata={"big": 2**63})
    db.upsert("e", "x", [1, 2, 3], metadata={"lo": -2**63, "hi": 2**63 - 1})


def test_a_second_open_is_unavailable_and_data_persists(tmp_path):
    path = str(tmp_path / "d")
    with shoal.open(path) as db:
        db.create_collection("c", 2)
        db.upsert("c", "a", [1, 2])
        with pytest.raises(shoal.ShoalError) as e:
            shoal.open(path)
        assert e.value.primary == shoal.EUNAVAILABLE and "this process" in e.value.message
    db.close()  # idempotent
    with pytest.raises(ValueError, match="closed"):
        db.count("c")
    with shoal.open(path, max_store_bytes=1 << 30) as db:
        np.testing.assert_array_equal(db.get("c", "a").vector, [1, 2])


def test_threads_share_one_handle(db):
    db.create_collection("t", 4)
    rng = np.random.default_rng(1)
    data = rng.standard_normal((400, 4)).astype(np.float32)
    errors = []

    def writer(start):
        try:
            for i in range(start, start + 100, 20):
                db.upsert_batch("t", [f"{j}" for j in range(i, i + 20)], data[i:i + 20])
        except Exception as exc:  # reported below
            errors.append(exc)

    def reader():
        try:
            for i in range(50):
                db.search("t", data[i], k=5)
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(s,)) for s in (0, 100, 200, 300)]
    threads += [threading.Thread(target=reader) for _ in range(2)]
    db.upsert("t", "seed", data[0])
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert db.count("t") == 401


def test_collections_are_listed_and_described(db):
    assert db.collections() == []
    db.create_collection("photos", 4, metric="cosine")
    db.create_collection("Audio", 2, metric="ip")
    db.create_collection("tmp", 3)
    db.drop_collection("tmp")
    assert db.collections() == ["Audio", "photos"]  # byte order, dropped ones left out
    db.upsert_batch("photos", ["a", "b"], np.eye(2, 4, dtype=np.float32))
    info = db.collection_info("photos")
    assert info == shoal.CollectionInfo(name="photos", dimension=4, metric="cosine", count=2,
                                        m=16, ef_construction=200, ef_search=64, quantized=True,
                                        index_bytes=info.index_bytes)
    assert info.index_bytes > 0
    assert db.collection_info("Audio").metric == "ip"
    with pytest.raises(shoal.NotFoundError) as e:
        db.collection_info("tmp")
    assert e.value.code == shoal.E_NOCOLLECTION and "tmp" in e.value.message


def test_errors_are_typed_by_primary_code(db, tmp_path):
    db.create_collection("v", 3)
    with pytest.raises(shoal.InvalidArgumentError) as e:
        db.upsert("v", "x", [1.0, 2.0])
    assert e.value.code == shoal.E_DIMENSION and isinstance(e.value, shoal.ShoalError)
    assert isinstance(e.value, ValueError)  # what Python code already catches for bad input
    with pytest.raises(shoal.ConflictError) as e:
        db.create_collection("v", 3)
    assert e.value.code == shoal.E_EXISTS
    with pytest.raises(shoal.NotFoundError) as e:
        db.count("missing")
    assert isinstance(e.value, LookupError)
    with pytest.raises(shoal.UnavailableError) as e:
        shoal.open(db.path)
    assert e.value.code == shoal.EUNAVAILABLE
    # Every primary code has its class; an unknown one is still a ShoalError.
    for code, cls in [(shoal.EIO, shoal.IoError), (shoal.ECORRUPTION, shoal.CorruptionError),
                      (shoal.EINTERNAL, shoal.InternalError), (shoal.E_MAPFULL, shoal.IoError)]:
        assert type(shoal._error(code, "m")) is cls
    assert type(shoal._error(0x7F, "m")) is shoal.ShoalError
