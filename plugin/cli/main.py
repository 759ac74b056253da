"""``wa-sessions``: the command line. Parses arguments and turns errors into exit statuses (0 done,
1 failed, 2 configuration); each subcommand's work lives in the module that owns its concept.
The reference: docs/cli.md."""

from __future__ import annotations

import argparse
import importlib.metadata
import logging
import os
import sys
from collections.abc import Sequence

from plugin.core.errors import ServeError, SettingsError, StoreUnavailable

__all__ = ["main"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CONFIG = 2
DISTRIBUTION = "whatsapp-session-plugin"
_SETTINGS_HELP = (
    "settings file (default: $WHATSAPP_SETTINGS_FILE, else ./settings.toml); "
    "WHATSAPP_* environment variables override it"
)


def version() -> str:
    """The installed distribution's version."""
    try:
        return importlib.metadata.version(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:  # run from a source tree never installed
        return "unknown (not installed)"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wa-sessions",
        description="Bounded delivery-receipt tracking for WhatsApp bots: the webhook server "
        "and the tools around it. Exit status: 0 done, 1 failed, 2 invalid configuration.",
        epilog="Run `wa-sessions COMMAND --help` for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    parser.add_argument(
        "--log-level",
        default=None,
        help="logging level (default INFO; WARNING for simulate without --verbose)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser(
        "serve",
        help="run the webhook server (the main job)",
        description="Run the webhook server until SIGINT or SIGTERM, then shut down gracefully. "
        "Exit 2 on invalid settings or a plugin that cannot be imported, 1 when the address "
        "cannot be listened on (a port in use) or the store cannot be reached.",
    )
    serve.add_argument("--settings", metavar="FILE", help=_SETTINGS_HELP)
    serve.add_argument("--host", help="listen on this host (overrides server.host)")
    serve.add_argument("--port", type=int, help="listen on this port (overrides server.port)")

    check = sub.add_parser(
        "check-config",
        help="validate the settings; exit 2 with every error",
        description="Load the settings as serve does (same environment, same production "
        "checks), import the plugins they list and the wa_sessions entry points, and print a "
        "summary. Exit 0, or 2 with every problem.",
    )
    check.add_argument("--settings", metavar="FILE", help=_SETTINGS_HELP)

    for name, route, text in (
        ("stats", "/sessions/stats", "get_all_stats()"),
        ("debug-info", "/sessions/debug", "get_debug_info()"),
    ):
        query = sub.add_parser(
            name,
            help=f"print {text} of a running server",
            description=f"Ask a running server for {route} ({text}) and print its JSON. "
            "Exit 1 when the server cannot be reached or refuses.",
        )
        query.add_argument(
            "--url",
            default=None,
            help="server base URL (default http://{server.host}:{server.port})",
        )
        query.add_argument("--token", default=None, help="admin token (default server.admin_token)")
        query.add_argument("--settings", metavar="FILE", help=_SETTINGS_HELP)

    _simulate_parser(sub)
    return parser


def _simulate_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    simulate = sub.add_parser(
        "simulate",
        help="drive the real manager on a simulated clock",
        description="Drive the real manager on a simulated clock with realistic receipts "
        "(delays, duplicates, out-of-order, failures, silence); print one line per day and a "
        "verdict. Exit 1 if any bound was exceeded, 2 on invalid arguments or settings.",
    )
    simulate.add_argument("--days", type=int, default=30, help="simulated days (default 30)")
    simulate.add_argument(
        "--per-day", type=int, default=20_000, help="messages sent a day (default 20000)"
    )
    source = simulate.add_mutually_exclusive_group()
    source.add_argument(
        "--profile", default=None, help="default, ultra_lean or zero_history (default: default)"
    )
    source.add_argument(
        "--settings",
        metavar="FILE",
        help="use the manager options of this settings file and the WHATSAPP_* "
        "variables (profile included) instead of a bare --profile",
    )
    simulate.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    simulate.add_argument(
        "--json", action="store_true", help="one JSON object per line; the last one is the verdict"
    )
    simulate.add_argument(
        "--verbose",
        action="store_true",
        help="also print the manager's INFO log lines (quiet by default)",
    )


def _cwd_on_path() -> None:
    """Modules listed in ``plugins`` resolve from the current directory, as with ``python -m``
    (a console script's sys.path starts with its own bin directory instead)."""
    cwd = os.getcwd()
    if "" not in sys.path and cwd not in sys.path:
        sys.path.insert(0, cwd)


def _run(args: argparse.Namespace) -> int:
    if args.command == "serve":
        _cwd_on_path()
        from plugin.server.app import serve_command

        return serve_command(args)
    if args.command == "check-config":
        _cwd_on_path()
        from plugin.cli.check_config import check_config_command

        return check_config_command(args)
    if args.command in ("stats", "debug-info"):
        from plugin.cli.query import query_command

        return query_command(args)
    from plugin.cli.simulate import simulate_command

    return simulate_command(args)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    quiet = args.command == "simulate" and not args.verbose  # its result, not 177 log lines
    level = (args.log_level or ("WARNING" if quiet else "INFO")).upper()
    logging.basicConfig(
        force=True,
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return _run(args)
    except SettingsError as exc:
        print(f"wa-sessions: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except (StoreUnavailable, ServeError) as exc:  # say where, not a traceback
        print(f"wa-sessions: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
