"""Packaging metadata: environment.yml mirrors pyproject.toml, Python version pins.

environment.yml is parsed with plain string handling (pyyaml is present in the
venv only as a transitive dependency, not a declared one).
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# "name>=1.2" (conda spelling; pip's is the same for these lower bounds)
_REQ = re.compile(r"^\s*([A-Za-z0-9_.\-]+)\s*(?:>=\s*([0-9][A-Za-z0-9.*]*))?\s*$")


# conda-forge names that differ from PyPI's (conda's "graphviz" is the binary package)
CONDA_TO_PIP = {"python-graphviz": "graphviz"}


def _norm(name: str) -> str:
    """PEP 503 normalised distribution name (PyPI's spelling)."""
    name = re.sub(r"[-_.]+", "-", name).lower()
    return CONDA_TO_PIP.get(name, name)


def _parse_req(text: str) -> tuple[str, str | None]:
    m = _REQ.match(text)
    assert m, f"cannot parse requirement {text!r}: expected 'name' or 'name>=version'"
    return _norm(m.group(1)), m.group(2)


@pytest.fixture(scope="module")
def pyproject() -> dict:
    with open(ROOT / "pyproject.toml", "rb") as fh:
        return tomllib.load(fh)


def _env_dependencies() -> tuple[list[str], list[str]]:
    """(top-level conda dependencies, entries of the nested pip: list)."""
    lines = (ROOT / "environment.yml").read_text().splitlines()
    conda, pip, section, dep_indent, pip_indent = [], [], None, None, None
    for raw in lines:
        line = raw.split("#", 1)[0].rstrip()
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        text = line.strip()
        if indent == 0:
            section = text.rstrip(":") if text.endswith(":") else None
            continue
        if section != "dependencies" or not text.startswith("- "):
            continue
        item = text[2:].strip()
        if dep_indent is None:
            dep_indent = indent
        if indent == dep_indent:
            pip_indent = None
            if item == "pip:":
                pip_indent = -1  # the next deeper items are pip's
            else:
                conda.append(item)
        elif pip_indent is not None:
            pip.append(item)
    return conda, pip


def test_environment_parser_sees_the_file():
    conda, pip = _env_dependencies()
    assert "python>=3.12" in [c.replace(" ", "") for c in conda]
    assert len(conda) > 5
    assert pip, "environment.yml should install the package itself with pip"


def test_environment_mirrors_pyproject(pyproject):
    project = pyproject["project"]
    expected = dict(_parse_req(r) for r in project["dependencies"])
    expected.update(_parse_req(r) for r in project["optional-dependencies"]["test"])

    conda, _ = _env_dependencies()
    env = dict(_parse_req(c) for c in conda)
    env.pop("python", None)
    env.pop("pip", None)  # installs the package itself (pip: - -e .)

    missing = sorted(set(expected) - set(env))
    extra = sorted(set(env) - set(expected))
    assert not missing, f"in pyproject.toml but not environment.yml: {missing}"
    assert not extra, f"in environment.yml but not pyproject.toml: {extra}"
    differ = {n: (expected[n], env[n]) for n in expected if expected[n] != env[n]}
    assert not differ, f"lower bounds differ (pyproject, environment.yml): {differ}"


def test_environment_installs_package_in_editable_mode():
    _, pip = _env_dependencies()
    # compat mode: see test_a_folder_named_bayesmix_in_the_working_directory_does_not_shadow_the_package
    assert "-e . --config-settings editable_mode=compat" in pip


def test_python_version_pins(pyproject):
    pinned = (ROOT / ".python-version").read_text().strip()
    assert re.fullmatch(r"3\.12\.\d+", pinned), f".python-version says {pinned!r}; expected 3.12.x"
    assert pyproject["project"]["requires-python"].replace(" ", "") == ">=3.12"
    conda, _ = _env_dependencies()
    assert dict(_parse_req(c) for c in conda).get("python") == "3.12"


def test_installed_versions_satisfy_lower_bounds(pyproject):
    """The venv the tests run in honours the declared lower bounds."""
    version = pytest.importorskip("packaging.version")
    reqs = list(pyproject["project"]["dependencies"]) + list(pyproject["project"]["optional-dependencies"]["test"])
    too_old = {}
    for r in reqs:
        name, low = _parse_req(r)
        try:
            have = metadata.version(name)
        except metadata.PackageNotFoundError:
            too_old[name] = (low, "not installed")
            continue
        if low is not None and version.Version(have) < version.Version(low):
            too_old[name] = (low, have)
    assert not too_old, f"installed versions below the declared bounds: {too_old}"


def test_a_folder_named_bayesmix_in_the_working_directory_does_not_shadow_the_package(tmp_path):
    """A clone named bayesmix, seen from its parent folder, is an empty namespace
    package there; with the default (strict) editable install it shadowed the real
    package (bayesmix.__file__ None, no bm.lca). scripts/_venv.sh installs in
    compat mode, which puts the project root on sys.path."""
    (tmp_path / "bayesmix").mkdir()
    (tmp_path / "bayesmix" / "README.md").write_text("a checkout\n")
    out = subprocess.run([sys.executable, "-c", "import bayesmix; print(bayesmix.__file__)"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("__init__.py"), out.stdout
