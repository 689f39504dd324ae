//! The context byte. Unknown values are carried through unchanged, as RNS does.

use core::fmt;

/// A packet context. Named constants cover every value RNS 1.5.7 defines.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Context(pub u8);

impl Context {
    /// Generic data, announces.
    pub const NONE: Context = Context(0x00);
    /// Resource part (not packet-encrypted).
    pub const RESOURCE: Context = Context(0x01);
    /// Resource advertisement.
    pub const RESOURCE_ADV: Context = Context(0x02);
    /// Resource part request.
    pub const RESOURCE_REQ: Context = Context(0x03);
    /// Resource hashmap update.
    pub const RESOURCE_HMU: Context = Context(0x04);
    /// Resource proof.
    pub const RESOURCE_PRF: Context = Context(0x05);
    /// Resource cancelled by the sender.
    pub const RESOURCE_ICL: Context = Context(0x06);
    /// Resource rejected or cancelled by the receiver.
    pub const RESOURCE_RCL: Context = Context(0x07);
    /// Request to replay a cached packet.
    pub const CACHE_REQUEST: Context = Context(0x08);
    /// Link request (RPC).
    pub const REQUEST: Context = Context(0x09);
    /// Link response.
    pub const RESPONSE: Context = Context(0x0A);
    /// An announce answering a path request.
    pub const PATH_RESPONSE: Context = Context(0x0B);
    /// Reserved.
    pub const COMMAND: Context = Context(0x0C);
    /// Reserved.
    pub const COMMAND_STATUS: Context = Context(0x0D);
    /// Channel message.
    pub const CHANNEL: Context = Context(0x0E);
    /// Link keepalive (not encrypted).
    pub const KEEPALIVE: Context = Context(0xFA);
    /// Initiator identifies itself on a link.
    pub const LINKIDENTIFY: Context = Context(0xFB);
    /// Link teardown.
    pub const LINKCLOSE: Context = Context(0xFC);
    /// Defined but unused by 1.5.7.
    pub const LINKPROOF: Context = Context(0xFD);
    /// RTT measurement from the link initiator.
    pub const LRRTT: Context = Context(0xFE);
    /// Link request proof.
    pub const LRPROOF: Context = Context(0xFF);

    /// Contexts that bypass the duplicate filter.
    pub const fn bypasses_duplicate_filter(self) -> bool {
        matches!(self.0, 0xFA | 0x03 | 0x05 | 0x01 | 0x08 | 0x0E)
    }

    fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            0x00 => "NONE",
            0x01 => "RESOURCE",
            0x02 => "RESOURCE_ADV",
            0x03 => "RESOURCE_REQ",
            0x04 => "RESOURCE_HMU",
            0x05 => "RESOURCE_PRF",
            0x06 => "RESOURCE_ICL",
            0x07 => "RESOURCE_RCL",
            0x08 => "CACHE_REQUEST",
            0x09 => "REQUEST",
            0x0A => "RESPONSE",
            0x0B => "PATH_RESPONSE",
            0x0C => "COMMAND",
            0x0D => "COMMAND_STATUS",
            0x0E => "CHANNEL",
            0xFA => "KEEPALIVE",
            0xFB => "LINKIDENTIFY",
            0xFC => "LINKCLOSE",
            0xFD => "LINKPROOF",
            0xFE => "LRRTT",
            0xFF => "LRPROOF",
            _ => return None,
        })
    }
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "Context({:#04x})", self.0),
        }
    }
}
