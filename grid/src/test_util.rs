//! Helpers for the crate's unit tests: the workspace's shared ones.

pub(crate) use grid_test_support::TempDir;
