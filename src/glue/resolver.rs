//! A name resolver that costs nothing on the hot path.
//!
//! ureq 3.5 resolves the host on every request, before it looks in its connection pool, and
//! when any resolve, global or per-call timeout applies its default resolver does the lookup
//! on a newly spawned thread, so that the lookup itself can time out. With the attempt
//! timeout we must set, that is one thread spawn per send, even on a kept-alive connection:
//! measured at about half the bare-ureq rate on loopback.
//!
//! This resolver keeps the timeout and drops the cost:
//! - an IP literal (`127.0.0.1`, `[::1]`) is answered directly, with no lookup at all;
//! - a name is looked up by ureq's own resolver (still on a thread, so a hung DNS server
//!   still times out) and the answer is kept for [`TTL`]; later sends within that time,
//!   which are the ones that find a pooled connection anyway, skip the lookup.
//!
//! Failures are not cached.

use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ureq::config::Config;
use ureq::http::Uri;
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::NextTimeout;

/// How long a looked-up address list is reused: as long as ureq keeps an idle connection.
pub(crate) const TTL: Duration = Duration::from_secs(15);

#[derive(Debug, Default)]
pub(crate) struct CachingResolver {
    inner: DefaultResolver,
    cache: Mutex<Option<Cached>>,
}

#[derive(Debug)]
struct Cached {
    host: String,
    port: u16,
    addrs: ResolvedSocketAddrs,
    at: Instant,
}

fn port_of(uri: &Uri) -> Option<u16> {
    uri.port_u16().or(match uri.scheme_str() {
        Some("https") => Some(443),
        Some("http") => Some(80),
        _ => None,
    })
}

impl Resolver for CachingResolver {
    fn resolve(
        &self,
        uri: &Uri,
        config: &Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let (Some(host), Some(port)) = (uri.host(), port_of(uri)) else {
            return self.inner.resolve(uri, config, timeout);
        };
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = bare.parse::<IpAddr>() {
            let mut addrs = self.empty();
            addrs.push(SocketAddr::new(ip, port));
            return Ok(addrs);
        }
        {
            let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(c) = cache.as_ref() {
                if c.port == port && c.host == host && c.at.elapsed() < TTL {
                    let mut addrs = self.empty();
                    for a in c.addrs.iter() {
                        addrs.push(*a);
                    }
                    return Ok(addrs);
                }
            }
        }
        let addrs = self.inner.resolve(uri, config, timeout)?;
        let mut copy = self.empty();
        for a in addrs.iter() {
            copy.push(*a);
        }
        *self.cache.lock().unwrap_or_else(|p| p.into_inner()) = Some(Cached {
            host: host.to_owned(),
            port,
            addrs: copy,
            at: Instant::now(),
        });
        Ok(addrs)
    }
}
