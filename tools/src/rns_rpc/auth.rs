//! The handshake of Python's `multiprocessing.connection` with an `authkey`, server side:
//! length-prefixed messages (4-byte big-endian length), first a challenge the client
//! must answer with an HMAC of it under the key, then the client's challenge answered
//! the same way. Python up to 3.11 uses HMAC-MD5 without a prefix (what we send, and
//! what every version accepts); 3.12 and later challenge with `{sha256}` and expect the
//! answer prefixed the same way.

use anyhow::{bail, Context, Result};
use hmac::{Hmac, Mac};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

const CHALLENGE: &[u8] = b"#CHALLENGE#";
const WELCOME: &[u8] = b"#WELCOME#";
const FAILURE: &[u8] = b"#FAILURE#";
/// Random bytes in our challenge (Python 3.11's `MESSAGE_LENGTH`).
const MESSAGE_LENGTH: usize = 20;
/// The longest handshake message accepted (Python reads at most 256).
const MAX_HANDSHAKE: usize = 256;

/// Read one message of at most `max` bytes.
pub(crate) async fn recv<S: AsyncRead + Unpin>(s: &mut S, max: usize) -> Result<Vec<u8>> {
    let n = s.read_i32().await.context("reading a length")?;
    let n = usize::try_from(n).ok().filter(|n| *n <= max);
    let Some(n) = n else {
        bail!("a message longer than {max} bytes");
    };
    let mut buf = vec![0; n];
    s.read_exact(&mut buf).await.context("reading a message")?;
    Ok(buf)
}

/// Write one message.
pub(crate) async fn send<S: AsyncWrite + Unpin>(s: &mut S, data: &[u8]) -> Result<()> {
    let n = i32::try_from(data.len()).context("message too long")?;
    s.write_all(&n.to_be_bytes()).await?;
    s.write_all(data).await?;
    s.flush().await?;
    Ok(())
}

fn hmac_md5(key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut m = <Hmac<md5::Md5> as Mac>::new_from_slice(key).expect("any key length");
    m.update(message);
    m.finalize().into_bytes().to_vec()
}

fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut m = <Hmac<sha2::Sha256> as Mac>::new_from_slice(key).expect("any key length");
    m.update(message);
    m.finalize().into_bytes().to_vec()
}

/// The answer to a challenge `message` (the bytes after `#CHALLENGE#`), in the form the
/// challenger asked for; `None` for a digest we do not speak.
fn answer(key: &[u8], message: &[u8]) -> Option<Vec<u8>> {
    if message.first() != Some(&b'{') {
        return Some(hmac_md5(key, message));
    }
    let end = message.iter().position(|b| *b == b'}')?;
    match &message[1..end] {
        b"sha256" => {
            let mut r = b"{sha256}".to_vec();
            r.extend(hmac_sha256(key, message));
            Some(r)
        }
        b"md5" => {
            let mut r = b"{md5}".to_vec();
            r.extend(hmac_md5(key, message));
            Some(r)
        }
        _ => None,
    }
}

/// Authenticate a connecting client with `key`, both ways.
pub(crate) async fn server<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    key: &[u8],
    random: [u8; MESSAGE_LENGTH],
) -> Result<()> {
    // Our challenge: the client proves it has the key.
    let mut challenge = CHALLENGE.to_vec();
    challenge.extend_from_slice(&random);
    send(s, &challenge).await?;
    let response = recv(s, MAX_HANDSHAKE).await?;
    let expected = hmac_md5(key, &random);
    let ok = response.len() == expected.len()
        && response
            .iter()
            .zip(&expected)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    if !ok {
        send(s, FAILURE).await?;
        bail!("the client does not have this instance's rpc_key");
    }
    send(s, WELCOME).await?;
    // The client's challenge: we prove we have it too.
    let message = recv(s, MAX_HANDSHAKE).await?;
    let Some(body) = message.strip_prefix(CHALLENGE) else {
        bail!("no challenge from the client");
    };
    let Some(reply) = answer(key, body) else {
        bail!("the client asked for a digest we do not speak");
    };
    send(s, &reply).await?;
    if recv(s, MAX_HANDSHAKE).await? != WELCOME {
        bail!("the client refused our answer");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_match_pythons_hmac() {
        // hmac.new(b"key", b"hello", "md5").hexdigest() and the sha256 form with prefix.
        assert_eq!(
            hex::encode(answer(b"key", b"hello").unwrap()),
            "04130747afca4d79e32e87cf2104f087"
        );
        let r = answer(b"key", b"{sha256}hello").unwrap();
        assert!(r.starts_with(b"{sha256}"));
        assert_eq!(r.len(), 8 + 32);
        assert_eq!(answer(b"key", b"{blake3}x"), None);
    }

    #[tokio::test]
    async fn a_client_with_the_wrong_key_is_refused() {
        let (mut a, mut b) = tokio::io::duplex(1024);
        let server = tokio::spawn(async move { super::server(&mut a, b"right", [7; 20]).await });
        let challenge = recv(&mut b, 256).await.unwrap();
        let digest = hmac_md5(b"wrong", &challenge[CHALLENGE.len()..]);
        send(&mut b, &digest).await.unwrap();
        assert_eq!(recv(&mut b, 256).await.unwrap(), FAILURE);
        assert!(server.await.unwrap().is_err());
    }
}
