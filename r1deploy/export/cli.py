"""`r1deploy export helm`: the stack as values for vLLM production-stack's Helm chart
(docs/kubernetes.md)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from r1deploy.cliconv import NO_STACK_DIR, ExitCode, add_stack_dir, cannot_run
from r1deploy.export import helm
from r1deploy.stackdir import StackDir, StackDirError


def register(subparsers) -> None:
    export = subparsers.add_parser(
        "export", help="export the stack for other deployers (Kubernetes: Helm values)"
    )
    verbs = export.add_subparsers(dest="export_command", metavar="VERB", required=True)
    chart = f"{helm.CHART['name']} {helm.CHART['version']}"
    values = verbs.add_parser(
        "helm",
        help=f"values for vLLM production-stack's chart ({chart}), checked against its schema",
        description=(
            f"Print the stack's model server as values for the Helm chart {chart} of "
            "vllm-project/production-stack, validated against the chart's values schema. "
            "Secrets are referred to by a Kubernetes Secret's name and keys, never copied."
        ),
    )
    add_stack_dir(values, help="rendered stack directory whose settings.json is exported")
    values.add_argument(
        "-o", "--output", type=Path, metavar="FILE", help="write here instead of stdout"
    )
    values.add_argument(
        "--replicas",
        type=int,
        metavar="N",
        help="vLLM replicas (default: the stack's vllm.replicas, else 1)",
    )
    values.add_argument(
        "--request-cpu",
        type=int,
        default=helm.Options.request_cpu,
        metavar="N",
        help="CPUs requested per replica (not in the inventory; default %(default)s)",
    )
    values.add_argument(
        "--request-memory",
        default=helm.Options.request_memory,
        metavar="QTY",
        help="memory requested per replica (not in the inventory; default %(default)s)",
    )
    values.add_argument(
        "--pvc-storage",
        default=helm.Options.pvc_storage,
        metavar="QTY",
        help="a claim for the Hugging Face cache, or 'none' (default %(default)s)",
    )
    values.add_argument(
        "--credentials-name",
        default=helm.DEFAULT_SECRET_NAME,
        metavar="NAME",
        help="the Kubernetes Secret the values refer to for the API key (default %(default)s)",
    )
    values.set_defaults(handler=run_helm)


def run_helm(args: argparse.Namespace) -> int:
    if not args.stack_dir:
        return cannot_run("export helm", NO_STACK_DIR)
    options = helm.Options(
        replicas=args.replicas,
        request_cpu=args.request_cpu,
        request_memory=args.request_memory,
        pvc_storage=None if args.pvc_storage in ("", "none") else args.pvc_storage,
        secret_name=args.credentials_name,
    )
    try:
        stack = StackDir.load(args.stack_dir)
        export = helm.build(stack, options)
    except StackDirError as exc:
        return cannot_run("export helm", str(exc))
    except helm.ExportError as exc:
        print(f"r1deploy export helm: {exc}", file=sys.stderr)
        return ExitCode.FAILED
    problems = helm.validate(export.values)
    if problems:
        for problem in problems:
            print(f"r1deploy export helm: values {problem}", file=sys.stderr)
        print(
            f"nothing written: the chart {helm.chart_label()} would not take these values",
            file=sys.stderr,
        )
        return ExitCode.FAILED
    text = helm.to_yaml(export, str(stack.path / "settings.json"))
    if args.output:
        try:
            args.output.write_text(text, encoding="utf-8")
        except OSError as exc:
            return cannot_run("export helm", f"cannot write {args.output}: {exc.strerror}")
        print(
            f"wrote {args.output}: values for {helm.chart_label()}; routingLogic "
            f"{export.routing_logic}; create the Secret first: {helm.secret_command(export)}"
        )
    else:
        sys.stdout.write(text)
    return ExitCode.OK
