//! Who is at the other end of a request, and how often they may ask: the client's address (the
//! peer's, or from `X-Forwarded-For` when the peer is a configured trusted proxy), and the
//! per-address rate limit.

use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;

use actix_web::http::header::HeaderValue;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use ipnet::IpNet;

/// The reverse proxies whose `X-Forwarded-For` is believed.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    pub fn new(networks: Vec<IpNet>) -> TrustedProxies {
        TrustedProxies(networks)
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client's address: the peer's, unless the peer is a trusted proxy; then the right-most
    /// address of `X-Forwarded-For` (each header in order) that is not a trusted proxy, since
    /// everything left of it was written by the client and may be anything. An entry that is no
    /// address stops the walk at the hop that passed it on.
    pub fn client<'h>(
        &self,
        peer: Option<IpAddr>,
        forwarded_for: impl DoubleEndedIterator<Item = &'h HeaderValue>,
    ) -> Option<IpAddr> {
        let mut client = peer?;
        if !self.trusts(client) {
            return Some(client);
        }
        let hops: Vec<&str> = forwarded_for
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .collect();
        for hop in hops.into_iter().rev() {
            let Some(ip) = parse_hop(hop) else {
                break;
            };
            client = ip;
            if !self.trusts(ip) {
                break;
            }
        }
        Some(client)
    }
}

/// One `X-Forwarded-For` entry: `203.0.113.7`, `2001:db8::1`, `[2001:db8::1]:443` or
/// `203.0.113.7:443`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    hop.parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<std::net::SocketAddr>().ok().map(|s| s.ip()))
        .map(|ip| ip.to_canonical())
}

/// Addresses the limiter keeps at most: past this, until the next sweep, new addresses share
/// one bucket, so memory stays bounded however many addresses a flood comes from.
const MAX_ADDRESSES: usize = 200_000;

/// The bucket addresses share when the table is full.
const OVERFLOW: IpAddr = IpAddr::V6(Ipv6Addr::UNSPECIFIED);

/// A GCRA rate limit per client (governor): `per_minute` requests a minute, in bursts of up to
/// that many. Constant work per request; addresses quiet long enough to be full again are
/// forgotten by [`IpLimiter::forget_idle`], which the server runs every minute.
#[derive(Debug)]
pub struct IpLimiter {
    limiter: DefaultKeyedRateLimiter<IpAddr>,
    clock: DefaultClock,
}

impl IpLimiter {
    pub fn new(per_minute: u32) -> IpLimiter {
        let quota =
            Quota::per_minute(NonZeroU32::new(per_minute.max(1)).unwrap_or(NonZeroU32::MIN));
        IpLimiter {
            limiter: RateLimiter::keyed(quota),
            clock: DefaultClock::default(),
        }
    }

    /// The key of an address: IPv4 as it is, IPv6 by its /64, the network one client holds.
    fn key(ip: IpAddr) -> IpAddr {
        match ip.to_canonical() {
            IpAddr::V6(v6) => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(Ipv6Addr::from(prefix))
            }
            v4 => v4,
        }
    }

    /// `None` when the request may go ahead; otherwise the seconds to wait.
    pub fn check(&self, ip: IpAddr) -> Option<u64> {
        let mut key = Self::key(ip);
        if self.limiter.len() >= MAX_ADDRESSES {
            key = OVERFLOW;
        }
        match self.limiter.check_key(&key) {
            Ok(()) => None,
            Err(not_until) => Some(
                not_until
                    .wait_time_from(self.clock.now())
                    .as_secs_f64()
                    .ceil()
                    .max(1.0) as u64,
            ),
        }
    }

    /// Forgets the addresses whose bucket is full again.
    pub fn forget_idle(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }

    /// How many addresses are kept now.
    #[cfg(test)]
    pub fn addresses(&self) -> usize {
        self.limiter.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(text: &str) -> HeaderValue {
        HeaderValue::from_str(text).unwrap()
    }

    #[test]
    fn forwarded_for_is_believed_only_from_a_trusted_proxy() {
        let proxies = TrustedProxies::new(vec![
            "10.0.0.0/8".parse().unwrap(),
            "::1/128".parse().unwrap(),
        ]);
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let client = |peer: &str, headers: &[&str]| {
            let values: Vec<HeaderValue> = headers.iter().map(|h| header(h)).collect();
            proxies.client(Some(ip(peer)), values.iter())
        };
        // A client that is not a proxy cannot choose its address.
        assert_eq!(
            client("203.0.113.9", &["198.51.100.1"]),
            Some(ip("203.0.113.9"))
        );
        // Through one proxy: the address it saw.
        assert_eq!(
            client("10.0.0.2", &["198.51.100.1"]),
            Some(ip("198.51.100.1"))
        );
        // Through two proxies, with a forged entry on the left: the right-most untrusted one.
        assert_eq!(
            client("10.0.0.2", &["1.2.3.4, 198.51.100.1", "10.0.0.3"]),
            Some(ip("198.51.100.1"))
        );
        assert_eq!(
            client("::1", &["[2001:db8::7]:443"]),
            Some(ip("2001:db8::7"))
        );
        // Garbage stops at the hop that passed it on.
        assert_eq!(
            client("10.0.0.2", &["nonsense, 10.0.0.4"]),
            Some(ip("10.0.0.4"))
        );
        // No header: the proxy itself.
        assert_eq!(client("10.0.0.2", &[]), Some(ip("10.0.0.2")));
        // No proxies configured: never believed.
        let none = TrustedProxies::default();
        let values = [header("198.51.100.1")];
        assert_eq!(
            none.client(Some(ip("10.0.0.2")), values.iter()),
            Some(ip("10.0.0.2"))
        );
    }

    #[test]
    fn the_limiter_counts_per_address_and_ipv6_per_64() {
        let limiter = IpLimiter::new(3);
        let a: IpAddr = "2001:db8::1".parse().unwrap();
        let b: IpAddr = "2001:db8::ffff:1".parse().unwrap(); // the same /64
        let c: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(limiter.check(a), None);
        assert_eq!(limiter.check(b), None);
        assert_eq!(limiter.check(a), None);
        assert!(
            limiter
                .check(b)
                .is_some_and(|wait| (1..=20).contains(&wait))
        );
        assert_eq!(limiter.check(c), None, "another address has its own bucket");
        assert_eq!(limiter.addresses(), 2);
    }
}
