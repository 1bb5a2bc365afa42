//! One send of a batch to one queue, and why it failed, typed: the kind of
//! a failure decides whether the batch may have been stored all the same
//! (and so whether exactly-once reads the queue back before sending again).

use std::time::Duration;

use rocketmq_client_rust::{ClientError, DefaultMQProducer, SendStatus};
use rocketmq_model::message::MessageQueue;

use super::client::{failure_text, refused_credentials};
use super::encode::{Envelope, build_batch};

/// Why a send failed.
#[derive(Debug, thiserror::Error)]
pub enum SendFailure {
    /// The client's call did not return within its own timeout and a grace.
    #[error("no answer within {}ms", .0.as_millis())]
    NoAnswer(Duration),
    /// The client reported an error; its kind is read from the error itself.
    #[error("{text}")]
    Client { kind: SendErrorKind, text: String },
    /// The broker stored the batch but answered something else than SEND_OK
    /// (e.g. a flush or a replica timed out).
    #[error("broker answered {0:?} (stored, but not as SEND_OK)")]
    NotSendOk(SendStatus),
    #[error("the client returned no send result")]
    NoResult,
    #[error("cannot build an empty batch")]
    EmptyBatch,
}

/// The `kind` label of `bridge_send_errors_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendErrorKind {
    Timeout,
    Connection,
    BrokerBusy,
    BrokerNotWritable,
    NotSendOk,
    Route,
    Credentials,
    Other,
}

impl SendErrorKind {
    pub const ALL: [SendErrorKind; 8] = [
        SendErrorKind::Timeout,
        SendErrorKind::Connection,
        SendErrorKind::BrokerBusy,
        SendErrorKind::BrokerNotWritable,
        SendErrorKind::NotSendOk,
        SendErrorKind::Route,
        SendErrorKind::Credentials,
        SendErrorKind::Other,
    ];

    pub fn label(self) -> &'static str {
        match self {
            SendErrorKind::Timeout => "timeout",
            SendErrorKind::Connection => "connection",
            SendErrorKind::BrokerBusy => "broker_busy",
            SendErrorKind::BrokerNotWritable => "broker_not_writable",
            SendErrorKind::NotSendOk => "not_send_ok",
            SendErrorKind::Route => "route",
            SendErrorKind::Credentials => "credentials",
            SendErrorKind::Other => "other",
        }
    }

    /// Whether a failed send may have been written all the same: anything
    /// but an answer that says the broker did not take it.
    pub fn may_have_been_stored(self) -> bool {
        !matches!(
            self,
            SendErrorKind::BrokerBusy
                | SendErrorKind::BrokerNotWritable
                | SendErrorKind::Route
                | SendErrorKind::Credentials
        )
    }

    /// The kind of a client error, from the broker's response code or the
    /// client's error code; from its text only when it carries neither.
    pub fn of_client_error(error: &ClientError) -> SendErrorKind {
        if refused_credentials(error).is_some() {
            return SendErrorKind::Credentials;
        }
        if let Some(kind) = error.broker_response_code().and_then(of_response_code) {
            return kind;
        }
        of_error_code(error.descriptor().code().as_str())
            .unwrap_or_else(|| of_text(&failure_text(error)))
    }
}

/// The kind named in an error's text, for client errors whose codes say
/// nothing more specific (e.g. a broker's refusal relayed as an operation
/// failure with only a remark).
fn of_text(text: &str) -> SendErrorKind {
    let text = text.to_ascii_lowercase();
    // The broker's back-pressure reads "[TIMEOUT_CLEAN_QUEUE]broker busy":
    // not a request timeout.
    if text.contains("service_not_available") {
        SendErrorKind::BrokerNotWritable
    } else if text.contains("busy") || text.contains("flow control") {
        SendErrorKind::BrokerBusy
    } else if text.contains("timeout") || text.contains("timed out") {
        SendErrorKind::Timeout
    } else if text.contains("connect") || text.contains("transport") || text.contains("broken pipe")
    {
        SendErrorKind::Connection
    } else if text.contains("route") || text.contains("topic") {
        SendErrorKind::Route
    } else {
        SendErrorKind::Other
    }
}

/// RocketMQ's `ResponseCode`s that say why a broker refused a send.
fn of_response_code(code: i32) -> Option<SendErrorKind> {
    match code {
        // SYSTEM_BUSY: the broker's send queue or page cache is full.
        2 => Some(SendErrorKind::BrokerBusy),
        // SERVICE_NOT_AVAILABLE: not writable (disk full, a slave, shutting down).
        14 => Some(SendErrorKind::BrokerNotWritable),
        16 => Some(SendErrorKind::Credentials),
        // TOPIC_NOT_EXIST.
        17 => Some(SendErrorKind::Route),
        _ => None,
    }
}

/// The client's own error codes (`rocketmq_error`'s catalog).
fn of_error_code(code: &str) -> Option<SendErrorKind> {
    let kind = match code {
        "transport.write.timeout" | "transport.response.timeout" => SendErrorKind::Timeout,
        "transport.connection.failed" | "transport.dns.failed" => SendErrorKind::Connection,
        "transport.remote.rate_limited" => SendErrorKind::BrokerBusy,
        "broker.leadership.not_master" => SendErrorKind::BrokerNotWritable,
        "broker.lookup.not_found"
        | "broker.topic.not_found"
        | "broker.queue.not_found"
        | "rpc.broker_address.not_found" => SendErrorKind::Route,
        code if code.starts_with("route.") => SendErrorKind::Route,
        _ => return None,
    };
    Some(kind)
}

impl SendFailure {
    pub fn error_kind(&self) -> SendErrorKind {
        match self {
            SendFailure::NoAnswer(_) => SendErrorKind::Timeout,
            SendFailure::Client { kind, .. } => *kind,
            SendFailure::NotSendOk(_) => SendErrorKind::NotSendOk,
            SendFailure::NoResult | SendFailure::EmptyBatch => SendErrorKind::Other,
        }
    }

    fn client(error: &ClientError) -> Self {
        SendFailure::Client {
            kind: SendErrorKind::of_client_error(error),
            text: failure_text(error),
        }
    }
}

/// Sends `batch` to `queue` once. The client's own timeout governs the
/// request; the one here only guards against a call that never returns.
pub async fn send_once<'a>(
    producer: &DefaultMQProducer,
    queue: &MessageQueue,
    batch: impl IntoIterator<Item = &'a Envelope>,
    timeout: Duration,
) -> Result<(), SendFailure> {
    let batch = build_batch(queue.topic_str(), batch).map_err(|_| SendFailure::EmptyBatch)?;
    let millis = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
    let call = producer.send_to_queue_with_timeout(batch, queue.clone(), millis);
    let result = tokio::time::timeout(timeout + Duration::from_secs(1), call)
        .await
        .map_err(|_| SendFailure::NoAnswer(timeout))?
        .map_err(|e| SendFailure::client(&e))?
        .ok_or(SendFailure::NoResult)?;
    match result.send_status {
        SendStatus::SendOk => Ok(()),
        status => Err(SendFailure::NotSendOk(status)),
    }
}

#[cfg(test)]
mod tests {
    use rocketmq_error::{ErrorContext, fields};

    use super::*;

    fn client_error(descriptor: &'static rocketmq_error::ErrorDescriptor) -> ClientError {
        ClientError::from_error(rocketmq_error::Error::new(descriptor))
    }

    fn broker_answer(code: i64) -> ClientError {
        ClientError::from_error(
            rocketmq_error::Error::new(&rocketmq_error::BROKER_OPERATION_FAILED)
                .with_context(ErrorContext::new().with_i64(fields::BROKER_CODE, code)),
        )
    }

    #[test]
    fn client_errors_are_classified_by_their_codes() {
        let cases = [
            (
                client_error(&rocketmq_error::TRANSPORT_RESPONSE_TIMEOUT),
                SendErrorKind::Timeout,
            ),
            (
                client_error(&rocketmq_error::TRANSPORT_CONNECTION_FAILED),
                SendErrorKind::Connection,
            ),
            (broker_answer(2), SendErrorKind::BrokerBusy),
            (broker_answer(14), SendErrorKind::BrokerNotWritable),
            (broker_answer(16), SendErrorKind::Credentials),
            (broker_answer(17), SendErrorKind::Route),
        ];
        for (error, kind) in cases {
            assert_eq!(
                SendErrorKind::of_client_error(&error),
                kind,
                "{}",
                failure_text(&error)
            );
        }
    }

    #[test]
    fn only_a_refusal_rules_out_a_stored_batch() {
        let stored: Vec<&str> = SendErrorKind::ALL
            .into_iter()
            .filter(|kind| kind.may_have_been_stored())
            .map(SendErrorKind::label)
            .collect();
        assert_eq!(stored, ["timeout", "connection", "not_send_ok", "other"]);
        assert_eq!(
            SendFailure::NoAnswer(Duration::from_secs(3)).error_kind(),
            SendErrorKind::Timeout
        );
        assert_eq!(
            SendFailure::NotSendOk(SendStatus::FlushDiskTimeout).error_kind(),
            SendErrorKind::NotSendOk
        );
    }

    #[test]
    fn texts_without_codes_are_classified_by_their_words() {
        let cases = [
            (
                "[TIMEOUT_CLEAN_QUEUE]broker busy, start flow control",
                SendErrorKind::BrokerBusy,
            ),
            (
                "wait response on the channel timed out",
                SendErrorKind::Timeout,
            ),
            (
                "transport.connection.failed: Connection refused",
                SendErrorKind::Connection,
            ),
            ("No route info of this topic: orders", SendErrorKind::Route),
            ("something else", SendErrorKind::Other),
        ];
        for (text, kind) in cases {
            assert_eq!(of_text(text), kind, "{text}");
        }
    }
}
