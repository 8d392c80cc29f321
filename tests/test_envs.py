"""conda cannot run here, so check that every pin in envs/*.yaml satisfies pyproject.toml's range."""
import re
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.version import Version

REPO = Path(__file__).resolve().parents[1]


def _ranges():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    reqs = project["dependencies"] + [r for extra in project["optional-dependencies"].values() for r in extra]
    return {Requirement(r).name.lower(): Requirement(r).specifier for r in reqs}


@pytest.mark.parametrize("env", sorted(p.name for p in (REPO / "envs").glob("*.yaml")))
def test_env_pins_agree_with_pyproject(env):
    ranges = _ranges()
    deps = yaml.safe_load((REPO / "envs" / env).read_text())["dependencies"]
    pins = dict(re.fullmatch(r"([\w.-]+)=([\w.]+)", d).groups() for d in deps if isinstance(d, str) and "=" in d)
    assert pins.pop("python").startswith("3.")
    assert pins, f"{env} pins nothing"
    for name, version in pins.items():
        name = {"pytorch": "torch"}.get(name, name)          # conda-forge's name for torch
        assert name in ranges, f"{env}: {name} is not a dependency in pyproject.toml"
        assert Version(version) in ranges[name], f"{env}: {name}={version} outside pyproject's {ranges[name]}"
