//! The store conformance suite on PostgreSQL: every case gets a brand-new database.

mod common;

confab_store::conformance_tests!(common::fresh());
