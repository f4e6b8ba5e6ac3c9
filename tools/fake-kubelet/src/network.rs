//! Addresses for the fake node and its pods. The API server refuses to proxy to loopback or
//! link-local addresses, so `scripts/cluster.sh` makes a whole private range local to this
//! machine (`ip route add local NET dev lo`, "AnyIP") and each fake kubelet takes one block of
//! it: the block's first address is the node IP, the others are pod IPs. Two clusters on one
//! machine therefore never share an address.
//!
//! A block is claimed by listening on its node IP at the kubelet port: the kernel refuses a
//! second listener there, so the claim is race-free and ends with the process. This module is
//! the pure part (CIDR parsing, blocks, the pod IP pool); `main` does the binding.

use std::collections::HashSet;
use std::net::Ipv4Addr;

/// Prefix length of the block one fake kubelet takes: 4093 pod IPs (a burst of 2,000 pods and
/// the Services' addresses fit), 16 blocks in a /16.
pub const BLOCK_PREFIX: u8 = 20;

/// An IPv4 network, `198.18.0.0/16`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cidr {
    base: u32,
    prefix: u8,
}

impl Cidr {
    pub fn parse(text: &str) -> Result<Self, String> {
        let invalid = || format!("{text:?} is not an IPv4 network such as 198.18.0.0/16");
        let (ip, prefix) = text.split_once('/').ok_or_else(invalid)?;
        let ip: Ipv4Addr = ip.parse().map_err(|_| invalid())?;
        let prefix: u8 = prefix.parse().map_err(|_| invalid())?;
        if prefix > 32 {
            return Err(invalid());
        }
        let base = u32::from(ip) & mask(prefix);
        Ok(Self { base, prefix })
    }

    /// The network's blocks of `BLOCK_PREFIX` bits, in address order (none if it is smaller).
    pub fn blocks(self) -> impl Iterator<Item = Cidr> {
        let count = if self.prefix > BLOCK_PREFIX {
            0
        } else {
            1u64 << (BLOCK_PREFIX - self.prefix)
        };
        (0..count).map(move |i| Cidr {
            base: self.base + (i as u32) * (1 << (32 - BLOCK_PREFIX)),
            prefix: BLOCK_PREFIX,
        })
    }

    /// The block's first usable address, where the fake node lives.
    pub fn node_ip(self) -> Ipv4Addr {
        Ipv4Addr::from(self.base + 1)
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "{}/{}", Ipv4Addr::from(self.base), self.prefix)
    }
}

fn mask(prefix: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
}

/// The pod IPs of one block: every address but the network, the node and the broadcast ones.
/// Hands them out round-robin, so a freed IP is reused as late as possible (a pod's listener
/// may still be closing when its IP is released).
#[derive(Debug)]
pub struct IpPool {
    first: u32,
    last: u32,
    next: u32,
    in_use: HashSet<u32>,
}

impl IpPool {
    pub fn new(block: Cidr) -> Self {
        let first = block.base + 2;
        let last = block.base + (!mask(block.prefix)) - 1;
        Self {
            first,
            last,
            next: first,
            in_use: HashSet::new(),
        }
    }

    /// A free pod IP, or `None` when every one is taken.
    pub fn allocate(&mut self) -> Option<Ipv4Addr> {
        let size = self.last.checked_sub(self.first)? + 1;
        for _ in 0..size {
            let ip = self.next;
            self.next = if ip == self.last { self.first } else { ip + 1 };
            if self.in_use.insert(ip) {
                return Some(Ipv4Addr::from(ip));
            }
        }
        None
    }

    pub fn release(&mut self, ip: Ipv4Addr) {
        self.in_use.remove(&u32::from(ip));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_network_is_parsed_and_normalised() {
        let net = Cidr::parse("198.18.7.9/16").expect("valid");
        assert_eq!(net.to_string(), "198.18.0.0/16");
        for bad in [
            "198.18.0.0",
            "198.18.0/16",
            "198.18.0.0/33",
            "x/8",
            "::1/64",
        ] {
            assert!(Cidr::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_slash_16_holds_16_blocks_each_with_its_node_ip_first() {
        let blocks: Vec<Cidr> = Cidr::parse("198.18.0.0/16")
            .expect("valid")
            .blocks()
            .collect();
        assert_eq!(blocks.len(), 16);
        assert_eq!(blocks[0].to_string(), "198.18.0.0/20");
        assert_eq!(blocks[1].to_string(), "198.18.16.0/20");
        assert_eq!(blocks[15].to_string(), "198.18.240.0/20");
        assert_eq!(blocks[1].node_ip(), Ipv4Addr::new(198, 18, 16, 1));
        let small = Cidr::parse("198.18.0.0/21").expect("valid");
        assert_eq!(small.blocks().count(), 0);
    }

    #[test]
    fn pod_ips_skip_the_node_and_broadcast_and_are_reused_last() {
        let block = Cidr::parse("198.18.16.0/20").expect("valid");
        let mut pool = IpPool::new(block);
        let first = pool.allocate().expect("free");
        assert_eq!(first, Ipv4Addr::new(198, 18, 16, 2));
        assert_eq!(pool.allocate(), Some(Ipv4Addr::new(198, 18, 16, 3)));
        pool.release(first);
        // Released, but the pool moves on before coming back to it.
        assert_eq!(pool.allocate(), Some(Ipv4Addr::new(198, 18, 16, 4)));

        // A /20 has 4096 addresses; minus network, node and broadcast, 4093 pod IPs.
        let rest: Vec<Ipv4Addr> = std::iter::from_fn(|| pool.allocate()).collect();
        assert_eq!(rest.len(), 4093 - 2);
        let last = *rest.last().expect("some");
        assert_eq!(last, first, "the released IP comes back last");
        assert_eq!(pool.allocate(), None);
    }
}
