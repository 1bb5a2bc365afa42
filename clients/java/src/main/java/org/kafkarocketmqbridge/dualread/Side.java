package org.kafkarocketmqbridge.dualread;

/** Which system a dual-read consumer read a record from. */
public enum Side {
    KAFKA("kafka"),
    ROCKETMQ("rocketmq");

    private final String wireName;

    Side(String wireName) {
        this.wireName = wireName;
    }

    /** The name the ledger format uses: {@code kafka} or {@code rocketmq}. */
    public String wireName() {
        return wireName;
    }

    /** The default ledger topic of {@code group} on this side. */
    public String ledgerTopic(String group) {
        return "dual-read." + group + "." + wireName;
    }
}
