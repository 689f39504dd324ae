//! Link wire formats: MTU/mode signalling, link requests, link ids, LRPROOFs, and the
//! msgpack bodies of RTT, request and response packets.

use ed25519_dalek::{Signature, VerifyingKey};

use crate::hash::{full_hash_parts, truncated_hash, AddressHash};
use crate::identity::SIGNATURE_LEN;
use crate::packet::PacketView;

/// Length of the public keys in a link request (X25519 ‖ Ed25519).
pub const ECPUBSIZE: usize = 64;
/// Length of the MTU/mode signalling bytes.
pub const SIGNALLING_LEN: usize = 3;
/// Mask of the MTU in the 24-bit signalling value.
pub const MTU_MASK: u32 = 0x1F_FFFF;
/// AES-256-CBC: the only link mode RNS 1.5.7 enables.
pub const MODE_AES256_CBC: u8 = 1;
/// LRPROOF length without signalling: signature ‖ responder X25519 public key.
pub const PROOF_LEN: usize = SIGNATURE_LEN + 32;

/// Why link wire data is not acceptable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LinkWireError {
    /// A link request must be 64 or 67 bytes.
    #[error("link request of {0} bytes (expected 64 or 67)")]
    RequestLength(usize),
    /// An LRPROOF must be 96 or 99 bytes.
    #[error("link proof of {0} bytes (expected 96 or 99)")]
    ProofLength(usize),
    /// The link mode is not enabled.
    #[error("link mode {0} is not supported")]
    Mode(u8),
    /// An Ed25519 key in the request is not valid.
    #[error("invalid Ed25519 key in link request")]
    Key,
    /// The LRPROOF signature does not verify.
    #[error("link proof signature does not verify")]
    BadSignature,
    /// A msgpack body is malformed.
    #[error("malformed msgpack body")]
    Msgpack,
}

/// Encode MTU and mode into the 3 signalling bytes.
pub fn signalling_bytes(mtu: u32, mode: u8) -> [u8; SIGNALLING_LEN] {
    let v = (mtu & MTU_MASK) | (u32::from(mode & 0x07) << 21);
    [(v >> 16) as u8, (v >> 8) as u8, v as u8]
}

/// Decode signalling bytes into (mtu, mode).
pub fn parse_signalling(b: &[u8; SIGNALLING_LEN]) -> (u32, u8) {
    let v = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
    (v & MTU_MASK, (b[0] >> 5) & 0x07)
}

/// A parsed link request payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkRequest {
    /// Initiator's ephemeral X25519 public key.
    pub x25519: [u8; 32],
    /// Initiator's ephemeral Ed25519 public key (it signs the initiator's link proofs).
    pub ed25519: [u8; 32],
    /// Signalled (MTU, mode), if present.
    pub signalling: Option<(u32, u8)>,
}

impl LinkRequest {
    /// Parse a LINKREQUEST payload.
    pub fn parse(data: &[u8]) -> Result<LinkRequest, LinkWireError> {
        if data.len() != ECPUBSIZE && data.len() != ECPUBSIZE + SIGNALLING_LEN {
            return Err(LinkWireError::RequestLength(data.len()));
        }
        let signalling = (data.len() == ECPUBSIZE + SIGNALLING_LEN)
            .then(|| parse_signalling(data[ECPUBSIZE..].try_into().expect("3 bytes")));
        if let Some((_, mode)) = signalling {
            if mode != MODE_AES256_CBC {
                return Err(LinkWireError::Mode(mode));
            }
        }
        let ed25519: [u8; 32] = data[32..64].try_into().expect("32 bytes");
        VerifyingKey::from_bytes(&ed25519).map_err(|_| LinkWireError::Key)?;
        Ok(LinkRequest {
            x25519: data[..32].try_into().expect("32 bytes"),
            ed25519,
            signalling,
        })
    }

    /// Serialize.
    pub fn emit(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(ECPUBSIZE + SIGNALLING_LEN);
        v.extend_from_slice(&self.x25519);
        v.extend_from_slice(&self.ed25519);
        if let Some((mtu, mode)) = self.signalling {
            v.extend_from_slice(&signalling_bytes(mtu, mode));
        }
        v
    }
}

/// The link id of a LINKREQUEST: the truncated hash of its hashable part, without the
/// signalling bytes (so transport nodes that rewrite them do not change the id).
pub fn link_id<T: AsRef<[u8]>>(request: &PacketView<T>) -> AddressHash {
    let tail = request.hashable_tail();
    let extra = request.data().len().saturating_sub(ECPUBSIZE);
    let tail = &tail[..tail.len() - extra];
    AddressHash::from_full(&full_hash_parts(&[&[request.as_bytes()[0] & 0x0F], tail]))
}

/// The data an LRPROOF signs.
pub fn proof_signed_data(
    link_id: &AddressHash,
    responder_x25519: &[u8; 32],
    destination_ed25519: &[u8; 32],
    signalling: Option<&[u8; SIGNALLING_LEN]>,
) -> Vec<u8> {
    let mut s = Vec::with_capacity(16 + 64 + SIGNALLING_LEN);
    s.extend_from_slice(link_id.as_bytes());
    s.extend_from_slice(responder_x25519);
    s.extend_from_slice(destination_ed25519);
    if let Some(b) = signalling {
        s.extend_from_slice(b);
    }
    s
}

/// A parsed LRPROOF payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkProof {
    /// Signature by the destination identity.
    pub signature: [u8; SIGNATURE_LEN],
    /// Responder's ephemeral X25519 public key.
    pub x25519: [u8; 32],
    /// Signalling bytes confirming (MTU, mode), if present.
    pub signalling: Option<[u8; SIGNALLING_LEN]>,
}

impl LinkProof {
    /// Parse an LRPROOF payload.
    pub fn parse(data: &[u8]) -> Result<LinkProof, LinkWireError> {
        if data.len() != PROOF_LEN && data.len() != PROOF_LEN + SIGNALLING_LEN {
            return Err(LinkWireError::ProofLength(data.len()));
        }
        Ok(LinkProof {
            signature: data[..SIGNATURE_LEN].try_into().expect("64 bytes"),
            x25519: data[SIGNATURE_LEN..PROOF_LEN].try_into().expect("32 bytes"),
            signalling: (data.len() > PROOF_LEN)
                .then(|| data[PROOF_LEN..].try_into().expect("3 bytes")),
        })
    }

    /// Serialize.
    pub fn emit(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(PROOF_LEN + SIGNALLING_LEN);
        v.extend_from_slice(&self.signature);
        v.extend_from_slice(&self.x25519);
        if let Some(s) = &self.signalling {
            v.extend_from_slice(s);
        }
        v
    }

    /// The confirmed (MTU, mode); absent signalling means MTU 500 and AES-256-CBC.
    pub fn mtu_mode(&self) -> (u32, u8) {
        self.signalling
            .as_ref()
            .map(parse_signalling)
            .unwrap_or((crate::packet::MTU as u32, MODE_AES256_CBC))
    }

    /// Verify the signature with the destination's Ed25519 key.
    pub fn verify(
        &self,
        link_id: &AddressHash,
        destination_ed25519: &[u8; 32],
    ) -> Result<(), LinkWireError> {
        let key = VerifyingKey::from_bytes(destination_ed25519).map_err(|_| LinkWireError::Key)?;
        let signed = proof_signed_data(
            link_id,
            &self.x25519,
            destination_ed25519,
            self.signalling.as_ref(),
        );
        key.verify_strict(&signed, &Signature::from_bytes(&self.signature))
            .map_err(|_| LinkWireError::BadSignature)
    }
}

/// The path hash of a request path: `trunc16(utf8(path))`.
pub fn path_hash(path: &str) -> AddressHash {
    truncated_hash(path.as_bytes())
}

/// Decode a msgpack value from a whole buffer, with a recursion limit.
pub fn decode_msgpack(data: &[u8]) -> Result<rmpv::Value, LinkWireError> {
    let mut rd = data;
    let v =
        rmpv::decode::read_value_with_max_depth(&mut rd, 32).map_err(|_| LinkWireError::Msgpack)?;
    if !rd.is_empty() {
        return Err(LinkWireError::Msgpack);
    }
    Ok(v)
}

/// Encode a msgpack value.
pub fn encode_msgpack(v: &rmpv::Value) -> Vec<u8> {
    let mut out = Vec::new();
    // Writing to a Vec cannot fail.
    let _ = rmpv::encode::write_value(&mut out, v);
    out
}

/// The RTT packet body: msgpack float64 seconds.
pub fn encode_rtt(secs: f64) -> Vec<u8> {
    encode_msgpack(&rmpv::Value::F64(secs))
}

/// Read an RTT packet body (float or integer seconds).
pub fn decode_rtt(data: &[u8]) -> Result<f64, LinkWireError> {
    match decode_msgpack(data)? {
        rmpv::Value::F64(f) if f.is_finite() && f >= 0.0 => Ok(f),
        rmpv::Value::F32(f) if f.is_finite() && f >= 0.0 => Ok(f64::from(f)),
        rmpv::Value::Integer(i) => i
            .as_f64()
            .filter(|f| *f >= 0.0)
            .ok_or(LinkWireError::Msgpack),
        _ => Err(LinkWireError::Msgpack),
    }
}

/// A request body: `[timestamp, path_hash, data]`.
pub fn encode_request(timestamp: f64, path: &AddressHash, data: &rmpv::Value) -> Vec<u8> {
    encode_msgpack(&rmpv::Value::Array(vec![
        rmpv::Value::F64(timestamp),
        rmpv::Value::Binary(path.0.to_vec()),
        data.clone(),
    ]))
}

/// Parse a request body into (timestamp, path hash, data).
pub fn decode_request(body: &[u8]) -> Result<(f64, AddressHash, rmpv::Value), LinkWireError> {
    let rmpv::Value::Array(mut a) = decode_msgpack(body)? else {
        return Err(LinkWireError::Msgpack);
    };
    if a.len() != 3 {
        return Err(LinkWireError::Msgpack);
    }
    let data = a.pop().expect("3 items");
    let path = match a.pop() {
        Some(rmpv::Value::Binary(b)) => {
            AddressHash::from_slice(&b).ok_or(LinkWireError::Msgpack)?
        }
        _ => return Err(LinkWireError::Msgpack),
    };
    let ts = a.pop().and_then(|v| v.as_f64()).unwrap_or(0.0);
    Ok((ts, path, data))
}

/// A response body: `[request_id, response]`.
pub fn encode_response(request_id: &AddressHash, response: &rmpv::Value) -> Vec<u8> {
    encode_msgpack(&rmpv::Value::Array(vec![
        rmpv::Value::Binary(request_id.0.to_vec()),
        response.clone(),
    ]))
}

/// Parse a response body into (request id, response).
pub fn decode_response(body: &[u8]) -> Result<(AddressHash, rmpv::Value), LinkWireError> {
    let rmpv::Value::Array(mut a) = decode_msgpack(body)? else {
        return Err(LinkWireError::Msgpack);
    };
    if a.len() != 2 {
        return Err(LinkWireError::Msgpack);
    }
    let response = a.pop().expect("2 items");
    match a.pop() {
        Some(rmpv::Value::Binary(b)) => Ok((
            AddressHash::from_slice(&b).ok_or(LinkWireError::Msgpack)?,
            response,
        )),
        _ => Err(LinkWireError::Msgpack),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::Packet;

    const LINK_REQUEST: &str = "020081e1e65370bf9705c9c5583eff258bc60078dd51f495035caf3932766591545847ea83abf585baf2b147358ce90061272cf060bed9940aeab41b9fa50e2a364b177e9f6d64c22fd54870ed1464c1bda4a3204000";
    const LRPROOF: &str = "0f00236b187b2b5f8a2d3cc50ab05dec7097ffdae27177642e0a14a514f8dc62efb91815158f1d1b6b7311ff8e4af236c2e4462d73e7b417e81a7493e38d52d710de9de0fe33a8a4b2ac0a876409eebcef5c0e8eb2e62cabadf0ab94ac5b124f721136e293c30a51c5dc60a2829a9bff9c8b1d204000";
    const SERVER_KEY: &str = "c8ef46f46b6b401fa0c38abce5bd2f1ccb57395b7d48847089081ad5bd95d2538d7f4c6d015bb50be2f3fc67c4d370538c443507665fc4c9ff7d8cba0d3a74ca";

    #[test]
    fn signalling_examples() {
        assert_eq!(signalling_bytes(500, 1), [0x20, 0x01, 0xf4]);
        assert_eq!(signalling_bytes(16384, 1), [0x20, 0x40, 0x00]);
        assert_eq!(parse_signalling(&[0x20, 0x40, 0x00]), (16384, 1));
    }

    #[test]
    fn vector_request_id_and_proof() {
        let raw = hex::decode(LINK_REQUEST).unwrap();
        let v = PacketView::new_checked(&raw[..]).unwrap();
        let req = LinkRequest::parse(v.data()).unwrap();
        assert_eq!(req.signalling, Some((16384, 1)));
        assert_eq!(req.emit(), v.data());
        let id = link_id(&v);
        assert_eq!(id.to_string(), "236b187b2b5f8a2d3cc50ab05dec7097");
        // The id does not change when a transport node strips the signalling bytes.
        let mut stripped = raw.clone();
        stripped.truncate(raw.len() - 3);
        assert_eq!(
            link_id(&PacketView::new_checked(&stripped[..]).unwrap()),
            id
        );

        let server =
            crate::Identity::from_private_bytes(&hex::decode(SERVER_KEY).unwrap()).unwrap();
        let p = Packet::parse(&hex::decode(LRPROOF).unwrap()).unwrap();
        let proof = LinkProof::parse(&p.data).unwrap();
        assert_eq!(proof.mtu_mode(), (16384, 1));
        proof
            .verify(&id, &server.public().ed25519_public())
            .unwrap();
        let mut forged = proof.clone();
        forged.x25519[0] ^= 1;
        assert_eq!(
            forged.verify(&id, &server.public().ed25519_public()),
            Err(LinkWireError::BadSignature)
        );
        assert_eq!(proof.emit(), p.data);
    }

    #[test]
    fn bad_requests_and_proofs() {
        assert_eq!(
            LinkRequest::parse(&[0; 65]),
            Err(LinkWireError::RequestLength(65))
        );
        let mut r = vec![0u8; 67];
        r[64..].copy_from_slice(&signalling_bytes(500, 0));
        assert_eq!(LinkRequest::parse(&r), Err(LinkWireError::Mode(0)));
        assert_eq!(
            LinkProof::parse(&[0; 97]),
            Err(LinkWireError::ProofLength(97))
        );
    }

    #[test]
    fn msgpack_bodies_round_trip() {
        assert_eq!(decode_rtt(&encode_rtt(0.25)).unwrap(), 0.25);
        let ph = path_hash("/ping");
        let body = encode_request(1.5, &ph, &rmpv::Value::Binary(b"x".to_vec()));
        let (ts, p, d) = decode_request(&body).unwrap();
        assert_eq!((ts, p, d), (1.5, ph, rmpv::Value::Binary(b"x".to_vec())));
        let rid = AddressHash([7; 16]);
        let body = encode_response(&rid, &rmpv::Value::from("pong"));
        assert_eq!(
            decode_response(&body).unwrap(),
            (rid, rmpv::Value::from("pong"))
        );
        assert!(decode_request(&[0x93, 0x01]).is_err());
        assert!(decode_response(&[0xc6, 0xff, 0xff, 0xff, 0xff]).is_err());
        assert!(decode_rtt(b"\x90").is_err());
    }
}
