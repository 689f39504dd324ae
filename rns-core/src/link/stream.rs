//! Buffer: byte streams carried as channel messages (RNS `Buffer` / `StreamDataMessage`).
//!
//! A stream message is the system channel type [`STREAM_MSGTYPE`] with a 2-byte header —
//! bit 15 end-of-stream, bit 14 bz2-compressed, bits 13–0 the stream id — followed by the
//! data. Up to [`MAX_CHUNK_LEN`] bytes are offered to bz2 per message, as RNS does, so
//! compressible streams move many times the channel MDU per packet.

use crate::resource::{compress, decompress};

/// The channel message type of stream data.
pub const STREAM_MSGTYPE: u16 = 0xFF00;
/// Largest stream id (14 bits).
pub const STREAM_ID_MAX: u16 = 0x3FFF;
/// Stream header length.
pub const STREAM_HEADER_LEN: usize = 2;
/// Most bytes one message may carry once decompressed.
pub const MAX_CHUNK_LEN: usize = 16 * 1024;

const EOF_BIT: u16 = 0x8000;
const COMPRESSED_BIT: u16 = 0x4000;
/// Chunks at most this long are sent as they are.
const COMPRESS_MIN: usize = 32;
/// Compression attempts per chunk: the whole chunk, then a half, then a third.
const COMPRESSION_TRIES: usize = 3;
/// Bytes compressed to judge whether a chunk is worth a full bz2 attempt.
const COMPRESSION_SAMPLE: usize = 1024;

/// Why stream data was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StreamError {
    /// Shorter than the header.
    #[error("stream message shorter than its header")]
    Truncated,
    /// Compressed data that does not decompress, or to more than [`MAX_CHUNK_LEN`].
    #[error("stream data does not decompress within {MAX_CHUNK_LEN} bytes")]
    BadCompression,
    /// Stream ids have 14 bits.
    #[error("stream id {0} exceeds {STREAM_ID_MAX}")]
    StreamId(u16),
}

/// One message of a stream, decompressed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamData {
    /// The stream (relative to the receiver).
    pub stream_id: u16,
    /// The sender closed the stream after this data.
    pub eof: bool,
    /// The bytes.
    pub data: Vec<u8>,
}

/// Parse a stream message, decompressing (bounded) if flagged.
pub fn parse(raw: &[u8]) -> Result<StreamData, StreamError> {
    let header = raw.get(..STREAM_HEADER_LEN).ok_or(StreamError::Truncated)?;
    let header = u16::from_be_bytes([header[0], header[1]]);
    let body = &raw[STREAM_HEADER_LEN..];
    let data = if header & COMPRESSED_BIT != 0 {
        decompress(body, MAX_CHUNK_LEN).ok_or(StreamError::BadCompression)?
    } else {
        body.to_vec()
    };
    Ok(StreamData {
        stream_id: header & STREAM_ID_MAX,
        eof: header & EOF_BIT != 0,
        data,
    })
}

/// Emit a stream message with an already-prepared body.
pub fn emit(
    stream_id: u16,
    eof: bool,
    compressed: bool,
    body: &[u8],
) -> Result<Vec<u8>, StreamError> {
    if stream_id > STREAM_ID_MAX {
        return Err(StreamError::StreamId(stream_id));
    }
    let header =
        stream_id | if eof { EOF_BIT } else { 0 } | if compressed { COMPRESSED_BIT } else { 0 };
    let mut out = Vec::with_capacity(STREAM_HEADER_LEN + body.len());
    out.extend_from_slice(&header.to_be_bytes());
    out.extend_from_slice(body);
    Ok(out)
}

/// Build the next message of a stream from the front of `data`, fitting `max_body` bytes
/// of body. Returns the message and how many bytes of `data` it carries.
///
/// As RNS does, the first `min(len, 16 KiB)` bytes, then a half and a third of that, are
/// offered to bz2; the first that compresses to fit is sent compressed, else a plain
/// `max_body`-byte slice. A small sample is compressed first so incompressible streams
/// skip the full attempts.
pub fn next_message(
    stream_id: u16,
    data: &[u8],
    eof: bool,
    max_body: usize,
) -> Result<(Vec<u8>, usize), StreamError> {
    let chunk = &data[..data.len().min(MAX_CHUNK_LEN)];
    if chunk.len() > COMPRESS_MIN && worth_compressing(chunk) {
        for attempt in 1..=COMPRESSION_TRIES {
            let seg = &chunk[..chunk.len() / attempt];
            if let Some(c) = compress(seg) {
                if c.len() < max_body && c.len() < seg.len() {
                    // EOF only rides on the message that carries the last byte.
                    let last = eof && seg.len() == data.len();
                    return Ok((emit(stream_id, last, true, &c)?, seg.len()));
                }
            }
        }
    }
    let n = chunk.len().min(max_body);
    let last = eof && n == data.len();
    Ok((emit(stream_id, last, false, &chunk[..n])?, n))
}

fn worth_compressing(chunk: &[u8]) -> bool {
    if chunk.len() <= COMPRESSION_SAMPLE {
        return true;
    }
    compress(&chunk[..COMPRESSION_SAMPLE]).is_some_and(|c| c.len() < COMPRESSION_SAMPLE * 95 / 100)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_bits() {
        let m = emit(0x1234, true, false, b"ab").unwrap();
        assert_eq!(&m[..2], &(0x1234u16 | 0x8000).to_be_bytes());
        let d = parse(&m).unwrap();
        assert_eq!(
            (d.stream_id, d.eof, &d.data[..]),
            (0x1234, true, &b"ab"[..])
        );
        assert_eq!(
            emit(0x4000, false, false, b""),
            Err(StreamError::StreamId(0x4000))
        );
        assert_eq!(parse(&[0x00]), Err(StreamError::Truncated));
    }

    #[test]
    fn compressible_data_packs_many_bytes_per_message() {
        let text = b"the quick brown fox jumps over the lazy dog. ".repeat(1000);
        let (m, used) = next_message(3, &text, true, 400).unwrap();
        assert!(
            m.len() <= 402 && used > 4000,
            "used {used} in {} bytes",
            m.len()
        );
        let d = parse(&m).unwrap();
        assert_eq!(d.data, text[..used]);
        assert!(!d.eof, "more data follows");
    }

    #[test]
    fn incompressible_data_goes_plain_and_eof_rides_the_last_message() {
        use rand_chacha::rand_core::{RngCore, SeedableRng};
        let mut data = vec![0u8; 5000];
        rand_chacha::ChaCha20Rng::seed_from_u64(5).fill_bytes(&mut data);
        let mut off = 0;
        let mut got = Vec::new();
        loop {
            let (m, used) = next_message(0, &data[off..], true, 400).unwrap();
            off += used;
            let d = parse(&m).unwrap();
            got.extend_from_slice(&d.data);
            if d.eof {
                break;
            }
        }
        assert_eq!(got, data);
        // An empty write just carries EOF.
        let (m, used) = next_message(0, b"", true, 400).unwrap();
        assert_eq!((used, parse(&m).unwrap().eof), (0, true));
    }

    #[test]
    fn decompression_bomb_refused() {
        let zeros = vec![0u8; MAX_CHUNK_LEN + 1];
        let body = compress(&zeros).unwrap();
        let m = emit(1, false, true, &body).unwrap();
        assert_eq!(parse(&m), Err(StreamError::BadCompression));
        let m = emit(1, false, true, b"not bz2").unwrap();
        assert_eq!(parse(&m), Err(StreamError::BadCompression));
    }
}
