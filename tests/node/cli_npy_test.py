#!/usr/bin/env python3
"""tests/node/cli_npy_test.py: `shoal export`/`import` of NumPy .npy files, checked by NumPy itself
(issue 17).

Proves, with the real CLI on a data directory and Debian's NumPy:
  1. numpy -> shoal -> numpy: an array written by np.save, with an ids file and a metadata file,
     imported, then exported with `shoal export C F.npy`, reads back with np.load as float32,
     C order, shape (n, d), version 1.0 (a 128-byte header); every id's row is bit for bit the
     row numpy wrote, and its metadata line the object given (strings with spaces and non-ASCII,
     integers, floats, booleans, none);
  2. shoal -> shoal: the exported three files imported into a second data directory export to
     the same bytes (the side files line up with the rows), and the export's --json summary;
  3. an empty collection exports as shape (0, d), which np.load reads;
  4. malformed .npy headers are refused by import with exit 1 and a message naming the value
     seen, and leave the collection empty: float64, big-endian, Fortran order, 1-d and 3-d
     shapes (all written by numpy), a dimension of 0, a bad magic, format version 1.1, a header
     length that misaligns the data, a header above 10,000 bytes, a truncated header, an unknown
     key, a duplicate key, a missing key, junk after the dict; bytes after the announced rows
     are refused too;
  5. export refuses what .npy cannot hold, writing no file (nor a .tmp): records with
     different model tags (exit 1, naming both), standard output (exit 2), an unknown format.

Random data come from a seeded generator; the seed is printed (rerun: SHOAL_NPY_SEED=N).

usage: cli_npy_test.py SHOAL
"""
import json
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np

SHOAL = sys.argv[1]
fails = 0


def run(*args, check=True):
    r = subprocess.run([SHOAL, *args], capture_output=True, text=True)
    if check and r.returncode != 0:
        raise SystemExit(f"FAIL: shoal {' '.join(args)} exited {r.returncode}: {r.stdout} {r.stderr}")
    return r


def ok(what, cond, detail=""):
    global fails
    if cond:
        print("ok:", what)
    else:
        fails += 1
        print("FAIL:", what, detail)


def read_lines(path):
    with open(path, encoding="utf-8") as f:
        return f.read().split("\n")[:-1]


def npy_file(path, header_dict, data=b"", version=(1, 0), pad_to=64, header_len=None):
    """A .npy file written by hand: magic, version, length, the dict text, then data."""
    text = header_dict.encode("latin1")
    fixed = 6 + 2 + (2 if version[0] == 1 else 4)
    if pad_to:
        total = fixed + len(text) + 1
        text += b" " * ((-total) % pad_to)
    text += b"\n"
    n = len(text) if header_len is None else header_len
    length = struct.pack("<H", n) if version[0] == 1 else struct.pack("<I", n)
    with open(path, "wb") as f:
        f.write(b"\x93NUMPY" + bytes(version) + length + text + data)


def main():
    seed = int(os.environ.get("SHOAL_NPY_SEED", np.random.SeedSequence().entropy % 2**32))
    print(f"seed {seed} (rerun: SHOAL_NPY_SEED={seed})")
    rng = np.random.default_rng(seed)
    root = tempfile.mkdtemp(prefix="shoal-npy-")
    n, d = 2500, 24

    # 1. numpy -> shoal -> numpy.
    vectors = rng.standard_normal((n, d)).astype(np.float32)
    vectors[0, :] = [np.float32(1e-38)] * d  # denormal-adjacent values survive bit for bit
    ids = [f"photo {i} é" for i in range(n)]
    metas = []
    for i in range(n):
        m = {}
        if i % 3 == 0:
            m["place"] = ["indoor", "outdoor", "x y z ü"][i % 3 + (i % 2)]
        if i % 5 == 0:
            m["year"] = int(rng.integers(-2**40, 2**40))
        if i % 7 == 0:
            m["score"] = float(rng.standard_normal())
        if i % 11 == 0:
            m["flag"] = bool(i % 2)
        metas.append(m)
    src = os.path.join(root, "src.npy")
    np.save(src, vectors)
    with open(os.path.join(root, "src.ids"), "w", encoding="utf-8") as f:
        f.write("".join(i + "\n" for i in ids))
    with open(os.path.join(root, "src.meta"), "w", encoding="utf-8") as f:
        f.write("".join(json.dumps(m) + "\n" for m in metas))
    a = os.path.join(root, "a")
    run("-d", a, "init")
    run("-d", a, "collection", "create", "c", "--dim", str(d))
    run("-d", a, "import", "c", src, "--ids", os.path.join(root, "src.ids"), "--metadata",
        os.path.join(root, "src.meta"), "--batch", "300")
    out = os.path.join(root, "out.npy")
    r = run("-d", a, "export", "c", out)
    ok("export names its three files", "out.ids.txt" in r.stderr and "out.metadata.jsonl" in r.stderr, r.stderr)
    with open(out, "rb") as f:
        version = np.lib.format.read_magic(f)
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        ok("version 1.0, a 128-byte header", version == (1, 0) and f.tell() == 128, f"{version} {f.tell()}")
    ok("header: float32 little-endian, C order, (n, d)", dtype == np.dtype("<f4") and not fortran and shape == (n, d),
       f"{dtype} {fortran} {shape}")
    got = np.load(out)
    got_ids = read_lines(os.path.join(root, "out.ids.txt"))
    got_meta = [json.loads(x) for x in read_lines(os.path.join(root, "out.metadata.jsonl"))]
    ok("ids and metadata files have one line per row", len(got_ids) == n and len(got_meta) == n,
       f"{len(got_ids)} {len(got_meta)}")
    ok("no .tmp files left", not [x for x in os.listdir(root) if x.endswith(".tmp")], os.listdir(root))
    index = {i: k for k, i in enumerate(ids)}
    rows_equal = all(np.array_equal(got[k].view(np.uint32), vectors[index[i]].view(np.uint32))
                     for k, i in enumerate(got_ids))
    ok("every row is bit for bit numpy's row of that id", sorted(got_ids) == sorted(ids) and rows_equal)
    meta_equal = all(got_meta[k] == metas[index[i]] for k, i in enumerate(got_ids))
    ok("every metadata line is the object imported", meta_equal)

    # 2. shoal -> shoal: the three files import into a new directory and export to the same bytes.
    b = os.path.join(root, "b")
    run("-d", b, "init")
    run("-d", b, "collection", "create", "c", "--dim", str(d))
    run("-d", b, "import", "c", out, "--ids", os.path.join(root, "out.ids.txt"), "--metadata",
        os.path.join(root, "out.metadata.jsonl"))
    r = run("-d", b, "--json", "export", "c", os.path.join(root, "again.npy"))
    summary = json.loads(r.stdout)
    ok("--json summary", summary.get("ok") is True and summary.get("exported") == n and summary.get("dim") == d,
       r.stdout)
    same = all(open(os.path.join(root, "out" + s), "rb").read() == open(os.path.join(root, "again" + s), "rb").read()
               for s in (".npy", ".ids.txt", ".metadata.jsonl"))
    ok("re-imported export exports to the same bytes", same)

    # 3. An empty collection.
    run("-d", b, "collection", "create", "empty", "--dim", "7")
    run("-d", b, "export", "empty", os.path.join(root, "empty.npy"))
    e = np.load(os.path.join(root, "empty.npy"))
    ok("empty collection: shape (0, 7) float32", e.shape == (0, 7) and e.dtype == np.float32, f"{e.shape} {e.dtype}")

    # 4. Malformed headers: exit 1, the value seen named, nothing stored.
    bad = os.path.join(root, "bad.npy")
    row = np.zeros((2, 4), dtype="<f4").tobytes()
    good_dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 4), }"
    cases = [
        ("float64", lambda: np.save(bad, np.zeros((2, 4), dtype=np.float64)), "'<f8'"),
        ("big-endian", lambda: np.save(bad, np.zeros((2, 4), dtype=">f4")), "'>f4'"),
        ("Fortran order", lambda: np.save(bad, np.asfortranarray(np.zeros((2, 4), dtype=np.float32))),
         "fortran_order True"),
        ("1-d", lambda: np.save(bad, np.zeros(5, dtype=np.float32)), "shape (5,)"),
        ("3-d", lambda: np.save(bad, np.zeros((2, 3, 4), dtype=np.float32)), "shape (2, 3, 4)"),
        ("dimension 0", lambda: npy_file(bad, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 0), }"),
         "the dimension 0"),
        ("bad magic", lambda: open(bad, "wb").write(b"\x93NUMPX\x01\x00" + b" " * 120), "93 4e 55 4d 50 58"),
        ("version 1.1", lambda: npy_file(bad, good_dict, row, version=(1, 1)), "version 1.1"),
        ("misaligned header", lambda: npy_file(bad, good_dict, row, pad_to=0), "not a multiple of 16"),
        ("header above the limit", lambda: npy_file(bad, good_dict + " " * 20000, row, version=(2, 0)),
         "above the limit of 10000"),
        ("truncated header", lambda: npy_file(bad, good_dict, header_len=246), "ends after 118 of the 246 header bytes"),
        ("unknown key", lambda: npy_file(bad, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 4), "
                                              "'extra': 1, }", row), "unknown key 'extra'"),
        ("duplicate key", lambda: npy_file(bad, "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, "
                                                "'shape': (2, 4), }", row), "'descr' appears twice"),
        ("missing key", lambda: npy_file(bad, "{'descr': '<f4', 'shape': (2, 4), }", row), "no 'fortran_order'"),
        ("junk after the dict", lambda: npy_file(bad, good_dict + " x", row), "one final newline"),
        ("bytes after the rows", lambda: npy_file(bad, good_dict, row + b"\0\0\0\0"), "bytes after the 2 x 4"),
    ]
    run("-d", a, "collection", "create", "small", "--dim", "4")
    for name, write, needle in cases:
        write()
        r = run("-d", a, "import", "small", bad, "--format", "npy", "--batch", "1000", check=False)
        count = run("-d", a, "count", "small").stdout.strip()
        ok(f"malformed .npy ({name}): exit 1 naming {needle!r}, nothing stored",
           r.returncode == 1 and needle in r.stderr and count.endswith("0"), f"rc={r.returncode} {r.stderr!r} {count}")
    npy_file(bad, good_dict, row)
    r = run("-d", a, "import", "small", bad, "--format", "npy", check=False)
    ok("the same header done right imports", r.returncode == 0 and run("-d", a, "count", "small").stdout.strip()
       .endswith("2"), r.stderr)

    # 5. What export refuses, leaving no file behind.
    c = os.path.join(root, "c")
    run("-d", c, "init")
    run("-d", c, "collection", "create", "m", "--dim", "2")
    run("-d", c, "put", "m", "x", "--vector", "1,2", "--model", "clip")
    run("-d", c, "put", "m", "y", "--vector", "3,4", "--model", "siglip")
    mixed = os.path.join(root, "mixed", "m.npy")
    os.makedirs(os.path.dirname(mixed))
    r = run("-d", c, "export", "m", mixed, check=False)
    ok("different model tags: exit 1 naming both, no files", r.returncode == 1 and "'clip'" in r.stderr and
       "'siglip'" in r.stderr and os.listdir(os.path.dirname(mixed)) == [], f"{r.returncode} {r.stderr} "
       f"{os.listdir(os.path.dirname(mixed))}")
    r = run("-d", c, "export", "m", "--format", "npy", check=False)
    ok("npy to standard output: usage error (exit 2)", r.returncode == 2, f"{r.returncode} {r.stderr}")
    r = run("-d", c, "export", "m", os.path.join(root, "x.bin"), "--format", "parquet", check=False)
    ok("unknown export format: exit 2 naming it", r.returncode == 2 and "parquet" in r.stderr, r.stderr)

    print(f"{fails} failures" if fails else "cli_npy_test: OK")
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
