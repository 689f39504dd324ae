//! The signed, content-addressed manifest of an adapter package.
//!
//! A [`Manifest`] repeats the package's `adapter.toml` fields and names the SHA-256 of
//! the weights and config files, so its content hash identifies the whole package: a
//! peer that fetches an adapter by hash checks the manifest ([`SignedManifest::verify`])
//! and then the files ([`SignedManifest::verify_files`]) before using anything.
//! The publisher signs the content hash with its node identity (Ed25519).

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use rns_core::identity::{Identity, PublicIdentity};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::package::{
    self, AdapterPackage, PackageError, ADAPTER_CONFIG, ADAPTER_WEIGHTS, MAX_BASE_MODEL_LEN,
    MAX_DESCRIPTION_LEN, MAX_LICENSE_LEN, MAX_NAME_LEN, MAX_RANK, MAX_WEIGHTS_SIZE,
};

/// The manifest format this code writes and accepts.
pub const MANIFEST_FORMAT: u8 = 1;
/// Domain separator for the content hash and the signature, so neither can be
/// confused with a hash or signature made for another purpose.
pub const DOMAIN: &[u8] = b"grid/adapter/v1\0";
/// Largest signed manifest accepted by [`SignedManifest::from_json`] (1 MiB).
pub const MAX_MANIFEST_JSON: usize = 1 << 20;
/// Most target modules a manifest may list (PEFT lists a handful).
pub const MAX_TARGET_MODULES: usize = 1024;
/// Longest target module entry, in characters.
pub const MAX_TARGET_MODULE_LEN: usize = 256;
/// Read buffer for streaming file hashes (adapters can be hundreds of MB).
const HASH_BUF: usize = 1 << 20;

/// What a package is: its description, base model, shape and the hashes of its files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Manifest format, [`MANIFEST_FORMAT`].
    pub format: u8,
    /// Package name (as in `adapter.toml`).
    pub name: String,
    /// Package version, semver.
    pub version: String,
    /// What the adapter does.
    pub description: String,
    /// Topic labels.
    pub tags: Vec<String>,
    /// License (free text, `"unknown"` by default).
    pub license: String,
    /// The base model the adapter applies to (resolved).
    pub base_model: String,
    /// Example prompts.
    pub examples: Vec<String>,
    /// LoRA rank `r`.
    pub rank: u32,
    /// PEFT `target_modules`.
    pub target_modules: Vec<String>,
    /// Lowercase hex SHA-256 of `adapter_model.safetensors`.
    pub weights_sha256: String,
    /// Size of `adapter_model.safetensors` in bytes.
    pub weights_size: u64,
    /// Lowercase hex SHA-256 of the `adapter_config.json` bytes.
    pub config_sha256: String,
    /// Lowercase hex of the publisher's 64-byte RNS public key (X25519 ‖ Ed25519).
    pub publisher: String,
    /// Publication time, milliseconds since the Unix epoch.
    pub published_ms: u64,
}

/// A manifest with its content hash and the publisher's signature over it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedManifest {
    /// The manifest.
    pub manifest: Manifest,
    /// Lowercase hex of [`Manifest::content_hash`].
    pub content_hash: String,
    /// Lowercase hex of the 64-byte Ed25519 signature over [`DOMAIN`] ‖ content hash.
    pub signature: String,
}

/// Why a manifest or the files it names were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    /// Not a well-formed manifest (bad JSON, bad field, wrong format, too large).
    #[error("malformed manifest: {0}")]
    Malformed(String),
    /// The content hash does not match the manifest.
    #[error("content hash does not match the manifest")]
    ContentHash,
    /// The publisher field is not a valid RNS public key.
    #[error("bad publisher key: {0}")]
    BadPublisher(String),
    /// The signature does not verify under the publisher key.
    #[error("signature does not verify")]
    BadSignature,
    /// A package file is missing or differs from what the manifest names.
    #[error("{file}: {reason}")]
    FileMismatch {
        /// The file (`adapter_model.safetensors` or `adapter_config.json`).
        file: String,
        /// How it differs.
        reason: String,
    },
}

impl Manifest {
    /// Canonical bytes: serde_json::to_vec of the struct (fixed field order, no whitespace).
    pub fn canonical(&self) -> Vec<u8> {
        // Serializing strings and integers cannot fail; an empty result would only
        // make the hash (and so every check) fail, never pass.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// SHA-256 over b"grid/adapter/v1\0" ‖ canonical bytes (the canonical manifest names the weights' and config's SHA-256, so the hash covers the files).
    pub fn content_hash(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(DOMAIN);
        h.update(self.canonical());
        h.finalize().into()
    }

    /// From a validated package: hashes the weights (streaming, 1 MiB buffer — adapters can be hundreds of MB) and config files.
    ///
    /// Refuses the package if the weights file changed size since it was validated.
    pub fn from_package(
        pkg: &AdapterPackage,
        publisher: &PublicIdentity,
        published_ms: u64,
    ) -> Result<Manifest, PackageError> {
        let (weights_sha, weights_size) = hash_file(&pkg.dir.join(ADAPTER_WEIGHTS))
            .map_err(|e| PackageError::from_io(ADAPTER_WEIGHTS, &e))?;
        if weights_size != pkg.weights_size {
            return Err(PackageError::Invalid {
                file: ADAPTER_WEIGHTS.to_string(),
                field: "size".into(),
                reason: format!(
                    "{weights_size} bytes now, {} when validated: the file changed",
                    pkg.weights_size
                ),
            });
        }
        let (config_sha, _) = hash_file(&pkg.dir.join(ADAPTER_CONFIG))
            .map_err(|e| PackageError::from_io(ADAPTER_CONFIG, &e))?;
        let t = &pkg.toml;
        Ok(Manifest {
            format: MANIFEST_FORMAT,
            name: t.name.clone(),
            version: t.version.clone(),
            description: t.description.clone(),
            tags: t.tags.clone(),
            license: t.license.clone(),
            base_model: pkg.base_model.clone(),
            examples: t.examples.clone(),
            rank: pkg.rank,
            target_modules: pkg.target_modules.clone(),
            weights_sha256: hex::encode(weights_sha),
            weights_size,
            config_sha256: hex::encode(config_sha),
            publisher: hex::encode(publisher.as_bytes()),
            published_ms,
        })
    }

    /// Check every field against the package rules, so a manifest from a peer is as
    /// strict as a package loaded from disk.
    pub fn validate(&self) -> Result<(), ManifestError> {
        let bad =
            |field: &str, reason: String| ManifestError::Malformed(format!("{field}: {reason}"));
        if self.format != MANIFEST_FORMAT {
            return Err(bad(
                "format",
                format!("{} is not {MANIFEST_FORMAT}", self.format),
            ));
        }
        package::check_slug(&self.name, MAX_NAME_LEN).map_err(|r| bad("name", r))?;
        package::check_version(&self.version).map_err(|r| bad("version", r))?;
        package::check_text(&self.description, MAX_DESCRIPTION_LEN, true)
            .map_err(|r| bad("description", r))?;
        package::check_tags(&self.tags).map_err(|(f, r)| bad(&f, r))?;
        package::check_text(&self.license, MAX_LICENSE_LEN, false)
            .map_err(|r| bad("license", r))?;
        package::check_text(&self.base_model, MAX_BASE_MODEL_LEN, false)
            .map_err(|r| bad("base_model", r))?;
        package::check_examples(&self.examples).map_err(|(f, r)| bad(&f, r))?;
        if self.rank == 0 || u64::from(self.rank) > MAX_RANK {
            return Err(bad(
                "rank",
                format!("{} is not in 1..={MAX_RANK}", self.rank),
            ));
        }
        if self.target_modules.is_empty() || self.target_modules.len() > MAX_TARGET_MODULES {
            return Err(bad(
                "target_modules",
                format!(
                    "{} entries, want 1..={MAX_TARGET_MODULES}",
                    self.target_modules.len()
                ),
            ));
        }
        for (i, m) in self.target_modules.iter().enumerate() {
            package::check_text(m, MAX_TARGET_MODULE_LEN, false)
                .map_err(|r| bad(&format!("target_modules[{i}]"), r))?;
        }
        check_hex(&self.weights_sha256, 32).map_err(|r| bad("weights_sha256", r))?;
        check_hex(&self.config_sha256, 32).map_err(|r| bad("config_sha256", r))?;
        if self.weights_size > MAX_WEIGHTS_SIZE {
            return Err(bad(
                "weights_size",
                format!("{} is more than {MAX_WEIGHTS_SIZE}", self.weights_size),
            ));
        }
        Ok(())
    }
}

impl SignedManifest {
    /// Sign with the node identity: Ed25519 over b"grid/adapter/v1\0" ‖ content_hash.
    pub fn sign(manifest: Manifest, identity: &Identity) -> SignedManifest {
        let hash = manifest.content_hash();
        let signature = identity.sign(&signed_message(&hash));
        SignedManifest {
            manifest,
            content_hash: hex::encode(hash),
            signature: hex::encode(signature),
        }
    }

    /// Check content hash and signature (publisher key parses, hash recomputes, signature verifies).
    ///
    /// The manifest's fields are validated first ([`Manifest::validate`]). Returns the
    /// content hash on success.
    pub fn verify(&self) -> Result<[u8; 32], ManifestError> {
        self.manifest.validate()?;
        let claimed = decode_hex::<32>(&self.content_hash)
            .map_err(|r| ManifestError::Malformed(format!("content_hash: {r}")))?;
        let hash = self.manifest.content_hash();
        if claimed != hash {
            return Err(ManifestError::ContentHash);
        }
        let key =
            decode_hex::<64>(&self.manifest.publisher).map_err(ManifestError::BadPublisher)?;
        let publisher = PublicIdentity::from_bytes(&key)
            .map_err(|e| ManifestError::BadPublisher(e.to_string()))?;
        let signature = decode_hex::<64>(&self.signature)
            .map_err(|r| ManifestError::Malformed(format!("signature: {r}")))?;
        publisher
            .verify(&signed_message(&hash), &signature)
            .map_err(|_| ManifestError::BadSignature)?;
        Ok(hash)
    }

    /// Check that the files in `dir` (weights, config) are the ones the manifest names (size + sha256). Streaming.
    pub fn verify_files(&self, dir: &Path) -> Result<(), ManifestError> {
        let m = &self.manifest;
        let weights = dir.join(ADAPTER_WEIGHTS);
        let size = std::fs::metadata(&weights)
            .map_err(|e| file_error(ADAPTER_WEIGHTS, &e))?
            .len();
        if size != m.weights_size {
            return Err(ManifestError::FileMismatch {
                file: ADAPTER_WEIGHTS.into(),
                reason: format!("size {size}, manifest says {}", m.weights_size),
            });
        }
        check_file_hash(
            &weights,
            ADAPTER_WEIGHTS,
            &m.weights_sha256,
            Some(m.weights_size),
        )?;
        check_file_hash(
            &dir.join(ADAPTER_CONFIG),
            ADAPTER_CONFIG,
            &m.config_sha256,
            None,
        )
    }

    /// Compact JSON, as sent to peers and stored.
    pub fn to_json(&self) -> Vec<u8> {
        // Cannot fail for strings and integers; see `Manifest::canonical`.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Parse a signed manifest (at most 1 MiB), refusing unknown fields and fields
    /// that break the package rules. Does not check the hash or signature: call
    /// [`SignedManifest::verify`].
    pub fn from_json(bytes: &[u8]) -> Result<SignedManifest, ManifestError> {
        if bytes.len() > MAX_MANIFEST_JSON {
            return Err(ManifestError::Malformed(format!(
                "{} bytes, more than {MAX_MANIFEST_JSON}",
                bytes.len()
            )));
        }
        let signed: SignedManifest = serde_json::from_slice(bytes)
            .map_err(|e| ManifestError::Malformed(format!("not a signed manifest ({e})")))?;
        signed.manifest.validate()?;
        check_hex(&signed.content_hash, 32)
            .map_err(|r| ManifestError::Malformed(format!("content_hash: {r}")))?;
        check_hex(&signed.signature, 64)
            .map_err(|r| ManifestError::Malformed(format!("signature: {r}")))?;
        check_hex(&signed.manifest.publisher, 64).map_err(ManifestError::BadPublisher)?;
        Ok(signed)
    }
}

/// The bytes signed: the domain separator then the content hash.
fn signed_message(hash: &[u8; 32]) -> Vec<u8> {
    let mut msg = Vec::with_capacity(DOMAIN.len() + hash.len());
    msg.extend_from_slice(DOMAIN);
    msg.extend_from_slice(hash);
    msg
}

/// Lowercase hex of exactly `len` bytes (lowercase only, so each value has one
/// spelling and the content hash one preimage).
fn check_hex(value: &str, len: usize) -> Result<(), String> {
    if value.len() != len * 2 {
        return Err(format!("{} hex characters, want {}", value.len(), len * 2));
    }
    if !value
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err("not lowercase hex".into());
    }
    Ok(())
}

/// Decode lowercase hex of exactly `N` bytes.
fn decode_hex<const N: usize>(value: &str) -> Result<[u8; N], String> {
    check_hex(value, N)?;
    let mut out = [0u8; N];
    hex::decode_to_slice(value, &mut out).map_err(|e| e.to_string())?;
    Ok(out)
}

/// SHA-256 and length of a file, read in 1 MiB chunks.
fn hash_file(path: &Path) -> io::Result<([u8; 32], u64)> {
    let mut f = File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; HASH_BUF];
    let mut total = 0u64;
    loop {
        let n = match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        h.update(&buf[..n]);
        total += n as u64;
    }
    Ok((h.finalize().into(), total))
}

/// A file error as a mismatch ("missing" when not found).
fn file_error(file: &str, e: &io::Error) -> ManifestError {
    let reason = if e.kind() == io::ErrorKind::NotFound {
        "missing".to_string()
    } else {
        e.to_string()
    };
    ManifestError::FileMismatch {
        file: file.into(),
        reason,
    }
}

/// Stream-hash `path` and compare with the manifest's hex digest (and size, if given).
fn check_file_hash(
    path: &Path,
    file: &str,
    want_hex: &str,
    want_size: Option<u64>,
) -> Result<(), ManifestError> {
    let (sha, size) = hash_file(path).map_err(|e| file_error(file, &e))?;
    if let Some(want) = want_size {
        if size != want {
            return Err(ManifestError::FileMismatch {
                file: file.into(),
                reason: format!("size {size}, manifest says {want}"),
            });
        }
    }
    let got = hex::encode(sha);
    if got != want_hex {
        return Err(ManifestError::FileMismatch {
            file: file.into(),
            reason: format!("sha256 {got}, manifest says {want_hex}"),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::package::testutil::{valid_package, TempDir};
    use crate::package::{write_test_package, ADAPTER_TOML};
    use proptest::prelude::*;
    use rand_core::OsRng;

    fn signed_for(dir: &Path, id: &Identity) -> SignedManifest {
        let pkg = AdapterPackage::load(dir).unwrap();
        let m = Manifest::from_package(&pkg, id.public(), 1_700_000_000_000).unwrap();
        SignedManifest::sign(m, id)
    }

    #[test]
    fn from_package_sign_verify() {
        let dir = valid_package("mf-ok");
        let id = Identity::generate(&mut OsRng);
        let s = signed_for(dir.path(), &id);
        let m = &s.manifest;
        assert_eq!(m.format, MANIFEST_FORMAT);
        assert_eq!(m.name, "geometry-tutor");
        assert_eq!(m.base_model, package::TEST_BASE_MODEL);
        assert_eq!(m.rank, 4);
        assert_eq!(m.publisher, hex::encode(id.public().as_bytes()));
        let weights = std::fs::read(dir.path().join(ADAPTER_WEIGHTS)).unwrap();
        assert_eq!(m.weights_size, weights.len() as u64);
        assert_eq!(m.weights_sha256, hex::encode(Sha256::digest(&weights)));
        let config = std::fs::read(dir.path().join(ADAPTER_CONFIG)).unwrap();
        assert_eq!(m.config_sha256, hex::encode(Sha256::digest(&config)));
        let hash = s.verify().unwrap();
        assert_eq!(hex::encode(hash), s.content_hash);
        s.verify_files(dir.path()).unwrap();
    }

    #[test]
    fn canonical_is_compact_and_ordered() {
        let dir = valid_package("mf-canon");
        let id = Identity::generate(&mut OsRng);
        let s = signed_for(dir.path(), &id);
        let c = String::from_utf8(s.manifest.canonical()).unwrap();
        assert!(c.starts_with("{\"format\":1,\"name\":\"geometry-tutor\",\"version\":"));
        assert!(c.ends_with(",\"published_ms\":1700000000000}"));
        assert!(!c.contains(": "));
        let mut h = Sha256::new();
        h.update(b"grid/adapter/v1\0");
        h.update(c.as_bytes());
        assert_eq!(<[u8; 32]>::from(h.finalize()), s.manifest.content_hash());
    }

    #[test]
    fn any_field_change_breaks_content_hash() {
        let dir = valid_package("mf-tamper");
        let id = Identity::generate(&mut OsRng);
        let other = Identity::generate(&mut OsRng);
        let s = signed_for(dir.path(), &id);
        type Edit = Box<dyn Fn(&mut Manifest)>;
        let edits: Vec<Edit> = vec![
            Box::new(|m| m.name = "geometry-tutor2".into()),
            Box::new(|m| m.version = "1.0.1".into()),
            Box::new(|m| m.description.push('!')),
            Box::new(|m| m.tags.push("math".into())),
            Box::new(|m| m.license = "mit".into()),
            Box::new(|m| m.base_model = "other/model".into()),
            Box::new(|m| m.examples.push("another".into())),
            Box::new(|m| m.rank = 8),
            Box::new(|m| m.target_modules.push("k_proj".into())),
            Box::new(|m| m.weights_sha256 = "00".repeat(32)),
            Box::new(|m| m.weights_size += 1),
            Box::new(|m| m.config_sha256 = "ff".repeat(32)),
            Box::new(move |m| m.publisher = hex::encode(other.public().as_bytes())),
            Box::new(|m| m.published_ms += 1),
        ];
        for (i, edit) in edits.iter().enumerate() {
            let mut t = s.clone();
            edit(&mut t.manifest);
            assert_ne!(t.manifest, s.manifest, "edit {i} changed nothing");
            assert_eq!(t.verify(), Err(ManifestError::ContentHash), "edit {i}");
        }
        // The format field is checked before the hash.
        let mut t = s.clone();
        t.manifest.format = 2;
        assert!(matches!(t.verify(), Err(ManifestError::Malformed(_))));
        // A changed content_hash string is also refused.
        let mut t = s.clone();
        t.content_hash = "00".repeat(32);
        assert_eq!(t.verify(), Err(ManifestError::ContentHash));
    }

    #[test]
    fn signature_by_another_identity() {
        let dir = valid_package("mf-sig");
        let id = Identity::generate(&mut OsRng);
        let other = Identity::generate(&mut OsRng);
        let s = signed_for(dir.path(), &id);
        // Re-signed by another key, publisher field unchanged.
        let forged = SignedManifest::sign(s.manifest.clone(), &other);
        assert_eq!(forged.content_hash, s.content_hash);
        assert_eq!(forged.verify(), Err(ManifestError::BadSignature));
        // A flipped signature bit.
        let mut t = s.clone();
        let mut sig = hex::decode(&t.signature).unwrap();
        sig[0] ^= 1;
        t.signature = hex::encode(sig);
        assert_eq!(t.verify(), Err(ManifestError::BadSignature));
        // Malformed signature text.
        let mut t = s.clone();
        t.signature = "zz".into();
        assert!(matches!(t.verify(), Err(ManifestError::Malformed(_))));
    }

    #[test]
    fn bad_publisher_key() {
        let dir = valid_package("mf-pub");
        let id = Identity::generate(&mut OsRng);
        let s = signed_for(dir.path(), &id);
        // A publisher that is not hex, re-hashed so the hash check passes.
        let mut m = s.manifest.clone();
        m.publisher = "not hex".into();
        let t = SignedManifest::sign(m, &id);
        assert!(matches!(t.verify(), Err(ManifestError::BadPublisher(_))));
        // 64 bytes whose Ed25519 half is not a curve point.
        let mut m = s.manifest.clone();
        let mut key = id.public().as_bytes().to_vec();
        key[32..].copy_from_slice(&[
            0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            0, 0, 0, 0,
        ]);
        m.publisher = hex::encode(&key);
        let t = SignedManifest::sign(m, &id);
        match t.verify() {
            Err(ManifestError::BadPublisher(_)) | Err(ManifestError::BadSignature) => {}
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn verify_files_detects_changes() {
        let dir = valid_package("mf-files");
        let id = Identity::generate(&mut OsRng);
        let s = signed_for(dir.path(), &id);
        s.verify_files(dir.path()).unwrap();

        // One changed weights byte (same size).
        let wpath = dir.path().join(ADAPTER_WEIGHTS);
        let original = std::fs::read(&wpath).unwrap();
        let mut changed = original.clone();
        let last = changed.len() - 1;
        changed[last] ^= 0x01;
        std::fs::write(&wpath, &changed).unwrap();
        match s.verify_files(dir.path()) {
            Err(ManifestError::FileMismatch { file, reason }) => {
                assert_eq!(file, ADAPTER_WEIGHTS);
                assert!(reason.contains("sha256"), "{reason}");
            }
            other => panic!("unexpected {other:?}"),
        }
        // A truncated weights file: size mismatch.
        std::fs::write(&wpath, &original[..original.len() - 4]).unwrap();
        match s.verify_files(dir.path()) {
            Err(ManifestError::FileMismatch { file, reason }) => {
                assert_eq!(file, ADAPTER_WEIGHTS);
                assert!(reason.contains("size"), "{reason}");
            }
            other => panic!("unexpected {other:?}"),
        }
        std::fs::write(&wpath, &original).unwrap();
        s.verify_files(dir.path()).unwrap();

        // A changed config.
        let cpath = dir.path().join(ADAPTER_CONFIG);
        let mut config = std::fs::read(&cpath).unwrap();
        config.push(b'\n');
        std::fs::write(&cpath, &config).unwrap();
        match s.verify_files(dir.path()) {
            Err(ManifestError::FileMismatch { file, .. }) => assert_eq!(file, ADAPTER_CONFIG),
            other => panic!("unexpected {other:?}"),
        }
        // A missing config.
        std::fs::remove_file(&cpath).unwrap();
        let err = s.verify_files(dir.path()).unwrap_err();
        assert_eq!(
            err,
            ManifestError::FileMismatch {
                file: ADAPTER_CONFIG.into(),
                reason: "missing".into()
            }
        );
        assert_eq!(err.to_string(), "adapter_config.json: missing");
    }

    #[test]
    fn from_package_notices_changed_weights() {
        let dir = valid_package("mf-changed");
        let id = Identity::generate(&mut OsRng);
        let pkg = AdapterPackage::load(dir.path()).unwrap();
        let wpath = dir.path().join(ADAPTER_WEIGHTS);
        let mut bytes = std::fs::read(&wpath).unwrap();
        bytes.push(0);
        std::fs::write(&wpath, &bytes).unwrap();
        let err = Manifest::from_package(&pkg, id.public(), 0).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("adapter_model.safetensors: size:"),
            "{err}"
        );
        std::fs::remove_file(&wpath).unwrap();
        let err = Manifest::from_package(&pkg, id.public(), 0).unwrap_err();
        assert_eq!(err.to_string(), "adapter_model.safetensors: missing");
    }

    #[test]
    fn json_round_trip() {
        let dir = valid_package("mf-json");
        let id = Identity::generate(&mut OsRng);
        let s = signed_for(dir.path(), &id);
        let bytes = s.to_json();
        let back = SignedManifest::from_json(&bytes).unwrap();
        assert_eq!(back, s);
        assert_eq!(back.verify().unwrap(), s.manifest.content_hash());
    }

    #[test]
    fn from_json_refuses_garbage() {
        let dir = valid_package("mf-garbage");
        let id = Identity::generate(&mut OsRng);
        let s = signed_for(dir.path(), &id);
        let good = String::from_utf8(s.to_json()).unwrap();

        for bad in [
            &b""[..],
            b"null",
            b"[]",
            b"{}",
            b"\xff\xfe",
            b"{\"manifest\":1,\"content_hash\":\"\",\"signature\":\"\"}",
        ] {
            assert!(
                matches!(
                    SignedManifest::from_json(bad),
                    Err(ManifestError::Malformed(_))
                ),
                "{bad:?}"
            );
        }
        // Unknown field, at either level.
        let extra = good.replacen("{\"manifest\":", "{\"x\":1,\"manifest\":", 1);
        assert!(matches!(
            SignedManifest::from_json(extra.as_bytes()),
            Err(ManifestError::Malformed(_))
        ));
        let extra = good.replacen("{\"format\":1,", "{\"format\":1,\"x\":1,", 1);
        assert!(matches!(
            SignedManifest::from_json(extra.as_bytes()),
            Err(ManifestError::Malformed(_))
        ));
        // Fields breaking the package rules.
        let bad_name = good.replacen("\"geometry-tutor\"", "\"Geometry Tutor\"", 1);
        match SignedManifest::from_json(bad_name.as_bytes()) {
            Err(ManifestError::Malformed(r)) => assert!(r.starts_with("name:"), "{r}"),
            other => panic!("unexpected {other:?}"),
        }
        let upper = good.replacen(&s.content_hash, &s.content_hash.to_uppercase(), 1);
        assert!(matches!(
            SignedManifest::from_json(upper.as_bytes()),
            Err(ManifestError::Malformed(_))
        ));
        let short_pub = good.replacen(&s.manifest.publisher, "abcd", 1);
        assert!(matches!(
            SignedManifest::from_json(short_pub.as_bytes()),
            Err(ManifestError::BadPublisher(_))
        ));
        // Too large.
        let mut big = good.into_bytes();
        big.resize(MAX_MANIFEST_JSON + 1, b' ');
        assert!(matches!(
            SignedManifest::from_json(&big),
            Err(ManifestError::Malformed(_))
        ));
    }

    /// Adapter.toml-ish text: mostly known keys with odd values, sometimes junk.
    fn tomlish() -> impl Strategy<Value = String> {
        let key = prop::sample::select(vec![
            "name",
            "version",
            "description",
            "tags",
            "license",
            "base_model",
            "examples",
            "other",
        ]);
        let value = prop_oneof![
            "\"[a-z0-9-]{0,70}\"",
            "\"[0-9]{1,2}\\.[0-9]{1,2}(\\.[0-9]{1,2})?(-[a-z]{1,3})?\"",
            "\"[ -~]{0,40}\"",
            "\\[(\"[a-z-]{0,10}\", ){0,20}\\]",
            "[0-9]{1,5}",
            any::<String>(),
        ];
        // Valid required keys (TOML-escaped arbitrary description) plus odd extras,
        // so the accepting path (manifest, signature, JSON) is exercised too.
        let mostly_valid = (
            any::<String>(),
            prop::collection::vec((key.clone(), value.clone()), 0..3),
        )
            .prop_map(|(desc, extra)| {
                let desc = toml::Value::String(desc).to_string();
                let mut text = format!("name = \"p\"\nversion = \"0.1.0\"\ndescription = {desc}\n");
                for (k, v) in extra {
                    text.push_str(&format!("{k} = {v}\n"));
                }
                text
            });
        prop_oneof![
            prop::collection::vec((key, value), 0..8).prop_map(|kvs| {
                kvs.into_iter()
                    .map(|(k, v)| format!("{k} = {v}\n"))
                    .collect::<String>()
            }),
            mostly_valid,
            any::<String>(),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        #[test]
        fn arbitrary_adapter_toml_never_panics(text in tomlish()) {
            let dir = TempDir::new("mf-prop");
            write_test_package(dir.path(), "p", "0.1.0", "d", &[], 2, 8, 1).unwrap();
            std::fs::write(dir.path().join(ADAPTER_TOML), &text).unwrap();
            if let Ok(pkg) = AdapterPackage::load(dir.path()) {
                let id = Identity::generate(&mut OsRng);
                let m = Manifest::from_package(&pkg, id.public(), 1).unwrap();
                let s = SignedManifest::sign(m, &id);
                let back = SignedManifest::from_json(&s.to_json()).unwrap();
                prop_assert_eq!(&back, &s);
                back.verify().unwrap();
                back.verify_files(dir.path()).unwrap();
            }
        }

        #[test]
        fn from_json_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
            let _ = SignedManifest::from_json(&bytes);
        }

        #[test]
        fn from_json_never_panics_on_mutations(pos in any::<prop::sample::Index>(), byte in any::<u8>()) {
            // Mutate one byte of a valid signed manifest.
            let dir = TempDir::new("mf-mut");
            write_test_package(dir.path(), "p", "0.1.0", "d", &["e"], 2, 8, 1).unwrap();
            let pkg = AdapterPackage::load(dir.path()).unwrap();
            let id = Identity::generate(&mut OsRng);
            let s = SignedManifest::sign(Manifest::from_package(&pkg, id.public(), 7).unwrap(), &id);
            let mut bytes = s.to_json();
            let i = pos.index(bytes.len());
            bytes[i] = byte;
            if let Ok(parsed) = SignedManifest::from_json(&bytes) {
                let _ = parsed.verify();
            }
        }
    }
}
