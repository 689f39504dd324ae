//! What the wire parsers in `proto` share: a cursor over a message's bytes that never
//! reads past the end. Each parser turns [`Truncated`] into its own error.

/// A read past the end of the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Truncated;

/// A cursor over bytes being parsed.
#[derive(Debug, Clone, Copy)]
pub struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    /// A cursor at the start of `bytes`.
    pub fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader(bytes)
    }

    /// The next `n` bytes, or [`Truncated`] if fewer are left.
    pub fn take<E: From<Truncated>>(&mut self, n: usize) -> Result<&'a [u8], E> {
        if self.0.len() < n {
            return Err(Truncated.into());
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    /// The next `N` bytes as an array.
    pub fn array<const N: usize, E: From<Truncated>>(&mut self) -> Result<[u8; N], E> {
        let mut out = [0; N];
        out.copy_from_slice(self.take::<E>(N)?);
        Ok(out)
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.0.len()
    }
}
