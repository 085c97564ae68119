"""The ``mlops-kit`` command: build, grade and release evidence packs; keep notebooks clean.

Exit status: 0 success; 1 the work ran but found a problem (a chapter failed, an integrity
problem, a score below ``--min-score``, a notebook hygiene problem); 2 bad input (one line
on stderr, no traceback).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from .errors import MlopsKitError, ValidationError

__all__ = ["main", "build_parser"]

_EPILOG = """examples:
  mlops-kit evidence build --out evidence/                 build, hash and grade every chapter
  mlops-kit evidence build --chapters 1,3 --seed 7          rebuild two chapters
  mlops-kit evidence build --learner ada-lovelace           a learner's pack, on the learner's own world
  mlops-kit grade evidence/ --min-score 80                  instructors: grade a pack
  mlops-kit release --out release/                          learners' notebooks (stubs, no outputs)
  mlops-kit progress evidence/                              learners: what is done, what is next
  mlops-kit grade --self evidence/                          learners: which criteria are short, where to fix
  mlops-kit check-notebooks --fix notebooks/                clean committed notebooks
  mlops-kit doctor evidence/work/ch02 --repair              check a workspace, quarantine orphans
  mlops-kit registry export-mlflow WS --name fraud --version 2 --tracking-uri http://127.0.0.1:5000
"""


def _chapters(text: str) -> list[int]:
    try:
        numbers = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected chapter numbers like 1,3, got {text!r}") from None
    if not numbers or any(n < 1 for n in numbers):
        raise argparse.ArgumentTypeError(f"expected chapter numbers like 1,3, got {text!r}")
    return numbers


def _scale(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for documentation and tests)."""
    parser = argparse.ArgumentParser(
        prog="mlops-kit", description="MLOps practicum kit: evidence packs, grading, releases.",
        epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    evidence = sub.add_parser("evidence", help="build an evidence pack from the notebooks")
    evidence_sub = evidence.add_subparsers(dest="action", required=True, metavar="ACTION")
    build = evidence_sub.add_parser(
        "build", help="execute the chapter notebooks, write the manifest, grade the pack",
        description="Run each chapter notebook with papermill into --out, keep executed "
        "notebooks and offline HTML, write manifest.json, then grade with rubric.md.")
    build.add_argument("--out", default="evidence", help="pack folder (default: evidence/)")
    build.add_argument("--notebooks", help="folder of NN_title.ipynb notebooks "
                       "(default: the checkout's notebooks/)")
    build.add_argument("--chapters", type=_chapters, help="comma-separated chapters, e.g. 1,3")
    build.add_argument("--learner", metavar="ID",
                       help="build the learner's own world: the seed is derived from the id "
                       "(sha256 of 'salt:ID'; see mlops_kit.evidence.learners)")
    build.add_argument("--seed", type=int, help="seed passed to every notebook (wins over --learner; "
                       "recorded as an override)")
    build.add_argument("--scale", type=_scale, help="scale passed to every notebook")
    build.add_argument("--quiz-answers", metavar="FILE|key",
                       help="JSON file of question id -> letter, or 'key' for the answer key "
                       "(default: <out>/quiz_answers.json saved by the quiz forms, if any)")
    build.add_argument("--workspace", help="folder for scratch workspaces (default: <out>/work)")
    build.add_argument("--timeout", type=int, default=600, help="per-cell timeout in seconds")
    build.add_argument("--rubric", help="rubric file (default: the checkout's rubric.md)")
    build.add_argument("--no-grade", action="store_true", help="skip grading")
    build.add_argument("--online-store", metavar="URL", help="online store for the chapters that take one "
                       "(2 and 6): 'sqlite' (default) or redis://host:port/db")
    build.add_argument("--offline-engine", metavar="ENGINE", help="offline engine for the chapters that take "
                       "one (2): 'duckdb' (default), 'spark' (local[2]) or spark://host:port")
    build.add_argument("--mlflow-uri", metavar="URL", help="MLflow tracking server for chapter 4's optional "
                       "MLflow part (http(s)://host:port); off by default")
    build.add_argument("--jobs", type=int, default=None, metavar="N",
                       help="chapters run at the same time, each in its own kernel "
                       "(default: the number of cores)")

    grade = sub.add_parser("grade", help="verify and score an evidence pack",
                           description="Verify the manifest hashes, run every rubric criterion, "
                           "write score.json and SCORE.md into the pack.")
    grade.add_argument("pack", help="evidence pack folder")
    grade.add_argument("--rubric", help="rubric file (default: the checkout's rubric.md)")
    grade.add_argument("--json", action="store_true", help="print score.json to stdout")
    grade.add_argument("--min-score", type=float, default=None, metavar="PERCENT",
                       help="exit 1 when the score is below this percentage of the pack's points")
    grade.add_argument("--expect-manifest-sha256", metavar="HEX",
                       help="the manifest.sha256 value recorded at submission time")
    grade.add_argument("--learner", metavar="ID",
                       help="also check the pack comes from this learner's world (records and raw rows); "
                       "exit 1 on a world mismatch")
    grade.add_argument("--self", dest="self_grade", action="store_true",
                       help="learners: grade your own pack and say which criteria are short and "
                       "which section fixes each (no answer keys; score.json is not written)")

    gc = sub.add_parser("grade-class", help="instructors: grade every learner's pack into a gradebook",
                        description="Grade a folder of submissions (one pack per learner: a folder, "
                        ".zip or .tar.gz named by learner id; optional roster.csv of id,name,section) "
                        "into GRADEBOOK: gradebook.csv, flags.json, index.html and <id>/SCORE.md. "
                        "The exit status is the number of packs that could not be graded (0: all).")
    gc.add_argument("submissions", help="folder of submissions")
    gc.add_argument("--out", required=True, help="gradebook folder")
    gc.add_argument("--roster", help="roster CSV (default: SUBMISSIONS/roster.csv if present)")
    gc.add_argument("--rubric", help="rubric file (default: the checkout's rubric.md)")
    gc.add_argument("--jobs", type=int, default=None, metavar="N", help="packs graded at once (default: cores)")
    gc.add_argument("--deadline", type=_deadline, metavar="ISO", help="flag packs built after this time "
                    "(e.g. 2026-12-18T23:59:00+00:00); reported, never used to change a score")
    gc.add_argument("--resume", action="store_true",
                    help="skip learners already graded with the same rubric and the same pack bytes")
    gc.add_argument("--format", dest="fmt", choices=("plain", "canvas"), default="plain",
                    help="canvas: also write canvas.csv for Canvas's gradebook import")
    gc.add_argument("--assignment", default="MLOps practicum",
                    help="the assignment column's name in canvas.csv")

    prog = sub.add_parser("progress", help="learners: per chapter, what is done and what is next",
                          description="Read an evidence folder: per chapter whether it ran, checks "
                          "passed / total, each exercise done / not done / failing, the quiz score "
                          "and the next thing to do.")
    prog.add_argument("evidence_dir", nargs="?", default="evidence",
                      help="evidence folder (default: evidence/)")
    prog.add_argument("--chapters", type=_chapters, help="comma-separated chapters, e.g. 1,3")
    prog.add_argument("--notebooks", help="notebooks folder to find exercises in "
                      "(default: the pack's executed notebooks, else the checkout's)")
    prog.add_argument("--json", action="store_true", help="print the progress as JSON")

    rel = sub.add_parser("release", help="write the student notebooks (solutions -> stubs)")
    rel.add_argument("--out", required=True, help="release folder")
    rel.add_argument("--notebooks", help="source notebooks folder (default: the checkout's)")

    hyg = sub.add_parser("check-notebooks", help="check (or --fix) notebook hygiene")
    hyg.add_argument("paths", nargs="*", help="notebooks or folders (default: notebooks/)")
    hyg.add_argument("--fix", action="store_true", help="repair what can be repaired in place")

    doc = sub.add_parser("doctor", help="check a workspace's feature data (and --repair orphans)",
                         description="Check every manifest row against its file (missing, edited), "
                         "orphan files and abandoned writes, the online store against its watermarks, "
                         "and the integrity of the workspace's SQLite databases. Exit 1 when a problem "
                         "is left.")
    doc.add_argument("workspace", help="workspace folder (holds features.sqlite)")
    doc.add_argument("--repair", action="store_true",
                     help="move orphan files to <workspace>/quarantine/ (never deletes) and clear "
                     "abandoned reservations; run it when no other process writes the workspace")
    doc.add_argument("--json", action="store_true", help="print the report as JSON")

    reg = sub.add_parser("registry", help="carry model versions to and from an MLflow tracking server")
    reg_sub = reg.add_subparsers(dest="action", required=True, metavar="ACTION")
    exp = reg_sub.add_parser("export-mlflow", help="export one kit version (idempotent: a re-export is a no-op)")
    imp = reg_sub.add_parser("import-mlflow", help="register an MLflow model version (models:/NAME/N or @ALIAS)")
    for p in (exp, imp):
        p.add_argument("workspace", help="workspace folder of the kit registry")
        p.add_argument("--name", required=True, help="kit model name")
        p.add_argument("--tracking-uri", help="MLflow server URL (default: $MLFLOW_TRACKING_URI)")
        p.add_argument("--json", action="store_true", help="print the result as JSON")
    exp.add_argument("--version", type=int, required=True, help="kit version to export")
    exp.add_argument("--mlflow-name", help="MLflow registered model name (default: the kit name)")
    exp.add_argument("--replace-aliases", action="store_true", help="move aliases someone moved in MLflow")
    imp.add_argument("--model-uri", required=True, help="models:/NAME/VERSION or models:/NAME@ALIAS")
    imp.add_argument("--author", required=True, help="who registers the imported version in the kit")
    return parser


def _doctor(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .features import FeatureStore

    root = Path(args.workspace)
    if not (root / "features.sqlite").is_file():
        raise ValidationError(f"doctor: {str(root)!r} is not a workspace (no features.sqlite in it).",
                              fix="Pass the folder a FeatureStore/Workspace was created in.")
    with FeatureStore(root) as store:
        report = store.repair() if args.repair else store.verify()
    print(json.dumps(report.to_dict(), indent=2, sort_keys=True) if args.json else report.text())
    return 0 if report.ok else 1


def _build(args: argparse.Namespace) -> int:
    from .evidence import build_evidence

    result = build_evidence(args.out, notebooks=args.notebooks, chapters=args.chapters,
                            seed=args.seed, learner=args.learner, scale=args.scale,
                            quiz_answers=args.quiz_answers,
                            workspace=args.workspace, timeout=args.timeout,
                            grade=not args.no_grade, rubric=args.rubric, jobs=args.jobs,
                            engines={"online_store": args.online_store, "offline_engine": args.offline_engine,
                                     "mlflow_uri": args.mlflow_uri}
                            if args.online_store or args.offline_engine or args.mlflow_uri else None)
    if result.failed:
        print(f"Chapter(s) failed: {result.failed}; see the executed notebooks in "
              f"{result.out}/notebooks/.", file=sys.stderr)
        return 1
    if result.report is not None and not result.report.integrity_ok:
        return 1
    return 0


def _deadline(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO time: {text!r}") from None
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} has no time zone (add e.g. +00:00)")
    return value


def _grade_class(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .evidence import grade_class

    with tqdm(total=0, unit="pack", file=sys.stderr, disable=None) as bar:
        def progress(done: int, total: int, learner: str) -> None:
            bar.total = total
            bar.set_postfix_str(learner)
            bar.update(done - bar.n)

        result = grade_class(args.submissions, args.out, rubric=args.rubric, jobs=args.jobs, roster=args.roster,
                             deadline=args.deadline, resume=args.resume, fmt=args.fmt,
                             assignment=args.assignment, progress=progress)
    graded = sum(1 for r in result.rows if r["status"] == "graded")
    flagged = {k: len(v) for k, v in result.flags.items() if v}
    print(f"{graded} graded ({result.resumed} unchanged since the last run), {result.ungraded} could not be "
          f"graded; flags: {flagged or 'none'}. Gradebook: {result.out / 'index.html'}")
    return min(result.ungraded, 125)


def _grade(args: argparse.Namespace) -> int:
    from .evidence import grade_pack

    if args.min_score is not None and not 0 <= args.min_score <= 100:
        raise ValidationError(f"--min-score must be a percentage from 0 to 100, got {args.min_score}.",
                              fix="Pass e.g. --min-score 80.")
    if args.self_grade:
        from .evidence import self_grade

        report, text = self_grade(args.pack, rubric=args.rubric)
        print(text)
        return 0 if report.integrity_ok else 1
    report = grade_pack(args.pack, rubric=args.rubric,
                        expect_manifest_sha256=args.expect_manifest_sha256)
    world = None
    if args.learner is not None:
        from .evidence import check_world

        world = check_world(args.pack, args.learner)
    if args.json:
        print(json.dumps({**report.to_dict(), **({"world": world.to_dict()} if world else {})}, indent=2, sort_keys=True))
    else:
        print(f"{report.points} / {report.max_points} points ({report.percent} %)")
        for problem in report.problems:
            print(f"INTEGRITY {problem}")
        if world is not None:
            print(f"WORLD {world.status}: {world.detail}")
        print(f"Report: {args.pack.rstrip('/')}/SCORE.md")
    if not report.integrity_ok or (world is not None and not world.ok):
        return 1
    if args.min_score is not None and report.percent < args.min_score:
        print(f"Score {report.percent} % is below --min-score {args.min_score:g} %.", file=sys.stderr)
        return 1
    return 0


def _release(args: argparse.Namespace) -> int:
    from .evidence import release

    exercises = release(args.out, notebooks=args.notebooks)
    print(f"Released to {args.out}: {len(exercises)} exercise(s) stubbed "
          f"({', '.join(e.id for e in exercises) or 'none'}).")
    return 0


def _progress(args: argparse.Namespace) -> int:
    from .evidence import pack_progress, progress_text

    progress = pack_progress(args.evidence_dir, chapters=args.chapters, notebooks=args.notebooks)
    if args.json:
        print(json.dumps([p.to_dict() for p in progress], indent=2, sort_keys=True))
    else:
        print(progress_text(progress))
    return 0


def _registry(args: argparse.Namespace) -> int:
    from .registry._mlflow_cli import run

    return run(args)


def _check(args: argparse.Namespace) -> int:
    from .evidence import check_notebooks
    from .evidence.runner import default_notebooks_dir

    paths = args.paths or [default_notebooks_dir()]
    files, problems = check_notebooks(paths, fix=args.fix)
    for problem in problems:
        print(problem)
    print(f"{len(files)} notebook(s) checked, {len(problems)} problem(s)"
          + (" left after --fix" if args.fix else ""))
    return 1 if problems else 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``mlops-kit`` console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    handlers = {"evidence": _build, "grade": _grade, "release": _release,
                "check-notebooks": _check, "doctor": _doctor, "progress": _progress,
                "grade-class": _grade_class, "registry": _registry}
    try:
        return handlers[args.command](args)
    except MlopsKitError as exc:
        print(f"mlops-kit: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
