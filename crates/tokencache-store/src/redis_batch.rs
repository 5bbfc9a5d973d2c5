//! Batching of concurrent reads on one Redis connection (automatic pipelining).
//!
//! Every request of a web app loads its user's partition. Sent one by one, each load costs a
//! write and a read system call on both sides of the connection: about a third of the
//! client's CPU per request in the store benchmark. Here the loads (and version checks) go to one
//! task that sends whatever has queued up as one pipeline: the first load of a quiet moment
//! goes out at once, and the loads made while a batch is on the wire leave together when its
//! replies are in. No load waits for a timer, and the batch size follows the load.
//!
//! Only plain single-key reads are batched; saves, deletes and leases (Lua scripts) go to the
//! connection directly.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use redis::aio::{ConnectionLike, ConnectionManager};
use redis::{Cmd, Value};
use tokio::sync::{mpsc, oneshot};

/// The most commands one batch carries.
const MAX_BATCH: usize = 512;

/// How a [`RedisBackend`](crate::RedisBackend) has sent its reads so far
/// ([`RedisBackend::read_batches`](crate::RedisBackend::read_batches)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReadBatches {
    /// Loads and version checks sent.
    pub reads: u64,
    /// Round trips they took: each batch is one write to the server and one pipeline of
    /// replies.
    pub batches: u64,
}

/// A reply, or why there is none.
type Reply = Result<Value, String>;

type Request = (Cmd, oneshot::Sender<Reply>);

/// A handle on the batching task of one connection; clones share it. The task ends when the
/// last handle is dropped.
#[derive(Clone)]
pub(crate) struct Batcher {
    requests: mpsc::UnboundedSender<Request>,
    counts: Arc<Counts>,
}

/// What the batching task has sent so far.
#[derive(Default)]
struct Counts {
    commands: AtomicU64,
    batches: AtomicU64,
}

impl Batcher {
    /// Starts the batching task on the current Tokio runtime.
    pub(crate) fn spawn(conn: ConnectionManager) -> Batcher {
        let (requests, queue) = mpsc::unbounded_channel();
        let counts = Arc::new(Counts::default());
        tokio::spawn(send_batches(conn, queue, counts.clone()));
        Batcher { requests, counts }
    }

    /// Sends `cmd` with the others queued at the time, and returns its reply.
    pub(crate) async fn send(&self, cmd: Cmd) -> Reply {
        let (reply, answer) = oneshot::channel();
        self.requests.send((cmd, reply)).map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    /// Commands and batches sent so far.
    pub(crate) fn counts(&self) -> ReadBatches {
        ReadBatches {
            reads: self.counts.commands.load(Ordering::Relaxed),
            batches: self.counts.batches.load(Ordering::Relaxed),
        }
    }
}

fn stopped() -> String {
    "the connection's batching task has stopped (its runtime shut down)".to_owned()
}

/// The batching task: one batch on the wire at a time; while it is, requests queue up.
async fn send_batches(
    mut conn: ConnectionManager,
    mut queue: mpsc::UnboundedReceiver<Request>,
    counts: Arc<Counts>,
) {
    let mut batch: Vec<Request> = Vec::with_capacity(64);
    while queue.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let mut pipe = redis::Pipeline::with_capacity(batch.len());
        let mut waiting = Vec::with_capacity(batch.len());
        for (cmd, reply) in batch.drain(..) {
            pipe.add_command(cmd);
            waiting.push(reply);
        }
        counts
            .commands
            .fetch_add(waiting.len() as u64, Ordering::Relaxed);
        counts.batches.fetch_add(1, Ordering::Relaxed);
        match conn.req_packed_commands(&pipe, 0, waiting.len()).await {
            Ok(values) if values.len() == waiting.len() => {
                for (value, reply) in values.into_iter().zip(waiting) {
                    let answer = match value {
                        Value::ServerError(e) => Err(e.to_string()),
                        v => Ok(v),
                    };
                    // A request that gave up waiting dropped its receiver; nothing to do.
                    let _ = reply.send(answer);
                }
            }
            Ok(values) => {
                let why = format!(
                    "{} replies to a pipeline of {} commands",
                    values.len(),
                    waiting.len()
                );
                for reply in waiting {
                    let _ = reply.send(Err(why.clone()));
                }
            }
            Err(e) => {
                let why = e.to_string();
                for reply in waiting {
                    let _ = reply.send(Err(why.clone()));
                }
            }
        }
    }
}
