//! One shard of a load run: a single-threaded runtime with one pacer and a
//! pool of workers, each owning one keep-alive connection.
//!
//! The pacer is the only place that decides when requests start. In the open
//! model it hands each request, at its intended start time, to an idle
//! worker, opens a new connection if none is idle, and counts the request as
//! dropped when the connection cap is reached; it never waits for a worker,
//! so a slow target cannot slow the schedule. In the closed model it keeps
//! the number of active users at the profile's target, and each user starts
//! its next request as soon as the last one ends. Workers share one send
//! path, which records latency from the intended start (corrected for
//! coordinated omission) and service time from the actual send.
//!
//! Shards share nothing while running: each reports its per-second counts to
//! the coordinator over a channel.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, Notify};
use tokio::time::Instant;

use super::arrival::{Arrivals, Profile};
use super::client::{Conn, Reply, Request};
use super::histogram::Hist;
use crate::net::Reason;

/// Open (arrival rate) or closed (active users) model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Model {
    Rate,
    Users,
}

/// One weighted request of the mix, rendered once for the send path.
#[derive(Debug)]
pub(crate) struct MixItem {
    pub(crate) name: String,
    pub(crate) weight: u32,
    pub(crate) request: Request,
}

/// Counts for one entry over one second or the whole run.
#[derive(Clone, Debug)]
pub struct EntryStats {
    pub(crate) requests: u64,
    pub(crate) errors: [u64; Reason::ALL.len()],
    pub(crate) dropped: u64,
    pub(crate) latency: Hist,
    pub(crate) service: Hist,
}

impl EntryStats {
    pub(crate) fn new(precise: bool) -> EntryStats {
        let h = if precise { Hist::precise } else { Hist::coarse };
        EntryStats {
            requests: 0,
            errors: [0; Reason::ALL.len()],
            dropped: 0,
            latency: h(),
            service: h(),
        }
    }

    pub(crate) fn errors(&self) -> u64 {
        self.errors.iter().sum()
    }

    pub(crate) fn add(&mut self, o: &EntryStats) {
        self.requests += o.requests;
        self.dropped += o.dropped;
        for (a, b) in self.errors.iter_mut().zip(o.errors) {
            *a += b;
        }
        self.latency.add(&o.latency);
        self.service.add(&o.service);
    }

    pub(crate) fn record(&mut self, corrected: Duration, service: Duration, error: Option<Reason>) {
        self.requests += 1;
        if let Some(r) = error {
            self.errors[reason_index(r)] += 1;
        }
        self.latency.record(corrected.as_micros() as u64);
        self.service.record(service.as_micros() as u64);
    }
}

pub(crate) fn reason_index(r: Reason) -> usize {
    Reason::ALL
        .iter()
        .position(|x| *x == r)
        .expect("every reason is in ALL")
}

/// What a shard tells the coordinator.
#[derive(Debug)]
pub(crate) enum ShardReport {
    /// Counts for second `index` of the run (the last one may be partial).
    Second {
        index: u32,
        entries: Vec<EntryStats>,
        active: usize,
    },
    /// Whole-run counts at full precision; the shard is done.
    Done { entries: Vec<EntryStats> },
    /// The shard's thread panicked (or could not start): the run is an error.
    Died { shard: usize, reason: String },
}

/// A shard's share of the run.
#[derive(Debug)]
pub(crate) struct ShardPlan {
    pub(crate) model: Model,
    pub(crate) profile: Profile,
    pub(crate) mix: Arc<Vec<MixItem>>,
    pub(crate) max_connections: usize,
    /// This shard's share of `limits.max_rate`; the closed model's users
    /// wait for their turn under it (the open model's schedule is checked
    /// against it when compiled).
    pub(crate) max_rate: f64,
    pub(crate) request_timeout: Duration,
    pub(crate) seed: u64,
}

#[derive(Clone, Copy)]
struct Ticket {
    intended: Instant,
    entry: usize,
}

/// Where an idle worker waits for its next request.
struct Slot {
    ticket: Cell<Option<Ticket>>,
    closed: Cell<bool>,
    notify: Notify,
}

impl Slot {
    fn new() -> Rc<Slot> {
        Rc::new(Slot {
            ticket: Cell::new(None),
            closed: Cell::new(false),
            notify: Notify::new(),
        })
    }

    fn give(&self, t: Ticket) {
        self.ticket.set(Some(t));
        self.notify.notify_one();
    }

    fn close(&self) {
        self.closed.set(true);
        self.notify.notify_one();
    }

    async fn wait(&self) -> Option<Ticket> {
        loop {
            if let Some(t) = self.ticket.take() {
                return Some(t);
            }
            if self.closed.get() {
                return None;
            }
            self.notify.notified().await;
        }
    }
}

struct State {
    second: Vec<EntryStats>,
    total: Vec<EntryStats>,
    idle: Vec<Rc<Slot>>,
    live: usize,
    /// Users asked to stop after their current request (closed model).
    retire: usize,
    stopping: bool,
    rng: u64,
    cumulative: Vec<u64>,
    /// The earliest start the rate limit allows the next user request.
    next_start: Instant,
}

impl State {
    fn pick(&mut self) -> usize {
        let total = *self.cumulative.last().expect("at least one entry");
        if self.cumulative.len() == 1 {
            return 0;
        }
        // xorshift64*: cheap, and each shard has its own seed.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        let r = self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D) % total;
        self.cumulative
            .iter()
            .position(|c| r < *c)
            .expect("r < total")
    }

    fn record(&mut self, entry: usize, t: &Ticket, sent: Instant, error: Option<Reason>) {
        let end = Instant::now();
        let (corrected, service) = (end - t.intended, end - sent);
        self.second[entry].record(corrected, service, error);
        self.total[entry].record(corrected, service, error);
    }

    fn drop_one(&mut self, entry: usize) {
        self.second[entry].dropped += 1;
        self.total[entry].dropped += 1;
    }
}

struct Shard {
    plan: ShardPlan,
    state: RefCell<State>,
}

/// What runs one shard on its own thread: [`run`], or a stand-in in tests.
pub(crate) type ShardFn = fn(ShardPlan, mpsc::UnboundedSender<ShardReport>, Arc<AtomicBool>);

/// Runs a shard to the end of its profile, or until `stop` is set.
pub fn run(plan: ShardPlan, tx: mpsc::UnboundedSender<ShardReport>, stop: Arc<AtomicBool>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a single-threaded runtime");
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async move {
        let n = plan.mix.len();
        let mut cumulative = Vec::with_capacity(n);
        let mut acc = 0u64;
        for e in plan.mix.iter() {
            acc += u64::from(e.weight);
            cumulative.push(acc);
        }
        let state = State {
            second: vec![EntryStats::new(false); n],
            total: vec![EntryStats::new(true); n],
            idle: Vec::new(),
            live: 0,
            retire: 0,
            stopping: false,
            rng: plan.seed | 1,
            cumulative,
            next_start: Instant::now(),
        };
        let shard = Rc::new(Shard {
            plan,
            state: RefCell::new(state),
        });
        pace(&shard, &tx, &stop).await;
        drain(&shard).await;
        let mut st = shard.state.borrow_mut();
        let entries = std::mem::take(&mut st.total);
        let _ = tx.send(ShardReport::Done { entries });
    });
}

async fn pace(shard: &Rc<Shard>, tx: &mpsc::UnboundedSender<ShardReport>, stop: &AtomicBool) {
    let timer = super::timer::Timer::new().ok();
    let start = Instant::now();
    let end = start + shard.plan.profile.duration();
    let mut arrivals = Arrivals::new(shard.plan.profile.clone());
    // A schedule past what an Instant holds (a non-finite rate) ends it.
    let at = |t: f64| {
        Duration::try_from_secs_f64(t)
            .ok()
            .and_then(|d| start.checked_add(d))
    };
    let rate_model = shard.plan.model == Model::Rate;
    let mut next = arrivals.next_time().filter(|_| rate_model).and_then(at);
    let mut second_end = start + Duration::from_secs(1);
    let mut index = 0;
    loop {
        let now = Instant::now();
        match shard.plan.model {
            Model::Rate => {
                while let Some(t) = next.filter(|t| *t <= now) {
                    dispatch(shard, t);
                    next = arrivals.next_time().and_then(at);
                }
            }
            Model::Users => {
                // Each user holds a connection: users are capped like them.
                let target = shard.plan.profile.at((now - start).as_secs_f64()).round() as usize;
                set_users(shard, target.min(shard.plan.max_connections), now);
            }
        }
        if now >= second_end {
            report(shard, tx, index);
            index += 1;
            second_end += Duration::from_secs(1);
        }
        let over = match shard.plan.model {
            Model::Rate => next.is_none(),
            Model::Users => now >= end,
        };
        if over || stop.load(Ordering::Relaxed) {
            break;
        }
        let wake = match (shard.plan.model, next) {
            (Model::Rate, Some(t)) => t.min(second_end),
            _ => (now + Duration::from_millis(50)).min(second_end),
        };
        // A due wake-up completes without yielding; yield so workers run.
        tokio::task::yield_now().await;
        match &timer {
            Some(t) if t.sleep_until(wake).await.is_ok() => {}
            _ => tokio::time::sleep_until(wake).await,
        }
    }
    shard.state.borrow_mut().stopping = true;
    report(shard, tx, index);
}

/// Hands a request to an idle worker, or a new one, or counts it dropped.
fn dispatch(shard: &Rc<Shard>, intended: Instant) {
    let mut st = shard.state.borrow_mut();
    let entry = st.pick();
    let ticket = Ticket { intended, entry };
    if let Some(slot) = st.idle.pop() {
        slot.give(ticket);
    } else if st.live < shard.plan.max_connections {
        st.live += 1;
        tokio::task::spawn_local(worker(shard.clone(), Some(ticket)));
    } else {
        st.drop_one(entry);
    }
}

/// Brings the number of active users to `target` (closed model).
fn set_users(shard: &Rc<Shard>, target: usize, now: Instant) {
    let mut st = shard.state.borrow_mut();
    let active = st.live - st.retire;
    if active > target {
        st.retire += active - target;
    } else if active < target {
        let mut missing = target - active;
        let unretire = missing.min(st.retire);
        st.retire -= unretire;
        missing -= unretire;
        for _ in 0..missing {
            st.live += 1;
            let entry = st.pick();
            tokio::task::spawn_local(worker(
                shard.clone(),
                Some(Ticket {
                    intended: now,
                    entry,
                }),
            ));
        }
    }
}

fn report(shard: &Shard, tx: &mpsc::UnboundedSender<ShardReport>, index: u32) {
    let mut st = shard.state.borrow_mut();
    let fresh = vec![EntryStats::new(false); st.second.len()];
    let entries = std::mem::replace(&mut st.second, fresh);
    let active = st.live.saturating_sub(st.idle.len() + st.retire);
    let _ = tx.send(ShardReport::Second {
        index,
        entries,
        active,
    });
}

/// Lets requests in flight finish, up to the request timeout.
async fn drain(shard: &Rc<Shard>) {
    for slot in shard.state.borrow_mut().idle.drain(..) {
        slot.close();
    }
    let deadline = Instant::now() + shard.plan.request_timeout + Duration::from_millis(100);
    while shard.state.borrow().live > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn worker(shard: Rc<Shard>, first: Option<Ticket>) {
    let slot = Slot::new();
    let mut conn: Option<Conn> = None;
    let mut next = first;
    loop {
        let ticket = match next.take() {
            Some(t) => t,
            None => match slot.wait().await {
                Some(t) => t,
                None => break,
            },
        };
        let ticket = match shard.plan.model {
            Model::Rate => ticket,
            Model::Users => wait_turn(&shard, ticket).await,
        };
        let request = &shard.plan.mix[ticket.entry].request;
        let sent = Instant::now();
        let error = match tokio::time::timeout(shard.plan.request_timeout, send(&mut conn, request))
            .await
        {
            Ok(r) => r.err(),
            Err(_) => {
                conn = None;
                Some(Reason::Timeout)
            }
        };
        let mut st = shard.state.borrow_mut();
        st.record(ticket.entry, &ticket, sent, error);
        if st.stopping {
            break;
        }
        match shard.plan.model {
            Model::Rate => st.idle.push(slot.clone()),
            Model::Users if st.retire > 0 => {
                st.retire -= 1;
                break;
            }
            Model::Users => {
                let entry = st.pick();
                next = Some(Ticket {
                    intended: Instant::now(),
                    entry,
                });
            }
        }
    }
    shard.state.borrow_mut().live -= 1;
}

/// Holds a closed-model user to the shard's rate limit: requests start at
/// most `max_rate` a second, each user waiting for its turn. The wait is
/// the limit's, not the target's, so latency counts from the turn.
async fn wait_turn(shard: &Shard, mut t: Ticket) -> Ticket {
    // A limit of 0/s (1/0 is infinite) allows a request a day.
    let gap = Duration::try_from_secs_f64(1.0 / shard.plan.max_rate)
        .unwrap_or(Duration::from_secs(86_400))
        .min(Duration::from_secs(86_400));
    let turn = {
        let mut st = shard.state.borrow_mut();
        let turn = st.next_start.max(Instant::now());
        st.next_start = turn.checked_add(gap).unwrap_or(turn);
        turn
    };
    tokio::time::sleep_until(turn).await;
    t.intended = t.intended.max(turn);
    t
}

/// One request on the worker's connection, opening it if needed.
async fn send(conn: &mut Option<Conn>, req: &Request) -> Result<(), Reason> {
    if !conn.as_ref().is_some_and(|c| c.serves(req)) {
        *conn = Some(Conn::open(req).await?);
    }
    let c = conn.as_mut().expect("opened above");
    match c.exchange(req).await {
        Ok(Reply::Ok { reuse }) => {
            if !reuse {
                *conn = None;
            }
            Ok(())
        }
        Ok(Reply::Status { reuse }) => {
            if !reuse {
                *conn = None;
            }
            Err(Reason::Status)
        }
        Err(r) => {
            *conn = None;
            Err(r)
        }
    }
}
