"""A Kafka-side dual-read consumer in Python, with the same toy logic as the
Java example (clients/java): each record's result is `key:amount`, its
contribution to the total of the `amount` header per key.

    python example_consumer.py --bootstrap B --topic T --group G --records N

The RocketMQ side of the same group can be any other language writing the same
format (the tests pair it with the Java example): both write the same bytes
for the same record, so compare-results says MATCH.
"""

import argparse
import sys
import time

from confluent_kafka import Consumer, Producer

import dual_read


def logic(key, headers, totals):
    amounts = [value for name, value in (headers or []) if name == "amount"]
    amount = int(amounts[-1]) if amounts and amounts[-1] is not None else 0
    name = (key or b"").decode()
    totals[name] = totals.get(name, 0) + amount
    return f"{name}:{amount}".encode()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for flag in ("--bootstrap", "--topic", "--group"):
        parser.add_argument(flag, required=True)
    parser.add_argument("--records", type=int, required=True)
    parser.add_argument("--deadline", type=float, default=180.0)
    args = parser.parse_args()
    consumer = Consumer({"bootstrap.servers": args.bootstrap, "group.id": args.group,
                         "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    producer = Producer({"bootstrap.servers": args.bootstrap, "enable.idempotence": True, "linger.ms": 20})
    ledger = dual_read.Ledger(producer, args.group, "kafka")
    consumer.subscribe([args.topic])
    totals, handled, deadline = {}, 0, time.monotonic() + args.deadline
    try:
        while handled < args.records and time.monotonic() < deadline:
            messages = consumer.consume(num_messages=500, timeout=0.5)
            for message in messages:
                if message.error():
                    raise SystemExit(f"error: {message.error()}")
                result = logic(message.key(), message.headers(), totals)
                ledger.processed(dual_read.record_id_of_kafka(message), result)
                handled += 1
            if messages:
                ledger.flush()
                consumer.commit(asynchronous=False)
    finally:
        consumer.close()
    print(f"kafka side: handled {handled} records; totals per key {dict(sorted(totals.items()))}")
    if handled < args.records:
        print(f"error: only {handled} of {args.records} records arrived", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
