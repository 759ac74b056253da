"""``wa-sessions``: the command line. Parses arguments and turns errors into exit statuses; each
subcommand's work lives in the module that owns its concept."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from plugin.core.errors import SettingsError, StoreUnavailable

__all__ = ["main"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CONFIG = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wa-sessions",
        description="Bounded delivery-receipt tracking for WhatsApp bots.",
    )
    parser.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the webhook server (the main job)")
    serve.add_argument("--settings", metavar="FILE", help="settings file (default settings.toml)")
    serve.add_argument("--host", help="override server.host")
    serve.add_argument("--port", type=int, help="override server.port")

    check = sub.add_parser("check-config", help="validate the settings; exit 2 with every error")
    check.add_argument("--settings", metavar="FILE", help="settings file (default settings.toml)")

    for name, text in (("stats", "get_all_stats()"), ("debug-info", "get_debug_info()")):
        query = sub.add_parser(name, help=f"print {text} of a running server")
        query.add_argument("--url", default=None, help="server base URL (default from settings)")
        query.add_argument("--token", default=None, help="admin token (default from settings)")
        query.add_argument(
            "--settings", metavar="FILE", help="settings file (default settings.toml)"
        )

    simulate = sub.add_parser("simulate", help="drive the real manager on a simulated clock")
    simulate.add_argument("--days", type=int, default=30, help="simulated days (default 30)")
    simulate.add_argument(
        "--per-day", type=int, default=20_000, help="messages a day"
    )
    simulate.add_argument(
        "--profile", default="default", help="a profile name"
    )
    simulate.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    simulate.add_argument("--json", action="store_true", help="one JSON object per line")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        force=True,
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        if args.command == "serve":
            from plugin.server.app import serve_command

            return serve_command(args)
        if args.command == "check-config":
            from plugin.settings.loading import check_config_command

            return check_config_command(args)
        if args.command in ("stats", "debug-info"):
            from plugin.cli.query import query_command

            return query_command(args)
        from plugin.cli.simulate import simulate_command

        return simulate_command(args)
    except SettingsError as exc:
        print(f"wa-sessions: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except StoreUnavailable as exc:  # Redis unreachable at start-up: say where, not a traceback
        print(f"wa-sessions: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
