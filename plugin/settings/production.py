"""What production refuses that development only warns about: missing secrets and tokens, and
recipients kept across restarts without a ``redaction_key``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from plugin.core.errors import SettingProblem
from plugin.core.options import ManagerOptions
from plugin.settings.schema import Provider

__all__ = ["production_problems"]


def production_problems(settings: Mapping[str, Any]) -> list[SettingProblem]:
    need = "required in production; set it from the environment"
    out: list[SettingProblem] = []
    if settings["server"].admin_token is None:
        out.append(
            SettingProblem(
                "server.admin_token", None, f"a token ({need}: WHATSAPP_SERVER__ADMIN_TOKEN)"
            )
        )
    if settings["meta"].enabled and not settings["meta"].signed:
        out.append(
            SettingProblem(
                "meta.app_secret",
                None,
                f"a secret while [meta] is enabled ({need}: WHATSAPP_META__APP_SECRET; a BSP that "
                "does not sign may use meta.shared_secret_header + meta.shared_secret instead)",
            )
        )
    if settings["meta"].enabled and settings["meta"].verify_token is None:
        out.append(
            SettingProblem(
                "meta.verify_token",
                None,
                f"a token while [meta] is enabled ({need}: WHATSAPP_META__VERIFY_TOKEN)",
            )
        )
    for name, key in (
        ("twilio", "auth_token"),
        ("twilio", "public_url"),
        ("waha", "hmac_key"),
        ("bridge", "secret"),
    ):
        provider: Provider = settings[name]
        if provider.enabled and getattr(provider, key) is None:
            variable = f"WHATSAPP_{name.upper()}__{key.upper()}"
            out.append(
                SettingProblem(
                    f"{name}.{key}", None, f"a value while [{name}] is enabled ({need}: {variable})"
                )
            )
    manager: ManagerOptions = settings["manager"]
    durable = settings["store"] == "redis" or bool(settings["state_file"])
    if durable and manager.redact_recipients and not manager.redaction_key:
        out.append(
            SettingProblem(
                "redaction_key",
                "",
                f"a secret key while recipients are kept across restarts "
                f"(state_file or the Redis store), so their hashes survive a restart ({need}: "
                "WHATSAPP_REDACTION_KEY)",
            )
        )
    return out
