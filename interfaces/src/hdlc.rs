//! HDLC-like framing used by RNS on TCP, serial and local sockets (no CRC).
//!
//! A frame is `0x7E ‖ escaped(packet) ‖ 0x7E`; escaping replaces `0x7D` with `0x7D 0x5D`
//! first and then `0x7E` with `0x7D 0x5E`. Consecutive frames may share a flag byte.

/// Frame delimiter.
pub const FLAG: u8 = 0x7E;
/// Escape byte.
pub const ESC: u8 = 0x7D;
/// XOR applied to escaped bytes.
pub const ESC_MASK: u8 = 0x20;
/// Frames this short or shorter are not RNS packets and are ignored.
pub const MIN_FRAME: usize = 19;

/// Append the framed form of `packet` to `out`.
pub fn encode_into(packet: &[u8], out: &mut Vec<u8>) {
    out.reserve(packet.len() + packet.len() / 16 + 2);
    out.push(FLAG);
    // Copy runs between the (rare) bytes that need escaping in bulk.
    let mut rest = packet;
    while let Some(i) = memchr::memchr2(FLAG, ESC, rest) {
        out.extend_from_slice(&rest[..i]);
        out.push(ESC);
        out.push(rest[i] ^ ESC_MASK);
        rest = &rest[i + 1..];
    }
    out.extend_from_slice(rest);
    out.push(FLAG);
}

/// The framed form of `packet`.
pub fn encode(packet: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    encode_into(packet, &mut v);
    v
}

/// A streaming deframer with a bounded frame size.
///
/// Bytes before the first flag are discarded; a frame that grows beyond `max_frame`
/// is discarded up to the next flag, so a hostile peer cannot make it allocate more.
#[derive(Debug)]
pub struct Deframer {
    buf: Vec<u8>,
    in_frame: bool,
    escape: bool,
    overflow: bool,
    max_frame: usize,
    /// Frames discarded for being too short, too long or malformed.
    pub discarded: u64,
}

impl Deframer {
    /// A deframer accepting frames up to `max_frame` bytes (unescaped).
    pub fn new(max_frame: usize) -> Self {
        Deframer {
            buf: Vec::new(),
            in_frame: false,
            escape: false,
            overflow: false,
            max_frame,
            discarded: 0,
        }
    }

    /// Feed bytes; complete frames are passed to `on_frame`.
    pub fn push(&mut self, mut data: &[u8], mut on_frame: impl FnMut(&[u8])) {
        while !data.is_empty() {
            if !self.in_frame || self.overflow {
                // Skip to the next flag.
                match memchr::memchr(FLAG, data) {
                    Some(i) => {
                        if self.in_frame {
                            self.end_frame(&mut on_frame);
                        }
                        self.start_frame();
                        data = &data[i + 1..];
                    }
                    None => return,
                }
                continue;
            }
            if self.escape {
                let b = data[0];
                data = &data[1..];
                if b == FLAG {
                    // An escape right before a flag is malformed: the frame is discarded.
                    self.end_frame(&mut on_frame);
                    self.start_frame();
                    continue;
                }
                self.escape = false;
                self.put(&[b ^ ESC_MASK]);
                continue;
            }
            // Copy the run of ordinary bytes up to the next flag or escape in one go.
            match memchr::memchr2(FLAG, ESC, data) {
                None => {
                    self.put(data);
                    return;
                }
                Some(i) => {
                    self.put(&data[..i]);
                    let special = data[i];
                    data = &data[i + 1..];
                    if special == ESC {
                        self.escape = true;
                    } else {
                        self.end_frame(&mut on_frame);
                        self.start_frame();
                    }
                }
            }
        }
    }

    fn start_frame(&mut self) {
        self.buf.clear();
        self.in_frame = true;
        self.escape = false;
        self.overflow = false;
    }

    fn end_frame(&mut self, on_frame: &mut impl FnMut(&[u8])) {
        if self.overflow || self.escape || (!self.buf.is_empty() && self.buf.len() <= MIN_FRAME) {
            self.discarded += 1;
        } else if !self.buf.is_empty() {
            on_frame(&self.buf);
        }
    }

    fn put(&mut self, bytes: &[u8]) {
        if self.overflow {
            return;
        }
        if self.buf.len() + bytes.len() > self.max_frame {
            self.overflow = true;
            self.buf.clear();
            self.buf.shrink_to(4096);
            return;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes currently buffered (for bounds checks in tests).
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn frames(d: &mut Deframer, data: &[u8]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        d.push(data, |f| out.push(f.to_vec()));
        out
    }

    #[test]
    fn escapes_in_the_right_order() {
        let p = [0x7D, 0x7E, 0x01];
        assert_eq!(encode(&p), vec![0x7E, 0x7D, 0x5D, 0x7D, 0x5E, 0x01, 0x7E]);
    }

    #[test]
    fn shared_flags_short_and_oversized_frames() {
        let a: Vec<u8> = (0..30).collect();
        let b: Vec<u8> = vec![0x7E; 25];
        let mut stream = encode(&a);
        stream.pop(); // share the flag
        stream.extend(encode(&b));
        stream.extend(encode(&[1; 10])); // too short: ignored
        stream.extend(encode(&[2; 500])); // too long for this deframer
        stream.extend(encode(&a));
        let mut d = Deframer::new(100);
        let got = frames(&mut d, &stream);
        assert_eq!(got, vec![a.clone(), b, a]);
        assert_eq!(d.discarded, 2);
        assert!(d.buffered() == 0);
    }

    #[test]
    fn escape_before_flag_discards_the_frame() {
        let mut stream = vec![FLAG];
        stream.extend_from_slice(&[1u8; 30]);
        stream.extend_from_slice(&[ESC, FLAG]);
        let good: Vec<u8> = (0..30).collect();
        stream.extend(encode(&good));
        let mut d = Deframer::new(100);
        assert_eq!(frames(&mut d, &stream), vec![good]);
        assert_eq!(d.discarded, 1);
    }

    #[test]
    fn half_frames_wait_for_the_rest() {
        let a: Vec<u8> = (0..40).collect();
        let s = encode(&a);
        let mut d = Deframer::new(1000);
        assert!(frames(&mut d, &s[..10]).is_empty());
        assert_eq!(frames(&mut d, &s[10..]), vec![a]);
    }

    proptest! {
        #[test]
        fn round_trip(packets in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 20..300), 1..8),
                      split in 1usize..64) {
            let mut stream = Vec::new();
            for p in &packets { encode_into(p, &mut stream); }
            let mut d = Deframer::new(1000);
            let mut got = Vec::new();
            for chunk in stream.chunks(split) { d.push(chunk, |f| got.push(f.to_vec())); }
            prop_assert_eq!(got, packets);
        }

        #[test]
        fn garbage_never_panics_and_stays_bounded(data in proptest::collection::vec(any::<u8>(), 0..4096)) {
            let mut d = Deframer::new(256);
            d.push(&data, |f| assert!(f.len() <= 256 && f.len() > MIN_FRAME));
            prop_assert!(d.buffered() <= 256);
        }
    }
}
