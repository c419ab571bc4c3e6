"""The DLQ review page of the feature API (``/admin/dlq``) in a real headless browser
(Debian's Chromium through its ChromeDriver), against the test stack's own API server, S3
and Kafka: the counts and entries of a day, a replay action that sends the entry's bytes
back to its topic once (a second replay is refused), and a wrong key answered 401."""

from __future__ import annotations

import json
import tempfile
import uuid
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import pytest
from confluent_kafka import TopicPartition
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

from connectors.dlq_review import Filters, entries, purge, replayed
from connectors.kafka_clients import admin, consumer
from core.objectstore import s3_client
from core.settings import StackSettings
from feature_api.settings import Role, dev_key

pytestmark = pytest.mark.stack


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-dev-shm-usage", f"--user-data-dir={tempfile.mkdtemp(prefix='chromium-')}",
    ):  # fmt: skip
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service("/usr/bin/chromedriver"))
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def _file_entry(s: StackSettings, day: str, topic: str, value: bytes) -> None:
    """One entry as the job files it (core/dlq.py; partition columns in the path)."""
    import base64

    entry = {
        "detail": "failed clickstream expectation: unknown_event_type (page test)",
        "expectation": "expect_column_values_to_be_in_set(event_type)",
        "coordinates": {"topic": topic, "partition": 0, "offset": 7, "timestamp": 1},
        "original_key_b64": base64.b64encode(b"page-test").decode(),
        "original_b64": base64.b64encode(value).decode(),
    }
    key = f"dlq/date={day}/source=clickstream/reason=unknown_event_type/part-{uuid.uuid4()}.json"
    s3_client(s).put_object(
        Bucket=s.s3.lake_bucket, Key=key, Body=(json.dumps(entry) + "\n").encode()
    )


def _status(driver: Any, contains: str) -> str:
    WebDriverWait(driver, 30).until(
        expected_conditions.text_to_be_present_in_element((By.ID, "status"), contains)
    )
    return str(driver.find_element(By.ID, "status").text)


def test_the_review_page_lists_and_replays_once(
    supervisor: object, stack_settings: StackSettings, browser: Any
) -> None:
    from confluent_kafka.admin import NewTopic

    s = stack_settings
    topic = f"_test-dlq-page-{uuid.uuid4().hex[:8]}"
    kafka = admin(s)
    kafka.create_topics([NewTopic(topic, 1, 1)])[topic].result(30)
    day = f"2024-{uuid.uuid4().int % 12 + 1:02d}-{uuid.uuid4().int % 28 + 1:02d}"
    mark = uuid.uuid4().hex
    value = json.dumps({"event_type": "dance", "page": f"/{mark}"}).encode()
    _file_entry(s, day, topic, value)

    browser.get(f"http://{s.host}:{s.ports.api}/admin/dlq")
    assert "Dead-letter queue review" in browser.title + browser.page_source
    browser.find_element(By.ID, "key").send_keys(dev_key(Role.ADMIN))
    for field, text in (("date", day), ("source", "clickstream"), ("reason", "unknown_event_type")):
        browser.find_element(By.ID, field).send_keys(text)
    browser.find_element(By.ID, "load").click()
    assert _status(browser, "entries") == "1 entries; 1 shown"
    counts = browser.find_element(By.ID, "counts").text
    assert f"{day} clickstream unknown_event_type" in counts
    assert "expect_column_values_to_be_in_set(event_type)" in counts
    assert mark in browser.find_element(By.ID, "entries").text

    browser.find_element(By.ID, "replay").click()
    browser.switch_to.alert.accept()
    assert _status(browser, "replayed") == "replayed 1, refused 0"
    (entry,) = entries(s, Filters(day, "clickstream", "unknown_event_type"))
    record = replayed(s, entry)
    assert record is not None
    c = consumer(s, f"_test-{mark}")
    c.assign([TopicPartition(topic, 0, int(record["to"]["offset"]))])
    message = c.poll(30)
    c.close()
    assert message is not None and message.value() == value and message.key() == b"page-test"
    assert "->" in browser.find_element(By.ID, "entries").text  # shown as replayed

    browser.find_element(By.ID, "replay").click()
    browser.switch_to.alert.accept()
    assert _status(browser, "refused 1").startswith("replayed 0, refused 1")

    browser.find_element(By.ID, "key").clear()
    browser.find_element(By.ID, "key").send_keys("not-a-key")
    browser.find_element(By.ID, "load").click()
    assert _status(browser, "401").startswith("401")
    kafka.delete_topics([topic])[topic].result(30)
    next_day = (date.fromisoformat(day) + timedelta(days=1)).isoformat()
    assert purge(s, Filters(day, "clickstream", "unknown_event_type"), before=next_day) == 1
