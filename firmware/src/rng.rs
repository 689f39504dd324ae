//! The random source the modem draws from: CSMA contention slots, the split-frame
//! sequence nibble and the `RANDOM` command.
//!
//! The crate has no entropy of its own; the caller supplies an [`Rng`]. On hardware that
//! is the chip's RNG; in tests and simulations [`XorShift32`] gives repeatable runs.

/// A source of random 32-bit words.
pub trait Rng {
    /// The next random word.
    fn next_u32(&mut self) -> u32;
}

impl<T: Rng + ?Sized> Rng for &mut T {
    fn next_u32(&mut self) -> u32 {
        (**self).next_u32()
    }
}

/// A small deterministic generator (Marsaglia xorshift32), for tests and simulations
/// that must replay exactly. Not for anything secret.
#[derive(Debug, Clone)]
pub struct XorShift32 {
    state: u32,
}

impl XorShift32 {
    /// A generator from `seed`; a zero seed (which would stick at zero) is replaced by
    /// a fixed non-zero constant.
    pub const fn new(seed: u32) -> Self {
        XorShift32 {
            state: if seed == 0 { 0x9E37_79B9 } else { seed },
        }
    }
}

impl Rng for XorShift32 {
    fn next_u32(&mut self) -> u32 {
        let mut x = self.state;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.state = x;
        x
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xorshift_is_repeatable_and_never_sticks_at_zero() {
        let mut a = XorShift32::new(7);
        let mut b = XorShift32::new(7);
        for _ in 0..100 {
            assert_eq!(a.next_u32(), b.next_u32());
        }
        let mut z = XorShift32::new(0);
        assert!((0..100).all(|_| z.next_u32() != 0));
    }
}
