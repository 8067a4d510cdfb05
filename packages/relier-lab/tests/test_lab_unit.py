"""relier-lab without Redis: its commands in ``rl``, benchmark statistics, report rendering."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from relier.cli.main import app
from relier.lab.bench import percentiles
from relier.lab.bench.report import markdown

runner = CliRunner()


def test_help_lists_the_lab_commands() -> None:
    # Moved from relier-cli's test_help_lists_every_command: these come through the
    # "relier.cli" entry points now.
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("chaos", "bench", "cluster", "demo"):
        assert command in result.output


def test_lab_commands_keep_their_options() -> None:
    for args, option in ((["demo", "--help"], "--orders"), (["bench", "--help"], "--markdown"),
                         (["chaos", "--help"], "worker-kill"), (["cluster", "--help"], "up")):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        assert option in result.output


def test_percentiles() -> None:
    p = percentiles([float(n) for n in range(1, 101)])
    assert p["p50"] == 50.5
    assert p["p99"] == 99.0
    assert p["max"] == 100.0
    assert percentiles([])["n"] == 0


def test_benchmarks_page_renders_every_section(tmp_path: Path) -> None:
    stats = {"p50": 400.0, "p99": 900.0, "mean": 450.0, "max": 2000.0, "n": 10}
    results = {
        "dispatch": {"n": 10, "stats": dict.fromkeys(
            ("push", "apush", "push_idempotent", "delay", "delay_with_backend"), stats)},
        "admission": {"check": stats},
        "recovery": {"whole_worker_sigkill": {**stats, "p50": 2.9, "p99": 3.1, "max": 3.1},
                     "pool_child_sigkill": {**stats, "p50": 0.04, "p99": 0.1, "max": 0.1}},
        "throughput": {"n": 10, "concurrency": 2, "relier": {"tasks_per_second": 300.0},
                       "vanilla": {"tasks_per_second": 360.0},
                       "vanilla_acks_late": {"tasks_per_second": 350.0}},
        "footprint": {"in_flight": 200, "bytes_per_in_flight_task": 553.0,
                      "keys_per_in_flight_task": 2.0, "envelope_bytes": 110,
                      "overhead_bytes_beyond_payload": 443.0,
                      "round_trips_per_task": {"relier": 3.0, "kombu": 3.0}},
        "delivery": {name: {"tasks": 500, "kills": 5, "delivered": d, "lost": 500 - d,
                            "delivery_rate": d / 500, "bodies_run_more_than_once": 0}
                     for name, d in (("relier", 500), ("vanilla", 401),
                                     ("vanilla_acks_late", 420))},
        "startup": {"relier": {"cold_start_ms": 2500.0, "rss_mb_per_process": 70.0},
                    "vanilla": {"cold_start_ms": 2100.0, "rss_mb_per_process": 50.0}},
    }
    page = markdown(results, {"cpu": "X", "cores": 2, "os": "Linux", "python": "3.11",
                              "date": "2026-11-21"}, "rl bench all --markdown x.md")
    for heading in ("Delivery under kills", "Recovery time", "Dispatch cost",
                    "Admission check", "Throughput", "Redis cost per task",
                    "Worker memory and cold start"):
        assert f"## {heading}" in page
    assert "500/500 (100.0 %)" in page
    assert "0.83x" in page
