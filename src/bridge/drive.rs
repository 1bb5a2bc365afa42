//! Runs one started direction to its end, the same way in both: its
//! committer commits what the checkpoints allow every `commit_interval`,
//! its dispatcher runs until the stop signal or a `fail` policy, then its
//! senders drain, the last commit is made and the source leaves its group.

use std::sync::Arc;
use std::sync::atomic::Ordering as AtomicOrdering;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::dispatcher::Dispatcher;
use super::flow::Flow;
use super::{Core, Stop};
use crate::checkpoint::{Checkpoints, PartitionId};
use crate::dead_letter::DeadLetterWriter;
use crate::health::{Heartbeat, stuck_after};
use crate::source::{Committed, Source};

/// A direction ready to run.
pub(super) struct Started<F: Flow> {
    pub dispatcher: Dispatcher<F>,
    pub source: Arc<F::Source>,
    /// Tasks that end with the direction (the queue watcher).
    pub tasks: Vec<JoinHandle<()>>,
}

/// How a direction ended.
pub(super) struct Ended {
    pub stop: Stop,
    /// Whether every sender drained before `shutdown_timeout`.
    pub drained: bool,
}

/// Runs `started` until `stop` turns true or a record fails; a failed
/// record turns `stop_all` true, so the other direction stops too.
pub(super) async fn drive<F: Flow>(
    started: Started<F>,
    core: &Core,
    mut stop: watch::Receiver<bool>,
    stop_all: &watch::Sender<bool>,
    committer_name: &'static str,
) -> Ended {
    let Started {
        mut dispatcher,
        source,
        tasks,
    } = started;
    let settings = &core.settings;
    let committer = spawn_committer(
        Arc::clone(&source),
        Arc::clone(&core.checkpoints),
        settings.commit_interval.0,
        core.readiness
            .heartbeat(committer_name, stuck_after(settings.commit_interval.0)),
    );
    let ended = dispatcher.run(&mut stop).await;
    if matches!(ended, Stop::RecordFailed(_)) {
        let _ = stop_all.send(true);
    }
    core.readiness.running.store(false, AtomicOrdering::Relaxed);
    // Draining may take `shutdown_timeout`; the loops stop turning on purpose.
    core.readiness.forget_loops();
    tasks.iter().for_each(JoinHandle::abort);
    let dead_letters = dispatcher.dead_letters.take();
    let sender_tasks = std::mem::take(&mut dispatcher.sender_tasks);
    drop(dispatcher);
    let drained = drain(
        sender_tasks,
        &core.checkpoints,
        dead_letters,
        settings.shutdown_timeout.0,
    )
    .await;
    committer.abort();
    final_commit(source.as_ref(), &core.checkpoints).await;
    source.close().await;
    Ended {
        stop: ended,
        drained,
    }
}

/// The commits `source` owns: the checkpoints hold both directions' lanes.
fn own_commits<S: Source>(source: &S, checkpoints: &Checkpoints) -> Vec<(PartitionId, i64)> {
    let mut commits = checkpoints.pending_commits();
    commits.retain(|(lane, _)| source.reads(lane));
    commits
}

fn spawn_committer<S: Source>(
    source: Arc<S>,
    checkpoints: Arc<Checkpoints>,
    interval: Duration,
    heartbeat: Arc<Heartbeat>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            heartbeat.beat();
            let commits = own_commits(source.as_ref(), &checkpoints);
            if commits.is_empty() {
                continue;
            }
            match source.commit(&commits, false).await {
                Ok(Committed::Stored) => checkpoints.committed(&commits),
                Ok(Committed::Started) => {}
                Err(error) => tracing::warn!(%error, "cannot commit offsets; will retry"),
            }
        }
    })
}

/// Lets the senders finish what they hold, within `timeout`.
async fn drain(
    sender_tasks: Vec<JoinHandle<()>>,
    checkpoints: &Checkpoints,
    dead_letters: Option<DeadLetterWriter>,
    timeout: Duration,
) -> bool {
    let in_flight = checkpoints.in_flight();
    tracing::info!(
        in_flight,
        timeout_s = timeout.as_secs(),
        "stopping: draining in-flight records"
    );
    let aborts: Vec<_> = sender_tasks.iter().map(JoinHandle::abort_handle).collect();
    let all = async {
        for task in sender_tasks {
            let _ = task.await;
        }
        if let Some(writer) = dead_letters {
            writer.finish().await;
        }
    };
    match tokio::time::timeout(timeout, all).await {
        Ok(()) => true,
        Err(_) => {
            aborts.iter().for_each(|abort| abort.abort());
            tracing::warn!(
                in_flight = checkpoints.in_flight(),
                "shutdown deadline passed with records unacknowledged; they are not committed and will be re-sent"
            );
            false
        }
    }
}

async fn final_commit<S: Source>(source: &S, checkpoints: &Checkpoints) {
    let commits = own_commits(source, checkpoints);
    match source.commit(&commits, true).await {
        Ok(_) => {
            checkpoints.committed(&commits);
            let text: Vec<String> = commits
                .iter()
                .map(|(id, offset)| format!("{id}={offset}"))
                .collect();
            tracing::info!(offsets = %text.join(" "), "final commit done");
        }
        Err(error) => {
            tracing::error!(%error, "final commit failed; a restart re-sends from the previous commit")
        }
    }
}
