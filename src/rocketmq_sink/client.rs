//! The RocketMQ client runtime: the client library runs on a tokio runtime it
//! is given explicitly, so the bridge owns one and shuts it down cleanly.

use std::error::Error as _;
use std::sync::Arc;

use rocketmq_client_rust::{ClientError, ClientRuntime, ClientRuntimeConfig};
use rocketmq_observability::TelemetryRuntimeGuard;
use rocketmq_runtime::{RuntimeConfig, RuntimeOwner};

/// Owns the threads and pools every RocketMQ producer, consumer and admin
/// client of this process runs on.
pub struct RocketMqRuntime {
    owner: Option<RuntimeOwner>,
    _telemetry: TelemetryRuntimeGuard,
    client: Arc<ClientRuntime>,
}

impl RocketMqRuntime {
    /// Starts the client runtime with `worker_threads` threads of its own.
    pub fn start(worker_threads: usize) -> Result<Self, String> {
        let config = RuntimeConfig {
            thread_name: "rocketmq-client".to_string(),
            ..RuntimeConfig::for_parallelism("rocketmq-client", worker_threads.max(1))
        };
        let owner = RuntimeOwner::plan(config)
            .map_err(|e| format!("invalid RocketMQ client runtime settings: {e}"))?
            .build()
            .map_err(|e| format!("cannot start the RocketMQ client runtime: {e}"))?;
        // The bridge installs its own tracing subscriber, so the client's
        // telemetry stays a no-op instead of installing a global one.
        let telemetry = TelemetryRuntimeGuard::noop();
        let client = ClientRuntime::try_new(
            owner.root_context().component("client"),
            ClientRuntimeConfig::default(),
            telemetry.handle(),
        )
        .map_err(|e| {
            format!(
                "cannot start the RocketMQ client runtime: {}",
                error_text(&e)
            )
        })?;
        Ok(RocketMqRuntime {
            owner: Some(owner),
            _telemetry: telemetry,
            client,
        })
    }

    pub fn client_runtime(&self) -> Arc<ClientRuntime> {
        Arc::clone(&self.client)
    }

    /// Stops the client's tasks and its threads. Safe inside async code.
    pub async fn shutdown(mut self) {
        self.client.shutdown().await;
        if let Some(owner) = self.owner.take() {
            owner.shutdown_tasks().await;
            owner.shutdown_background();
        }
    }
}

impl Drop for RocketMqRuntime {
    fn drop(&mut self) {
        // Dropping a tokio runtime blocks; shutdown_background never does.
        if let Some(owner) = self.owner.take() {
            owner.shutdown_background();
        }
    }
}

/// Broker answer `NO_PERMISSION`: the credentials are wrong, or the user
/// may not do this.
const NO_PERMISSION: i32 = 16;

/// If a broker refused `error`'s request for its credentials: why, in the
/// broker's words where the client kept them (e.g. `Authentication
/// credentials are invalid`). The text holds no secret.
pub fn refused_credentials(error: &ClientError) -> Option<String> {
    let text = error_text(error);
    // Admin calls carry the broker's answer only in their text.
    let in_text = text.contains(&format!("CODE: {NO_PERMISSION} "));
    if error.broker_response_code() != Some(NO_PERMISSION) && !in_text {
        return None;
    }
    let remark = text
        .split_once("DESC: ")
        .map(|(_, rest)| rest.lines().next().unwrap_or(rest).trim().to_string())
        .filter(|remark| !remark.is_empty());
    Some(remark.unwrap_or_else(|| "NO_PERMISSION, code 16".to_string()))
}

/// What went wrong, for logs and errors: refused credentials are named as
/// such, with what to check; anything else is the client's full error text.
pub fn failure_text(error: &ClientError) -> String {
    match refused_credentials(error) {
        Some(cause) => format!(
            "the broker refused the credentials ({cause}): check rocketmq.access_key and \
             rocketmq.secret_key, and the user's permissions on the topic"
        ),
        None => error_text(error),
    }
}

/// The full text of a client error. `ClientError`'s Display hides the cause,
/// so walk the source chain; and it hides the broker's response code, the
/// one clue to why a broker refused a request, so add it.
pub fn error_text(error: &ClientError) -> String {
    let mut text = error.to_string();
    if let Some(code) = error.broker_response_code() {
        text.push_str(&format!(
            " (broker response code {code}{})",
            code_name(code)
        ));
    }
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// Names of the broker response codes a send or read can meet, as RocketMQ's
/// `ResponseCode` spells them, with what they usually mean.
fn code_name(code: i32) -> &'static str {
    match code {
        1 => " SYSTEM_ERROR",
        2 => " SYSTEM_BUSY: the broker sheds load",
        13 => " MESSAGE_ILLEGAL",
        14 => " SERVICE_NOT_AVAILABLE: the broker is not writable, e.g. its disk is over 90% used",
        16 => " NO_PERMISSION",
        17 => " TOPIC_NOT_EXIST",
        208 => " QUERY_NOT_FOUND",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_text_names_the_broker_response_code() {
        let refused = ClientError::broker_operation_failed("SEND_MESSAGE", 14, "disk full");
        let text = error_text(&refused);
        assert!(text.contains("Broker operation failed"), "{text}");
        assert!(
            text.contains("broker response code 14 SERVICE_NOT_AVAILABLE"),
            "{text}"
        );
        let unknown = ClientError::broker_operation_failed("SEND_MESSAGE", 999, "");
        assert!(error_text(&unknown).ends_with("(broker response code 999)"));
        let no_code = ClientError::timeout("send", 3000);
        assert!(!error_text(&no_code).contains("response code"));
    }
}
