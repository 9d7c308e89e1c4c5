//! Verification keys as compiled from the `keys` section: the public id, the secret (never
//! printed) and what the key may sign (schemes, partners).

use std::fmt;

/// A secret. Its `Debug` never prints the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl Secret {
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Secret(bytes.into())
    }
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret(<redacted, {} bytes>)", self.0.len())
    }
}

/// A verification key: its public id, its (redacted) secret and, optionally, the partners
/// (`partner_code` values) it may sign for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    pub id: String,
    pub secret: Secret,
    /// `None`: any partner. `Some(list)`: only requests whose partner is in the list.
    pub partners: Option<Vec<String>>,
    /// Whether the key verifies `x-lf-md5` (legacy) signatures.
    pub md5: bool,
    /// Whether the key verifies `x-lf-signature` (Cube) signatures.
    pub cube: bool,
}

impl Key {
    /// Whether this key may sign for `partner` (the body's partner field, if any).
    pub fn allows_partner(&self, partner: Option<&str>) -> bool {
        match (&self.partners, partner) {
            (None, _) => true,
            (Some(list), Some(p)) => list.iter().any(|x| x == p),
            (Some(_), None) => false,
        }
    }
}
