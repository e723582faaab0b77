//! Who sent a request, as the envelope records it: a correlation id per request, the hash of the
//! client's address (never the address) and the user agent.

use std::net::IpAddr;

use eventcore::CommandContext;
use hmac::digest::InvalidLength;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// Metadata key of the client address hash.
pub const ADDRESS_HASH: &str = "client_addr_hash";
/// Metadata key of the user agent.
pub const USER_AGENT: &str = "user_agent";

/// Hashes client addresses with HMAC-SHA-256 under the deployment's secret key, so the log never
/// holds an address and the hash cannot be reversed by hashing the whole address space.
#[derive(Clone)]
pub struct AddressHasher {
    keyed: Hmac<Sha256>,
}

impl AddressHasher {
    /// A hasher keyed with `key` (the deployment's secret).
    pub fn new(key: &[u8]) -> Result<Self, InvalidLength> {
        Ok(Self {
            keyed: <Hmac<Sha256> as KeyInit>::new_from_slice(key)?,
        })
    }

    /// The hash of `address`: the first 16 bytes of its HMAC, in hex.
    pub fn hash(&self, address: IpAddr) -> String {
        let mut mac = self.keyed.clone();
        mac.update(address.to_string().as_bytes());
        let digest = mac.finalize().into_bytes();
        digest[..16].iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// One HTTP request to the board.
#[derive(Debug, Clone)]
pub struct Request {
    /// The request id, which becomes the correlation id of what it causes.
    pub id: String,
    /// The client's address.
    pub address: IpAddr,
    /// The client's user agent.
    pub user_agent: String,
}

impl Request {
    /// A request `id` from `address` with `user_agent`.
    pub fn new(id: &str, address: [u8; 4], user_agent: &str) -> Self {
        Self {
            id: id.to_owned(),
            address: IpAddr::from(address),
            user_agent: user_agent.to_owned(),
        }
    }

    /// The context of the commands this request runs: its id as correlation id, the address
    /// hash and the user agent as metadata.
    pub fn context(&self, hasher: &AddressHasher) -> CommandContext {
        CommandContext::new()
            .correlation_id(&self.id)
            .metadata(ADDRESS_HASH, hasher.hash(self.address))
            .metadata(USER_AGENT, &self.user_agent)
    }
}
