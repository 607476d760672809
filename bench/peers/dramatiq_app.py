"""Bare Dramatiq: its default middleware, one no-op actor. Run by `dramatiq bench.peers.dramatiq_app`."""

import os

import dramatiq
from dramatiq.brokers.rabbitmq import RabbitmqBroker

QUEUE = "bench"

broker = RabbitmqBroker(url=os.environ["BENCH_DRAMATIQ_URL"])
dramatiq.set_broker(broker)


@dramatiq.actor(queue_name=QUEUE, actor_name="noop")
def noop():
    pass
