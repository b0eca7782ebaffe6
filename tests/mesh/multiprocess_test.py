#!/usr/bin/env python3
"""tests/mesh/multiprocess_test.py: mesh hosts as separate processes on loopback (issue 13).

Proves, with real processes, real LMDB data directories, the operator's enrolment path
(`shoal mesh init` / `enrol`) and the encrypted RPC links:
  1. three hosts: upserts, batches and deletes on any host reach every other; digests equal;
     search on each host finds another host's write;
  2. kill -9 of a host while another pushes to it: after restart nothing acknowledged is lost
     (every id the writer acknowledged is on the restarted host) and it catches up;
  3. a revocation written by `shoal mesh revoke` and given to one host closes the revoked
     device's links on every host (the set replicates), and the device cannot link again.
Checks are on data only; the polling bound (60 s) only decides when to give up.

usage: multiprocess_test.py SHOAL_BIN MESH_PEER_BIN
"""
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

SHOAL, PEER = sys.argv[1], sys.argv[2]
GIVE_UP_S = 60


def run(*args):
    r = subprocess.run(args, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"FAIL: {' '.join(args)} exited {r.returncode}: {r.stderr}")
    return r.stdout


class Peer:
    def __init__(self, root, name, mesh):
        self.name = name
        self.data = os.path.join(root, name)
        os.makedirs(self.data, exist_ok=True)
        run(PEER, "--data", self.data, "--print-device-key")
        self.cert = os.path.join(self.data, "device.cert")
        if not os.path.exists(self.cert):
            run(SHOAL, "mesh", "enrol", "--mesh", mesh, "--device-key-file",
                os.path.join(self.data, "identity.key"), "--role", "member", "--grant", "*:rw",
                "--days", "30", "--out", self.cert)
        self.proc = None
        self.port = None

    def start(self, peers=(), port=0):
        args = [PEER, "--data", self.data, "--certificate", self.cert, "--listen", f"127.0.0.1:{port}"]
        for p in peers:
            args += ["--peer", f"127.0.0.1:{p.port}"]
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        line = self.proc.stdout.readline().strip()
        if not line.startswith("ready "):
            raise SystemExit(f"FAIL: {self.name} did not start: {line!r}")
        fields = dict(f.split("=", 1) for f in line.split()[1:])
        self.port = int(fields["port"])
        return self

    def ask(self, line):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline().strip()
        if answer.startswith("err") or not answer:
            raise SystemExit(f"FAIL: {self.name}: {line!r} -> {answer!r}")
        return answer

    def state(self, coll):
        fields = dict(f.split("=", 1) for f in self.ask(f"state {coll}").split()[1:])
        return {k: int(v) for k, v in fields.items()}

    def has(self, coll, rid):
        return self.ask(f"has {coll} {rid}").endswith(" 1")

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def quit(self):
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
        time.sleep(0.05)
    raise SystemExit(f"FAIL: gave up after {GIVE_UP_S} s waiting for: {what}")


def converged(peers, coll, live):
    states = [p.state(coll) for p in peers]
    return all(s["live"] == live for s in states) and len({s["root"] for s in states}) == 1


def main():
    root = tempfile.mkdtemp(prefix="shoal-mp-")
    peers = []
    try:
        mesh = os.path.join(root, "mesh")
        run(SHOAL, "mesh", "init", "--dir", mesh)
        a = Peer(root, "a", mesh).start()
        b = Peer(root, "b", mesh).start([a])
        c = Peer(root, "c", mesh).start([a, b])
        peers = [a, b, c]
        wait_for("every host has 2 peers up", lambda: all(p.state("none")["up"] == 2 for p in peers))
        print("1. three processes linked (each sees 2 peers up)")

        a.ask("create photos 8")
        wait_for("the collection reaches b and c", lambda: all(p.state("photos")["coll"] == 1 for p in (b, c)))
        a.ask("batch photos a 0 100")
        b.ask("batch photos b 0 100")
        c.ask("put photos c0 5000")
        wait_for("all three hold the 201 writes", lambda: converged(peers, "photos", 201))
        # Deletes of records written elsewhere (each host deletes what another wrote).
        a.ask("del photos b5")
        c.ask("del photos a7")
        wait_for("all three converge on 199 records", lambda: converged(peers, "photos", 199))
        for p in peers:
            assert not p.has("photos", "b5"), f"{p.name} still has b5"
            assert not p.has("photos", "a7"), f"{p.name} still has a7"
        assert a.ask("search photos 5000") == "hit c0", "a's search does not find c's write"
        assert c.ask("search photos 42") == "hit a42", "c's search does not find a's write"
        print("2. upserts, batches and deletes converged on all three; search finds remote writes")

        # kill -9 of a while b pushes to it.
        acked = []
        for i in range(40):
            b.ask(f"put photos k{i} {10000 + i}")
            acked.append(f"k{i}")
            if i == 20:
                a.kill9()
        for i in range(40, 80):
            b.ask(f"put photos k{i} {10000 + i}")
            acked.append(f"k{i}")
        a.start([b, c], port=a.port)
        wait_for("a restarted and caught up (279 records everywhere)", lambda: converged(peers, "photos", 279))
        missing = [k for k in acked if not a.has("photos", k)]
        assert not missing, f"a lost acknowledged writes after kill -9: {missing[:5]}"
        print("3. kill -9 during pushes: a restarted, caught up, 0 of 80 acknowledged writes lost")

        # The operator revokes c; only a is told. a closes c's link at once, b learns the
        # revocation from a's hello and closes its link too; c's redials are refused.
        c_key = run(PEER, "--data", c.data, "--print-device-key").strip()
        rev = os.path.join(root, "c.revocation")
        run(SHOAL, "mesh", "revoke", "--mesh", mesh, "--device-key", c_key, "--out", rev)
        a.ask(f"revoke {rev}")
        wait_for("c's links closed everywhere", lambda: a.state("photos")["up"] == 1 and b.state("photos")["up"] == 1
                 and c.state("photos")["up"] == 0)
        c.ask("put photos after-revoke 1")
        time.sleep(2)  # c keeps redialing meanwhile; nothing may get through
        assert not a.has("photos", "after-revoke") and not b.has("photos", "after-revoke"), "a revoked device's write arrived"
        assert c.state("photos")["up"] == 0, "the revoked device linked again"
        print("4. shoal mesh revoke: c's links closed on a and on b (replicated), c's writes no longer arrive")
        print("PASS")
    finally:
        for p in peers:
            p.quit()
        shutil.rmtree(root, ignore_errors=True)


main()
