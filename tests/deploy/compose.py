"""Read docker-compose.yml the way Docker Compose does, without a Docker engine.

`load()` parses the YAML (anchors and `<<` merges resolved by PyYAML); `interpolate()`
applies compose's `${VAR}` rules with the values of an env file, so tests check the
file compose would really run.
"""

import ast
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
DOCKERFILE = ROOT / "Dockerfile"
# Services built from our image (the others run third-party images).
APP_IMAGE_MARKER = "build"

_VARIABLE = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}|(?P<plain>[A-Za-z_][A-Za-z0-9_]*))"
)


class MissingVariable(Exception):
    pass


def load(path=COMPOSE_FILE):
    return yaml.safe_load(Path(path).read_text())


def read_env_file(path):
    values = {}
    for line in Path(path).read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        name, value = line.split("=", 1)
        values[name.strip()] = value.strip()
    return values


def _substitute(text, env):
    def replace(match):
        if match["escaped"]:
            return "$"
        name = match["braced"] or match["plain"]
        op, arg = match["op"], match["arg"]
        value = env.get(name)
        if op in (":-", "-"):
            unset = value is None or (op == ":-" and value == "")
            return arg if unset else value
        if op in (":?", "?"):
            if value is None or (op == ":?" and value == ""):
                raise MissingVariable(f"{name}: {arg}")
            return value
        if op in (":+", "+"):
            set_ = value is not None and (op == "+" or value != "")
            return arg if set_ else ""
        return value or ""

    return _VARIABLE.sub(replace, text)


def interpolate(node, env):
    """The compose document with every ${...} resolved against `env`."""
    if isinstance(node, dict):
        return {key: interpolate(value, env) for key, value in node.items()}
    if isinstance(node, list):
        return [interpolate(value, env) for value in node]
    if isinstance(node, str):
        return _substitute(node, env)
    return node


def variables_used(node, found=None):
    """Names compose interpolates anywhere in the file."""
    found = set() if found is None else found
    if isinstance(node, dict):
        for value in node.values():
            variables_used(value, found)
    elif isinstance(node, list):
        for value in node:
            variables_used(value, found)
    elif isinstance(node, str):
        for match in _VARIABLE.finditer(node):
            if not match["escaped"]:
                found.add(match["braced"] or match["plain"])
    return found


def app_services(compose):
    return {name: svc for name, svc in compose["services"].items() if APP_IMAGE_MARKER in svc}


def environment(service):
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, None) for item in env)
    return {key: (None if value is None else str(value)) for key, value in env.items()}


def duration_seconds(value):
    """Compose durations: 90s, 1m30s, 2m, 500ms, 1h."""
    total = 0.0
    for amount, unit in re.findall(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)", str(value)):
        total += float(amount) * {"h": 3600, "m": 60, "s": 1, "ms": 0.001, "us": 0.000001}[unit]
    return total


# --- what the code reads ----------------------------------------------------------

_ENV_CALLS = {"str", "bool", "int", "float", "list", "db_url", "url", "json", "tuple", "dict", "path", "cache_url"}


def python_env_reads(path):
    """Environment variables a Python file reads: django-environ's env.X("NAME"),
    env("NAME"), os.environ.get / os.environ[...] / os.getenv."""
    tree = ast.parse(Path(path).read_text())
    names = set()
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            func = node.func
            dotted = ast.unparse(func)
            if (
                (
                    isinstance(func, ast.Attribute)
                    and isinstance(func.value, ast.Name)
                    and func.value.id == "env"
                    and func.attr in _ENV_CALLS
                )
                or dotted == "env"
                or dotted in ("os.environ.get", "os.getenv", "environ.get", "getenv", "os.environ.setdefault")
            ):
                names.add(node.args[0].value)
        if (
            isinstance(node, ast.Subscript)
            and ast.unparse(node.value) == "os.environ"
            and isinstance(node.slice, ast.Constant)
        ):
            names.add(node.slice.value)
    return names


def shell_env_reads(path):
    """Variables a start script reads but does not assign itself."""
    text = Path(path).read_text()
    used = set(re.findall(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)", text))
    assigned = set(re.findall(r"^\s*(?:export\s+|local\s+)?([A-Za-z_][A-Za-z0-9_]*)=", text, re.M))
    return used - assigned - {"0", "1", "@", "#", "?"}


def script_of(service):
    """The start script a service's command runs (services/x/start.sh), if any."""
    command = service.get("command") or []
    if isinstance(command, str):
        command = command.split()
    return next((ROOT / part for part in command if part.endswith(".sh")), None)


def dockerfile_stages(path=DOCKERFILE):
    """[(stage name, [(instruction, arguments)])] with line continuations joined."""
    text = re.sub(r"\\\n", " ", Path(path).read_text())
    stages = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, args = line.partition(" ")
        instruction = instruction.upper()
        if instruction == "FROM":
            name = args.split(" AS ")[-1].strip() if " AS " in args.upper().replace(" as ", " AS ") else args
            stages.append((name, []))
        if stages:
            stages[-1][1].append((instruction, args.strip()))
    return stages
