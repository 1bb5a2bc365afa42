//! Demo traffic for `scripts/demo.sh`: produces keyed records with headers
//! into every Kafka topic of a config, as an application would.
//! Not part of the product image.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use kafka_rocketmq_bridge::{config, kafka_source};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};

#[derive(Parser)]
#[command(
    about = "Produce sample keyed traffic with headers into the Kafka topics of a bridge config"
)]
struct Args {
    #[arg(long, env = "BRIDGE_CONFIG")]
    config: std::path::PathBuf,
    /// Records per mapped topic.
    #[arg(long, default_value_t = 1000)]
    records: usize,
    /// Distinct keys (customers) the records are spread over.
    #[arg(long, default_value_t = 20)]
    keys: usize,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let config = match config::load_file(&args.config) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(1);
        }
    };
    let mut client = kafka_source::client_config(&config.kafka);
    client
        .set("linger.ms", "5")
        .set("enable.idempotence", "true");
    let producer: FutureProducer = match client.create() {
        Ok(producer) => producer,
        Err(error) => {
            eprintln!(
                "error: cannot create a Kafka producer for {}: {error}",
                config.kafka.bootstrap_servers
            );
            return ExitCode::from(1);
        }
    };
    for mapping in &config.mappings {
        match produce(&producer, &mapping.kafka_topic, &args).await {
            Ok(()) => println!(
                "produced {} records over {} keys into {}",
                args.records, args.keys, mapping.kafka_topic
            ),
            Err(error) => {
                eprintln!(
                    "error: producing to {} at {}: {error}",
                    mapping.kafka_topic, config.kafka.bootstrap_servers
                );
                return ExitCode::from(1);
            }
        }
    }
    ExitCode::SUCCESS
}

async fn produce(producer: &FutureProducer, topic: &str, args: &Args) -> Result<(), String> {
    let mut pending = Vec::with_capacity(args.records);
    for seq in 0..args.records {
        let key = format!("customer-{:03}", seq % args.keys.max(1));
        let value = format!(
            r#"{{"topic":"{topic}","customer":"{key}","seq":{seq},"amount_cents":{}}}"#,
            (seq * 37) % 10_000
        );
        let seq_text = seq.to_string();
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: "source",
                value: Some("demo-traffic"),
            })
            .insert(Header {
                key: "seq",
                value: Some(seq_text.as_str()),
            });
        let mut record = FutureRecord::to(topic)
            .key(&key)
            .payload(&value)
            .headers(headers);
        // librdkafka copies the record when it is queued; wait while its queue is full.
        loop {
            match producer.send_result(record) {
                Ok(delivery) => break pending.push(delivery),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Err((error, _)) => return Err(error.to_string()),
            }
        }
    }
    for delivery in pending {
        match delivery.await {
            Ok(Ok(_)) => {}
            Ok(Err((error, _))) => return Err(error.to_string()),
            Err(_) => return Err("the producer was dropped before delivery".to_string()),
        }
    }
    Ok(())
}
