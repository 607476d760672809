"""Conveyor on a three-node RabbitMQ cluster with quorum queues: nodes die, nothing is lost.

Web, two workers and the relay run as processes with BROKER_URL naming all three nodes
(they connect to the first that answers) and CONVEYOR_QUEUE_TYPE=quorum. Figures (failover
times) are printed; run with -s to see them. They are not asserted.
"""

import re
import time
from datetime import datetime

import pytest
from django.utils import timezone

from conveyor.core.models import OutboxEntry, TaskRecord, TaskStatus
from tests.cluster.support import Stream, assert_each_ran_once, wait_all_successful
from tests.support.processes import http, wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.e2e, pytest.mark.integration]


def start(start_system, cluster, cluster_env, vhost, **env):
    system = start_system(workers=2, env={**cluster_env, **env})
    # The workers declared the queues at boot: the work queue has a leader.
    cluster.wait_leader("default", vhost=vhost, timeout=30)
    return system


def submit(system, token, i):
    status, body, _ = http("POST", f"{system.base_url}/api/v1/tasks", {"task": "demo.tasks.add", "args": [i, i]}, token)
    assert status == 202, body
    return body["id"]


FAILURE = re.compile(r"connection error|Publishing again|did not confirm|Connection refused|StreamLost")
STAMP = re.compile(r"^\[?(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})")


def first_failures(system, since):
    """Per service, seconds from `since` (time.time()) to the first logged broker failure after it."""
    found = {}
    for name, service in system.services.items():
        for line in service.output().splitlines():
            stamp = STAMP.match(line)
            if stamp and FAILURE.search(line):
                at = datetime.strptime(stamp.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
                if at >= since - 1:
                    found[name] = round(at - since, 2)
                    break
    return found


def all_running(system):
    return {name: service.proc.poll() for name, service in system.services.items() if service.proc.poll() is not None}


def test_killing_the_queue_leader_mid_stream_loses_nothing_and_runs_nothing_twice(
    whole_cluster, cluster_vhost, cluster_env, start_system, token
):
    cluster = whole_cluster
    # Given the system on the cluster, and tasks streaming in over HTTP (20/s for 20 s)
    system = start(start_system, cluster, cluster_env, cluster_vhost)
    leader = cluster.leader("default", vhost=cluster_vhost)
    stream = Stream(system.base_url, token, rate=20).start()
    time.sleep(7)
    # When the node leading the `default` queue is SIGKILLed mid-stream
    killed_at, killed_wall, killed_epoch = time.monotonic(), timezone.now(), time.time()
    cluster.kill_node(leader)
    new_leader = cluster.wait_leader("default", vhost=cluster_vhost, other_than=leader, timeout=30)
    elected_in = time.monotonic() - killed_at
    time.sleep(13)
    stream.stop()
    accepted = stream.accepted
    # Then every accepted task ends SUCCESSFUL, once, with nobody restarting anything
    wait_all_successful(accepted, timeout=120)
    assert_each_ran_once(accepted)
    assert not all_running(system), system.logs()
    assert len(accepted) > 300
    # (figures) how long the failover took, seen from the client and the records
    after = TaskRecord.objects.filter(id__in=list(accepted), enqueued_at__gt=killed_wall)
    first_done = min(after.values_list("finished_at", flat=True))
    refusals = stream.refusals()
    first_202_after_refusal = None
    if refusals:
        last_refusal = refusals[-1][0]
        first_202_after_refusal = min(at for at, status, _, _ in stream.answers if status == 202 and at > last_refusal)
        first_202_after_refusal -= refusals[0][0]
    finished = sorted(TaskRecord.objects.filter(id__in=list(accepted)).values_list("finished_at", flat=True))
    gaps = [(b - a).total_seconds() for a, b in zip(finished, finished[1:], strict=False)]
    print(
        f"\nFAILOVER node {leader} (leader of default) SIGKILLed; new leader node {new_leader} seen after "
        f"{elected_in:.2f} s; {len(accepted)} tasks accepted, {len(refusals)} refused {set(s for _, s in refusals)}; "
        f"first task submitted after the kill SUCCESSFUL {(first_done - killed_wall).total_seconds():.2f} s after it; "
        f"longest pause between two finishes {max(gaps):.2f} s; "
        f"first 202 after the first refusal: {first_202_after_refusal and round(first_202_after_refusal, 2)} s; "
        f"first broker failure logged, s after the kill: {first_failures(system, killed_epoch)}"
    )


def test_a_killed_node_restarted_rejoins_and_the_queue_replicas_are_whole_again(
    whole_cluster, cluster_vhost, cluster_env, start_system, token
):
    cluster = whole_cluster
    # Given the system on the cluster, and the node leading `default` killed
    system = start(start_system, cluster, cluster_env, cluster_vhost)
    leader = cluster.leader("default", vhost=cluster_vhost)
    cluster.kill_node(leader)
    cluster.wait_leader("default", vhost=cluster_vhost, other_than=leader, timeout=30)
    assert len(cluster.queues(cluster_vhost)["default"]["online"]) == 2
    # When it is started again
    began = time.monotonic()
    cluster.start_node(leader)
    # Then it is back in the cluster, and every queue has its three members online again
    cluster.wait_clustered(timeout=60)
    for queue in ("default", "default.DQ", "default.XQ"):
        row = cluster.wait_members_online(queue, vhost=cluster_vhost, timeout=60, count=3)
        assert sorted(row["online"]) == sorted(cluster.names), row
    print(f"\nREJOIN node {leader} restarted, replicas whole after {time.monotonic() - began:.1f} s")
    # And tasks still run
    task_id = submit(system, token, 21)
    wait_all_successful([task_id], timeout=60)


def test_without_a_majority_submissions_are_accepted_and_complete_once_a_majority_is_back(
    whole_cluster, cluster_vhost, cluster_env, start_system, token
):
    cluster = whole_cluster
    # Given the system on the cluster with one node down
    system = start(start_system, cluster, cluster_env, cluster_vhost)
    leader = cluster.leader("default", vhost=cluster_vhost)
    first, second = leader, (leader + 1) % 3
    survivor = 3 - first - second
    cluster.stop_node(first)
    warmup = [submit(system, token, i) for i in range(5)]
    wait_all_successful(warmup, timeout=60)
    # When a second node stops: the queues lose their majority
    cluster.stop_node(second)
    assert cluster.running() == [survivor]
    # (the lone survivor's list_queues may leave out a queue it cannot reach a leader for)
    row = cluster.queues(cluster_vhost, node=survivor).get("default")
    assert row is None or len(row["online"]) <= len(row["members"]) // 2, row
    # Then submissions still answer 202, and wait in the outbox
    ids = {submit(system, token, i): i for i in range(30)}
    time.sleep(5)
    waiting = OutboxEntry.objects.count()
    assert waiting > 0
    assert TaskRecord.objects.filter(id__in=list(ids), status=TaskStatus.SUCCESSFUL).count() == 0
    # And once a second node is back (a majority), every task completes, once
    began = time.monotonic()
    cluster.start_node(second)
    wait_all_successful(ids, timeout=150)
    print(
        f"\nMAJORITY {waiting} outbox entries while 2 of 3 nodes were down; all 30 tasks SUCCESSFUL "
        f"{time.monotonic() - began:.1f} s after the second node was started"
    )
    assert_each_ran_once(ids)
    wait_for(lambda: OutboxEntry.objects.count() == 0, 60, "the outbox to drain")
    assert not all_running(system), system.logs()
