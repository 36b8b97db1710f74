"""``classify --ray [ADDRESS] --workers N [--threads T]``: the same run, its model calls on Ray actors.

Everything but the model calls stays in this process (reading, rejects, partial files,
``--resume``, the progress bar, the output order): :class:`lpclassify.ray_pool.ActorPoolClassifier`
takes the loaded classifier's place in :func:`lpclassify.runs.classify_records`.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
from typing import TYPE_CHECKING

from ..errors import InputError, MissingDependencyError
from .common import log_info, positive_int

if TYPE_CHECKING:
    from ..classifier import Classifier
    from ..ray_pool import ActorPoolClassifier

LOCAL = "local"


def add_ray_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("Ray (pip install 'lpclassify[ray]')")
    group.add_argument("--ray", nargs="?", const=LOCAL, metavar="ADDRESS",
                       help="run the model on Ray actors: without ADDRESS a local Ray for this run; 'auto' or "
                            "an address (ray://HOST:10001, HOST:6379) joins a running cluster")
    group.add_argument("--workers", type=positive_int, metavar="N",
                       help="with --ray: actors, one model each (default: the cluster's CPUs / --threads); "
                            "--threads is then the threads of each actor (default 1)")


def ray_classifier(stack: contextlib.ExitStack, clf: Classifier,
                   args: argparse.Namespace) -> Classifier | ActorPoolClassifier:
    """``clf`` itself without ``--ray``; else a pool of actors started for this run (ended by ``stack``)."""
    if args.ray is None:
        if args.workers is not None:
            raise InputError("--workers needs --ray")
        return clf
    try:
        import ray
    except ImportError:
        raise MissingDependencyError("--ray needs Ray: pip install 'lpclassify[ray]'") from None
    from ..ray_pool import ActorPoolClassifier

    options: dict[str, object] = {"logging_level": logging.WARNING, "log_to_driver": False,
                                  "include_dashboard": False}
    if args.ray == LOCAL:
        options["num_cpus"] = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    else:
        options["address"] = args.ray
    try:
        ray.init(**options)
    except (ConnectionError, ValueError, RuntimeError) as exc:
        raise InputError(f"cannot start or join Ray ({args.ray}): {exc}") from None
    stack.callback(ray.shutdown)
    pool = ActorPoolClassifier(clf, workers=args.workers, threads=args.threads or 1)
    stack.callback(pool.close)
    log_info(f"classifying on {pool.workers} Ray actor(s) of {pool.threads} thread(s) each")
    return pool
