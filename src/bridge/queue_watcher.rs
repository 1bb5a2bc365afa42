//! The queue watcher: re-reads each target topic's route and tells a
//! broker outage from a change of plan.
//!
//! A master that goes down leaves the route, and its queues with it. Moving
//! its partitions to the remaining queues would break their order (their
//! records in flight would land after newer ones), so an outage keeps the
//! plan: that broker's queues wait for it, retrying, and the others go on.
//! Only queues added, or removed from a broker still in the route, re-plan.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::Ordering as AtomicOrdering;
use std::time::Duration;

use rocketmq_client_rust::DefaultMQProducer;
use rocketmq_model::message::MessageQueue;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::health::Readiness;
use crate::rocketmq_sink;

/// One target topic the watcher follows.
pub(super) struct Watched {
    pub kafka_topic: String,
    pub rocketmq_topic: String,
    /// The queues of the current plan.
    pub plan: Vec<MessageQueue>,
    /// Brokers of the plan missing from the last route read.
    pub missing: BTreeSet<String>,
}

/// What a fresh route means for the plan.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum RouteChange {
    /// Every queue of the plan, and nothing else.
    Same,
    /// Whole brokers of the plan are missing; the rest is unchanged.
    BrokersMissing(BTreeSet<String>),
    /// Queues added, or removed from a broker still listed: a new plan.
    Replan,
}

pub(super) fn route_change(plan: &[MessageQueue], route: &[MessageQueue]) -> RouteChange {
    let by_broker = |queues: &[MessageQueue]| {
        let mut brokers: BTreeMap<String, BTreeSet<i32>> = BTreeMap::new();
        for queue in queues {
            brokers
                .entry(queue.broker_name().to_string())
                .or_default()
                .insert(queue.queue_id());
        }
        brokers
    };
    let (planned, routed) = (by_broker(plan), by_broker(route));
    if planned == routed {
        return RouteChange::Same;
    }
    let unchanged = routed
        .iter()
        .all(|(broker, queues)| planned.get(broker) == Some(queues));
    if !unchanged || routed.is_empty() {
        return RouteChange::Replan;
    }
    RouteChange::BrokersMissing(
        planned
            .keys()
            .filter(|broker| !routed.contains_key(*broker))
            .cloned()
            .collect(),
    )
}

/// Re-reads each target topic's queues every `interval`. An outage is
/// logged when it starts and ends; a new plan is logged loudly and handed
/// to the dispatcher.
pub(super) fn spawn(
    producer: Arc<DefaultMQProducer>,
    readiness: Arc<Readiness>,
    name_server: String,
    mut watched: Vec<Watched>,
    interval: Duration,
    replans: mpsc::Sender<(String, Vec<MessageQueue>)>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        // A clone shares the client instance; fetching needs `&mut`.
        let mut producer = (*producer).clone();
        let mut ticker = tokio::time::interval(interval);
        ticker.tick().await;
        loop {
            ticker.tick().await;
            for topic in &mut watched {
                let fetched = rocketmq_sink::fetch_queues(
                    &mut producer,
                    &topic.rocketmq_topic,
                    &name_server,
                    interval,
                )
                .await;
                readiness
                    .route_failing
                    .store(fetched.is_err(), AtomicOrdering::Relaxed);
                let Ok(queues) = fetched else { continue };
                if let Some(plan) = topic.follow(queues)
                    && replans
                        .send((topic.kafka_topic.clone(), plan))
                        .await
                        .is_err()
                {
                    return;
                }
            }
        }
    })
}

impl Watched {
    /// Takes in a route read; returns the new plan if there is one.
    fn follow(&mut self, route: Vec<MessageQueue>) -> Option<Vec<MessageQueue>> {
        match route_change(&self.plan, &route) {
            RouteChange::Same => {
                if !self.missing.is_empty() {
                    tracing::info!(rocketmq_topic = %self.rocketmq_topic, brokers = ?self.missing,
                        "broker(s) back in the route; their queues take records again");
                    self.missing.clear();
                }
                None
            }
            RouteChange::BrokersMissing(missing) => {
                if missing != self.missing {
                    tracing::warn!(rocketmq_topic = %self.rocketmq_topic, brokers = ?missing,
                        "broker(s) gone from the route; the plan is kept: their partitions wait for them \
                         (order), the others go on. If a broker is gone for good, restart the bridge to plan \
                         on the queues that are left");
                    self.missing = missing;
                }
                None
            }
            RouteChange::Replan => {
                tracing::error!(
                    rocketmq_topic = %self.rocketmq_topic, from = self.plan.len(), to = route.len(),
                    "queue count of a target topic changed while running; draining in-flight records and re-planning"
                );
                self.plan = route.clone();
                self.missing.clear();
                Some(route)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queues(layout: &[(&str, i32)]) -> Vec<MessageQueue> {
        layout
            .iter()
            .flat_map(|(broker, count)| {
                (0..*count).map(move |id| MessageQueue::from_parts("t", *broker, id))
            })
            .collect()
    }

    #[test]
    fn the_same_queues_in_any_order_are_the_same_route() {
        let plan = queues(&[("a", 4), ("b", 4)]);
        let mut route = plan.clone();
        route.reverse();
        assert_eq!(route_change(&plan, &route), RouteChange::Same);
    }

    #[test]
    fn a_whole_broker_missing_is_an_outage_not_a_new_plan() {
        let plan = queues(&[("a", 4), ("b", 4)]);
        assert_eq!(
            route_change(&plan, &queues(&[("a", 4)])),
            RouteChange::BrokersMissing(BTreeSet::from(["b".to_string()]))
        );
    }

    #[test]
    fn changed_queues_on_a_listed_broker_or_a_new_broker_re_plan() {
        let plan = queues(&[("a", 4), ("b", 4)]);
        assert_eq!(
            route_change(&plan, &queues(&[("a", 8), ("b", 4)])),
            RouteChange::Replan
        );
        assert_eq!(
            route_change(&plan, &queues(&[("a", 2)])),
            RouteChange::Replan
        );
        assert_eq!(
            route_change(&plan, &queues(&[("a", 4), ("b", 4), ("c", 4)])),
            RouteChange::Replan
        );
        assert_eq!(route_change(&plan, &[]), RouteChange::Replan);
    }

    #[test]
    fn an_outage_is_reported_once_and_its_end_too() {
        let plan = queues(&[("a", 4), ("b", 4)]);
        let mut watched = Watched {
            kafka_topic: "in".into(),
            rocketmq_topic: "out".into(),
            plan: plan.clone(),
            missing: BTreeSet::new(),
        };
        assert_eq!(watched.follow(queues(&[("a", 4)])), None);
        assert_eq!(watched.missing, BTreeSet::from(["b".to_string()]));
        assert_eq!(watched.follow(plan.clone()), None);
        assert!(watched.missing.is_empty());
        let grown = queues(&[("a", 8), ("b", 4)]);
        assert_eq!(watched.follow(grown.clone()), Some(grown.clone()));
        assert_eq!(watched.plan, grown);
    }
}
