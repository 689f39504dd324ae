//! An adapter package: a PEFT LoRA directory (`adapter_config.json` +
//! `adapter_model.safetensors`) plus our `adapter.toml`, validated strictly.
//!
//! Packages arrive from untrusted peers, so [`AdapterPackage::load`] checks every file
//! before anything else touches it, and every refusal names the file and the field so
//! a publisher can fix the package without guessing. The weights file is never read
//! into memory: only its safetensors header is parsed, and the header's offsets,
//! shapes and dtypes are checked against the file length and the LoRA rank.
//!
//! One concept per file: `adapter_toml` (our `adapter.toml`), `peft_config` (PEFT's
//! `adapter_config.json`), `safetensors` (the weights file's header), `fields` (the
//! field rules the manifest shares), and, behind the `test-support` feature, the
//! fixtures that write small valid packages.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

mod adapter_toml;
mod fields;
#[cfg(any(test, feature = "test-support"))]
mod fixtures;
mod peft_config;
mod safetensors;
#[cfg(test)]
mod tests;

use adapter_toml::parse_adapter_toml;
pub(crate) use fields::{check_examples, check_slug, check_tags, check_text, check_version};
#[cfg(test)]
pub(crate) use fixtures::testutil;
#[cfg(any(test, feature = "test-support"))]
pub use fixtures::{
    write_llama_adapter, write_llama_package, write_test_package, LlamaAdapterSpec, LlamaShape,
    SMOLLM2_135M, TEST_BASE_MODEL,
};
use peft_config::parse_adapter_config;
use safetensors::check_weights;

/// File name of our package description (name, version, description, ...).
pub const ADAPTER_TOML: &str = "adapter.toml";
/// File name of the PEFT adapter configuration.
pub const ADAPTER_CONFIG: &str = "adapter_config.json";
/// File name of the PEFT adapter weights (safetensors).
pub const ADAPTER_WEIGHTS: &str = "adapter_model.safetensors";

/// Largest weights file accepted (4 GiB): far above any LoRA adapter, bounds downloads.
pub const MAX_WEIGHTS_SIZE: u64 = 4 << 30;
/// Largest safetensors header accepted (100 MB, the limit of the reference implementation).
pub const MAX_HEADER_LEN: u64 = 100_000_000;
/// Largest `adapter.toml` read (1 MiB); a real one is a few hundred bytes.
pub const MAX_TOML_SIZE: u64 = 1 << 20;
/// Largest `adapter_config.json` read (4 MiB); PEFT writes a few kilobytes.
pub const MAX_CONFIG_SIZE: u64 = 4 << 20;
/// Largest LoRA rank accepted.
pub const MAX_RANK: u64 = 4096;
/// Longest package name, in characters.
pub const MAX_NAME_LEN: usize = 64;
/// Longest description, in characters.
pub const MAX_DESCRIPTION_LEN: usize = 2000;
/// Most tags a package may carry.
pub const MAX_TAGS: usize = 16;
/// Longest tag, in characters.
pub const MAX_TAG_LEN: usize = 32;
/// Longest license string, in characters.
pub const MAX_LICENSE_LEN: usize = 64;
/// Longest base model id, in characters.
pub const MAX_BASE_MODEL_LEN: usize = 256;
/// Most example prompts a package may carry.
pub const MAX_EXAMPLES: usize = 32;
/// Longest example prompt, in characters.
pub const MAX_EXAMPLE_LEN: usize = 500;
/// License recorded when `adapter.toml` names none.
pub const DEFAULT_LICENSE: &str = "unknown";

/// Why a package was refused. Every variant names the file; `Invalid` also the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PackageError {
    /// A required file is not in the package directory.
    #[error("{file}: missing")]
    Missing {
        /// The missing file (e.g. `adapter.toml`).
        file: String,
    },
    /// A file exists but could not be read.
    #[error("{file}: {reason}")]
    Io {
        /// The file that failed.
        file: String,
        /// The I/O error, as text.
        reason: String,
    },
    /// A file was read but its contents break a rule.
    #[error("{file}: {field}: {reason}")]
    Invalid {
        /// The file holding the bad value.
        file: String,
        /// The field (TOML key, JSON key, tensor name, `header`, `size`, ...).
        field: String,
        /// What is wrong, with the offending value where useful.
        reason: String,
    },
}

impl PackageError {
    fn invalid(file: &str, field: impl Into<String>, reason: impl Into<String>) -> Self {
        PackageError::Invalid {
            file: file.to_string(),
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// Map an I/O error on `file`: not-found becomes [`PackageError::Missing`].
    pub(crate) fn from_io(file: &str, err: &io::Error) -> Self {
        if err.kind() == io::ErrorKind::NotFound {
            PackageError::Missing {
                file: file.to_string(),
            }
        } else {
            PackageError::Io {
                file: file.to_string(),
                reason: err.to_string(),
            }
        }
    }
}

/// The validated contents of `adapter.toml`: what a publisher says about the adapter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdapterToml {
    /// Package name: `[a-z0-9-]`, 1-64 chars, no leading, trailing or double hyphen.
    pub name: String,
    /// Semantic version of the package.
    pub version: String,
    /// What the adapter does (trimmed, non-empty, at most 2000 chars); searched semantically.
    pub description: String,
    /// Short topic labels (at most 16, each like a name, at most 32 chars).
    pub tags: Vec<String>,
    /// License, free text (at most 64 chars); `"unknown"` when not given.
    pub license: String,
    /// Base model id, when the TOML names one (else taken from `adapter_config.json`).
    pub base_model: Option<String>,
    /// Example prompts the adapter is good at (at most 32, each 1-500 chars).
    pub examples: Vec<String>,
}

/// A package directory that passed every check in [`AdapterPackage::load`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdapterPackage {
    /// The package directory.
    pub dir: PathBuf,
    /// The validated `adapter.toml`.
    pub toml: AdapterToml,
    /// The base model the adapter applies to (TOML first, else the PEFT config).
    pub base_model: String,
    /// The LoRA rank `r` from `adapter_config.json`, matched by every A/B tensor.
    pub rank: u32,
    /// The modules the adapter targets (PEFT `target_modules`; a single string is kept as one entry).
    pub target_modules: Vec<String>,
    /// Number of tensors in the weights file.
    pub tensors: usize,
    /// Size of the weights file in bytes.
    pub weights_size: u64,
}

impl AdapterPackage {
    /// Load and strictly validate the package in `dir`.
    ///
    /// Reads `adapter.toml` and `adapter_config.json` whole (both are size-capped) and
    /// only the header of `adapter_model.safetensors`. The first problem found is
    /// returned, naming its file and field.
    pub fn load(dir: &Path) -> Result<AdapterPackage, PackageError> {
        let toml_text = read_capped(&dir.join(ADAPTER_TOML), ADAPTER_TOML, MAX_TOML_SIZE)?;
        let toml = parse_adapter_toml(&toml_text)?;
        let config_bytes = read_capped(&dir.join(ADAPTER_CONFIG), ADAPTER_CONFIG, MAX_CONFIG_SIZE)?;
        let config = parse_adapter_config(&config_bytes)?;
        let weights = check_weights(&dir.join(ADAPTER_WEIGHTS), config.rank)?;

        let base_model = match (&toml.base_model, &config.base_model) {
            (Some(b), _) => b.clone(),
            (None, Some(b)) => b.clone(),
            (None, None) => {
                return Err(PackageError::invalid(
                    ADAPTER_TOML,
                    "base_model",
                    format!(
                        "missing, and {ADAPTER_CONFIG} has no non-empty base_model_name_or_path"
                    ),
                ))
            }
        };

        Ok(AdapterPackage {
            dir: dir.to_path_buf(),
            toml,
            base_model,
            rank: config.rank,
            target_modules: config.target_modules,
            tensors: weights.tensors,
            weights_size: weights.size,
        })
    }
}

/// Read a whole small file, refusing it when larger than `max` bytes.
fn read_capped(path: &Path, file: &str, max: u64) -> Result<Vec<u8>, PackageError> {
    let f = File::open(path).map_err(|e| PackageError::from_io(file, &e))?;
    let meta = f.metadata().map_err(|e| PackageError::from_io(file, &e))?;
    if !meta.is_file() {
        return Err(PackageError::Io {
            file: file.to_string(),
            reason: "not a regular file".into(),
        });
    }
    let mut buf = Vec::new();
    f.take(max + 1)
        .read_to_end(&mut buf)
        .map_err(|e| PackageError::from_io(file, &e))?;
    if buf.len() as u64 > max {
        return Err(PackageError::invalid(
            file,
            "size",
            format!("larger than {max} bytes"),
        ));
    }
    Ok(buf)
}
