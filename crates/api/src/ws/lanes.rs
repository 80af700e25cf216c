//! A socket's sends, one lane per conversation.
//!
//! Sends to one conversation commit one after another, in the order the socket received
//! them (W6: several messages in a row keep their order). Sends to different conversations
//! go ahead side by side: an agent answering many chats from one socket is not held up by
//! each commit in turn, and the store's group commit gets them all in one transaction.
//!
//! Results go back on an unbounded channel that only the socket loop drains. It holds at
//! most one result per accepted send, and a bounded one deadlocked: the loop waited to
//! queue a send while the lanes waited to queue a result only that loop takes.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::future::Future;

use confab_domain::ConversationId;
use futures::stream::{FuturesUnordered, StreamExt};
use tokio::sync::mpsc;

/// Sends accepted by one socket and not yet answered; the socket waits beyond this.
const IN_FLIGHT: usize = 256;

/// A send, and the conversation whose lane it joins.
pub trait Laned: Send + 'static {
    fn lane(&self) -> ConversationId;
}

/// Starts a socket's lanes: `work` handles one send, and its result goes to `out` when
/// done. Sends already accepted are still handled after the socket has gone (their
/// messages may be committed; a retry with the same client id finds them).
pub fn spawn<R, O, F, Fut>(work: F, out: mpsc::UnboundedSender<O>) -> mpsc::Sender<R>
where
    R: Laned,
    O: Send + 'static,
    F: Fn(R) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = O> + Send + 'static,
{
    let (tx, rx) = mpsc::channel::<R>(IN_FLIGHT);
    tokio::spawn(run(rx, work, out));
    tx
}

async fn run<R, O, F, Fut>(mut rx: mpsc::Receiver<R>, work: F, out: mpsc::UnboundedSender<O>)
where
    R: Laned,
    F: Fn(R) -> Fut + Sync,
    Fut: Future<Output = O>,
{
    // Per busy lane, the sends waiting behind the one that runs.
    let mut waiting: HashMap<ConversationId, VecDeque<R>> = HashMap::new();
    let mut running = FuturesUnordered::new();
    let mut accepted = 0usize;
    let mut open = true;
    let start = |r: R| {
        let lane = r.lane();
        // Boxed where it is made: a send's future is about 2 KiB, and the set of running
        // ones moved each by value into its task (memcpy was 2 % of the runtime threads at
        // 7,000 msg/s, docs/performance.md, round 13).
        let fut = Box::pin(work(r));
        async move { (lane, fut.await) }
    };
    loop {
        tokio::select! {
            r = rx.recv(), if open && accepted < IN_FLIGHT => match r {
                Some(r) => {
                    accepted += 1;
                    match waiting.entry(r.lane()) {
                        Entry::Occupied(mut e) => e.get_mut().push_back(r),
                        Entry::Vacant(e) => {
                            e.insert(VecDeque::new());
                            running.push(start(r));
                        }
                    }
                }
                None => open = false,
            },
            Some((lane, result)) = running.next() => {
                accepted -= 1;
                // The socket may be gone; the work is done all the same.
                let _ = out.send(result);
                match waiting.get_mut(&lane).and_then(VecDeque::pop_front) {
                    Some(next) => running.push(start(next)),
                    None => {
                        waiting.remove(&lane);
                    }
                }
            }
            else => break,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    struct Job {
        conv: i64,
        n: u32,
        /// How long the job takes, in ms.
        ms: u64,
    }

    impl Laned for Job {
        fn lane(&self) -> ConversationId {
            ConversationId(self.conv)
        }
    }

    fn lanes(
        log: Arc<Mutex<Vec<(i64, u32)>>>,
    ) -> (mpsc::Sender<Job>, mpsc::UnboundedReceiver<(i64, u32)>) {
        let (out, results) = mpsc::unbounded_channel();
        let tx = spawn(
            move |j: Job| {
                let log = log.clone();
                async move {
                    log.lock().unwrap().push((j.conv, j.n));
                    tokio::time::sleep(Duration::from_millis(j.ms)).await;
                    (j.conv, j.n)
                }
            },
            out,
        );
        (tx, results)
    }

    #[tokio::test(start_paused = true)]
    async fn one_conversation_keeps_its_order_while_others_go_ahead() {
        let log = Arc::new(Mutex::new(vec![]));
        let (tx, mut results) = lanes(log.clone());
        // Conversation 1's jobs are slow; conversation 2's must not wait for them.
        for n in 0..3 {
            tx.send(Job {
                conv: 1,
                n,
                ms: 100,
            })
            .await
            .unwrap();
        }
        for n in 0..3 {
            tx.send(Job { conv: 2, n, ms: 1 }).await.unwrap();
        }
        let mut got = vec![];
        for _ in 0..6 {
            got.push(results.recv().await.unwrap());
        }
        assert_eq!(
            got,
            vec![(2, 0), (2, 1), (2, 2), (1, 0), (1, 1), (1, 2)],
            "conversation 2 finished first, each lane in order"
        );
        // Within a lane, a job starts only after the one before it finished.
        let started: Vec<u32> = log
            .lock()
            .unwrap()
            .iter()
            .filter(|(c, _)| *c == 1)
            .map(|(_, n)| *n)
            .collect();
        assert_eq!(started, vec![0, 1, 2]);
    }

    #[tokio::test(start_paused = true)]
    async fn accepted_sends_finish_after_the_socket_is_gone() {
        let log = Arc::new(Mutex::new(vec![]));
        let (tx, mut results) = lanes(log.clone());
        for n in 0..5 {
            tx.send(Job { conv: 7, n, ms: 10 }).await.unwrap();
        }
        drop(tx);
        let mut got = vec![];
        while let Some(r) = results.recv().await {
            got.push(r.1);
        }
        assert_eq!(got, vec![0, 1, 2, 3, 4]);
    }

    #[tokio::test(start_paused = true)]
    async fn many_more_sends_than_the_limit_all_finish() {
        let log = Arc::new(Mutex::new(vec![]));
        let (tx, mut results) = lanes(log.clone());
        let total = IN_FLIGHT as u32 * 4;
        let sender = tokio::spawn(async move {
            for n in 0..total {
                tx.send(Job {
                    conv: i64::from(n % 3),
                    n,
                    ms: 1,
                })
                .await
                .unwrap();
            }
        });
        let mut last = HashMap::new();
        for _ in 0..total {
            let (conv, n) = results.recv().await.unwrap();
            if let Some(prev) = last.insert(conv, n) {
                assert!(n > prev, "lane {conv} out of order: {prev} then {n}");
            }
        }
        sender.await.unwrap();
    }
}
