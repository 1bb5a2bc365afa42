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

/// The full text of a client error. `ClientError`'s Display hides the cause,
/// so walk the source chain.
pub fn error_text(error: &ClientError) -> String {
    let mut text = error.to_string();
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
