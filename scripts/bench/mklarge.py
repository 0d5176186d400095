#!/usr/bin/env python3
"""A `git fast-import` stream for a large repository, about the size of git's own.

  mklarge.py COMMITS BYTES_PER_COMMIT        a fresh history on refs/heads/main
  mklarge.py --append FROM_SHA SEQ BYTES     one more commit on top of FROM_SHA

FILES files in 64 folders; each commit rewrites two of them with BYTES_PER_COMMIT bytes
of pseudo-random (incompressible, delta-free) text in all, so the pack is about
COMMITS x BYTES_PER_COMMIT. Deterministic: the same arguments give the same repository.
"""
import random
import sys

import mkrepo  # the fast-import writer, in this folder

FILES = 4096


def path(n):
    return f"src/d{n % 64:02d}/f{n:05d}.txt"


def blob(rng, size):
    # hex text: incompressible to about half, never a delta of an earlier version
    return rng.randbytes(size // 2).hex().encode() + b"\n"


def commit(out, rng, seq, parent, files, size):
    mkrepo.commit(out, seq, parent, files, data_of=lambda n, s: blob(rng, size),
                  path_of=path, epoch=1600000000)


def main(argv):
    out = sys.stdout.buffer
    if argv[1] == "--append":
        seq, size = int(argv[3]), int(argv[4])
        commit(out, random.Random(seq), seq, argv[2], [seq % FILES, (seq * 7 + 1) % FILES], size // 2)
        return
    total, size = int(argv[1]), int(argv[2])
    rng = random.Random(42)
    # the first commit has every file (small), the rest rewrite two each
    commit(out, rng, 0, None, range(FILES), 64)
    for seq in range(1, total):
        commit(out, rng, seq, None, [seq % FILES, (seq * 7 + 1) % FILES], size // 2)


if __name__ == "__main__":
    main(sys.argv)
