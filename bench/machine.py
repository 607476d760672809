"""The machine's limit: bare pika, no framework, a durable queue, small persistent messages.

Publisher: publisher confirms, `confirm_batch` messages in flight, then wait for their
confirms (pika's asynchronous SelectConnection; a BlockingChannel would wait for every
confirm one by one). Consumer: BlockingConnection, prefetch, one manual ack per message.
"""

import time

import pika

QUEUE = "bench.machine"


def _params(url):
    return pika.URLParameters(url)


def declare(url):
    with pika.BlockingConnection(_params(url)) as conn:
        channel = conn.channel()
        channel.queue_declare(QUEUE, durable=True)
        channel.queue_purge(QUEUE)


def publish(url, count, batch, body):
    """Publish `count` persistent messages with confirms in batches; return seconds taken."""
    state = {"sent": 0, "confirmed": 0, "start": None, "end": None, "error": None}
    props = pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent)

    def send_batch(channel):
        upto = min(count, state["sent"] + batch)
        while state["sent"] < upto:
            channel.basic_publish("", QUEUE, body, props)
            state["sent"] += 1

    def on_confirm(frame, channel):
        ack = frame.method
        if isinstance(ack, pika.spec.Basic.Nack):
            state["error"] = "broker nacked a message"
        state["confirmed"] = ack.delivery_tag if ack.multiple else state["confirmed"] + 1
        if state["confirmed"] >= count:
            state["end"] = time.perf_counter()
            channel.connection.close()
        elif state["confirmed"] >= state["sent"]:
            send_batch(channel)

    def on_channel(channel):
        def confirmed_mode(_frame):
            state["start"] = time.perf_counter()
            send_batch(channel)

        channel.confirm_delivery(lambda frame: on_confirm(frame, channel), callback=confirmed_mode)

    conn = pika.SelectConnection(
        _params(url),
        on_open_callback=lambda c: c.channel(on_open_callback=on_channel),
        on_open_error_callback=lambda c, err: state.update(error=str(err)) or c.ioloop.stop(),
        on_close_callback=lambda c, reason: c.ioloop.stop(),
    )
    conn.ioloop.start()
    if state["error"] or state["end"] is None:
        raise RuntimeError(f"publisher failed: {state['error']} ({state['confirmed']}/{count} confirmed)")
    return state["end"] - state["start"]


def consume(url, count, prefetch):
    """Consume and ack `count` messages; return (seconds, CPU seconds) from the first delivery to the last ack."""
    with pika.BlockingConnection(_params(url)) as conn:
        channel = conn.channel()
        channel.basic_qos(prefetch_count=prefetch)
        state = {"n": 0, "start": None}

        def on_message(ch, method, _props, _body):
            if state["start"] is None:
                state["start"], state["cpu"] = time.perf_counter(), time.process_time()
            ch.basic_ack(method.delivery_tag)
            state["n"] += 1
            if state["n"] >= count:
                ch.stop_consuming()

        channel.basic_consume(QUEUE, on_message)
        channel.start_consuming()
        return time.perf_counter() - state["start"], time.process_time() - state["cpu"]


def run(url, cfg):
    count = cfg.n(cfg.machine_messages, 200)
    body = b"x" * cfg.message_bytes
    declare(url)
    published = publish(url, count, cfg.confirm_batch, body)
    consumed, cpu = consume(url, count, cfg.consumer_prefetch)
    return {
        "publish": count / published,
        "consume": count / consumed,
        "consume_cpu_ms": 1000 * cpu / count,
        "messages": count,
    }
