#!/usr/bin/env python3
"""Create .env from .env.example, generating every secret it leaves empty.

Secrets are the empty variables whose name ends in _PASSWORD, _SECRET_KEY or _COOKIE.
Values use the URL-safe alphabet: they go into DATABASE_URL and BROKER_URL unescaped, and
compose would interpolate a `$` in them. An Erlang cookie (RABBITMQ_ERLANG_COOKIE, shared
by the cluster profile's nodes) is letters and digits only. An existing .env is never overwritten
(secrets already in use by the postgres and rabbitmq volumes would be lost).

    python3 scripts/generate-env.py [--example .env.example] [--output .env]
"""

import argparse
import os
import re
import secrets
import sys

SECRET_NAME = re.compile(r"^[A-Z0-9_]+_(PASSWORD|SECRET_KEY|COOKIE)$")
ASSIGNMENT = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_]*)=(?P<value>.*)$")


def secret_for(name):
    if name.endswith("COOKIE"):
        return secrets.token_hex(32).upper()
    # Django wants 50+ characters for its key (check --deploy, security.W009).
    return secrets.token_urlsafe(50 if name.endswith("SECRET_KEY") else 24)


def render(example_text):
    lines = []
    for line in example_text.splitlines():
        match = ASSIGNMENT.match(line)
        if match and not match["value"] and SECRET_NAME.match(match["name"]):
            line = f"{match['name']}={secret_for(match['name'])}"
        lines.append(line)
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--example", default=".env.example")
    parser.add_argument("--output", default=".env")
    args = parser.parse_args(argv)
    if os.path.exists(args.output):
        print(f"{args.output} exists; leaving it as it is.", file=sys.stderr)
        return 0
    with open(args.example) as handle:
        text = render(handle.read())
    # Created 0600 from the start: the secrets are never readable by others.
    fd = os.open(args.output, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    print(f"Wrote {args.output} with generated secrets.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
