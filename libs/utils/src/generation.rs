//! Attachment generation numbers.
//!
//! Every attachment of a tenant to a node carries a generation issued by the
//! generation authority (the storage controller, or this node itself when it
//! runs without one). Objects a location writes carry its generation as a
//! `-%08x` suffix, so two nodes that both believe they own a tenant never
//! overwrite each other's files.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Generation(pub u32);

impl Generation {
    /// The file-name suffix of objects written in this generation.
    pub fn suffix(&self) -> String {
        format!("-{:08x}", self.0)
    }

    pub fn next(&self) -> Generation {
        Generation(self.0.saturating_add(1))
    }
}

impl std::fmt::Display for Generation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:08x}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffix() {
        assert_eq!(Generation(0x1a).suffix(), "-0000001a");
        assert_eq!(Generation(u32::MAX).next(), Generation(u32::MAX));
    }
}
