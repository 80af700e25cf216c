//! Confab's model and the inbox rules of PRODUCT.md as pure functions.
//!
//! **Invariant:** nothing in this crate does I/O, reads the clock or is async; callers pass
//! `now` in. The store applies what these functions decide; the API asks them who may do what.

pub mod ids;
pub mod masking;
pub mod model;
pub mod office_hours;
pub mod rich_text;
pub mod rules;
pub mod text;
pub mod wire_time;

pub use ids::*;
pub use model::*;
