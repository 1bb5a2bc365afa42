package org.kafkarocketmqbridge.dualread;

import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.rocketmq.common.message.MessageExt;

/**
 * A Kafka record's identity, the same on both sides: on RocketMQ it comes from the
 * provenance properties kafka-rocketmq-bridge stamps on every copy.
 */
public record RecordId(String topic, int partition, long offset, long timestamp) {

    public static RecordId ofKafka(ConsumerRecord<?, ?> record) {
        return new RecordId(record.topic(), record.partition(), record.offset(), Math.max(record.timestamp(), 0));
    }

    /** @throws IllegalArgumentException if the message was not copied by the bridge */
    public static RecordId ofRocketmq(MessageExt message) {
        String timestamp = message.getUserProperty("KAFKA_TIMESTAMP");
        return new RecordId(
                required(message, "KAFKA_TOPIC"),
                Integer.parseInt(required(message, "KAFKA_PARTITION")),
                Long.parseLong(required(message, "KAFKA_OFFSET")),
                timestamp == null ? 0 : Long.parseLong(timestamp));
    }

    private static String required(MessageExt message, String name) {
        String value = message.getUserProperty(name);
        if (value == null) {
            throw new IllegalArgumentException("message " + message.getMsgId() + " has no " + name
                    + " property: it was not copied by kafka-rocketmq-bridge");
        }
        return value;
    }
}
