//! The `kafka-rocketmq-bridge` command line: a thin layer that parses
//! arguments, sets up logging and hands over to the library.

#![recursion_limit = "256"]

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use kafka_rocketmq_bridge::count_match::DayVerdicts;
use kafka_rocketmq_bridge::{
    config, count_match, dual_read, health, metrics, plan, results_match, service, status, topics,
};
use tokio::sync::{mpsc, watch};

#[derive(Parser)]
#[command(
    name = "kafka-rocketmq-bridge",
    version,
    about = "Mirror Kafka topics into RocketMQ for a zero-downtime migration"
)]
struct Cli {
    /// Log output format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Validate the config, connect to both clusters and print the plan.
    Check {
        #[command(flatten)]
        config: ConfigArg,
        /// How long to wait for each cluster to answer.
        #[arg(long, default_value = "10s", value_parser = parse_duration)]
        timeout: Duration,
    },
    /// Create the mapped topics that are missing, on both sides.
    CreateTopics {
        #[command(flatten)]
        config: ConfigArg,
        /// Partitions for each missing Kafka topic.
        #[arg(long, default_value_t = 8)]
        partitions: u32,
        /// Read and write queues for each missing RocketMQ topic.
        #[arg(long, default_value_t = 8)]
        queues: u32,
        /// RocketMQ cluster to create topics on.
        #[arg(long, default_value = "DefaultCluster")]
        cluster: String,
        /// Only create topics on this side.
        #[arg(long, value_enum)]
        only: Option<SideArg>,
        /// Also create the two dual-read ledger topics of this consumer group
        /// on Kafka (dual-read.<group>.kafka and .rocketmq). Repeatable.
        #[arg(long = "dual-read-group")]
        dual_read_groups: Vec<String>,
        #[arg(long, default_value = "10s", value_parser = parse_duration)]
        timeout: Duration,
    },
    /// Mirror the mapped topics until SIGTERM or SIGINT.
    Run {
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Compare Kafka and RocketMQ per mapping and day, by count and content.
    /// Exit code 0: no day mismatches; 1: a day mismatches; 2: verify could not run.
    Verify {
        #[command(flatten)]
        config: ConfigArg,
        #[command(flatten)]
        days: DaysArg,
        /// Only this mapping (its name, or the label of the regex mapping it came from).
        #[arg(long)]
        mapping: Option<String>,
        /// Start reading this long before the first day: brokers' time indexes are approximate.
        #[arg(long, default_value = "1h", value_parser = parse_duration)]
        slack: Duration,
        /// At most this many differing records listed per day.
        #[arg(long, default_value_t = 20)]
        max_listed: usize,
        /// Judge as if it were this instant (RFC 3339, e.g. 2026-11-25T00:00:00Z)
        /// instead of now: a day that ends before it counts as over, so today
        /// can be checked once traffic has stopped.
        #[arg(long, value_parser = parse_instant)]
        as_of: Option<i64>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Compare what a dual-read consumer group did on each side, per day and topic,
    /// from its two ledgers (docs/dual-read.md).
    /// Exit code 0: no day mismatches; 1: a day mismatches; 2: the comparison could not run.
    CompareResults {
        #[command(flatten)]
        config: ConfigArg,
        /// The consumer group whose ledgers are compared.
        #[arg(long)]
        group: String,
        #[command(flatten)]
        days: DaysArg,
        /// The Kafka side's ledger topic (default: dual-read.<group>.kafka).
        #[arg(long)]
        kafka_ledger: Option<String>,
        /// The RocketMQ side's ledger topic (default: dual-read.<group>.rocketmq).
        #[arg(long)]
        rocketmq_ledger: Option<String>,
        /// Start reading the ledgers this long before the first day.
        #[arg(long, default_value = "1h", value_parser = parse_duration)]
        slack: Duration,
        /// At most this many differing records listed per day and topic.
        #[arg(long, default_value_t = 20)]
        max_listed: usize,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Where a Kafka consumer group stopped, as RocketMQ consumer offsets
    /// (cutover); with --to-kafka, where a RocketMQ consumer group stopped,
    /// as Kafka committed offsets (rollback). A dry run unless --apply.
    /// Exit code 0: done; 2: could not run.
    TranslateOffsets {
        #[command(flatten)]
        config: ConfigArg,
        /// The Kafka consumer group: whose committed offsets are translated,
        /// or with --to-kafka the group written.
        #[arg(long)]
        group: String,
        /// The RocketMQ consumer group: written, or with --to-kafka read
        /// (default: the same name as --group).
        #[arg(long)]
        rocketmq_group: Option<String>,
        /// Rollback: translate the RocketMQ group's consumer offsets into the
        /// Kafka group's committed offsets, over the rocketmq_to_kafka mappings.
        #[arg(long)]
        to_kafka: bool,
        /// Write the offsets (with --to-kafka, the Kafka group must have no
        /// active members).
        #[arg(long)]
        apply: bool,
        /// Print the offsets as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Is it safe to switch producers to RocketMQ? Exit code 0: yes; 1: not yet; 2: the check could not run.
    CutoverCheck {
        #[command(flatten)]
        config: ConfigArg,
        /// How many of the last full days must MATCH.
        #[arg(long, default_value_t = 3)]
        days: u32,
        /// The bridge must be fewer than this many records behind, over all partitions.
        #[arg(long, default_value_t = count_match::DEFAULT_MAX_LAG)]
        max_lag: u64,
        /// Time zone days are counted in (IANA name).
        #[arg(long, default_value = "UTC")]
        timezone: String,
        /// A dual-read consumer group whose results must MATCH on the same days
        /// (compare-results, default ledger topics). Repeatable.
        #[arg(long = "results-group")]
        results_groups: Vec<String>,
        /// Print the conditions as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum SideArg {
    Kafka,
    Rocketmq,
}

impl From<SideArg> for topics::Side {
    fn from(side: SideArg) -> Self {
        match side {
            SideArg::Kafka => topics::Side::Kafka,
            SideArg::Rocketmq => topics::Side::RocketMq,
        }
    }
}

/// The days `verify` and `compare-results` judge.
#[derive(Args)]
struct DaysArg {
    /// First day, YYYY-MM-DD (default: the same as --to).
    #[arg(long)]
    from: Option<String>,
    /// Last day, YYYY-MM-DD (default: yesterday, the last full day).
    #[arg(long)]
    to: Option<String>,
    /// Time zone days are counted in (IANA name).
    #[arg(long, default_value = "UTC")]
    timezone: String,
}

/// The config and the days, or the exit code of a command that cannot run
/// with them (the error printed).
fn load_with_days(
    config: &ConfigArg,
    days: &DaysArg,
) -> Result<(config::BridgeConfig, count_match::days::DayRange), ExitCode> {
    let loaded = load(&config.config).ok_or(ExitCode::from(EXIT_VERIFY_ERROR))?;
    let range = count_match::days::DayRange::parse(
        days.from.as_deref(),
        days.to.as_deref(),
        &days.timezone,
    )
    .map_err(|error| {
        eprintln!("error: {error}");
        ExitCode::from(EXIT_VERIFY_ERROR)
    })?;
    Ok((loaded, range))
}

#[derive(Args)]
struct ConfigArg {
    /// Topic-mapping YAML file.
    #[arg(long, env = "BRIDGE_CONFIG")]
    config: PathBuf,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    config::HumanDuration::parse(text)
        .ok_or_else(|| format!("`{text}` is not a duration like 10s, 500ms, 5m or 1h"))
}

/// The client libraries log every connection at INFO; the bridge reports
/// what matters itself, with context, so theirs start at ERROR.
///
/// The client's lite pull consumer is off entirely: `verify` and
/// `translate-offsets` read with explicit pulls, and the background pulls
/// the client starts on its own for the same queues fail harmlessly (they
/// have no offset to start from) and would log an error each time.
const DEFAULT_LOG_FILTER: &str = "info,rocketmq_client_rust=error,rocketmq_transport=error,rocketmq_runtime=error,\
                                  rocketmq_observability=error,rdkafka=warn,\
                                  rocketmq_client_rust::consumer::consumer_impl::default_lite_pull_consumer_impl=off";

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("BRIDGE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_LOG_FILTER));
    // Colours only on a terminal: log files and collectors get plain text.
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::from(2);
        }
    };
    runtime.block_on(dispatch(cli.command))
}

async fn dispatch(command: Command) -> ExitCode {
    match command {
        Command::Check {
            config: config_path,
            timeout,
        } => {
            let Some(config) = load(&config_path.config) else {
                return ExitCode::from(1);
            };
            let path = config_path.config.display().to_string();
            let report = plan::check(&config, &path, timeout).await;
            print!("{}", report.render());
            if report.is_ready() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Command::CreateTopics {
            config,
            partitions,
            queues,
            cluster,
            only,
            dual_read_groups,
            timeout,
        } => {
            let Some(config) = load(&config.config) else {
                return ExitCode::from(1);
            };
            let request = topics::CreateRequest {
                partitions,
                queues,
                cluster,
                only: only.map(Into::into),
                ledger_groups: dual_read_groups,
                timeout,
            };
            match topics::create_missing(&config, &request).await {
                Ok(lines) => {
                    lines.iter().for_each(|line| println!("{line}"));
                    ExitCode::SUCCESS
                }
                Err(error) => {
                    eprintln!("error: {error:#}");
                    ExitCode::from(1)
                }
            }
        }
        Command::Run { config } => {
            let Some(loaded) = load(&config.config) else {
                return ExitCode::from(1);
            };
            run(loaded, config.config).await
        }
        Command::Verify {
            config,
            days,
            mapping,
            slack,
            max_listed,
            as_of,
            json,
        } => {
            let (loaded, days) = match load_with_days(&config, &days) {
                Ok(loaded) => loaded,
                Err(code) => return code,
            };
            let request = count_match::VerifyRequest {
                days,
                mapping,
                slack,
                max_listed,
                as_of,
            };
            verify(&loaded, &request, json).await
        }
        Command::CompareResults {
            config,
            group,
            days,
            kafka_ledger,
            rocketmq_ledger,
            slack,
            max_listed,
            json,
        } => {
            let (loaded, days) = match load_with_days(&config, &days) {
                Ok(loaded) => loaded,
                Err(code) => return code,
            };
            let loaded = forward_only(loaded, "compare-results");
            let ledger = |given: Option<String>, side| {
                given.unwrap_or_else(|| dual_read::ledger_topic(&group, side))
            };
            let request = results_match::CompareRequest {
                ledgers: [
                    ledger(kafka_ledger, dual_read::Side::Kafka),
                    ledger(rocketmq_ledger, dual_read::Side::Rocketmq),
                ],
                group,
                days,
                slack,
                max_listed,
            };
            compare_results(&loaded, &request, json).await
        }
        Command::TranslateOffsets {
            config,
            group,
            rocketmq_group,
            to_kafka,
            apply,
            json,
        } => {
            let Some(loaded) = load(&config.config) else {
                return ExitCode::from(EXIT_VERIFY_ERROR);
            };
            let rocketmq_group = rocketmq_group.unwrap_or_else(|| group.clone());
            if to_kafka {
                return translate_offsets_to_kafka(&loaded, &group, &rocketmq_group, apply, json)
                    .await;
            }
            let loaded = forward_only(loaded, "translate-offsets");
            translate_offsets(&loaded, &group, &rocketmq_group, apply, json).await
        }
        Command::CutoverCheck {
            config,
            days,
            max_lag,
            timezone,
            results_groups,
            json,
        } => {
            let Some(loaded) = load(&config.config) else {
                return ExitCode::from(EXIT_VERIFY_ERROR);
            };
            // The way back's conditions are cutover-check's own; the
            // results conditions cover the dual-write direction.
            let days = match count_match::days::DayRange::last_full_days(days, &timezone) {
                Ok(days) => days,
                Err(error) => {
                    eprintln!("error: {error}");
                    return ExitCode::from(EXIT_VERIFY_ERROR);
                }
            };
            let progress = count_match::Progress::on_terminal(json);
            let checked = match count_match::cutover_check(&loaded, days, max_lag, &progress).await
            {
                Ok(report) => {
                    results_match::add_results_conditions(
                        &loaded.forward_part().0,
                        report,
                        days,
                        &results_groups,
                        &progress,
                    )
                    .await
                }
                Err(error) => Err(error),
            };
            match checked {
                Ok(report) => {
                    if json {
                        println!(
                            "{}",
                            serde_json::to_string_pretty(&report).unwrap_or_default()
                        );
                    } else {
                        print!("{}", report.render());
                    }
                    if report.safe {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::from(1)
                    }
                }
                Err(error) => {
                    eprintln!("error: {error}");
                    ExitCode::from(EXIT_VERIFY_ERROR)
                }
            }
        }
    }
}

/// Exit code of `verify` when it could not run (or the config is bad).
const EXIT_VERIFY_ERROR: u8 = 2;

async fn verify(
    config: &config::BridgeConfig,
    request: &count_match::VerifyRequest,
    json: bool,
) -> ExitCode {
    let progress = count_match::Progress::on_terminal(json);
    print_verdicts(count_match::verify(config, request, &progress).await, json)
}

async fn compare_results(
    config: &config::BridgeConfig,
    request: &results_match::CompareRequest,
    json: bool,
) -> ExitCode {
    let progress = count_match::Progress::on_terminal(json);
    print_verdicts(
        results_match::compare(config, request, &progress).await,
        json,
    )
}

/// Prints a report as a table, or as JSON; exit code 0 when no day
/// mismatches, 1 when one does, 2 when the report could not be made.
fn print_verdicts(
    report: Result<impl DayVerdicts, count_match::VerifyError>,
    json: bool,
) -> ExitCode {
    match report {
        Ok(report) => {
            if json {
                println!("{}", report.to_json());
            } else {
                print!("{}", report.render());
            }
            if report.has_mismatch() {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(EXIT_VERIFY_ERROR)
        }
    }
}

async fn translate_offsets(
    config: &config::BridgeConfig,
    group: &str,
    rocketmq_group: &str,
    apply: bool,
    json: bool,
) -> ExitCode {
    use kafka_rocketmq_bridge::offset_translation;
    let progress = count_match::Progress::on_terminal(json);
    let translated = offset_translation::translate(config, group, rocketmq_group, &progress).await;
    let applied = match translated {
        Ok(translation) if apply => offset_translation::apply(config, &translation)
            .await
            .map(|()| translation),
        other => other,
    };
    print_translation(applied, json, |t| t.render(apply))
}

async fn translate_offsets_to_kafka(
    config: &config::BridgeConfig,
    kafka_group: &str,
    rocketmq_group: &str,
    apply: bool,
    json: bool,
) -> ExitCode {
    use kafka_rocketmq_bridge::offset_translation::to_kafka;
    let progress = count_match::Progress::on_terminal(json);
    let translated = to_kafka::translate(config, kafka_group, rocketmq_group, &progress).await;
    let applied = match translated {
        Ok(translation) if apply => to_kafka::apply(config, &translation)
            .await
            .map(|()| translation),
        other => other,
    };
    print_translation(applied, json, |t| t.render(apply))
}

/// Prints a translation as JSON or as its table, or the error.
fn print_translation<T: serde::Serialize>(
    result: Result<T, count_match::VerifyError>,
    json: bool,
    render: impl Fn(&T) -> String,
) -> ExitCode {
    match result {
        Ok(translation) => {
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&translation).unwrap_or_default()
                );
            } else {
                print!("{}", render(&translation));
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(EXIT_VERIFY_ERROR)
        }
    }
}

/// Exit code when a record hit a `fail` policy.
const EXIT_RECORD_FAILED: u8 = 3;
/// Exit code of a second signal: out at once, nothing more committed.
const EXIT_SECOND_SIGNAL: u8 = 130;

async fn run(config: config::BridgeConfig, path: PathBuf) -> ExitCode {
    let readiness = health::Readiness::new();
    let status = status::StatusBoard::new();
    let served = match metrics::Metrics::install() {
        Ok(metrics) => {
            health::serve(
                config.metrics.listen.0,
                metrics,
                Arc::clone(&readiness),
                Arc::clone(&status),
            )
            .await
        }
        Err(error) => Err(error),
    };
    let health = match served {
        Ok(task) => task,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(1);
        }
    };
    let (stop_requests, stop_received) = mpsc::channel(4);
    let (reload_requests, reload_received) = mpsc::channel(4);
    service::forward_signals(stop_requests, reload_requests);
    let (reloader, limits) = service::Reloader::new(path, config.clone());
    tokio::spawn(reloader.reload_on_requests(reload_received));
    let (stop, stopping) = watch::channel(false);
    tokio::spawn(async move {
        service::stop_on_requests(stop_received, stop).await;
        // At once: dropping the consumer would wait for in-flight records.
        std::process::exit(i32::from(EXIT_SECOND_SIGNAL));
    });
    let exit = service::run_until_stopped(
        config,
        stopping,
        limits,
        readiness,
        status,
        service::StartRetry::default(),
    )
    .await;
    health.abort();
    exit_code(exit)
}

fn exit_code(exit: service::ServiceExit) -> ExitCode {
    match exit {
        service::ServiceExit::Stopped(summary) => {
            tracing::info!(?summary, "stopped");
            ExitCode::SUCCESS
        }
        service::ServiceExit::RecordFailed { summary, reason } => {
            tracing::error!(?summary, "stopped by a record policy");
            eprintln!("error: {reason}");
            ExitCode::from(EXIT_RECORD_FAILED)
        }
    }
}

/// `config` without its way-back mappings, which `command` does not cover
/// yet; says so on stderr when it leaves some out.
fn forward_only(config: config::BridgeConfig, command: &str) -> config::BridgeConfig {
    let (forward, left_out) = config.forward_part();
    if !left_out.is_empty() {
        eprintln!(
            "note: {command} leaves out the rocketmq_to_kafka mappings ({}): it covers the kafka_to_rocketmq direction only in this version",
            left_out.join(", ")
        );
    }
    forward
}

/// An RFC 3339 instant, as milliseconds since the epoch.
fn parse_instant(text: &str) -> Result<i64, String> {
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.timestamp_millis())
        .map_err(|e| {
            format!("`{text}` is not an RFC 3339 instant ({e}): write e.g. 2026-11-25T00:00:00Z")
        })
}

fn load(path: &std::path::Path) -> Option<config::BridgeConfig> {
    match config::load_file(path) {
        Ok(config) => Some(config),
        Err(error) => {
            eprintln!("error: {error}");
            None
        }
    }
}
