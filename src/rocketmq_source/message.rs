//! A consumed RocketMQ message as the way back's mapping reads it.

use std::sync::Arc;

use rocketmq_model::common::message::message_ext::MessageExt;

use crate::mapping::{self, reverse::RocketMqMessage};

/// The topic and broker names of the messages read last, shared by the
/// messages that follow: a queue's messages come in runs, and one shared
/// name saves two allocations per message and per lane id made from it.
#[derive(Default)]
pub struct SharedNames {
    topic: Option<Arc<str>>,
    broker: Option<Arc<str>>,
}

impl SharedNames {
    fn share(slot: &mut Option<Arc<str>>, name: &str) -> Arc<str> {
        match slot {
            Some(shared) if &**shared == name => Arc::clone(shared),
            _ => Arc::clone(slot.insert(Arc::from(name))),
        }
    }
}

/// The message's fields, its system properties apart: `UNIQ_KEY` (msgId),
/// `KEYS` and `TAGS` are fields, the other system properties are the
/// broker's and the client's own, and the rest are the user's.
pub fn to_message(message: &MessageExt) -> RocketMqMessage {
    to_message_sharing(message, &mut SharedNames::default())
}

/// [`to_message`], with topic and broker names shared through `names`.
///
/// The texts and the body are the client's, shared (a `CheetahString`
/// clone is inline or counted, `Bytes` counted): no copy per message.
pub fn to_message_sharing(message: &MessageExt, names: &mut SharedNames) -> RocketMqMessage {
    let properties = message.properties();
    let system = |name: &str| properties.get(name).cloned();
    let user = properties
        .iter()
        .filter(|(name, _)| !mapping::is_system_property(name.as_str()))
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect();
    RocketMqMessage {
        topic: SharedNames::share(&mut names.topic, message.topic()),
        broker: SharedNames::share(&mut names.broker, message.broker_name()),
        queue_id: message.queue_id(),
        queue_offset: message.queue_offset(),
        msg_id: system("UNIQ_KEY"),
        keys: system("KEYS"),
        tags: system("TAGS"),
        born_timestamp_ms: message.born_timestamp(),
        store_timestamp_ms: message.store_timestamp(),
        body: message.body().unwrap_or_default(),
        properties: user,
    }
}
