//! Packet wire format: a zero-copy checked view and an owned, emit-able packet.
//!
//! ```text
//! HEADER_1: flags(1) hops(1) destination(16)                  context(1) data(n≥1)
//! HEADER_2: flags(1) hops(1) transport_id(16) destination(16) context(1) data(n≥1)
//! ```

use super::{Context, Flags, HeaderType, HEADER_MAXSIZE, HEADER_MINSIZE};
use crate::hash::{full_hash_parts, AddressHash, FULL_HASH_LEN};

mod field {
    use core::ops::Range;
    pub(super) const FLAGS: usize = 0;
    pub(super) const HOPS: usize = 1;
    /// HEADER_1 destination, or HEADER_2 transport id.
    pub(super) const ADDR1: Range<usize> = 2..18;
    /// HEADER_2 destination.
    pub(super) const ADDR2: Range<usize> = 18..34;
    pub(super) const H1_CONTEXT: usize = 18;
    pub(super) const H2_CONTEXT: usize = 34;
    /// Start of the hashable part after the flags byte, per header type.
    pub(super) const H1_HASHABLE: usize = 2;
    pub(super) const H2_HASHABLE: usize = 18;
}

/// Why bytes are not a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PacketError {
    /// Shorter than the header plus one data byte.
    #[error("packet too short: {len} bytes, need at least {need}")]
    TooShort {
        /// Bytes present.
        len: usize,
        /// Bytes needed for this header type.
        need: usize,
    },
    /// The IFAC flag is set on what should be a logical (IFAC-free) packet.
    #[error("IFAC flag set on a logical packet")]
    IfacFlag,
}

/// A checked, zero-copy view over a logical packet's bytes.
#[derive(Debug, Clone, Copy)]
pub struct PacketView<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> PacketView<T> {
    /// Check the length and flags, then wrap.
    pub fn new_checked(buffer: T) -> Result<Self, PacketError> {
        let b = buffer.as_ref();
        if b.len() < 2 {
            return Err(PacketError::TooShort {
                len: b.len(),
                need: HEADER_MINSIZE + 1,
            });
        }
        let flags = Flags::from_byte(b[field::FLAGS]);
        if flags.ifac {
            return Err(PacketError::IfacFlag);
        }
        let need = match flags.header_type {
            HeaderType::Header1 => HEADER_MINSIZE + 1,
            HeaderType::Header2 => HEADER_MAXSIZE + 1,
        };
        if b.len() < need {
            return Err(PacketError::TooShort { len: b.len(), need });
        }
        Ok(PacketView { buffer })
    }

    /// The underlying bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    /// Consume the view, returning the buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Decoded flags.
    pub fn flags(&self) -> Flags {
        Flags::from_byte(self.as_bytes()[field::FLAGS])
    }

    /// Wire hop count.
    pub fn hops(&self) -> u8 {
        self.as_bytes()[field::HOPS]
    }

    fn is_h2(&self) -> bool {
        self.as_bytes()[field::FLAGS] & Flags::HEADER_2 != 0
    }

    /// Transport id (HEADER_2 only).
    pub fn transport_id(&self) -> Option<AddressHash> {
        self.is_h2()
            .then(|| AddressHash::from_slice(&self.as_bytes()[field::ADDR1]).expect("16 bytes"))
    }

    /// Destination hash.
    pub fn destination(&self) -> AddressHash {
        let r = if self.is_h2() {
            field::ADDR2
        } else {
            field::ADDR1
        };
        AddressHash::from_slice(&self.as_bytes()[r]).expect("16 bytes")
    }

    /// Header length (19 or 35).
    pub fn header_len(&self) -> usize {
        if self.is_h2() {
            HEADER_MAXSIZE
        } else {
            HEADER_MINSIZE
        }
    }

    /// Context byte.
    pub fn context(&self) -> Context {
        let i = if self.is_h2() {
            field::H2_CONTEXT
        } else {
            field::H1_CONTEXT
        };
        Context(self.as_bytes()[i])
    }

    /// Payload.
    pub fn data(&self) -> &[u8] {
        &self.as_bytes()[self.header_len()..]
    }

    /// The part after the flags byte that the packet hash covers (skips hops and transport id).
    pub fn hashable_tail(&self) -> &[u8] {
        let start = if self.is_h2() {
            field::H2_HASHABLE
        } else {
            field::H1_HASHABLE
        };
        &self.as_bytes()[start..]
    }

    /// Full packet hash: SHA-256 of `(flags & 0x0F) ‖ hashable tail`.
    pub fn hash(&self) -> [u8; FULL_HASH_LEN] {
        full_hash_parts(&[&[self.as_bytes()[0] & 0x0F], self.hashable_tail()])
    }

    /// Truncated packet hash (16 bytes).
    pub fn truncated_hash(&self) -> AddressHash {
        AddressHash::from_full(&self.hash())
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> PacketView<T> {
    /// Overwrite the hop count.
    pub fn set_hops(&mut self, hops: u8) {
        self.buffer.as_mut()[field::HOPS] = hops;
    }
}

/// An owned packet: header fields plus payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    /// Flags. On emit the IFAC bit is cleared and the header type follows `transport_id`.
    pub flags: Flags,
    /// Hop count.
    pub hops: u8,
    /// Transport id; present exactly when `flags.header_type` is HEADER_2.
    pub transport_id: Option<AddressHash>,
    /// Destination hash.
    pub destination: AddressHash,
    /// Context byte.
    pub context: Context,
    /// Payload.
    pub data: Vec<u8>,
}

impl Packet {
    /// Parse logical packet bytes.
    pub fn parse(bytes: &[u8]) -> Result<Packet, PacketError> {
        let v = PacketView::new_checked(bytes)?;
        Ok(Packet {
            flags: v.flags(),
            hops: v.hops(),
            transport_id: v.transport_id(),
            destination: v.destination(),
            context: v.context(),
            data: v.data().to_vec(),
        })
    }

    /// Serialized length.
    pub fn len(&self) -> usize {
        self.header_len() + self.data.len()
    }

    /// True when the payload is empty (such a packet is invalid on the wire).
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    fn header_len(&self) -> usize {
        match self.transport_id {
            Some(_) => HEADER_MAXSIZE,
            None => HEADER_MINSIZE,
        }
    }

    /// Append the wire bytes to `out`. The header type follows `transport_id`.
    pub fn emit(&self, out: &mut Vec<u8>) {
        let mut flags = self.flags;
        flags.ifac = false;
        flags.header_type = match self.transport_id {
            Some(_) => HeaderType::Header2,
            None => HeaderType::Header1,
        };
        out.reserve(self.len());
        out.push(flags.to_byte());
        out.push(self.hops);
        if let Some(t) = &self.transport_id {
            out.extend_from_slice(t.as_bytes());
        }
        out.extend_from_slice(self.destination.as_bytes());
        out.push(self.context.0);
        out.extend_from_slice(&self.data);
    }

    /// The wire bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.len());
        self.emit(&mut v);
        v
    }

    /// Full packet hash (independent of hops and transport id).
    pub fn hash(&self) -> [u8; FULL_HASH_LEN] {
        let flags = self.flags.to_byte() & 0x0F;
        full_hash_parts(&[
            &[flags],
            self.destination.as_bytes(),
            &[self.context.0],
            &self.data,
        ])
    }

    /// Truncated packet hash.
    pub fn truncated_hash(&self) -> AddressHash {
        AddressHash::from_full(&self.hash())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::destination::DestinationType;
    use crate::packet::{PacketType, TransportType};

    const ANNOUNCE: &str = "010081e1e65370bf9705c9c5583eff258bc600888e573cff574e6e51f27a8da0db3f41e7c2b9f57887c5762f52d4902210ea5d2f2ed8d17d41a991310e957530170a399aa2c75ef4901afdfdf3d09df9a1a4a2abc5627bfa25e8368938c7093b0ca7006b02852b766bfb122e5f76fa377d0102c51e919c4da7cc39f536812e49611aca3fc828ce51c52d4aaaf1b2ee42c0a5ef4e76535a9b750d7f7cc1489ed4fdccf16f357f02726e732d696e7465726f70";

    #[test]
    fn parse_emit_round_trip_vector() {
        let raw = hex::decode(ANNOUNCE).unwrap();
        let p = Packet::parse(&raw).unwrap();
        assert_eq!(p.flags.packet_type, PacketType::Announce);
        assert_eq!(p.flags.destination_type, DestinationType::Single);
        assert_eq!(p.hops, 0);
        assert_eq!(
            p.destination.to_string(),
            "81e1e65370bf9705c9c5583eff258bc6"
        );
        assert_eq!(p.context, Context::NONE);
        assert_eq!(p.data.len(), 178 - 19);
        assert_eq!(p.to_bytes(), raw);
        let v = PacketView::new_checked(&raw[..]).unwrap();
        assert_eq!(v.hash(), p.hash());
    }

    #[test]
    fn hash_ignores_hops_transport_and_high_flag_bits() {
        let raw = hex::decode(ANNOUNCE).unwrap();
        let mut p = Packet::parse(&raw).unwrap();
        let h = p.hash();
        p.hops = 7;
        p.transport_id = Some(AddressHash([9; 16]));
        p.flags.transport_type = TransportType::Transport;
        p.flags.header_type = crate::packet::HeaderType::Header2;
        p.flags.context_flag = true;
        let raw2 = p.to_bytes();
        assert_eq!(raw2[0], 0x71);
        let v = PacketView::new_checked(&raw2[..]).unwrap();
        assert_eq!(v.hash(), h);
        assert_eq!(v.transport_id(), Some(AddressHash([9; 16])));
        assert_eq!(Packet::parse(&raw2).unwrap(), p);
    }

    #[test]
    fn short_and_ifac_are_refused() {
        assert!(matches!(
            Packet::parse(&[0x00; 19]),
            Err(PacketError::TooShort { len: 19, need: 20 })
        ));
        assert!(matches!(
            Packet::parse(&[0x40; 35]),
            Err(PacketError::TooShort { len: 35, need: 36 })
        ));
        assert_eq!(Packet::parse(&[0x80; 40]), Err(PacketError::IfacFlag));
        assert!(Packet::parse(&[]).is_err());
    }
}
