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
