//! Batched alert mail: failed verdicts queue up in a tokio task and leave in batches, never one
//! mail per file:
//! - failures caused by a package transaction (the file's last writer belonged to it) form that
//!   transaction's batch, which goes out as one mail, naming the transaction and its command
//!   line, when the daemon says the transaction's verdicts are done
//!   ([`MailerHandle::transaction_done`]: it ended and its deferred verdicts are decided), or at
//!   the end of its own window if alerts about it keep arriving later (scheduled scans);
//! - every other failure goes out per time window (`mail.batch_window_secs`, at least one
//!   second, counted from the first alert of a batch);
//! - [`MailerHandle::flush`] and the stop send everything pending.
//!
//! Queuing never blocks the caller: the channel is bounded, and alerts it refuses are counted and
//! reported in the next mail, never silently dropped. Delivery failures are logged at error level
//! and retried with backoff a bounded number of times; the next mail then says that an earlier
//! one was lost. Mail is the secondary channel: the AR log line is the primary record.

mod compose;
mod deliver;

use std::{
    collections::BTreeMap,
    str::FromStr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, SystemTime},
};

use lettre::{Message, message::Mailbox, message::header::ContentType};
use tokio::{
    sync::{Notify, mpsc},
    task::JoinHandle,
    time::Instant,
};
use tracing::{debug, error, info, warn};

use crate::{
    config::MailConfig,
    protocol::{AlertRef, Verdict},
};
use compose::Batch;
pub use deliver::DeliveryFailure;
use deliver::Transport;

/// Shortest batching window: a window of 0 would mean one mail per file.
const MIN_WINDOW: Duration = Duration::from_secs(1);

/// One failed verdict, as the mail reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailAlert {
    /// The file, as syscheck reported it.
    pub path: String,
    /// `<epoch>.<offset>` as OSSEC/Wazuh print it.
    pub alert_id: String,
    /// The rule that fired.
    pub rule_id: String,
    /// Why the change was not accepted (the verdict's one-line reason).
    pub reason: String,
    /// The package transaction that wrote the file, when there was one: the mail batch it
    /// belongs to.
    pub transaction: Option<MailTransaction>,
    /// The process that wrote the file, when known (e.g. `pid 4242 /usr/bin/vim`).
    pub writer: Option<String>,
    /// When the verdict was decided.
    pub time: SystemTime,
}

/// The package transaction behind a failure, as the mail names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailTransaction {
    /// The daemon's transaction id (as `verifier explain` shows it).
    pub id: u64,
    /// Its root process, e.g. `` `dpkg -i foo.deb` pid 4242 ``.
    pub description: String,
}

impl MailAlert {
    /// The mail entry for a verdict on `alert`, decided now.
    pub fn from_verdict(
        alert: &AlertRef,
        verdict: &Verdict,
        transaction: Option<MailTransaction>,
        writer: Option<String>,
    ) -> Self {
        Self {
            path: alert.path.clone(),
            alert_id: alert.alert_id.clone(),
            rule_id: alert.rule_id.clone(),
            reason: verdict.reason.clone(),
            transaction,
            writer,
            time: SystemTime::now(),
        }
    }
}

/// A problem starting the mailer or delivering its last mail.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("the mailer needs a running tokio runtime")]
    NoRuntime,
    #[error("mail.{key}: {address:?} is not a valid mail address: {message}")]
    InvalidAddress {
        key: &'static str,
        address: String,
        message: String,
    },
    #[error("cannot build the alert mail: {0}")]
    Build(#[from] lettre::error::Error),
    #[error(transparent)]
    Delivery(#[from] DeliveryFailure),
    #[error("the mailer task ended abnormally: {0}")]
    Task(String),
}

/// Tuning knobs; [`MailerOptions::default`] is what the daemon uses.
#[derive(Debug, Clone)]
pub struct MailerOptions {
    /// Alerts waiting for the mailer task; more are counted as overflow.
    pub queue_capacity: usize,
    /// Alerts listed in full in one mail; more are only counted.
    pub max_listed_alerts: usize,
    /// Delivery attempts per mail.
    pub max_attempts: u32,
    /// Pause after the first failed attempt; doubled after each further one.
    pub first_retry_delay: Duration,
    /// Longest one delivery attempt may take (sendmail run or SMTP session).
    pub attempt_timeout: Duration,
    /// Host name for the subject, the sender and SMTP HELO; `None` reads the kernel's.
    pub hostname: Option<String>,
}

impl Default for MailerOptions {
    fn default() -> Self {
        Self {
            queue_capacity: 4096,
            max_listed_alerts: 1000,
            max_attempts: 5,
            first_retry_delay: Duration::from_secs(2),
            attempt_timeout: Duration::from_secs(30),
            hostname: None,
        }
    }
}

/// Counters of what the mailer did, for `verifier status`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct MailStats {
    /// Alerts accepted into the queue.
    pub queued: u64,
    /// Alerts the full queue refused (each reported in a later mail).
    pub overflowed: u64,
    /// Mails delivered.
    pub mails_sent: u64,
    /// Alerts reported in delivered mails (listed or counted).
    pub alerts_mailed: u64,
    /// Mails given up after every attempt failed.
    pub mails_failed: u64,
}

#[derive(Debug, Default)]
struct Counters {
    queued: AtomicU64,
    overflowed_total: AtomicU64,
    /// Overflow not yet reported in a mail.
    overflowed_unreported: AtomicU64,
    mails_sent: AtomicU64,
    alerts_mailed: AtomicU64,
    mails_failed: AtomicU64,
}

enum Command {
    Alert(MailAlert),
    TransactionDone(u64),
    Flush,
    Stop,
}

/// Starts the mail task.
pub struct Mailer;

impl Mailer {
    /// Starts the mailer for `config` on the current tokio runtime. A disabled configuration
    /// gives a handle that ignores alerts.
    pub fn start(config: &MailConfig) -> Result<MailerHandle, MailError> {
        Self::start_with(config, MailerOptions::default())
    }

    pub fn start_with(
        config: &MailConfig,
        options: MailerOptions,
    ) -> Result<MailerHandle, MailError> {
        if !config.enabled {
            debug!("alert mail is disabled");
            return Ok(MailerHandle { inner: None });
        }
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| MailError::NoRuntime)?;
        let hostname = options.hostname.clone().unwrap_or_else(local_hostname);
        let from = sender(config, &hostname)?;
        let to = config
            .to
            .iter()
            .map(|address| parse_mailbox("to", address))
            .collect::<Result<Vec<_>, _>>()?;
        let (sender, receiver) = mpsc::channel(options.queue_capacity.max(1));
        let shared = Arc::new(Shared {
            counters: Counters::default(),
            overflow: Notify::new(),
        });
        let task = MailTask {
            transport: Transport::from_config(config, &hostname, &options),
            window: Duration::from_secs(config.batch_window_secs).max(MIN_WINDOW),
            hostname,
            from,
            to,
            options,
            receiver,
            shared: Arc::clone(&shared),
            pending: BTreeMap::new(),
            undelivered: 0,
        };
        info!(
            transport = task.transport.name(),
            window_secs = config.batch_window_secs,
            "alert mail enabled"
        );
        let join = runtime.spawn(task.run());
        Ok(MailerHandle {
            inner: Some(Arc::new(HandleInner {
                sender,
                shared,
                join: Mutex::new(Some(join)),
            })),
        })
    }
}

struct Shared {
    counters: Counters,
    overflow: Notify,
}

struct HandleInner {
    sender: mpsc::Sender<Command>,
    shared: Arc<Shared>,
    join: Mutex<Option<JoinHandle<Result<(), MailError>>>>,
}

/// The daemon's side of the mailer. Cheap to clone; every clone feeds the same batches.
#[derive(Clone)]
pub struct MailerHandle {
    inner: Option<Arc<HandleInner>>,
}

impl MailerHandle {
    /// Whether mail is configured at all.
    pub fn is_enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// Queues one failed verdict without waiting. When the queue is full the alert is counted
    /// and the next mail reports how many were refused.
    pub fn alert(&self, alert: MailAlert) {
        let Some(inner) = &self.inner else { return };
        match inner.sender.try_send(Command::Alert(alert)) {
            Ok(()) => {
                inner.shared.counters.queued.fetch_add(1, Ordering::Relaxed);
            }
            Err(refused) => {
                let counters = &inner.shared.counters;
                counters.overflowed_total.fetch_add(1, Ordering::Relaxed);
                counters
                    .overflowed_unreported
                    .fetch_add(1, Ordering::AcqRel);
                inner.shared.overflow.notify_one();
                if let mpsc::error::TrySendError::Closed(_) = refused {
                    warn!("alert mail: the mailer has stopped; alert counted but not mailed");
                }
            }
        }
    }

    /// Sends the batch of transaction `id` now (its verdicts are done), not at the end of its
    /// window. Never blocks; when the queue is full the window's end sends the batch anyway.
    pub fn transaction_done(&self, id: u64) {
        if let Some(inner) = &self.inner {
            let _ = inner.sender.try_send(Command::TransactionDone(id));
        }
    }

    /// Asks the mailer to send every pending batch now instead of at the end of its window.
    /// Never blocks; when the queue is full the window's end sends the batches anyway.
    pub fn flush(&self) {
        if let Some(inner) = &self.inner {
            let _ = inner.sender.try_send(Command::Flush);
        }
    }

    /// What the mailer has done so far.
    pub fn stats(&self) -> MailStats {
        let Some(inner) = &self.inner else {
            return MailStats::default();
        };
        let counters = &inner.shared.counters;
        MailStats {
            queued: counters.queued.load(Ordering::Relaxed),
            overflowed: counters.overflowed_total.load(Ordering::Relaxed),
            mails_sent: counters.mails_sent.load(Ordering::Relaxed),
            alerts_mailed: counters.alerts_mailed.load(Ordering::Relaxed),
            mails_failed: counters.mails_failed.load(Ordering::Relaxed),
        }
    }

    /// Sends what is pending (including alerts queued by other clones before this call) and
    /// stops the task. Errors when that last mail could not be delivered. Other clones keep
    /// working only as counters afterwards.
    pub async fn flush_and_stop(self) -> Result<(), MailError> {
        let Some(inner) = self.inner else {
            return Ok(());
        };
        // Waits for room: the task is draining the queue.
        if inner.sender.send(Command::Stop).await.is_err() {
            debug!("alert mail: the mailer had already stopped");
        }
        let join = match inner.join.lock() {
            Ok(mut slot) => slot.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        match join {
            Some(join) => join
                .await
                .map_err(|error| MailError::Task(error.to_string()))?,
            None => Ok(()),
        }
    }
}

/// The task that batches and sends.
struct MailTask {
    transport: Transport,
    window: Duration,
    hostname: String,
    from: Mailbox,
    to: Vec<Mailbox>,
    options: MailerOptions,
    receiver: mpsc::Receiver<Command>,
    shared: Arc<Shared>,
    /// Batches waiting to go out, each with the end of its window.
    pending: BTreeMap<BatchKey, PendingBatch>,
    /// Alerts of mails given up, reported in the next mail sent.
    undelivered: u64,
}

/// Which mail an alert goes into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum BatchKey {
    /// Failures not caused by a package transaction: one mail per time window.
    Window,
    /// Failures caused by this transaction: one mail when its verdicts are done.
    Transaction(u64),
}

struct PendingBatch {
    batch: Batch,
    deadline: Instant,
}

impl MailTask {
    async fn run(mut self) -> Result<(), MailError> {
        loop {
            let deadline = self.pending.values().map(|pending| pending.deadline).min();
            tokio::select! {
                command = self.receiver.recv() => match command {
                    Some(Command::Alert(alert)) => self.add(alert),
                    Some(Command::TransactionDone(id)) => {
                        let _ = self.send(BatchKey::Transaction(id)).await;
                    }
                    Some(Command::Flush) => { let _ = self.send_all().await; }
                    Some(Command::Stop) | None => return self.stop().await,
                },
                () = sleep_until(deadline), if deadline.is_some() => {
                    let _ = self.send_due().await;
                }
                () = self.shared.overflow.notified() => {
                    self.batch_for(BatchKey::Window, None);
                }
            }
        }
    }

    fn add(&mut self, alert: MailAlert) {
        let key = alert
            .transaction
            .as_ref()
            .map_or(BatchKey::Window, |transaction| {
                BatchKey::Transaction(transaction.id)
            });
        let max_listed = self.options.max_listed_alerts;
        let batch = self.batch_for(key, alert.transaction.clone());
        if batch.alerts.len() < max_listed {
            batch.alerts.push(alert);
        } else {
            batch.not_listed += 1;
        }
    }

    /// The pending batch for `key`, started (with its window) if there is none.
    fn batch_for(&mut self, key: BatchKey, transaction: Option<MailTransaction>) -> &mut Batch {
        let window = self.window;
        &mut self
            .pending
            .entry(key)
            .or_insert_with(|| PendingBatch {
                batch: Batch {
                    transaction,
                    ..Batch::default()
                },
                deadline: Instant::now() + window,
            })
            .batch
    }

    /// Takes in whatever is still queued, sends it, and ends.
    async fn stop(mut self) -> Result<(), MailError> {
        self.receiver.close();
        while let Ok(command) = self.receiver.try_recv() {
            if let Command::Alert(alert) = command {
                self.add(alert);
            }
        }
        self.send_all().await
    }

    /// Sends every batch whose window has ended.
    async fn send_due(&mut self) -> Result<(), MailError> {
        let now = Instant::now();
        let due: Vec<BatchKey> = self
            .pending
            .iter()
            .filter(|(_, pending)| pending.deadline <= now)
            .map(|(key, _)| *key)
            .collect();
        let mut result = Ok(());
        for key in due {
            if let Err(error) = self.send(key).await {
                result = Err(error);
            }
        }
        result
    }

    /// Sends every pending batch (and a mail for unreported overflow, if any).
    async fn send_all(&mut self) -> Result<(), MailError> {
        let mut keys: Vec<BatchKey> = self.pending.keys().copied().collect();
        if !keys.contains(&BatchKey::Window) {
            keys.push(BatchKey::Window);
        }
        let mut result = Ok(());
        for key in keys {
            if let Err(error) = self.send(key).await {
                result = Err(error);
            }
        }
        result
    }

    /// Sends the batch for `key` (with the overflow and lost mails not reported yet).
    async fn send(&mut self, key: BatchKey) -> Result<(), MailError> {
        let counters = &self.shared.counters;
        let mut batch = self
            .pending
            .remove(&key)
            .map(|pending| pending.batch)
            .unwrap_or_default();
        batch.overflowed = counters.overflowed_unreported.swap(0, Ordering::AcqRel);
        batch.undelivered_earlier += std::mem::take(&mut self.undelivered);
        if batch.is_empty() {
            return Ok(());
        }
        let reported = batch.alert_count();
        let message = match self.compose(&batch) {
            Ok(message) => message,
            Err(error) => {
                error!(%error, "cannot build the alert mail");
                self.give_up(&batch);
                return Err(error);
            }
        };
        match self
            .transport
            .send_with_retry(&message, &self.options)
            .await
        {
            Ok(()) => {
                counters.mails_sent.fetch_add(1, Ordering::Relaxed);
                counters
                    .alerts_mailed
                    .fetch_add(reported, Ordering::Relaxed);
                info!(alerts = reported, "alert mail sent");
                Ok(())
            }
            Err(failure) => {
                error!(
                    alerts = reported,
                    "alert mail given up; the alerts remain in the AR log and the next mail says so"
                );
                self.give_up(&batch);
                Err(failure.into())
            }
        }
    }

    /// Remembers a lost mail so the next one reports it.
    fn give_up(&mut self, lost: &Batch) {
        self.shared
            .counters
            .mails_failed
            .fetch_add(1, Ordering::Relaxed);
        self.undelivered += lost.alert_count() + lost.undelivered_earlier;
    }

    fn compose(&self, batch: &Batch) -> Result<Message, MailError> {
        let mut builder = Message::builder()
            .from(self.from.clone())
            .subject(compose::subject(&self.hostname, batch))
            .date_now();
        for recipient in &self.to {
            builder = builder.to(recipient.clone());
        }
        Ok(builder
            .header(ContentType::TEXT_PLAIN)
            .body(compose::body(&self.hostname, batch))?)
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

fn sender(config: &MailConfig, hostname: &str) -> Result<Mailbox, MailError> {
    match &config.from {
        Some(address) => parse_mailbox("from", address),
        None => parse_mailbox("from", &format!("verifier@{hostname}"))
            .or_else(|_| parse_mailbox("from", "verifier@localhost")),
    }
}

fn parse_mailbox(key: &'static str, address: &str) -> Result<Mailbox, MailError> {
    Mailbox::from_str(address).map_err(|error| MailError::InvalidAddress {
        key,
        address: address.to_owned(),
        message: error.to_string(),
    })
}

/// The kernel's host name (`/proc/sys/kernel/hostname`), or `unknown` as in the origin script.
pub fn local_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{AlertSource, ChangeKind, Outcome};

    #[test]
    fn mail_alert_from_verdict_keeps_alert_and_reason() {
        let alert = AlertRef {
            source: AlertSource::Ossec,
            alert_id: "1705314211.443".into(),
            rule_id: "100210".into(),
            change: ChangeKind::Modified,
            path: "/etc/default/grub".into(),
            program: "/var/ossec/active-response/bin/verify-file".into(),
            sha256_after: None,
            md5_after: None,
            sha1_after: None,
        };
        let verdict = Verdict {
            outcome: Outcome::Failed,
            reason: "written by pid 77 outside any package transaction".into(),
            logged: true,
        };
        let mail =
            MailAlert::from_verdict(&alert, &verdict, None, Some("pid 77 /usr/bin/vi".into()));
        assert_eq!(mail.path, "/etc/default/grub");
        assert_eq!(mail.alert_id, "1705314211.443");
        assert_eq!(mail.rule_id, "100210");
        assert_eq!(mail.reason, verdict.reason);
        assert_eq!(mail.writer.as_deref(), Some("pid 77 /usr/bin/vi"));
    }
}
