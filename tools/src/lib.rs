//! Support code shared by the `grid` tools, their tests and `grid-bench`.
// Denied, not forbidden: registering a pseudo-terminal with tokio needs one `unsafe`
// call (radio_sim::pty), allowed there with its safety argument.
#![deny(unsafe_code)]

#[cfg(feature = "llm")]
pub mod llm;
pub mod netns;
pub mod radio_sim;
