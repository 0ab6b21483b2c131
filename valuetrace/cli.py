"""`valuetrace` command line: one subcommand per pipeline step, plus `demo` and `run`.

Every subcommand takes the same YAML config (`--config`; else the config.yaml of an existing
`--run-dir`; else the built-in demo config) and run folder (`--run-dir` overrides the config's),
so steps can be rerun one at a time, from any cwd, on a run folder that was moved or copied.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Callable
from importlib import resources
from pathlib import Path

# OpenMP threads sleep at barriers instead of spinning. It is read once, when torch loads its
# OpenMP runtime, so it is set before anything imports torch; a value the user set wins. Beside
# one competing process on 2 cores, a LoRA stage kept 0.74 of its speed with it, and stalled
# (< 5 tokens/s, 100 s timeout) with OpenMP's default spinning (benchmarks/bench_load.py).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from valuetrace import console
from valuetrace.errors import ConfigError, ValuetraceError, disk_full
from valuetrace.paths import RunPaths, check_run_folder
from valuetrace.runtime import (
    deterministic_environment,
    peak_rss_mb,
    record_environment,
    record_timing,
    seed_everything,
    set_threads,
    warn_if_oversubscribed,
)

STEPS = ("train", "extract", "evaluate", "probe", "analyze", "causal", "report")


def demo_config_path(study: bool = False) -> Path:
    """The built-in demo config shipped inside the package: its known answer
    (`configs/demo-known-answer.yaml`: a counter-value arm beside a neutral arm, whose answer is
    known by construction), or with `study` the study's stages (`configs/demo.yaml`)."""
    name = "demo.yaml" if study else "demo-known-answer.yaml"
    return Path(str(resources.files("valuetrace") / "configs" / name))


def _offline_defaults() -> None:
    """No hub retries for local paths, quiet weight-loading bars (see README)."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("NUMBA_CACHE_DIR", str(Path.home() / ".cache" / "valuetrace-numba"))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="valuetrace",
        description="Find where inside a language model compassion weakens across training.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    helps = {
        "demo": "run the whole built-in offline demo (tiny model, CPU, a few minutes): a known "
        "answer, or with --study the study's stages",
        "run": "run every step of a config in order",
        "train": "train the config's stages (reuses unchanged ones) and write lineage.json",
        "extract": "cache pooled activations of each probe set under each stage (HDF5)",
        "evaluate": "behavioural compassion and helpfulness scores per stage",
        "probe": "per-layer probes with CV, controls and CIs for each stage",
        "analyze": "direction similarity, CKA, transfer, localisation, plots",
        "trajectory": "each stage's checkpoints along its run vs its parent: when each verdict "
        "first fires (run by `run` when a stage has save_at or a trajectory)",
        "causal": "ablate / add the compassion direction at the localised layers",
        "report": "write report.html and the summary",
        "export": "write the run's tables as Parquet (--to-hub pushes them) and control vectors",
    }
    text = "known-answer arms (counter-value vs neutral) on a model: a sensitivity table"
    helps["calibrate"] = text
    for name, text in helps.items():
        cmd = sub.add_parser(name, help=text, description=text)
        cmd.add_argument(
            "--config",
            type=Path,
            default=None,
            help="known-answer config (default: smollm2-known-answer.yaml)"
            if name == "calibrate"
            else "YAML config (default: the built-in demo config)",
        )
        cmd.add_argument(
            "--run-dir",
            default=None,
            help="run folder (overrides the config's); alone, its config.yaml is the config",
        )
        cmd.add_argument(
            "--overwrite",
            action="store_true",
            help="replace a run folder or caches that hold a different run",
        )
        cmd.add_argument("--no-progress", action="store_true", help="show no progress bars")
        cmd.add_argument(
            "-v",
            "--verbose",
            action="store_true",
            help="also show library logs, per-step losses and warnings (log.txt has them all)",
        )
        if name == "calibrate":
            cmd.add_argument(
                "--model",
                default=None,
                help="the model to calibrate (built-in name, hub id, folder or GGUF; default: the "
                "config's, SmolLM2-135M-Instruct); the config defaults to the shipped "
                "smollm2-known-answer.yaml",
            )
            cmd.add_argument(
                "--json", type=Path, default=None, help="write one object per arm and dose"
            )
        if name == "export":
            cmd.add_argument("--to-hub", default=None, help="hub dataset repo id or local folder")
            cmd.add_argument(
                "--control-vector",
                default=None,
                metavar="STAGE",
                help="export this stage's direction",
            )
            cmd.add_argument("--probe-set", default=None, help="probe set of the direction")
            cmd.add_argument("--direction", default="mean_diff", choices=["mean_diff", "probe"])
        if name == "demo":
            cmd.add_argument(
                "--study",
                action="store_true",
                help="run the study's stages (base -> compassion mid-training -> helpfulness SFT, "
                "and a coding arm) instead of the known answer (~5-6 min)",
            )
            cmd.add_argument(
                "--model",
                default=None,
                help="run the study demo's data (or --config's) on this model (built-in name, hub "
                "id, folder or GGUF) with LoRA stages instead of the tiny from-scratch Llama",
            )
    text = "planted weakening / rotation / drift cases: does the analysis find them?"
    cmd = sub.add_parser("selftest", help=text, description=text)
    cmd.add_argument("--model", default=None, help="hub id or local folder (default: tiny scratch)")
    cmd.add_argument("--layers", type=int, nargs="+", default=None, help="planted layers k")
    cmd.add_argument("--json", type=Path, default=None, help="write the cases to this JSON file")
    cmd.add_argument("--seed", type=int, default=0, help="seed of markers, basis and bootstrap")
    cmd.add_argument(
        "--float32",
        action="store_true",
        help="run the planted models in float32 (default float64: 2x memory, far less rounding)",
    )
    cmd.add_argument("-v", "--verbose", action="store_true", help="log more")
    models = sub.add_parser("models", help="fetch or list the models valuetrace can load")
    models.add_argument("action", choices=["fetch", "list"])
    models.add_argument("name", nargs="?", help="built-in name, GGUF file or hub id (fetch)")
    models.add_argument("-v", "--verbose", action="store_true", help="log more")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `valuetrace` command."""
    args = _parser().parse_args(argv)
    _offline_defaults()
    deterministic_environment()
    try:
        return _models(args) if args.command == "models" else _dispatch(args)
    except ValuetraceError as err:
        logging.getLogger("valuetrace").info("error: %s", err)
        print(f"valuetrace: error: {err}", file=sys.stderr)
        return 2
    except Exception as err:
        if not disk_full(err):
            raise
        message = (
            f"the disk is full ({err}). Nothing finished is lost and nothing half-written counts "
            "as finished: checkpoints and model conversions are written under a temporary name "
            "and renamed when complete, and an activation cache counts once it is marked "
            "complete. Free some space (or point run_dir at a larger disk), then run the same "
            "command again: finished stages and caches are reused."
        )
        logging.getLogger("valuetrace").info("error: %s", message)
        print(f"valuetrace: error: {message}", file=sys.stderr)
        return 2
    finally:
        console.close()


def _config_path(args: argparse.Namespace) -> Path:
    """`--config`, else the config.yaml of `--run-dir`, else (no run folder named, or `demo` in
    a new folder) the built-in demo config: its known answer, or the study's stages for
    `demo --study` and `demo --model`.

    Raises:
        ConfigError: `--run-dir` names a folder without its config.yaml and no `--config` is
            given (running the demo config there would rewrite the run's files); `demo` is
            given both `--study` and `--config`.
    """
    demo = args.command == "demo"
    study = demo and (args.study or args.model is not None)
    if args.config is not None:
        if demo and args.study:
            raise ConfigError(
                "`valuetrace demo --study` runs the built-in study config; give --study or "
                "--config, not both"
            )
        return args.config
    if args.run_dir is None:
        return demo_config_path(study)
    in_folder = RunPaths(Path(args.run_dir)).config
    if in_folder.is_file():
        return in_folder
    if not demo:
        raise ConfigError(
            f"--run-dir {args.run_dir} has no config.yaml, and no --config was given; pass the "
            "run's config with --config (or restore its config.yaml). Only `valuetrace demo` "
            "uses the built-in demo config in a named folder."
        )
    return demo_config_path(study)


def _selftest(args: argparse.Namespace) -> int:
    import torch

    from valuetrace.steps.selftest import format_results, selftest

    results = selftest(
        args.model,
        layers=args.layers,
        json_path=args.json,
        seed=args.seed,
        dtype=torch.float32 if args.float32 else torch.float64,
    )
    print(format_results(results))
    return 0 if all(r.passed for r in results) else 1


def _models(args: argparse.Namespace) -> int:
    """`valuetrace models fetch NAME` prints the local checkpoint; `models list` the cache."""
    from valuetrace.model_sources import BUILTINS, list_cached, models_dir, resolve_model

    if args.action == "fetch":
        if not args.name:
            raise ConfigError(f"models fetch needs a NAME, e.g. one of {sorted(BUILTINS)}.")
        print(resolve_model(args.name).path)
        return 0
    print(f"built-in: {', '.join(sorted(BUILTINS))}; cache: {models_dir()}")
    for entry in list_cached():
        print(
            f"{entry.path}\t{entry.source.get('name', '')}\tgguf sha256 "
            f"{entry.source.get('gguf_sha256', '?')}"
        )
    return 0


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "selftest":
        console.configure(verbose=args.verbose, progress=True, log_file=None)
        return _selftest(args)
    from valuetrace.config import config_from_dict, load_config
    from valuetrace.corpora.demo_model import demo_on_model
    from valuetrace.steps import (
        analyze,
        calibrate,
        causal,
        evaluate,
        export,
        extract,
        prepare,
        probe,
        report,
        train,
        trajectory,
    )

    if args.command == "calibrate":
        config = calibrate.calibration_config(args.config, model=args.model, run_dir=args.run_dir)
    else:
        config = load_config(_config_path(args), run_dir=args.run_dir)
    if args.command == "demo" and args.model:
        config = config_from_dict(demo_on_model(config, args.model), run_dir=args.run_dir)
    paths = config.paths
    check_run_folder(paths.root)  # before the first write (log.txt)
    progress = not args.no_progress
    creates = args.command in ("demo", "run", "train", "calibrate")
    console.configure(
        verbose=args.verbose,
        progress=progress,
        log_file=paths.log if creates or paths.root.is_dir() else None,
    )
    log = logging.getLogger("valuetrace.cli")
    log.info("valuetrace %s: %s", args.command, " ".join(sys.argv[1:]))
    threads = set_threads(config.threads)
    log.info("torch threads: %d", threads)
    # calibrate's table reads the primary probe set only: its steps skip the others
    only = [config.probes[0].name] if args.command == "calibrate" else None
    steps: dict[str, Callable[[], object]] = {
        "train": lambda: train.train(config, progress=progress, overwrite=args.overwrite),
        "extract": lambda: extract.extract(
            config, overwrite=args.overwrite, progress=progress, probe_sets=only
        ),
        "evaluate": lambda: evaluate.evaluate(config, progress=progress),
        "probe": lambda: probe.probe(config, progress=progress, probe_sets=only),
        "analyze": lambda: analyze.analyze(config),
        "trajectory": lambda: trajectory.trajectory(config, probe_sets=only),
        "causal": lambda: causal.causal(config),
        "report": lambda: report.report(config),
        "export": lambda: print(
            "\n".join(
                export.export(
                    config,
                    to_hub=args.to_hub,
                    control_vector=args.control_vector,
                    probe_set=args.probe_set,
                    kind=args.direction,
                )
            )
        ),
    }
    chosen = list(STEPS) if args.command in ("demo", "run") else [args.command]
    if args.command == "calibrate":
        chosen = list(calibrate.STEPS)
    elif "analyze" in chosen and any(s.save_at or s.trajectory_of for s in config.stages):
        chosen.insert(chosen.index("analyze") + 1, "trajectory")
    if creates:
        prepare.prepare(config, overwrite=args.overwrite)
    start = time.perf_counter()
    for step in chosen:
        seed_everything(config.seed)
        warn_if_oversubscribed(step)
        record_environment(paths.environment, step)
        t0 = time.perf_counter()
        steps[step]()
        seconds = time.perf_counter() - t0
        record_timing(paths.timings, step=step, seconds=seconds)
        peak = peak_rss_mb() / 1024
        log.info("%s done in %.1f s (peak memory so far %.2f GB)", step, seconds, peak)
        print(
            f"[valuetrace] {step} done in {seconds:.1f} s (peak memory {peak:.2f} GB)", flush=True
        )
    if args.command == "calibrate":
        print(calibrate.format_calibration(config, calibrate.calibration_result(config, args.json)))
    if "report" in chosen:
        print(paths.summary.read_text())
        print(
            f"[valuetrace] total {time.perf_counter() - start:.1f} s; report: {paths.report}; "
            f"full log: {paths.log}"
        )
    if args.command == "demo" and not (args.study or args.model or args.config):
        print(
            "[valuetrace] The study's stages on the same tiny model (base -> compassion "
            "mid-training -> helpfulness SFT, and a coding arm): valuetrace demo --study"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
