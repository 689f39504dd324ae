//! Proofs of delivery for SINGLE-destination packets.
//!
//! A proof is a PROOF packet addressed to the proven packet's truncated hash, carrying
//! either `signature(64)` (implicit, RNS 1.5.7's default) or `packet_hash(32) ‖ signature(64)`
//! (explicit). The signature is the destination identity's Ed25519 signature of the full
//! packet hash.

use crate::destination::DestinationType;
use crate::hash::{AddressHash, FULL_HASH_LEN};
use crate::identity::{Identity, PublicIdentity, SIGNATURE_LEN};
use crate::packet::{Context, Flags, Packet, PacketType};

/// Length of an implicit proof.
pub const IMPLICIT_LEN: usize = SIGNATURE_LEN;
/// Length of an explicit proof.
pub const EXPLICIT_LEN: usize = FULL_HASH_LEN + SIGNATURE_LEN;

/// Why a proof does not prove a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// Neither 64 nor 96 bytes.
    #[error("proof has invalid length {0}")]
    Length(usize),
    /// An explicit proof names a different packet.
    #[error("proof is for another packet")]
    WrongPacket,
    /// The signature does not verify.
    #[error("proof signature does not verify")]
    BadSignature,
}

/// Build the proof packet for a received packet, implicit or explicit.
pub fn build(identity: &Identity, packet_hash: &[u8; FULL_HASH_LEN], explicit: bool) -> Packet {
    let sig = identity.sign(packet_hash);
    let mut data = Vec::with_capacity(EXPLICIT_LEN);
    if explicit {
        data.extend_from_slice(packet_hash);
    }
    data.extend_from_slice(&sig);
    Packet {
        flags: Flags::new(DestinationType::Single, PacketType::Proof),
        hops: 0,
        transport_id: None,
        destination: AddressHash::from_full(packet_hash),
        context: Context::NONE,
        data,
    }
}

/// If `data` is an explicit proof, the packet hash it names.
pub fn explicit_hash(data: &[u8]) -> Option<[u8; FULL_HASH_LEN]> {
    (data.len() == EXPLICIT_LEN).then(|| data[..FULL_HASH_LEN].try_into().expect("32 bytes"))
}

/// Check that `data` proves delivery of `packet_hash` by `signer`.
pub fn validate(
    data: &[u8],
    packet_hash: &[u8; FULL_HASH_LEN],
    signer: &PublicIdentity,
) -> Result<(), ProofError> {
    let sig = match data.len() {
        EXPLICIT_LEN => {
            if &data[..FULL_HASH_LEN] != packet_hash {
                return Err(ProofError::WrongPacket);
            }
            &data[FULL_HASH_LEN..]
        }
        IMPLICIT_LEN => data,
        n => return Err(ProofError::Length(n)),
    };
    signer
        .verify(packet_hash, sig)
        .map_err(|_| ProofError::BadSignature)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::full_hash;

    const SERVER_KEY: &str = "c8ef46f46b6b401fa0c38abce5bd2f1ccb57395b7d48847089081ad5bd95d2538d7f4c6d015bb50be2f3fc67c4d370538c443507665fc4c9ff7d8cba0d3a74ca";
    const SINGLE: &str = "000081e1e65370bf9705c9c5583eff258bc600ac0214e3f97ad8ca0c65c87a8939b568a1335bf2bbb1a88542d2dcbfdde12d3f8320240bc2fe1f607444172c637a536bc77164465d8cf37bd153cdc18a458ac8281ddf4971a07ca757971193dda04c3209c01668c19f21c4254124bad5dd69c4";
    const PROOF: &str = "03002e23147bde6e37804a299a308eb986b6004851fadf296cb1018df26aa087feb20f1b8bc02a8af24bdad0373dd5635501f5ac92af1f8057521c85d9a3ddc62a5a363e3c26cbb4f6a2b2687e512f6ccee306";

    #[test]
    fn vector_single_packet_decrypts_and_proof_matches() {
        let id = Identity::from_private_bytes(&hex::decode(SERVER_KEY).unwrap()).unwrap();
        let p = Packet::parse(&hex::decode(SINGLE).unwrap()).unwrap();
        assert_eq!(id.decrypt(&p.data, &[], false).unwrap(), b"hello single");
        // Ed25519 is deterministic: our implicit proof is byte-identical to RNS's.
        let proof = build(&id, &p.hash(), false);
        assert_eq!(hex::encode(proof.to_bytes()), PROOF);
        let parsed = Packet::parse(&hex::decode(PROOF).unwrap()).unwrap();
        assert_eq!(parsed.destination, p.truncated_hash());
        validate(&parsed.data, &p.hash(), id.public()).unwrap();
    }

    #[test]
    fn explicit_and_bad_proofs() {
        let id = Identity::from_private_bytes(&hex::decode(SERVER_KEY).unwrap()).unwrap();
        let h = full_hash(b"packet");
        let proof = build(&id, &h, true);
        assert_eq!(proof.data.len(), EXPLICIT_LEN);
        assert_eq!(explicit_hash(&proof.data), Some(h));
        validate(&proof.data, &h, id.public()).unwrap();
        let other = full_hash(b"other");
        assert_eq!(
            validate(&proof.data, &other, id.public()),
            Err(ProofError::WrongPacket)
        );
        assert_eq!(
            validate(&proof.data[32..], &other, id.public()),
            Err(ProofError::BadSignature)
        );
        assert_eq!(
            validate(&proof.data[..10], &h, id.public()),
            Err(ProofError::Length(10))
        );
    }
}
