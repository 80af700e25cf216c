//! Entries that reach a socket ahead of one still on its way.
//!
//! A socket sends a conversation's entries strictly in sequence. Two posts to one
//! conversation that commit in the same batch (a visitor's message and the bot's or an
//! agent's answer right behind it) are answered together, and the tasks that publish them
//! race: the later entry's event can reach a socket a few microseconds before the
//! earlier one's. The socket used to take that for a lost event and read the gap from the
//! store at once — a query, a hand-off to the database threads and back, for an entry
//! that was about to arrive anyway (in the throughput benchmark, 1 message in 20 made two
//! sockets read two rows each; `docs/performance.md`, round 7).
//!
//! Now the early entry waits here for at most [`HOLD`]: the missing one arrives, and both
//! go out in order with no read; or the wait ends, and the socket reads the gap from the
//! store as before (a lost event from another node, say). Nothing is skipped either way.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use confab_domain::{ConversationId, Seq};

/// How long an entry waits for the ones before it. The missing event is normally
/// published within microseconds; this is the bound for when it never comes.
pub const HOLD: Duration = Duration::from_millis(20);

/// At most this many entries wait on one socket; past it, the socket reads from the store
/// at once rather than hold more (a socket far behind reads its gap in one query anyway).
const MAX_HELD: usize = 256;

/// The entries a socket holds back, per conversation, keyed by their position (the `seq`
/// for agents, the `visible_seq` for visitors). Empty, it allocates nothing.
pub struct Ahead<T> {
    held: HashMap<ConversationId, Held<T>>,
}

struct Held<T> {
    /// When the wait ends: [`HOLD`] after the first entry was held.
    until: Instant,
    entries: BTreeMap<Seq, T>,
}

impl<T> Default for Ahead<T> {
    fn default() -> Self {
        Self {
            held: HashMap::new(),
        }
    }
}

impl<T> Ahead<T> {
    /// Holds `entry`, at position `pos` of conversation `id`, until the entries before it
    /// arrive or the wait ends. False (and nothing held) when the socket holds too many
    /// already: the caller reads the gap from the store now.
    pub fn hold(&mut self, id: ConversationId, pos: Seq, entry: T, now: Instant) -> bool {
        if self.len() >= MAX_HELD {
            return false;
        }
        let held = self.held.entry(id).or_insert_with(|| Held {
            until: now + HOLD,
            entries: BTreeMap::new(),
        });
        held.entries.insert(pos, entry);
        true
    }

    /// The held entry at exactly `next` in conversation `id`, if there is one. Held
    /// entries before `next` were sent some other way (a read from the store) and are
    /// dropped.
    pub fn take(&mut self, id: ConversationId, next: Seq) -> Option<T> {
        let held = self.held.get_mut(&id)?;
        let mut found = None;
        while let Some(first) = held.entries.first_entry() {
            if *first.key() > next {
                break;
            }
            let at_next = *first.key() == next;
            let entry = first.remove();
            if at_next {
                found = Some(entry);
                break;
            }
        }
        if held.entries.is_empty() {
            self.held.remove(&id);
        }
        found
    }

    /// Drops what is held for `id` (its gap is being read from the store, or the socket
    /// left the conversation).
    pub fn forget(&mut self, id: ConversationId) {
        self.held.remove(&id);
    }

    /// How many entries are held, over all conversations (a few at most, almost always).
    fn len(&self) -> usize {
        self.held.values().map(|h| h.entries.len()).sum()
    }

    /// When the first wait ends, if anything is held.
    pub fn deadline(&self) -> Option<Instant> {
        self.held.values().map(|h| h.until).min()
    }

    /// The conversations whose wait has ended, their entries dropped: the caller reads
    /// their gaps from the store.
    pub fn expired(&mut self, now: Instant) -> Vec<ConversationId> {
        let ids: Vec<_> = self
            .held
            .iter()
            .filter(|(_, h)| h.until <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in &ids {
            self.forget(*id);
        }
        ids
    }
}

/// Resolves when the first wait ends; never while nothing is held. For a socket loop's
/// `select!`: boxed only while something is held, so an idle socket keeps no timer.
pub fn wait(
    deadline: Option<Instant>,
) -> futures::future::Either<std::pin::Pin<Box<tokio::time::Sleep>>, std::future::Pending<()>> {
    use futures::future::Either;
    match deadline {
        Some(at) => Either::Left(Box::pin(tokio::time::sleep_until(at.into()))),
        None => Either::Right(std::future::pending()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const C: ConversationId = ConversationId(7);
    const D: ConversationId = ConversationId(8);

    #[test]
    fn an_early_entry_follows_the_one_it_waited_for() {
        let mut ahead = Ahead::default();
        let now = Instant::now();
        assert!(ahead.hold(C, 5, "five", now));
        assert!(ahead.hold(C, 4, "four", now));
        assert_eq!(ahead.deadline(), Some(now + HOLD));
        // Entry 3 was sent; 4 and then 5 follow from here.
        assert_eq!(ahead.take(C, 4), Some("four"));
        assert_eq!(ahead.take(C, 5), Some("five"));
        assert_eq!(ahead.take(C, 6), None);
        assert_eq!(ahead.deadline(), None, "nothing held, no wait");
        assert!(ahead.held.is_empty());
        assert_eq!(ahead.len(), 0);
    }

    #[test]
    fn a_gap_that_stays_open_is_handed_back_when_the_wait_ends() {
        let mut ahead = Ahead::default();
        let now = Instant::now();
        assert!(ahead.hold(C, 9, 9, now));
        assert!(ahead.hold(D, 3, 3, now + Duration::from_millis(5)));
        assert_eq!(ahead.take(C, 8), None, "8 never came");
        assert!(ahead
            .expired(now + HOLD - Duration::from_millis(1))
            .is_empty());
        assert_eq!(ahead.expired(now + HOLD), vec![C]);
        assert_eq!(ahead.take(C, 9), None, "dropped: the store has it");
        assert_eq!(
            ahead.deadline(),
            Some(now + Duration::from_millis(5) + HOLD)
        );
        assert_eq!(ahead.len(), 1);
    }

    #[test]
    fn entries_already_sent_another_way_are_dropped() {
        let mut ahead = Ahead::default();
        let now = Instant::now();
        for pos in [4, 6, 7] {
            assert!(ahead.hold(C, pos, pos, now));
        }
        // A read from the store sent up to 6; 7 is next.
        assert_eq!(ahead.take(C, 7), Some(7));
        assert!(ahead.held.is_empty());
        assert_eq!(ahead.len(), 0);
        assert!(ahead.hold(D, 2, 2, now));
        ahead.forget(D);
        assert_eq!(ahead.deadline(), None);
        assert_eq!(ahead.len(), 0);
    }

    #[test]
    fn holds_a_bounded_number() {
        let mut ahead = Ahead::default();
        let now = Instant::now();
        // The same entry twice (a duplicate event) is held once.
        assert!(ahead.hold(C, 2, (), now));
        assert!(ahead.hold(C, 2, (), now));
        assert_eq!(ahead.len(), 1);
        for pos in 1..MAX_HELD as Seq {
            assert!(ahead.hold(ConversationId(100 + pos), 2, (), now));
        }
        assert!(!ahead.hold(D, 2, (), now), "full: read from the store");
        assert!(ahead.take(C, 2).is_some());
        assert!(ahead.hold(D, 2, (), now), "room again");
    }
}
