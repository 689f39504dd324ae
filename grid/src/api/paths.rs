//! Paths and interfaces from Rust, as RNS programs use `RNS.Transport` and
//! `Reticulum.get_*`: the path table, a path found or requested, a path dropped, and
//! each interface's counters (docs/api.md maps the Python calls).

use std::time::Duration;

use rns_core::AddressHash;

use super::NodeHandle;
use crate::control::response::{self as r, InterfaceStatus, PathFound, PathSummary};
use crate::control::Request;
use crate::Error;

fn parse<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> Result<T, Error> {
    r::parse(v).map_err(|e| Error::BadResponse(e.to_string()))
}

impl NodeHandle {
    /// The path table (`RNS.Reticulum.get_path_table`): every known path, fewest hops
    /// first (at most 1,000; [`NodeHandle::path_count`] says how many there are).
    pub async fn path_table(&self) -> Result<Vec<PathSummary>, Error> {
        let s: r::Status = parse(self.control(Request::Status).await?)?;
        Ok(s.paths)
    }

    /// How many paths the node knows.
    pub async fn path_count(&self) -> Result<usize, Error> {
        let s: r::Status = parse(self.control(Request::Status).await?)?;
        Ok(s.path_count)
    }

    /// The path to `destination` if known; else ask the network for it and wait up to
    /// `timeout` (`RNS.Transport.has_path` + `request_path`). Fails with
    /// [`Error::NoPath`] when none came.
    pub async fn find_path(
        &self,
        destination: AddressHash,
        timeout: Duration,
    ) -> Result<PathFound, Error> {
        let v = self
            .control(Request::Path {
                destination,
                timeout_ms: Some(timeout.as_millis() as u64),
            })
            .await?;
        parse(v)
    }

    /// Forget the path to `destination` (`RNS.Transport.expire_path`, `rnpath -d`);
    /// whether one was known.
    pub async fn drop_path(&self, destination: AddressHash) -> Result<bool, Error> {
        let v = self.control(Request::DropPath { destination }).await?;
        Ok(parse::<r::PathDropped>(v)?.dropped)
    }

    /// Each interface traffic flows on, with its counters and a radio's figures
    /// (`RNS.Reticulum.get_interface_stats`).
    pub async fn interface_stats(&self) -> Result<Vec<InterfaceStatus>, Error> {
        let s: r::Status = parse(self.control(Request::Status).await?)?;
        Ok(s.interfaces)
    }
}
