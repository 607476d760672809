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
# Layered on COMPOSE_FILE (`-f docker-compose.yml -f docker-compose.cluster.yml`): the app
# on the three RabbitMQ nodes of the `cluster` profile.
CLUSTER_OVERRIDE_FILE = ROOT / "docker-compose.cluster.yml"
ENV_EXAMPLE = ROOT / ".env.example"
DOCKERFILE = ROOT / "Dockerfile"
# Services built from our image (the others run third-party images).
APP_IMAGE_MARKER = "build"

_VARIABLE = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}|(?P<plain>[A-Za-z_][A-Za-z0-9_]*))"
)


class MissingVariable(Exception):
    pass


class Override:
    """A value tagged `!override` in an override file: it replaces the base's instead of merging."""

    def __init__(self, value):
        self.value = value


class _Reset:
    """`!reset`: the attribute is removed from the merged file."""


class _Loader(yaml.SafeLoader):
    pass


def _construct_override(loader, node):
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)  # `<<` merges inside the tagged mapping
        return Override(loader.construct_mapping(node, deep=True))
    if isinstance(node, yaml.SequenceNode):
        return Override(loader.construct_sequence(node, deep=True))
    return Override(loader.construct_scalar(node))


_Loader.add_constructor("!override", _construct_override)
_Loader.add_constructor("!reset", lambda loader, node: _Reset())


def load(path=COMPOSE_FILE):
    """One compose file; an override file's `!override` / `!reset` values stay marked
    (Override, _Reset) until merge() applies them."""
    return yaml.load(Path(path).read_text(), Loader=_Loader)  # noqa: S506 - a SafeLoader subclass


def merge(base, override):
    """Compose's merge of `-f base -f override` for what our files use: mappings merge key
    by key (environment, depends_on, a service's attributes), sequences are concatenated
    without duplicates (ports, volumes, profiles), scalars are replaced; `!override`
    replaces the base value whole and `!reset` removes it."""
    if isinstance(override, Override):
        return _plain(override.value)
    if isinstance(base, dict) and isinstance(override, dict):
        merged = dict(base)
        for key, value in override.items():
            if isinstance(value, _Reset):
                merged.pop(key, None)
            elif key in merged:
                merged[key] = merge(merged[key], value)
            else:
                merged[key] = _plain(value)
        return merged
    if isinstance(base, list) and isinstance(override, list):
        return base + [item for item in _plain(override) if item not in base]
    return _plain(override)


def _plain(node):
    """`node` with every Override unwrapped and every _Reset dropped."""
    if isinstance(node, Override):
        return _plain(node.value)
    if isinstance(node, dict):
        return {key: _plain(value) for key, value in node.items() if not isinstance(value, _Reset)}
    if isinstance(node, list):
        return [_plain(value) for value in node if not isinstance(value, _Reset)]
    return node


def active_services(doc, profiles=()):
    """The services `docker compose up` starts: those without `profiles:` and those in an
    enabled profile."""
    return {
        name: svc
        for name, svc in doc["services"].items()
        if not svc.get("profiles") or set(svc["profiles"]) & set(profiles)
    }


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
