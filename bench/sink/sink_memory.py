#!/usr/bin/env python3
"""bench/sink/sink_memory.py: the sink's memory against the payload bytes it holds (issue 15;
docs/sink.md, "The sink is a replica"; decision D54).

The path measured is the one a deployment runs: `shoal import` through a shoald whose collection
goes to the sink, shoald's sink feed uploading it (Sink.pushDelta over the mesh's link), and the
shoal-sink program on its default LMDB store. Records are Fashion-MNIST training images (784-d,
no metadata: a node payload of 3,145 bytes each, docs/node-format.md). After each step of
records, once the sink acknowledged everything (shoald's backlog 0) and answered a cold search
(`shoal search --cold`, which builds its copy of the vectors), the bench reads shoal-sink's
/proc/PID/status: RssAnon (its heap: what it holds in memory) and RssFile (LMDB's map pages
touched, which the kernel may drop). Anchors, in the same run: the payload bytes the sink holds,
and the sizes of its LMDB data files (the objects, and the state env DATA_DIR/state that holds
the replica since D60). Last, the sink is restarted on the same store and measured again (after a
cold search): at open it joins the objects its state env has not applied (none, after a clean
stop).

usage: sink_memory.py BUILD_DIR [records=20000] [steps=2]
Prints one line per measurement and the ratios; run at normal priority (not nice) and read the
`uptime` line beside the figures.
"""
import os
import subprocess
import sys
import time

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "..", "tests", "mesh"))
from proc_util import (Scratch, enrol_shoald, enrol_sink, jrun, run, shoald_config, sink_config,  # noqa: E402
                       start_shoald, start_sink, stop, wait_for)

BUILD = sys.argv[1] if len(sys.argv) > 1 else "build"
RECORDS = int(sys.argv[2]) if len(sys.argv) > 2 else 20000
STEPS = int(sys.argv[3]) if len(sys.argv) > 3 else 2
SHOAL, SHOALD, SINK = (os.path.join(BUILD, p) for p in ("node/shoal", "node/daemon/shoald", "sink/shoal-sink"))
IMAGES = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"
QUERIES = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz"
DIM = 784
PAYLOAD = 1 + 4 + DIM * 4 + 2 + 2   # version, dimension, the floats, no model tag, no metadata
MIB = 1 << 20


def memory(pid):
    """shoal-sink's RssAnon and RssFile (bytes), and its peak RSS, from /proc."""
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("RssAnon", "RssFile", "VmHWM"):
                fields[k] = int(v.split()[0]) * 1024
    return fields


def cold_search(cli):
    """One cold search through shoald (the sink builds its search copy of the vectors at the first
    one after a change, so the figures include it); fails unless the sink answered."""
    _, r = jrun(*cli, "search", "fm", "--query-file", QUERIES, "--row", "0", "-k", "10", "--cold")
    if not r["sink"]["answered"]:
        raise SystemExit(f"FAIL: the sink did not answer a cold search: {r['sink']}")
    return r["sink"]["records"]


def main():
    if not os.path.exists(IMAGES):
        print(f"SKIP: {IMAGES} is absent (dataset-fashion-mnist)")
        sys.exit(77)
    print(subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    with Scratch(SHOAL, "shoal-sinkmem-") as scratch:
        sdata = os.path.join(scratch.root, "sink")
        sconf, scert = os.path.join(scratch.root, "sink.toml"), os.path.join(scratch.root, "sink.cert")

        def write_sink_config(listen):
            with open(sconf, "w") as f:
                f.write(sink_config(sdata, scert, listen, store='kind = "lmdb"\nlmdb_map_size_mb = 8192\n'))

        write_sink_config("127.0.0.1:0")
        enrol_sink(SHOAL, SINK, scratch.mesh, sconf, scert)
        sink, sport = start_sink(SINK, sconf)
        scratch.track(sink)

        data, sock, conf = (os.path.join(scratch.root, n) for n in ("d", "d.sock", "d.toml"))
        with open(conf, "w") as f:
            f.write(shoald_config(data, sock, log_level="warn", extra=f'''
[[tiers.collections]]
name = "fm"
sink = true

[sink]
address = "127.0.0.1:{sport}"
quota_entries = 100000
'''))
        enrol_shoald(SHOAL, SHOALD, scratch.mesh, conf, data)
        d, _ = start_shoald(SHOALD, conf)
        scratch.track(d)
        cli = [SHOAL, "--connect", sock]
        run(*cli, "collection", "create", "fm", "--dim", str(DIM))

        def acknowledged():
            s = jrun(*cli, "sink", "status")[1]
            return s.get("connected") and s.get("backlog_entries") == 0

        wait_for("the sink link is up", acknowledged)
        rows = [(0, memory(sink.pid))]
        print(f"records {0:>7}  payload {0:8.1f} MiB  sink RssAnon {rows[0][1]['RssAnon'] / MIB:8.1f} MiB  "
              f"RssFile {rows[0][1]['RssFile'] / MIB:7.1f} MiB (empty sink, link up)")
        per_step = RECORDS // STEPS
        held = 0
        for step in range(STEPS):
            t0 = time.monotonic()
            run(*cli, "import", "fm", IMAGES, "--skip", str(held), "--limit", str(per_step), "--id-prefix", "img-")
            held += per_step
            wait_for(f"the sink acknowledges {held} records", acknowledged, give_up_s=1200, poll_s=0.5)
            assert cold_search(cli) == held
            m = memory(sink.pid)
            rows.append((held, m))
            print(f"records {held:>7}  payload {held * PAYLOAD / MIB:8.1f} MiB  sink RssAnon {m['RssAnon'] / MIB:8.1f} MiB  "
                  f"RssFile {m['RssFile'] / MIB:7.1f} MiB  (import and upload {time.monotonic() - t0:.1f} s)")

        store_bytes = os.path.getsize(os.path.join(sdata, "objects", "data.mdb"))
        state_file = os.path.join(sdata, "state", "data.mdb")
        state_bytes = os.path.getsize(state_file) if os.path.exists(state_file) else 0
        # The sink restarted on the same store and state env.
        stop(sink)
        write_sink_config(f"127.0.0.1:{sport}")
        t0 = time.monotonic()
        sink, _ = start_sink(SINK, sconf)
        reopen_s = time.monotonic() - t0
        scratch.track(sink)
        wait_for("shoald's link to the restarted sink", acknowledged)
        assert cold_search(cli) == held
        reopened = memory(sink.pid)
        print(f"records {held:>7}  payload {held * PAYLOAD / MIB:8.1f} MiB  sink RssAnon {reopened['RssAnon'] / MIB:8.1f} "
              f"MiB  RssFile {reopened['RssFile'] / MIB:7.1f} MiB  (restarted: ready in {reopen_s:.1f} s, peak RSS "
              f"{reopened['VmHWM'] / MIB:.1f} MiB)")

        empty = rows[0][1]["RssAnon"]
        last_n, last = rows[-1]
        payload = last_n * PAYLOAD
        slope = ((last["RssAnon"] - rows[1][1]["RssAnon"]) / ((last_n - rows[1][0]) * PAYLOAD)
                 if len(rows) > 2 else float("nan"))
        print(f"sink_memory: {last_n} records x {DIM}-d, payload {payload / MIB:.1f} MiB; "
              f"sink heap over the empty sink {(last['RssAnon'] - empty) / MIB:.1f} MiB = "
              f"{(last['RssAnon'] - empty) / payload:.2f} x payload (between steps {slope:.2f} x); "
              f"after a restart {(reopened['RssAnon'] - empty) / MIB:.1f} MiB = {(reopened['RssAnon'] - empty) / payload:.2f} x; "
              f"LMDB data file {store_bytes / MIB:.1f} MiB = {store_bytes / payload:.2f} x payload; "
              f"state env file {state_bytes / MIB:.1f} MiB = {state_bytes / payload:.2f} x payload")
        stop(d)
        stop(sink)


main()
