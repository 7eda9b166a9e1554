"""Reading and encoding tables: ``python -m benchmarks.tables [--rows 200000] [--repeats 3] [--quick]``.

1. A CSV of ``rows`` x 21 columns (18 float, one text, two integer; about 73 MB at 200k rows) is
   read by each CSV reader of :mod:`anybackprop.tablefiles`; the median seconds are printed and
   the tables are checked to be identical.
2. A 5k-row table with an ID-like text column (about 3.2k distinct values) is encoded with the
   default category cap and without one: the encoded width and the seconds of one training epoch
   (the issue's 20k-row file took 16,000 features and 5.8 GB without a cap).
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import sys
import tempfile
import time
import warnings

import numpy as np

import anybackprop as ab
from anybackprop.tablefiles import READERS, read_table


def _write_csv(path: str, rows: int) -> None:
    rng = np.random.default_rng(0)
    columns = [rng.standard_normal(rows).round(6).astype(str) for _ in range(18)]
    columns += [rng.choice(["red", "green", "blue"], rows), rng.integers(0, 1000, rows).astype(str)]
    columns.append(rng.integers(0, 2, rows).astype(str))
    names = [*(f"x{j}" for j in range(18)), "colour", "count", "y"]
    with open(path, "w") as f:
        f.write(",".join(names) + "\n")
        f.writelines(",".join(row) + "\n" for row in zip(*columns, strict=True))


def reading(rows: int, repeats: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "big.csv")
        _write_csv(path, rows)
        print(f"reading a {os.path.getsize(path) / 1e6:.0f} MB CSV of {rows} rows x 21 columns")
        tables = {}
        for reader in READERS:
            try:
                seconds = []
                for _ in range(repeats):
                    start = time.perf_counter()
                    tables[reader] = read_table(path, reader=reader)
                    seconds.append(time.perf_counter() - start)
            except ImportError:
                print(f"  {reader:<8} not installed")
                continue
            print(f"  {reader:<8} {statistics.median(seconds):6.2f} s")
        found = list(tables.values())
        same = all(
            a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k]) for a, b in itertools.pairwise(found) for k in a
        )
        print(f"  identical tables: {same}")


def categories(rows: int, repeats: int) -> None:
    rng = np.random.default_rng(0)
    columns = {"id": np.array([f"u{i}" for i in rng.integers(0, rows * 4 // 5, rows)], dtype=object)}
    columns["x"] = rng.standard_normal(rows)
    y = (columns["x"] > 0).astype(int)
    for cap in (ab.tables.MAX_CATEGORIES, None):
        model = ab.TabularModel([64], max_categories=cap, seed=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            X, t = model.prepare(columns, y)
        seconds = []
        for _ in range(repeats):
            start = time.perf_counter()
            model.network.fit(X, t, epochs=1, batch_size=256, optimizer="adam", verbose=False)
            seconds.append(time.perf_counter() - start)
        print(f"  max_categories={cap}: {X.shape[1]} features, {statistics.median(seconds):.2f} s per epoch")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.tables", description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one repeat (a smoke test)")
    args = parser.parse_args(argv)
    rows, id_rows, repeats = (2_000, 500, 1) if args.quick else (args.rows, 5_000, args.repeats)
    reading(rows, repeats)
    print(f"an ID-like column in {id_rows} rows")
    categories(id_rows, repeats)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
