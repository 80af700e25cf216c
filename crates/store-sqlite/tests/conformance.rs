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
