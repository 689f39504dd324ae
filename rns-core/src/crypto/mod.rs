//! Cryptographic building blocks shared by identities, links and IFAC.

mod hkdf;
mod token;

pub use self::hkdf::hkdf_sha256;
pub use token::{Token, TokenError, TOKEN_OVERHEAD};
