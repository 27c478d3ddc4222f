#!/usr/bin/python3
"""Build the benchmark's data set in one bucket on the local radosgw.

    dataset.py TESTBED_DIR BUCKET [--drop-big]

Objects (same bytes every run, from fixed seeds):
  big/1GiB.bin      1 GiB, random
  big/100MiB.bin    100 MiB, random
  small/f00000.dat .. f09999.dat   10,000 x 4 KiB
  tree/...          a nested tree: 4 levels, 560 files in 85 directories
Idempotent: an object already there with the right size is not sent again
(radosgw keeps an overwritten large object until garbage collection, and the
testbed keeps everything in RAM). --drop-big deletes the two large objects.
"""
import concurrent.futures
import os
import random
import sys
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "testbed"))
import s3admin  # noqa: E402

BIG = {"big/1GiB.bin": (1 << 30, 1), "big/100MiB.bin": (100 << 20, 2)}
SMALL = 10000


def tree_keys():
    keys = []
    rng = random.Random(3)
    for a in range(4):
        for b in range(4):
            for c in range(4):
                d = f"tree/d{a}/e{b}/f{c}"
                for i in range(rng.randrange(4, 10)):
                    keys.append(f"{d}/file{i:02d}.txt")
            keys.append(f"tree/d{a}/e{b}/README.txt")
    return keys


def main():
    tbdir, bucket = sys.argv[1], sys.argv[2]
    envf = os.path.join(tbdir, "state", "owner.env")
    owner = s3admin.Client.from_env_file(envf)
    if "--drop-big" in sys.argv:
        for k in BIG:
            owner.delete_object(bucket, k, check=False)
        return 0
    owner.create_bucket(bucket, check=False)
    have = {o["Key"]: int(o["Size"]) for o in owner.list_all(bucket)[0]}
    for key, (size, seed) in BIG.items():
        if have.get(key) == size:
            continue
        print(f"dataset: uploading {key} ({size >> 20} MiB)", file=sys.stderr)
        rng = random.Random(seed)
        owner.put_object(bucket, key, b"".join(rng.randbytes(min(64 << 20, size - o))
                                               for o in range(0, size, 64 << 20)))
    todo = [(f"small/f{i:05d}.dat", random.Random(1000 + i).randbytes(4096))
            for i in range(SMALL) if have.get(f"small/f{i:05d}.dat") != 4096]
    todo += [(k, (k + "\n").encode() * (1 + len(k) % 17)) for k in tree_keys() if k not in have]
    if todo:
        print(f"dataset: uploading {len(todo)} small objects", file=sys.stderr)
        local = threading.local()

        def put(item):
            if not hasattr(local, "c"):
                local.c = s3admin.Client.from_env_file(envf)
            local.c.put_object(bucket, item[0], item[1])
        with concurrent.futures.ThreadPoolExecutor(8) as ex:
            list(ex.map(put, todo))
    have = {o["Key"]: int(o["Size"]) for o in owner.list_all(bucket)[0]}
    n_small = sum(1 for k in have if k.startswith("small/"))
    n_tree = sum(1 for k in have if k.startswith("tree/"))
    if n_small != SMALL or n_tree != len(tree_keys()) or any(have.get(k) != s for k, (s, _) in BIG.items()):
        print(f"dataset: incomplete: {n_small} small, {n_tree} tree", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
