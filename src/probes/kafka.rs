//! Kafka round-trip probe on rdkafka: produce a small message carrying this
//! sidewatch's instance id, a sequence number and the send time to each
//! partition of the probe topic in turn (`produce`: call to broker ack), and
//! consume it back (`end_to_end`: call to arrival at the consumer).
//!
//! The consumer is a separate client: sharing one client with the producer
//! makes consumption wait on the producer's fetch cycle, inflating end-to-end
//! latency by up to `fetch.wait.max.ms`. It *assigns* partitions at their
//! current end offsets instead of subscribing as a group: a group subscribe
//! first rebalances (about 20 s on some brokers, tansu among them) before any
//! message is delivered, while an assigned consumer receives at once. The
//! offsets are resolved before the first produce, so the probe's own message
//! cannot be skipped by a late `OffsetEnd`.
//!
//! Clients live across runs in a session; any failure other than `lost` drops
//! the session, so a restarted broker (or a recreated topic) is picked up by
//! the next run.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use tokio::sync::{mpsc, Mutex};

use super::{KafkaStats, Recorder};
use crate::config::{BuildCx, KafkaConfig};
use crate::net::{Failure, Phase, Reason};

/// Sequence numbers remembered for duplicate detection.
const REMEMBER: u64 = 10_000;

/// Notes librdkafka's "all brokers down" events, to tell `broker_down` from a
/// plain `timeout`.
#[derive(Default)]
struct Watch {
    brokers_down: Arc<AtomicBool>,
}

impl ClientContext for Watch {
    fn error(&self, error: KafkaError, reason: &str) {
        if error.rdkafka_error_code() == Some(RDKafkaErrorCode::AllBrokersDown) {
            self.brokers_down.store(true, Ordering::Relaxed);
        }
        tracing::debug!(%error, reason, "kafka client error");
    }
}

struct Received {
    seq: u64,
    partition: i32,
    offset: i64,
    at: Instant,
}

struct Session {
    producer: FutureProducer<Watch>,
    brokers_down: Arc<AtomicBool>,
    consumer: Arc<StreamConsumer>,
    partitions: Vec<i32>,
    next: usize,
    rx: mpsc::Receiver<Received>,
    task: tokio::task::JoinHandle<()>,
    seen: BTreeSet<u64>,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Closes a session on a blocking thread: the consumer's close, the
/// producer's flush and librdkafka's destroy wait on the broker, which
/// must not hold an async worker when the broker is down. The consume
/// task goes first, so the consumer's last reference drops there too.
fn discard(mut session: Session) {
    let Ok(rt) = tokio::runtime::Handle::try_current() else {
        return;
    };
    rt.clone().spawn_blocking(move || {
        session.task.abort();
        let _ = rt.block_on(&mut session.task);
        drop(session);
    });
}

pub(crate) struct KafkaProbe {
    base: ClientConfig,
    topic: String,
    partitions: i32,
    replication: i32,
    acks: String,
    client_id: String,
    budget: Duration,
    instance: u64,
    seq: AtomicU64,
    session: Mutex<Option<Session>>,
    target: String,
}

impl Drop for KafkaProbe {
    fn drop(&mut self) {
        if let Some(session) = self.session.get_mut().take() {
            discard(session);
        }
    }
}

super::debug_target_only!(KafkaProbe);

impl KafkaProbe {
    pub(crate) fn build(
        cfg: &KafkaConfig,
        name: &str,
        timeout: Duration,
        cx: &mut BuildCx,
    ) -> Option<KafkaProbe> {
        cx.checked(|cx| {
            for b in cfg.brokers.split(',') {
                if crate::net::dial::split_host_port(b.trim()).is_err() {
                    cx.problem_at("brokers", format!("`{}` is not host:port", b.trim()));
                }
            }
            let topic_ok = !cfg.topic.is_empty()
                && cfg.topic.len() <= 249
                && cfg
                    .topic
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
            if !topic_ok {
                cx.problem_at("topic", "must be 1 to 249 letters, digits, `.`, `_` or `-`");
            }
            if cfg.partitions < 1 || cfg.replication_factor < 1 {
                cx.problem_at(
                    "partitions",
                    "partitions and replication_factor must be at least 1",
                );
            }
            if !matches!(cfg.acks.as_str(), "all" | "-1" | "0" | "1") {
                cx.problem_at("acks", "must be `all`, `1` or `0`");
            }
            let proto = cfg.security_protocol.to_ascii_lowercase();
            match proto.as_str() {
                "plaintext" | "sasl_plaintext" => {}
                "ssl" | "sasl_ssl" if cfg!(feature = "kafka-tls") => {}
                "ssl" | "sasl_ssl" => cx.problem_at(
                    "security_protocol",
                    "TLS to Kafka needs a build with `--features kafka-tls`",
                ),
                _ => cx.problem_at(
                    "security_protocol",
                    "must be plaintext, sasl_plaintext, ssl or sasl_ssl",
                ),
            }
            if proto.starts_with("sasl")
                && (cfg.sasl_username.is_none() || cfg.sasl_password.is_none())
            {
                cx.problem_at(
                    "sasl_username",
                    "SASL needs sasl_username and sasl_password",
                );
            }
            let mut base = ClientConfig::new();
            base.set("bootstrap.servers", &cfg.brokers)
                .set("security.protocol", &proto)
                .set("socket.nagle.disable", "true")
                .set("log_level", "3");
            if let Some(m) = &cfg.sasl_mechanism {
                base.set("sasl.mechanism", m);
            }
            if let Some(u) = &cfg.sasl_username {
                base.set("sasl.username", u);
            }
            if let Some(pw) = &cfg.sasl_password {
                cx.redactor.add(pw);
                base.set("sasl.password", pw);
            }
            if let Some(ca) = &cfg.ca_file {
                base.set("ssl.ca.location", ca.display().to_string());
            }
            let instance = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64)
                ^ u64::from(std::process::id());
            Some(KafkaProbe {
                base,
                topic: cfg.topic.clone(),
                partitions: cfg.partitions,
                replication: cfg.replication_factor,
                acks: cfg.acks.clone(),
                client_id: format!("sidewatch-{name}"),
                // Leave room to report `lost` before the probe's own timeout.
                budget: timeout
                    .saturating_sub(Duration::from_millis(100))
                    .max(timeout * 9 / 10),
                instance,
                seq: AtomicU64::new(0),
                session: Mutex::new(None),
                target: format!("kafka://{}/{}", cfg.brokers, cfg.topic),
            })
        })
    }

    pub(crate) fn target(&self) -> String {
        self.target.clone()
    }

    pub async fn run(&self, rec: &mut Recorder) -> Result<(), Failure> {
        let deadline = tokio::time::Instant::from_std(rec.timings.start + self.budget);
        let mut guard = self.session.lock().await;
        if guard.is_none() {
            let s = tokio::time::timeout_at(deadline, self.open())
                .await
                .map_err(|_| {
                    Failure::new(Reason::BrokerDown, "no broker answered while setting up")
                })??;
            *guard = Some(s);
        }
        let session = guard.as_mut().expect("opened above");
        let mut stats = KafkaStats::default();
        let result = self.round_trip(session, deadline, rec, &mut stats).await;
        rec.kafka = Some(stats);
        if result.as_ref().is_err_and(|f| f.reason != Reason::Lost) {
            if let Some(session) = guard.take() {
                discard(session);
            }
        }
        result
    }

    fn config(&self, role: &str) -> ClientConfig {
        let mut c = self.base.clone();
        c.set("client.id", format!("{}-{role}", self.client_id));
        c
    }

    async fn open(&self) -> Result<Session, Failure> {
        let mut pc = self.config("producer");
        pc.set("acks", &self.acks)
            .set("linger.ms", "0")
            .set("message.timeout.ms", self.budget.as_millis().to_string());
        let watch = Watch::default();
        let brokers_down = watch.brokers_down.clone();
        let producer: FutureProducer<Watch> = pc
            .create_with_context(watch)
            .map_err(|e| Failure::new(Reason::Protocol, format!("kafka producer: {e}")))?;
        let partitions = self.partitions_of_topic(&producer).await?;
        let mut cc = self.config("consumer");
        cc.set("group.id", &self.client_id)
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "false")
            .set("fetch.wait.max.ms", "10");
        let consumer: StreamConsumer = cc
            .create()
            .map_err(|e| Failure::new(Reason::Protocol, format!("kafka consumer: {e}")))?;
        let consumer = Arc::new(consumer);
        let mut tpl = TopicPartitionList::new();
        for &p in &partitions {
            let (_, high) = blocking(consumer.clone(), self.topic.clone(), p, self.budget).await?;
            tpl.add_partition_offset(&self.topic, p, Offset::Offset(high))
                .map_err(|e| Failure::new(Reason::TopicError, e.to_string()))?;
        }
        consumer
            .assign(&tpl)
            .map_err(|e| Failure::new(Reason::TopicError, format!("assign: {e}")))?;
        let (tx, rx) = mpsc::channel(1024);
        let task = tokio::spawn(consume(consumer.clone(), self.instance, tx));
        Ok(Session {
            producer,
            brokers_down,
            consumer,
            partitions,
            next: 0,
            rx,
            task,
            seen: BTreeSet::new(),
        })
    }

    /// The topic's partitions, creating the topic if it is missing.
    async fn partitions_of_topic(
        &self,
        producer: &FutureProducer<Watch>,
    ) -> Result<Vec<i32>, Failure> {
        let existing = self.metadata(producer).await?;
        if !existing.is_empty() {
            return Ok(existing);
        }
        let admin: AdminClient<DefaultClientContext> = self
            .config("admin")
            .create()
            .map_err(|e| Failure::new(Reason::Protocol, format!("kafka admin: {e}")))?;
        let topic = NewTopic::new(
            &self.topic,
            self.partitions,
            TopicReplication::Fixed(self.replication),
        );
        let opts = AdminOptions::new().operation_timeout(Some(self.budget));
        let results = admin
            .create_topics([&topic], &opts)
            .await
            .map_err(|e| kafka_failure(&e, false))?;
        for r in results {
            if let Err((_, code)) = r {
                if code != RDKafkaErrorCode::TopicAlreadyExists {
                    return Err(Failure::new(
                        Reason::TopicError,
                        format!("create topic: {code}"),
                    ));
                }
            }
        }
        let created = self.metadata(producer).await?;
        if created.is_empty() {
            return Err(Failure::new(
                Reason::TopicError,
                "the topic has no partitions after creation",
            ));
        }
        Ok(created)
    }

    async fn metadata(&self, producer: &FutureProducer<Watch>) -> Result<Vec<i32>, Failure> {
        let (p, topic, budget) = (producer.clone(), self.topic.clone(), self.budget);
        tokio::task::spawn_blocking(move || {
            let md = p
                .client()
                .fetch_metadata(Some(&topic), budget)
                .map_err(|e| kafka_failure(&e, true))?;
            Ok(md
                .topics()
                .iter()
                .filter(|t| t.name() == topic && t.error().is_none())
                .flat_map(|t| t.partitions().iter().map(|p| p.id()))
                .collect())
        })
        .await
        .map_err(|e| Failure::new(Reason::Protocol, e.to_string()))?
    }

    async fn round_trip(
        &self,
        s: &mut Session,
        deadline: tokio::time::Instant,
        rec: &mut Recorder,
        stats: &mut KafkaStats,
    ) -> Result<(), Failure> {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let partition = s.partitions[s.next % s.partitions.len()];
        s.next += 1;
        let sent_ns = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let payload = format!("sidewatch {} {seq} {sent_ns}", self.instance);
        let t0 = Instant::now();
        let record = FutureRecord::to(&self.topic)
            .partition(partition)
            .key("sidewatch")
            .payload(&payload);
        let sent = tokio::time::timeout_at(deadline, s.producer.send(record, self.budget)).await;
        let produced_offset = match sent {
            Err(_) => return Err(self.stalled(s, "no produce acknowledgement in time")),
            Ok(Err((e, _))) => {
                let down = s.brokers_down.load(Ordering::Relaxed);
                return Err(kafka_failure(&e, down));
            }
            Ok(Ok(delivery)) => delivery.offset,
        };
        s.brokers_down.store(false, Ordering::Relaxed);
        rec.add(Phase::Produce, t0.elapsed());
        loop {
            let Ok(got) = tokio::time::timeout_at(deadline, s.rx.recv()).await else {
                stats.lost += 1;
                return Err(Failure::new(
                    Reason::Lost,
                    format!("message {seq} (partition {partition}, offset {produced_offset}) not consumed in time"),
                ));
            };
            let m = got.ok_or_else(|| Failure::new(Reason::BrokerDown, "the consumer stopped"))?;
            let highest = s.seen.last().copied();
            if !s.seen.insert(m.seq) {
                stats.duplicates += 1;
            } else if highest.is_some_and(|h| m.seq < h) {
                stats.out_of_order += 1;
            }
            while s.seen.len() as u64 > REMEMBER {
                s.seen.pop_first();
            }
            if m.seq == seq {
                rec.add(Phase::EndToEnd, m.at.duration_since(t0));
                stats.lag = self.lag(s, m.partition, m.offset).await;
                return Ok(());
            }
        }
    }

    /// Consumer lag on a partition: its high watermark minus the next offset
    /// the probe's consumer will read.
    async fn lag(&self, s: &Session, partition: i32, offset: i64) -> Option<(i32, i64)> {
        let timeout = Duration::from_millis(200).min(self.budget);
        let (_, high) = blocking(s.consumer.clone(), self.topic.clone(), partition, timeout)
            .await
            .ok()?;
        Some((partition, (high - offset - 1).max(0)))
    }

    fn stalled(&self, s: &Session, what: &str) -> Failure {
        let down = s.brokers_down.load(Ordering::Relaxed);
        let reason = if down {
            Reason::BrokerDown
        } else {
            Reason::Timeout
        };
        Failure::new(reason, what)
    }
}

/// Reads (low, high) watermarks without blocking the runtime.
async fn blocking(
    c: Arc<StreamConsumer>,
    topic: String,
    p: i32,
    timeout: Duration,
) -> Result<(i64, i64), Failure> {
    tokio::task::spawn_blocking(move || c.fetch_watermarks(&topic, p, timeout))
        .await
        .map_err(|e| Failure::new(Reason::Protocol, e.to_string()))?
        .map_err(|e| kafka_failure(&e, true))
}

/// Forwards this instance's probe messages from the consumer to the runs.
async fn consume(c: Arc<StreamConsumer>, instance: u64, tx: mpsc::Sender<Received>) {
    let prefix = format!("sidewatch {instance} ");
    loop {
        let m = match c.recv().await {
            Ok(m) => m,
            Err(e) => {
                tracing::debug!(error = %e, "kafka consume");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let at = Instant::now();
        let seq = m
            .payload()
            .and_then(|p| std::str::from_utf8(p).ok())
            .and_then(|p| p.strip_prefix(&prefix))
            .and_then(|rest| rest.split(' ').next()?.parse().ok());
        if let Some(seq) = seq {
            let r = Received {
                seq,
                partition: m.partition(),
                offset: m.offset(),
                at,
            };
            // A full queue means no run is listening; dropping is fine.
            let _ = tx.try_send(r);
        }
    }
}

fn kafka_failure(e: &KafkaError, brokers_down: bool) -> Failure {
    use RDKafkaErrorCode as C;
    let reason = match e.rdkafka_error_code() {
        Some(
            C::AllBrokersDown | C::BrokerTransportFailure | C::BrokerNotAvailable | C::Resolve,
        ) => Reason::BrokerDown,
        Some(C::MessageTimedOut | C::RequestTimedOut | C::OperationTimedOut) if brokers_down => {
            Reason::BrokerDown
        }
        Some(C::MessageTimedOut | C::RequestTimedOut | C::OperationTimedOut) => Reason::Timeout,
        Some(
            C::UnknownTopicOrPartition
            | C::UnknownTopic
            | C::UnknownPartition
            | C::TopicAuthorizationFailed
            | C::InvalidTopic
            | C::LeaderNotAvailable
            | C::NotLeaderForPartition,
        ) => Reason::TopicError,
        Some(C::SaslAuthenticationFailed | C::Authentication | C::ClusterAuthorizationFailed) => {
            Reason::Auth
        }
        _ if brokers_down => Reason::BrokerDown,
        _ => Reason::Protocol,
    };
    Failure::new(reason, format!("kafka: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Problems;
    use crate::redact::Redactor;

    fn cfg(brokers: &str, topic: &str) -> KafkaConfig {
        KafkaConfig {
            brokers: brokers.into(),
            topic: topic.into(),
            partitions: 1,
            replication_factor: 1,
            acks: "all".into(),
            security_protocol: "plaintext".into(),
            sasl_mechanism: None,
            sasl_username: None,
            sasl_password: None,
            ca_file: None,
        }
    }

    #[test]
    fn validates_brokers_topic_and_security() {
        let mut p = Problems::default();
        let mut r = Redactor::default();
        let t = Duration::from_secs(2);
        assert!(KafkaProbe::build(
            &cfg("127.0.0.1:9092", "probe"),
            "k",
            t,
            &mut BuildCx::new(&mut p, &mut r)
        )
        .is_some());
        assert!(p.is_empty());
        assert!(KafkaProbe::build(
            &cfg("nohost", "bad topic"),
            "k",
            t,
            &mut BuildCx::new(&mut p, &mut r)
        )
        .is_none());
        assert_eq!(p.0.len(), 2);
        let mut c = cfg("127.0.0.1:9092", "probe");
        c.security_protocol = "sasl_plaintext".into();
        c.sasl_username = Some("u".into());
        c.sasl_password = Some("kafka-s3cret".into());
        assert!(KafkaProbe::build(&c, "k", t, &mut BuildCx::new(&mut p, &mut r)).is_some());
        assert_eq!(r.redact("kafka-s3cret"), "***");
    }

    #[test]
    fn errors_map_to_reasons() {
        let e = KafkaError::MessageProduction(RDKafkaErrorCode::MessageTimedOut);
        assert_eq!(kafka_failure(&e, false).reason, Reason::Timeout);
        assert_eq!(kafka_failure(&e, true).reason, Reason::BrokerDown);
        let e = KafkaError::MessageProduction(RDKafkaErrorCode::UnknownTopicOrPartition);
        assert_eq!(kafka_failure(&e, false).reason, Reason::TopicError);
    }
}
