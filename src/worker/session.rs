//! One bot session with the scheduler: create it, then UpdateBotSession in
//! a loop, starting leases as they arrive and reporting them as they end.
//!
//! Idle, the update long-polls (BuildGrid holds it until a lease is
//! assigned or most of the keepalive timeout has passed). Busy, the bot
//! updates at least every third of the keepalive timeout the server
//! announces in `expire_time`, and at once when a lease finishes. On
//! shutdown it stops taking leases, hands back any that arrive, waits for
//! the running ones up to the grace period (then abandons them), and sends
//! a last update with `BOT_TERMINATING`. What to send is decided by the
//! pure [`Book`]; running a lease is `super::execute`.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{mpsc, watch};
use tonic::Code;
use tonic::transport::Channel;

use super::lease::{Book, Outcome, Start};
use super::{Shared, WorkerError};
use crate::proto::rwapi::{self, bots_client::BotsClient};

/// Deadline of a long-polling update; BuildGrid answers within 80% of
/// the smaller of this and its keepalive timeout.
const LONG_POLL: Duration = Duration::from_secs(60);
/// Deadline of an update that must not wait (busy, or reporting).
const SHORT_CALL: Duration = Duration::from_secs(20);
/// Keepalive period until the server has said otherwise.
const DEFAULT_KEEPALIVE: Duration = Duration::from_secs(10);
/// Transient failures in a row a draining session tolerates before giving
/// up on a clean goodbye.
const DRAIN_ATTEMPTS: u32 = 10;

/// Codes after which the same call may simply be tried again.
fn transient(code: Code) -> bool {
    matches!(
        code,
        Code::Unavailable
            | Code::DeadlineExceeded
            | Code::Unknown
            | Code::Internal
            | Code::ResourceExhausted
            | Code::Aborted
            | Code::Cancelled
    )
}

/// How often to update while busy: a third of the time the server gives
/// until the session expires, within sane bounds.
pub fn keepalive_period(expire_time: Option<&prost_types::Timestamp>, now: SystemTime) -> Duration {
    let Some(t) = expire_time else {
        return DEFAULT_KEEPALIVE;
    };
    let Ok(expire) = SystemTime::try_from(*t) else {
        return DEFAULT_KEEPALIVE;
    };
    let left = expire.duration_since(now).unwrap_or_default();
    (left / 3).clamp(Duration::from_millis(200), Duration::from_secs(60))
}

/// Runs slot `slot`'s session until shutdown has drained it.
pub async fn run(
    shared: Arc<Shared>,
    slot: usize,
    shutdown: watch::Receiver<bool>,
) -> Result<(), WorkerError> {
    let bot_id = format!("{}/{slot}", shared.bot_prefix);
    let bots = BotsClient::new(shared.bots_channel.clone())
        .max_decoding_message_size(64 << 20)
        .max_encoding_message_size(64 << 20);
    let (done_tx, done_rx) = mpsc::unbounded_channel::<(String, Outcome)>();
    let mut bot = Bot {
        shared,
        bot_id,
        bots,
        done_tx,
        done_rx,
        shutdown,
    };
    loop {
        let Some(session) =
            create(&bot.shared, &mut bot.bots, &bot.bot_id, &mut bot.shutdown).await?
        else {
            return Ok(());
        };
        if bot.drive(session).await == End::Closed {
            return Ok(());
        }
    }
}

/// One slot's bot: its connection to the scheduler and its leases'
/// outcomes, across the sessions it creates.
struct Bot {
    shared: Arc<Shared>,
    bot_id: String,
    bots: BotsClient<Channel>,
    done_tx: mpsc::UnboundedSender<(String, Outcome)>,
    done_rx: mpsc::UnboundedReceiver<(String, Outcome)>,
    shutdown: watch::Receiver<bool>,
}

/// What one bot session holds between updates.
struct Live {
    session: rwapi::BotSession,
    book: Book,
    /// Set from every answer's `expire_time` before it is needed.
    keepalive: Duration,
    grace_end: Option<Instant>,
    /// Transient failures of UpdateBotSession in a row.
    failures: u32,
}

/// How a session ended.
#[derive(Debug, PartialEq, Eq)]
enum End {
    /// Drained and said goodbye (or gave up on it): the bot is done.
    Closed,
    /// The scheduler no longer knows it: create a new one.
    Lost,
}

/// What to do after one UpdateBotSession.
enum Next {
    /// Update again at once.
    Update,
    /// Go on to see whether to wait.
    Settle,
    End(End),
}

impl Bot {
    /// Runs one bot session, updating it until it closes or is lost.
    async fn drive(&mut self, mut session: rwapi::BotSession) -> End {
        tracing::info!(bot = %self.bot_id, session = %session.name, "bot session created");
        let mut book = Book::new();
        // CreateBotSession may already carry a lease.
        let first = std::mem::take(&mut session.leases);
        let starts = book.on_response(&first, &[]);
        spawn_all(&self.shared, &self.bot_id, &self.done_tx, starts);
        let mut live = Live {
            session,
            book,
            keepalive: DEFAULT_KEEPALIVE,
            grace_end: None,
            failures: 0,
        };
        loop {
            self.take_news(&mut live);
            let idle = live.book.is_empty() && !live.book.draining();
            let (leases, completed) = live.book.report();
            live.session.status = if live.book.draining() {
                rwapi::BotStatus::BotTerminating
            } else {
                rwapi::BotStatus::Ok
            } as i32;
            live.session.leases = leases;
            let Some(answer) = self.update(&live.session, idle).await else {
                continue;
            };
            match self.on_answer(&mut live, answer, idle, &completed).await {
                Next::Update => continue,
                Next::Settle => {}
                Next::End(end) => return end,
            }
            let book = &live.book;
            if book.draining() && book.is_empty() {
                // The update just acknowledged carried BOT_TERMINATING and
                // every completion.
                tracing::info!(bot = %self.bot_id, "bot session closed");
                return End::Closed;
            }
            if book.has_done() || (book.is_empty() && !book.draining()) {
                continue; // report now, or long-poll for work
            }
            self.wait_busy(&mut live).await;
        }
    }

    /// Takes the leases that ended into the book; on shutdown stops taking
    /// new ones, and past the grace period abandons those still running.
    fn take_news(&mut self, live: &mut Live) {
        while let Ok((id, outcome)) = self.done_rx.try_recv() {
            live.book.finish(&id, outcome);
        }
        if *self.shutdown.borrow() && !live.book.draining() {
            live.book.stop_accepting();
            live.grace_end = Some(Instant::now() + self.shared.grace);
            tracing::info!(bot = %self.bot_id, running = live.book.running(), "shutting down: no new leases");
        }
        if live.grace_end.is_some_and(|g| Instant::now() >= g) {
            let n = live.book.abandon_running();
            if n > 0 {
                tracing::warn!(bot = %self.bot_id, leases = n, "grace period over: abandoning running leases");
            }
        }
    }

    /// Sends the session: a long poll when `idle`, which shutdown
    /// interrupts (None).
    async fn update(
        &mut self,
        session: &rwapi::BotSession,
        idle: bool,
    ) -> Option<Result<tonic::Response<rwapi::BotSession>, tonic::Status>> {
        let req = rwapi::UpdateBotSessionRequest {
            name: session.name.clone(),
            bot_session: Some(session.clone()),
            update_mask: None,
        };
        let req = self.shared.md.request_with_timeout(
            req,
            None,
            if idle { LONG_POLL } else { SHORT_CALL },
        );
        if !idle {
            return Some(self.bots.update_bot_session(req).await);
        }
        let mut b = self.bots.clone();
        tokio::select! {
            r = b.update_bot_session(req) => Some(r),
            // Dropping the long poll: BuildGrid then skips the
            // assignment, or hands it to us again next time.
            _ = self.shutdown.wait_for(|s| *s) => None,
        }
    }

    /// Takes the scheduler's answer: new leases start, completions are
    /// acknowledged; a transient failure is retried after a backoff, any
    /// other loses the session.
    async fn on_answer(
        &mut self,
        live: &mut Live,
        answer: Result<tonic::Response<rwapi::BotSession>, tonic::Status>,
        idle: bool,
        completed: &[String],
    ) -> Next {
        let bot_id = &self.bot_id;
        match answer {
            Ok(resp) => {
                live.failures = 0;
                let resp = resp.into_inner();
                live.keepalive = keepalive_period(resp.expire_time.as_ref(), SystemTime::now());
                let starts = live.book.on_response(&resp.leases, completed);
                for id in completed {
                    tracing::debug!(bot = %bot_id, lease = %id, "completion reported");
                }
                live.session.version = resp.version;
                live.session.expire_time = resp.expire_time;
                spawn_all(&self.shared, bot_id, &self.done_tx, starts);
                Next::Settle
            }
            Err(s) if transient(s.code()) => {
                live.failures += 1;
                if idle && s.code() == Code::DeadlineExceeded {
                    live.failures = 0; // a long poll that simply ran out
                } else {
                    tracing::warn!(bot = %bot_id, code = ?s.code(), message = s.message(), "UpdateBotSession failed; retrying");
                    if live.book.draining() && live.failures >= DRAIN_ATTEMPTS {
                        tracing::warn!(bot = %bot_id, "scheduler unreachable while shutting down; leaving");
                        return Next::End(End::Closed);
                    }
                    backoff(live.failures).await;
                }
                Next::Update
            }
            Err(s) => {
                // The scheduler no longer knows this session (it
                // expired, or the scheduler restarted): start over.
                // Leases still running are the scheduler's to reassign.
                tracing::warn!(bot = %bot_id, code = ?s.code(), message = s.message(), "bot session lost; creating a new one");
                Next::End(if live.book.draining() {
                    End::Closed
                } else {
                    End::Lost
                })
            }
        }
    }

    /// Busy: waits for a lease to end, the keepalive, or shutdown (and
    /// no longer than the grace period lasts).
    async fn wait_busy(&mut self, live: &mut Live) {
        let grace_left = live
            .grace_end
            .map(|g| g.saturating_duration_since(Instant::now()));
        let wait = grace_left.map_or(live.keepalive, |g| g.min(live.keepalive));
        let draining = live.book.draining();
        tokio::select! {
            Some((id, outcome)) = self.done_rx.recv() => { live.book.finish(&id, outcome); }
            _ = tokio::time::sleep(wait) => {}
            _ = self.shutdown.wait_for(|s| *s), if !draining => {}
        }
    }
}

/// Runs each lease on its own task; its outcome comes back on `tx`.
fn spawn_all(
    shared: &Arc<Shared>,
    bot_id: &str,
    tx: &mpsc::UnboundedSender<(String, Outcome)>,
    starts: Vec<Start>,
) {
    for start in starts {
        let (shared, tx, bot) = (shared.clone(), tx.clone(), bot_id.to_string());
        tokio::spawn(async move {
            let outcome = super::execute(&shared, &bot, &start).await;
            let _ = tx.send((start.lease_id, outcome));
        });
    }
}

/// CreateBotSession, retried while the scheduler is unreachable. `None`
/// when shutdown came first.
async fn create(
    shared: &Shared,
    bots: &mut BotsClient<Channel>,
    bot_id: &str,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<Option<rwapi::BotSession>, WorkerError> {
    let mut failures = 0;
    loop {
        if *shutdown.borrow() {
            return Ok(None);
        }
        let req = rwapi::CreateBotSessionRequest {
            parent: shared.instance.clone(),
            bot_session: Some(rwapi::BotSession {
                bot_id: bot_id.to_string(),
                status: rwapi::BotStatus::Ok as i32,
                worker: Some(shared.worker.clone()),
                ..Default::default()
            }),
        };
        // BuildGrid may long-poll CreateBotSession for a first lease; the
        // lease then arrives with the next update instead.
        let req = shared.md.request_with_timeout(req, None, SHORT_CALL);
        let answer = tokio::select! {
            r = bots.create_bot_session(req) => r,
            _ = shutdown.wait_for(|s| *s) => return Ok(None),
        };
        match answer {
            Ok(s) => return Ok(Some(s.into_inner())),
            Err(s) if transient(s.code()) => {
                failures += 1;
                tracing::warn!(bot = %bot_id, code = ?s.code(), message = s.message(), "CreateBotSession failed; retrying");
                backoff(failures).await;
            }
            Err(s) => {
                return Err(WorkerError::Refused {
                    scheduler: shared.scheduler.clone(),
                    code: s.code(),
                    message: s.message().to_string(),
                });
            }
        }
    }
}

async fn backoff(failures: u32) {
    let ms = 100u64 << failures.min(5);
    tokio::time::sleep(Duration::from_millis(ms.min(3_000))).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keepalive_is_a_third_of_the_time_left() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let at = |s: i64| prost_types::Timestamp {
            seconds: s,
            nanos: 0,
        };
        assert_eq!(
            keepalive_period(Some(&at(1_030)), now),
            Duration::from_secs(10)
        );
        assert_eq!(keepalive_period(None, now), DEFAULT_KEEPALIVE);
        // Already expired (clock skew): update soon, not in a tight loop.
        assert_eq!(
            keepalive_period(Some(&at(900)), now),
            Duration::from_millis(200)
        );
        assert_eq!(
            keepalive_period(Some(&at(100_000)), now),
            Duration::from_secs(60)
        );
    }

    #[test]
    fn only_transport_like_failures_are_retried_in_place() {
        assert!(transient(Code::Unavailable));
        assert!(transient(Code::DeadlineExceeded));
        assert!(!transient(Code::InvalidArgument));
        assert!(!transient(Code::FailedPrecondition));
        assert!(!transient(Code::NotFound));
    }
}
