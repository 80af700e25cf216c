//! Frames that go to many sockets, encoded once.
//!
//! A list row (`conversation`) goes to every agent socket that may see the conversation,
//! and each would encode the very same JSON. The sockets share the text instead: the first
//! to need a frame encodes it, the others take the same bytes (`Utf8Bytes` is shared, not
//! copied). The key is the event as delivered (every socket gets the same `Arc`) and what
//! differs per socket (for a list row, the agent's read position).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, TryLockError, Weak};

use axum::extract::ws::Utf8Bytes;

/// How many recent (event, variant) frames are kept. Sockets take an event from their queue
/// at slightly different times; a socket that is further behind than this encodes its own.
const KEEP: usize = 64;

pub struct Encoded<E> {
    recent: Mutex<VecDeque<Slot<E>>>,
}

struct Slot<E> {
    /// Weak, so the cache does not keep events alive; it does keep the allocation, so no
    /// other event can have the same address while the slot exists.
    event: Weak<E>,
    variant: i64,
    text: Utf8Bytes,
}

impl<E> Encoded<E> {
    pub const fn new() -> Self {
        Self {
            recent: Mutex::new(VecDeque::new()),
        }
    }

    /// The cache, unless another socket is using it right now: a socket never waits for
    /// the lock (it would cost more than encoding the frame itself).
    fn try_lock(&self) -> Option<MutexGuard<'_, VecDeque<Slot<E>>>> {
        match self.recent.try_lock() {
            Ok(g) => Some(g),
            // A panic while holding the lock leaves a plain queue behind: still consistent.
            Err(TryLockError::Poisoned(e)) => Some(e.into_inner()),
            Err(TryLockError::WouldBlock) => None,
        }
    }

    /// The frame for `event` and `variant`: encoded by `encode` the first time, the same
    /// text afterwards. `encode` must depend on nothing but the event and the variant.
    pub fn get_or_encode(
        &self,
        event: &Arc<E>,
        variant: i64,
        encode: impl FnOnce() -> Option<Utf8Bytes>,
    ) -> Option<Utf8Bytes> {
        let key = Arc::as_ptr(event);
        let hit = self.try_lock().and_then(|recent| {
            recent
                .iter()
                .rev()
                .find(|s| s.variant == variant && std::ptr::eq(s.event.as_ptr(), key))
                .map(|s| s.text.clone())
        });
        if hit.is_some() {
            return hit;
        }
        // Encoded outside the lock; two sockets racing for one frame both encode it, and
        // both texts are the same.
        let text = encode()?;
        if let Some(mut recent) = self.try_lock() {
            if recent.len() >= KEEP {
                recent.pop_front();
            }
            recent.push_back(Slot {
                event: Arc::downgrade(event),
                variant,
                text: text.clone(),
            });
        }
        Some(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[test]
    fn encodes_once_per_event_and_variant() {
        let cache = Encoded::<u32>::new();
        let (a, b) = (Arc::new(1), Arc::new(2));
        let calls = Cell::new(0);
        let enc = |e: &Arc<u32>, v: i64| {
            cache
                .get_or_encode(e, v, || {
                    calls.set(calls.get() + 1);
                    Some(Utf8Bytes::from(format!("{e}/{v}")))
                })
                .unwrap()
        };
        assert_eq!(enc(&a, 0).as_str(), "1/0");
        assert_eq!(enc(&b, 0).as_str(), "2/0");
        assert_eq!(enc(&a, 5).as_str(), "1/5");
        assert_eq!(calls.get(), 3);
        // Every further socket gets the same text without encoding.
        for _ in 0..7 {
            assert_eq!(enc(&a, 0).as_str(), "1/0");
            assert_eq!(enc(&b, 0).as_str(), "2/0");
            assert_eq!(enc(&a, 5).as_str(), "1/5");
        }
        assert_eq!(calls.get(), 3);
    }

    #[test]
    fn a_new_event_is_never_taken_for_an_old_one() {
        let cache = Encoded::<u32>::new();
        for i in 0..1000u32 {
            // Each event is dropped before the next is made, so the allocator may well
            // hand out the same address again.
            let e = Arc::new(i);
            let text = cache
                .get_or_encode(&e, 0, || Some(Utf8Bytes::from(i.to_string())))
                .unwrap();
            assert_eq!(text.as_str(), i.to_string());
        }
    }

    #[test]
    fn keeps_only_the_recent_frames() {
        let cache = Encoded::<usize>::new();
        let events: Vec<_> = (0..KEEP + 1).map(Arc::new).collect();
        for e in &events {
            cache.get_or_encode(e, 0, || Some(Utf8Bytes::from(e.to_string())));
        }
        assert_eq!(cache.try_lock().unwrap().len(), KEEP);
        let mut encoded = false;
        let text = cache.get_or_encode(&events[0], 0, || {
            encoded = true;
            Some(Utf8Bytes::from("0"))
        });
        assert!(encoded, "the oldest was let go");
        assert_eq!(text.unwrap().as_str(), "0");
    }
}
