//! Frames as bundles: a [`GridFrame`] sealed to its destination's identity
//! ([`rns_core::crypto::bundle`]: ephemeral X25519, HKDF, ChaCha20-Poly1305, signed by
//! the sender), with the routing fields bound in as associated data so a carrier cannot
//! redirect a bundle or stretch its life.

use rns_core::crypto::bundle::{self, SealError};
use rns_core::destination::hash_from_name;
use rns_core::identity::{Identity, PublicIdentity};
use rns_core::AddressHash;

use super::wire::WireBundle;
use crate::frame::{FrameError, GridFrame};

/// Why a bundle addressed to this node could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    /// Not for us, tampered with, or from a newer seal format.
    #[error("cannot open bundle: {0}")]
    Seal(#[from] SealError),
    /// The sealed frame did not decode.
    #[error("bundle frame: {0}")]
    Frame(#[from] FrameError),
    /// The frame claims another source or target than the seal and the bundle say.
    #[error("bundle frame's {0} does not match its seal")]
    Mismatch(&'static str),
}

/// The associated data a bundle is sealed with: its id, destination and expiry.
fn aad(id: &[u8; 16], destination: &[u8; 16], expires_ms: u64) -> [u8; 40] {
    let mut a = [0u8; 40];
    a[..16].copy_from_slice(id);
    a[16..32].copy_from_slice(destination);
    a[32..].copy_from_slice(&expires_ms.to_be_bytes());
    a
}

/// A node's `grid.node` destination from its identity.
pub fn node_destination(identity: &PublicIdentity) -> [u8; 16] {
    node_destination_of(&identity.hash())
}

/// The `grid.node` destination of the identity whose hash is `identity` (the hash is all
/// a destination needs; reaching it still takes the announce that carries the key).
pub fn node_destination_of(identity: &AddressHash) -> [u8; 16] {
    hash_from_name("grid.node", Some(identity)).0
}

/// Seal `frame` (from `sender` to the node whose identity is `recipient`) into a bundle
/// that expires at `expires_ms`.
pub fn seal_frame<R: rand_core::RngCore + rand_core::CryptoRng>(
    rng: &mut R,
    sender: &Identity,
    recipient: &PublicIdentity,
    frame: &GridFrame,
    now_ms: u64,
    expires_ms: u64,
) -> WireBundle {
    let mut id = [0u8; 16];
    rng.fill_bytes(&mut id);
    let destination = node_destination(recipient);
    let sealed = bundle::seal(
        rng,
        sender,
        recipient,
        &aad(&id, &destination, expires_ms),
        &frame.encode(),
    );
    WireBundle {
        id,
        destination,
        created_ms: now_ms,
        expires_ms,
        sealed,
    }
}

/// Open a bundle addressed to `me`: the authenticated sender and the frame, checked to
/// be from that sender's node and for ours.
pub fn open_frame(
    me: &Identity,
    b: &WireBundle,
) -> Result<(PublicIdentity, GridFrame), EnvelopeError> {
    let opened = bundle::open(me, &aad(&b.id, &b.destination, b.expires_ms), &b.sealed)?;
    let frame = GridFrame::decode(&opened.payload)?;
    if frame.source != node_destination(&opened.sender) {
        return Err(EnvelopeError::Mismatch("source"));
    }
    if frame.target != b.destination || b.destination != node_destination(me.public()) {
        return Err(EnvelopeError::Mismatch("target"));
    }
    Ok((opened.sender, frame))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::Body;

    fn frame(from: &Identity, to: &Identity) -> GridFrame {
        GridFrame {
            correlation: 42,
            source: node_destination(from.public()),
            target: node_destination(to.public()),
            timestamp_ms: 1,
            ttl_ms: 1000,
            body: Body::Request {
                command: "grid/ping".into(),
                params: b"{}".to_vec(),
            },
        }
    }

    #[test]
    fn only_the_destination_opens_and_routing_fields_are_bound() {
        let mut rng = <rand_chacha::ChaCha20Rng as rand_core::SeedableRng>::seed_from_u64(3);
        let (a, b, c) = (
            Identity::generate(&mut rng),
            Identity::generate(&mut rng),
            Identity::generate(&mut rng),
        );
        let f = frame(&a, &b);
        let bundle = seal_frame(&mut rng, &a, b.public(), &f, 1, 5000);
        let (sender, got) = open_frame(&b, &bundle).unwrap();
        assert_eq!((sender.hash(), got), (a.hash(), f.clone()));
        assert!(matches!(
            open_frame(&c, &bundle),
            Err(EnvelopeError::Mismatch("target") | EnvelopeError::Seal(_))
        ));
        let mut longer = bundle.clone();
        longer.expires_ms += 1;
        assert_eq!(
            open_frame(&b, &longer),
            Err(EnvelopeError::Seal(SealError::Decrypt))
        );
        let mut redirected = bundle.clone();
        redirected.destination = node_destination(c.public());
        assert!(open_frame(&c, &redirected).is_err());
        // A frame claiming to come from someone other than the signer is refused.
        let mut forged = frame(&c, &b);
        forged.source = node_destination(c.public());
        let bundle = seal_frame(&mut rng, &a, b.public(), &forged, 1, 5000);
        assert_eq!(
            open_frame(&b, &bundle),
            Err(EnvelopeError::Mismatch("source"))
        );
    }
}
