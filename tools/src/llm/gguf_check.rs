//! A bounded walk over a GGUF file's header before candle parses it.
//!
//! candle's `gguf_file::Content::read` allocates what the header says (string lengths,
//! array lengths, dimension counts) before reading it, so a damaged file could make it
//! allocate without bound or overflow. This walk reads the same header with every
//! length checked against what is left of the file and against fixed limits, and
//! allocates nothing the file does not hold; only then is candle given the file.

use std::io::{self, Read, Seek};

/// Most tensors a model file may declare.
pub const MAX_TENSORS: u64 = 1 << 16;
/// Most metadata entries a model file may declare.
pub const MAX_METADATA: u64 = 1 << 16;
/// Most elements in one metadata array (a vocabulary or its merges).
pub const MAX_ARRAY: u64 = 4 << 20;
/// Most elements in one tensor.
pub const MAX_TENSOR_ELEMS: u64 = 1 << 36;

/// Why a GGUF header was refused.
#[derive(Debug, thiserror::Error)]
pub enum GgufError {
    /// Reading the file failed (or it ended inside the header).
    #[error("reading the GGUF header: {0}")]
    Io(#[from] io::Error),
    /// The header breaks a rule.
    #[error("GGUF header: {0}")]
    Invalid(String),
}

/// What is left to read, and the reader.
struct Walker<'a, R> {
    r: &'a mut R,
    left: u64,
}

impl<R: Read> Walker<'_, R> {
    fn bytes(&mut self, n: u64, what: &str) -> Result<(), GgufError> {
        if n > self.left {
            return Err(GgufError::Invalid(format!(
                "{what}: {n} bytes, but only {} are left in the file",
                self.left
            )));
        }
        io::copy(&mut (&mut *self.r).take(n), &mut io::sink())?;
        self.left -= n;
        Ok(())
    }

    fn u32(&mut self) -> Result<u32, GgufError> {
        let mut b = [0u8; 4];
        self.r.read_exact(&mut b)?;
        self.left = self.left.saturating_sub(4);
        Ok(u32::from_le_bytes(b))
    }

    fn u64(&mut self) -> Result<u64, GgufError> {
        let mut b = [0u8; 8];
        self.r.read_exact(&mut b)?;
        self.left = self.left.saturating_sub(8);
        Ok(u64::from_le_bytes(b))
    }

    fn string(&mut self, what: &str) -> Result<(), GgufError> {
        let n = self.u64()?;
        self.bytes(n, what)
    }

    /// Skip one metadata value of GGUF type `ty`.
    fn value(&mut self, ty: u32, depth: u32) -> Result<(), GgufError> {
        match ty {
            0 | 1 | 7 => self.bytes(1, "value"),
            2 | 3 => self.bytes(2, "value"),
            4..=6 => self.bytes(4, "value"),
            10..=12 => self.bytes(8, "value"),
            8 => self.string("string value"),
            9 if depth == 0 => {
                let elem = self.u32()?;
                let n = self.u64()?;
                if n > MAX_ARRAY {
                    return Err(GgufError::Invalid(format!(
                        "an array of {n} elements (at most {MAX_ARRAY})"
                    )));
                }
                for _ in 0..n {
                    self.value(elem, depth + 1)?;
                }
                Ok(())
            }
            9 => Err(GgufError::Invalid("nested arrays".into())),
            other => Err(GgufError::Invalid(format!("unknown value type {other}"))),
        }
    }
}

/// Walk the header of the GGUF file in `r` (`len` bytes long) and rewind it.
pub fn check_header<R: Read + Seek>(r: &mut R, len: u64) -> Result<(), GgufError> {
    let mut w = Walker { r, left: len };
    let mut magic = [0u8; 4];
    w.r.read_exact(&mut magic)?;
    w.left = w.left.saturating_sub(4);
    if &magic != b"GGUF" {
        return Err(GgufError::Invalid("not a GGUF file (bad magic)".into()));
    }
    let version = w.u32()?;
    if !(2..=3).contains(&version) {
        return Err(GgufError::Invalid(format!(
            "version {version} (only 2 and 3 are read)"
        )));
    }
    let tensors = w.u64()?;
    let entries = w.u64()?;
    if tensors > MAX_TENSORS || entries > MAX_METADATA {
        return Err(GgufError::Invalid(format!(
            "{tensors} tensors and {entries} metadata entries (at most {MAX_TENSORS} and {MAX_METADATA})"
        )));
    }
    for _ in 0..entries {
        w.string("metadata key")?;
        let ty = w.u32()?;
        w.value(ty, 0)?;
    }
    for _ in 0..tensors {
        w.string("tensor name")?;
        let dims = w.u32()?;
        if dims == 0 || dims > 4 {
            return Err(GgufError::Invalid(format!("a tensor of {dims} dimensions")));
        }
        let mut elems = 1u64;
        for _ in 0..dims {
            let d = w.u64()?;
            elems = elems
                .checked_mul(d)
                .filter(|&e| e <= MAX_TENSOR_ELEMS)
                .ok_or_else(|| GgufError::Invalid("a tensor too large".into()))?;
        }
        w.u32()?; // type: candle checks it
        w.u64()?; // offset: checked against the file once the types are known
    }
    r.rewind()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn header(body: &[u8]) -> Vec<u8> {
        let mut v = b"GGUF".to_vec();
        v.extend_from_slice(&3u32.to_le_bytes());
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn lengths_beyond_the_file_are_refused_without_allocating() {
        // 0 tensors, 1 entry: key of length 2^60.
        let mut body = Vec::new();
        body.extend_from_slice(&0u64.to_le_bytes());
        body.extend_from_slice(&1u64.to_le_bytes());
        body.extend_from_slice(&(1u64 << 60).to_le_bytes());
        let file = header(&body);
        let err = check_header(&mut Cursor::new(&file), file.len() as u64).unwrap_err();
        assert!(err.to_string().contains("metadata key"), "{err}");

        // An array of 2^40 u8.
        let mut body = Vec::new();
        body.extend_from_slice(&0u64.to_le_bytes());
        body.extend_from_slice(&1u64.to_le_bytes());
        body.extend_from_slice(&1u64.to_le_bytes());
        body.push(b'k');
        body.extend_from_slice(&9u32.to_le_bytes());
        body.extend_from_slice(&0u32.to_le_bytes());
        body.extend_from_slice(&(1u64 << 40).to_le_bytes());
        let file = header(&body);
        let err = check_header(&mut Cursor::new(&file), file.len() as u64).unwrap_err();
        assert!(err.to_string().contains("array"), "{err}");

        let err = check_header(&mut Cursor::new(b"GGML...."), 8).unwrap_err();
        assert!(err.to_string().contains("magic"), "{err}");
        // A cut file is an I/O error, not a panic.
        let file = header(&[1, 2]);
        assert!(check_header(&mut Cursor::new(&file), file.len() as u64).is_err());
    }

    #[test]
    fn a_small_valid_header_passes() {
        let mut body = Vec::new();
        body.extend_from_slice(&1u64.to_le_bytes()); // 1 tensor
        body.extend_from_slice(&1u64.to_le_bytes()); // 1 entry
        body.extend_from_slice(&1u64.to_le_bytes());
        body.push(b'k');
        body.extend_from_slice(&4u32.to_le_bytes());
        body.extend_from_slice(&7u32.to_le_bytes());
        body.extend_from_slice(&1u64.to_le_bytes());
        body.push(b't');
        body.extend_from_slice(&2u32.to_le_bytes());
        body.extend_from_slice(&4u64.to_le_bytes());
        body.extend_from_slice(&8u64.to_le_bytes());
        body.extend_from_slice(&0u32.to_le_bytes());
        body.extend_from_slice(&0u64.to_le_bytes());
        let file = header(&body);
        check_header(&mut Cursor::new(&file), file.len() as u64).unwrap();
    }
}
