//! The flags byte: IFAC, header type, context flag, transport type, destination type, packet type.

use crate::destination::DestinationType;

/// HEADER_1 (one address) or HEADER_2 (transport id + destination).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HeaderType {
    /// One address field; 19-byte header.
    Header1,
    /// Transport id then destination; 35-byte header.
    Header2,
}

/// BROADCAST or TRANSPORT (bit 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransportType {
    /// Not in transport.
    Broadcast,
    /// In transport via the node named by the transport id.
    Transport,
}

/// The two packet-type bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PacketType {
    /// Data.
    Data,
    /// Announce.
    Announce,
    /// Link request.
    LinkRequest,
    /// Proof.
    Proof,
}

/// A decoded flags byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Flags {
    /// An interface access code follows the hops byte (never set on a logical packet).
    pub ifac: bool,
    /// Header layout.
    pub header_type: HeaderType,
    /// Context flag; marks announces carrying a ratchet key.
    pub context_flag: bool,
    /// Broadcast or in transport.
    pub transport_type: TransportType,
    /// Destination type.
    pub destination_type: DestinationType,
    /// Packet type.
    pub packet_type: PacketType,
}

impl Flags {
    /// Bit masks of the flags byte.
    pub const IFAC: u8 = 0x80;
    /// Header type bit.
    pub const HEADER_2: u8 = 0x40;
    /// Context flag bit.
    pub const CONTEXT_FLAG: u8 = 0x20;
    /// Transport type bit.
    pub const TRANSPORT: u8 = 0x10;

    /// Plain flags for a HEADER_1 broadcast packet.
    pub const fn new(destination_type: DestinationType, packet_type: PacketType) -> Self {
        Flags {
            ifac: false,
            header_type: HeaderType::Header1,
            context_flag: false,
            transport_type: TransportType::Broadcast,
            destination_type,
            packet_type,
        }
    }

    /// Decode a flags byte (every byte value is a valid flags byte).
    pub const fn from_byte(b: u8) -> Self {
        Flags {
            ifac: b & Self::IFAC != 0,
            header_type: if b & Self::HEADER_2 != 0 {
                HeaderType::Header2
            } else {
                HeaderType::Header1
            },
            context_flag: b & Self::CONTEXT_FLAG != 0,
            transport_type: if b & Self::TRANSPORT != 0 {
                TransportType::Transport
            } else {
                TransportType::Broadcast
            },
            destination_type: DestinationType::from_bits(b >> 2),
            packet_type: match b & 0x03 {
                0 => PacketType::Data,
                1 => PacketType::Announce,
                2 => PacketType::LinkRequest,
                _ => PacketType::Proof,
            },
        }
    }

    /// Encode to a byte.
    pub const fn to_byte(self) -> u8 {
        let mut b = 0u8;
        if self.ifac {
            b |= Self::IFAC;
        }
        if matches!(self.header_type, HeaderType::Header2) {
            b |= Self::HEADER_2;
        }
        if self.context_flag {
            b |= Self::CONTEXT_FLAG;
        }
        if matches!(self.transport_type, TransportType::Transport) {
            b |= Self::TRANSPORT;
        }
        b |= (self.destination_type as u8) << 2;
        b |= match self.packet_type {
            PacketType::Data => 0,
            PacketType::Announce => 1,
            PacketType::LinkRequest => 2,
            PacketType::Proof => 3,
        };
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_byte_round_trips() {
        for b in 0..=255u8 {
            assert_eq!(Flags::from_byte(b).to_byte(), b);
        }
    }

    #[test]
    fn observed_values() {
        let f = Flags::from_byte(0x51);
        assert_eq!(f.header_type, HeaderType::Header2);
        assert_eq!(f.transport_type, TransportType::Transport);
        assert_eq!(f.packet_type, PacketType::Announce);
        assert_eq!(f.destination_type, DestinationType::Single);
        let f = Flags::from_byte(0x0f);
        assert_eq!(f.destination_type, DestinationType::Link);
        assert_eq!(f.packet_type, PacketType::Proof);
        assert!(Flags::from_byte(0x21).context_flag);
        assert_eq!(
            Flags::new(DestinationType::Plain, PacketType::Data).to_byte(),
            0x08
        );
    }
}
