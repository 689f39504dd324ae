//! Frames on a worker's pipes: a 4-byte big-endian length and a body of at most a
//! stated size. The embedding worker ([`crate::worker`]) and the text-generation worker
//! ([`crate::generate`]) both talk to their node this way; bodies are postcard.

use std::io::{self, Read, Write};

/// Write one frame: the body's length (4 bytes, big-endian), then the body.
pub fn write_frame(out: &mut impl Write, body: &[u8]) -> io::Result<()> {
    let len = u32::try_from(body.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "frame too long"))?;
    out.write_all(&len.to_be_bytes())?;
    out.write_all(body)?;
    out.flush()
}

/// Read one frame of at most `max` bytes; `None` at a clean end of input (before a
/// length). A longer frame is an error, read no further: the peer is broken.
pub fn read_frame(input: &mut impl Read, max: usize) -> io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 4];
    match input.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("a frame of {len} bytes (at most {max})"),
        ));
    }
    let mut body = vec![0u8; len];
    input.read_exact(&mut body)?;
    Ok(Some(body))
}

/// Encode `value` with postcard and write it as one frame.
pub fn write_value<T: serde::Serialize>(out: &mut impl Write, value: &T) -> io::Result<()> {
    let body = postcard::to_stdvec(value).map_err(bad_data)?;
    write_frame(out, &body)
}

/// Read one frame of at most `max` bytes and decode it with postcard.
pub fn read_value<T: serde::de::DeserializeOwned>(
    input: &mut impl Read,
    max: usize,
) -> io::Result<Option<T>> {
    match read_frame(input, max)? {
        Some(body) => postcard::from_bytes(&body).map(Some).map_err(bad_data),
        None => Ok(None),
    }
}

/// An [`io::Error`] of kind `InvalidData` saying `e`.
pub(crate) fn bad_data(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_end_cleanly() {
        let mut buf = Vec::new();
        write_value(&mut buf, &("hello", 7u32)).unwrap();
        write_frame(&mut buf, b"").unwrap();
        let mut r = &buf[..];
        let v: Option<(String, u32)> = read_value(&mut r, 64).unwrap();
        assert_eq!(v, Some(("hello".to_string(), 7)));
        assert_eq!(read_frame(&mut r, 64).unwrap(), Some(Vec::new()));
        assert_eq!(read_frame(&mut r, 64).unwrap(), None);
    }

    #[test]
    fn an_oversized_or_cut_frame_is_an_error() {
        let mut buf = Vec::new();
        write_frame(&mut buf, &[1u8; 100]).unwrap();
        let err = read_frame(&mut &buf[..], 99).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        let err = read_frame(&mut &buf[..50], 100).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }
}
