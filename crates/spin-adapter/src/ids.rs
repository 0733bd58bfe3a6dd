//! Randomness (WASI's `random`) and the ids made from it: random hex,
//! random UUIDs, and UUIDs derived from a name.

use sha2::{Digest, Sha256};
use uuid::Uuid;

/// `N` random bytes.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).expect("wasi:random");
    b
}

/// Random bytes as lowercase hex.
pub fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    getrandom::fill(&mut b).expect("wasi:random");
    hex::encode(b)
}

/// A random (version 4) UUID, hyphenated lowercase.
pub fn uuid_v4() -> String {
    uuid::Builder::from_random_bytes(random_bytes())
        .into_uuid()
        .to_string()
}

/// A UUID derived from a name: the same name, the same UUID. The first 16
/// bytes of the name's SHA-256 as a version 8 (custom) UUID — RFC 9562's
/// version for hashes other than MD5 (v3) and SHA-1 (v5).
pub fn uuid_from(name: &str) -> String {
    let digest: [u8; 32] = Sha256::digest(name.as_bytes()).into();
    let mut b = [0u8; 16];
    b.copy_from_slice(&digest[..16]);
    Uuid::new_v8(b).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_are_well_formed_and_name_derived_ones_stable() {
        let a = Uuid::parse_str(&uuid_from("qovery-organization:t1")).unwrap();
        assert_eq!(a.get_version_num(), 8);
        assert_eq!(a.get_variant(), uuid::Variant::RFC4122);
        assert_eq!(uuid_from("qovery-organization:t1"), a.to_string());
        assert_ne!(uuid_from("qovery-organization:t2"), a.to_string());
        let r = Uuid::parse_str(&uuid_v4()).unwrap();
        assert_eq!(r.get_version_num(), 4);
        assert_ne!(uuid_v4(), uuid_v4());
        assert_eq!(random_hex(8).len(), 16);
    }
}
