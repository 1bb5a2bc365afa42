"""The dual-read ledger for Python consumers (docs/dual-read.md, format version 1).

Each consumer records, for every record it handled, which Kafka record it was
and the SHA-256 of the result its logic produced; `kafka-rocketmq-bridge
compare-results` compares the two sides' ledgers. Flush the ledger before
committing the consumer's offsets, and do not commit if it raises.
"""

import hashlib
import json
import time

FORMAT_VERSION = 1
MAX_ENTRIES = 500
LINGER_SECONDS = 0.2


def ledger_topic(group, side):
    return f"dual-read.{group}.{side}"


def result_digest(result: bytes) -> str:
    return hashlib.sha256(result).hexdigest()


def record_id_of_kafka(message):
    """(topic, partition, offset, timestamp) of a confluent_kafka Message."""
    _, timestamp = message.timestamp()
    return message.topic(), message.partition(), message.offset(), max(timestamp, 0)


def record_id_of_rocketmq(properties):
    """The same identity for a RocketMQ copy, from the properties the bridge stamped."""
    for name in ("KAFKA_TOPIC", "KAFKA_PARTITION", "KAFKA_OFFSET"):
        if name not in properties:
            raise ValueError(f"no {name} property: the message was not copied by kafka-rocketmq-bridge")
    return (properties["KAFKA_TOPIC"], int(properties["KAFKA_PARTITION"]),
            int(properties["KAFKA_OFFSET"]), int(properties.get("KAFKA_TIMESTAMP", 0)))


def entry(side, group, record_id, result=None, reason=None) -> str:
    """One ledger line: processed with `result` (bytes), or failed with `reason`."""
    topic, partition, offset, timestamp = record_id
    line = {"v": FORMAT_VERSION, "side": side, "group": group, "topic": topic,
            "partition": partition, "offset": offset, "timestamp": timestamp}
    if result is not None:
        line.update(status="processed", result=result_digest(result))
    else:
        line.update(status="failed", reason=reason or "")
    return json.dumps(line, separators=(",", ":"))


class LedgerError(Exception):
    """Entries were not delivered: do not commit the consumer's offsets."""


class Ledger:
    """Batches entries per source partition into a confluent_kafka Producer."""

    def __init__(self, producer, group, side, topic=None):
        self.producer, self.group, self.side = producer, group, side
        self.topic = topic or ledger_topic(group, side)
        self.batches = {}
        self.failures = []

    def processed(self, record_id, result: bytes):
        self._append(record_id, entry(self.side, self.group, record_id, result=result))

    def failed(self, record_id, reason: str):
        self._append(record_id, entry(self.side, self.group, record_id, reason=reason))

    def flush(self, timeout=30.0):
        for key in list(self.batches):
            self._send(key)
        if self.producer.flush(timeout) > 0:
            raise LedgerError(f"ledger {self.topic}: not every record was acknowledged within {timeout}s")
        if self.failures:
            failures, self.failures = self.failures, []
            raise LedgerError(f"ledger {self.topic}: {len(failures)} records not delivered: {failures[0]}")

    def _append(self, record_id, line):
        key = f"{record_id[0]}/{record_id[1]}"
        started, lines = self.batches.setdefault(key, (time.monotonic(), []))
        lines.append(line)
        now = time.monotonic()
        for due in [k for k, (t, l) in self.batches.items() if len(l) >= MAX_ENTRIES or now - t >= LINGER_SECONDS]:
            self._send(due)

    def _send(self, key):
        _, lines = self.batches.pop(key)
        value = ("\n".join(lines) + "\n").encode()
        while True:
            try:
                self.producer.produce(self.topic, key=key.encode(), value=value, on_delivery=self._delivered)
                break
            except BufferError:
                self.producer.poll(0.05)
        self.producer.poll(0)

    def _delivered(self, error, _message):
        if error is not None:
            self.failures.append(str(error))
