//! Cryptographic building blocks shared by identities, links and IFAC, plus bundle
//! sealing (end-to-end encryption for store-and-forward bundles).

pub mod bundle;
mod hkdf;
mod token;

pub use self::hkdf::hkdf_sha256;
pub use token::{Token, TokenError, TOKEN_HEADROOM, TOKEN_OVERHEAD, TOKEN_TAILROOM};
