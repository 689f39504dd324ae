//! Destinations of any app name hosted by the node's identity, as a Python RNS program
//! makes with `RNS.Destination(identity, IN, SINGLE, app, *aspects)`: registered,
//! announced with app data, packets to them received as
//! [`NodeEvent::DestinationPacket`](super::NodeEvent::DestinationPacket), and packets sent
//! to others' destinations with their proof awaited (docs/api.md).

use std::time::Duration;

use rns_core::destination::GroupKey;
use rns_core::transport::ProofStrategy;
use rns_core::AddressHash;

use super::{Call, NodeHandle};
use crate::control::response::{self as r, Probed};
use crate::control::Request;
use crate::Error;

/// The most aspects a name may have, and the longest name (RNS has no limit; a name is
/// hashed, so these only keep a program's mistakes small).
const MAX_ASPECTS: usize = 16;
const MAX_NAME: usize = 256;

/// `app.aspect1.aspect2…`, checked as RNS checks names: no dots inside the parts.
pub fn full_name(app_name: &str, aspects: &[&str]) -> Result<String, Error> {
    if app_name.is_empty() || app_name.contains('.') {
        return Err(Error::BadRequest(format!(
            "app name \"{app_name}\": not empty and without dots"
        )));
    }
    if aspects.len() > MAX_ASPECTS || aspects.iter().any(|a| a.is_empty() || a.contains('.')) {
        return Err(Error::BadRequest(format!(
            "aspects {aspects:?}: at most {MAX_ASPECTS}, each not empty and without dots"
        )));
    }
    let name = std::iter::once(app_name)
        .chain(aspects.iter().copied())
        .collect::<Vec<_>>()
        .join(".");
    if name.len() > MAX_NAME {
        return Err(Error::BadRequest(format!(
            "the name is over {MAX_NAME} bytes"
        )));
    }
    Ok(name)
}

/// A destination elsewhere, addressed by name and identity (RNS: `RNS.Destination(identity,
/// OUT, SINGLE, app_name, *aspects)`, or `OUT, PLAIN` without an identity): its hash is
/// what [`NodeHandle::send_packet`], [`NodeHandle::open_link`] and the other calls take.
/// The identity comes from [`NodeHandle::recall_identity`] (an announce heard) or from the
/// program itself.
#[derive(Debug, Clone)]
pub struct OutDestination {
    hash: AddressHash,
    name: String,
    identity: Option<rns_core::PublicIdentity>,
}

impl OutDestination {
    /// A SINGLE destination hosted by `identity`.
    pub fn single(
        identity: rns_core::PublicIdentity,
        app_name: &str,
        aspects: &[&str],
    ) -> Result<OutDestination, Error> {
        let name = full_name(app_name, aspects)?;
        let hash = rns_core::destination::hash_from_name(&name, Some(&identity.hash()));
        Ok(OutDestination {
            hash,
            name,
            identity: Some(identity),
        })
    }

    /// A PLAIN destination (no identity, no encryption; [`NodeHandle::send_plain`]).
    pub fn plain(app_name: &str, aspects: &[&str]) -> Result<OutDestination, Error> {
        let name = full_name(app_name, aspects)?;
        let hash = rns_core::destination::hash_from_name(&name, None);
        Ok(OutDestination {
            hash,
            name,
            identity: None,
        })
    }

    /// Its hash (RNS: `destination.hash`).
    pub fn hash(&self) -> AddressHash {
        self.hash
    }

    /// Its dotted name, `app_name.aspect…` (RNS: `destination.name` without the identity).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The identity hosting it (a SINGLE destination's).
    pub fn identity(&self) -> Option<&rns_core::PublicIdentity> {
        self.identity.as_ref()
    }
}

/// How a destination's ratchets behave (RNS: `enforce_ratchets`, `set_ratchet_interval`,
/// `set_retained_ratchets`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RatchetSetting {
    /// Refuse packets encrypted to the identity key rather than a ratchet.
    Enforce(bool),
    /// Time between rotations (30 minutes by default; at least a second).
    Interval(Duration),
    /// Keys kept for decrypting (512 by default; 1 to
    /// [`rns_core::ratchets::MAX_RATCHETS`]). Each one kept is tried on a packet no newer
    /// key opens.
    Retained(usize),
}

impl NodeHandle {
    /// Host a SINGLE destination `app_name.aspects…` with this node's identity (RNS:
    /// `RNS.Destination(identity, IN, SINGLE, app_name, *aspects)` and
    /// `set_proof_strategy`); packets to it arrive as
    /// [`NodeEvent::DestinationPacket`](super::NodeEvent::DestinationPacket) to
    /// [`NodeHandle::subscribe`]rs. Returns its hash (the same one RNS computes).
    pub async fn register_destination(
        &self,
        app_name: &str,
        aspects: &[&str],
        proof: ProofStrategy,
    ) -> Result<AddressHash, Error> {
        let name = full_name(app_name, aspects)?;
        self.ask(|tx| Call::RegisterDestination(name, proof, None, tx))
            .await
    }

    /// [`NodeHandle::register_destination`] hosted by another identity the program
    /// holds (`RNS.Destination(identity, IN, SINGLE, …)` with that identity; load one
    /// from an RNS key file with [`rns_core::Identity::from_private_bytes`]).
    pub async fn register_destination_as(
        &self,
        identity: rns_core::Identity,
        app_name: &str,
        aspects: &[&str],
        proof: ProofStrategy,
    ) -> Result<AddressHash, Error> {
        let name = full_name(app_name, aspects)?;
        self.ask(|tx| Call::RegisterDestination(name, proof, Some(Box::new(identity)), tx))
            .await
    }

    /// Host a PLAIN destination `app_name.aspects…` (RNS: `RNS.Destination(None, IN,
    /// PLAIN, …)`): unencrypted packets from neighbours one hop away arrive as
    /// [`NodeEvent::DestinationPacket`](super::NodeEvent::DestinationPacket).
    pub async fn register_plain_destination(
        &self,
        app_name: &str,
        aspects: &[&str],
    ) -> Result<AddressHash, Error> {
        let name = full_name(app_name, aspects)?;
        self.ask(|tx| Call::RegisterNameless(name, None, tx)).await
    }

    /// Host a GROUP destination (RNS: `RNS.Destination(None, IN, GROUP, …)` with
    /// `load_private_key(key)`): packets encrypted with `key` from neighbours one hop away
    /// arrive as [`NodeEvent::DestinationPacket`](super::NodeEvent::DestinationPacket).
    pub async fn register_group_destination(
        &self,
        app_name: &str,
        aspects: &[&str],
        key: GroupKey,
    ) -> Result<AddressHash, Error> {
        let name = full_name(app_name, aspects)?;
        self.ask(|tx| Call::RegisterNameless(name, Some(key), tx))
            .await
    }

    /// Send `data` to a PLAIN destination (by its hash,
    /// [`rns_core::destination::hash_from_name`]): unencrypted, to neighbours one hop away.
    pub async fn send_plain(&self, destination: AddressHash, data: &[u8]) -> Result<(), Error> {
        self.ask(|tx| Call::SendNameless(destination, None, data.to_vec(), tx))
            .await?
    }

    /// Send `data` encrypted with `key` to a GROUP destination, to neighbours one hop away.
    pub async fn send_group(
        &self,
        destination: AddressHash,
        key: &GroupKey,
        data: &[u8],
    ) -> Result<(), Error> {
        let key = key.clone();
        self.ask(|tx| Call::SendNameless(destination, Some(key), data.to_vec(), tx))
            .await?
    }

    /// Stop hosting a destination this program registered (RNS:
    /// `RNS.Transport.deregister_destination`); whether it was registered. The node's
    /// own destinations (`grid.node` …) cannot be removed this way.
    pub async fn deregister_destination(&self, destination: AddressHash) -> Result<bool, Error> {
        self.ask(|tx| Call::DeregisterDestination(destination, tx))
            .await
    }

    /// Announce a destination this program registered, with `app_data`
    /// (`destination.announce(app_data)`).
    pub async fn announce_destination(
        &self,
        destination: AddressHash,
        app_data: &[u8],
    ) -> Result<(), Error> {
        self.ask(|tx| Call::AnnounceDestination(destination, app_data.to_vec(), tx))
            .await?
    }

    /// The identity that announced `destination`, if an announce was heard (RNS:
    /// `RNS.Identity.recall(destination_hash)`); Grid nodes' identities are remembered
    /// across restarts too.
    pub async fn recall_identity(
        &self,
        destination: AddressHash,
    ) -> Result<Option<rns_core::PublicIdentity>, Error> {
        self.ask(|tx| Call::RecallIdentity(destination, tx)).await
    }

    /// The app data of the last announce heard for `destination` (RNS:
    /// `RNS.Identity.recall_app_data(destination_hash)`).
    pub async fn recall_app_data(
        &self,
        destination: AddressHash,
    ) -> Result<Option<Vec<u8>>, Error> {
        self.ask(|tx| Call::RecallAppData(destination, tx)).await
    }

    /// Enable ratchets on a SINGLE destination this program registered (RNS:
    /// `destination.enable_ratchets(path)`): each announce carries the newest of a set of
    /// keys that rotates every 30 minutes, senders encrypt packets to it, and the last 512
    /// are kept for decrypting, so packets outside links gain forward secrecy. The keys
    /// live in the file at `path` (RNS's format, signed by the destination's identity, so a
    /// Python program's file works), read now and rewritten after each rotation; a file
    /// that is not this destination's is refused. Call it before the first announce.
    pub async fn enable_ratchets(
        &self,
        destination: AddressHash,
        path: impl Into<std::path::PathBuf>,
    ) -> Result<(), Error> {
        let path = path.into();
        let io = |e: std::io::Error| Error::BadRequest(format!("{}: {e}", path.display()));
        let file = match std::fs::read(&path) {
            Ok(bytes) => Some(bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(io(e)),
        };
        let p = path.clone();
        let snapshot = self
            .ask(|tx| Call::EnableRatchets(destination, p, file, tx))
            .await??;
        // Written now, as RNS does, so a path that cannot be written fails here (on a
        // blocking thread: the caller may be on the node's runtime).
        tokio::task::spawn_blocking(move || snapshot.write())
            .await
            .map_err(|e| Error::Failed(e.to_string()))?
            .map_err(io)
    }

    /// Refuse packets to `destination` that are not encrypted to one of its ratchets
    /// (RNS: `enforce_ratchets()`); ratchets must be enabled.
    pub async fn enforce_ratchets(&self, destination: AddressHash) -> Result<(), Error> {
        self.ratchet_setting(destination, RatchetSetting::Enforce(true))
            .await
    }

    /// Change how a destination's ratchets behave ([`RatchetSetting`]).
    pub async fn ratchet_setting(
        &self,
        destination: AddressHash,
        setting: RatchetSetting,
    ) -> Result<(), Error> {
        self.ask(|tx| Call::RatchetSetting(destination, setting, tx))
            .await?
    }

    /// Send `data` in one encrypted packet to a SINGLE destination whose announce was
    /// heard, without waiting for its proof (`RNS.Packet(destination, data).send()`,
    /// receipt ignored): its packet hash. [`Error::NoPath`] when the destination is
    /// unknown ([`NodeHandle::find_path`] first).
    pub async fn send_packet_nowait(
        &self,
        destination: AddressHash,
        data: &[u8],
    ) -> Result<[u8; 32], Error> {
        self.ask(|tx| Call::SendPacket(destination, data.to_vec(), tx))
            .await?
    }

    /// Prove a packet received for a destination registered with
    /// [`ProofStrategy::App`] (RNS's `PROVE_APP`: `packet.prove()` when the application
    /// decides to), by the hash in its
    /// [`NodeEvent::DestinationPacket`](super::NodeEvent::DestinationPacket). Whether a
    /// proof was sent: false for an unknown, already proved, or too old packet
    /// ([`rns_core::transport::APP_PROOF_WINDOW`]).
    pub async fn prove_packet(&self, packet_hash: [u8; 32]) -> Result<bool, Error> {
        self.ask(|tx| Call::Prove(packet_hash, tx)).await
    }

    /// Hear announces of destinations named `app_name.aspects…` from anyone
    /// (`RNS.Transport.register_announce_handler` with that aspect filter): they arrive
    /// as [`NodeEvent::Announce`](super::NodeEvent::Announce) to
    /// [`NodeHandle::subscribe`]rs, with the identity, app data, hops and interface.
    pub async fn watch_announces(&self, app_name: &str, aspects: &[&str]) -> Result<(), Error> {
        let name = full_name(app_name, aspects)?;
        let hash = rns_core::destination::name_hash(&name);
        self.ask(|tx| Call::WatchAnnounces(hash, tx)).await?
    }

    /// Send `data` in one encrypted packet to a SINGLE destination (finding its path
    /// first if needed) and wait up to `timeout` for its proof (`RNS.Packet(destination,
    /// data).send()` and its `PacketReceipt`): the round trip and hops.
    pub async fn send_packet(
        &self,
        destination: AddressHash,
        data: &[u8],
        timeout: Duration,
    ) -> Result<Probed, Error> {
        let v = self
            .control(Request::Probe {
                destination,
                size: None,
                data: None,
                data_hex: Some(hex::encode(data)),
                timeout_ms: Some(timeout.as_millis() as u64),
            })
            .await?;
        r::parse(v).map_err(|e| Error::BadResponse(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `RNS.Destination.hash(identity, "example_utilities", "echo", "request")` in rns
    /// 1.5.7 for that identity.
    const PY_ECHO_HASH: &str = "2f15fa200578db1b0c1b699904282ed5";

    #[test]
    fn out_destinations_hash_as_rns_does() {
        // RNS's Echo.py server for the identity of rns-core's test vectors.
        let key = "c8ef46f46b6b401fa0c38abce5bd2f1ccb57395b7d48847089081ad5bd95d2538d7f4c6d015bb50be2f3fc67c4d370538c443507665fc4c9ff7d8cba0d3a74ca";
        let id = rns_core::Identity::from_private_bytes(&hex::decode(key).unwrap()).unwrap();
        let out = OutDestination::single(
            id.public().clone(),
            "example_utilities",
            &["echo", "request"],
        )
        .unwrap();
        assert_eq!(out.hash().to_string(), PY_ECHO_HASH);
        assert_eq!(out.name(), "example_utilities.echo.request");
        let plain = OutDestination::plain("example_utilities", &["echo"]).unwrap();
        assert!(plain.identity().is_none());
        assert_eq!(
            plain.hash(),
            rns_core::destination::hash_from_name("example_utilities.echo", None)
        );
        assert!(OutDestination::plain("bad.app", &[]).is_err());
    }

    #[test]
    fn names_are_checked_like_rns_names() {
        assert_eq!(
            full_name("example_utilities", &["echo", "request"]).unwrap(),
            "example_utilities.echo.request"
        );
        assert!(full_name("bad.app", &[]).is_err());
        assert!(full_name("app", &["a.b"]).is_err());
        assert!(full_name("", &["x"]).is_err());
    }
}
