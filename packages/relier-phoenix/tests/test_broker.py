"""Our doorbell message has exactly the shape kombu's Redis transport publishes."""

from __future__ import annotations

import base64
import json
from typing import Any

from kombu.transport import virtual

from relier.phoenix.broker import build_message


def kombu_message() -> dict[str, Any]:
    """What kombu's Redis transport pushes for a Celery protocol-2 task, built by kombu."""
    from celery import Celery

    app = Celery("shape", set_as_current=False)
    app.conf.task_serializer = "json"
    task_message = app.amqp.as_task_v2("tid", "pkg.task", args=(), kwargs={})
    channel = virtual.Channel.__new__(virtual.Channel)
    channel.body_encoding = "base64"
    channel.codecs = virtual.Channel.codecs
    channel._delivery_tags = iter(range(10**6))
    body = json.dumps(task_message.body).encode()
    message = channel.prepare_message(body, 0, "application/json", "utf-8",
                                      task_message.headers, task_message.properties)
    channel._inplace_augment_message(message, "", "default")
    return message


def test_same_fields_as_kombu() -> None:
    ours = json.loads(build_message("tid", "pkg.task", "default"))
    theirs = kombu_message()
    assert set(ours) == set(theirs)
    # kombu's Producer.publish adds delivery_mode on top of what the channel prepares.
    assert set(ours["properties"]) == {*theirs["properties"], "delivery_mode"}
    assert set(theirs["headers"]) <= set(ours["headers"])
    assert ours["properties"]["delivery_info"] == {"exchange": "", "routing_key": "default"}
    assert ours["properties"]["body_encoding"] == "base64"
    args, kwargs, embed = json.loads(base64.b64decode(ours["body"]))
    assert (args, kwargs) == ([], {})
    assert set(embed) == {"callbacks", "errbacks", "chain", "chord"}
    assert ours["headers"]["rl"] == 1
    assert ours["headers"]["id"] == ours["properties"]["correlation_id"] == "tid"


def test_idempotency_key_travels_in_a_header_and_tags_are_unique() -> None:
    a = json.loads(build_message("t", "n", "q", idem_key="rl:i:n:abc"))
    b = json.loads(build_message("t", "n", "q"))
    assert a["headers"]["rl_idem"] == "rl:i:n:abc"
    assert "rl_idem" not in b["headers"]
    assert a["properties"]["delivery_tag"] != b["properties"]["delivery_tag"]


def test_sequence_header_is_stamped_once_and_only_in_the_header() -> None:
    """The claim recognises the message a record waits for by its stamped sequence."""
    from relier.phoenix.broker import stamp_seq

    tricky = 'n"rl_seq":0,'  # a task name that spells the placeholder is escaped in JSON
    for message in (build_message("t", tricky, "q"),
                    build_message("t", tricky, "q", idem_key="rl:i:n:abc", traceparent="tp")):
        assert json.loads(message)["headers"]["rl_seq"] == 0
        stamped = json.loads(stamp_seq(message, 42))
        assert stamped["headers"]["rl_seq"] == 42
        assert stamped["headers"]["task"] == tricky
        assert json.loads(stamp_seq(stamp_seq(message, 42), 7))["headers"]["rl_seq"] == 42
