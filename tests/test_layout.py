"""What ships: the wheel carries the back office and the migrations but not the dev tools, and the CLI says
plainly when a dev tool is asked for without a source checkout."""

from __future__ import annotations

import tomllib
from pathlib import Path

from setuptools import find_packages

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_packages_leave_out_the_dev_tools():
    include = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]["include"]
    shipped = set(find_packages(str(ROOT), include=include))
    assert {"sibyl", "sibyl.backoffice", "sibyl.migrations", "api.operator"} <= shipped
    assert not {p for p in shipped if p.split(".")[0] in ("devtools", "tests")}
    assert not list((ROOT / "sibyl").glob("bench*.py")) and not (ROOT / "sibyl" / "devtools").exists()


def test_dev_tools_without_a_checkout_fail_with_a_clear_message(tmp_path, monkeypatch, capsys):
    import sibyl.cli

    monkeypatch.setattr(sibyl.cli, "CHECKOUT", tmp_path)  # as in an installed wheel: no devtools/ beside sibyl/
    for command in (["bench"], ["bench-api"], ["bench-llm"], ["bench-robust"]):
        assert sibyl.cli.main(command) == sibyl.cli.EXIT_ERROR
        assert "dev tools need a source checkout" in capsys.readouterr().err


def test_back_office_has_no_html():
    """Presentation (Markup, SVG, CSV) is api/operator/present.py; the back office hands over data."""
    for path in (ROOT / "sibyl" / "backoffice").glob("*.py"):
        source = path.read_text()
        assert "markupsafe" not in source and "<svg" not in source and "import csv" not in source, path.name
