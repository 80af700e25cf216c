//! A brand-new PostgreSQL database per test, dropped again when the test ends.
//!
//! The server is the one at `CONFAB_TEST_PG_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`, the admin database). When it cannot be
//! reached the test fails, saying so: a skipped backend would look like a passing one.

#![allow(dead_code)] // each test binary uses its own part

use std::sync::Arc;
use std::time::Duration;

use confab_store::Store;
use confab_store_postgres::{PgOptions, PgStore};
use sqlx::{Connection, Executor, PgConnection};

pub const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

pub fn admin_url() -> String {
    std::env::var("CONFAB_TEST_PG_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned())
}

/// `url` with its database name replaced by `db` (query parameters are kept).
pub fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let authority = base.find("://").map_or(0, |i| i + 3);
    let root = match base[authority..].find('/') {
        Some(i) => &base[..authority + i],
        None => base,
    };
    format!("{root}/{db}{query}")
}

async fn admin() -> PgConnection {
    let url = admin_url();
    let res = tokio::time::timeout(Duration::from_secs(10), PgConnection::connect(&url)).await;
    match res {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => panic!(
            "PostgreSQL is not reachable at {url} ({e}): start it or set CONFAB_TEST_PG_URL"
        ),
        Err(_) => panic!(
            "PostgreSQL is not reachable at {url} (no answer in 10 s): start it or set CONFAB_TEST_PG_URL"
        ),
    }
}

/// A database that exists for as long as this value does.
pub struct TestDb {
    pub name: String,
    /// The URL of this database.
    pub url: String,
}

impl TestDb {
    pub async fn create() -> Self {
        let mut conn = admin().await;
        let name = format!("confab_test_{:016x}", rand::random::<u64>());
        // Concurrent CREATE DATABASE can trip over each other copying the template.
        let mut attempt = 0;
        loop {
            // The name is ours (a fixed prefix and hex digits), never input.
            match conn.execute(&*format!("CREATE DATABASE {name}")).await {
                Ok(_) => break,
                Err(e) if attempt < 10 => {
                    attempt += 1;
                    eprintln!("CREATE DATABASE {name} failed ({e}); retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("cannot create test database {name}: {e}"),
            }
        }
        let _ = conn.close().await;
        let url = with_database(&admin_url(), &name);
        TestDb { name, url }
    }

    /// A store (one node's pool) on this database.
    pub async fn store(&self) -> PgStore {
        PgStore::connect_with(&self.url, test_options())
            .await
            .unwrap_or_else(|e| panic!("cannot open the store on {}: {e}", self.url))
    }
}

/// Small pools: two tests run at once on a 2-core machine shared with others.
pub fn test_options() -> PgOptions {
    PgOptions {
        max_connections: 8,
        min_connections: 0,
        acquire_timeout: Duration::from_secs(20),
        ..PgOptions::default()
    }
}

impl Drop for TestDb {
    /// Best effort: drops the database from a thread of its own (Drop cannot await), with
    /// FORCE so that connections of pools still closing do not hold it. A database left
    /// behind (the process was killed) is named `confab_test_*` and can be dropped by hand.
    fn drop(&mut self) {
        let name = self.name.clone();
        let joined = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            rt.block_on(async {
                let mut conn = PgConnection::connect(&admin_url())
                    .await
                    .map_err(|e| e.to_string())?;
                conn.execute(&*format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await
                    .map_err(|e| e.to_string())?;
                let _ = conn.close().await;
                Ok::<_, String>(())
            })
        })
        .join();
        if let Ok(Err(e)) = joined {
            eprintln!("could not drop test database {}: {e}", self.name);
        }
    }
}

/// What `conformance_tests!` wants: a fresh store and the guard that keeps it alive.
pub async fn fresh() -> (Arc<dyn Store>, TestDb) {
    let db = TestDb::create().await;
    let store = db.store().await;
    (Arc::new(store), db)
}
