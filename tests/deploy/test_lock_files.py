"""The lock files pin what pyproject.toml asks for, with hashes, so every install gets what CI tested."""

import re
import tomllib

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.deploy.compose import ROOT

PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
BENCH = [
    line.strip()
    for line in (ROOT / "bench/requirements.txt").read_text().splitlines()
    if line.strip() and not line.startswith("#")
]
LOCKS = {
    "main": PROJECT["dependencies"],
    "dev": PROJECT["dependencies"] + PROJECT["optional-dependencies"]["dev"],
    "bench": PROJECT["dependencies"] + PROJECT["optional-dependencies"]["dev"] + BENCH,
}
PIN = re.compile(r"^([A-Za-z0-9._-]+)==(\S+) \\$", re.MULTILINE)


def pins(lock):
    return {
        canonicalize_name(name): version
        for name, version in PIN.findall((ROOT / f"requirements/{lock}.lock").read_text())
    }


@pytest.mark.parametrize("lock", sorted(LOCKS))
def test_each_requirement_is_pinned_by_the_lock_to_a_version_it_allows(lock):
    # Given a lock file and the requirements it was made from
    pinned = pins(lock)
    # Then each requirement is pinned, to a version inside its range (make lock re-resolves)
    for line in LOCKS[lock]:
        requirement = Requirement(line)
        name = canonicalize_name(requirement.name)
        assert name in pinned, f"{name} is missing from requirements/{lock}.lock: run make lock"
        assert requirement.specifier.contains(pinned[name], prereleases=True), (
            f"requirements/{lock}.lock pins {name}=={pinned[name]}, outside {requirement.specifier}: run make lock"
        )


@pytest.mark.parametrize("lock", sorted(LOCKS))
def test_every_pin_carries_a_hash(lock):
    text = (ROOT / f"requirements/{lock}.lock").read_text()
    blocks = re.split(r"\n(?=[A-Za-z0-9._-]+==)", text)
    for block in blocks[1:]:
        assert "--hash=sha256:" in block, block.splitlines()[0]
