"""``lpclassify models list|pull|path``: the registry's models, downloading one, where one is."""

from __future__ import annotations

import argparse
import json
import logging
import sys

from .common import EXIT_OK, Context, Subparsers, table

EPILOG = """\
examples:
  lpclassify models list
  lpclassify models pull smollm2-135m
  lpclassify models path default"""


def register(sub: Subparsers) -> None:
    p = sub.add_parser("models", help="list, download and locate models", description="Manage models.",
                       epilog=EPILOG)
    p.set_defaults(handler=run_list, json=False)
    actions = p.add_subparsers(title="actions", dest="action", metavar="ACTION")
    listing = actions.add_parser("list", help="known models, whether they are available, size, license",
                                 epilog="example:\n  lpclassify models list")
    listing.add_argument("--json", action="store_true", help="print JSON Lines instead of a table")
    listing.set_defaults(handler=run_list)
    pull = actions.add_parser("pull", help="download and verify a model, print its path",
                              epilog="example:\n  lpclassify models pull smollm2-135m")
    pull.add_argument("name", metavar="NAME", help="a registry name (see `lpclassify models list`)")
    pull.add_argument("--force", action="store_true", help="fetch again even if a verified copy is cached")
    pull.set_defaults(handler=run_pull)
    path = actions.add_parser("path", help="print the path of a model file",
                              epilog="example:\n  lpclassify models path default")
    path.add_argument("name", metavar="NAME", help="a registry name, 'default', or a .gguf path")
    path.set_defaults(handler=run_path)


def run_list(args: argparse.Namespace, ctx: Context) -> int:
    from ..models import DEFAULT_MODEL, cache_dir, list_models

    entries = list_models()
    if args.json:
        for entry, status in entries:
            print(json.dumps({"name": entry.name, "status": status, "size": entry.size, "license": entry.license,
                              "default": entry.name == DEFAULT_MODEL, "description": entry.description}))
        return EXIT_OK
    rows = [(entry.name + (" *" if entry.name == DEFAULT_MODEL else ""), status, _size(entry.size), entry.license,
             entry.description) for entry, status in entries]
    table(sys.stdout, ("NAME", "STATUS", "SIZE", "LICENSE", "DESCRIPTION"), rows, right=(2,))
    print(f"\n* default model.  Cache: {cache_dir()}")
    if any(status != "cached" for _, status in entries):
        print("Fetch a model with `lpclassify models pull NAME` (installed models are assembled on first use).")
    return EXIT_OK


def _size(size: int) -> str:
    return f"{size / 1e9:.1f} GB" if size >= 1e9 else f"{size / 1e6:.0f} MB"


def run_pull(args: argparse.Namespace, ctx: Context) -> int:
    from ..models import DEFAULT_MODEL, pull

    logger = logging.getLogger("lpclassify")
    if logger.level > logging.INFO or logger.level == logging.NOTSET:
        logger.setLevel(logging.INFO)  # say what is being downloaded: it can take minutes
    name = DEFAULT_MODEL if args.name.strip() in ("", "default") else args.name
    print(pull(name, force=args.force))
    return EXIT_OK


def run_path(args: argparse.Namespace, ctx: Context) -> int:
    from ..models import resolve_model

    print(resolve_model(args.name))
    return EXIT_OK
