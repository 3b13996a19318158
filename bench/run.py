"""The side-by-side benchmark: diffmig on a messy clinic against pgloader, reladiff, a raw COPY
and the hash-scan floor, all measured in the same run.

    .venv/bin/python bench/run.py --scale 100000 --setup --workers 1,2 --profile   # make bench
    .venv/bin/python bench/run.py --scale 1000000 --setup --workers 1,2           # make bench-full

Steps: generate the legacy clinic in MariaDB (deterministic from ``--seed``: offices ~1k,
doctors ~20k, patients = SCALE, appointments = 2 x SCALE); time the references (raw COPY,
pgloader, the floor); diffmig's baseline, a run with no change, verify (against reading both
sides raw); the churn (with its ground truth); the floor and reladiff at churn; diffmig's
differential run, whose change set must equal the ground truth (recall and precision 100 %);
optionally the baseline on 1 and 2 RQ workers and a cProfile of the baseline. A step that takes
under a minute runs 3 times (median), each from the same state (PostgreSQL templates).

The section appended to ``--results`` (bench/RESULTS.md) gives the machine, the versions,
every run's time and each figure as a ratio to its reference. Timings are reported, never
asserted; exactness is: the command exits 1 when the change set or verify is wrong.
Needs the services of `make test`; ``--setup`` installs pgloader (apt, as root) and reladiff
(in var/bench-venv) when they are missing, else those references are skipped with the reason.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import pgloader_ref, references, reladiff_ref, report  # noqa: E402
from bench.churn import apply_churn  # noqa: E402
from bench.clinic import TABLES, sizes_for  # noqa: E402
from bench.databases import BenchDatabases, Servers  # noqa: E402
from bench.diffmig_side import Diffmig  # noqa: E402
from bench.measure import Timing, repeat  # noqa: E402
from bench.report import Figure, Section  # noqa: E402
from bench.source import build_source, source_counts  # noqa: E402

SUMMARY_DIR = ROOT / "var" / "bench"
SITE_PACKAGES = tuple(f"{p}/" for p in sys.path if p.endswith("site-packages"))
RSS_LIMIT_MB = 500


def say(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, default=100_000, help="patients (default 100000)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=3, help="runs of a step under a minute")
    parser.add_argument("--batch-size", type=int, default=5000)
    parser.add_argument("--workers", default="", help="baseline on N RQ workers too, e.g. 1,2")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/12")
    parser.add_argument("--results", type=Path, default=ROOT / "bench" / "RESULTS.md")
    parser.add_argument("--json-out", type=Path, help="also write the figures as JSON here")
    parser.add_argument(
        "--summary-dir",
        type=Path,
        default=SUMMARY_DIR,
        help="where each scale's last figures are kept (peak RSS is compared across scales)",
    )
    parser.add_argument("--prefix", default="diffmig_bench", help="names of the bench databases")
    parser.add_argument("--setup", action="store_true", help="install missing reference tools")
    parser.add_argument("--no-pgloader", action="store_true")
    parser.add_argument("--no-reladiff", action="store_true")
    parser.add_argument("--no-fk-indexes", action="store_true", help="destination without them")
    parser.add_argument("--profile", action="store_true", help="cProfile one more baseline")
    parser.add_argument("--keep", action="store_true", help="keep the databases afterwards")
    parser.add_argument(
        "--local-processes",
        type=int,
        default=2,
        help="DIFFMIG_LOCAL_PROCESSES of the command line's runs (1: one core)",
    )
    parser.add_argument(
        "--diffmig-root", type=Path, default=ROOT, help="the diffmig tree to measure (manage.py)"
    )
    parser.add_argument("--machine-note", default="", help="e.g. 'shared with other work'")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    dbs = BenchDatabases(args.prefix, Servers.from_env())
    try:
        return run_bench(args, dbs)
    finally:
        if not args.keep:
            dbs.drop_all()


def run_bench(args: argparse.Namespace, dbs: BenchDatabases) -> int:
    started = time.perf_counter()
    sizes = sizes_for(args.scale)
    work = Path(tempfile.mkdtemp(prefix="diffmig-bench-"))
    section = Section(
        scale=args.scale,
        seed=args.seed,
        started=dt.datetime.now(dt.UTC),
        machine=report.machine_info(args.machine_note),
        versions={},
        sizes={t.name: sizes.of(t.name) for t in TABLES} | {"total": sizes.total},
    )
    summary: dict = {"scale": args.scale, "seed": args.seed}
    diffmig = Diffmig(
        dbs,
        args.batch_size,
        args.redis_url,
        root=args.diffmig_root.resolve(),
        local_processes=args.local_processes,
    )
    section.notes.append(
        f"diffmig's command-line runs with DIFFMIG_LOCAL_PROCESSES={args.local_processes} "
        "(a large entity's partitions shared by that many processes, the sources of the "
        "entities to come read ahead by a helper, verify's entities checked that many at "
        "once; the RQ figures use workers)"
    )

    say(f"generating the clinic: {sizes.total:,} rows")
    t = time.perf_counter()
    build_source(dbs, seed=args.seed, sizes=sizes)
    section.notes.append(f"generating the legacy clinic took {time.perf_counter() - t:.1f} s")
    counts = source_counts(dbs)
    total = sum(counts.values())
    section.versions = versions(dbs, args.diffmig_root.resolve())
    diffmig.prepare(fk_indexes=not args.no_fk_indexes)
    if args.no_fk_indexes:
        section.notes.append("destination WITHOUT indexes on its foreign keys (--no-fk-indexes)")

    def timed(label: str, step, rows: int | None, before=None) -> Timing:
        say(label)
        timing = repeat(label, step, before=before, max_runs=args.repeat)
        section.timings.append((timing, rows))
        return timing

    # -- references on the unchanged source ---------------------------------------------
    references.create_raw_tables(dbs)
    raw = timed("reference: raw COPY of every row", lambda: references.raw_copy(dbs), total)
    pgl = pgloader_reference(args, dbs, section, counts, work, timed)
    references.prepare_floor(dbs)
    floor0 = timed(
        "reference: hash-scan floor, no change", lambda: references.hash_scan_floor(dbs), total
    )

    # -- diffmig on the unchanged source --------------------------------------------------
    def diffmig_run(baseline: bool = False):
        def step():
            proc, document = diffmig.run(baseline=baseline)
            return proc.seconds, (proc, document)

        return step

    baseline = timed(
        "diffmig baseline (`run --baseline`)",
        diffmig_run(True),
        total,
        before=lambda: diffmig.restore("stage0"),
    )
    for _, document in baseline.results:
        session = document["session"]
        if session["processed"] != total or session["failed"]:
            raise RuntimeError(f"the baseline wrote {session['processed']} of {total} rows")
    diffmig.save("stage1")
    nochange = timed("diffmig run with no change", diffmig_run(), 0)
    verify = timed("diffmig verify", lambda: _verify(diffmig), total)
    raw_read = timed(
        "reference: raw read of both sides", lambda: references.raw_read(dbs), 2 * total
    )

    # -- churn, then the references and diffmig on the changed source ---------------------
    say("churn")
    truth = apply_churn(dbs, seed=args.seed)
    changes = truth.count()
    floor1 = timed(
        "reference: hash-scan floor at churn", lambda: references.hash_scan_floor(dbs), total
    )
    floor_counts = floor1.results[0]
    expected_counts = {
        e: {k: len(v) for k, v in kinds.items()} for e, kinds in truth.changes.items()
    }
    if floor_counts != expected_counts:
        section.notes.append(f"the floor's counts differ from the truth: {floor_counts}")
    reladiff = reladiff_reference(args, dbs, section, truth, timed)

    def differential():
        proc, document = diffmig.run()
        # Read now: the next repetition restores the control database from its snapshot.
        found = diffmig.change_set(document["session"]["id"])
        return proc.seconds, (proc, document, recall_precision(found, truth))

    diff = timed(
        f"diffmig differential run ({changes:,} changes)",
        differential,
        changes,
        before=lambda: diffmig.restore("stage1"),
    )
    # Every repetition's change set is checked; the figure shows the worst one.
    scores = [score for _proc, _document, score in diff.results]
    score = min(scores, key=lambda s: (s["recall"], s["precision"]))
    exact = all(s["recall"] == 1.0 and s["precision"] == 1.0 for s in scores)
    summary["change_set"] = score
    summary["change_sets"] = scores

    # -- workers, profile ------------------------------------------------------------------
    worker_counts = [int(n) for n in args.workers.split(",") if n.strip()]
    worker_times: dict[int, float] = {}
    worker_rss: list[float] = []
    if worker_counts:
        # Several partitions per large entity, so that the workers can share it.
        diffmig.worker_settings = {
            "DIFFMIG_PARTITION_ROWS": str(max(args.scale // 6, 1000)),
            "DIFFMIG_UNIT_BATCHES": os.environ.get("DIFFMIG_UNIT_BATCHES", "4"),
        }
        for count in worker_counts:
            diffmig.restore("stage0")
            say(f"baseline on {count} RQ worker(s)")
            seconds, rss = diffmig.baseline_on_workers(count, log_dir=work)
            timing = Timing(f"diffmig baseline on {count} RQ worker(s) (partitioned)", [seconds])
            section.timings.append((timing, sum(counts.values())))
            worker_times[count] = seconds
            worker_rss += rss
    if args.profile:
        diffmig.restore("stage0")
        say("cProfile of the baseline")
        path = work / "baseline.prof"
        diffmig.run(baseline=True, profile_to=str(path))
        section.profile = profile_summary(path, args.diffmig_root.resolve())

    # -- figures ---------------------------------------------------------------------------
    section.figures = figures(
        total=total,
        raw=raw,
        pgl=pgl,
        floor0=floor0,
        floor1=floor1,
        reladiff=reladiff,
        baseline=baseline,
        nochange=nochange,
        diff=diff,
        verify=verify,
        raw_read=raw_read,
        score=score,
        truth_silent=sum(len(v) for v in truth.silent.values()),
        worker_times=worker_times,
    )
    cli_rss = max(r[0].peak_rss_mb for r in baseline.results + diff.results)
    for timing in (baseline, nochange, diff):
        proc, document = timing.results[0][:2]
        section.stages.append(report.stage_row(timing.label, proc.seconds, document))
    section.figures += rss_figures(
        args.summary_dir, args.scale, cli_rss, max(worker_rss, default=None)
    )
    summary.update(
        rows=total,
        changes=changes,
        exact=exact,
        cli_peak_rss_mb=cli_rss,
        worker_peak_rss_mb=max(worker_rss, default=None),
        seconds={label: t.seconds for t, _ in section.timings for label in [t.label]},
        figures={f.name: f.ratio for f in section.figures},
        verify_ok=all(verify.results),
        skipped=section.skipped,
    )
    section.elapsed_s = time.perf_counter() - started
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    section.machine["load at end"] = load
    text = report.append(section, args.results)
    print(text)
    args.summary_dir.mkdir(parents=True, exist_ok=True)
    (args.summary_dir / f"summary-{args.scale}.json").write_text(json.dumps(summary, indent=1))
    if args.json_out:
        args.json_out.write_text(json.dumps(summary, indent=1))
    if not exact or not summary["verify_ok"]:
        say("NOT EXACT: the change set differs from the ground truth, or verify found mismatches")
        return 1
    return 0


def _verify(diffmig: Diffmig):
    proc, document = diffmig.verify()
    entities = document.get("entities", {})
    ok = proc.returncode == 0 and all(
        not (e.get("missing") or e.get("extra") or e.get("different")) for e in entities.values()
    )
    return proc.seconds, ok


def pgloader_reference(args, dbs, section, counts, work, timed) -> Timing | None:
    if args.no_pgloader:
        section.skipped.append("pgloader (--no-pgloader)")
        return None
    available = pgloader_ref.ensure_pgloader(install=args.setup)
    if not available.ok:
        say(f"skipping pgloader: {available.reason}")
        section.skipped.append(f"pgloader: {available.reason}")
        return None
    section.versions["pgloader"] = available.version

    def step():
        run = pgloader_ref.run_pgloader(dbs, work_dir=work)
        return run.seconds, run

    timing = timed("reference: pgloader, whole database", step, sum(counts.values()))
    lost = {
        table: (counts[table], timing.results[-1].counts.get(table, 0))
        for table in counts
        if timing.results[-1].counts.get(table, 0) != counts[table]
    }
    if lost:
        section.notes.append(
            "pgloader LOST ROWS (source, loaded): "
            + ", ".join(f"{t} {a:,} → {b:,}" for t, (a, b) in lost.items())
            + f"; its errors: {timing.results[-1].log_tail}"
        )
        timing.label += " (LOST ROWS: not a valid reference)"
        return None
    return timing


def reladiff_reference(args, dbs, section, truth, timed) -> Timing | None:
    if args.no_reladiff:
        section.skipped.append("reladiff (--no-reladiff)")
        return None
    setup = reladiff_ref.ensure_reladiff(install=args.setup)
    if not setup.ok:
        say(f"skipping reladiff: {setup.reason}")
        section.skipped.append(f"reladiff: {setup.reason}")
        return None

    def step():
        run = reladiff_ref.reladiff_find(dbs)
        return run.seconds, run

    timing = timed("reference: reladiff find-only, patients", step, None)
    run = timing.results[0]
    section.versions["reladiff"] = run.versions + " (bench venv, utf8mb4 charset fix)"
    expected = sum(len(keys) for keys in truth.changes["patient"].values())
    if run.keys != expected:
        section.notes.append(
            f"reladiff found {run.keys:,} differing patients; the churn changed {expected:,}"
        )
    return timing


def recall_precision(found: set[tuple[str, str, str]], truth) -> dict:
    wanted = truth.as_pairs()
    got = {f for f in found if f[1] in ("new", "modified", "deleted")}
    hits = len(wanted & got)
    silent = {(e, "modified", k) for e, keys in truth.silent.items() for k in keys}
    return {
        "recall": hits / len(wanted) if wanted else 1.0,
        "precision": hits / len(got) if got else 1.0,
        "truth": len(wanted),
        "found": len(got),
        "other_kinds": len(found) - len(got),
        "silent_found": len(silent & got),
        "silent": len(silent),
        "deleted_found": len({f for f in got if f[1] == "deleted"} & wanted),
        "deleted": len({w for w in wanted if w[1] == "deleted"}),
        "missed_sample": sorted(wanted - got)[:5],
        "extra_sample": sorted(got - wanted)[:5],
    }


def figures(**m) -> list[Figure]:
    total = m["total"]
    out = []
    base, pgl = m["baseline"], m["pgl"]
    rate = total / base.seconds
    if pgl is not None:
        ratio = rate / (total / pgl.seconds)
        out.append(
            Figure(
                "baseline rows/s (transforms, validation, record map, events)",
                f"{rate:,.0f} rows/s",
                f"pgloader {total / pgl.seconds:,.0f} rows/s",
                ratio,
                "≥ 1.0x",
                ratio >= 1.0,
            )
        )
    out.append(
        Figure(
            "baseline time ÷ raw COPY time",
            f"{base.seconds:.1f} s",
            f"raw COPY {m['raw'].seconds:.1f} s",
            base.seconds / m["raw"].seconds,
            "(information)",
            None,
        )
    )
    diff, floor1 = m["diff"], m["floor1"]
    ratio = diff.seconds / floor1.seconds
    out.append(
        Figure(
            "differential run (analyze + apply) at churn",
            f"{diff.seconds:.1f} s",
            f"floor {floor1.seconds:.1f} s",
            ratio,
            "≤ 2x",
            ratio <= 2.0,
        )
    )
    if m["reladiff"] is not None:
        ratio = diff.seconds / m["reladiff"].seconds
        out.append(
            Figure(
                "differential run (whole database) ÷ reladiff find-only (patients)",
                f"{diff.seconds:.1f} s",
                f"reladiff {m['reladiff'].seconds:.1f} s",
                ratio,
                "≤ 0.2x",
                ratio <= 0.2,
            )
        )
    ratio = m["nochange"].seconds / m["floor0"].seconds
    out.append(
        Figure(
            "run with no change",
            f"{m['nochange'].seconds:.1f} s",
            f"floor {m['floor0'].seconds:.1f} s",
            ratio,
            "≤ 1.5x",
            ratio <= 1.5,
        )
    )
    score = m["score"]
    out.append(
        Figure(
            "recall / precision of the change set",
            f"{score['recall']:.2%} / {score['precision']:.2%} "
            f"({score['found']:,} found; deletes {score['deleted_found']:,}/{score['deleted']:,}, "
            f"silent updates {score['silent_found']:,}/{score['silent']:,})",
            f"ground truth {score['truth']:,} changes",
            None,
            "100 % / 100 %",
            score["recall"] == 1.0 and score["precision"] == 1.0,
        )
    )
    verify, raw_read = m["verify"], m["raw_read"]
    ratio = raw_read.seconds / verify.seconds
    out.append(
        Figure(
            "verify rows/s",
            f"{total / verify.seconds:,.0f} records/s",
            f"raw read of both sides {total / raw_read.seconds:,.0f} records/s",
            ratio,
            "≥ 0.5x",
            ratio >= 0.5,
        )
    )
    workers = m["worker_times"]
    if 1 in workers and 2 in workers:
        ratio = workers[1] / workers[2]
        out.append(
            Figure(
                "2 RQ workers vs 1, partitioned baseline",
                f"2 workers {workers[2]:.1f} s",
                f"1 worker {workers[1]:.1f} s",
                ratio,
                "≥ 1.6x",
                ratio >= 1.6,
            )
        )
    return out


def rss_figures(
    summary_dir: Path, scale: int, cli_mb: float, worker_mb: float | None
) -> list[Figure]:
    """Peak RSS, and its growth against the other scale's last run (100k ↔ 1M) if any."""
    other_scale = 100_000 if scale >= 1_000_000 else 1_000_000
    other = {}
    path = summary_dir / f"summary-{other_scale}.json"
    if path.exists():
        other = json.loads(path.read_text())
    out = []
    for name, mb, key in (
        ("peak RSS of the CLI (baseline, differential)", cli_mb, "cli_peak_rss_mb"),
        ("peak RSS of an RQ worker", worker_mb, "worker_peak_rss_mb"),
    ):
        if mb is None:
            continue
        ratio = None
        reference = f"< {RSS_LIMIT_MB} MB"
        if other.get(key):
            small, large = (mb, other[key]) if scale < other_scale else (other[key], mb)
            ratio = large / small
            reference = f"SCALE {other_scale:,}: {other[key]:.0f} MB (its last run)"
        meets = mb < RSS_LIMIT_MB and (ratio is None or ratio <= 1.2)
        out.append(Figure(name, f"{mb:.0f} MB", reference, ratio, "≤ 1.2x and < 500 MB", meets))
    return out


def profile_summary(path: Path, root: Path, top: int = 18) -> str:
    text = []
    for order in ("cumulative", "tottime"):
        buffer = io.StringIO()
        stats = pstats.Stats(str(path), stream=buffer)
        stats.sort_stats(order).print_stats(top)
        body = buffer.getvalue()
        # Keep the table, with shorter paths.
        body = body[body.find("   ncalls") :]
        for prefix in (*SITE_PACKAGES, f"{root}/", f"{ROOT}/"):
            body = body.replace(prefix, "")
        text.append(f"by {order}:\n{body.rstrip()}")
    return "\n\n".join(text)


def versions(dbs: BenchDatabases, root: Path) -> dict[str, str]:
    conn = dbs.mysql_connect(database=False)
    with conn.cursor() as cur:
        cur.execute("SELECT VERSION()")
        mariadb = cur.fetchone()[0]
    conn.close()
    import psycopg

    with psycopg.connect(dbs.pg_admin_url()) as pg:
        postgres = pg.execute("SHOW server_version").fetchone()[0]
    return {
        "diffmig": report.diffmig_commit(root),
        "Python": sys.version.split()[0],
        "MariaDB": mariadb,
        "PostgreSQL": postgres,
    }


if __name__ == "__main__":
    sys.exit(main())
