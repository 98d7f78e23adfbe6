//! The scenarios: flooding and paced publish/subscribe runs (fan-in, fan-out, QoS 1, latency),
//! and idle connections.
//!
//! Every run connects and subscribes first, then starts the clock and the publishers. A watchdog
//! ends the run when every subscriber has its messages (and, at QoS 1, every publisher its
//! PUBACKs), when nothing has moved for `idle_timeout`, or at the deadline; it then shuts the
//! sockets down so every task returns. Rates are counted up to the last progress seen, not up to
//! when the watchdog noticed.

use std::io;
use std::net::{Shutdown, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use event_listener::Event;
use smol::io::AsyncWriteExt;
use smol::{Executor, Timer};
use wren_codec::{DecodeOptions, Packet, QoS, Status, decode};

use crate::mqtt::{Conn, STAMP_LEN, Stamp, Stream, Template, VERSION, append_puback};
use crate::report::{self, Report, Value};

/// Where the broker is and how to label and bound a run.
#[derive(Debug, Clone)]
pub struct Target {
    /// Broker address (loopback): every connection of the run, but subscribers'.
    pub addr: SocketAddr,
    /// Subscribers' broker address (loopback): `addr` unless the run publishes on one broker
    /// and subscribes on another (`--sub-port`, a bridge between the two).
    pub sub_addr: SocketAddr,
    /// Connect over TLS (`--tls CAFILE`).
    pub tls: Option<crate::mqtt::Tls>,
    /// Broker name for the reports.
    pub label: String,
    /// Broker process, for its CPU time and memory.
    pub broker_pid: Option<u32>,
    /// The subscribers' broker process (with `sub_addr` another broker), for its CPU time.
    pub sub_broker_pid: Option<u32>,
    /// Hard limit on one run (after connecting).
    pub deadline: Duration,
    /// A run with no progress for this long is over (messages were lost or the broker stalled).
    pub idle_timeout: Duration,
    /// Subscribers connect with persistent sessions (Clean Session 0), whose QoS 1 messages a
    /// broker with persistence keeps on disk until acknowledged.
    pub persistent_subscribers: bool,
}

/// How the messages of a publish/subscribe run are routed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topology {
    /// Publisher `i` publishes on `bench/i`; subscribers subscribe to `bench/#`.
    PerPublisher,
    /// Every publisher publishes on `bench/fanout`; subscribers subscribe to it.
    Shared,
}

/// A publish/subscribe run.
#[derive(Debug, Clone)]
pub struct Flood {
    /// Scenario name for the report.
    pub scenario: &'static str,
    /// Topics and filters.
    pub topology: Topology,
    /// Publisher connections.
    pub publishers: usize,
    /// Subscriber connections; each should receive every message.
    pub subscribers: usize,
    /// Messages published, over all publishers (the most, with `duration`).
    pub messages: u64,
    /// Stop publishing after this long (then wait for what was sent to arrive).
    pub duration: Option<Duration>,
    /// QoS of publishing and of the subscriptions.
    pub qos: QoS,
    /// Payload bytes per message (at least the 24-byte stamp).
    pub payload: usize,
    /// At most this many messages published ahead of the slowest subscriber; `None` floods.
    pub bound: Option<u64>,
    /// Most messages written per write call.
    pub batch: usize,
    /// QoS 1: most PUBACKs outstanding per publisher.
    pub window: u64,
    /// Publish at this rate (messages per second over all publishers) instead of flooding.
    pub pace: Option<f64>,
    /// Record end-to-end latency per message.
    pub record_latency: bool,
}

/// State the tasks of one run share.
struct Shared {
    /// Time base of stamps and progress times.
    base: Instant,
    stop: AtomicBool,
    /// Messages reserved for publishing, over all publishers.
    sent: AtomicU64,
    /// Distinct messages received, per subscriber.
    received: Vec<AtomicU64>,
    /// PUBACKs received, over all publishers.
    acked: AtomicU64,
    /// Publishers that have stopped publishing.
    publishers_done: AtomicUsize,
    /// Nanoseconds since `base` of the last message received or PUBACK.
    last_progress_ns: AtomicU64,
    /// Subscribers advanced (or the run stopped): publishers held by the bound re-check.
    progress: Event,
    bound: Option<u64>,
}

impl Shared {
    fn now_ns(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    fn touch(&self) {
        self.last_progress_ns.fetch_max(self.now_ns(), Relaxed);
    }

    fn stopped(&self) -> bool {
        self.stop.load(Relaxed)
    }

    fn min_received(&self) -> u64 {
        self.received
            .iter()
            .map(|r| r.load(Relaxed))
            .min()
            .unwrap_or(0)
    }

    /// Reserve up to `want` messages to publish, waiting while the bound is reached.
    /// Returns 0 once the run is stopped.
    async fn reserve(&self, want: u64) -> u64 {
        let Some(bound) = self.bound else {
            self.sent.fetch_add(want, Relaxed);
            return want;
        };
        loop {
            if self.stopped() {
                return 0;
            }
            if let Some(n) = self.try_reserve(want, bound) {
                return n;
            }
            let listener = self.progress.listen();
            if self.stopped() {
                return 0;
            }
            if let Some(n) = self.try_reserve(want, bound) {
                return n;
            }
            listener.await;
        }
    }

    fn try_reserve(&self, want: u64, bound: u64) -> Option<u64> {
        loop {
            let sent = self.sent.load(Relaxed);
            let ahead = sent.saturating_sub(self.min_received());
            let n = want.min(bound.saturating_sub(ahead));
            if n == 0 {
                return None;
            }
            if self
                .sent
                .compare_exchange(sent, sent + n, Relaxed, Relaxed)
                .is_ok()
            {
                return Some(n);
            }
        }
    }
}

/// Which messages a subscriber has seen, per publisher, to count distinct deliveries,
/// duplicates and reordering.
#[derive(Debug)]
struct Tracker {
    seen: Vec<Vec<u64>>,
    limit: Vec<u64>,
    max_seq: Vec<Option<u64>>,
    distinct: u64,
    duplicates: u64,
    reordered: u64,
    foreign: u64,
}

impl Tracker {
    fn new(per_publisher: &[u64]) -> Tracker {
        Tracker {
            // Grown as sequence numbers arrive: with a duration, most of the cap is never sent.
            seen: vec![Vec::new(); per_publisher.len()],
            limit: per_publisher.to_vec(),
            max_seq: vec![None; per_publisher.len()],
            distinct: 0,
            duplicates: 0,
            reordered: 0,
            foreign: 0,
        }
    }

    /// Record a message; true if it is one not seen before.
    fn record(&mut self, stamp: &Stamp) -> bool {
        let p = usize::try_from(stamp.publisher).unwrap_or(usize::MAX);
        let word = usize::try_from(stamp.seq / 64).unwrap_or(usize::MAX);
        let (Some(bits), Some(max), Some(&limit)) = (
            self.seen.get_mut(p),
            self.max_seq.get_mut(p),
            self.limit.get(p),
        ) else {
            self.foreign += 1;
            return false;
        };
        if stamp.seq >= limit {
            self.foreign += 1;
            return false;
        }
        if bits.len() <= word {
            bits.resize(word + 1, 0);
        }
        let Some(w) = bits.get_mut(word) else {
            self.foreign += 1;
            return false;
        };
        let mask = 1u64 << (stamp.seq % 64);
        if *w & mask != 0 {
            self.duplicates += 1;
            return false;
        }
        *w |= mask;
        if max.is_some_and(|m| stamp.seq < m) {
            self.reordered += 1;
        } else {
            *max = Some(stamp.seq);
        }
        self.distinct += 1;
        true
    }
}

/// What one subscriber saw.
#[derive(Debug, Default)]
struct SubResult {
    distinct: u64,
    duplicates: u64,
    reordered: u64,
    foreign: u64,
    latencies_ns: Vec<u64>,
    error: Option<String>,
}

static RUN: AtomicU64 = AtomicU64::new(0);

fn client_id(role: &str, i: usize) -> String {
    format!("wb{}-{}-{role}{i}", std::process::id(), RUN.load(Relaxed))
}

/// Messages of publisher `i` when `total` are split over `n` publishers.
fn share(total: u64, n: usize, i: usize) -> u64 {
    let n = n.max(1) as u64;
    let i = i as u64;
    total / n + u64::from(i < total % n)
}

/// Run a publish/subscribe scenario and report it.
pub async fn flood(
    ex: &'static Executor<'static>,
    target: &Target,
    cfg: &Flood,
) -> io::Result<Report> {
    RUN.fetch_add(1, Relaxed);
    let cfg = Arc::new(cfg.clone());
    let per_publisher: Vec<u64> = (0..cfg.publishers)
        .map(|i| share(cfg.messages, cfg.publishers, i))
        .collect();
    let (filter, topic_of): (&str, Box<dyn Fn(usize) -> String>) = match cfg.topology {
        Topology::PerPublisher => ("bench/#", Box::new(|i| format!("bench/{i}"))),
        Topology::Shared => ("bench/fanout", Box::new(|_| "bench/fanout".to_owned())),
    };

    let mut streams: Vec<Stream> = Vec::new();
    let mut subs = Vec::new();
    for i in 0..cfg.subscribers {
        let mut c = Conn::connect(
            target.sub_addr,
            target.tls.as_ref(),
            &client_id("s", i),
            60,
            !target.persistent_subscribers,
        )
        .await?;
        c.subscribe(filter, cfg.qos).await?;
        streams.push(c.stream.clone());
        subs.push(c);
    }
    let mut pubs = Vec::new();
    for i in 0..cfg.publishers {
        let c = Conn::connect(
            target.addr,
            target.tls.as_ref(),
            &client_id("p", i),
            60,
            true,
        )
        .await?;
        streams.push(c.stream.clone());
        pubs.push(c);
    }

    let sh = Arc::new(Shared {
        base: Instant::now(),
        stop: AtomicBool::new(false),
        sent: AtomicU64::new(0),
        received: (0..cfg.subscribers).map(|_| AtomicU64::new(0)).collect(),
        acked: AtomicU64::new(0),
        publishers_done: AtomicUsize::new(0),
        last_progress_ns: AtomicU64::new(0),
        progress: Event::new(),
        bound: cfg.bound,
    });
    let gen_cpu0 = report::cpu_time(None);
    let broker_cpu0 = target.broker_pid.and_then(|p| report::cpu_time(Some(p)));
    let sub_broker_cpu0 = target
        .sub_broker_pid
        .and_then(|p| report::cpu_time(Some(p)));

    let mut sub_tasks = Vec::new();
    for (i, c) in subs.into_iter().enumerate() {
        let (sh, cfg, per) = (sh.clone(), cfg.clone(), per_publisher.clone());
        sub_tasks.push(ex.spawn(subscriber(c, i, sh, cfg, per)));
    }
    let mut pub_tasks = Vec::new();
    for (i, c) in pubs.into_iter().enumerate() {
        let template = Template::new(&topic_of(i), cfg.qos, cfg.payload)?;
        let count = per_publisher.get(i).copied().unwrap_or(0);
        let (sh2, cfg2) = (sh.clone(), cfg.clone());
        pub_tasks.push(ex.spawn(publisher(c, i, count, template, sh2, cfg2, ex)));
    }

    // Watchdog.
    let deadline = Instant::now() + target.deadline;
    let mut last_seen = (u64::MAX, u64::MAX, u64::MAX);
    let mut last_change = Instant::now();
    let stalled;
    loop {
        Timer::after(Duration::from_millis(5)).await;
        let now = (
            sh.sent.load(Relaxed),
            sh.received.iter().map(|r| r.load(Relaxed)).sum::<u64>(),
            sh.acked.load(Relaxed),
        );
        // Once every publisher has stopped, `sent` is final: each subscriber should have it all.
        let published = sh.publishers_done.load(Relaxed) >= cfg.publishers;
        let all_received = sh.min_received() >= now.0;
        let all_acked = cfg.qos == QoS::AtMostOnce || now.2 >= now.0;
        if published && all_received && all_acked {
            stalled = false;
            break;
        }
        if now != last_seen {
            last_seen = now;
            last_change = Instant::now();
        } else if last_change.elapsed() >= target.idle_timeout || Instant::now() >= deadline {
            stalled = true;
            break;
        }
        if Instant::now() >= deadline {
            stalled = true;
            break;
        }
    }
    let elapsed_ns = sh.last_progress_ns.load(Relaxed).max(1);
    sh.stop.store(true, Relaxed);
    sh.progress.notify(usize::MAX);
    let gen_cpu = report::cpu_time(None)
        .zip(gen_cpu0)
        .map(|(b, a)| b.saturating_sub(a));
    let cpu_since = |pid: Option<u32>, before: Option<Duration>| {
        pid.and_then(|p| report::cpu_time(Some(p)))
            .zip(before)
            .map(|(b, a)| b.saturating_sub(a))
    };
    let sub_broker_cpu = cpu_since(target.sub_broker_pid, sub_broker_cpu0);
    // With a second broker, both brokers' work on the messages: the sum (unknown if either is).
    let broker_cpu = cpu_since(target.broker_pid, broker_cpu0);
    let broker_cpu = match target.sub_broker_pid {
        None => broker_cpu,
        Some(_) => broker_cpu.zip(sub_broker_cpu).map(|(a, b)| a + b),
    };
    for s in &streams {
        let _ = s.shutdown(Shutdown::Both);
    }
    let mut errors = Vec::new();
    for t in pub_tasks {
        if let Err(e) = t.await {
            errors.push(format!("publisher: {e}"));
        }
    }
    let mut total = SubResult::default();
    for t in sub_tasks {
        let r = t.await;
        total.distinct += r.distinct;
        total.duplicates += r.duplicates;
        total.reordered += r.reordered;
        total.foreign += r.foreign;
        total.latencies_ns.extend(r.latencies_ns);
        if let Some(e) = r.error {
            errors.push(format!("subscriber: {e}"));
        }
    }

    let mode = match (cfg.pace, cfg.bound) {
        (Some(_), _) => "-",
        (None, Some(_)) => "bounded",
        (None, None) => "unbounded",
    };
    let mut r = Report::new(cfg.scenario, mode, &target.label);
    let secs = elapsed_ns as f64 / 1e9;
    let sent = sh.sent.load(Relaxed);
    let expected = sent * cfg.subscribers as u64;
    r.set("rate", total.distinct as f64 / secs);
    r.set(
        "unit",
        if cfg.subscribers > 1 {
            "deliveries/s"
        } else {
            "msg/s"
        },
    );
    r.set("sent", sent);
    r.set("delivered", total.distinct);
    r.set("expected", expected);
    r.set("undelivered", expected.saturating_sub(total.distinct));
    r.set("duplicates", total.duplicates);
    r.set("reordered", total.reordered);
    r.set("elapsed_s", secs);
    r.set("publishers", cfg.publishers as u64);
    r.set("subscribers", cfg.subscribers as u64);
    r.set("qos", u64::from(cfg.qos.bits()));
    r.set("payload", cfg.payload as u64);
    r.set("bound", cfg.bound);
    if cfg.qos != QoS::AtMostOnce {
        r.set("acked", sh.acked.load(Relaxed));
    }
    if let Some(rate) = cfg.pace {
        r.set("target_rate", rate);
    }
    r.set("gen_cpu", gen_cpu.map(|c| c.as_secs_f64() / secs));
    r.set("broker_cpu", broker_cpu.map(|c| c.as_secs_f64() / secs));
    if target.sub_addr != target.addr {
        r.set("sub_addr", target.sub_addr.to_string().as_str());
        r.set(
            "sub_broker_cpu",
            sub_broker_cpu.map(|c| c.as_secs_f64() / secs),
        );
    }
    // Deliveries per second of broker CPU: efficiency, less skewed than the rate by other load on
    // the machine (a single-threaded broker gets one share of a busy machine, not more).
    r.set(
        "per_core",
        broker_cpu
            .map(|c| c.as_secs_f64())
            .filter(|&c| c > 0.0)
            .map(|c| total.distinct as f64 / c),
    );
    if cfg.record_latency {
        let mut lat = total.latencies_ns;
        // The first messages pay for cold caches and lazily built broker state.
        let warmup = (lat.len() / 20).min(500);
        lat.drain(..warmup);
        lat.sort_unstable();
        let us = |q: f64| report::quantile(&lat, q).map(|ns| ns as f64 / 1e3);
        r.set("samples", lat.len() as u64);
        r.set("p50_us", us(0.5));
        r.set("p99_us", us(0.99));
        r.set("p999_us", us(0.999));
        r.set("max_us", us(1.0));
    }
    r.set("stalled", u64::from(stalled));
    if total.foreign > 0 {
        errors.push(format!("{} messages not from this run", total.foreign));
    }
    r.set(
        "errors",
        if errors.is_empty() {
            Value::Null
        } else {
            Value::Str(errors.join("; "))
        },
    );
    Ok(r)
}

async fn subscriber(
    mut conn: Conn,
    idx: usize,
    sh: Arc<Shared>,
    cfg: Arc<Flood>,
    per_publisher: Vec<u64>,
) -> SubResult {
    let mut tracker = Tracker::new(&per_publisher);
    let mut latencies = Vec::new();
    let mut acks = Vec::new();
    let mut writer = conn.stream.clone();
    let opts = DecodeOptions::new(VERSION);
    let mut error = None;
    let mut recv_ns = sh.now_ns();
    // Wake as many waiting publishers as new batches fit under the bound.
    let batch = cfg.batch.max(1) as u64;
    loop {
        let mut pos = 0;
        let before = tracker.distinct;
        loop {
            let rest = conn.filled_bytes().get(pos..).unwrap_or_default();
            match decode(rest, opts) {
                Ok(Status::Complete(d)) => {
                    if let Packet::Publish(p) = d.packet {
                        if let Some(stamp) = Stamp::read(p.payload) {
                            tracker.record(&stamp);
                            if cfg.record_latency {
                                latencies.push(recv_ns.saturating_sub(stamp.sent_ns));
                            }
                        }
                        if let Some(pid) = p.qos_pid.packet_id() {
                            append_puback(&mut acks, pid);
                        }
                    }
                    pos += d.consumed;
                }
                Ok(Status::Partial(_)) => break,
                Err(e) => {
                    error = Some(format!("decode: {e:?}"));
                    break;
                }
            }
        }
        conn.consume(pos);
        if !acks.is_empty() {
            if let Err(e) = writer.write_all(&acks).await {
                if !sh.stopped() {
                    error = Some(format!("write PUBACK: {e}"));
                }
                break;
            }
            acks.clear();
        }
        let new = tracker.distinct - before;
        if new > 0 {
            if let Some(r) = sh.received.get(idx) {
                r.fetch_add(new, Relaxed);
            }
            sh.last_progress_ns.fetch_max(recv_ns, Relaxed);
            sh.progress
                .notify_additional(new.div_ceil(batch) as usize + 1);
        }
        if error.is_some() || tracker.distinct >= cfg.messages || sh.stopped() {
            break;
        }
        match conn.fill().await {
            Ok(0) => break,
            Ok(_) => recv_ns = sh.now_ns(),
            Err(e) => {
                if !sh.stopped() {
                    error = Some(format!("read: {e}"));
                }
                break;
            }
        }
    }
    SubResult {
        distinct: tracker.distinct,
        duplicates: tracker.duplicates,
        reordered: tracker.reordered,
        foreign: tracker.foreign,
        latencies_ns: latencies,
        error,
    }
}

/// PUBACK progress of one QoS 1 publisher.
struct Window {
    acked: AtomicU64,
    event: Event,
}

async fn publisher(
    conn: Conn,
    idx: usize,
    count: u64,
    template: Template,
    sh: Arc<Shared>,
    cfg: Arc<Flood>,
    ex: &'static Executor<'static>,
) -> io::Result<()> {
    let mut writer = conn.stream.clone();
    let window = Arc::new(Window {
        acked: AtomicU64::new(0),
        event: Event::new(),
    });
    let reader = (cfg.qos != QoS::AtMostOnce)
        .then(|| ex.spawn(puback_reader(conn, count, window.clone(), sh.clone())));
    let batch = if cfg.pace.is_some() {
        1
    } else {
        cfg.batch.max(1) as u64
    };
    let publisher = u32::try_from(idx).unwrap_or(u32::MAX);
    let mut buf = Vec::with_capacity(template.len() * batch as usize);
    let mut seq = 0u64;
    let start = sh.base;
    let result = async {
        while seq < count && !sh.stopped() {
            if cfg.duration.is_some_and(|d| sh.base.elapsed() >= d) {
                break;
            }
            let mut want = batch.min(count - seq);
            if reader.is_some() {
                want = want.min(wait_window(&window, seq, cfg.window, &sh).await);
                if want == 0 {
                    break;
                }
            }
            if let Some(rate) = cfg.pace {
                Timer::at(start + Duration::from_secs_f64(seq as f64 / rate)).await;
            }
            let n = sh.reserve(want).await;
            if n == 0 {
                break;
            }
            buf.clear();
            let sent_ns = sh.now_ns();
            for k in seq..seq + n {
                let stamp = Stamp {
                    publisher,
                    seq: k,
                    sent_ns,
                };
                // Packet identifiers cycle through 1..=65535; the window keeps them unique.
                template.append(&mut buf, &stamp, (k % 65_535) as u16 + 1);
            }
            writer.write_all(&buf).await?;
            seq += n;
        }
        Ok::<(), io::Error>(())
    }
    .await;
    // Done publishing (the PUBACK reader goes on until the run stops).
    sh.publishers_done.fetch_add(1, Relaxed);
    if let Some(r) = reader {
        r.await;
    }
    match result {
        Err(_) if sh.stopped() => Ok(()),
        other => other,
    }
}

/// Wait until the QoS 1 window has room; how many more may go out (0 once stopped).
async fn wait_window(w: &Window, sent: u64, window: u64, sh: &Shared) -> u64 {
    loop {
        let room = |w: &Window| window.saturating_sub(sent - w.acked.load(Relaxed).min(sent));
        if sh.stopped() {
            return 0;
        }
        let r = room(w);
        if r > 0 {
            return r;
        }
        let listener = w.event.listen();
        if sh.stopped() {
            return 0;
        }
        let r = room(w);
        if r > 0 {
            return r;
        }
        listener.await;
    }
}

async fn puback_reader(mut conn: Conn, count: u64, w: Arc<Window>, sh: Arc<Shared>) {
    let opts = DecodeOptions::new(VERSION);
    let mut acked = 0u64;
    while acked < count && !sh.stopped() {
        // (With a duration the publisher may send fewer than `count`: the watchdog stops us.)
        let mut pos = 0;
        let mut new = 0;
        while let Ok(Status::Complete(d)) =
            decode(conn.filled_bytes().get(pos..).unwrap_or_default(), opts)
        {
            if let Packet::PubAck(_) = d.packet {
                new += 1;
            }
            pos += d.consumed;
        }
        conn.consume(pos);
        if new > 0 {
            acked += new;
            w.acked.store(acked, Relaxed);
            w.event.notify(usize::MAX);
            sh.acked.fetch_add(new, Relaxed);
            sh.touch();
        }
        if acked >= count {
            break;
        }
        if !matches!(conn.fill().await, Ok(n) if n > 0) {
            break;
        }
    }
    // Unblock the writer if it waits on the window and the run is over.
    w.event.notify(usize::MAX);
}

/// The topic idle connection `i` subscribes to in `idle-sub`.
fn idle_topic(i: usize) -> String {
    format!("idle/{i}")
}

/// Open `connections` idle connections, `concurrency` at a time, and report the connect rate and
/// the broker's resident memory per connection. With `subscribe`, connection `i` also subscribes
/// to `idle/<i>` at that QoS (scenario `idle-sub`), and the memory is read `settle` after the
/// last SUBACK rather than the last CONNACK.
pub async fn idle(
    ex: &'static Executor<'static>,
    target: &Target,
    connections: usize,
    concurrency: usize,
    settle: Duration,
    subscribe: Option<QoS>,
) -> io::Result<Report> {
    RUN.fetch_add(1, Relaxed);
    let rss_before = target.broker_pid.and_then(report::rss_bytes);
    let next = Arc::new(AtomicUsize::new(0));
    let conns = Arc::new(Mutex::new(Vec::with_capacity(connections)));
    let failures = Arc::new(Mutex::new(Vec::new()));
    let start = Instant::now();
    // When the last CONNACK (with `subscribe`, the last SUBACK) arrived.
    let last_ack = Arc::new(Mutex::new(start));
    let deadline = start + target.deadline;
    let mut workers = Vec::new();
    for _ in 0..concurrency.max(1) {
        let (next, conns, failures) = (next.clone(), conns.clone(), failures.clone());
        let last_ack = last_ack.clone();
        let addr = target.addr;
        let tls = target.tls.clone();
        workers.push(ex.spawn(async move {
            loop {
                let i = next.fetch_add(1, Relaxed);
                if i >= connections || Instant::now() >= deadline {
                    break;
                }
                let opened = async {
                    let mut c =
                        Conn::connect(addr, tls.as_ref(), &client_id("i", i), 300, true).await?;
                    if let Some(qos) = subscribe {
                        // An error unless the broker granted it.
                        c.subscribe(&idle_topic(i), qos).await?;
                    }
                    Ok::<Conn, io::Error>(c)
                };
                match opened.await {
                    Ok(c) => {
                        let now = Instant::now();
                        if let Ok(mut t) = last_ack.lock() {
                            *t = (*t).max(now);
                        }
                        conns.lock().map(|mut v| v.push((i, c))).unwrap_or(());
                    }
                    Err(e) => failures.lock().map(|mut v| v.push(e)).unwrap_or(()),
                }
            }
        }));
    }
    for w in workers {
        w.await;
    }
    let connect_secs = start.elapsed().as_secs_f64();
    // Let the broker finish setting the sessions up (and free handshake buffers) before reading.
    let last_ack = *last_ack.lock().map_err(|_| io::Error::other("poisoned"))?;
    Timer::at(last_ack + settle).await;
    let rss_after = target.broker_pid.and_then(report::rss_bytes);
    let conns = std::mem::take(&mut *conns.lock().map_err(|_| io::Error::other("poisoned"))?);
    let failed: Vec<String> = failures
        .lock()
        .map(|v| v.iter().map(|e| e.to_string()).collect())
        .unwrap_or_default();
    let connected = conns.len() as u64;
    // Check the connections are still up (PINGREQ answered): a broker that dropped them would
    // look frugal. Subscribed ones also publish one QoS 0 message to their own topic, which must
    // come back: a broker that acknowledged a subscription but kept none would look frugal too.
    let alive = Arc::new(AtomicU64::new(0));
    let routed = Arc::new(AtomicU64::new(0));
    let queue = Arc::new(Mutex::new(conns));
    let mut pingers = Vec::new();
    for _ in 0..concurrency.max(1) {
        let (queue, alive, routed) = (queue.clone(), alive.clone(), routed.clone());
        pingers.push(ex.spawn(async move {
            let mut done = Vec::new();
            loop {
                let next = queue.lock().ok().and_then(|mut q| q.pop());
                let Some((i, mut c)) = next else { break };
                let check = async {
                    if subscribe.is_some() {
                        let _ = check_routed(&mut c, i, &alive, &routed).await;
                    } else if c.ping().await.is_ok() {
                        alive.fetch_add(1, Relaxed);
                    }
                };
                smol::future::or(check, async {
                    Timer::after(Duration::from_secs(5)).await;
                })
                .await;
                done.push(c);
            }
            done
        }));
    }
    let mut conns = Vec::new();
    for p in pingers {
        conns.extend(p.await);
    }
    let scenario = if subscribe.is_some() {
        "idle-sub"
    } else {
        "idle"
    };
    let mut r = Report::new(scenario, "-", &target.label);
    r.set("connections", connections as u64);
    r.set("connected", connected);
    if let Some(qos) = subscribe {
        r.set("topics", "idle/<i>");
        r.set("qos", u64::from(qos.bits()));
        // Connections whose SUBACK granted the subscription (the others count as failed).
        r.set("subscribed", connected);
        r.set("routed", routed.load(Relaxed));
    }
    r.set("alive", alive.load(Relaxed));
    r.set("connect_rate", connected as f64 / connect_secs);
    r.set("settle_s", settle.as_secs_f64());
    r.set("rss_before", rss_before);
    r.set("rss_after", rss_after);
    r.set(
        "bytes_per_conn",
        rss_before
            .zip(rss_after)
            .filter(|_| connected > 0)
            .map(|(b, a)| (a as f64 - b as f64) / connected as f64),
    );
    r.set(
        "errors",
        match failed.first() {
            None => Value::Null,
            Some(e) => Value::Str(format!("{} failed connections, first: {e}", failed.len())),
        },
    );
    for c in &conns {
        let _ = c.stream.shutdown(Shutdown::Both);
    }
    Ok(r)
}

/// Publish one QoS 0 message on connection `i`'s own topic and send PINGREQ; count the PINGRESP
/// in `alive` and the message coming back (MQTT 3.1.1 delivers a client's own messages to its
/// matching subscriptions) in `routed`. The broker may answer in either order; once the PINGRESP
/// is in, the message gets one more second.
async fn check_routed(
    c: &mut Conn,
    i: usize,
    alive: &AtomicU64,
    routed: &AtomicU64,
) -> io::Result<()> {
    let topic = idle_topic(i);
    let publisher = u32::try_from(i).unwrap_or(u32::MAX);
    let mut out = Vec::new();
    let stamp = Stamp {
        publisher,
        seq: 0,
        sent_ns: 0,
    };
    Template::new(&topic, QoS::AtMostOnce, STAMP_LEN)?.append(&mut out, &stamp, 0);
    c.stream.write_all(&out).await?;
    c.send(&Packet::PingReq).await?;
    let (mut pong, mut back) = (false, false);
    while !(pong && back) {
        let read = c.next(|p| match p {
            Packet::PingResp => (true, false),
            Packet::Publish(p) => (
                false,
                p.topic.as_str() == topic
                    && Stamp::read(p.payload).is_some_and(|s| s.publisher == publisher),
            ),
            _ => (false, false),
        });
        let (is_pong, is_back) = if pong {
            let grace = Timer::after(Duration::from_secs(1));
            smol::future::or(read, async {
                grace.await;
                Err(io::ErrorKind::TimedOut.into())
            })
            .await?
        } else {
            read.await?
        };
        if is_pong && !pong {
            pong = true;
            alive.fetch_add(1, Relaxed);
        }
        if is_back && !back {
            back = true;
            routed.fetch_add(1, Relaxed);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_split_total_exactly() {
        let v: Vec<u64> = (0..7).map(|i| share(100, 7, i)).collect();
        assert_eq!(v.iter().sum::<u64>(), 100);
        assert_eq!(v, [15, 15, 14, 14, 14, 14, 14]);
        assert_eq!(share(5, 0, 0), 5);
    }

    #[test]
    fn tracker_counts_duplicates_reordering_and_foreign() {
        let mut t = Tracker::new(&[100, 3]);
        let s = |publisher, seq| Stamp {
            publisher,
            seq,
            sent_ns: 0,
        };
        assert!(t.record(&s(0, 0)));
        assert!(t.record(&s(0, 70)));
        assert!(t.record(&s(0, 5)));
        assert!(!t.record(&s(0, 70)));
        assert!(t.record(&s(1, 2)));
        assert!(!t.record(&s(2, 0)));
        assert!(!t.record(&s(1, 64)));
        assert_eq!(
            (t.distinct, t.duplicates, t.reordered, t.foreign),
            (4, 1, 1, 2)
        );
    }

    #[test]
    fn bound_limits_reservations_to_slowest_subscriber() {
        let sh = Shared {
            base: Instant::now(),
            stop: AtomicBool::new(false),
            sent: AtomicU64::new(0),
            received: vec![AtomicU64::new(0), AtomicU64::new(0)],
            acked: AtomicU64::new(0),
            publishers_done: AtomicUsize::new(0),
            last_progress_ns: AtomicU64::new(0),
            progress: Event::new(),
            bound: Some(100),
        };
        assert_eq!(sh.try_reserve(64, 100), Some(64));
        assert_eq!(sh.try_reserve(64, 100), Some(36));
        assert_eq!(sh.try_reserve(64, 100), None);
        sh.received[0].store(100, Relaxed);
        assert_eq!(
            sh.try_reserve(1, 100),
            None,
            "the slowest subscriber holds it"
        );
        sh.received[1].store(50, Relaxed);
        assert_eq!(sh.try_reserve(64, 100), Some(50));
    }
}
