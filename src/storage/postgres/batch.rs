//! Group commit in the application: concurrent calls of one kind (record an
//! attempt, enqueue an event) are coalesced into one statement, so one
//! commit and one round trip serve many callers.
//!
//! A background task per store and kind takes whatever is queued while the
//! previous statement runs: a lone caller waits for nothing, and under load
//! batches grow by themselves. Each statement is atomic, so a failed batch
//! changes nothing and every caller in it gets the error. Items with equal
//! keys never share a statement (one statement must not touch a row twice).

use std::collections::{HashSet, VecDeque};
use std::hash::Hash;
use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use tokio::sync::{mpsc, oneshot};

use super::rows::{corrupt_result, kind_of, STORE};
use crate::storage::{Error, ErrorKind, Result};

/// The most items written by one statement.
const MAX_BATCH: usize = 128;

/// One kind of write that can be done for many items in one statement.
#[async_trait]
pub(super) trait BatchWrite: Send + Sync + 'static {
    type Item: Send + Sync + 'static;
    type Output: Send + 'static;
    type Key: Eq + Hash + Ord;

    /// Items with equal keys go to separate statements; a statement takes
    /// its items in key order, so concurrent statements (from other
    /// processes too) lock shared rows in the same order.
    fn key(item: &Self::Item) -> Self::Key;

    /// Writes `items` in one statement and returns one output per item, in order.
    async fn write(&self, items: &[&Self::Item]) -> Result<Vec<Self::Output>, Arc<sqlx::Error>>;
}

struct Job<W: BatchWrite> {
    item: W::Item,
    reply: oneshot::Sender<Result<W::Output>>,
}

pub(super) struct Batcher<W: BatchWrite> {
    writer: Arc<W>,
    queue: OnceLock<mpsc::UnboundedSender<Job<W>>>,
}

impl<W: BatchWrite> Batcher<W> {
    pub(super) fn new(writer: W) -> Self {
        Self {
            writer: Arc::new(writer),
            queue: OnceLock::new(),
        }
    }

    /// Writes `item`, sharing a statement with concurrent callers.
    pub(super) async fn submit(&self, item: W::Item) -> Result<W::Output> {
        let Some(queue) = self.queue() else {
            return self.write_alone(item).await;
        };
        let (reply, answer) = oneshot::channel();
        if let Err(mpsc::error::SendError(job)) = queue.send(Job { item, reply }) {
            // The task is gone (its runtime shut down): write directly.
            return self.write_alone(job.item).await;
        }
        answer.await.map_err(|_| {
            Error::new(
                STORE,
                ErrorKind::Other,
                "batch writer stopped before answering",
            )
        })?
    }

    /// The queue of the background task, started on first use on the
    /// caller's tokio runtime; `None` outside one.
    fn queue(&self) -> Option<&mpsc::UnboundedSender<Job<W>>> {
        if let Some(queue) = self.queue.get() {
            return Some(queue);
        }
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        Some(self.queue.get_or_init(|| {
            let (queue, jobs) = mpsc::unbounded_channel();
            runtime.spawn(run(Arc::clone(&self.writer), jobs));
            queue
        }))
    }

    async fn write_alone(&self, item: W::Item) -> Result<W::Output> {
        let mut outputs = self.writer.write(&[&item]).await.map_err(shared)?;
        outputs
            .pop()
            .ok_or_else(|| corrupt_result("batch write returned no result"))
    }
}

/// Writes queued jobs until every sender is gone (the store was dropped).
async fn run<W: BatchWrite>(writer: Arc<W>, mut jobs: mpsc::UnboundedReceiver<Job<W>>) {
    let mut waiting: VecDeque<Job<W>> = VecDeque::new();
    loop {
        if waiting.is_empty() {
            match jobs.recv().await {
                Some(job) => waiting.push_back(job),
                None => return,
            }
        }
        while let Ok(job) = jobs.try_recv() {
            waiting.push_back(job);
        }
        let batch = take_batch(&mut waiting);
        let items: Vec<&W::Item> = batch.iter().map(|job| &job.item).collect();
        let written = writer.write(&items).await;
        drop(items);
        match written {
            Ok(outputs) if outputs.len() == batch.len() => {
                for (job, output) in batch.into_iter().zip(outputs) {
                    // A caller that stopped waiting is no error.
                    let _ = job.reply.send(Ok(output));
                }
            }
            Ok(_) => {
                for job in batch {
                    let _ = job.reply.send(Err(corrupt_result(
                        "batch write returned a wrong number of results",
                    )));
                }
            }
            Err(error) => {
                for job in batch {
                    let _ = job.reply.send(Err(shared(Arc::clone(&error))));
                }
            }
        }
    }
}

/// Up to [`MAX_BATCH`] waiting jobs with distinct keys, oldest first; the
/// rest keep their order for the next statement.
fn take_batch<W: BatchWrite>(waiting: &mut VecDeque<Job<W>>) -> Vec<Job<W>> {
    let mut batch = Vec::new();
    let mut keys = HashSet::new();
    let mut later = VecDeque::new();
    while let Some(job) = waiting.pop_front() {
        if batch.len() < MAX_BATCH && keys.insert(W::key(&job.item)) {
            batch.push(job);
        } else {
            later.push_back(job);
        }
    }
    *waiting = later;
    batch.sort_by(|a, b| W::key(&a.item).cmp(&W::key(&b.item)));
    batch
}

/// A statement's error, shared by every caller of its batch.
fn shared(error: Arc<sqlx::Error>) -> Error {
    Error::new(STORE, kind_of(&error), error)
}
