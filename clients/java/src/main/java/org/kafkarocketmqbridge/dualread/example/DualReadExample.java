package org.kafkarocketmqbridge.dualread.example;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.TreeMap;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.apache.rocketmq.client.consumer.DefaultLitePullConsumer;
import org.apache.rocketmq.common.consumer.ConsumeFromWhere;
import org.apache.rocketmq.common.message.MessageExt;
import org.kafkarocketmqbridge.dualread.DualReadLedger;
import org.kafkarocketmqbridge.dualread.KafkaView;
import org.kafkarocketmqbridge.dualread.RecordId;
import org.kafkarocketmqbridge.dualread.Side;

/**
 * A dual-read consumer with toy logic, totals of the {@code amount} header per key, run
 * once per side (scripts/demo.sh --dual-read). Each record's result is {@code key:amount},
 * its contribution to the total.
 *
 * <pre>
 * produce --bootstrap B --topic T --records N [--days-ago D]
 * consume --side kafka    --bootstrap B --topic T --group G --records N
 * consume --side rocketmq --bootstrap B --name-server NS --rocketmq-topic R --group G --records N [--bug]
 * </pre>
 *
 * {@code --bug} reads {@code amount} from the RocketMQ message's plain property, as a
 * hurried port would, instead of through {@link KafkaView}: a record whose {@code amount}
 * header is repeated carries the later ones in {@code KAFKA_HEADERS_B64}, so its result
 * differs.
 */
public final class DualReadExample {
    private static final Duration DEADLINE = Duration.ofMinutes(3);

    public static void main(String[] args) throws Exception {
        Map<String, String> options = options(args);
        switch (args.length > 0 ? args[0] : "") {
            case "produce" -> produce(options);
            case "consume" -> {
                if ("rocketmq".equals(options.get("side"))) {
                    consumeRocketmq(options);
                } else {
                    consumeKafka(options);
                }
            }
            default -> {
                System.err.println("usage: DualReadExample produce|consume --option value ...");
                System.exit(2);
            }
        }
    }

    private static Map<String, String> options(String[] args) {
        Map<String, String> options = new HashMap<>();
        for (int i = 1; i < args.length; i++) {
            String name = args[i].replaceFirst("^--", "");
            boolean flag = i + 1 >= args.length || args[i + 1].startsWith("--");
            options.put(name, flag ? "true" : args[++i]);
        }
        return options;
    }

    private static String required(Map<String, String> options, String name) {
        String value = options.get(name);
        if (value == null) {
            System.err.println("error: --" + name + " is required");
            System.exit(2);
        }
        return value;
    }

    /**
     * N records over 10 keys; the middle one carries {@code amount} twice (Kafka's lastHeader
     * wins). With {@code --days-ago D}, stamped across that day (UTC), so the day is over and
     * compare-results can judge it.
     */
    private static void produce(Map<String, String> options) throws Exception {
        Properties settings = new Properties();
        settings.setProperty("bootstrap.servers", required(options, "bootstrap"));
        settings.setProperty("enable.idempotence", "true");
        int records = Integer.parseInt(required(options, "records"));
        String topic = required(options, "topic");
        long dayMillis = Duration.ofDays(1).toMillis();
        Long daysAgo = options.containsKey("days-ago") ? Long.parseLong(options.get("days-ago")) : null;
        long dayStart = System.currentTimeMillis() / dayMillis * dayMillis - (daysAgo == null ? 0 : daysAgo * dayMillis);
        try (KafkaProducer<byte[], byte[]> producer =
                new KafkaProducer<>(settings, new ByteArraySerializer(), new ByteArraySerializer())) {
            for (int i = 0; i < records; i++) {
                Long timestamp = daysAgo == null ? null : dayStart + i * (dayMillis / records);
                ProducerRecord<byte[], byte[]> record = new ProducerRecord<>(topic, null, timestamp,
                        ("customer-" + (i % 10)).getBytes(StandardCharsets.UTF_8),
                        ("order " + i).getBytes(StandardCharsets.UTF_8));
                if (i == records / 2) {
                    record.headers().add("amount", "1".getBytes(StandardCharsets.UTF_8));
                }
                record.headers().add("amount", Integer.toString(10 + i % 90).getBytes(StandardCharsets.UTF_8));
                producer.send(record);
            }
            producer.flush();
        }
        System.out.println("produced " + records + " records to " + topic);
    }

    /** The toy logic: this record's contribution to its key's total. */
    private static String logic(byte[] key, byte[] amount, Map<String, Long> totals) {
        String name = key == null ? "" : new String(key, StandardCharsets.UTF_8);
        long value = amount == null ? 0 : Long.parseLong(new String(amount, StandardCharsets.UTF_8));
        totals.merge(name, value, Long::sum);
        return name + ":" + value;
    }

    private static void consumeKafka(Map<String, String> options) {
        Properties settings = new Properties();
        settings.setProperty("bootstrap.servers", required(options, "bootstrap"));
        settings.setProperty("group.id", required(options, "group"));
        settings.setProperty("enable.auto.commit", "false");
        settings.setProperty("auto.offset.reset", "earliest");
        int records = Integer.parseInt(required(options, "records"));
        Map<String, Long> totals = new TreeMap<>();
        long deadline = System.nanoTime() + DEADLINE.toNanos();
        int handled = 0;
        try (KafkaConsumer<byte[], byte[]> consumer =
                        new KafkaConsumer<>(settings, new ByteArrayDeserializer(), new ByteArrayDeserializer());
                DualReadLedger ledger = new DualReadLedger(settings, options.get("group"), Side.KAFKA)) {
            consumer.subscribe(List.of(required(options, "topic")));
            while (handled < records && System.nanoTime() < deadline) {
                for (ConsumerRecord<byte[], byte[]> record : consumer.poll(Duration.ofMillis(500))) {
                    Header amount = record.headers().lastHeader("amount");
                    String result = logic(record.key(), amount == null ? null : amount.value(), totals);
                    ledger.processed(RecordId.ofKafka(record), result.getBytes(StandardCharsets.UTF_8));
                    handled++;
                }
                ledger.flush();
                consumer.commitSync();
            }
        }
        finish("kafka", handled, records, totals);
    }

    private static void consumeRocketmq(Map<String, String> options) throws Exception {
        Properties kafka = new Properties();
        kafka.setProperty("bootstrap.servers", required(options, "bootstrap"));
        String group = required(options, "group");
        int records = Integer.parseInt(required(options, "records"));
        boolean bug = options.containsKey("bug");
        DefaultLitePullConsumer consumer = new DefaultLitePullConsumer(group);
        consumer.setNamesrvAddr(required(options, "name-server"));
        consumer.setAutoCommit(false);
        consumer.setConsumeFromWhere(ConsumeFromWhere.CONSUME_FROM_FIRST_OFFSET);
        consumer.subscribe(required(options, "rocketmq-topic"), "*");
        consumer.start();
        Map<String, Long> totals = new TreeMap<>();
        long deadline = System.nanoTime() + DEADLINE.toNanos();
        int handled = 0;
        try (DualReadLedger ledger = new DualReadLedger(kafka, group, Side.ROCKETMQ)) {
            while (handled < records && System.nanoTime() < deadline) {
                for (MessageExt message : consumer.poll(500)) {
                    byte[] amount = bug
                            ? bytes(message.getUserProperty("amount"))
                            : KafkaView.of(message).lastHeader("amount");
                    String result = logic(KafkaView.of(message).key(), amount, totals);
                    ledger.processed(RecordId.ofRocketmq(message), result.getBytes(StandardCharsets.UTF_8));
                    handled++;
                }
                ledger.flush();
                consumer.commitSync();
            }
        } finally {
            consumer.shutdown();
        }
        finish("rocketmq", handled, records, totals);
    }

    private static byte[] bytes(String text) {
        return text == null ? null : text.getBytes(StandardCharsets.UTF_8);
    }

    private static void finish(String side, int handled, int records, Map<String, Long> totals) {
        System.out.println(side + " side: handled " + handled + " records; totals per key " + totals);
        if (handled < records) {
            System.err.println("error: only " + handled + " of " + records + " records arrived within " + DEADLINE);
            System.exit(1);
        }
    }
}
