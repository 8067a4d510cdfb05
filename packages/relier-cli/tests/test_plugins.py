"""``rl``'s plugin commands: the "relier.cli" entry-point group (relier.cli.plugins)."""

from __future__ import annotations

import sys
import types
from importlib.metadata import EntryPoint

import pytest
import typer
from typer.testing import CliRunner

from relier.cli import plugins

runner = CliRunner()


def _shell() -> typer.Typer:
    shell = typer.Typer(no_args_is_help=True)

    @shell.command("doctor")
    def doctor() -> None:
        """Built in."""

    @shell.command()
    def run_resurrector() -> None:
        """Built in, named after its function."""

    return shell


@pytest.fixture
def fake_plugin(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    module = types.ModuleType("rl_fake_plugin")
    group = typer.Typer(no_args_is_help=True, help="A plugin group.")

    @group.command("up")
    def up() -> None:
        """Start it."""
        typer.echo("group up ran")

    def single(times: int = typer.Option(1, "--times")) -> None:
        """One plugin command."""
        typer.echo(f"single ran {times}")

    module.group, module.single, module.number = group, single, 42  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "rl_fake_plugin", module)
    return module


def _entries(monkeypatch: pytest.MonkeyPatch, *pairs: tuple[str, str]) -> None:
    found = [EntryPoint(name, value, plugins.GROUP) for name, value in pairs]

    def entry_points(*, group: str) -> list[EntryPoint]:
        assert group == plugins.GROUP
        return found

    monkeypatch.setattr(plugins, "entry_points", entry_points)


@pytest.mark.usefixtures("fake_plugin")
def test_groups_and_commands_are_added_under_their_entry_point_names(
        monkeypatch: pytest.MonkeyPatch) -> None:
    _entries(monkeypatch, ("lab", "rl_fake_plugin:group"), ("one", "rl_fake_plugin:single"))
    shell = _shell()
    assert plugins.add_plugins(shell) == ["lab", "one"]
    assert runner.invoke(shell, ["lab", "up"]).output == "group up ran\n"
    assert runner.invoke(shell, ["one", "--times", "3"]).output == "single ran 3\n"


@pytest.mark.usefixtures("fake_plugin")
def test_a_broken_plugin_costs_only_its_own_command(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    _entries(monkeypatch, ("gone", "rl_no_such_module:app"), ("num", "rl_fake_plugin:number"),
             ("one", "rl_fake_plugin:single"))
    shell = _shell()
    assert plugins.add_plugins(shell) == ["one"]
    err = capsys.readouterr().err
    assert "plugin command 'gone' (rl_no_such_module:app" in err
    assert "could not be loaded (ModuleNotFoundError" in err
    assert "reinstall that distribution or uninstall it" in err
    assert "plugin command 'num'" in err
    assert "not a typer.Typer or a command function" in err
    result = runner.invoke(shell, ["--help"])
    assert result.exit_code == 0
    assert "one" in result.output
    assert "gone" not in result.output


@pytest.mark.usefixtures("fake_plugin")
def test_a_plugin_never_replaces_a_built_in_command(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    _entries(monkeypatch, ("doctor", "rl_fake_plugin:single"),
             ("run-resurrector", "rl_fake_plugin:group"))
    shell = _shell()
    assert plugins.add_plugins(shell) == []
    err = capsys.readouterr().err
    assert "'doctor'" in err
    assert "'run-resurrector'" in err
    assert "the name is taken" in err


def test_no_plugins_installed_leaves_the_shell_as_it_is(monkeypatch: pytest.MonkeyPatch) -> None:
    _entries(monkeypatch)
    shell = _shell()
    assert plugins.add_plugins(shell) == []
    assert runner.invoke(shell, ["doctor"]).exit_code == 0
