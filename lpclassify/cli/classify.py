"""``lpclassify classify``: texts from arguments, standard input or a file -> predictions.

The run itself (reading, classifying, rejects, resume skip, progress) is :mod:`lpclassify.runs`;
this module turns the options into files and streams, and reports what happened.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import load_config
from ..errors import InputError
from ..labelsets import labels_config, split_labels
from ..records.files import same_file
from ..records.readers import ERROR_POLICIES, INPUT_FORMATS
from ..records.resume import RejectedLog, RunFiles, default_rejected_path
from ..records.writers import OUTPUT_FORMATS, CsvWriter, Writer, make_writer, output_format_for
from ..runs import Progress, classify_records, open_records, run_fingerprint
from .classify_ray import add_ray_options, ray_classifier
from .common import (
    EXIT_OK,
    PROG,
    Context,
    Subparsers,
    add_model_options,
    config_help,
    is_terminal,
    log_info,
    positive_int,
    terminal_width,
    warn,
)
from .overrides import add_override_options, apply_overrides

if TYPE_CHECKING:
    from ..classifier import Classifier

EPILOG = """\
input (one of):
  TEXT ...          texts as arguments
  -i FILE           .jsonl (one JSON object per line, the text in --text-field),
                    .csv/.tsv (a header row, the text in column --text-field),
                    .txt (one text per line), .parquet (a column --text-field);
                    any of them but .parquet may be gzipped (.gz)
  (nothing)         one text per line from standard input (blank lines skipped);
                    JSON Lines when its first line starts with '{'

output: every input record with its fields untouched, plus label, labels,
probabilities, abstained and reason (and truncated or chunks for long texts; an input
field with one of these names is kept as input_<name>). CSV and TSV output have one
prob_<label> column per label and labels joined with ';'; Parquet the same columns, typed,
with labels a list. The default format is a table on a terminal and JSON Lines otherwise;
-o FILE takes it from the suffix: .jsonl, .csv, .tsv, .parquet, any but .parquet gzipped
with .gz (out.csv.gz).

-o FILE is written as FILE.partial as it goes (Parquet: row groups, the file closed on an
interruption) and renamed to FILE when the run completes. After an interruption (Ctrl-C,
a crash, a bad record) the same command with --resume continues where it stopped; with
no FILE.partial and a complete FILE, --resume refuses and leaves FILE as it is.

--errors skip sets bad records aside, with their line number and reason, instead of
stopping at the first one: in out.rejected.jsonl for -o out.jsonl (without -o: next to
the input, in.rejected.jsonl for -i in.csv).

examples:
  lpclassify classify -c sentiment "Loved it" "Never again"
  lpclassify classify --labels urgent,normal,spam "The server is down, customers cannot pay"
  printf 'great\\nawful\\n' | lpclassify classify -c sentiment --model smollm2-135m
  lpclassify classify -c configs/spam.yaml -i inbox.jsonl --text-field body -o out.jsonl
  lpclassify classify -c configs/spam.yaml -i inbox.jsonl --text-field body -o out.jsonl --resume
  lpclassify classify -c topic -i news.csv -o topics.csv --errors skip --threads 4
  lpclassify classify -c sentiment -i reviews.txt --calibration pmi --set decision.threshold=0.7
  lpclassify classify -c support_intents -i messages.jsonl -o intents.jsonl --top-k 3
  lpclassify classify -c topic -i news.parquet -o topics.parquet --ray --workers 2 --threads 1
  lpclassify classify -c topic -i news.parquet -o topics.parquet --ray auto  # a running cluster"""


def register(sub: Subparsers) -> None:
    p = sub.add_parser("classify", help="classify texts from arguments, standard input or a file",
                       description="Classify texts with a label-set config.", epilog=EPILOG)
    p.add_argument("texts", nargs="*", metavar="TEXT",
                   help="texts to classify; without any (and without -i), one text per line from standard input")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("-c", "--config", metavar="CONFIG",
                        help=config_help())
    source.add_argument("--labels", metavar="NAME,NAME,...",
                        help="classify into these labels, without a config (a default prompt lists them; "
                             "see lpclassify.labelsets)")
    group = p.add_argument_group("input and output")
    group.add_argument("-i", "--input", metavar="FILE",
                       help="read records from FILE (.jsonl, .csv, .tsv, .txt, optionally .gz; .parquet); '-' is stdin")
    group.add_argument("--input-format", choices=INPUT_FORMATS,
                       help="the input format, when the file name does not tell (default for stdin: jsonl "
                            "when it starts with '{', else txt)")
    group.add_argument("--text-field", default="text", metavar="NAME",
                       help="the JSON key or CSV column that holds the text (default: text)")
    group.add_argument("-o", "--output", metavar="FILE",
                       help="write to FILE instead of stdout (as FILE.partial, renamed when complete)")
    group.add_argument("--resume", action="store_true",
                       help="continue the interrupted run that left FILE.partial (same input and config)")
    group.add_argument("--errors", choices=ERROR_POLICIES, default="fail",
                       help="a bad input record stops the run (fail, the default) or is set aside (skip)")
    group.add_argument("--rejected", metavar="FILE",
                       help="where --errors skip writes rejected records (default: beside the output, "
                            "out.rejected.jsonl for -o out.jsonl; else beside the input; else rejected.jsonl)")
    group.add_argument("-f", "--format", choices=OUTPUT_FORMATS,
                       help="output format (default: from the -o suffix, else table on a terminal, else jsonl); "
                            "an -o name ending in .gz is gzipped")
    group.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                       help="progress bar on stderr for file input (default: when stderr is a terminal)")
    group.add_argument("--top-k", type=positive_int, metavar="K",
                       help="write each text's K most likely labels (labels) with their probabilities, not every "
                            "label's (for large label sets)")
    add_override_options(p)
    add_model_options(p)
    add_ray_options(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    config = apply_overrides(labels_config(split_labels(args.labels)) if args.labels else load_config(args.config),
                             args)
    if args.top_k and config.decision.mode == "single":  # the k best become the prediction's labels
        config = replace(config, decision=replace(config.decision, top_k=min(args.top_k, len(config.labels))))
    output = args.output if args.output and args.output != "-" else None
    fmt = output_format_for(output, args.format) if output else args.format
    if fmt is None:
        fmt = "table" if is_terminal(sys.stdout) else "jsonl"
    if args.resume and output is None:
        raise InputError("--resume continues the output file of an interrupted run: give it with -o FILE")
    skip_errors = args.errors == "skip"
    with contextlib.ExitStack() as stack:
        records = open_records(stack, texts=args.texts, path=args.input, fmt=args.input_format,
                               text_field=args.text_field, stdin=sys.stdin, fields=config.fields)
        input_path = records.file.path if records.file is not None else None
        rejected_target = Path(args.rejected) if args.rejected else default_rejected_path(
            output, str(input_path) if input_path else None)
        for name, path in (("--output", output), ("the rejected-records file", skip_errors and rejected_target)):
            if path and input_path is not None and same_file(input_path, path):
                raise InputError(f"{name} {path} is the input file; write somewhere else")
        # Checked before the model loads: a bad -o or --resume fails fast.
        run_files = RunFiles(output, fmt, resume=args.resume) if output else None
        clf = ray_classifier(stack, ctx.load(config, args), args)  # without --ray: the loaded classifier
        if run_files is not None:
            run_files.start({"input": records.identity, "format": fmt, "text_field": args.text_field,
                             "config": run_fingerprint(clf)})
            if run_files.resuming:
                log_info(f"resuming {run_files.partial}: {run_files.done} input records already done")
            elif args.resume:
                log_info(f"no {run_files.partial} to resume: starting from the first record")
            stream: Any = run_files.stream
            rejected = run_files.rejected if skip_errors else None
        else:
            stream = sys.stdout
            rejected = RejectedLog(rejected_target) if skip_errors else None
            if rejected is not None:
                stack.callback(rejected.close)
        single = clf.config.decision.mode == "single"
        writer = make_writer(fmt, stream, clf.config.label_names, flush=True, width=terminal_width(), multi=not single,
                             csv_columns=run_files.csv_columns if run_files is not None else None,
                             previous=run_files.previous if run_files is not None else None,
                             top_k=clf.config.decision.top_k if single else None)
        show_progress = args.progress if args.progress is not None else is_terminal(sys.stderr)
        progress = Progress(records.file, sys.stderr) if show_progress and records.file is not None else None
        if records.notice:
            print(f"{PROG}: {records.notice}", file=sys.stderr)
        if records.interactive:
            print(f"{PROG}: reading texts from the terminal, one per line; end with Ctrl-D", file=sys.stderr)
        try:
            truncated = classify_records(clf, records, writer, rejected=rejected,
                                         skip=run_files.done if run_files else 0,
                                         after_write=run_files.written if run_files else None, progress=progress,
                                         clear_progress=output is None and is_terminal(sys.stdout),
                                         chunk_size=1 if records.interactive else None, top_k=args.top_k)
            writer.close()
        except BaseException as exc:
            if progress is not None:
                progress.close(leave=False)  # the error message gets a clean line
            if run_files is not None:
                with contextlib.suppress(Exception):  # the original error is the one to report
                    writer.keep()
            if run_files is not None and (kept := run_files.abandon()):
                exc.hint = (f"{kept} input records are done and kept in {run_files.partial}; "  # type: ignore[attr-defined]
                            "run the same command with --resume to continue")
            raise
        if run_files is not None:
            run_files.commit(rejected_target, remove_stale=skip_errors)
        if progress is not None:
            progress.close()
            done = progress.texts
            print(f"{PROG}: classified {done} text{'s' if done != 1 else ''} in {progress.elapsed:.1f} s",
                  file=sys.stderr, flush=True)
    _report(writer, truncated, clf, rejected.count if rejected is not None else 0, rejected_target)
    if records.blank_lines:
        n = records.blank_lines
        print(f"{PROG}: skipped {n} blank line{'s' if n != 1 else ''} of {records.source} (a blank line is no text)",
              file=sys.stderr)
    return EXIT_OK


def _report(writer: Writer, truncated: int, clf: Classifier, n_rejected: int, rejected_target: Path) -> None:
    """The warnings after a run: renamed and dropped fields, truncated texts, rejected records."""
    for name in sorted(writer.renamed):
        warn(f"the input field {name!r} is written as 'input_{name}': the prediction's {name!r} takes its place")
    if isinstance(writer, CsvWriter) and writer.dropped:
        warn(f"CSV columns come from the first record; field(s) {', '.join(sorted(writer.dropped))} of later "
             "records were left out (use JSON Lines output to keep them)")
    if truncated:
        warn(f"{truncated} text{'s were' if truncated != 1 else ' was'} truncated to fit "
             f"n_ctx={clf.backend.n_ctx} (runtime.long_inputs: chunk scores long texts whole, in windows)")
    if n_rejected:
        warn(f"{n_rejected} of {writer.count + n_rejected} records {'were' if n_rejected != 1 else 'was'} rejected "
             f"and set aside in {rejected_target} (line and reason for each)")
