"""``wa-sessions simulate``: the real manager on a simulated clock shows its bounds."""

from __future__ import annotations

import json

import pytest

from plugin.cli import simulate as simulation
from plugin.cli.main import main


def run(capsys, *args: str) -> tuple[int, list[dict]]:
    status = main(["--log-level", "WARNING", "simulate", *args, "--json"])
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    return status, lines


def test_a_run_prints_one_line_per_day_and_a_bounded_verdict(capsys):
    status, lines = run(capsys, "--days", "12", "--per-day", "400")
    days, verdict = lines[:-1], lines[-1]
    assert status == 0
    assert [line["day"] for line in days] == list(range(1, 13))
    assert set(days[0]) == {
        "day",
        "date",
        "active_sessions",
        "history_size",
        "tracked_messages",
        "tombstones",
        "heap_bytes",
    }
    assert verdict["bounded"] is True
    assert verdict["max_active_sessions"] <= 2
    assert verdict["max_history_size"] <= 10
    assert 0 < verdict["max_tracked_messages"] <= verdict["limits"]["max_tracked_messages"]
    assert set(verdict["heap_checkpoints"]) == {"1", "2", "6", "10", "12"}
    assert all(days[int(d) - 1]["heap_bytes"] == b for d, b in verdict["heap_checkpoints"].items())
    assert verdict["max_heap_bytes"] <= verdict["limits"]["memory_bound_bytes"]
    assert abs(verdict["heap_growth_pct"]) < 25  # small runs are noisy; 1000 days stay flat
    receipts = verdict["receipts"]
    assert receipts["applied"] > 12 * 400  # sent, delivered, read...
    assert receipts["duplicate"] > 0 and receipts["stale"] > 0  # retries and out-of-order


def test_history_fills_to_its_limit_and_stays_there(capsys):
    _, lines = run(capsys, "--days", "14", "--per-day", "50", "--profile", "ultra_lean")
    assert [line["history_size"] for line in lines[:-1]][-5:] == [3] * 5
    assert lines[-1]["max_history_size"] == 3


def test_zero_history_keeps_no_history_and_sub_day_sessions(capsys):
    status, lines = run(capsys, "--days", "3", "--per-day", "200", "--profile", "zero_history")
    assert status == 0
    assert all(line["history_size"] == 0 for line in lines[:-1])
    assert lines[-1]["bounded"] is True
    assert lines[-1]["max_active_sessions"] <= lines[-1]["limits"]["max_active_sessions"]


def test_an_exceeded_bound_exits_1(capsys, monkeypatch):
    monkeypatch.setattr(simulation.MessageSessionManager, "memory_bound_bytes", lambda self: 1000)
    status, lines = run(capsys, "--days", "2", "--per-day", "50")
    assert status == 1
    assert lines[-1]["bounded"] is False


@pytest.mark.parametrize("args", [["--days", "0"], ["--per-day", "-1"]])
def test_nonsense_arguments_exit_2(capsys, args):
    assert main(["simulate", *args]) == 2
    assert "--days" in capsys.readouterr().err


def test_the_text_output_ends_with_the_verdict(capsys):
    assert main(["--log-level", "WARNING", "simulate", "--days", "3", "--per-day", "30"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("day     1 2026-01-01  active_sessions=1")
    assert out[-1].startswith("BOUNDED: active sessions <= ")


def test_a_run_shorter_than_10_days_reports_no_growth(capsys):
    status, lines = run(capsys, "--days", "3", "--per-day", "30")
    assert status == 0
    assert lines[-1]["heap_growth_pct"] is None
    assert main(["simulate", "--days", "3", "--per-day", "30"]) == 0
    out = capsys.readouterr().out
    assert "growth" not in out
    assert out.splitlines()[-1].startswith("BOUNDED: ")


def test_a_run_of_10_days_or_more_reports_growth_since_day_10(capsys):
    assert main(["simulate", "--days", "10", "--per-day", "30"]) == 0
    assert "heap growth since day 10 " in capsys.readouterr().out


def test_simulate_is_quiet_by_default_and_logs_with_verbose(capsys):
    assert main(["simulate", "--days", "3", "--per-day", "30"]) == 0
    captured = capsys.readouterr()
    assert " INFO " not in captured.err
    assert len(captured.out.splitlines()) == 4  # three days and the verdict
    assert main(["simulate", "--days", "3", "--per-day", "30", "--verbose"]) == 0
    assert " INFO plugin." in capsys.readouterr().err


def test_simulate_uses_the_options_of_a_settings_file(capsys, tmp_path):
    settings = tmp_path / "settings.toml"
    settings.write_text(
        '[default]\nprofile = "ultra_lean"\nmax_history_size = 2\nmax_tracked_messages = 5000\n'
    )
    status, lines = run(capsys, "--days", "6", "--per-day", "40", "--settings", str(settings))
    verdict = lines[-1]
    assert status == 0
    assert verdict["profile"] == "ultra_lean"
    assert verdict["limits"]["max_history_size"] == 2
    assert verdict["limits"]["max_tracked_messages"] == 5000
    assert [line["history_size"] for line in lines[:-1]][-2:] == [2, 2]


def test_simulate_with_invalid_settings_exits_2(capsys, tmp_path):
    settings = tmp_path / "settings.toml"
    settings.write_text("[default]\nmax_history_size = -1\n")
    assert main(["simulate", "--days", "2", "--settings", str(settings)]) == 2
    assert "max_history_size" in capsys.readouterr().err


def test_profile_and_settings_are_exclusive(capsys, tmp_path):
    with pytest.raises(SystemExit) as exc:
        main(["simulate", "--profile", "ultra_lean", "--settings", str(tmp_path / "s.toml")])
    assert exc.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err
