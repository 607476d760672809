"""The Dockerfile checked without a Docker engine: what it copies exists, and the
final stage is small, pinned and not root."""

import re

from tests.deploy import compose
from tests.deploy.compose import ROOT

BUILD_TOOLS = re.compile(r"\b(gcc|g\+\+|clang|build-essential|make|cmake|libpq-dev|python3-dev|[a-z0-9]+-dev)\b")


def stages():
    return compose.dockerfile_stages()


def final():
    return stages()[-1][1]


def test_every_path_the_dockerfile_copies_exists_and_is_not_ignored():
    ignored = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for _, instructions in stages():
        for instruction, args in instructions:
            if instruction != "COPY" or "--from=" in args:
                continue
            sources = [part for part in args.split() if not part.startswith("--")][:-1]
            for source in sources:
                assert (ROOT / source).exists(), f"COPY {source}: not in the build context"
                top = source.rstrip("/").split("/")[0]
                assert top not in [p.rstrip("/") for p in ignored], f"COPY {source}: excluded by .dockerignore"


def test_secrets_and_local_state_stay_out_of_the_build_context():
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()}
    assert {".env", ".git", ".venv"} <= ignored


def test_the_image_runs_as_a_numeric_non_root_user():
    users = [args for instruction, args in final() if instruction == "USER"]
    assert users, "the final stage never switches away from root"
    user = users[-1].split(":")[0]
    # Numeric, so Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
    assert user.isdigit() and int(user) != 0
    # And nothing after USER switches back.
    after = final()[[i for i, (ins, _) in enumerate(final()) if ins == "USER"][-1] + 1 :]
    assert all(ins != "USER" for ins, _ in after)


def test_the_base_is_a_pinned_python_312_slim():
    text = (ROOT / "Dockerfile").read_text()
    base = re.search(r"^ARG PYTHON_IMAGE=(\S+)", text, re.M).group(1)
    assert re.fullmatch(r"python:3\.12\.\d+-slim(-\w+)?(@sha256:[0-9a-f]{64})?", base), base
    froms = [args for name, ins in stages() for i, args in ins if i == "FROM"]
    assert all(args.startswith("${PYTHON_IMAGE}") for args in froms)


def test_the_final_stage_installs_no_build_tools():
    runs = " ".join(args for instruction, args in final() if instruction == "RUN")
    assert not BUILD_TOOLS.search(runs), runs
    assert "apt-get install" not in runs and "pip install" not in runs


def test_dependencies_are_installed_before_the_source_is_copied():
    build = stages()[0][1]
    copies = [args for ins, args in build if ins == "COPY"]
    install = next(i for i, (ins, args) in enumerate(build) if ins == "RUN" and "pip install" in args)
    first_copy = next(i for i, (ins, _) in enumerate(build) if ins == "COPY")
    assert copies[0].split()[:-1] == ["requirements/main.lock"] and first_copy < install
    # In the final stage the venv arrives before any source folder.
    order = [args for ins, args in final() if ins == "COPY"]
    assert order[0].startswith("--from=build /opt/venv")


def test_start_scripts_are_strict_and_exec_the_service():
    for script in sorted(ROOT.glob("services/*/start.sh")):
        text = script.read_text()
        assert "set -o errexit -o pipefail -o nounset" in text, script
        last = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
        command = " ".join(last[[i for i, line in enumerate(last) if line.lstrip().startswith("exec ")][-1] :])
        assert command.lstrip().startswith("exec "), f"{script}: signals must reach the service, not the shell"


def test_the_build_installs_the_locked_versions_with_their_hashes():
    # Given the build stage's install step
    build = stages()[0][1]
    run = next(args for ins, args in build if ins == "RUN" and "pip install" in args)
    # Then it installs exactly the lock file, checking every hash, nothing resolved anew
    assert "--require-hashes" in run and "--no-deps" in run and "-r main.lock" in run
