"""The web service counts requests by URL pattern and serves /metrics to any Host."""

import pytest
from prometheus_client import REGISTRY


@pytest.fixture(autouse=True)
def _single_process(monkeypatch):
    # These tests read this process's registry; a leftover multiprocess folder from
    # another test (dramatiq's Prometheus middleware sets one at boot) must not apply.
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)


def requests_counted(**labels):
    return REGISTRY.get_sample_value("conveyor_http_requests_total", labels) or 0


@pytest.mark.django_db
def test_requests_are_labelled_by_route_not_by_path(api):
    # Given two lookups of different task ids
    before = requests_counted(view="api/v1/tasks/<task_id>", method="GET", status="404")
    # When the web service answers them
    api.get("/api/v1/tasks/00000000-0000-0000-0000-000000000001")
    api.get("/api/v1/tasks/00000000-0000-0000-0000-000000000002")
    # Then both count under the one route, never under their raw paths
    assert requests_counted(view="api/v1/tasks/<task_id>", method="GET", status="404") == before + 2


def test_unknown_urls_share_one_label(client):
    before = requests_counted(view="<unmatched>", method="GET", status="404")
    client.get("/no/such/page/1")
    client.get("/no/such/page/2")
    assert requests_counted(view="<unmatched>", method="GET", status="404") == before + 2


def test_an_unknown_method_does_not_create_a_series(client):
    before = requests_counted(view="healthz", method="other", status="200")
    client.generic("BREW", "/healthz")
    assert requests_counted(view="healthz", method="other", status="200") == before + 1


@pytest.mark.django_db
@pytest.mark.integration
def test_metrics_answers_a_scrape_by_ip_address(client):
    # Given Prometheus scraping a replica by its IP (DNS service discovery), a Host
    # that DJANGO_ALLOWED_HOSTS does not list
    # When it asks for /metrics
    response = client.get("/metrics", HTTP_HOST="10.1.2.3:8000")
    # Then it gets the metrics, queue depth and outbox included, not a 400
    assert response.status_code == 200
    body = response.content.decode()
    assert "conveyor_http_requests_total" in body
    assert "conveyor_outbox_entries" in body
    assert "conveyor_queue_collector_up 1.0" in body


@pytest.mark.django_db
def test_other_paths_still_check_the_host(client):
    response = client.get("/healthz", HTTP_HOST="10.1.2.3:8000")
    assert response.status_code == 400
