#!/usr/bin/env python3
"""tests/mesh/shoald_test.py: the daemon as an operator runs it (issue 14).

Proves, with real processes on loopback:
  1. a configuration error exits 2 and names the file, the line and the key; --check accepts a
     good file;
  2. shoald starts from its TOML file, enrolled with `shoal mesh init/enrol` (its device key from
     `shoald --print-device-key`), creates its socket with the configured mode, and syncs: a
     write on a hot peer reaches a warm peer through shoald (hot peers do not relay to each other,
     so this path goes through the daemon's store and delta buffer);
     shoald --backup copies a running daemon's store through its socket, and the copy restores;
     a collection marked warm = false in [tiers] reaches no warm peer (docs/tiers.md);
  3. SIGHUP reloads the configured peers: a peer added to the file is dialed without a restart;
     a restart-only change is reported, not applied;
  4. SIGTERM stops it cleanly: exit 0, the socket file removed.
Checks are on data and on the process's outputs; the 60 s polling bound only decides when to
give up.

usage: shoald_test.py SHOAL SHOALD MESH_PEER
"""
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from proc_util import enrol, enrol_shoald, run, shoald_config, start_shoald, wait_for  # noqa: E402

SHOAL, SHOALD, PEER = sys.argv[1], sys.argv[2], sys.argv[3]


class Peer:
    def __init__(self, root, name, mesh):
        self.name, self.data = name, os.path.join(root, name)
        key = run(PEER, "--data", self.data, "--print-device-key").stdout.strip()
        self.cert = os.path.join(self.data, "device.cert")
        enrol(SHOAL, mesh, key, self.cert)

    def start(self, peers=()):
        args = [PEER, "--data", self.data, "--certificate", self.cert, "--listen", "127.0.0.1:0"]
        for p in peers:
            args += ["--peer", p]
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        line = self.proc.stdout.readline().split()
        self.port = int(dict(f.split("=", 1) for f in line[1:])["port"])
        return self

    def ask(self, line):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        return self.proc.stdout.readline().strip()

    def has(self, coll, rid):
        return self.ask(f"has {coll} {rid}").endswith(" 1")

    def quit(self):
        if self.proc.poll() is None:
            self.proc.stdin.write("quit\n")
            self.proc.stdin.flush()
            self.proc.wait(timeout=20)


# docs/tiers.md: this daemon sends collection "private" to no warm peer.
TIERS = '\n[[tiers.collections]]\nname = "private"\nwarm = false\n'


def write_config(path, data, sock, peers, log_level="info", listen="127.0.0.1:0"):
    with open(path, "w") as f:
        f.write(shoald_config(data, sock, peers, extra=TIERS, listen=listen, log_level=log_level, socket_mode="0640"))


def main():
    root = tempfile.mkdtemp(prefix="shoal-shoald-")
    procs = []
    try:
        mesh = os.path.join(root, "mesh")
        run(SHOAL, "mesh", "init", "--dir", mesh)

        # 1. Configuration errors.
        bad = os.path.join(root, "bad.toml")
        with open(bad, "w") as f:
            f.write('[node]\ndata_dir = "x"\ncertificate = "x/c"\n\n[mesh]\nlisten = "0.0.0.0:99999"\n')
        r = run(SHOALD, "--config", bad, check=False)
        assert r.returncode == 2, f"a bad port exited {r.returncode}, expected 2"
        assert f"{bad}:6:" in r.stderr and "mesh.listen" in r.stderr and "99999" in r.stderr, r.stderr
        print("1. a configuration error exits 2 naming file, line, key and value:", r.stderr.strip().splitlines()[0])

        # 2. Start, enrol, sync through the daemon.
        warm = Peer(root, "warm", mesh).start()
        procs.append(warm)
        data = os.path.join(root, "d")
        sock = os.path.join(root, "shoald.sock")
        conf = os.path.join(root, "shoald.toml")
        write_config(conf, data, sock, [(f"127.0.0.1:{warm.port}", "warm")])
        assert run(SHOALD, "--config", conf, "--check").returncode == 0
        enrol_shoald(SHOAL, SHOALD, mesh, conf, data)
        d, ready = start_shoald(SHOALD, conf)
        port = int(ready["port"])
        mode = stat.S_IMODE(os.stat(sock).st_mode)
        assert mode == 0o640, f"socket mode {oct(mode)}, configured 0640"
        hot = Peer(root, "hot", mesh).start([f"127.0.0.1:{port}"])
        procs.append(hot)
        hot.ask("create photos 4")
        for i in range(20):
            assert hot.ask(f"put photos p{i} {i}") == f"ok put p{i}"
        wait_for("the hot peer's writes reach the warm peer through shoald", lambda: all(warm.has("photos", f"p{i}") for i in range(20)))
        print("2. shoald started from TOML (socket mode 0640) and relayed 20 writes from a hot peer to a warm peer")

        # 2a. Tier policy: "private" is not sent to warm peers. The hot peer writes it first, then
        # one more photo: once the photo reached the warm peer, the private records ahead of it in
        # shoald's delta buffer were passed over, not delayed; the warm peer's digest comparisons
        # of "private" are refused too.
        hot.ask("create private 4")
        for i in range(5):
            assert hot.ask(f"put private x{i} {i}") == f"ok put x{i}"
        assert hot.ask("put photos p20 20") == "ok put p20"
        wait_for("the photo written after the private records reaches the warm peer", lambda: warm.has("photos", "p20"))
        assert not any(warm.has("private", f"x{i}") for i in range(5)), "a collection marked warm = false reached a warm peer"
        print("2a. [tiers] warm = false: the warm peer got the later photo and none of the 5 private records")

        # 2b. A backup of the running daemon, through its socket; restored, it holds the records.
        bk = os.path.join(root, "backup")
        r = run(SHOALD, "--config", conf, "--backup", bk)
        assert os.path.exists(os.path.join(bk, "store", "data.mdb")), r.stdout
        restored = os.path.join(root, "restored")
        run(SHOAL, "-d", restored, "restore", bk)
        got = run(SHOAL, "-d", restored, "get", "photos", "p19", check=False)
        assert got.returncode == 0, f"the restored backup lacks p19: {got.stdout} {got.stderr}"
        print("2b. shoald --backup copied the running daemon's store; restored, it holds the records:", r.stdout.strip())

        # 3. SIGHUP: a new peer in the file is dialed; a restart-only change is reported.
        late = Peer(root, "late", mesh).start()
        procs.append(late)
        write_config(conf, data, sock, [(f"127.0.0.1:{warm.port}", "warm"), (f"127.0.0.1:{late.port}", "warm")],
                     log_level="debug", listen="127.0.0.1:1")
        d.send_signal(signal.SIGHUP)
        wait_for("the peer added by SIGHUP has the data", lambda: late.has("photos", "p19"))
        print("3. SIGHUP: the added peer was dialed and caught up")

        # 4. SIGTERM.
        d.send_signal(signal.SIGTERM)
        rc = d.wait(timeout=30)
        err = d.stderr.read()
        assert rc == 0, f"shoald exited {rc} on SIGTERM: {err}"
        assert "mesh.listen" in err and "restart" in err, f"the restart-only change was not reported: {err}"
        # The reload's summary says what it applied and what waits (it said "(no change)" after
        # warning that mesh.listen changed).
        assert "waiting for a restart: mesh.listen" in err and "(no change)" not in err, \
            f"the reload's summary does not name what waits for a restart: {err}"
        assert not os.path.exists(sock), "the socket file was left behind"
        print("4. SIGTERM: exit 0, socket removed; the reload reported mesh.listen as needing a restart")
        print("PASS")
    finally:
        for p in procs:
            try:
                p.quit()
            except Exception:
                p.proc.kill()
        shutil.rmtree(root, ignore_errors=True)


main()
