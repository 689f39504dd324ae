//! Support code shared by the `grid` tools, their tests and `grid-bench`.
#![forbid(unsafe_code)]

pub mod netns;
