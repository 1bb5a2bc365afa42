//! A consumed RocketMQ message as the way back's mapping reads it.

use rocketmq_model::common::message::STRING_HASH_SET;
use rocketmq_model::common::message::message_ext::MessageExt;

use crate::mapping::reverse::RocketMqMessage;

/// The message's fields, its system properties apart: `UNIQ_KEY` (msgId),
/// `KEYS` and `TAGS` are fields, the other system properties are the
/// broker's and the client's own, and the rest are the user's.
pub fn to_message(message: &MessageExt) -> RocketMqMessage {
    let properties = message.properties();
    let system = |name: &str| properties.get(name).map(|value| value.to_string());
    let user = properties
        .iter()
        .filter(|(name, _)| !STRING_HASH_SET.contains(name.as_str()))
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect();
    RocketMqMessage {
        topic: message.topic().to_string(),
        broker: message.broker_name().to_string(),
        queue_id: message.queue_id(),
        queue_offset: message.queue_offset(),
        msg_id: system("UNIQ_KEY"),
        keys: system("KEYS"),
        tags: system("TAGS"),
        born_timestamp_ms: message.born_timestamp(),
        store_timestamp_ms: message.store_timestamp(),
        body: message.body().map(|body| body.to_vec()).unwrap_or_default(),
        properties: user,
    }
}
