"""Unit tests of the format, without brokers: python -m unittest test_dual_read"""

import json
import unittest

import dual_read


class FormatTest(unittest.TestCase):
    def test_an_entry_has_every_field_of_version_1(self):
        line = json.loads(dual_read.entry("rocketmq", "billing", ("orders", 3, 41, 1764633600000), result=b"abc"))
        self.assertEqual(line, {
            "v": 1, "side": "rocketmq", "group": "billing", "topic": "orders", "partition": 3,
            "offset": 41, "timestamp": 1764633600000, "status": "processed",
            "result": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        })

    def test_a_failure_carries_its_reason(self):
        line = json.loads(dual_read.entry("kafka", "g", ("t", 0, 1, 0), reason='bad "header"'))
        self.assertEqual((line["status"], line["reason"]), ("failed", 'bad "header"'))
        self.assertNotIn("result", line)

    def test_a_copy_is_named_by_its_provenance(self):
        properties = {"KAFKA_TOPIC": "orders", "KAFKA_PARTITION": "2", "KAFKA_OFFSET": "77",
                      "KAFKA_TIMESTAMP": "1764633600000", "amount": "5"}
        self.assertEqual(dual_read.record_id_of_rocketmq(properties), ("orders", 2, 77, 1764633600000))
        with self.assertRaises(ValueError):
            dual_read.record_id_of_rocketmq({"KAFKA_TOPIC": "orders"})


if __name__ == "__main__":
    unittest.main()
