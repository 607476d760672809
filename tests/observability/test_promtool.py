"""deploy/prometheus/ is valid for Prometheus, and each alert fires exactly when it should."""

import subprocess

from tests.observability.support import PROMETHEUS_DIR, require_binary


def promtool(*args):
    return subprocess.run(
        [require_binary("promtool"), *args], cwd=PROMETHEUS_DIR, capture_output=True, text=True, timeout=120
    )


def test_prometheus_config_is_valid():
    # Given the deployed configuration (it names the rule files too)
    # When promtool checks it
    result = promtool("check", "config", "prometheus.yml")
    # Then it is valid, rules included
    assert result.returncode == 0, result.stdout + result.stderr


def test_alert_rules_are_valid():
    result = promtool(
        "check", "rules", *sorted(str(p.relative_to(PROMETHEUS_DIR)) for p in PROMETHEUS_DIR.glob("rules/*.yml"))
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_alert_unit_tests_pass():
    # Given promtool unit tests: each alert fires when it should and stays quiet when not
    tests = sorted(str(p.relative_to(PROMETHEUS_DIR)) for p in PROMETHEUS_DIR.glob("tests/*.yml"))
    assert tests
    # When promtool runs them; Then every one passes
    result = promtool("test", "rules", *tests)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_unit_test():
    import yaml

    rules = yaml.safe_load((PROMETHEUS_DIR / "rules" / "conveyor.yml").read_text())
    alerts = {rule["alert"] for group in rules["groups"] for rule in group["rules"] if "alert" in rule}
    tested = set()
    for path in PROMETHEUS_DIR.glob("tests/*.yml"):
        for case in yaml.safe_load(path.read_text())["tests"]:
            tested |= {check["alertname"] for check in case.get("alert_rule_test", []) if check.get("exp_alerts")}
    assert alerts - tested == set(), "alerts never shown to fire in a promtool test"


def test_every_alert_tells_on_call_what_to_do():
    import yaml

    rules = yaml.safe_load((PROMETHEUS_DIR / "rules" / "conveyor.yml").read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            assert rule["annotations"]["summary"] and len(rule["annotations"]["description"]) > 60, rule["alert"]
            assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
