//! Signature schemes: compute over canonical bytes and compare in constant time.

pub mod cube;
pub mod md5;
