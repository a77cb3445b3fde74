"""Benchmark 5: every registered attack on fabricated signals: wall time and peak memory per attack.

Signals of N records × M models × C classes (default 200k × 64 × 100, 5.1 GB of float32 logits,
plus P = 5,000 population records) are fabricated once on disk and opened memory-mapped, as
``miaudit run`` leaves them. Each attack in ``miaudit.attacks.ATTACKS`` then runs through
``audit.run_attacks`` (one target by default, no bootstrap) in a fresh process, so its peak RSS
is its own. Targets: all attacks together < 10 s per target; peak RSS reported next to the
logits array. The baseline on the same signals is the cheapest possible pass over them: one
read of the target's logits (``loss`` needs nothing more).

A watchdog stops an attack whose anonymous memory passes ``--max-gb`` (default: half the
available memory) and that attack is retried on a prefix of the records, halving N until it
fits; its time is then extrapolated linearly to the full N and marked ``~``.

    python benchmarks/bench_attacks.py
    python benchmarks/bench_attacks.py --quick
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import _common as C
import numpy as np


def fabricate(root: Path, m: int, n: int, c: int, p: int, seed: int = 0) -> None:
    """Pool signals with a membership effect: the true-class logit rises for IN models."""
    from miaudit.io import save_npy, write_json, write_npy_stream
    from miaudit.pool import membership_design

    rng = np.random.default_rng(seed)
    labels = rng.integers(0, c, n)
    pop_labels = rng.integers(0, c, p)
    in_mask = membership_design(m, n, seed)
    hardness = rng.normal(2.0, 1.5, n).astype(np.float32)  # per-record: some records are hard
    pop_hard = rng.normal(2.0, 1.5, p).astype(np.float32)
    chunk = 50_000

    def audit(fh) -> None:  # noqa: ANN001
        for k in range(m):
            for s in range(0, n, chunk):
                e = min(n, s + chunk)
                z = rng.standard_normal((e - s, c), dtype=np.float32)
                z[np.arange(e - s), labels[s:e]] += hardness[s:e] + 1.5 * in_mask[k, s:e]
                fh.write(z.tobytes())

    def population(fh) -> None:  # noqa: ANN001
        for _ in range(m):
            z = rng.standard_normal((p, c), dtype=np.float32)
            z[np.arange(p), pop_labels] += pop_hard
            fh.write(z.tobytes())

    sig = root / "signals"
    write_npy_stream(sig / "audit_logits.npy", (m, 1, n, c), np.float32, audit)
    write_npy_stream(sig / "population_logits.npy", (m, 1, p, c), np.float32, population)
    write_npy_stream(sig / "test_logits.npy", (m, 1, 10, c), np.float32,
                     lambda fh: fh.write(rng.standard_normal((m, 1, 10, c), dtype=np.float32).tobytes()))
    save_npy(sig / "in_mask.npy", in_mask)
    save_npy(sig / "labels.npy", labels)
    save_npy(sig / "population_labels.npy", pop_labels)
    save_npy(sig / "test_labels.npy", rng.integers(0, c, 10))
    write_json(sig / "manifest.json", {"fingerprint": "bench", "n_models": m, "is_image": False})


def attack_child(signals_dir: str, name: str | None, n: int, targets: int) -> dict:
    """In a fresh process: open the signals (records [:n]) and time one attack (None: the read baseline)."""
    import warnings

    from miaudit.audit import run_attacks
    from miaudit.config import AuditConfig
    from miaudit.signals import Signals, load_signals

    warnings.filterwarnings("ignore")  # reliability flags of a fabricated pool are not the point here

    full = load_signals(Path(signals_dir))
    s = Signals(logits=full.logits[:, :, :n], in_mask=full.in_mask[:, :n], labels=full.labels[:n],
                population_logits=full.population_logits, population_labels=full.population_labels,
                test_logits=full.test_logits, test_labels=full.test_labels, is_image=False)
    base = C.rss_mb()
    t = time.perf_counter()
    if name is None:
        float(np.asarray(s.logits[0]).sum())
        out: dict = {}
    else:
        cfg = AuditConfig(attacks=[name], targets=targets, bootstrap=0)
        run = run_attacks(s, cfg, seed=0)
        out = {"skipped": run.skipped.get(name), "auc": run.results.get(name, {}).get("auc")}
    out.update(seconds=time.perf_counter() - t, start_rss_mb=base)
    return out


def main() -> None:
    p = C.parser(__doc__.splitlines()[0])
    p.add_argument("--records", type=int, default=200_000)
    p.add_argument("--models", type=int, default=64)
    p.add_argument("--classes", type=int, default=100)
    p.add_argument("--population", type=int, default=5_000)
    p.add_argument("--targets", type=int, default=1, help="models that play the target (time scales linearly)")
    p.add_argument("--attacks", default=None, help="comma-separated subset (default: every registered attack)")
    p.add_argument("--max-gb", type=float, default=None, help="anonymous-memory cap per attack (default: half the free)")
    p.add_argument("--tmp", type=Path, default=Path(tempfile.gettempdir()))
    args = p.parse_args()
    if args.quick:
        args.records, args.models, args.population = 5_000, 8, 1_000
    C.header("bench_attacks: every attack on fabricated signals")
    from miaudit.attacks import ATTACKS

    names = args.attacks.split(",") if args.attacks else [k for k, spec in ATTACKS.items() if not spec.images_only]
    skipped_images = [k for k, spec in ATTACKS.items() if spec.images_only and not args.attacks]
    cap = args.max_gb or round(0.5 * C.meminfo_gb("MemAvailable"), 1)
    logits_mb = args.models * args.records * args.classes * 4 / 2**20
    root = Path(tempfile.mkdtemp(prefix="miaudit-bench-attacks-", dir=args.tmp))
    results: dict[str, dict] = {}
    try:
        t = time.perf_counter()
        fabricate(root, args.models, args.records, args.classes, args.population)
        print(f"   fabricated M={args.models} x N={args.records:,} x C={args.classes} ({logits_mb:,.0f} MiB) "
              f"+ P={args.population:,} in {time.perf_counter() - t:.0f} s; memory cap per attack {cap} GB")
        for name in [None, *names]:
            n = args.records
            while True:
                r = C.run_isolated(attack_child, str(root / "signals"), name, n, args.targets, rss_cap_gb=cap)
                if "error" not in r or n <= 1_000:
                    break
                n //= 2
            r["records"] = n
            scale = args.records / n
            if "seconds" in r:
                r["seconds_full_n"] = r["seconds"] * scale
            results[name or "read baseline"] = r
            print(f"   .. {name or 'read baseline'}: {r.get('seconds_full_n', float('nan')):.2f} s, "
                  f"peak {r.get('peak_rss_mb', float('nan')):,.0f} MiB {r.get('error', '')}", flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)

    rows = []
    total = 0.0
    for k, r in results.items():
        if "seconds" not in r:
            rows.append([k, "-", "-", "-", "-", r.get("error", "")])
            continue
        approx = "~" if r["records"] != args.records else ""
        if k != "read baseline" and not r.get("skipped"):
            total += r["seconds_full_n"]
        note = r.get("skipped") or (f"measured at N={r['records']:,}" if approx else "")
        rows.append([k, f"{approx}{r['seconds_full_n']:.2f}", f"{r['peak_rss_mb']:,.0f}",
                     f"{r['peak_rss_mb'] - r['start_rss_mb']:,.0f}", f"{r['peak_rss_mb'] / logits_mb:.2f}x", note])
    C.table(rows, ["attack", "s/target", "peak RSS MiB", "above start", "÷ logits", "note"])
    if skipped_images:
        print(f"   not run (images only): {', '.join(skipped_images)}")
    print(f"   RATIO all attacks together: {total:.1f} s per target (target < 10 s); "
          f"read baseline {results['read baseline'].get('seconds', float('nan')):.2f} s")
    path = C.save_result("bench_attacks", {"args": vars(args) | {"out": str(args.out), "tmp": str(args.tmp)},
                                           "logits_mib": logits_mb, "cap_gb": cap, "attacks": results,
                                           "total_s_per_target": total}, args.out, quick=args.quick)
    print(f"   saved {path}")


if __name__ == "__main__":
    main()
