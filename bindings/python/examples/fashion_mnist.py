#!/usr/bin/env python3
"""Searches Fashion-MNIST with Shoal from Python.

Ingests training images (784 pixels each, as float32 vectors) with their class label as
metadata, in atomic batches, then answers test images as queries and prints recall@10 against an
exact NumPy search, the share of queries whose nearest neighbour has the query's class, a
filtered search (only one class), and the queries per second.

    python3 fashion_mnist.py [--data-dir /usr/share/datasets/fashion-mnist] [--train 10000]
                             [--queries 500] [--dir fm-data]

The dataset is Debian's dataset-fashion-mnist package. Without it the example prints a line
starting with SKIP and exits 0. The library is found as the binding says (SHOAL_LIBRARY, or an
installed libshoal.so.0).
"""

import argparse
import gzip
import os
import shutil
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import shoal  # noqa: E402

CLASSES = ["t-shirt", "trouser", "pullover", "dress", "coat",
           "sandal", "shirt", "sneaker", "bag", "ankle-boot"]


def read_idx(path, limit):
    """The first `limit` items of an IDX file (gzipped): images as (n, rows*cols) uint8, labels as
    (n,) uint8."""
    with gzip.open(path, "rb") as f:
        header = f.read(4)
        if header[:2] != b"\0\0" or header[2] != 0x08:
            raise ValueError(f"{path}: not an unsigned-byte IDX file")
        dims = [int.from_bytes(f.read(4), "big") for _ in range(header[3])]
        n = min(dims[0], limit)
        item = int(np.prod(dims[1:])) if len(dims) > 1 else 1
        data = np.frombuffer(f.read(n * item), dtype=np.uint8)
    return data.reshape(n, item) if len(dims) > 1 else data


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-dir", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--train", type=int, default=10000, help="training images to ingest")
    ap.add_argument("--queries", type=int, default=500, help="test images to search")
    ap.add_argument("--dir", default="fm-data", help="data directory (recreated)")
    ap.add_argument("--batch", type=int, default=5000, help="records per atomic batch")
    args = ap.parse_args()

    train_path = os.path.join(args.data_dir, "train-images-idx3-ubyte.gz")
    if not os.path.exists(train_path):
        print(f"SKIP: Fashion-MNIST not found in {args.data_dir} (install the Debian package "
              f"dataset-fashion-mnist, or pass --data-dir)")
        return 0
    train = read_idx(train_path, args.train).astype(np.float32)
    labels = read_idx(os.path.join(args.data_dir, "train-labels-idx1-ubyte.gz"), args.train)
    test = read_idx(os.path.join(args.data_dir, "t10k-images-idx3-ubyte.gz"),
                    args.queries).astype(np.float32)
    test_labels = read_idx(os.path.join(args.data_dir, "t10k-labels-idx1-ubyte.gz"), args.queries)

    shutil.rmtree(args.dir, ignore_errors=True)
    with shoal.open(args.dir) as db:
        db.create_collection("fm", train.shape[1], metric="l2")
        start = time.perf_counter()
        for lo in range(0, len(train), args.batch):
            hi = min(lo + args.batch, len(train))
            db.upsert_batch("fm", [f"img-{i}" for i in range(lo, hi)], train[lo:hi],
                            metadata=[{"label": CLASSES[labels[i]]} for i in range(lo, hi)],
                            model="raw-pixels")
        ingest_s = time.perf_counter() - start
        print(f"ingested {db.count('fm')} images in {ingest_s:.1f} s "
              f"({len(train) / ingest_s:.0f} records/s, durable batches of {args.batch})")

        start = time.perf_counter()
        results = [db.search("fm", q, k=10, ef=64) for q in test]
        search_s = time.perf_counter() - start

        # Exact neighbours by brute force (squared L2, as Shoal reports it).
        norms = (train ** 2).sum(axis=1)
        hits = same_class = 0
        for q, label, (ids, _) in zip(test, test_labels, results):
            exact = np.argsort(norms - 2 * train @ q)[:10]
            hits += len(set(ids) & {f"img-{i}" for i in exact})
            same_class += labels[int(ids[0][4:])] == label
        n = len(test)
        print(f"recall@10 {hits / (10 * n):.3f} against exact search, {n} queries, "
              f"{n / search_s:.0f} queries/s")
        print(f"nearest neighbour has the query's class for {same_class / n:.1%} of queries")

        ids, distances = db.search("fm", test[0], k=5, filter="label=sneaker")
        print(f"test image 0 ({CLASSES[test_labels[0]]}): nearest sneakers "
              + ", ".join(f"{i} ({d:.0f})" for i, d in zip(ids, distances)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
