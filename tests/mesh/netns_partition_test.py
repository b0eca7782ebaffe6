#!/usr/bin/env python3
"""tests/mesh/netns_partition_test.py: a real network partition between mesh hosts (issue 13).

Proves, with three shoal-mesh-peer processes (real LMDB data directories, enrolled with
`shoal mesh init` / `enrol`, encrypted RPC links over TCP) each in its own network namespace,
joined by veth pairs to a bridge in a fourth namespace:
  1. before: writes on one host reach the two others (a baseline that the namespaces route);
  2. one host's link is cut (its veth set down, so its packets are dropped, not refused), both
     sides write, INCLUDING deletes of records the other side still has and concurrent writes of
     the same ids, and the cut is checked to hold (nothing crosses it);
  3. the link heals, and then:
     - convergence: the same digest root and live count on all three;
     - 0 lost acknowledged writes: every id the oracle (below: acknowledged operations with the
       mesh's observed-remove semantics, where an update concurrent with a delete survives) holds
       is present on every host;
     - 0 resurrections: every id whose entries acknowledged deletes removed is absent on every
       host.
Checks are on data only; the polling bound (120 s) only decides when to give up.

Needs root and `ip netns`; exits 77 (ctest: skipped) with a message otherwise. Every interface
it creates lives in namespaces it creates (names from its PID), removed by a cleanup that runs
on any exit; no traffic leaves them.

usage: netns_partition_test.py SHOAL_BIN MESH_PEER_BIN
"""
import atexit
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

SKIP = 77
GIVE_UP_S = 120
SHOAL, PEER = (sys.argv[1], sys.argv[2]) if len(sys.argv) == 3 else (None, None)
TAG = f"sp{os.getpid() % 100000}"  # interface names must stay under 16 bytes
BRIDGE_NS = f"{TAG}br"
NAMES = ["a", "b", "c"]
ADDR = {n: f"10.77.0.{i + 1}" for i, n in enumerate(NAMES)}
PORT = 7411

created_ns = []
peers = []
workdir = None


def sh(*args, check=True):
    r = subprocess.run(args, capture_output=True, text=True)
    if check and r.returncode != 0:
        raise SystemExit(f"FAIL: {' '.join(args)} exited {r.returncode}: {r.stderr.strip()}")
    return r


def cleanup():
    for p in peers:
        p.stop()
    for ns in reversed(created_ns):
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
    if workdir:
        shutil.rmtree(workdir, ignore_errors=True)


def ns_of(name):
    return f"{TAG}{name}"


def setup_network():
    # The bridge lives in its own namespace: nothing touches the root namespace's interfaces.
    for ns in [BRIDGE_NS] + [ns_of(n) for n in NAMES]:
        r = sh("ip", "netns", "add", ns, check=False)
        if r.returncode != 0:
            print(f"SKIP: cannot create network namespaces (ip netns add {ns}: {r.stderr.strip()})")
            sys.exit(SKIP)
        created_ns.append(ns)
        sh("ip", "-n", ns, "link", "set", "lo", "up")
    sh("ip", "-n", BRIDGE_NS, "link", "add", "br0", "type", "bridge")
    sh("ip", "-n", BRIDGE_NS, "link", "set", "br0", "up")
    for n in NAMES:
        ns = ns_of(n)
        # veth pair made inside the host's namespace, its far end moved into the bridge's.
        sh("ip", "-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", f"v{n}", "netns", BRIDGE_NS)
        sh("ip", "-n", ns, "addr", "add", f"{ADDR[n]}/24", "dev", "eth0")
        sh("ip", "-n", ns, "link", "set", "eth0", "up")
        sh("ip", "-n", BRIDGE_NS, "link", "set", f"v{n}", "master", "br0")
        sh("ip", "-n", BRIDGE_NS, "link", "set", f"v{n}", "up")


def set_link(name, up):
    # The bridge-side end of the host's veth: down drops every packet silently (no RST, no ICMP),
    # like a cable pulled; the host's own interface stays up and keeps its address.
    sh("ip", "-n", BRIDGE_NS, "link", "set", f"v{name}", "up" if up else "down")


class Peer:
    def __init__(self, name, mesh):
        self.name = name
        self.data = os.path.join(workdir, name)
        os.makedirs(self.data)
        sh(PEER, "--data", self.data, "--print-device-key")
        self.cert = os.path.join(self.data, "device.cert")
        sh(SHOAL, "mesh", "enrol", "--mesh", mesh, "--device-key-file", os.path.join(self.data, "identity.key"),
           "--role", "member", "--grant", "*:rw", "--days", "30", "--out", self.cert)
        self.proc = None

    def start(self):
        args = ["ip", "netns", "exec", ns_of(self.name), PEER, "--data", self.data, "--certificate", self.cert,
                "--listen", f"{ADDR[self.name]}:{PORT}"]
        for other in NAMES:
            if other != self.name:
                args += ["--peer", f"{ADDR[other]}:{PORT}"]
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        line = self.proc.stdout.readline().strip()
        if not line.startswith("ready "):
            raise SystemExit(f"FAIL: {self.name} did not start: {line!r}")

    def ask(self, line):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline().strip()
        if not answer or answer.startswith("err"):
            raise SystemExit(f"FAIL: {self.name}: {line!r} -> {answer!r}")
        return answer

    def state(self, coll):
        fields = dict(f.split("=", 1) for f in self.ask(f"state {coll}").split()[1:])
        return {k: int(v) for k, v in fields.items()}

    def has(self, coll, rid):
        return self.ask(f"has {coll} {rid}").endswith(" 1")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            try:
                self.proc.stdin.write("quit\n")
                self.proc.stdin.flush()
                self.proc.wait(timeout=20)
            except Exception:
                self.proc.kill()
                self.proc.wait()


def wait_for(what, cond):
    deadline = time.monotonic() + GIVE_UP_S
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.1)
    raise SystemExit(f"FAIL: gave up after {GIVE_UP_S} s waiting for: {what}")


class Ledger:
    """The oracle, built from acknowledged operations only, with the mesh's observed-remove
    semantics (docs/protocol.md, docs/sim.md "The oracle"): a put adds an entry and replaces the
    entries its host had observed; a delete removes the entries its host had observed; an entry
    its host had not observed (written concurrently on the other side of the cut) survives. A host
    observed an entry when it was written before the cut (the baseline converged first) or on its
    own side of the cut. (Within one side the script never writes an id on one host and then on
    the other, so propagation inside a side never matters.)"""

    def __init__(self):
        self.entries = {}  # id -> list of the sides whose writes left a live entry ("all": pre-cut)
        self.side = {n: "all" for n in NAMES}
        self.deleted = set()  # ids some acknowledged delete applied to

    def cut(self, minority):
        self.side = {n: ("minority" if n == minority else "majority") for n in NAMES}

    def _surviving(self, peer, rid):
        mine = self.side[peer.name]
        return [e for e in self.entries.get(rid, []) if e != "all" and e != mine]

    def put(self, peer, coll, rid, x):
        peer.ask(f"put {coll} {rid} {x}")
        self.entries[rid] = self._surviving(peer, rid) + [self.side[peer.name]]

    def delete(self, peer, coll, rid):
        peer.ask(f"del {coll} {rid}")
        self.entries[rid] = self._surviving(peer, rid)
        self.deleted.add(rid)

    def present(self):
        return {rid for rid, e in self.entries.items() if e}


def main():
    global workdir
    if SHOAL is None:
        raise SystemExit("usage: netns_partition_test.py SHOAL_BIN MESH_PEER_BIN")
    if os.geteuid() != 0:
        print("SKIP: needs root to create network namespaces (ip netns add)")
        sys.exit(SKIP)
    if shutil.which("ip") is None:
        print("SKIP: the ip tool (iproute2) is missing")
        sys.exit(SKIP)
    atexit.register(cleanup)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    setup_network()
    workdir = tempfile.mkdtemp(prefix="shoal-netns-part-")
    mesh = os.path.join(workdir, "mesh")
    sh(SHOAL, "mesh", "init", "--dir", mesh)
    a, b, c = (Peer(n, mesh) for n in NAMES)
    for p in (a, b, c):
        p.start()
        peers.append(p)
    wait_for("every host has 2 peers up", lambda: all(p.state("none")["up"] == 2 for p in peers))
    print("1. three hosts in three namespaces linked over the bridge (2 peers up each)")

    coll = "part"
    led = Ledger()
    a.ask(f"create {coll} 4")
    wait_for("the collection reaches b and c", lambda: all(p.state(coll)["coll"] == 1 for p in (b, c)))
    for i in range(60):
        led.put(a, coll, f"base{i}", i)
    wait_for("the baseline converges (60 records)",
             lambda: len({p.state(coll)["root"] for p in peers}) == 1 and all(p.state(coll)["live"] == 60 for p in peers))
    print("2. baseline of 60 records on all three")

    # Cut c off. Its links die by keepalive (pings unanswered), not by a refusal.
    set_link("c", False)
    led.cut("c")
    wait_for("c sees no peer and a, b see only each other",
             lambda: c.state(coll)["up"] == 0 and a.state(coll)["up"] == 1 and b.state(coll)["up"] == 1)
    # Majority side (a, b): new records, and deletes of records c still has.
    for i in range(40):
        led.put(a if i % 2 else b, coll, f"maj{i}", 1000 + i)
    for i in range(0, 20):
        led.delete(a if i % 2 else b, coll, f"base{i}")
    # Minority side (c): new records, and deletes of records the majority still has.
    for i in range(40):
        led.put(c, coll, f"min{i}", 2000 + i)
    for i in range(20, 35):
        led.delete(c, coll, f"base{i}")
    # The same ids on both sides: an update on one side concurrent with a delete on the other
    # (the update survives: the delete did not observe it), both orders.
    led.put(c, coll, "base40", 3000)
    led.delete(a, coll, "base40")
    led.delete(c, coll, "base41")
    led.put(b, coll, "base41", 3001)
    # Deleted on the majority side above, re-written on the minority side: it comes back.
    led.put(c, coll, "base5", 3005)
    # A record written and deleted inside the cut on one side: stays deleted everywhere.
    led.put(c, coll, "gone-min", 3100)
    led.delete(c, coll, "gone-min")
    led.put(a, coll, "gone-maj", 3101)
    led.delete(a, coll, "gone-maj")
    # The cut holds: nothing crossed it (checked after a second of letting it try).
    time.sleep(1)
    assert not c.has(coll, "maj0") and not a.has(coll, "min0") and not b.has(coll, "min0"), "a write crossed the cut"
    assert c.has(coll, "base0"), "c lost base0 during the cut (only the other side deleted it)"
    assert a.has(coll, "base20"), "a lost base20 during the cut (only the other side deleted it)"
    print("3. partitioned: both sides wrote and deleted records the other side still has; nothing crossed")

    set_link("c", True)
    wait_for("every host has 2 peers up again", lambda: all(p.state(coll)["up"] == 2 for p in peers))
    present = led.present()
    expect_live = len(present)
    wait_for(f"convergence after the heal ({expect_live} live records, one digest root)",
             lambda: len({p.state(coll)["root"] for p in peers}) == 1
             and all(p.state(coll)["live"] == expect_live for p in peers))

    lost, resurrected = [], []
    for rid in sorted(led.entries):
        for p in peers:
            here = p.has(coll, rid)
            if rid in present and not here:
                lost.append(f"{rid}@{p.name}")
            if rid not in present and here:
                resurrected.append(f"{rid}@{p.name}")
    gone = len(led.entries) - expect_live
    print(f"   oracle: {expect_live} ids live, {gone} deleted ({len(led.deleted)} ids saw an acknowledged delete)")
    assert not lost, f"lost acknowledged writes: {lost[:10]} ({len(lost)})"
    assert not resurrected, f"resurrected deletes: {resurrected[:10]} ({len(resurrected)})"
    print(f"4. healed: converged on {expect_live} records, one digest root; 0 lost acknowledged writes, "
          f"0 resurrections")
    print("PASS")


main()
