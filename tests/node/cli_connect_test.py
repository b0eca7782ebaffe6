#!/usr/bin/env python3
"""tests/node/cli_connect_test.py: the operator's CLI against a running shoald and offline (issue 14).

Proves, with real processes (shoald enrolled as in tests/mesh/shoald_test.py, one mesh peer that
the daemon dials):
  1. the data verbs (collection create/list/info, put/upsert, get, count, delete, search, stats)
     work through the daemon with --connect, and by default through $SHOAL_SOCKET when -d is
     not given; a refused call keeps its code and message (514, "no such record") in both modes;
  2. `get` prints a vector compactly (dimension, first and last values; --full for all);
     `search` labels its distances "squared L2" (text and JSON) and, in client mode, prints the
     peer's freshness;
  3. `shoal status`: the peer's row (device, tier, up, bytes) and "sink: none configured" (this
     daemon has no [sink]); the daemon's JSON under --json; after the peer stops, its row goes (the daemon
     reports open links only);
  4. import streams JSON lines (gzip-compressed too) and vector files (.fvecs with --ids and
     --metadata side files, .npy, IDX), a 15.7 MB IDX file with the CLI's peak memory under 50 MB;
     re-importing identical records writes nothing (written 0, all unchanged); an import stopped
     by SIGINT (reading a FIFO) exits 130 saying "stopped after N records; resume with --skip
     N", and --skip N then imports exactly the rest;
  5. usage errors exit 2 with a JSON error under --json (both -d and --connect; --ids with JSON
     lines; init through the daemon; an unknown option);
  6. export reads the store while the daemon runs (-d); export through the daemon (--connect, and
     $SHOAL_SOCKET by default) pages through the local API and writes exactly the offline
     export's bytes (JSON lines: 20,000 784-d records, many pages, the CLI's peak memory under
     50 MB; .npy with its side files), and a missing collection keeps its code; after SIGTERM, the
     same data is read offline with -d (get, count, search), and `status` without a daemon fails
     with exit 1.

  7. the C API's shoal_stats_json (through ctypes on libshoal): the daemon's JSON with its peer in
     client mode, the node's own counts in embedded mode; shoal_string_free frees it.

usage: cli_connect_test.py SHOAL SHOALD MESH_PEER LIBSHOAL
"""
import ctypes
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time

SHOAL, SHOALD, PEER, LIBSHOAL = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
GIVE_UP_S = 60
fails = 0


def run(*args, check=True, env=None, stdin=None):
    r = subprocess.run(args, capture_output=True, text=True, env=env, stdin=stdin)
    if check and r.returncode != 0:
        raise SystemExit(f"FAIL: {' '.join(args)} exited {r.returncode}: {r.stdout} {r.stderr}")
    return r


def ok(what, cond, detail=""):
    global fails
    if cond:
        print("ok:", what)
    else:
        fails += 1
        print("FAIL:", what, detail)


def wait_for(what, cond):
    deadline = time.monotonic() + GIVE_UP_S
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    ok(f"gave up after {GIVE_UP_S} s waiting for: {what}", False)
    return False


class Err(ctypes.Structure):
    _fields_ = [("code", ctypes.c_int), ("message", ctypes.c_char * 256)]


# Sanitizer builds: libshoal needs its sanitizer runtime loaded first, which python3 does not do;
# the big import is made smaller there and its memory bound is not checked.
NO_CTYPES = os.environ.get("SHOAL_TEST_NO_CTYPES") == "1"


def c_stats(how, path):
    """shoal_stats_json on a handle from shoal_connect or shoal_open: the parsed JSON."""
    lib = ctypes.CDLL(LIBSHOAL)
    db, err, out = ctypes.c_void_p(), Err(), ctypes.c_void_p()
    opener = lib.shoal_connect if how == "connect" else lib.shoal_open
    rc = opener(path.encode(), None, ctypes.byref(db), ctypes.byref(err))
    if rc != 0:
        return {"error": err.message.decode()}
    rc = lib.shoal_stats_json(db, ctypes.byref(out), ctypes.byref(err))
    text = ctypes.string_at(out).decode() if rc == 0 else None
    lib.shoal_string_free(out)
    lib.shoal_close(db)
    return json.loads(text) if text else {"error": err.message.decode()}


def main():
    root = tempfile.mkdtemp(prefix="shoal-cli-connect-")
    peer = daemon = None
    try:
        mesh = os.path.join(root, "mesh")
        run(SHOAL, "mesh", "init", "--dir", mesh)
        # The peer the daemon dials (warm).
        pdata = os.path.join(root, "peer")
        pkey = run(PEER, "--data", pdata, "--print-device-key").stdout.strip()
        run(SHOAL, "mesh", "enrol", "--mesh", mesh, "--device-key", pkey, "--role", "member", "--grant", "*:rw",
            "--days", "30", "--out", os.path.join(pdata, "device.cert"))
        peer = subprocess.Popen([PEER, "--data", pdata, "--certificate", os.path.join(pdata, "device.cert"),
                                 "--listen", "127.0.0.1:0"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                bufsize=1)
        pport = int(dict(f.split("=", 1) for f in peer.stdout.readline().split()[1:])["port"])

        data = os.path.join(root, "d")
        sock = os.path.join(root, "shoald.sock")
        conf = os.path.join(root, "shoald.toml")
        with open(conf, "w") as f:
            f.write(f'[node]\ndata_dir = "{data}"\ncertificate = "{data}/device.cert"\n\n'
                    f'[mesh]\nlisten = "127.0.0.1:0"\ndiscovery = false\n\n'
                    f'[[mesh.peers]]\naddress = "127.0.0.1:{pport}"\ntier = "warm"\n\n'
                    f'[api]\nsocket = "{sock}"\n\n[metrics]\nenabled = false\n')
        key = run(SHOALD, "--config", conf, "--print-device-key").stdout.strip()
        run(SHOAL, "mesh", "enrol", "--mesh", mesh, "--device-key", key, "--role", "member", "--grant", "*:rw",
            "--days", "30", "--out", os.path.join(data, "device.cert"))
        daemon = subprocess.Popen([SHOALD, "--config", conf], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                  text=True)
        ready = daemon.stdout.readline().split()
        if ready[:2] != ["shoald:", "ready"]:
            raise SystemExit(f"FAIL: shoald did not start: {ready}")

        c = [SHOAL, "--connect", sock]

        def cj(*args, check=True):
            r = run(*c, *args, "--json", check=check)
            return r.returncode, json.loads(r.stdout)

        # 1. Data verbs through the daemon.
        run(*c, "collection", "create", "v", "--dim", "3")
        run(*c, "put", "v", "a", "--vector", "1,0,0", "--meta", "color=red", "--model", "m1")
        run(*c, "upsert", "v", "b", "--vector", "0,1,0")
        run(*c, "put", "v", "c", "--vector", "0,0,1")
        run(*c, "delete", "v", "c")
        _, j = cj("count", "v")
        ok("count through the daemon", j.get("count") == 2, j)
        _, j = cj("collection", "info", "v")
        ok("collection info through the daemon", j.get("dimension") == 3 and j.get("distance") == "squared L2", j)
        r = run(SHOAL, "count", "v", "--connect", sock)
        ok("--connect after the command", r.stdout.strip() == "2", r.stdout)
        env = dict(os.environ, SHOAL_SOCKET=sock)
        r = run(SHOAL, "collection", "list", "--json", env=env)
        ok("without -d, $SHOAL_SOCKET is used by default", '"name":"v"' in r.stdout, r.stdout)
        rc, j = cj("get", "v", "nope", check=False)
        ok("a missing record through the daemon: exit 1, code 514", rc == 1 and j.get("code") == 514, j)
        missing_msg = j.get("error")
        _, j = cj("get", "v", "a")
        sib = j["siblings"][0]
        ok("get through the daemon", sib["vector"] == [1.0, 0.0, 0.0] and sib["metadata"] == {"color": "red"}
           and sib["model"] == "m1", j)

        # 2. Compact vectors, labelled distances, freshness.
        run(*c, "collection", "create", "wide", "--dim", "12")
        run(*c, "put", "wide", "x", "--vector", ",".join(str(i) for i in range(12)))
        out = run(*c, "get", "wide", "x").stdout
        ok("get prints a long vector compactly", "dim 12 [0, 1, 2, 3, ..., 10, 11] (--full for all)" in out, out)
        out = run(*c, "get", "wide", "x", "--full").stdout
        ok("get --full prints every value", "dim 12 [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]" in out, out)
        r = run(*c, "search", "v", "--vector", "1,0,0", "-k", "2")
        ok("search labels the distance column", r.stdout.startswith("# id\tsquared L2\tmetadata"), r.stdout)
        ok("search says what the distances are", "distances are squared L2" in r.stderr, r.stderr)
        wait_for("the daemon links to its peer", lambda: '"up":true' in run(*c, "status", "--json").stdout)
        r = run(*c, "search", "v", "--vector", "1,0,0", "-k", "2")
        ok("search prints the peer's freshness in client mode", "freshness: " in r.stderr and " up, " in r.stderr,
           r.stderr)
        _, j = cj("search", "v", "--vector", "1,0,0", "-k", "2")
        ok("search JSON: hits, metric label and freshness",
           [h["id"] for h in j["hits"]] == ["a", "b"] and j["distance"] == "squared L2" and j["metric"] == "l2"
           and len(j["freshness"]) == 1 and j["hits"][0]["metadata"] == {"color": "red"}, j)

        # 3. Status.
        r = run(*c, "status")
        ok("status: a peer row (warm, up)", any(" warm " in l and " up " in l for l in r.stdout.splitlines()), r.stdout)
        ok("status: no sink configured", "sink: none configured" in r.stdout, r.stdout)
        _, j = cj("status")
        ok("status --json: the daemon's JSON", j.get("ok") is True and len(j.get("peers", [])) == 1
           and j.get("sink_backlog") is None and "bytes_in" in j["peers"][0], j)

        if NO_CTYPES:
            print("skip: shoal_stats_json through ctypes (a sanitizer build's libshoal cannot be loaded into python3)")
        else:
            j = c_stats("connect", sock)
            ok("shoal_stats_json in client mode: the daemon's JSON with its peer",
               len(j.get("peers", [])) == 1 and j.get("collections") == 2, j)

        # 4. Import: JSON lines, vector files with side files, idempotence, resume.
        run(*c, "collection", "create", "imp", "--dim", "4")
        jl = os.path.join(root, "recs.jsonl")
        with open(jl, "w") as f:
            for i in range(100):
                f.write(json.dumps({"id": f"r{i}", "vector": [i, 1, 2, 3], "metadata": {"n": i}}) + "\n")
        _, j = cj("import", "imp", jl, "--batch", "7")
        ok("import of JSON lines through the daemon", j.get("imported") == 100 and j.get("written") == 100, j)
        _, j = cj("import", "imp", jl, "--batch", "7")
        ok("re-importing identical records writes nothing", j.get("written") == 0 and j.get("unchanged") == 100, j)
        run(*c, "collection", "create", "vec", "--dim", "3")
        fv, ids, meta = (os.path.join(root, n) for n in ("v.fvecs", "ids.txt", "meta.jsonl"))
        with open(fv, "wb") as f:
            for i in range(30):
                f.write(struct.pack("<i3f", 3, i, 1.0, 2.0))
        with open(ids, "w") as f:
            f.writelines(f"img-{i:03d}\n" for i in range(30))
        with open(meta, "w") as f:
            f.writelines(json.dumps({"label": i % 3}) + "\n" for i in range(30))
        _, j = cj("import", "vec", fv, "--ids", ids, "--metadata", meta, "--batch", "8")
        ok("import of .fvecs with --ids and --metadata", j.get("written") == 30, j)
        _, j = cj("get", "vec", "img-029")
        ok("ids and metadata from the side files", j["siblings"][0]["metadata"] == {"label": 2}
           and j["siblings"][0]["vector"] == [29.0, 1.0, 2.0], j)
        _, j = cj("import", "vec", fv, "--ids", ids, "--metadata", meta)
        ok("re-importing the vector file writes nothing", j.get("written") == 0 and j.get("unchanged") == 30, j)

        # Other formats: .npy, gzip-compressed JSON lines, IDX; memory bounded by a batch.
        import gzip
        import resource
        npy = os.path.join(root, "v.npy")
        header = "{'descr': '<f4', 'fortran_order': False, 'shape': (30, 3), }"
        header += " " * (63 - (10 + len(header)) % 64) + "\n"
        with open(npy, "wb") as f:
            f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode())
            f.write(struct.pack("<90f", *range(90)))
        run(*c, "collection", "create", "npy", "--dim", "3")
        _, j = cj("import", "npy", npy, "--id-prefix", "n")
        got = cj("get", "npy", "n29")[1]
        ok("import of .npy", j.get("written") == 30 and got["siblings"][0]["vector"] == [87.0, 88.0, 89.0], (j, got))
        gz = os.path.join(root, "recs.jsonl.gz")
        with open(jl, "rb") as f, gzip.open(gz, "wb") as g:
            g.write(f.read())
        run(*c, "collection", "create", "gz", "--dim", "4")
        _, j = cj("import", "gz", gz)
        ok("import of gzip-compressed JSON lines", j.get("written") == 100, j)
        # Under a sanitizer build (NO_CTYPES), 2,000 rows (the import runs ~50x slower there) and no
        # memory bound (the sanitizer's shadow memory is in the RSS).
        rows, dim = (2000 if NO_CTYPES else 20000), 784
        idx = os.path.join(root, "big-idx3-ubyte")
        with open(idx, "wb") as f:
            f.write(struct.pack(">BBBBIII", 0, 0, 8, 3, rows, 28, 28))
            row = bytes(range(256)) * 3 + bytes(dim - 768)
            for i in range(rows):
                f.write(row[i % 7:] + row[:i % 7])
        run(*c, "collection", "create", "big", "--dim", str(dim))
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        _, j = cj("import", "big", idx, "--batch", "500")
        rss_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        ok(f"import of a {rows * dim / 1e6:.1f} MB IDX file through the daemon ({j.get('seconds', 0):.1f} s)", j.get("written") == rows, j)
        # Read whole, the file would take 15.7 MB of bytes plus 63 MB of floats; streamed, the CLI
        # holds one batch (500 x 784 floats, 1.6 MB, plus its request).
        if not NO_CTYPES:
            ok(f"the CLI's peak memory stays bounded ({rss_kb // 1024} MB, bound 50 MB)", rss_kb < 50 * 1024,
               (before, rss_kb))

        run(*c, "collection", "create", "res", "--dim", "4")
        fifo = os.path.join(root, "fifo")
        os.mkfifo(fifo)
        imp = subprocess.Popen([*c, "import", "res", fifo, "--format", "jsonl", "--batch", "10"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        lines = open(jl).read().splitlines(keepends=True)
        w = open(fifo, "w")
        w.writelines(lines[:50])
        w.flush()
        wait_for("the first 50 records are stored",
                 lambda: cj("count", "res")[1].get("count") == 50)
        imp.send_signal(signal.SIGINT)
        out, err = imp.communicate(timeout=30)
        w.close()
        ok("SIGINT stops the import with exit 130", imp.returncode == 130, (imp.returncode, out, err))
        ok("it says where it stopped", "stopped after 50 records; resume with --skip 50" in err, err)
        _, j = cj("import", "res", jl, "--skip", "50", "--batch", "10")
        ok("--skip 50 imports exactly the rest", j.get("imported") == 50 and j.get("written") == 50, j)
        _, j = cj("count", "res")
        ok("after resuming, all 100 records are there", j.get("count") == 100, j)

        # 5. Usage errors under --json.
        for args in ([*c, "-d", data, "collection", "list"], [*c, "import", "imp", jl, "--ids", ids],
                     [*c, "init"], [*c, "get", "v", "a", "--no-such-flag"]):
            r = run(*args, "--json", check=False)
            try:
                j = json.loads(r.stdout)
            except ValueError:
                j = {}
            ok(f"usage error exits 2 with JSON: {' '.join(args[3:])}",
               r.returncode == 2 and j.get("ok") is False and j.get("usage") is True and j.get("code") == 1,
               (r.returncode, r.stdout))

        # 6. Export while the daemon runs, then offline after it stops.
        r = run(SHOAL, "-d", data, "export", "imp")
        ok("export reads the store while shoald runs", len(r.stdout.splitlines()) == 100, r.stderr)
        offline = r.stdout
        r = run(SHOAL, "export", "imp", env=dict(os.environ, SHOAL_SOCKET=sock))
        ok("export through the daemon by default ($SHOAL_SOCKET): the offline export's lines", r.stdout == offline,
           r.stderr)
        big_off, big_via = os.path.join(root, "big-offline.jsonl"), os.path.join(root, "big-daemon.jsonl")
        _, j = cj("export", "big", big_via)
        rss_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        # After the measure: the offline export maps the whole store file, which counts in its RSS.
        run(SHOAL, "-d", data, "export", "big", big_off)
        with open(big_off, "rb") as f1, open(big_via, "rb") as f2:
            same = f1.read() == f2.read()
        ok(f"export of {rows} records through the daemon, page by page", j.get("exported") == rows, j)
        ok("the same bytes as the offline export", same)
        if not NO_CTYPES:
            # A page holds at most 1,024 records (3.2 MB of floats here); the whole would be 63 MB.
            ok(f"export through the daemon: the CLI's peak memory stays bounded ({rss_kb // 1024} MB, bound 50 MB)",
               rss_kb < 50 * 1024, rss_kb)
        npy_off, npy_via = os.path.join(root, "off.npy"), os.path.join(root, "via.npy")
        run(SHOAL, "-d", data, "export", "imp", npy_off)
        run(*c, "export", "imp", npy_via)
        same = all(open(a, "rb").read() == open(b, "rb").read() for a, b in (
            (npy_off, npy_via), (npy_off[:-4] + ".ids.txt", npy_via[:-4] + ".ids.txt"),
            (npy_off[:-4] + ".metadata.jsonl", npy_via[:-4] + ".metadata.jsonl")))
        ok(".npy export through the daemon: the offline export's three files", same)
        nope = os.path.join(root, "nope.jsonl")
        r = run(*c, "export", "nope", nope, "--json", check=False)
        j = json.loads(r.stdout or "{}")
        ok("export of a missing collection through the daemon: exit 1, no such collection, no file",
           r.returncode == 1 and "no collection" in j.get("error", "") and not os.path.exists(nope),
           (r.returncode, r.stdout))
        peer.stdin.write("quit\n")
        peer.stdin.flush()
        peer.wait(timeout=20)
        # A peer that went away stays in the table, marked partitioned (the sync engine still knows it).
        wait_for("status shows the stopped peer as partitioned", lambda: "partitioned" in run(*c, "status").stdout)
        daemon.send_signal(signal.SIGTERM)
        ok("shoald stops on SIGTERM", daemon.wait(timeout=30) == 0)
        d = [SHOAL, "-d", data]
        r = run(*d, "get", "v", "a", "--json")
        ok("offline: the record written through the daemon", json.loads(r.stdout)["siblings"][0]["vector"] == [1.0, 0.0, 0.0])
        r = run(*d, "count", "res", "--json")
        ok("offline: count", json.loads(r.stdout)["count"] == 100)
        r = run(*d, "search", "v", "--vector", "1,0,0", "-k", "2", "--json")
        j = json.loads(r.stdout)
        ok("offline: search, labelled, no freshness", [h["id"] for h in j["hits"]] == ["a", "b"]
           and j["distance"] == "squared L2" and "freshness" not in j, j)
        r = run(*d, "get", "v", "nope", "--json", check=False)
        j = json.loads(r.stdout)
        ok("offline: the same code and message for a missing record",
           r.returncode == 1 and j.get("code") == 514 and j.get("error") == missing_msg, (j, missing_msg))
        if not NO_CTYPES:
            j = c_stats("open", data)
            ok("shoal_stats_json in embedded mode: the node's counts", j.get("collections") == 8
               and j.get("live_records") == 2 + 1 + 100 + 30 + 30 + 100 + 20000 + 100 and "index_source" in j, j)
        r = run(*c, "status", check=False)
        ok("status without a running daemon fails with exit 1", r.returncode == 1, (r.returncode, r.stderr))
        r = run(*d, "status", check=False)
        ok("status with -d fails with exit 1", r.returncode == 1, (r.returncode, r.stderr))
    finally:
        for p in (peer, daemon):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()
        shutil.rmtree(root, ignore_errors=True)
    print("all passed" if fails == 0 else f"{fails} failed")
    sys.exit(1 if fails else 0)


main()
