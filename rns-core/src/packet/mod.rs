//! Packets: the flags byte, contexts, the zero-copy wire view and the owned form.

mod context;
mod flags;
mod wire;

pub use context::Context;
pub use flags::{Flags, HeaderType, PacketType, TransportType};
pub use wire::{Packet, PacketError, PacketView};

/// Network-wide maximum packet size (bytes), before IFAC.
pub const MTU: usize = 500;
/// Header size of a HEADER_1 packet, including the context byte.
pub const HEADER_MINSIZE: usize = 19;
/// Header size of a HEADER_2 packet, including the context byte.
pub const HEADER_MAXSIZE: usize = 35;
/// Minimum IFAC size in bytes.
pub const IFAC_MIN_SIZE: usize = 1;
/// Largest plain payload that fits any packet: 500 − 35 − 1.
pub const MDU: usize = MTU - HEADER_MAXSIZE - IFAC_MIN_SIZE;
/// Largest plaintext that fits one encrypted SINGLE packet.
pub const ENCRYPTED_MDU: usize = ((MDU - crate::crypto::TOKEN_OVERHEAD - 32) / 16) * 16 - 1;
/// Highest hop count a packet may carry (`PATHFINDER_M`).
pub const MAX_HOPS: u8 = 128;

/// Link MDU for a given link MTU: floor((mtu − 1 − 19 − 48)/16)·16 − 1.
pub const fn link_mdu(mtu: usize) -> usize {
    ((mtu - IFAC_MIN_SIZE - HEADER_MINSIZE - crate::crypto::TOKEN_OVERHEAD) / 16) * 16 - 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mdu_values_match_rns() {
        assert_eq!(MDU, 464);
        assert_eq!(ENCRYPTED_MDU, 383);
        assert_eq!(link_mdu(500), 431);
        assert_eq!(link_mdu(16384), 16303);
    }
}
