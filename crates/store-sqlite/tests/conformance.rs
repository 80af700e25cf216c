//! The store conformance suite on SQLite: every case gets a fresh database file.

use std::sync::Arc;

use confab_store::Store;
use confab_store_sqlite::SqliteStore;

async fn fresh() -> (Arc<dyn Store>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("confab.db"))
        .await
        .unwrap();
    (Arc::new(store), dir)
}

confab_store::conformance_tests!(fresh());

/// The group commit's fast path: refused posts wrote nothing, so no batch had to be rolled
/// back and written again post by post (which would hide the mistake from the case above).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_never_roll_back_a_group_commit() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("confab.db"))
        .await
        .unwrap();
    confab_store::conformance::refused_posts_among_many_leave_nothing_behind(Arc::new(
        store.clone(),
    ))
    .await;
    assert_eq!(store.batches_rewritten(), 0);
}

/// The full-text index is written in steps (migrations/0003): after each case it holds
/// exactly the searchable messages up to its mark, and none above; deleting messages it
/// has not seen yet leaves it whole; and opening the store again (as after a crash)
/// indexes the rest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_index_holds_exactly_the_searchable_messages() {
    use confab_store::conformance as case;
    // Posts by visitors and agents, events (assignments, closes, reopenings), and a
    // deleted conversation; each case on a database of its own.
    let mut waited = 0;
    macro_rules! check {
        ($($case:path),*) => {$({
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("confab.db");
            let store = Arc::new(SqliteStore::open(&path).await.unwrap());
            $case(store.clone()).await;
            store.close().await;
            waited += index_matches_messages(&path, stringify!($case));
            let store = SqliteStore::open(&path).await.unwrap();
            store.close().await;
            assert_eq!(index_matches_messages(&path, stringify!($case)), 0, "left unindexed at open");
        })*};
    }
    check!(
        case::listing_filters_and_search,
        case::delete_removes_everything,
        case::visitor_message_wakes_and_reopens
    );
    assert!(waited > 0, "no case left messages for a later step");
}

/// Checks the index against `messages` up to its mark; answers how many searchable
/// messages are above the mark.
fn index_matches_messages(path: &std::path::Path, case: &str) -> i64 {
    let db = rusqlite::Connection::open(path).unwrap();
    let count = |sql: &str, p: &[i64]| {
        db.query_row(sql, rusqlite::params_from_iter(p), |r| r.get::<_, i64>(0))
            .unwrap()
    };
    let mark = count("SELECT indexed_upto FROM search_progress", &[]);
    // Each searchable message up to the mark is found by the first word of its body.
    let mut st = db
        .prepare("SELECT id, body FROM messages WHERE kind <> 'event' AND id <= ?")
        .unwrap();
    let rows: Vec<(i64, String)> = st
        .query_map([mark], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    for (id, body) in &rows {
        let word = body
            .split(|c: char| !c.is_alphanumeric())
            .find(|w| !w.is_empty())
            .unwrap();
        let hits: Vec<i64> = db
            .prepare("SELECT rowid FROM messages_fts WHERE messages_fts MATCH ?")
            .unwrap()
            .query_map([format!("\"{word}\"")], |r| r.get(0))
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        assert!(
            hits.contains(id),
            "{case}: message {id} ({body:?}) is not indexed"
        );
    }
    // And the index holds nothing else: no events, nothing of deleted rows, nothing
    // above the mark.
    let strays = count(
        "SELECT count(*) FROM messages_fts_docsize d \
         LEFT JOIN messages m ON m.id = d.id AND m.kind <> 'event' AND m.id <= ? \
         WHERE m.id IS NULL",
        &[mark],
    );
    assert_eq!(
        strays, 0,
        "{case}: index entries without a searchable message"
    );
    assert_eq!(
        count("SELECT count(*) FROM messages_fts_docsize", &[]),
        rows.len() as i64,
        "{case}"
    );
    let waiting = count(
        "SELECT count(*) FROM messages WHERE kind <> 'event' AND id > ?",
        &[mark],
    );
    if waiting == 0 {
        // Everything is indexed: FTS5's own check compares the index with the messages
        // (a delete of a row it never held would show here).
        db.execute(
            "INSERT INTO messages_fts(messages_fts) VALUES ('integrity-check')",
            [],
        )
        .unwrap_or_else(|e| panic!("{case}: {e}"));
    }
    waiting
}
