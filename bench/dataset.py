#!/usr/bin/python3
"""Build the benchmark's data set on the local radosgw.

    dataset.py TESTBED_DIR BUCKET [--drop-big]
    dataset.py TESTBED_DIR BUCKET --million | --drop-million

Objects in BUCKET (same bytes every run, from fixed seeds):
  big/1GiB.bin      1 GiB, random (BIG_MIB=N: big/NMiB.bin instead)
  big/100MiB.bin    100 MiB, random
  small/f00000.dat .. f09999.dat   10,000 x 4 KiB (SMALL_FILES)
  tree/...          a nested tree: 4 levels, 560 files in 85 directories
Idempotent: an object already there with the right size is not sent again
(radosgw keeps an overwritten large object until garbage collection, and the
testbed keeps everything in RAM). --drop-big deletes the two large objects.

--million builds one directory of MILLION_KEYS (1,000,000) empty objects,
m/k0000000 .., in MILLION_BUCKET (bench-million; bench-million-N for another N),
with 32 PUTs in flight, once per testbed: a last object, million-complete, says
it is done and how long it took. It costs time (about 550 PUTs a second on a
loaded 2-core machine: half an hour for a million) and memory: ceph-osd's
memstore grew by 13-21 KB a key, so it refuses to start when MemAvailable
cannot hold MILLION_KEYS x KEY_RAM plus 2 GiB. --drop-million deletes them.
"""
import concurrent.futures
import os
import random
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "testbed"))
import s3admin  # noqa: E402

BIG_MIB = int(os.environ.get("BIG_MIB", "1024"))
BIG = {("big/1GiB.bin" if BIG_MIB == 1024 else f"big/{BIG_MIB}MiB.bin"): (BIG_MIB << 20, 1),
       "big/100MiB.bin": (100 << 20, 2)}
SMALL = int(os.environ.get("SMALL_FILES", "10000"))
MILLION_KEYS = int(os.environ.get("MILLION_KEYS", "1000000"))
MILLION_PUTS = 32
KEY_RAM = 22 << 10  # ceph-osd (memstore) RAM per empty object, measured: 13-21 KB


def million_bucket():
    default = "bench-million" if MILLION_KEYS == 1000000 else f"bench-million-{MILLION_KEYS}"
    return os.environ.get("MILLION_BUCKET", default)


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


def put_all(envf, bucket, items, threads=8):
    """PUT (key, bytes) pairs with threads in flight, a client each."""
    local = threading.local()

    def put(item):
        if not hasattr(local, "c"):
            local.c = s3admin.Client.from_env_file(envf)
        local.c.put_object(bucket, item[0], item[1])
    with concurrent.futures.ThreadPoolExecutor(threads) as ex:
        for _ in ex.map(put, items):
            pass


def mem_available():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 0


def build_million(envf):
    owner = s3admin.Client.from_env_file(envf)
    bucket = million_bucket()
    owner.create_bucket(bucket, check=False)
    r = owner.get_object(bucket, "million-complete", check=False)
    if r.ok and r.body.split(b" ", 1)[0] == str(MILLION_KEYS).encode():
        print(f"dataset: {bucket} is built ({r.body.decode()})", file=sys.stderr)
        return 0
    need, avail = MILLION_KEYS * KEY_RAM + (2 << 30), mem_available()
    if avail < need:
        print(f"dataset: {MILLION_KEYS:,} keys need about {need / 2**30:.1f} GiB of free memory "
              f"(radosgw's memstore keeps about {KEY_RAM >> 10} KB a key, plus 2 GiB), and "
              f"MemAvailable is {avail / 2**30:.1f} GiB: free memory, or set MILLION_KEYS lower "
              f"(about {max(0, avail - (2 << 30)) // KEY_RAM // 1000 * 1000:,} fit)", file=sys.stderr)
        return 1
    print(f"dataset: putting {MILLION_KEYS:,} keys under {bucket}/m/ with {MILLION_PUTS} PUTs "
          "in flight (once per testbed)", file=sys.stderr)
    t0 = time.monotonic()
    step = 10000
    for start in range(0, MILLION_KEYS, step):
        put_all(envf, bucket, ((f"m/k{i:07d}", b"") for i in range(start, min(start + step, MILLION_KEYS))),
                MILLION_PUTS)
        done = min(start + step, MILLION_KEYS)
        el = time.monotonic() - t0
        print(f"dataset: {done:,} keys, {el:.0f} s, {done / el:.0f} PUT/s", file=sys.stderr)
    took = time.monotonic() - t0
    note = f"{MILLION_KEYS} keys in {took:.0f} s ({MILLION_KEYS / took:.0f} PUT/s, {MILLION_PUTS} in flight)"
    owner.put_object(bucket, "million-complete", note.encode())
    print(f"dataset: {bucket}: {note}", file=sys.stderr)
    return 0


def drop_million(envf):
    owner = s3admin.Client.from_env_file(envf)
    bucket = million_bucket()
    if not owner.s3("HEAD", bucket).ok:
        print(f"dataset: no bucket {bucket}", file=sys.stderr)
        return 0
    keys = [(k,) for k in owner.list_keys(bucket)]
    local = threading.local()

    def delete(item):
        if not hasattr(local, "c"):
            local.c = s3admin.Client.from_env_file(envf)
        local.c.delete_object(bucket, item[0], check=False)
    with concurrent.futures.ThreadPoolExecutor(MILLION_PUTS) as ex:
        for _ in ex.map(delete, keys):
            pass
    owner.s3("DELETE", bucket)
    print(f"dataset: deleted {len(keys):,} keys and the bucket {bucket}", file=sys.stderr)
    return 0


def main():
    tbdir, bucket = sys.argv[1], sys.argv[2]
    envf = os.path.join(tbdir, "state", "owner.env")
    owner = s3admin.Client.from_env_file(envf)
    if "--million" in sys.argv:
        return build_million(envf)
    if "--drop-million" in sys.argv:
        return drop_million(envf)
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
        put_all(envf, bucket, todo)
    have = {o["Key"]: int(o["Size"]) for o in owner.list_all(bucket)[0]}
    n_small = sum(1 for k in have if k.startswith("small/"))
    n_tree = sum(1 for k in have if k.startswith("tree/"))
    if n_small != SMALL or n_tree != len(tree_keys()) or any(have.get(k) != s for k, (s, _) in BIG.items()):
        print(f"dataset: incomplete: {n_small} small, {n_tree} tree", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
