"""The chart subcommands of `mda`: new-model, new-pool, render, deploy, undeploy, canary, promote.

`cli.py` calls `add_commands` with its subparsers; each command sets `handler`, which returns
the exit status. Mistakes a user can make raise UserError, which `cli.py` prints as one line.
Nothing here imports Helm at import time (the serving image has no Helm).
"""

import argparse
from pathlib import Path
from typing import Any

from model_deployment_app.deploy.helm import Release
from model_deployment_app.deploy.layout import DEFAULT_IMAGE, Repo, validate_name
from model_deployment_app.errors import UserError
from model_deployment_app.runtimes import MODEL_TYPES, for_model_type

_ROOT_HELP = "repository root holding charts_template/ and k8s_dev/ (default: $MDA_REPO_ROOT or .)"


def add_commands(subparsers: Any) -> None:
    """Add new-model, render, lint, deploy and undeploy to the `mda` parser."""
    _add_new_model(subparsers)
    _add_new_pool(subparsers)
    _add_render(subparsers)
    _add_lint(subparsers)
    _add_deploy(subparsers)
    _add_undeploy(subparsers)
    _add_rollout(subparsers)


def _percent(text: str) -> int:
    value = _integer(text)
    if not 0 <= value <= 100:
        raise argparse.ArgumentTypeError(f"{value} is not between 0 and 100")
    return value


def _add_rollout(subparsers: Any) -> None:
    canary = subparsers.add_parser(
        "canary",
        help="set the share of a model's requests its canary gets (edits values.yaml)",
        description="Set canary.weight in k8s_dev/MODEL/values.yaml (comments kept) and print "
        "the change; commit it, and Argo CD or Flux applies it (or `mda deploy MODEL`).",
    )
    canary.add_argument("model", metavar="MODEL", help="the model's name (its chart)")
    canary.add_argument(
        "--weight", type=_percent, required=True, metavar="N", help="percent, 0 to 100"
    )
    canary.add_argument("--root", help=_ROOT_HELP)
    canary.set_defaults(handler=_canary)
    promote = subparsers.add_parser(
        "promote",
        help="make a model's canary its stable config (edits values.yaml)",
        description="Merge canary.config into config (and canary.image.tag into image.tag) "
        "in k8s_dev/MODEL/values.yaml, switch the canary off, and print the change.",
    )
    promote.add_argument("model", metavar="MODEL", help="the model's name (its chart)")
    promote.add_argument("--root", help=_ROOT_HELP)
    promote.set_defaults(handler=_promote)


def _canary(args: argparse.Namespace) -> int:
    from model_deployment_app.deploy.rollout import set_weight

    print(set_weight(Repo.find(args.root), args.model, args.weight), end="")
    return 0


def _promote(args: argparse.Namespace) -> int:
    from model_deployment_app.deploy.rollout import promote

    print(promote(Repo.find(args.root), args.model), end="")
    return 0


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None


def _positive_int(text: str) -> int:
    value = _integer(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{value} is not greater than 0")
    return value


def _add_new_model(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "new-model",
        help="create the Helm chart of a new model in k8s_dev/NAME",
        description="Create k8s_dev/NAME, a chart built on charts_template/ that deploys as it "
        "is once the bucket holds the model. Every answer can be changed later in its "
        "values.yaml.",
    )
    parser.add_argument(
        "name", metavar="NAME", help="model name: a DNS label, e.g. iris-classifier"
    )
    parser.add_argument(
        "--job",
        choices=("classification", "regression"),
        default="classification",
        help="what the model does (default: %(default)s)",
    )
    parser.add_argument(
        "--input-size",
        type=_positive_int,
        default=None,
        metavar="N",
        help="features per row, for a model of numbers (default: 4)",
    )
    parser.add_argument(
        "--inputs",
        type=_input_specs,
        metavar="NAME:TYPE,...",
        help="named, typed columns instead of --input-size, e.g. age:INT64,city:BYTES "
        "(types: FP64 FP32 INT64 INT32 BOOL BYTES and the other V2 datatypes)",
    )
    parser.add_argument(
        "--model-type",
        choices=MODEL_TYPES,
        default="joblib",
        help="how the artifact was saved (default: %(default)s)",
    )
    parser.add_argument(
        "--project",
        default="my-project",
        metavar="P",
        help="GCP project of the bucket (default: %(default)s)",
    )
    parser.add_argument(
        "--bucket", default="my-bucket", metavar="B", help="GCS bucket (default: %(default)s)"
    )
    parser.add_argument(
        "--blob", metavar="PATH", help="object name in the bucket (default: NAME/model.TYPE)"
    )
    parser.add_argument(
        "--mlflow-uri",
        metavar="URI",
        help="serve a version from the MLflow Model Registry instead of a bucket: "
        "models:/<name>@<alias> or models:/<name>/<version>",
    )
    parser.add_argument(
        "--mlflow-tracking-uri",
        default="http://mlflow.mlflow.svc.cluster.local:5000",
        metavar="URL",
        help="the tracking server, with --mlflow-uri (default: %(default)s)",
    )
    parser.add_argument(
        "--refresh-seconds",
        type=_positive_int,
        metavar="S",
        help="poll the source for a new model version this often (default: never)",
    )
    _add_image_argument(parser)
    parser.add_argument(
        "--into",
        metavar="POOL",
        help="add the model to the pool chart k8s_dev/POOL (mda new-pool) instead of writing "
        "a chart of its own",
    )
    parser.add_argument("--root", help=_ROOT_HELP)
    parser.set_defaults(handler=_new_model)


def _add_image_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--image",
        default=DEFAULT_IMAGE,
        metavar="REPO",
        help="base image repository, without tag (default: %(default)s)",
    )


def _add_new_pool(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "new-pool",
        help="create the Helm chart of a model pool (many models in one pod) in k8s_dev/POOL",
        description="Create k8s_dev/POOL, a chart that serves many models in one pod, each "
        "under its own path /<name>, within a memory budget (docs: guides/pools.md). Add "
        "models with `mda new-model NAME --into POOL`.",
    )
    parser.add_argument("name", metavar="POOL", help="pool name: a DNS label, e.g. stores")
    parser.add_argument(
        "--memory-budget",
        default="",
        metavar="SIZE",
        help="memory the loaded models may hold, e.g. 1536Mi (default: half of the pod's "
        "memory limit)",
    )
    _add_image_argument(parser)
    parser.add_argument("--root", help=_ROOT_HELP)
    parser.set_defaults(handler=_new_pool)


def _new_pool(args: argparse.Namespace) -> int:
    from model_deployment_app.deploy.pool_chart import new_pool

    repo = Repo.find(args.root)
    chart = new_pool(repo, args.name, args.image, args.memory_budget)
    where = chart.relative_to(repo.root) if chart.is_relative_to(repo.root) else chart
    print(
        f"created {where}: a pool of no models yet\n"
        f"next: add models with `mda new-model NAME --into {args.name}`, then\n"
        f"  make k8s-render MODEL={args.name}\n"
        f"  make k8s-deploy MODEL={args.name}"
    )
    return 0


def _input_specs(text: str) -> tuple[tuple[str, str], ...]:
    """`age:INT64,city:BYTES` as ((name, datatype), ...); `_new_model` checks the types."""
    specs = []
    for item in text.split(","):
        name, colon, datatype = item.strip().rpartition(":")
        if not colon or not name or not datatype:
            raise argparse.ArgumentTypeError(f"{item.strip()!r} is not NAME:TYPE")
        specs.append((name, datatype.upper()))
    return tuple(specs)


def _check_datatypes(specs: tuple[tuple[str, str], ...]) -> None:
    """A bad datatype named alone, in one line."""
    from typing import get_args

    from model_deployment_app.config import Datatype

    known = get_args(Datatype)
    for name, datatype in specs:
        if datatype not in known:
            raise UserError(
                f"--inputs {name}: {datatype!r} is not a datatype; use one of {', '.join(known)}"
            )


def _new_model(args: argparse.Namespace) -> int:
    from model_deployment_app.deploy.scaffold import ModelSpec, new_model

    if args.inputs:
        _check_datatypes(args.inputs)
    if args.inputs and args.input_size is not None:
        raise UserError("give --inputs (named columns) or --input-size (a row width), not both")
    if for_model_type(args.model_type).takes_text and args.input_size is not None:
        raise UserError(
            f"--input-size does not apply to --model-type {args.model_type} (it takes text)"
        )
    spec = ModelSpec(
        name=args.name,
        job=args.job,
        input_size=args.input_size or 4,
        inputs=args.inputs,
        model_type=args.model_type,
        project=args.project,
        bucket=args.bucket,
        blob=args.blob,
        image=args.image,
        mlflow_uri=args.mlflow_uri,
        mlflow_tracking_uri=args.mlflow_tracking_uri,
        refresh_seconds=args.refresh_seconds,
    )
    repo = Repo.find(args.root)
    source = spec.mlflow_uri or f"gs://{spec.bucket}/{spec.blob_path}"
    first = "register the model" if spec.mlflow_uri else "upload the model there"
    if args.into:
        from model_deployment_app.deploy.pool_chart import add_to_pool

        print(add_to_pool(repo, args.into, spec), end="")
        print(
            f"added {spec.name} to pool {args.into}: {spec.job}, {spec.describe_inputs()}, "
            f"{source}, at /{spec.name}\nnext: {first}, then\n"
            f"  make k8s-deploy MODEL={args.into}"
        )
        return 0
    chart = new_model(repo, spec)
    where = chart.relative_to(repo.root) if chart.is_relative_to(repo.root) else chart
    print(
        f"created {where}: {spec.job}, {spec.describe_inputs()}, {source}\n"
        f"next: {first}, check {where}/values.yaml, then\n"
        f"  make k8s-render MODEL={spec.name}\n"
        f"  make k8s-deploy MODEL={spec.name}"
    )
    return 0


def _release_arguments(parser: argparse.ArgumentParser, values: bool = True) -> None:
    parser.add_argument("model", metavar="MODEL", help="model name (a chart in k8s_dev/)")
    parser.add_argument(
        "-n", "--namespace", default="default", help="Kubernetes namespace (default: %(default)s)"
    )
    if values:
        parser.add_argument(
            "-f",
            "--values",
            action="append",
            default=[],
            type=Path,
            metavar="FILE",
            help="extra values file, merged over the chart's values.yaml (repeatable)",
        )
    parser.add_argument("--root", help=_ROOT_HELP)


def _add_render(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "render",
        help="print a model's Kubernetes manifests (helm template)",
        description="Render k8s_dev/MODEL with the real Helm engine and print the manifests. "
        "Needs no cluster.",
    )
    _release_arguments(parser)
    parser.set_defaults(handler=_render)


def _add_deploy(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "deploy",
        help="install or upgrade a model's release, waiting for it to be ready",
        description="helm upgrade --install MODEL k8s_dev/MODEL: waits until the pods are "
        "ready and rolls back on failure. Uses the current kubeconfig context.",
    )
    _release_arguments(parser)
    parser.add_argument(
        "--timeout",
        type=_positive_int,
        default=300,
        metavar="SECONDS",
        help="how long to wait for the rollout (default: %(default)s)",
    )
    parser.add_argument(
        "--create-namespace", action="store_true", help="create the namespace if it is missing"
    )
    parser.set_defaults(handler=_deploy)


def _add_undeploy(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "undeploy",
        help="uninstall a model's release",
        description="helm uninstall MODEL: removes every object the chart created.",
    )
    _release_arguments(parser, values=False)
    parser.add_argument(
        "--timeout",
        type=_positive_int,
        default=300,
        metavar="SECONDS",
        help="how long to wait for the objects to go (default: %(default)s)",
    )
    parser.set_defaults(handler=_undeploy)


def _release(args: argparse.Namespace) -> Release:
    return Release(
        name=args.model,
        namespace=args.namespace,
        values_files=tuple(getattr(args, "values", ())),
        timeout_s=getattr(args, "timeout", 300),
    )


def _add_lint(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "lint",
        help="helm lint --strict every model chart (or those named)",
        description="Lint model charts with Helm's own linter, strict: warnings fail too.",
    )
    parser.add_argument("models", nargs="*", metavar="MODEL", help="default: every chart")
    parser.add_argument("--root", help=_ROOT_HELP)
    parser.set_defaults(handler=_lint)


def _lint(args: argparse.Namespace) -> int:
    from model_deployment_app.deploy.helm import get_engine
    from model_deployment_app.deploy.stage import staged_chart

    repo = Repo.find(args.root)
    engine = get_engine()
    failed = 0
    for model in args.models or repo.model_names():
        repo.chart_dir(model)
        with staged_chart(repo, model) as chart:
            problems = engine.lint(chart)
        print(f"{'FAIL' if problems else 'ok  '} {model}")
        for problem in problems:
            print(f"     {problem}")
        failed += bool(problems)
    if failed:
        raise UserError(f"{failed} chart(s) failed helm lint")
    return 0


def _render(args: argparse.Namespace) -> int:
    from model_deployment_app.deploy.helm import get_engine
    from model_deployment_app.deploy.stage import staged_chart

    repo = Repo.find(args.root)
    repo.chart_dir(args.model)
    engine = get_engine()
    with staged_chart(repo, args.model) as chart:
        print(engine.render(chart, _release(args)), end="")
    return 0


def _deploy(args: argparse.Namespace) -> int:
    from model_deployment_app.deploy.helm import get_engine
    from model_deployment_app.deploy.stage import staged_chart

    repo = Repo.find(args.root)
    repo.chart_dir(args.model)
    from model_deployment_app.deploy.progress import rollout_progress

    engine = get_engine()
    release = _release(args)
    with staged_chart(repo, args.model) as chart, rollout_progress(release):
        print(engine.deploy(chart, release, args.create_namespace))
    return 0


def _undeploy(args: argparse.Namespace) -> int:
    from model_deployment_app.deploy.helm import get_engine

    validate_name(args.model)
    print(get_engine().undeploy(_release(args)))
    return 0
