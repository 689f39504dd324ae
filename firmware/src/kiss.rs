//! KISS framing: `FEND cmd escaped-payload FEND`, with `FESC TFEND` for `FEND` and
//! `FESC TFESC` for `FESC` inside the payload.
//!
//! [`escaped`] encodes without allocating; [`Decoder`] takes one byte at a time and
//! hands out whole frames from a fixed buffer, dropping frames that do not fit.

/// Frame end.
pub const FEND: u8 = 0xC0;
/// Frame escape.
pub const FESC: u8 = 0xDB;
/// Escaped `FEND`.
pub const TFEND: u8 = 0xDC;
/// Escaped `FESC`.
pub const TFESC: u8 = 0xDD;

/// The bytes of one frame (`FEND cmd payload FEND`, escaped), as an iterator.
pub fn escaped(cmd: u8, payload: &[u8]) -> impl Iterator<Item = u8> + '_ {
    let body = core::iter::once(cmd)
        .chain(payload.iter().copied())
        .flat_map(|b| {
            let (a, b2) = match b {
                FEND => (FESC, Some(TFEND)),
                FESC => (FESC, Some(TFESC)),
                other => (other, None),
            };
            core::iter::once(a).chain(b2)
        });
    core::iter::once(FEND)
        .chain(body)
        .chain(core::iter::once(FEND))
}

/// The longest an escaped frame of `payload_len` payload bytes can be.
pub const fn max_escaped_len(payload_len: usize) -> usize {
    2 * (payload_len + 1) + 2
}

/// One decoded frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    /// The command byte.
    pub cmd: u8,
    /// The unescaped payload.
    pub data: &'a [u8],
}

/// A streaming KISS decoder holding at most `N` payload bytes per frame.
#[derive(Debug, Clone)]
pub struct Decoder<const N: usize> {
    buf: heapless::Vec<u8, N>,
    cmd: Option<u8>,
    in_frame: bool,
    escape: bool,
    overflow: bool,
    /// The last frame handed out still sits in `buf`; clear it on the next byte.
    clear_next: bool,
    /// Frames dropped because they were longer than `N`.
    pub oversized: u32,
}

impl<const N: usize> Default for Decoder<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Decoder<N> {
    /// An empty decoder, waiting for the first `FEND`.
    pub const fn new() -> Self {
        Decoder {
            buf: heapless::Vec::new(),
            cmd: None,
            in_frame: false,
            escape: false,
            overflow: false,
            clear_next: false,
            oversized: 0,
        }
    }

    /// Take one byte; returns a frame when this byte completes one. Empty frames
    /// (`FEND FEND`) are skipped; a frame longer than `N` is dropped whole.
    pub fn push(&mut self, byte: u8) -> Option<Frame<'_>> {
        if self.clear_next {
            self.buf.clear();
            self.clear_next = false;
        }
        if byte == FEND {
            let cmd = self.cmd.take();
            let was_in_frame = self.in_frame;
            let overflow = self.overflow;
            self.in_frame = true;
            self.escape = false;
            self.overflow = false;
            if was_in_frame && overflow {
                self.oversized = self.oversized.saturating_add(1);
            }
            return match cmd {
                Some(cmd) if was_in_frame && !overflow => {
                    self.clear_next = true;
                    Some(Frame {
                        cmd,
                        data: &self.buf,
                    })
                }
                _ => {
                    self.buf.clear();
                    None
                }
            };
        }
        if !self.in_frame {
            return None;
        }
        let b = if self.escape {
            self.escape = false;
            match byte {
                TFEND => FEND,
                TFESC => FESC,
                other => other,
            }
        } else if byte == FESC {
            self.escape = true;
            return None;
        } else {
            byte
        };
        match self.cmd {
            None => self.cmd = Some(b),
            Some(_) => {
                if self.buf.push(b).is_err() {
                    self.overflow = true;
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use proptest::prelude::*;
    use std::vec;
    use std::vec::Vec;

    fn decode_all<const N: usize>(d: &mut Decoder<N>, bytes: &[u8]) -> Vec<(u8, Vec<u8>)> {
        let mut out = Vec::new();
        for &b in bytes {
            if let Some(f) = d.push(b) {
                out.push((f.cmd, f.data.to_vec()));
            }
        }
        out
    }

    #[test]
    fn escapes_fend_and_fesc() {
        let e: Vec<u8> = escaped(0x01, &[0xC0, 0x11, 0xDB]).collect();
        assert_eq!(e, [0xC0, 0x01, 0xDB, 0xDC, 0x11, 0xDB, 0xDD, 0xC0]);
        let e: Vec<u8> = escaped(0xC0, &[]).collect();
        assert_eq!(
            e,
            [0xC0, 0xDB, 0xDC, 0xC0],
            "the command byte is escaped too"
        );
    }

    #[test]
    fn decodes_the_detect_burst() {
        let mut d = Decoder::<16>::new();
        let got = decode_all(
            &mut d,
            &[
                0xC0, 0x08, 0x73, 0xC0, 0x50, 0x00, 0xC0, 0x48, 0x00, 0xC0, 0x49, 0x00, 0xC0,
            ],
        );
        assert_eq!(
            got,
            [
                (0x08, vec![0x73]),
                (0x50, vec![0]),
                (0x48, vec![0]),
                (0x49, vec![0])
            ]
        );
    }

    #[test]
    fn skips_noise_empty_and_oversized_frames() {
        let mut d = Decoder::<4>::new();
        let got = decode_all(
            &mut d,
            &[
                1, 2, 3, 0xC0, 0xC0, 0x00, 1, 2, 3, 4, 5, 0xC0, 0x00, 9, 0xC0,
            ],
        );
        assert_eq!(got, [(0x00, vec![9])]);
        assert_eq!(d.oversized, 1);
    }

    proptest! {
        #[test]
        fn round_trips(cmd in any::<u8>(), payload in proptest::collection::vec(any::<u8>(), 0..600)) {
            let mut d = Decoder::<600>::new();
            let bytes: Vec<u8> = escaped(cmd, &payload).collect();
            prop_assert!(bytes.len() <= max_escaped_len(payload.len()));
            let got = decode_all(&mut d, &bytes);
            prop_assert_eq!(got, vec![(cmd, payload)]);
        }

        #[test]
        fn never_panics_on_noise(bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
            let mut d = Decoder::<64>::new();
            for f in decode_all(&mut d, &bytes) {
                prop_assert!(f.1.len() <= 64);
            }
        }
    }
}
