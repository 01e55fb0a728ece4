#!/usr/bin/env python3
"""Generate the contexts of testdata/bench/* into a work directory.

The Dockerfiles live in testdata/bench/NAME/; their contexts are generated
(deterministically) rather than committed: 20,000 files and a GiB of data
do not belong in git."""
import os, random, shutil, sys

def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)

def text(rng, n):
    words = ["alpha", "beta", "gamma", "delta", "fn", "let", "return", "struct", "impl", "pub"]
    return (" ".join(rng.choice(words) for _ in range(n)) + "\n").encode()

def generate(name, src, dest, large_mb):
    shutil.rmtree(dest, ignore_errors=True)
    os.makedirs(dest)
    shutil.copy(os.path.join(src, "Dockerfile"), os.path.join(dest, "Dockerfile"))
    rng = random.Random(42)
    if name == "copy-multistage":
        for side in ("left", "right"):
            for i in range(2000):
                write(f"{dest}/{side}/d{i % 40}/f{i}.txt", text(rng, 30))
        for i in range(50):
            write(f"{dest}/src/m{i}.rs", text(rng, 200))
    elif name == "copy-20k":
        for i in range(20000):
            write(f"{dest}/pkg{i % 100}/sub{i % 7}/file{i}.txt", text(rng, 20))
    elif name == "run-demo":
        for i in range(2000):
            write(f"{dest}/files/f{i}.txt", text(rng, 10))
    elif name == "run-debian":
        for i in range(20):
            write(f"{dest}/app/m{i}.txt", text(rng, 50))
    elif name == "copy-large":
        chunk = 64 << 20
        blocks = max(1, large_mb * (1 << 20) // chunk)
        for i in range(blocks):
            # Half text-like, half random: a realistic compression ratio.
            data = bytearray(rng.randbytes(chunk // 2))
            data += text(rng, 2000) * (chunk // 2 // len(text(rng, 2000)) + 1)
            write(f"{dest}/blob{i}.bin", bytes(data[:chunk]))

if __name__ == "__main__":
    root, work = sys.argv[1], sys.argv[2]
    large_mb = int(os.environ.get("BENCH_LARGE_MB", "1024"))
    for name in sys.argv[3:]:
        generate(name, os.path.join(root, name), os.path.join(work, name), large_mb)
