"""Python binding of Shoal's C API (shoal.h), through cffi in ABI mode, with NumPy arrays in and out.

    import numpy as np, shoal
    with shoal.open("data") as db:
        db.create_collection("photos", 512, metric="cosine")
        db.upsert_batch("photos", ["a", "b"], np.random.rand(2, 512).astype(np.float32),
                        metadata=[{"place": "indoor"}, {"place": "outdoor", "year": 2024}])
        ids, distances = db.search("photos", query, k=10, filter="place=indoor")

Declarations come from shoal.h itself, parsed at import (shoal._header; no layout is copied by
hand). Where the pieces are found:
- the library: $SHOAL_LIBRARY (a path to libshoal.so), else the dynamic loader's search for
  libshoal.so.0 (an installed Shoal, or LD_LIBRARY_PATH);
- the header: $SHOAL_HEADER, else the copy installed in this package's directory (the Debian
  package python3-shoal ships the shoal.h of its libshoal0), else <libdir>/../include/shoal.h
  beside the library, else the source tree (../../node/capi/shoal.h from this package), else
  /usr/local/include and /usr/include.
Importing fails with ImportError naming what was searched when either is missing, or when the
header and the library disagree on the major version.

Errors: every failed call raises ShoalError, whose .code is the C API's full code (primary code
in the low byte, detail above it: `e.code == shoal.E_DIMENSION`, `e.primary == shoal.EINVAL`) and
whose .message is the library's message (it names the limit and the value seen). The exception's
class says what the caller should do, one subclass per primary code: InvalidArgumentError (fix
the call), NotFoundError, ConflictError (re-read; E_EXISTS), UnavailableError (reconnect; the
directory is open elsewhere), OverloadedError, UnauthenticatedError, CorruptionError, IoError
(E_MAPFULL, E_DISKFULL), UnimplementedError, InternalError; all are ShoalError. "Not found" is a
normal outcome where Python has a natural value for it: get() returns None and delete() returns
False for a record that is not there. Wrong Python types or shapes raise TypeError/ValueError
before any C call.

Threads: a Database may be shared by threads (the C handle serialises writes and runs searches in
parallel; cffi releases the GIL during each call). Durability: upsert, upsert_batch and delete
return after the change is committed and synced.
"""

import builtins
import ctypes.util
import json
import os
from dataclasses import dataclass, field

import numpy as np
from cffi import FFI

from ._header import HeaderError, parse_header

__all__ = ["open", "connect", "Database", "Record", "CollectionInfo", "ShoalError", "InvalidArgumentError",
           "NotFoundError", "ConflictError", "UnavailableError", "OverloadedError",
           "UnauthenticatedError", "CorruptionError", "IoError", "UnimplementedError",
           "InternalError", "version", "HeaderError"]

_here = os.path.dirname(os.path.abspath(__file__))


def _find_library():
    path = os.environ.get("SHOAL_LIBRARY")
    if path:
        if not os.path.exists(path):
            raise ImportError(f"shoal: SHOAL_LIBRARY={path} does not exist")
        return path, [path]
    name = ctypes.util.find_library("shoal")
    return (name or "libshoal.so.0"), ["SHOAL_LIBRARY", "the loader's search for libshoal.so.0"]


def _find_header(library_path):
    env = os.environ.get("SHOAL_HEADER")
    if env:
        return env, [env]
    candidates = [os.path.join(_here, "shoal.h")]
    if os.path.isabs(library_path):
        candidates.append(os.path.join(os.path.dirname(library_path), "..", "include", "shoal.h"))
    candidates += [
        os.path.join(_here, "..", "..", "..", "node", "capi", "shoal.h"),
        "/usr/local/include/shoal.h",
        "/usr/include/shoal.h",
    ]
    for c in candidates:
        if os.path.exists(c):
            return os.path.normpath(c), candidates
    return None, ["SHOAL_HEADER"] + candidates


def _load():
    library, searched_lib = _find_library()
    header, searched_h = _find_header(library)
    if header is None:
        raise ImportError("shoal: cannot find shoal.h (searched: " + ", ".join(searched_h) + ")")
    with builtins.open(header, encoding="utf-8") as f:
        cdef, constants = parse_header(f.read())
    ffi = FFI()
    ffi.cdef(cdef)
    try:
        lib = ffi.dlopen(library)
    except OSError as e:
        raise ImportError(f"shoal: cannot load libshoal ({e}; searched: "
                          + ", ".join(searched_lib) + ")") from e
    if lib.shoal_version_number() // 10000 != constants["SHOAL_VERSION_MAJOR"]:
        raise ImportError(f"shoal: {header} is for major version {constants['SHOAL_VERSION_MAJOR']}"
                          f" but {library} is {ffi.string(lib.shoal_version()).decode()}")
    return ffi, lib, constants, header, library


ffi, lib, constants, header_path, library_path = _load()

# The codes and metrics as module constants, named without the prefix: shoal.OK, shoal.EINVAL,
# shoal.E_DIMENSION, ... (from the header's #defines).
for _name, _value in constants.items():
    if _name.startswith(("SHOAL_E", "SHOAL_OK")):
        globals()[_name[len("SHOAL_"):]] = _value
del _name, _value

# The most hits one search returns (docs/api.md, "Limits": k up to 1,000).
MAX_K = 1000

_METRICS = {"l2": lib.SHOAL_METRIC_L2, "ip": lib.SHOAL_METRIC_IP, "cosine": lib.SHOAL_METRIC_COSINE}
_METRIC_NAMES = {v: k for k, v in _METRICS.items()}


def version():
    """The library's version string, e.g. "0.1.0"."""
    return ffi.string(lib.shoal_version()).decode()


class ShoalError(Exception):
    """A failed C API call. code: the full code; primary: code & 0xff; message: the library's."""

    def __init__(self, code, message):
        self.code = code
        self.primary = code & 0xFF
        self.message = message
        super().__init__(f"{message} (code 0x{code:x})")


class InvalidArgumentError(ShoalError, ValueError):
    """SHOAL_EINVAL: fix the call (E_DIMENSION, E_NONFINITE, E_MALFORMED, ...)."""


class NotFoundError(ShoalError, LookupError):
    """SHOAL_ENOTFOUND: a normal outcome (E_NOCOLLECTION, E_NORECORD)."""


class ConflictError(ShoalError):
    """SHOAL_ECONFLICT: re-read (E_EXISTS)."""


class UnavailableError(ShoalError):
    """SHOAL_EUNAVAILABLE: retry later or reconnect (the data directory is open elsewhere)."""


class OverloadedError(ShoalError):
    """SHOAL_EOVERLOADED: back off."""


class UnauthenticatedError(ShoalError):
    """SHOAL_EUNAUTHENTICATED: stop."""


class CorruptionError(ShoalError):
    """SHOAL_ECORRUPTION: quarantine and re-sync."""


class IoError(ShoalError, OSError):
    """SHOAL_EIO: report or retry (E_MAPFULL, E_DISKFULL)."""


class UnimplementedError(ShoalError):
    """SHOAL_EUNIMPLEMENTED: fall back (E_VERSION, E_PARAMETERS)."""


class InternalError(ShoalError):
    """SHOAL_EINTERNAL: a bug in Shoal."""


_ERROR_CLASSES = {
    constants["SHOAL_EINVAL"]: InvalidArgumentError,
    constants["SHOAL_ENOTFOUND"]: NotFoundError,
    constants["SHOAL_ECONFLICT"]: ConflictError,
    constants["SHOAL_EUNAVAILABLE"]: UnavailableError,
    constants["SHOAL_EOVERLOADED"]: OverloadedError,
    constants["SHOAL_EUNAUTHENTICATED"]: UnauthenticatedError,
    constants["SHOAL_ECORRUPTION"]: CorruptionError,
    constants["SHOAL_EIO"]: IoError,
    constants["SHOAL_EUNIMPLEMENTED"]: UnimplementedError,
    constants["SHOAL_EINTERNAL"]: InternalError,
}


def _error(rc, msg):
    """The ShoalError subclass of a code's primary code (ShoalError itself for an unknown one)."""
    return _ERROR_CLASSES.get(rc & 0xFF, ShoalError)(rc, msg)


def _check(rc, err):
    if rc != 0:
        msg = ffi.string(err.message).decode("utf-8", "replace")
        if not msg:
            msg = ffi.string(lib.shoal_strerror(rc)).decode("utf-8", "replace")
        raise _error(rc, msg)


def _text(s, what):
    if isinstance(s, str):
        return s.encode("utf-8", "surrogateescape")
    if isinstance(s, (bytes, bytearray)):
        return bytes(s)
    raise TypeError(f"{what} must be str or bytes, not {type(s).__name__}")


def _decode_id(b):
    # surrogateescape: an id that is not UTF-8 (stored before UTF-8 was enforced) still round-trips
    # into get() and delete().
    return b.decode("utf-8", "surrogateescape")


def _vectors(data, what, ndim):
    arr = np.ascontiguousarray(data, dtype=np.float32)
    if arr.ndim != ndim:
        shape = "a 1-d array" if ndim == 1 else "a 2-d array (rows x dimension)"
        raise ValueError(f"{what} must be {shape}, got shape {arr.shape}")
    return arr


class _Meta:
    """A shoal_meta built from a dict; freed when the object goes."""

    def __init__(self, values):
        if not isinstance(values, dict):
            raise TypeError(f"metadata must be a dict, not {type(values).__name__}")
        self.ptr = ffi.gc(lib.shoal_meta_new(), lib.shoal_meta_free)
        err = ffi.new("shoal_error *")
        for key, value in values.items():
            k = _text(key, "a metadata key")
            # bool before int: bool is an int in Python.
            if isinstance(value, (bool, np.bool_)):
                rc = lib.shoal_meta_set_bool(self.ptr, k, 1 if value else 0, err)
            elif isinstance(value, (int, np.integer)):
                if not -2**63 <= int(value) < 2**63:
                    raise ValueError(f"metadata value of key {key!r} must be a 64-bit signed integer "
                                     f"(-2**63 .. 2**63 - 1), got {int(value)}")
                rc = lib.shoal_meta_set_int(self.ptr, k, int(value), err)
            elif isinstance(value, (float, np.floating)):
                rc = lib.shoal_meta_set_float(self.ptr, k, float(value), err)
            elif isinstance(value, (str, bytes)):
                rc = lib.shoal_meta_set_string(self.ptr, k, _text(value, "a metadata value"), err)
            else:
                raise TypeError(f"metadata value of key {key!r} must be str, int, float or bool, "
                                f"not {type(value).__name__}")
            _check(rc, err)


@dataclass
class Record:
    """A record read by get(): the winning value, and the vectors of concurrent siblings."""

    id: str
    vector: np.ndarray  # float32, 1-d, a copy
    model: str  # "" when none was given
    metadata: dict = field(default_factory=dict)
    # Vectors of every concurrent value, sibling 0 (the winner) first; one entry without conflict.
    siblings: list = field(default_factory=list)


@dataclass
class CollectionInfo:
    """A collection's parameters and state (shoal_collection_info)."""

    name: str
    dimension: int
    metric: str  # "l2", "ip" or "cosine"
    count: int  # live records
    m: int  # HNSW graph degree
    ef_construction: int
    ef_search: int  # the ef of a search that passes ef=0
    quantized: bool  # int8-quantized graph
    index_bytes: int  # memory held by the index (approximate)


def _float_copy(ptr, n):
    return np.frombuffer(ffi.buffer(ptr, 4 * n), dtype=np.float32).copy()


class Database:
    """An open data directory (shoal.open), or a connection to the daemon (shoal.connect). Use as
    a context manager, or call close()."""

    def __init__(self, path, max_store_bytes=None):
        err = ffi.new("shoal_error *")
        opts = ffi.NULL
        if max_store_bytes is not None:
            opts = ffi.gc(lib.shoal_options_new(), lib.shoal_options_free)
            _check(lib.shoal_options_set_max_store_bytes(opts, int(max_store_bytes), err), err)
        out = ffi.new("shoal_db **")
        _check(lib.shoal_open(os.fsencode(path), opts, out, err), err)
        self._db = ffi.gc(out[0], lib.shoal_close)
        self.path = path

    # Lifetime. ---------------------------------------------------------------------------------
    def close(self):
        """Closes the handle (acknowledged writes are already durable; queued index updates may
        be left to the next open). Idempotent."""
        if self._db is not None:
            ffi.release(self._db)
            self._db = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _handle(self):
        if self._db is None:
            raise ValueError("the database is closed")
        return self._db

    # Collections. ------------------------------------------------------------------------------
    def create_collection(self, name, dimension, metric="l2"):
        """Creates a collection. metric: "l2", "ip" or "cosine". ShoalError E_EXISTS if it exists."""
        if metric not in _METRICS:
            raise ValueError(f"metric must be one of {sorted(_METRICS)}, not {metric!r}")
        err = ffi.new("shoal_error *")
        _check(lib.shoal_collection_create(self._handle(), _text(name, "name"), int(dimension),
                                           _METRICS[metric], err), err)

    def drop_collection(self, name):
        """Drops a collection and its records. ShoalError E_NOCOLLECTION if there is none."""
        err = ffi.new("shoal_error *")
        _check(lib.shoal_collection_drop(self._handle(), _text(name, "name"), err), err)

    def count(self, name):
        """The number of live records in a collection."""
        err = ffi.new("shoal_error *")
        out = ffi.new("uint64_t *")
        _check(lib.shoal_collection_count(self._handle(), _text(name, "name"), out, err), err)
        return int(out[0])

    def collections(self):
        """The names of the collections (a list of str, in byte order of the names)."""
        err = ffi.new("shoal_error *")
        out = ffi.new("shoal_name_list **")
        _check(lib.shoal_collection_list(self._handle(), out, err), err)
        try:
            return [_decode_id(ffi.string(lib.shoal_name_list_get(out[0], i)))
                    for i in range(lib.shoal_name_list_count(out[0]))]
        finally:
            lib.shoal_name_list_free(out[0])

    def collection_info(self, name):
        """A CollectionInfo: dimension, metric, live count and index parameters. NotFoundError
        (E_NOCOLLECTION) when there is no such collection."""
        err = ffi.new("shoal_error *")
        d = ffi.new("shoal_collection_desc *")
        _check(lib.shoal_collection_info(self._handle(), _text(name, "name"), d,
                                         ffi.sizeof("shoal_collection_desc"), err), err)
        return CollectionInfo(name=_decode_id(ffi.string(d.name)), dimension=d.dimension,
                              metric=_METRIC_NAMES.get(d.metric, str(d.metric)), count=d.count,
                              m=d.m, ef_construction=d.ef_construction, ef_search=d.ef_search,
                              quantized=bool(d.quantized), index_bytes=d.index_bytes)

    # Records. ----------------------------------------------------------------------------------
    def upsert(self, collection, id, vector, metadata=None, model=None):
        """Inserts or replaces one record; durable on return."""
        vec = _vectors(vector, "vector", 1)
        idb = _text(id, "id")
        meta = _Meta(metadata) if metadata is not None else None
        err = ffi.new("shoal_error *")
        _check(lib.shoal_upsert(self._handle(), _text(collection, "collection"), idb, len(idb),
                                ffi.from_buffer("float[]", vec), vec.shape[0],
                                meta.ptr if meta else ffi.NULL,
                                _text(model, "model") if model is not None else ffi.NULL, err), err)

    def upsert_batch(self, collection, ids, vectors, metadata=None, model=None):
        """Inserts or replaces len(ids) records atomically (all or nothing; at most 10,000).

        vectors: a 2-d array, one row per id (converted to C-contiguous float32 if needed);
        metadata: None or a sequence of dicts (or None) of the same length."""
        arr = _vectors(vectors, "vectors", 2)
        ids = list(ids)
        if len(ids) != arr.shape[0]:
            raise ValueError(f"{len(ids)} ids for {arr.shape[0]} vectors")
        id_bytes = [_text(i, "id") for i in ids]
        id_bufs = [ffi.new("char[]", b) for b in id_bytes]
        c_ids = ffi.new("const char *[]", id_bufs)
        c_lens = ffi.new("size_t[]", [len(b) for b in id_bytes])
        c_metas = ffi.NULL
        metas = []
        if metadata is not None:
            metadata = list(metadata)
            if len(metadata) != len(ids):
                raise ValueError(f"{len(metadata)} metadata entries for {len(ids)} ids")
            metas = [_Meta(m) if m is not None else None for m in metadata]
            c_metas = ffi.new("const shoal_meta *[]", [m.ptr if m else ffi.NULL for m in metas])
        err = ffi.new("shoal_error *")
        _check(lib.shoal_upsert_batch(self._handle(), _text(collection, "collection"), len(ids),
                                      c_ids, c_lens, ffi.from_buffer("float[]", arr), arr.shape[1],
                                      c_metas,
                                      _text(model, "model") if model is not None else ffi.NULL,
                                      err), err)

    def delete(self, collection, id):
        """Deletes a record. Returns False when there was no live record of that id."""
        idb = _text(id, "id")
        err = ffi.new("shoal_error *")
        rc = lib.shoal_delete(self._handle(), _text(collection, "collection"), idb, len(idb), err)
        if rc == constants["SHOAL_E_NORECORD"]:
            return False
        _check(rc, err)
        return True

    def get(self, collection, id):
        """Reads a record: a Record, or None when there is no live record of that id."""
        idb = _text(id, "id")
        err = ffi.new("shoal_error *")
        out = ffi.new("shoal_record **")
        rc = lib.shoal_get(self._handle(), _text(collection, "collection"), idb, len(idb), out, err)
        if rc == constants["SHOAL_E_NORECORD"]:
            return None
        if rc != 0 and out[0] != ffi.NULL:
            # SHOAL_E_COLD hands back the evicted record's metadata too: free it before raising.
            lib.shoal_record_free(out[0])
        _check(rc, err)
        rec = out[0]
        try:
            dim = ffi.new("size_t *")
            vec = _float_copy(lib.shoal_record_vector(rec, dim), dim[0])
            model_ptr = lib.shoal_record_model(rec)
            model = ffi.string(model_ptr).decode("utf-8", "replace") if model_ptr != ffi.NULL else ""
            meta_ptr = lib.shoal_record_metadata_json(rec)
            meta = json.loads(ffi.string(meta_ptr).decode("utf-8")) if meta_ptr != ffi.NULL else {}
            siblings = []
            for i in range(lib.shoal_record_sibling_count(rec)):
                siblings.append(_float_copy(lib.shoal_record_sibling_vector(rec, i, dim), dim[0]))
        finally:
            lib.shoal_record_free(rec)
        return Record(_decode_id(idb), vec, model, meta, siblings)

    def search(self, collection, query, k=10, ef=0, filter=None):
        """k nearest neighbours of a 1-d query. Returns (ids, distances): NumPy arrays of the same
        length (at most k; fewer only when fewer records match), closest first; ids has dtype
        object (str), distances float32 (smaller is closer for every metric)."""
        q = _vectors(query, "query", 1)
        k = int(k)
        # The hits array is allocated here before the C call checks k, so a k beyond the API's
        # limit is refused first (k=10**9 raised a bare MemoryError).
        if not 1 <= k <= MAX_K:
            raise ValueError(f"k must be 1..{MAX_K}, got {k}")
        hits = ffi.new("shoal_hit[]", k)
        count = ffi.new("size_t *")
        err = ffi.new("shoal_error *")
        _check(lib.shoal_search(self._handle(), _text(collection, "collection"),
                                ffi.from_buffer("float[]", q), q.shape[0], k, int(ef),
                                _text(filter, "filter") if filter is not None else ffi.NULL,
                                hits, k, count, err), err)
        n = count[0]
        ids = np.empty(n, dtype=object)
        distances = np.empty(n, dtype=np.float32)
        for i in range(n):
            ids[i] = _decode_id(ffi.buffer(hits[i].id, hits[i].id_len)[:])
            distances[i] = hits[i].distance
        return ids, distances


def connect(socket_path):
    """Client mode (shoal_connect): a Database on the daemon (shoald) listening on the Unix socket
    `socket_path`. Every method works as on an opened directory, with the same errors; close()
    closes the connection. UnavailableError when nothing listens there, when the connection was
    lost (the next call reconnects), or when libshoal_client.so.0 cannot be loaded (the message
    names it; $SHOAL_CLIENT_LIBRARY overrides where it is looked for)."""
    err = ffi.new("shoal_error *")
    out = ffi.new("shoal_db **")
    _check(lib.shoal_connect(os.fsencode(socket_path), ffi.NULL, out, err), err)
    db = Database.__new__(Database)
    db._db = ffi.gc(out[0], lib.shoal_close)
    db.path = socket_path
    return db


def open(path, max_store_bytes=None):  # noqa: A001 (shoal.open, like sqlite3.connect)
    """Opens (creating if needed) the data directory `path`. ShoalError EUNAVAILABLE when another
    handle holds it (the message names the holder's PID)."""
    return Database(path, max_store_bytes=max_store_bytes)
