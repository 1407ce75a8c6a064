"""The chaos soak: a fleet that must never get stuck, measured (JSON).

N real ``nas-study worker`` processes run one study, on PostgreSQL directly
(``--modes postgres``) and through ``nas-study serve-storage`` (``--modes proxy``), while
faults are thrown at them for ``--duration`` seconds (see ``benchmarks/_chaos/fleet.py``):
random ``kill -9`` of workers every 10-60 s, each replaced; PostgreSQL crash-restarts
(``pg_ctlcluster --skip-systemctl-redirect 15 main stop -m immediate``, then ``start``;
the server is always started again, also on errors); proxy restarts in proxy mode; and
SIGSTOP/SIGCONT of a worker for longer than the grace period. Then the faults stop and the
workers finish the budget by themselves.

Figures per mode: kills, freezes, restarts; trials COMPLETE, PRUNED and FAIL; zombies (RUNNING
after every worker exited); lost trials (declared dead, with no copy); duplicates (two trials
from one creation token); workers that crashed (exited non-zero without being killed);
epochs thrown away (by kills, which nothing can save, and otherwise); whether the budget was
met exactly. The baseline of the exactly-once figure is measured in the same run:
``retried_creations_that_had_committed`` counts the creations that, without the token
look-up, would each have left a duplicate trial.

Reproduce: ``python -m benchmarks.chaos --duration 300 --modes postgres proxy``.
Studies get unique names and are deleted at the end (``--keep-study`` keeps them).
"""

from __future__ import annotations

import argparse
import logging
import tempfile
from pathlib import Path

from benchmarks._chaos import ChaosConfig, run_chaos
from benchmarks._common import positive_int, reproduce, write_report

POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"


def _span(text: str) -> tuple[float, float]:
    low, _, high = text.partition(",")
    pair = (float(low), float(high or low))
    if not 0 < pair[0] <= pair[1]:
        raise argparse.ArgumentTypeError(f"expected LOW,HIGH seconds, got {text!r}")
    return pair


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=300.0, help="seconds of faults")
    parser.add_argument("--modes", nargs="+", default=["postgres", "proxy"])
    parser.add_argument("--workers", type=positive_int, default=3)
    parser.add_argument("--budget", type=positive_int, help="default: about what fits")
    parser.add_argument("--epochs", type=positive_int, default=40)
    parser.add_argument("--kill-every", type=_span, default=(10.0, 60.0))
    parser.add_argument("--freeze-every", type=_span, default=(40.0, 90.0))
    parser.add_argument("--db-restart-every", type=_span, default=(60.0, 150.0))
    parser.add_argument("--db-down", type=_span, default=(1.0, 8.0), help="seconds down")
    parser.add_argument("--proxy-restart-every", type=_span, default=(45.0, 120.0))
    parser.add_argument(
        "--drain-timeout", type=float, default=300.0, help="seconds for the workers to finish"
    )
    parser.add_argument("--postgres-url", default=POSTGRES_URL)
    parser.add_argument(
        "--cluster",
        default="15/main",
        help="the PostgreSQL cluster behind --postgres-url, VERSION/NAME (pg_lsclusters)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep-study", action="store_true")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/chaos.json"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    # About one trial per 2.5 worker-seconds on this 2-core machine, so the faults run for
    # the whole duration; the workers drain what is left after it.
    budget = args.budget or max(10, int(args.duration * args.workers / 2.5))
    reports = {}
    with tempfile.TemporaryDirectory(prefix="nas-chaos-") as tmp:
        for mode in args.modes:
            cfg = ChaosConfig(
                mode=mode,
                database_url=args.postgres_url,
                workdir=Path(tmp) / mode,
                duration=args.duration,
                workers=args.workers,
                budget=budget,
                epochs=args.epochs,
                kill_every=args.kill_every,
                freeze_every=args.freeze_every,
                db_restart_every=args.db_restart_every,
                db_down=args.db_down,
                proxy_restart_every=args.proxy_restart_every,
                drain_timeout=args.drain_timeout,
                seed=args.seed,
                keep_study=args.keep_study,
                cluster=args.cluster,
            )
            reports[mode] = run_chaos(cfg)
    write_report(
        {"command": reproduce("benchmarks.chaos", argv), "budget": budget, "modes": reports},
        args.out,
    )


if __name__ == "__main__":
    main()
