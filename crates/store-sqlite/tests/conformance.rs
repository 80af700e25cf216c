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

/// The full-text index lives in a file of its own, kept by a thread of its own
/// (`src/search.rs`): once the store is closed it holds exactly the searchable messages
/// (no events, nothing of deleted rows); and with its file deleted, or a database older
/// than the index beside it, opening the store builds it again to the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_index_holds_exactly_the_searchable_messages() {
    use confab_store::conformance as case;
    // Posts by visitors and agents, events (assignments, closes, reopenings), and a
    // deleted conversation; each case on a database of its own.
    macro_rules! check {
        ($($case:path),*) => {$({
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("confab.db");
            let store = Arc::new(SqliteStore::open(&path).await.unwrap());
            $case(store.clone()).await;
            store.close().await;
            let held = index_matches_messages(&path, stringify!($case));
            // Deleted, it is built again when the store opens.
            for suffix in ["-search", "-search-wal", "-search-shm"] {
                let _ = std::fs::remove_file(dir.path().join(format!("confab.db{suffix}")));
            }
            let store = SqliteStore::open(&path).await.unwrap();
            store.close().await;
            assert_eq!(index_matches_messages(&path, stringify!($case)), held, "rebuilt");
            // A mark beyond the database's messages (a database restored from an older
            // backup): built again too.
            let db = rusqlite::Connection::open(dir.path().join("confab.db-search")).unwrap();
            db.execute("UPDATE progress SET indexed_upto = indexed_upto + 1000", []).unwrap();
            drop(db);
            let store = SqliteStore::open(&path).await.unwrap();
            store.close().await;
            assert_eq!(index_matches_messages(&path, stringify!($case)), held, "rebuilt when stale");
        })*};
    }
    check!(
        case::listing_filters_and_search,
        case::delete_removes_everything,
        case::visitor_message_wakes_and_reopens
    );
}

/// Checks the index against `messages`, everything indexed and every delete applied;
/// answers how many entries it holds.
fn index_matches_messages(path: &std::path::Path, case: &str) -> i64 {
    let db = rusqlite::Connection::open(path).unwrap();
    let mut search = path.as_os_str().to_owned();
    search.push("-search");
    db.execute("ATTACH DATABASE ?1 AS s", [search.to_str().unwrap()])
        .unwrap();
    let count = |sql: &str| db.query_row(sql, [], |r| r.get::<_, i64>(0)).unwrap();
    assert_eq!(
        count("SELECT indexed_upto FROM s.progress"),
        count("SELECT COALESCE(MAX(id), 0) FROM messages"),
        "{case}: the mark is behind"
    );
    assert_eq!(
        count("SELECT count(*) FROM search_erasures"),
        0,
        "{case}: deletes left"
    );
    // Each searchable message is found by the first word of its body.
    let mut st = db
        .prepare("SELECT id, body FROM messages WHERE kind <> 'event'")
        .unwrap();
    let rows: Vec<(i64, String)> = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    for (id, body) in &rows {
        let word = body
            .split(|c: char| !c.is_alphanumeric())
            .find(|w| !w.is_empty())
            .unwrap();
        let hits: Vec<i64> = db
            .prepare("SELECT rowid FROM s.messages_fts WHERE messages_fts MATCH ?")
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
    // And the index holds nothing else: no events, nothing of deleted rows.
    let strays = count(
        "SELECT count(*) FROM s.messages_fts_docsize d \
         LEFT JOIN messages m ON m.id = d.id AND m.kind <> 'event' WHERE m.id IS NULL",
    );
    assert_eq!(
        strays, 0,
        "{case}: index entries without a searchable message"
    );
    let held = count("SELECT count(*) FROM s.messages_fts_docsize");
    assert_eq!(held, rows.len() as i64, "{case}");
    db.execute(
        "INSERT INTO s.messages_fts(messages_fts) VALUES ('integrity-check')",
        [],
    )
    .unwrap_or_else(|e| panic!("{case}: {e}"));
    held
}
