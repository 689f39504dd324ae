//! Every test vector of rns-wire.md §13 (captured from RNS 1.5.7), as assertions.

use rns_core::crypto::Token;
use rns_core::destination::hash_from_name;
use rns_core::hash::{full_hash, truncated_hash};
use rns_core::packet::{Context, Packet, PacketType, PacketView};
use rns_core::{announce::Announce, proof, Identity};

const SERVER_KEY: &str = "c8ef46f46b6b401fa0c38abce5bd2f1ccb57395b7d48847089081ad5bd95d2538d7f4c6d015bb50be2f3fc67c4d370538c443507665fc4c9ff7d8cba0d3a74ca";
const ANNOUNCE: &str = "010081e1e65370bf9705c9c5583eff258bc600888e573cff574e6e51f27a8da0db3f41e7c2b9f57887c5762f52d4902210ea5d2f2ed8d17d41a991310e957530170a399aa2c75ef4901afdfdf3d09df9a1a4a2abc5627bfa25e8368938c7093b0ca7006b02852b766bfb122e5f76fa377d0102c51e919c4da7cc39f536812e49611aca3fc828ce51c52d4aaaf1b2ee42c0a5ef4e76535a9b750d7f7cc1489ed4fdccf16f357f02726e732d696e7465726f70";
const SINGLE: &str = "000081e1e65370bf9705c9c5583eff258bc600ac0214e3f97ad8ca0c65c87a8939b568a1335bf2bbb1a88542d2dcbfdde12d3f8320240bc2fe1f607444172c637a536bc77164465d8cf37bd153cdc18a458ac8281ddf4971a07ca757971193dda04c3209c01668c19f21c4254124bad5dd69c4";
const PROOF: &str = "03002e23147bde6e37804a299a308eb986b6004851fadf296cb1018df26aa087feb20f1b8bc02a8af24bdad0373dd5635501f5ac92af1f8057521c85d9a3ddc62a5a363e3c26cbb4f6a2b2687e512f6ccee306";
const LINK_REQUEST: &str = "020081e1e65370bf9705c9c5583eff258bc60078dd51f495035caf3932766591545847ea83abf585baf2b147358ce90061272cf060bed9940aeab41b9fa50e2a364b177e9f6d64c22fd54870ed1464c1bda4a3204000";
const LRPROOF: &str = "0f00236b187b2b5f8a2d3cc50ab05dec7097ffdae27177642e0a14a514f8dc62efb91815158f1d1b6b7311ff8e4af236c2e4462d73e7b417e81a7493e38d52d710de9de0fe33a8a4b2ac0a876409eebcef5c0e8eb2e62cabadf0ab94ac5b124f721136e293c30a51c5dc60a2829a9bff9c8b1d204000";
const LINK_ID: &str = "236b187b2b5f8a2d3cc50ab05dec7097";
const LINK_KEY: &str = "163cddc26ea44b08af677300ce7181f1bc20ca61f9619614304ffb53a558e76116db29f13c2673743408aead8e61ac5ef5b332fcc68067d0c020b2f9023b2401";
const LRRTT: &str = "0c00236b187b2b5f8a2d3cc50ab05dec7097fe9cc216b0ede0fcaa1b76ec51a0e70929f9fcd05048e05ad7f7af8f3358338a21e2503eac2f1b542c8f03ef5a0aec715e5683f37515b42707b236db16066b3990";
const HELLO: &str = "0c00236b187b2b5f8a2d3cc50ab05dec70970086ce186990d3cee4ea593436e51b52957db2804df171cf53c19fc1ab4a537045cb63860d5fa61dab32c9c1cc8ae531aa96444a2b14f8dfa0db2f0462d629cbd9";
const REQUEST: &str = "0c00236b187b2b5f8a2d3cc50ab05dec70970945de30993b7216292b6522dc45024640c21c29d56c08f784be4d7a2a2d7a298ef2c1c41835f746971e2f3f3c94a2f18424cf753623032f701a73478b3a604ba38046c4c361b71e15f87871136eb48464";
const HELLO_PROOF: &str = "0f00236b187b2b5f8a2d3cc50ab05dec709700de168c8d522903254dd1feef751936916a7b2736fd83428528be1f2f47afff066b24003fcab17ddc68b4e50976ba4c586f2b593f669296b23e10be97991a36f9d87e53441eb715341f24c17174a4059da432aafc34ca619d55cb05a7779ce308";
const ECHO: &str = "0c00236b187b2b5f8a2d3cc50ab05dec70970026a768665bc16a1c18c0ab87595bccf82d688e41997c2104a99a020096b2858f5c3a36bf226ed4c600b52012389d86271cf0fef5b32255ea176aa4f86fb3a39e";
const RESPONSE: &str = "0c00236b187b2b5f8a2d3cc50ab05dec70970a3bd2b15c180e877bd9619d465f6293c65e0a1f2c998185a1912da770cbd6d955e2cda6e6deccb916be28cbb280b500dcdf1ae2e452e332da760272717ab799b64d8f40caf573546b53d9a49c0f32a2ae";
const LINKCLOSE: &str = "0c00236b187b2b5f8a2d3cc50ab05dec7097fcd3018bdfb632b450d1b3d29f36c8fce644dc554ca9829db97cb0992ddc15cb678c7ee2baa993ba540238c957c6bcede9af27211f1eb4d6c4568c015bb25da8c1d4d54a30df261e4b08e3541960c7703d";

fn h(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap()
}

fn server() -> Identity {
    Identity::from_private_bytes(&h(SERVER_KEY)).unwrap()
}

#[test]
fn identity_and_destination() {
    let id = server();
    assert_eq!(id.hash().to_string(), "f4aa7e658762b87bb38c88b7b571a8d8");
    assert_eq!(
        hash_from_name("rnsinterop.echo", Some(&id.hash())).to_string(),
        "81e1e65370bf9705c9c5583eff258bc6"
    );
}

#[test]
fn announce_178_bytes_validates() {
    let raw = h(ANNOUNCE);
    assert_eq!(raw.len(), 178);
    let p = Packet::parse(&raw).unwrap();
    let a = Announce::parse(&p.data, p.flags.context_flag).unwrap();
    a.validate(&p.destination).unwrap();
    assert_eq!(a.app_data, b"rns-interop");
    assert_eq!(a.identity.hash(), server().hash());
}

#[test]
fn single_packet_decrypts_and_implicit_proof_is_identical() {
    let id = server();
    let p = Packet::parse(&h(SINGLE)).unwrap();
    assert_eq!(id.decrypt(&p.data, &[], false).unwrap(), b"hello single");
    let ours = proof::build(&id, &p.hash(), false).to_bytes();
    assert_eq!(hex::encode(ours), PROOF);
}

#[test]
fn link_request_id_and_lrproof_signature() {
    let id = server();
    let lr = h(LINK_REQUEST);
    let v = PacketView::new_checked(&lr[..]).unwrap();
    assert_eq!(v.flags().packet_type, PacketType::LinkRequest);
    assert_eq!(v.data().len(), 67);
    assert_eq!(&v.data()[64..], &[0x20, 0x40, 0x00]); // AES-256-CBC, MTU 16384
                                                      // link_id = trunc16(hashable part without the 3 signalling bytes).
    let mut hashable = vec![lr[0] & 0x0F];
    hashable.extend_from_slice(&v.hashable_tail()[..v.hashable_tail().len() - 3]);
    assert_eq!(truncated_hash(&hashable).to_string(), LINK_ID);

    let proof = Packet::parse(&h(LRPROOF)).unwrap();
    assert_eq!(proof.context, Context::LRPROOF);
    assert_eq!(proof.destination.to_string(), LINK_ID);
    assert_eq!(proof.data.len(), 99);
    let mut signed = h(LINK_ID);
    signed.extend_from_slice(&proof.data[64..96]);
    signed.extend_from_slice(&id.public().ed25519_public());
    signed.extend_from_slice(&proof.data[96..]);
    id.public().verify(&signed, &proof.data[..64]).unwrap();
}

#[test]
fn link_packets_decrypt_with_the_link_key() {
    let key: [u8; 64] = h(LINK_KEY).try_into().unwrap();
    let token = Token::new(&key);
    let open = |s: &str, ctx: Context| {
        let p = Packet::parse(&h(s)).unwrap();
        assert_eq!(p.context, ctx);
        assert_eq!(p.destination.to_string(), LINK_ID);
        token.decrypt(&p.data).unwrap()
    };
    let rtt = open(LRRTT, Context::LRRTT);
    assert_eq!(rtt.len(), 9);
    assert_eq!(rtt[0], 0xcb); // msgpack float64
    let secs = f64::from_be_bytes(rtt[1..].try_into().unwrap());
    assert!(secs > 0.0 && secs < 0.01);
    assert_eq!(open(HELLO, Context::NONE), b"hello link");
    assert_eq!(open(ECHO, Context::NONE), b"echo:hello link");
    // REQUEST: msgpack [float64, bin16 path hash, bin "x"].
    let req = open(REQUEST, Context::REQUEST);
    assert_eq!(req[0], 0x93);
    assert_eq!(req[1], 0xcb);
    assert_eq!(&req[10..12], &[0xc4, 0x10]);
    assert_eq!(&req[12..28], truncated_hash(b"/ping").as_bytes());
    assert_eq!(&req[28..], &[0xc4, 0x01, b'x']);
    // RESPONSE: msgpack [bin16 request id, bin "pong:x"]; request id = truncated hash of REQUEST.
    let resp = open(RESPONSE, Context::RESPONSE);
    let request_id = Packet::parse(&h(REQUEST)).unwrap().truncated_hash();
    assert_eq!(&resp[..3], &[0x92, 0xc4, 0x10]);
    assert_eq!(&resp[3..19], request_id.as_bytes());
    assert_eq!(&resp[19..], b"\xc4\x06pong:x");
    assert_eq!(open(LINKCLOSE, Context::LINKCLOSE), h(LINK_ID));
}

#[test]
fn link_packet_proof_is_explicit_and_signed_by_the_responder() {
    let id = server();
    let hello = Packet::parse(&h(HELLO)).unwrap();
    let p = Packet::parse(&h(HELLO_PROOF)).unwrap();
    assert_eq!(p.flags.packet_type, PacketType::Proof);
    assert_eq!(h(HELLO_PROOF)[0], 0x0f);
    assert_eq!(p.data.len(), proof::EXPLICIT_LEN);
    proof::validate(&p.data, &hello.hash(), id.public()).unwrap();
    assert_eq!(
        &p.data[..32],
        &full_hash(&{
            let raw = h(HELLO);
            let mut v = vec![raw[0] & 0x0F];
            v.extend_from_slice(&raw[2..]);
            v
        })[..]
    );
}
