"""``lpclassify serve``: the configs given, as an HTTP service (needs the ``[serve]`` extra).

Parses and checks the options (security first: a non-loopback address needs an API key or
``--insecure``), loads every config's model once, then runs :mod:`lpclassify.serve` until
SIGTERM or Ctrl-C, which drain the accepted requests and exit 0.
"""

from __future__ import annotations

import argparse
import os
import sys

from ..errors import InputError, MissingDependencyError
from .common import EXIT_OK, PROG, Context, Subparsers, positive_int

EPILOG = """\
routes:
  POST /v1/classify   {"model": CONFIG, "input": "text" | ["text", {"field": ...}, ...], "top_k": K}
  POST /v1/zero-shot  {"inputs": "text" | [...], "parameters": {"candidate_labels": [...]}}
  GET  /health, /v1/models, /metrics (Prometheus), /docs (OpenAPI)

Texts of concurrent requests share engine batches; every answer equals classify_many on the
request's texts alone (batch calibration averages over the request's own texts).

examples:
  lpclassify serve -c sentiment -c topic
  LPCLASSIFY_KEY=s3cret lpclassify serve -c spam --host 0.0.0.0 --api-key-env LPCLASSIFY_KEY
  curl -s localhost:8000/v1/classify -d '{"model": "sentiment", "input": ["Loved it", "Awful"]}'"""


def register(sub: Subparsers) -> None:
    p = sub.add_parser("serve", help="serve configs over HTTP (vLLM and Hugging Face API shapes)",
                       description="Serve label-set configs over HTTP, batching concurrent requests together.",
                       epilog=EPILOG)
    p.add_argument("-c", "--config", action="append", required=True, metavar="CONFIG", dest="configs",
                   help="a config file or shipped config name to serve (repeat for several); requests name it by "
                        "its name:")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default: 8000)")
    p.add_argument("--api-key-env", metavar="VAR",
                   help="require 'Authorization: Bearer KEY' on every route but /health, KEY being the value of "
                        "the environment variable VAR")
    p.add_argument("--insecure", action="store_true",
                   help="allow a non-loopback --host without an API key (anyone who can reach it can use it)")
    limits = p.add_argument_group("batching and limits")
    limits.add_argument("--max-batch-size", type=positive_int, default=64, metavar="N",
                        help="texts per engine batch, across requests (default: 64)")
    limits.add_argument("--max-wait-ms", type=float, default=2.0, metavar="MS",
                        help="how long a batch waits for more requests before it starts (default: 2)")
    limits.add_argument("--max-queue", type=positive_int, default=256, metavar="N",
                        help="requests waiting per model; more are answered 429 with Retry-After (default: 256)")
    limits.add_argument("--max-inputs", type=positive_int, default=1024, metavar="N",
                        help="inputs per request; more are answered 413 (default: 1024)")
    limits.add_argument("--max-body-bytes", type=positive_int, default=1 << 20, metavar="N",
                        help="largest request body; larger ones are answered 413 (default: 1048576)")
    limits.add_argument("--timeout", type=float, default=60.0, metavar="S",
                        help="a request not answered within S seconds gets 504 and its work is dropped (default: 60)")
    limits.add_argument("--label-cache", type=positive_int, default=64, metavar="N",
                        help="zero-shot label sets kept ready (default: 64)")
    scale = p.add_argument_group("Ray Serve (several replicas, several machines; needs ray[serve])")
    scale.add_argument("--ray", nargs="?", const="local", metavar="ADDRESS",
                       help="serve through Ray Serve: a local Ray for this run, or the cluster at ADDRESS "
                            "(HEAD:6379, or 'auto' for the one this machine joined)")
    scale.add_argument("--replicas", type=positive_int, default=1, metavar="N",
                       help="with --ray: replicas, each with its own copy of the models (default: 1)")
    model = p.add_argument_group("model options")
    model.add_argument("-m", "--model", metavar="MODEL", help="use MODEL for every config instead of its own")
    model.add_argument("--download", action="store_true", help="download a registry model not in the cache yet")
    model.add_argument("--threads", type=positive_int, metavar="N", help="CPU threads for llama.cpp")
    model.add_argument("--batch-size", type=positive_int, metavar="N", help="overrides runtime.batch_size")
    p.set_defaults(handler=run)


def api_key(args: argparse.Namespace) -> str | None:
    """The API key from ``--api-key-env``; refuses an open non-loopback bind without ``--insecure``."""
    from ..serve.server import is_loopback

    key = None
    if args.api_key_env:
        key = os.environ.get(args.api_key_env, "").strip()
        if not key:
            raise InputError(f"--api-key-env {args.api_key_env}: that environment variable is not set or empty; "
                             f"set it to the key clients must send")
    if key is None and not is_loopback(args.host) and not args.insecure:
        raise InputError(f"--host {args.host} lets other machines connect; require an API key with --api-key-env "
                         "VAR, or pass --insecure to serve without one")
    return key


def run(args: argparse.Namespace, ctx: Context) -> int:
    try:
        from ..serve import AppSettings, Limits, Service, create_app, load_classifiers, server
    except ImportError as exc:
        raise MissingDependencyError(f"lpclassify serve needs the [serve] extra ({exc.name} is missing): "
                                     "pip install 'lpclassify[serve]'") from None
    if not 0 <= args.port <= 65535:
        raise InputError(f"--port {args.port}: expected 0-65535")
    if args.timeout <= 0 or args.max_wait_ms < 0:
        raise InputError("--timeout must be positive and --max-wait-ms at least 0")
    key = api_key(args)
    limits = Limits(max_batch_size=args.max_batch_size, max_wait_ms=args.max_wait_ms, max_queue=args.max_queue,
                    max_inputs=args.max_inputs, request_timeout_s=args.timeout, label_cache_size=args.label_cache)
    settings = AppSettings(api_key=key, max_body_bytes=args.max_body_bytes)
    if args.ray:
        return _run_ray(args, limits, settings)
    runtime = {name: value for name in ("threads", "batch_size") if (value := getattr(args, name)) is not None}
    classifiers = load_classifiers(args.configs, model=args.model, download=args.download, verbose=args.verbose,
                                   runtime=runtime)
    app = create_app(Service(classifiers, limits), settings)
    print(f"{PROG}: serving {', '.join(classifiers)} on http://{args.host}:{args.port} (docs at /docs"
          f"{'; API key required' if key else ''})", file=sys.stderr, flush=True)
    server.run(app, args.host, args.port, log_level="info" if args.verbose else "warning")
    print(f"{PROG}: stopped", file=sys.stderr, flush=True)
    return EXIT_OK


def _run_ray(args: argparse.Namespace, limits: object, settings: object) -> int:
    try:
        import ray

        from ..ray_serve import deployment, run
    except ImportError as exc:
        raise MissingDependencyError(f"--ray needs Ray Serve ({exc.name} is missing): "
                                     "pip install 'lpclassify[ray-serve]'") from None
    if args.download or args.batch_size:
        raise InputError("--download and --batch-size are not supported with --ray (pull the model on every node "
                         "with `lpclassify models pull`)")
    ray.init(address=None if args.ray == "local" else args.ray, log_to_driver=args.verbose)
    app = deployment(args.configs, replicas=args.replicas, model=args.model, threads=args.threads,
                     limits=limits, settings=settings)  # type: ignore[arg-type]
    print(f"{PROG}: serving {', '.join(args.configs)} with {args.replicas} Ray Serve replica(s) on "
          f"http://{args.host}:{args.port}", file=sys.stderr, flush=True)
    run(app, host=args.host, port=args.port)
    print(f"{PROG}: stopped", file=sys.stderr, flush=True)
    return EXIT_OK
