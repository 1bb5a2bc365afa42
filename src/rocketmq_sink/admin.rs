//! RocketMQ admin calls with a deadline: queue counts for `check`, topic
//! creation for `create-topics`, a consumer group's offsets read and set
//! for `translate-offsets`. The client's own admin timeouts are long
//! (up to 60 s), so every call here is wrapped in `tokio::time::timeout`.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use cheetah_string::CheetahString;
use rocketmq_client_rust::{AclClientRPCHook, ClientError, ClientRuntime, SessionCredentials};
use rocketmq_client_rust::{
    ConsumerAdmin, DefaultMQAdminExt, MQAdminMutationExt, OffsetAdmin, RouteAdmin, TopicAdmin,
};
use rocketmq_model::message::MessageQueue;
use rocketmq_model::topic::TopicConfig;
use rocketmq_protocol::protocol::subscription::subscription_group_config::SubscriptionGroupConfig;

use super::client::{RocketMqRuntime, error_text};
use crate::config::RocketMqConfig;

/// Broker answer for a topic with no route (`TOPIC_NOT_EXIST`).
const TOPIC_NOT_EXIST: i32 = 17;
/// Broker answer for a consumer offset the group never stored (`QUERY_NOT_FOUND`).
const QUERY_NOT_FOUND: i32 = 22;

/// A RocketMQ admin call that failed; the text names the address and topic.
#[derive(Debug, thiserror::Error)]
pub enum RocketMqAdminError {
    #[error(
        "cannot reach the RocketMQ name server at {name_server} within {seconds}s: check rocketmq.name_server \
         and that the name server is up"
    )]
    Timeout { name_server: String, seconds: u64 },
    #[error(
        "RocketMQ name server {name_server}: {operation} failed: {cause}. Check rocketmq.name_server, the ACL \
         credentials, and that the name server and brokers are up"
    )]
    Call {
        name_server: String,
        operation: String,
        cause: String,
    },
    #[error(
        "RocketMQ broker {broker} refused the credentials ({cause}): check rocketmq.access_key and \
         rocketmq.secret_key (or their *_file keys), and the user's permissions on the broker"
    )]
    Credentials { broker: String, cause: String },
    #[error("{0}")]
    Runtime(String),
    #[error("no RocketMQ broker of cluster `{cluster}` is registered at name server {name_server}")]
    NoBroker {
        name_server: String,
        cluster: String,
    },
}

/// Runs `work` with an admin client on a client runtime of its own, and
/// shuts both down whatever `work` returns.
pub async fn with_admin<T>(
    config: &RocketMqConfig,
    deadline: Duration,
    work: impl AsyncFnOnce(&RocketMqAdmin) -> Result<T, RocketMqAdminError>,
) -> Result<T, RocketMqAdminError> {
    let runtime = RocketMqRuntime::start(1).map_err(RocketMqAdminError::Runtime)?;
    let result = match RocketMqAdmin::connect(runtime.client_runtime(), config, deadline).await {
        Ok(admin) => {
            let result = work(&admin).await;
            admin.shutdown().await;
            result
        }
        Err(error) => Err(error),
    };
    runtime.shutdown().await;
    result
}

/// An admin client for one name server list, started and ready.
pub struct RocketMqAdmin {
    admin: DefaultMQAdminExt,
    name_server: String,
    deadline: Duration,
}

impl RocketMqAdmin {
    pub async fn connect(
        runtime: Arc<ClientRuntime>,
        config: &RocketMqConfig,
        deadline: Duration,
    ) -> Result<Self, RocketMqAdminError> {
        let timeout = deadline.max(Duration::from_millis(100));
        let mut admin = match (&config.access_key, &config.secret_key) {
            (Some(access), Some(secret)) => {
                let credentials = SessionCredentials::with_keys(access.expose(), secret.expose());
                DefaultMQAdminExt::with_rpc_hook_and_timeout(
                    runtime,
                    Arc::new(AclClientRPCHook::new(credentials)),
                    timeout,
                )
            }
            _ => DefaultMQAdminExt::with_timeout(runtime, timeout),
        };
        admin.set_namesrv_addr(config.name_server.as_str());
        let name_server = config.name_server.clone();
        let started = tokio::time::timeout(deadline, admin.start()).await;
        let this = RocketMqAdmin {
            admin,
            name_server,
            deadline,
        };
        match started {
            Ok(Ok(())) => Ok(this),
            Ok(Err(error)) => Err(this.call_failed("start the admin client", &error)),
            Err(_) => Err(this.timeout()),
        }
    }

    /// Write-queue count of each topic, `None` for a topic without a route.
    pub async fn queue_counts(
        &self,
        topics: &[String],
    ) -> Result<BTreeMap<String, Option<usize>>, RocketMqAdminError> {
        let mut counts = BTreeMap::new();
        for topic in topics {
            counts.insert(topic.clone(), self.queue_count(topic).await?);
        }
        Ok(counts)
    }

    async fn queue_count(&self, topic: &str) -> Result<Option<usize>, RocketMqAdminError> {
        let millis = self.deadline.as_millis() as u64;
        let route = self
            .bounded_raw(
                self.admin
                    .examine_topic_route_info_with_timeout(CheetahString::from(topic), millis),
            )
            .await?;
        match route {
            Ok(Some(route)) => {
                let queues: u32 = route.queue_datas.iter().map(|q| q.write_queue_nums).sum();
                if queues > 0 {
                    self.check_broker_access(topic, &route).await?;
                }
                Ok((queues > 0).then_some(queues as usize))
            }
            Ok(None) => Ok(None),
            Err(error) if error.broker_response_code() == Some(TOPIC_NOT_EXIST) => Ok(None),
            Err(error) => Err(self.call_failed(&format!("route of topic `{topic}`"), &error)),
        }
    }

    /// Asks each master broker of `topic` for its stats: the name server
    /// answers routes without credentials, a broker checks them.
    async fn check_broker_access(
        &self,
        topic: &str,
        route: &rocketmq_protocol::protocol::route::topic_route_data::TopicRouteData,
    ) -> Result<(), RocketMqAdminError> {
        for broker in &route.broker_datas {
            let Some(address) = broker.broker_addrs().get(&0).cloned() else {
                continue;
            };
            let stats = self
                .bounded_raw(
                    self.admin
                        .examine_topic_stats(CheetahString::from(topic), Some(address.clone())),
                )
                .await?;
            if let Err(error) = stats {
                return Err(self.broker_failed(
                    &address,
                    &format!("stats of topic `{topic}`"),
                    &error,
                ));
            }
        }
        Ok(())
    }

    /// Creates `topic` with `queues` read and write queues on every master
    /// broker of `cluster`. Updating an existing topic's queue count is
    /// refused, since that would re-route keys.
    pub async fn create_topic(
        &self,
        topic: &str,
        queues: u32,
        cluster: &str,
    ) -> Result<(), RocketMqAdminError> {
        let info = self
            .bounded(
                "read the cluster's brokers",
                self.admin.examine_broker_cluster_info(),
            )
            .await?;
        let brokers = info
            .cluster_addr_table
            .as_ref()
            .and_then(|clusters| clusters.get(cluster))
            .into_iter()
            .flatten()
            .filter_map(|name| {
                info.broker_addr_table
                    .as_ref()?
                    .get(name)?
                    .broker_addrs()
                    .get(&0)
                    .cloned()
            })
            .collect::<Vec<_>>();
        if brokers.is_empty() {
            return Err(RocketMqAdminError::NoBroker {
                name_server: self.name_server.clone(),
                cluster: cluster.to_string(),
            });
        }
        for broker in brokers {
            let config = TopicConfig::with_queues(topic, queues, queues);
            self.bounded(
                &format!("create topic `{topic}` on broker {broker}"),
                self.admin
                    .create_and_update_topic_config(broker.clone(), config),
            )
            .await?;
        }
        Ok(())
    }

    /// The read queues of `topic` on each broker of its route, sorted by
    /// broker name, then queue id (the order the router indexes them in),
    /// each with the address of its broker's master.
    pub async fn topic_queues(
        &self,
        topic: &str,
    ) -> Result<Vec<(MessageQueue, CheetahString)>, RocketMqAdminError> {
        let millis = self.deadline.as_millis() as u64;
        let route = self
            .bounded(
                &format!("route of topic `{topic}`"),
                self.admin
                    .examine_topic_route_info_with_timeout(CheetahString::from(topic), millis),
            )
            .await?;
        let Some(route) = route else {
            return Err(self.no_route(topic));
        };
        let mut queues = Vec::new();
        for data in &route.queue_datas {
            let master = route
                .broker_datas
                .iter()
                .find(|b| b.broker_name() == &data.broker_name)
                .and_then(|b| b.broker_addrs().get(&0).cloned());
            let Some(master) = master else {
                return Err(RocketMqAdminError::Call {
                    name_server: self.name_server.clone(),
                    operation: format!("find the master of broker `{}`", data.broker_name),
                    cause: format!("topic `{topic}`'s route lists no master for it"),
                });
            };
            for id in 0..data.read_queue_nums as i32 {
                let queue = MessageQueue::from_parts(topic, data.broker_name.as_str(), id);
                queues.push((queue, master.clone()));
            }
        }
        if queues.is_empty() {
            return Err(self.no_route(topic));
        }
        queues.sort_by(|(a, _), (b, _)| {
            (a.broker_name(), a.queue_id()).cmp(&(b.broker_name(), b.queue_id()))
        });
        Ok(queues)
    }

    /// Consumer group `group`'s stored offset on each of `queues` (from
    /// [`Self::topic_queues`]), read from the brokers without joining the
    /// group; `None` where the broker holds none. A broker answers 0 rather
    /// than none while a queue's first message is still in its memory.
    pub async fn consumer_offsets(
        &self,
        group: &str,
        queues: &[(MessageQueue, CheetahString)],
    ) -> Result<Vec<Option<i64>>, RocketMqAdminError> {
        let mut offsets = Vec::with_capacity(queues.len());
        for (queue, broker) in queues {
            let asked = self
                .bounded_raw(MQAdminMutationExt::mutation_consumer_offset(
                    &self.admin,
                    broker.clone(),
                    CheetahString::from(group),
                    CheetahString::from(queue.topic_str()),
                    queue.queue_id(),
                ))
                .await?;
            match asked {
                Ok(offset) => offsets.push((offset >= 0).then_some(offset)),
                Err(error) if error.broker_response_code() == Some(QUERY_NOT_FOUND) => {
                    offsets.push(None);
                }
                Err(error) => {
                    return Err(self.broker_failed(
                        broker,
                        &format!(
                            "read group `{group}`'s offset on `{}` queue {}",
                            queue.topic_str(),
                            queue.queue_id()
                        ),
                        &error,
                    ));
                }
            }
        }
        Ok(offsets)
    }

    fn no_route(&self, topic: &str) -> RocketMqAdminError {
        RocketMqAdminError::Call {
            name_server: self.name_server.clone(),
            operation: format!("route of topic `{topic}`"),
            cause: "the topic does not exist (no route)".to_string(),
        }
    }

    /// Sets consumer group `group`'s offset on each queue, on the broker
    /// that holds the queue (its master, as the topic route lists it).
    pub async fn set_consumer_offsets(
        &self,
        group: &str,
        offsets: &[(MessageQueue, i64)],
    ) -> Result<(), RocketMqAdminError> {
        let millis = self.deadline.as_millis() as u64;
        let mut routes = BTreeMap::new();
        for (queue, offset) in offsets {
            let topic = queue.topic_str().to_string();
            if !routes.contains_key(&topic) {
                let route = self
                    .bounded(
                        &format!("route of topic `{topic}`"),
                        self.admin.examine_topic_route_info_with_timeout(
                            CheetahString::from(topic.as_str()),
                            millis,
                        ),
                    )
                    .await?;
                routes.insert(topic.clone(), route);
            }
            let broker = routes
                .get(&topic)
                .and_then(Option::as_ref)
                .and_then(|route| {
                    route
                        .broker_datas
                        .iter()
                        .find(|b| b.broker_name() == queue.broker_name())
                })
                .and_then(|b| b.broker_addrs().get(&0).cloned());
            let Some(address) = broker else {
                return Err(RocketMqAdminError::Call {
                    name_server: self.name_server.clone(),
                    operation: format!("find the master of broker `{}`", queue.broker_name()),
                    cause: format!("topic `{topic}`'s route does not list it"),
                });
            };
            self.ensure_group(&address, group).await?;
            self.bounded(
                &format!(
                    "set group `{group}`'s offset on `{topic}` queue {} to {offset}",
                    queue.queue_id()
                ),
                self.admin.update_consume_offset(
                    address,
                    CheetahString::from(group),
                    queue.clone(),
                    (*offset).max(0) as u64,
                ),
            )
            .await?;
        }
        Ok(())
    }

    /// Creates consumer group `group` on the broker at `address` with the
    /// broker's defaults, unless it exists (an existing group's settings are
    /// left as they are). Brokers refuse offsets for unknown groups.
    async fn ensure_group(
        &self,
        address: &CheetahString,
        group: &str,
    ) -> Result<(), RocketMqAdminError> {
        let group_name = CheetahString::from(group);
        let existing = self
            .bounded_raw(
                self.admin
                    .examine_subscription_group_config(address.clone(), group_name.clone()),
            )
            .await?;
        if existing.is_ok() {
            return Ok(());
        }
        self.bounded(
            &format!("create consumer group `{group}` on broker {address}"),
            self.admin.create_and_update_subscription_group_config(
                address.clone(),
                SubscriptionGroupConfig::new(group_name),
            ),
        )
        .await
    }

    pub async fn shutdown(mut self) {
        self.admin.shutdown().await;
    }

    async fn bounded<T>(
        &self,
        operation: &str,
        call: impl Future<Output = Result<T, ClientError>>,
    ) -> Result<T, RocketMqAdminError> {
        self.bounded_raw(call)
            .await?
            .map_err(|e| self.call_failed(operation, &e))
    }

    async fn bounded_raw<T>(&self, call: impl Future<Output = T>) -> Result<T, RocketMqAdminError> {
        tokio::time::timeout(self.deadline, call)
            .await
            .map_err(|_| self.timeout())
    }

    fn timeout(&self) -> RocketMqAdminError {
        RocketMqAdminError::Timeout {
            name_server: self.name_server.clone(),
            seconds: self.deadline.as_secs().max(1),
        }
    }

    /// A broker call failed: refused credentials are named as such.
    fn broker_failed(
        &self,
        broker: &str,
        operation: &str,
        error: &ClientError,
    ) -> RocketMqAdminError {
        match super::client::refused_credentials(error) {
            Some(cause) => RocketMqAdminError::Credentials {
                broker: broker.to_string(),
                cause,
            },
            None => self.call_failed(operation, error),
        }
    }

    fn call_failed(&self, operation: &str, error: &ClientError) -> RocketMqAdminError {
        if let Some(cause) = super::client::refused_credentials(error) {
            return RocketMqAdminError::Credentials {
                broker: format!("of name server {}", self.name_server),
                cause,
            };
        }
        RocketMqAdminError::Call {
            name_server: self.name_server.clone(),
            operation: operation.to_string(),
            cause: error_text(error),
        }
    }
}
