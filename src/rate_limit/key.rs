//! A limit's key for a request: the limit's name and the parts it keys by (client address or
//! its IPv6 /64, subject, API key, path, route), built on the stack in the common case.

use std::fmt::{self, Write as _};
use std::net::IpAddr;

use http::Request;

use super::layer::{KeyBy, Limit, Route};
use crate::identity::ClientIp;
use crate::identity::{Principal, Scheme};

/// A limit's key: on the stack while it fits (client IPs, subjects), on the heap beyond.
pub(crate) struct Key {
    buf: [u8; 96],
    len: usize,
    heap: Option<String>,
}

impl Key {
    fn new() -> Self {
        Self {
            buf: [0; 96],
            len: 0,
            heap: None,
        }
    }

    fn push_str(&mut self, s: &str) {
        if let Some(h) = &mut self.heap {
            h.push_str(s);
            return;
        }
        let end = self.len + s.len();
        if end <= self.buf.len() {
            self.buf[self.len..end].copy_from_slice(s.as_bytes());
            self.len = end;
        } else {
            let mut h = String::with_capacity(end + 32);
            h.push_str(self.as_str());
            h.push_str(s);
            self.heap = Some(h);
        }
    }

    pub(crate) fn as_str(&self) -> &str {
        match &self.heap {
            Some(h) => h,
            // Only whole `str`s are ever copied in, so the bytes are UTF-8.
            None => std::str::from_utf8(&self.buf[..self.len]).unwrap_or_default(),
        }
    }
}

impl fmt::Write for Key {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.push_str(s);
        Ok(())
    }
}

fn push_ip(key: &mut Key, ip: IpAddr, group: bool) {
    let v4 = match ip {
        IpAddr::V4(v4) => v4,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4,
            None if group => {
                let s = v6.segments();
                let _ = write!(key, "{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3]);
                return;
            }
            None => {
                let _ = write!(key, "{v6}");
                return;
            }
        },
    };
    // Dotted quad without the formatting machinery, written in place and copied in once: the
    // common case, on every request.
    let mut quad = [0u8; 15];
    let mut len = 0;
    for (i, octet) in v4.octets().into_iter().enumerate() {
        if i > 0 {
            quad[len] = b'.';
            len += 1;
        }
        let (h, t, o) = (octet / 100, octet / 10 % 10, octet % 10);
        if h > 0 {
            quad[len] = b'0' + h;
            len += 1;
        }
        if h > 0 || t > 0 {
            quad[len] = b'0' + t;
            len += 1;
        }
        quad[len] = b'0' + o;
        len += 1;
    }
    key.push_str(std::str::from_utf8(&quad[..len]).unwrap_or_default());
}

/// The key of a per-IP limit named `name` for `ip` (for the unit tests).
#[cfg(test)]
pub(crate) fn key_for_tests(name: &str, ip: IpAddr) -> String {
    let mut key = Key::new();
    key.push_str(name);
    key.push_str("|");
    push_ip(&mut key, ip, false);
    key.as_str().to_owned()
}

/// The matched route template: ours, else axum's.
fn route_of<B>(req: &Request<B>) -> Option<&str> {
    Route::of(req.extensions())
}

/// The key of `limit` for this request, or `None` when the limit does not apply.
pub(super) fn key_of<B>(limit: &Limit, req: &Request<B>) -> Option<Key> {
    if let Some(prefix) = &limit.path_prefix
        && !req.uri().path().starts_with(prefix.as_str())
    {
        return None;
    }
    if !limit.methods.is_empty() && !limit.methods.contains(req.method()) {
        return None;
    }
    let mut key = Key::new();
    key.push_str(&limit.name);
    for part in &limit.key {
        key.push_str("|");
        match part {
            KeyBy::ClientIp | KeyBy::ClientIpV6Net64 => {
                let Some(ip) = ClientIp::of(req.extensions()) else {
                    limit.unkeyed();
                    return None;
                };
                let ip = ip.ip();
                push_ip(&mut key, ip, *part == KeyBy::ClientIpV6Net64);
            }
            KeyBy::Subject => key.push_str(Principal::of(req.extensions())?.subject()),
            KeyBy::JwtSubject => {
                let p = Principal::of(req.extensions())?;
                if p.scheme() != Scheme::Jwt {
                    return None;
                }
                key.push_str(p.subject());
            }
            KeyBy::ApiKey => {
                let p = Principal::of(req.extensions())?;
                if p.scheme() != Scheme::ApiKey {
                    return None;
                }
                key.push_str(p.token_id().unwrap_or(p.subject()));
            }
            KeyBy::Path => key.push_str(req.uri().path()),
            KeyBy::Route => key.push_str(route_of(req)?),
        }
    }
    Some(key)
}
