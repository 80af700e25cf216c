//! `sqlx::migrate!` embeds `migrations/` when this crate compiles; without this, a
//! migration edited or added on its own (no Rust file touched) would not be rebuilt in.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
