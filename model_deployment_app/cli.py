"""The `mda` command: `serve` runs the model server; the chart commands live in `deploy/`."""

import argparse
import sys
from collections.abc import Sequence

from model_deployment_app import __version__
from model_deployment_app.errors import StartupError, UserError


def _serve(args: argparse.Namespace) -> int:
    from model_deployment_app.server import serve

    serve()
    return 0


def _digest(args: argparse.Namespace) -> int:
    from pathlib import Path

    from model_deployment_app.storage import sha256_of

    path = Path(args.path)
    if not path.exists():
        raise UserError(f"{path} does not exist")
    print(sha256_of(path))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mda", description="Serve scikit-learn and PyTorch models; one Helm chart per model."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = commands.add_parser(
        "serve",
        help="start the model server",
        description="Start the model server. Config from MDA_CONFIG_PATH, port from PORT; "
        "docs/reference/settings.md lists every MDA_* setting.",
    )
    serve.set_defaults(handler=_serve)
    digest = commands.add_parser(
        "digest",
        help="print the sha256 that model.sha256 pins, of a file or a model folder",
        description="Print the sha256 of a model file, or of a model folder (a transformers "
        "save_pretrained folder): the value to put in model.sha256.",
    )
    digest.add_argument("path", help="the artifact file or folder")
    digest.set_defaults(handler=_digest)

    from model_deployment_app.deploy.commands import add_commands

    add_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except (StartupError, UserError) as error:
        print(f"mda: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
