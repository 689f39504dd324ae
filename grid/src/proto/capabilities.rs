//! What a node can do, in a few bytes: carried as the `app_data` of its `grid.node`
//! announce (postcard), so peers learn each other's capabilities just by hearing the
//! announce, and routing hints (`prefer-gpu`, `max-compute`) have something to go on.
//!
//! The encoding stays far below the 285 bytes an announce's app_data may take and still
//! travel past the first hop (rns-wire.md §1.6).

use serde::{Deserialize, Serialize};

/// Capability format version.
pub const CAPABILITIES_VERSION: u8 = 1;
/// The most app_data bytes that propagate beyond the first hop (with a ratchet).
pub const MAX_APP_DATA: usize = 285;
/// A GPU name is cut to this many bytes.
pub const MAX_GPU_NAME: usize = 32;

/// Roles a node plays.
pub mod roles {
    /// Forwards packets for others.
    pub const TRANSPORT: u8 = 1;
    /// Holds bundles for others (delay-tolerant custody).
    pub const CUSTODY: u8 = 2;
    /// Serves programs on its host.
    pub const SHARED_INSTANCE: u8 = 4;
    /// Takes compute jobs from peers (`[compute] enabled = true`): `ai/generate`, placed
    /// by `grid ask`.
    pub const COMPUTE: u8 = 8;
}

/// A GPU.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gpu {
    /// Model name (at most [`MAX_GPU_NAME`] bytes).
    pub name: String,
    /// Video memory, MB.
    pub vram_mb: u32,
}

/// A node's capability summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capabilities {
    /// Format version ([`CAPABILITIES_VERSION`]).
    pub version: u8,
    /// CPU cores.
    pub cpu_cores: u16,
    /// Memory, MB.
    pub ram_mb: u32,
    /// A GPU, if any.
    pub gpu: Option<Gpu>,
    /// [`roles`] bits.
    pub roles: u8,
    /// Adapters (skills) held.
    pub adapters: u16,
    /// Models held.
    pub models: u16,
}

impl Capabilities {
    /// The announce app_data.
    pub fn encode(&self) -> Vec<u8> {
        let mut c = self.clone();
        if let Some(g) = c.gpu.as_mut() {
            if g.name.len() > MAX_GPU_NAME {
                let mut end = MAX_GPU_NAME;
                while !g.name.is_char_boundary(end) {
                    end -= 1;
                }
                g.name.truncate(end);
            }
        }
        postcard::to_allocvec(&c).unwrap_or_default()
    }

    /// Read a peer's announce app_data; `None` for anything else (other programs'
    /// app_data, a newer version, garbage).
    pub fn decode(app_data: &[u8]) -> Option<Capabilities> {
        if app_data.is_empty() || app_data.len() > MAX_APP_DATA {
            return None;
        }
        let (c, rest): (Capabilities, _) = postcard::take_from_bytes(app_data).ok()?;
        (rest.is_empty() && c.version == CAPABILITIES_VERSION).then_some(c)
    }

    /// As people and scripts read it: roles by name, no version.
    pub fn summary(&self) -> CapabilitySummary {
        let roles = [
            (roles::TRANSPORT, "transport"),
            (roles::CUSTODY, "custody"),
            (roles::SHARED_INSTANCE, "shared_instance"),
            (roles::COMPUTE, "compute"),
        ]
        .into_iter()
        .filter(|(bit, _)| self.roles & bit != 0)
        .map(|(_, name)| name.to_string())
        .collect();
        CapabilitySummary {
            cpu_cores: self.cpu_cores,
            ram_mb: self.ram_mb,
            gpu: self.gpu.clone(),
            roles,
            adapters: self.adapters,
            models: self.models,
        }
    }

    /// As JSON for people and scripts ([`Capabilities::summary`]).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self.summary()).unwrap_or_default()
    }
}

/// [`Capabilities`] as `grid status` and `grid/status` show them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapabilitySummary {
    /// CPU cores.
    pub cpu_cores: u16,
    /// RAM, MB.
    pub ram_mb: u32,
    /// The GPU, if any.
    pub gpu: Option<Gpu>,
    /// Roles by name: `transport`, `custody`, `shared_instance`, `compute`.
    pub roles: Vec<String>,
    /// Adapters (skills) held.
    pub adapters: u16,
    /// Models held.
    pub models: u16,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn round_trips_and_stays_small() {
        let c = Capabilities {
            gpu: Some(Gpu {
                name: "x".repeat(100),
                vram_mb: 24_576,
            }),
            adapters: 12,
            ..Capabilities::of_this_machine(roles::TRANSPORT | roles::CUSTODY)
        };
        let bytes = c.encode();
        assert!(bytes.len() <= 64, "{} bytes", bytes.len());
        let back = Capabilities::decode(&bytes).unwrap();
        assert_eq!(back.gpu.as_ref().unwrap().name.len(), MAX_GPU_NAME);
        assert_eq!((back.roles, back.adapters), (3, 12));
        assert_eq!(
            back.to_json()["roles"],
            serde_json::json!(["transport", "custody"])
        );
    }

    #[test]
    fn other_app_data_is_not_capabilities() {
        assert_eq!(Capabilities::decode(b""), None);
        assert_eq!(Capabilities::decode(b"hello-grid"), None);
        let mut newer = Capabilities::of_this_machine(0).encode();
        newer[0] = CAPABILITIES_VERSION + 1;
        assert_eq!(Capabilities::decode(&newer), None);
    }

    proptest! {
        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = Capabilities::decode(&bytes);
        }
    }
}
