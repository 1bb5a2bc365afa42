package org.kafkarocketmqbridge.dualread;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.AbstractMap.SimpleImmutableEntry;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import org.apache.rocketmq.common.message.MessageConst;
import org.apache.rocketmq.common.message.MessageExt;

/**
 * A RocketMQ copy's key and headers as Kafka had them (docs/message-mapping.md): headers
 * RocketMQ could carry as plain properties come first, sorted by name, then those in
 * {@code KAFKA_HEADERS_B64}, in Kafka order. Reading only the plain properties misses the
 * latter: a header repeated, empty, or not valid UTF-8.
 */
public final class KafkaView {
    private final byte[] key;
    private final List<Map.Entry<String, byte[]>> headers;

    private KafkaView(byte[] key, List<Map.Entry<String, byte[]>> headers) {
        this.key = key;
        this.headers = headers;
    }

    public static KafkaView of(MessageExt message) {
        return new KafkaView(key(message), headers(message));
    }

    /** The Kafka key, or null if the record had none. */
    public byte[] key() {
        return key;
    }

    /** Every header, values null where Kafka's were. */
    public List<Map.Entry<String, byte[]>> headers() {
        return headers;
    }

    /** The value of the last header called {@code name}, as Kafka's lastHeader gives it. */
    public byte[] lastHeader(String name) {
        byte[] found = null;
        for (Map.Entry<String, byte[]> header : headers) {
            if (header.getKey().equals(name)) {
                found = header.getValue();
            }
        }
        return found;
    }

    private static byte[] key(MessageExt message) {
        String encoded = message.getUserProperty("KAFKA_KEY_B64");
        if (encoded != null && encoded.startsWith("b64:")) {
            return Base64.getDecoder().decode(encoded.substring(4));
        }
        String keys = message.getKeys();
        if (keys == null) {
            return null;
        }
        if ("percent".equals(message.getUserProperty("KAFKA_KEY_ESCAPED"))) {
            keys = keys.replace("%20", " ").replace("%25", "%");
        }
        return keys.getBytes(StandardCharsets.UTF_8);
    }

    private static List<Map.Entry<String, byte[]>> headers(MessageExt message) {
        Map<String, String> plain = new TreeMap<>();
        message.getProperties().forEach((name, value) -> {
            if (!name.startsWith("KAFKA_") && !MessageConst.STRING_HASH_SET.contains(name)) {
                plain.put(name, value);
            }
        });
        List<Map.Entry<String, byte[]>> headers = new ArrayList<>();
        plain.forEach((name, value) ->
                headers.add(new SimpleImmutableEntry<>(name, value.getBytes(StandardCharsets.UTF_8))));
        String escaped = message.getUserProperty("KAFKA_HEADERS_B64");
        if (escaped != null) {
            ByteBuffer list = ByteBuffer.wrap(Base64.getDecoder().decode(escaped));
            while (list.hasRemaining()) {
                byte[] name = new byte[list.getInt()];
                list.get(name);
                int length = list.getInt();
                byte[] value = null;
                if (length >= 0) {
                    value = new byte[length];
                    list.get(value);
                }
                headers.add(new SimpleImmutableEntry<>(new String(name, StandardCharsets.UTF_8), value));
            }
        }
        return headers;
    }
}
