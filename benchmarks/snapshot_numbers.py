"""Snapshot of the numbers the package prints: LL and every estimate of the
main job and of each models/ script in --quick mode, written as JSON.

Used to show that a refactor changes no number (compare two snapshots with
``--compare A.json B.json``; differences above 1e-6 are listed).

    python benchmarks/snapshot_numbers.py out.json
    python benchmarks/snapshot_numbers.py --compare before.json after.json
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import json
import sys
import time
from pathlib import Path

import numpy as np

MODELS = Path(__file__).resolve().parents[1] / "models"


def _load(name):
    spec = importlib.util.spec_from_file_location(name, MODELS / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod  # dataclasses in the script look their module up
    spec.loader.exec_module(mod)
    return mod


def _fit_numbers(res) -> dict:
    est = res.params.set_index(res.params.columns[0])["estimate"] if "label" not in res.params else \
        res.params.set_index("label")["estimate"]
    se = res.params.set_index("label")["se"]
    return {"loglik": float(res.loglik), "n_params": int(res.n_params),
            "estimate": {k: float(v) for k, v in est.items()},
            "se": {k: (None if not np.isfinite(v) else float(v)) for k, v in se.items()}}


def snapshot() -> dict:
    out = {}
    quiet = io.StringIO()
    t0 = time.time()
    with contextlib.redirect_stdout(quiet):
        fits = _load("lca_verbal_aggression").main(["--quick"])
    out["main_job"] = {k: _fit_numbers(v) for k, v in fits.items()}
    print(f"main job {time.time() - t0:.0f} s", file=sys.stderr)
    t0 = time.time()
    with contextlib.redirect_stdout(quiet):
        fits = _load("exam_mixture_regression").main(["--quick"])
    out["exam_mixture_regression"] = {k: _fit_numbers(v) for k, v in fits.items()}
    print(f"exam {time.time() - t0:.0f} s", file=sys.stderr)
    t0 = time.time()
    with contextlib.redirect_stdout(quiet):
        res = _load("table3_model5_vs_model6").run(quick=True)
    out["table3"] = {"fit5": _fit_numbers(res["fit5"]), "fit6": _fit_numbers(res["fit6"])}
    print(f"table3 {time.time() - t0:.0f} s", file=sys.stderr)
    t0 = time.time()
    with contextlib.redirect_stdout(quiet):
        table = _load("table2_class_level_mse").run(quick=True, jobs=1, progress=False)
    out["table2"] = {str(m): {c: float(table.loc[m, c]) for c in ("mse", "bias", "coverage")}
                     for m in table.index}
    print(f"table2 {time.time() - t0:.0f} s", file=sys.stderr)
    return out


def _flatten(d, prefix=""):
    for k, v in d.items():
        key = f"{prefix}/{k}"
        if isinstance(v, dict):
            yield from _flatten(v, key)
        else:
            yield key, v


def compare(a: dict, b: dict, tol: float = 1e-6) -> list[str]:
    fa, fb = dict(_flatten(a)), dict(_flatten(b))
    lines = []
    for k in sorted(set(fa) | set(fb)):
        x, y = fa.get(k, "missing"), fb.get(k, "missing")
        if isinstance(x, float) and isinstance(y, float):
            if not (abs(x - y) <= tol * max(1.0, abs(x))):
                lines.append(f"{k}: {x!r} -> {y!r} (diff {y - x:.3g})")
        elif x != y:
            lines.append(f"{k}: {x!r} -> {y!r}")
    return lines


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", nargs="?")
    ap.add_argument("--compare", nargs=2, metavar=("BEFORE", "AFTER"))
    ap.add_argument("--tol", type=float, default=1e-6)
    args = ap.parse_args(argv)
    if args.compare:
        a, b = (json.loads(Path(p).read_text()) for p in args.compare)
        diffs = compare(a, b, args.tol)
        print("\n".join(diffs) if diffs else f"no difference above {args.tol:g}")
        return diffs
    snap = snapshot()
    Path(args.out).write_text(json.dumps(snap, indent=1))
    return snap


if __name__ == "__main__":
    main()
