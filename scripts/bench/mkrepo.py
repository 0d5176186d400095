#!/usr/bin/env python3
"""A `git fast-import` stream for the benchmark repository.

  mkrepo.py COMMITS                  a fresh history: one commit with FILES files, then
                                     COMMITS-1 commits that each rewrite one file
  mkrepo.py --append FROM_SHA SEQ    one more commit on top of FROM_SHA (rewrites one file)

Write it to `git fast-import` in a bare repository; the branch is refs/heads/main.
"""
import sys

FILES = 500
LINES = 40  # about 2 KB per file


def content(path_no, version):
    lines = [f"file {path_no:04d} version {version} line {i:02d}: lorem ipsum dolor sit amet\n"
             for i in range(LINES)]
    return "".join(lines).encode()


def path(n):
    return f"src/d{n % 20:02d}/f{n:04d}.txt"


def commit(out, seq, parent, files, data_of=content, path_of=path, epoch=1700000000):
    """One commit that writes `data_of(n, seq)` to `path_of(n)` for each n in `files`."""
    msg = f"commit {seq}\n".encode()
    ts = epoch + seq
    out.write(b"commit refs/heads/main\n")
    out.write(f"committer Bench <bench@localhost> {ts} +0000\n".encode())
    out.write(b"data %d\n%s" % (len(msg), msg))
    if parent:
        out.write(f"from {parent}\n".encode())
    for n in files:
        data = data_of(n, seq)
        out.write(f"M 100644 inline {path_of(n)}\n".encode())
        out.write(b"data %d\n%s\n" % (len(data), data))
    out.write(b"\n")


def main(argv):
    out = sys.stdout.buffer
    if argv[1] == "--append":
        seq = int(argv[3])
        commit(out, seq, argv[2], [seq % FILES])
        return
    total = int(argv[1])
    commit(out, 0, None, range(FILES))
    for seq in range(1, total):
        # `from` only where the branch does not continue from the previous commit
        commit(out, seq, None, [seq % FILES])


if __name__ == "__main__":
    main(sys.argv)
