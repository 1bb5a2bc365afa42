package org.kafkarocketmqbridge.dualread;

import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.time.Duration;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.apache.kafka.common.serialization.StringSerializer;

/**
 * Appends a dual-read consumer's entries to its side's ledger topic, format version 1
 * (docs/dual-read.md). Entries are batched per source partition, up to 500 per ledger
 * record or 200 ms. Call {@link #flush()} before committing the consumer's offsets: if it
 * throws, do not commit, and the records are handled again.
 *
 * <p>Not thread-safe: one ledger per consumer thread.
 */
public final class DualReadLedger implements AutoCloseable {
    public static final int FORMAT_VERSION = 1;
    private static final int MAX_ENTRIES = 500;
    private static final long LINGER_NANOS = TimeUnit.MILLISECONDS.toNanos(200);

    private final KafkaProducer<String, byte[]> producer;
    private final String topic;
    private final String group;
    private final Side side;
    private final Map<String, Batch> batches = new LinkedHashMap<>();
    private final AtomicReference<Exception> failure = new AtomicReference<>();

    private static final class Batch {
        final long started = System.nanoTime();
        final StringBuilder lines = new StringBuilder(4096);
        int entries;
    }

    /**
     * @param kafka the Kafka client settings ({@code bootstrap.servers}, security); consumer-only
     *     settings are ignored
     */
    public DualReadLedger(Properties kafka, String group, Side side) {
        this(kafka, group, side, side.ledgerTopic(group));
    }

    public DualReadLedger(Properties kafka, String group, Side side, String topic) {
        Properties settings = new Properties();
        kafka.stringPropertyNames().stream()
                .filter(name -> ProducerConfig.configNames().contains(name))
                .forEach(name -> settings.setProperty(name, kafka.getProperty(name)));
        // A retried send must not write an entry twice: it would read as processed twice.
        settings.setProperty(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, "true");
        settings.setProperty(ProducerConfig.ACKS_CONFIG, "all");
        settings.setProperty(ProducerConfig.LINGER_MS_CONFIG, "20");
        // The first send waits for the ledger topic's metadata: 1 s was too
        // short on a busy machine (CI saw "not present in metadata after 1000 ms").
        settings.setProperty(ProducerConfig.MAX_BLOCK_MS_CONFIG, "10000");
        this.producer = new KafkaProducer<>(settings, new StringSerializer(), new ByteArraySerializer());
        this.topic = topic;
        this.group = group;
        this.side = side;
    }

    /** The digest the ledger keeps for a result: lowercase hex SHA-256 of its bytes. */
    public static String resultDigest(byte[] result) {
        try {
            return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(result));
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("every Java has SHA-256", e);
        }
    }

    /** The record was processed, and its logic produced {@code result}. */
    public void processed(RecordId id, byte[] result) {
        append(id, "\"status\":\"processed\",\"result\":\"" + resultDigest(result) + "\"");
    }

    /** The record was not processed, because of {@code reason}. */
    public void failed(RecordId id, String reason) {
        append(id, "\"status\":\"failed\",\"reason\":" + json(reason));
    }

    /**
     * Sends every batch and waits until Kafka acknowledged all of them.
     *
     * @throws LedgerException if any entry since the last flush was not delivered
     */
    public void flush() {
        for (String key : batches.keySet().toArray(new String[0])) {
            send(key);
        }
        producer.flush();
        Exception failed = failure.getAndSet(null);
        if (failed != null) {
            throw new LedgerException("ledger records to " + topic + " were not delivered; do not commit "
                    + "the consumer's offsets: " + failed.getMessage(), failed);
        }
    }

    @Override
    public void close() {
        producer.close(Duration.ofSeconds(30));
    }

    private void append(RecordId id, String outcome) {
        String key = id.topic() + "/" + id.partition();
        Batch batch = batches.computeIfAbsent(key, k -> new Batch());
        batch.lines.append("{\"v\":").append(FORMAT_VERSION)
                .append(",\"side\":\"").append(side.wireName()).append('"')
                .append(",\"group\":").append(json(group))
                .append(",\"topic\":").append(json(id.topic()))
                .append(",\"partition\":").append(id.partition())
                .append(",\"offset\":").append(id.offset())
                .append(",\"timestamp\":").append(id.timestamp())
                .append(',').append(outcome).append("}\n");
        batch.entries++;
        long now = System.nanoTime();
        for (String due : batches.entrySet().stream()
                .filter(e -> e.getValue().entries >= MAX_ENTRIES || now - e.getValue().started >= LINGER_NANOS)
                .map(Map.Entry::getKey)
                .toArray(String[]::new)) {
            send(due);
        }
    }

    private void send(String key) {
        Batch batch = batches.remove(key);
        if (batch == null) {
            return;
        }
        byte[] value = batch.lines.toString().getBytes(StandardCharsets.UTF_8);
        producer.send(new ProducerRecord<>(topic, key, value), (metadata, error) -> {
            if (error != null) {
                failure.compareAndSet(null, error);
            }
        });
    }

    /** A JSON string literal. */
    static String json(String text) {
        StringBuilder out = new StringBuilder(text.length() + 2).append('"');
        for (char c : text.toCharArray()) {
            switch (c) {
                case '"' -> out.append("\\\"");
                case '\\' -> out.append("\\\\");
                case '\n' -> out.append("\\n");
                case '\r' -> out.append("\\r");
                case '\t' -> out.append("\\t");
                default -> {
                    if (c < 0x20) {
                        out.append(String.format("\\u%04x", (int) c));
                    } else {
                        out.append(c);
                    }
                }
            }
        }
        return out.append('"').toString();
    }

    /** The ledger could not take or deliver entries. */
    public static final class LedgerException extends RuntimeException {
        LedgerException(String message, Throwable cause) {
            super(message, cause);
        }
    }
}
