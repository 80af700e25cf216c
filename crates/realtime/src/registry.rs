//! The registry of open sockets and the topics they listen to.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use confab_domain::{AgentId, ContactId, ConversationId};
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;

use crate::Routed;

/// What a socket can listen to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Topic {
    /// Entries, typing, reads and changes of one conversation.
    Conversation(ConversationId),
    /// Everything every agent's inbox list needs (conversation changes, presence).
    Agents,
    /// One agent's own events (notifications, their reads in other tabs).
    Agent(AgentId),
    /// One visitor's own events (a new conversation started elsewhere).
    Visitor(ContactId),
    /// List rows that move no count (a post to a conversation whose status and assignee
    /// stay as they were), by where in the inbox the conversation is. An agent's socket
    /// listens to the shelves of the folders it shows, so the rows of other folders are
    /// not even queued for it (docs/performance.md, round 11).
    Rows(Shelf),
}

/// Where a conversation sits in the inbox, for [`Topic::Rows`]. Which shelves make up a
/// folder, and which shelves a conversation is on, the event type decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Shelf {
    Unassigned,
    /// Open and assigned to anyone.
    Assigned,
    /// Open and assigned to this agent.
    AssignedTo(AgentId),
    Snoozed,
    Closed,
}

struct Shared<E> {
    /// Events the socket's loop has not taken yet, at most the registry's capacity. A plain
    /// queue, not a tokio channel: a channel allocates about 800 bytes up front (its state
    /// and a first block of 32 slots), and most sockets sit idle with nothing queued.
    queue: Mutex<VecDeque<Arc<E>>>,
    lagged: AtomicBool,
    /// Wakes the loop for a queued event or a lag.
    wake: Notify,
    /// Events that can wait are queued and the wake-up is left to the next tick (see
    /// [`Routed::can_wait`]); set while the socket is on that tick's list.
    waking_later: AtomicBool,
    closed: CancellationToken,
    session: Option<String>,
}

impl<E> Shared<E> {
    fn queue(&self) -> MutexGuard<'_, VecDeque<Arc<E>>> {
        lock(&self.queue)
    }
}

struct Entry<E> {
    shared: Arc<Shared<E>>,
    topics: HashSet<Topic>,
}

struct Inner<E> {
    topics: HashMap<Topic, HashSet<u64>>,
    conns: HashMap<u64, Entry<E>>,
}

/// How long an event that can wait may sit in a socket's queue before the socket is woken.
pub const LATER: Duration = Duration::from_millis(20);

/// The sockets to wake at the next tick, and the tick's trigger.
struct Later<E> {
    due: Arc<Mutex<Vec<Arc<Shared<E>>>>>,
    /// Holds one token while a tick is coming; the ticking task ends when this is dropped.
    arm: mpsc::Sender<()>,
}

/// Every open socket of this node.
pub struct Registry<E> {
    inner: Mutex<Inner<E>>,
    /// `None` outside a tokio runtime: then every event wakes its sockets at once.
    later: Option<Later<E>>,
    next: AtomicU64,
    capacity: usize,
}

impl<E: Routed> Registry<E> {
    /// `capacity`: how many events a socket may have queued before it is lagged.
    pub fn new(capacity: usize) -> Arc<Self> {
        let later = tokio::runtime::Handle::try_current().ok().map(|rt| {
            let due: Arc<Mutex<Vec<_>>> = Arc::default();
            let (arm, armed) = mpsc::channel(1);
            rt.spawn(tick_later(due.clone(), armed));
            Later { due, arm }
        });
        Arc::new(Self {
            later,
            inner: Mutex::new(Inner {
                topics: HashMap::new(),
                conns: HashMap::new(),
            }),
            next: AtomicU64::new(1),
            capacity: capacity.max(1),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner<E>> {
        lock(&self.inner)
    }

    /// Opens a socket's slot. `session` lets a logout close the socket.
    pub fn connect(self: &Arc<Self>, session: Option<String>) -> Connection<E> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let shared = Arc::new(Shared {
            queue: Mutex::new(VecDeque::new()),
            lagged: AtomicBool::new(false),
            wake: Notify::new(),
            waking_later: AtomicBool::new(false),
            closed: CancellationToken::new(),
            session,
        });
        self.lock().conns.insert(
            id,
            Entry {
                shared: shared.clone(),
                topics: HashSet::new(),
            },
        );
        Connection {
            id,
            shared,
            registry: self.clone(),
        }
    }

    /// Delivers an event to every socket listening to any of its topics, once each.
    pub fn deliver(&self, event: Arc<E>) {
        let topics = event.topics();
        let later = self.later.as_ref().filter(|_| event.can_wait());
        let mut wake_later = Vec::new();
        let inner = self.lock();
        let mut seen = HashSet::new();
        for t in &topics {
            let Some(ids) = inner.topics.get(t) else {
                continue;
            };
            for id in ids {
                if !seen.insert(*id) {
                    continue;
                }
                let Some(entry) = inner.conns.get(id) else {
                    continue;
                };
                let s = &entry.shared;
                if s.lagged.load(Ordering::Relaxed) {
                    continue;
                }
                let mut queue = s.queue();
                if queue.len() < self.capacity {
                    queue.push_back(event.clone());
                } else {
                    // Full: never drop silently; the loop will resync.
                    s.lagged.store(true, Ordering::Relaxed);
                }
                drop(queue);
                if later.is_none() || s.lagged.load(Ordering::Relaxed) {
                    s.wake.notify_one();
                } else if !s.waking_later.swap(true, Ordering::AcqRel) {
                    wake_later.push(s.clone());
                }
            }
        }
        drop(inner);
        if let (Some(later), false) = (later, wake_later.is_empty()) {
            lock(&later.due).extend(wake_later);
            // Full: a tick is already coming, and it takes what was just added.
            let _ = later.arm.try_send(());
        }
    }

    /// Closes every socket of a session (logout).
    pub fn close_session(&self, session: &str) {
        for e in self.lock().conns.values() {
            if e.shared.session.as_deref() == Some(session) {
                e.shared.closed.cancel();
            }
        }
    }

    /// Marks every socket lagged: each tells its client to resync from the store. Used when
    /// the bus may have lost events (a gap in another node's counter, a reconnect).
    pub fn lag_all(&self) {
        for e in self.lock().conns.values() {
            e.shared.lagged.store(true, Ordering::Relaxed);
            e.shared.wake.notify_one();
        }
    }

    /// How many sockets are open on this node.
    pub fn len(&self) -> usize {
        self.lock().conns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn subscribe(&self, id: u64, topic: Topic) {
        let mut inner = self.lock();
        if let Some(e) = inner.conns.get_mut(&id) {
            e.topics.insert(topic);
            inner.topics.entry(topic).or_default().insert(id);
        }
    }

    fn unsubscribe(&self, id: u64, topic: Topic) {
        let mut inner = self.lock();
        if let Some(e) = inner.conns.get_mut(&id) {
            e.topics.remove(&topic);
        }
        remove_from_topic(&mut inner, topic, id);
    }

    fn remove(&self, id: u64) {
        let mut inner = self.lock();
        if let Some(e) = inner.conns.remove(&id) {
            for t in e.topics {
                remove_from_topic(&mut inner, t, id);
            }
        }
    }
}

/// Every lock here guards plain queues, lists and maps, left consistent by a panic while
/// held: a poisoned one is used as it is.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Wakes the sockets whose events can wait, [`LATER`] after the first of them was queued;
/// ends when the registry (the trigger's sender) is gone. Idle, it waits for its trigger
/// and costs nothing.
async fn tick_later<E>(due: Arc<Mutex<Vec<Arc<Shared<E>>>>>, mut armed: mpsc::Receiver<()>) {
    while armed.recv().await.is_some() {
        tokio::time::sleep(LATER).await;
        let list = std::mem::take(&mut *lock(&due));
        for s in list {
            s.waking_later.store(false, Ordering::Release);
            s.wake.notify_one();
        }
    }
}

fn remove_from_topic<E>(inner: &mut Inner<E>, topic: Topic, id: u64) {
    if let Some(set) = inner.topics.get_mut(&topic) {
        set.remove(&id);
        if set.is_empty() {
            inner.topics.remove(&topic);
        }
    }
}

/// What a socket's loop gets next.
pub enum Recv<E> {
    Event(Arc<E>),
    /// Events were lost for this socket: tell the client to resync from the store.
    Lagged,
    /// The socket must close (logout or shutdown).
    Closed,
}

/// One socket's slot in the registry; unregisters itself when dropped.
pub struct Connection<E: Routed> {
    id: u64,
    shared: Arc<Shared<E>>,
    registry: Arc<Registry<E>>,
}

impl<E: Routed> Connection<E> {
    pub fn subscribe(&self, topic: Topic) {
        self.registry.subscribe(self.id, topic);
    }

    pub fn unsubscribe(&self, topic: Topic) {
        self.registry.unsubscribe(self.id, topic);
    }

    /// The next event, lag signal or close. Queued events come before a lag signal, so the
    /// client sees everything that did fit before it is told to resync.
    pub async fn recv(&mut self) -> Recv<E> {
        loop {
            if let Some(r) = self.try_recv() {
                return r;
            }
            // A wake-up sent since the checks above is kept by `Notify` as a permit, so
            // none is missed.
            tokio::select! {
                _ = self.shared.wake.notified() => {}
                _ = self.shared.closed.cancelled() => return Recv::Closed,
            }
        }
    }

    /// What [`Self::recv`] would return now, or `None` if it would wait. A loop that got
    /// an event takes the ones queued behind it with this, so that a burst is written with
    /// one flush; the order is the same as `recv`'s.
    pub fn try_recv(&mut self) -> Option<Recv<E>> {
        if self.shared.closed.is_cancelled() {
            return Some(Recv::Closed);
        }
        let next = self.shared.queue().pop_front();
        if let Some(e) = next {
            return Some(Recv::Event(e));
        }
        if self.shared.lagged.swap(false, Ordering::Relaxed) {
            return Some(Recv::Lagged);
        }
        None
    }

    /// A token cancelled when this socket must close.
    pub fn closed(&self) -> CancellationToken {
        self.shared.closed.clone()
    }
}

impl<E: Routed> Drop for Connection<E> {
    fn drop(&mut self) {
        self.registry.remove(self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An event; those numbered 100 and up can wait.
    struct Ev(u32, Vec<Topic>);
    impl Routed for Ev {
        fn topics(&self) -> Vec<Topic> {
            self.1.clone()
        }
        fn can_wait(&self) -> bool {
            self.0 >= 100
        }
    }

    fn conv(i: i64) -> Topic {
        Topic::Conversation(ConversationId(i))
    }

    #[tokio::test]
    async fn delivers_by_topic_once_per_socket() {
        let r = Registry::new(8);
        let mut a = r.connect(None);
        let mut b = r.connect(None);
        a.subscribe(conv(1));
        a.subscribe(Topic::Agents);
        b.subscribe(conv(2));
        r.deliver(Arc::new(Ev(1, vec![conv(1), Topic::Agents])));
        r.deliver(Arc::new(Ev(2, vec![conv(2)])));
        assert!(matches!(a.recv().await, Recv::Event(e) if e.0 == 1));
        assert!(matches!(b.recv().await, Recv::Event(e) if e.0 == 2));
        assert!(
            a.shared.queue().is_empty(),
            "no duplicate for two matching topics"
        );
    }

    #[tokio::test]
    async fn a_full_queue_is_reported_as_lag_after_what_fit() {
        let r = Registry::new(2);
        let mut a = r.connect(None);
        a.subscribe(conv(1));
        for i in 0..5 {
            r.deliver(Arc::new(Ev(i, vec![conv(1)])));
        }
        assert!(matches!(a.recv().await, Recv::Event(e) if e.0 == 0));
        assert!(matches!(a.recv().await, Recv::Event(e) if e.0 == 1));
        assert!(matches!(a.recv().await, Recv::Lagged));
        // After the lag signal, delivery resumes.
        r.deliver(Arc::new(Ev(9, vec![conv(1)])));
        assert!(matches!(a.recv().await, Recv::Event(e) if e.0 == 9));
    }

    #[tokio::test]
    async fn try_recv_takes_a_burst_in_order_then_the_lag() {
        let r = Registry::new(3);
        let mut a = r.connect(None);
        a.subscribe(conv(1));
        assert!(a.try_recv().is_none(), "nothing queued: would wait");
        for i in 0..5 {
            r.deliver(Arc::new(Ev(i, vec![conv(1)])));
        }
        // recv and try_recv share one queue: the burst comes out in delivery order.
        assert!(matches!(a.recv().await, Recv::Event(e) if e.0 == 0));
        assert!(matches!(a.try_recv(), Some(Recv::Event(e)) if e.0 == 1));
        assert!(matches!(a.try_recv(), Some(Recv::Event(e)) if e.0 == 2));
        assert!(matches!(a.try_recv(), Some(Recv::Lagged)));
        assert!(a.try_recv().is_none());
        r.deliver(Arc::new(Ev(7, vec![conv(1)])));
        r.deliver(Arc::new(Ev(8, vec![conv(1)])));
        assert!(matches!(a.try_recv(), Some(Recv::Event(e)) if e.0 == 7));
        assert!(matches!(a.recv().await, Recv::Event(e) if e.0 == 8));
    }

    #[tokio::test]
    async fn drop_unregisters_and_logout_closes() {
        let r = Registry::<Ev>::new(2);
        let a = r.connect(Some("s1".into()));
        a.subscribe(conv(1));
        let mut b = r.connect(Some("s2".into()));
        assert_eq!(r.len(), 2);
        drop(a);
        assert_eq!(r.len(), 1);
        assert!(r.lock().topics.is_empty());
        r.close_session("s2");
        assert!(matches!(b.recv().await, Recv::Closed));
    }

    /// A socket loop waiting for its next event, and when it got it.
    fn waiting(
        mut c: Connection<Ev>,
    ) -> tokio::task::JoinHandle<(std::time::Instant, Recv<Ev>, Connection<Ev>)> {
        tokio::spawn(async move {
            let r = c.recv().await;
            (std::time::Instant::now(), r, c)
        })
    }

    #[tokio::test]
    async fn an_event_that_can_wait_wakes_its_socket_at_the_next_tick() {
        let r = Registry::new(8);
        let a = r.connect(None);
        a.subscribe(Topic::Agents);
        let waiter = waiting(a);
        tokio::task::yield_now().await;
        let sent = std::time::Instant::now();
        r.deliver(Arc::new(Ev(100, vec![Topic::Agents])));
        r.deliver(Arc::new(Ev(101, vec![Topic::Agents])));
        let (at, first, mut a) = waiter.await.unwrap();
        assert!(at - sent >= LATER, "woken before the tick");
        assert!(matches!(first, Recv::Event(e) if e.0 == 100));
        assert!(matches!(a.try_recv(), Some(Recv::Event(e)) if e.0 == 101));
        // The next one waits for a tick of its own.
        let waiter = waiting(a);
        tokio::task::yield_now().await;
        let sent = std::time::Instant::now();
        r.deliver(Arc::new(Ev(102, vec![Topic::Agents])));
        let (at, next, _) = waiter.await.unwrap();
        assert!(at - sent >= LATER, "woken before the tick");
        assert!(matches!(next, Recv::Event(e) if e.0 == 102));
    }

    #[tokio::test]
    async fn an_urgent_event_takes_the_waiting_ones_with_it_in_order() {
        let r = Registry::new(8);
        let a = r.connect(None);
        a.subscribe(Topic::Agents);
        a.subscribe(conv(1));
        let waiter = waiting(a);
        tokio::task::yield_now().await;
        r.deliver(Arc::new(Ev(100, vec![Topic::Agents])));
        r.deliver(Arc::new(Ev(1, vec![conv(1)])));
        let (_, first, mut a) = waiter.await.unwrap();
        assert!(matches!(first, Recv::Event(e) if e.0 == 100));
        assert!(matches!(a.try_recv(), Some(Recv::Event(e)) if e.0 == 1));
    }
}
