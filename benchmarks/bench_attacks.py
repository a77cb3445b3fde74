"""Benchmark 5: every registered attack on fabricated signals: wall time and peak memory per attack.

Signals of N records × M models × C classes (default 200k × 64 × 100, 5.1 GB of float32 logits,
plus P = 5,000 population records) are fabricated once on disk and opened memory-mapped, as
``miaudit run`` leaves them. Two phases:

1. *Together*, as ``miaudit run`` does it: every attack through one ``audit.run_attacks`` call,
   in one fresh process, first on one target, then afresh on ``--targets`` targets (default 4).
   Attacks compute each model's statistics (φ, log p_y, Shokri's features) once per pool and
   share them across targets; the two calls split the cost into *once per run* and *per
   target*. The figure that matters is the wall time per target when every model plays the
   target (the default): once / M + per target; goal < 10 s.
2. *Alone*: each attack in its own fresh process on one target, so its peak RSS is its own;
   its time includes computing the pool's statistics, which a real run pays once.

Peak RSS is reported next to the logits array. The baseline on the same signals is the cheapest possible pass over them: one
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
    from miaudit.pipeline.pool import membership_design

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


def attack_child(signals_dir: str, name: str | list[str] | None, n: int, targets: int) -> dict:
    """In a fresh process: open the signals (records [:n]) and time attacks (None: the read baseline)."""
    import warnings

    from miaudit.pipeline.attack import run_attacks
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
        names = name if isinstance(name, list) else [name]
        if isinstance(name, list):
            # one target, then `targets` targets afresh: the difference is the marginal cost of a
            # target; the rest is what a run pays once (each model's statistics, shared by targets)
            one = run_attacks(s, AuditConfig(attacks=names, targets=1, bootstrap=0), seed=0)
            t_one = time.perf_counter() - t
            t = time.perf_counter()
            run = run_attacks(s, AuditConfig(attacks=names, targets=targets, bootstrap=0), seed=0)
            t_many = time.perf_counter() - t
            per_target = {k: (run.seconds[k] - one.seconds[k]) / max(targets - 1, 1) for k in run.seconds}
            once = {k: max(0.0, one.seconds[k] - per_target[k]) for k in run.seconds}
            out = {"one_target_s": t_one, "per_attack_one_s": one.seconds, "per_attack_s": run.seconds,
                   "marginal_per_target_s": per_target, "once_per_run_s": once, "skipped": run.skipped,
                   "marginal_total_s": (t_many - t_one) / max(targets - 1, 1)}
            out["once_total_s"] = max(0.0, t_one - out["marginal_total_s"])
        else:
            cfg = AuditConfig(attacks=names, targets=targets, bootstrap=0)
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
    p.add_argument("--targets", type=int, default=4, help="targets in the 'together' phase (time per target is amortised)")
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
        together = C.run_isolated(attack_child, str(root / "signals"), names, args.records, args.targets,
                                  rss_cap_gb=cap)
        if "marginal_total_s" in together:
            print(f"   together: {len(names)} attacks; once per run {together['once_total_s']:.1f} s, then "
                  f"{together['marginal_total_s']:.2f} s per target; peak {together['peak_rss_mb']:,.0f} MiB", flush=True)
            C.table([[k, f"{together['once_per_run_s'][k]:.2f}", f"{together['marginal_per_target_s'][k]:.2f}"]
                     for k in names], ["attack", "once per run s", "per target s"])
        else:
            print(f"   together: {together.get('error')}", flush=True)
        for name in [None, *names]:
            n = args.records
            while True:
                r = C.run_isolated(attack_child, str(root / "signals"), name, n, 1, rss_cap_gb=cap)
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
    print("   alone (one target, fresh process: includes the pool's statistics, paid once per run):")
    C.table(rows, ["attack", "s (1 target)", "peak RSS MiB", "above start", "÷ logits", "note"])
    if skipped_images:
        print(f"   not run (images only): {', '.join(skipped_images)}")
    once, marginal = together.get("once_total_s", float("nan")), together.get("marginal_total_s", float("nan"))
    per_target = once / args.models + marginal  # every model plays the target, as `miaudit run` does by default
    print(f"   RATIO all attacks together, every one of the {args.models} models a target: {per_target:.2f} s per "
          f"target ({once:.1f} s once + {marginal:.2f} s each; target < 10 s), "
          f"peak RSS {together.get('peak_rss_mb', float('nan')) / logits_mb:.2f}x the logits; "
          f"sum of attacks alone on one target: {total:.1f} s; read baseline "
          f"{results['read baseline'].get('seconds', float('nan')):.2f} s")
    path = C.save_result("bench_attacks", {"args": vars(args) | {"out": str(args.out), "tmp": str(args.tmp)},
                                           "logits_mib": logits_mb, "cap_gb": cap, "attacks": results,
                                           "together": together, "together_s_per_target": per_target,
                                           "alone_total_s": total}, args.out, quick=args.quick)
    print(f"   saved {path}")


if __name__ == "__main__":
    main()
