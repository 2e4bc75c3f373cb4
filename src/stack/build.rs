//! Building a [`Stack`]: every layer from its configuration, with the values they share, and the
//! mixes that could not work refused.

use std::sync::Arc;

use super::builder::{Built, Stack, StackBuilder};

use crate::clock;
use crate::error::ConfigError;

#[cfg(feature = "auth")]
use crate::auth::AuthLayer;
#[cfg(feature = "client-ip")]
use crate::client_ip::ClientIpLayerBuilder;
#[cfg(feature = "rate-limit")]
use crate::rate_limit::{KeyBy, Limit, RateLimitLayer, RateLimitStore};
#[cfg(all(feature = "rate-limit", feature = "redis"))]
use crate::rate_limit::{OnStoreError, RemoteStore};

#[cfg(feature = "auth")]
use super::builder::AuthSource;

impl StackBuilder {
    /// Checks the mix and builds every layer.
    ///
    /// # Errors
    /// A layer's own configuration error, or a mix that could not work: a per-IP limit without
    /// the client-IP layer, a limit by principal without auth or a principal-keyed limit placed
    /// before auth, CORS credentials with a wildcard (from the CORS builder).
    pub fn build(self) -> Result<Stack, ConfigError> {
        let clock = self.clock.unwrap_or_else(clock::system);
        let mut allow: Vec<String> = Vec::new();
        let mut expose: Vec<String> = Vec::new();
        let mut needs = |a: &[&str], e: &[&str]| {
            allow.extend(a.iter().map(|s| (*s).to_owned()));
            expose.extend(e.iter().map(|s| (*s).to_owned()));
        };

        #[cfg(feature = "client-ip")]
        let client_ip = self
            .client_ip
            .map(ClientIpLayerBuilder::build)
            .transpose()?;
        #[cfg(feature = "client-ip")]
        #[allow(unused_variables)]
        let has_client_ip = client_ip.is_some();
        #[cfg(not(feature = "client-ip"))]
        #[allow(unused_variables)]
        let has_client_ip = false;

        if let Some(r) = &self.request_id {
            let name = r.header_name().as_str();
            needs(&[name], &[name]);
        }
        #[cfg(feature = "trace")]
        let trace = self.trace.map(|t| {
            let name = t.request_id_header_name().as_str().to_owned();
            needs(
                &["traceparent", "tracestate", &name],
                &["traceparent", &name],
            );
            t.clock(clock.clone())
        });

        // A trace layer assigns request ids itself; a request-id layer with the same settings
        // outside it would only do the same work first.
        #[cfg(feature = "trace")]
        let request_id = self.request_id.filter(|r| {
            !trace.as_ref().is_some_and(|t| {
                t.request_id_header_name() == r.header_name()
                    && t.trusts_request_id() == r.trusts_incoming()
            })
        });
        #[cfg(not(feature = "trace"))]
        let request_id = self.request_id;

        #[cfg(feature = "gateway")]
        let versions = match self.versions {
            Some(v) => {
                needs(
                    &["api-version"],
                    &["api-version", "deprecation", "sunset", "link"],
                );
                Some(v.build()?)
            }
            None => None,
        };
        #[cfg(feature = "gateway")]
        let body_limits = {
            needs(&["content-type"], &[]);
            self.body_limits.unwrap_or_default()
        };

        #[cfg(feature = "rate-limit")]
        let (by_client, by_principal) = {
            #[cfg(feature = "auth")]
            let has_auth = self.auth.is_some();
            #[cfg(not(feature = "auth"))]
            let has_auth = false;
            check_limits(&self.by_client, &self.by_principal, has_client_ip, has_auth)?;
            let store: Arc<dyn RateLimitStore> = self
                .store
                .unwrap_or_else(|| Arc::new(crate::rate_limit::InMemoryStore::default()));
            #[cfg(feature = "redis")]
            let remote = match (self.remote, &self.redis) {
                (Some(r), _) => Some(r),
                (None, Some(h)) => Some((
                    Arc::new(crate::rate_limit::RedisStore::from_handle(h).build()?)
                        as Arc<dyn RemoteStore>,
                    OnStoreError::Local,
                )),
                (None, None) => None,
            };
            #[cfg(not(feature = "redis"))]
            let remote = self.remote;
            let layer = |limits: Vec<Limit>| -> Result<Option<RateLimitLayer>, ConfigError> {
                let limits: Vec<Limit> = limits
                    .into_iter()
                    .filter(|l| !l.quota().is_unlimited())
                    .collect();
                if limits.is_empty() {
                    return Ok(None);
                }
                let mut b = RateLimitLayer::builder()
                    .store(store.clone())
                    .clock(clock.clone())
                    .headers(self.rate_limit_headers);
                if let Some((remote, policy)) = &remote {
                    b = b.remote_store(remote.clone(), *policy);
                }
                for l in limits {
                    b = b.limit(l);
                }
                b.build().map(Some)
            };
            let by_client = layer(self.by_client)?;
            let by_principal = layer(self.by_principal)?;
            if by_client.is_some() || by_principal.is_some() {
                needs(&[], &["retry-after"]);
                if self.rate_limit_headers {
                    needs(&[], &["ratelimit", "ratelimit-policy"]);
                }
            }
            (by_client, by_principal)
        };

        #[cfg(feature = "auth")]
        let auth = match self.auth {
            Some((source, optional)) => {
                let authenticator = match source {
                    AuthSource::Builder(b) => {
                        let mut b = b.clock(clock.clone());
                        if let Some(realm) = &self.realm {
                            b = b.realm(realm.clone());
                        }
                        b.build()?
                    }
                    AuthSource::Built(a) => a,
                };
                needs(&["authorization", "x-api-key"], &["www-authenticate"]);
                let layer = if optional {
                    AuthLayer::optional(authenticator.clone())
                } else {
                    AuthLayer::new(authenticator.clone())
                };
                Some((authenticator, layer))
            }
            None => None,
        };

        #[cfg(feature = "csrf")]
        if let Some(c) = &self.csrf {
            needs(&[c.token_header_name().as_str()], &[]);
        }

        #[cfg(all(feature = "redis", feature = "cache"))]
        let mut subscription = None;
        #[cfg(feature = "cache")]
        let cache = match self.cache {
            Some(b) => {
                needs(
                    &["if-none-match", "if-modified-since", "cache-control"],
                    &["etag", "age", "cache-status"],
                );
                #[allow(unused_mut)]
                let mut b = b.clock(clock.clone());
                #[cfg(feature = "redis")]
                let tier = match &self.redis {
                    Some(h) => {
                        let tier = crate::cache::RedisTier::from_handle(h).build()?;
                        b = b.tier(Arc::new(tier.clone()));
                        Some(tier)
                    }
                    None => None,
                };
                let layer = b.build()?;
                #[cfg(feature = "redis")]
                if let Some(tier) = tier {
                    let local = layer.handle();
                    subscription = Some(tier.subscribe(move |p| local.invalidate_local(&p))?);
                }
                Some(layer)
            }
            None => None,
        };

        allow.sort();
        allow.dedup();
        expose.sort();
        expose.dedup();

        #[cfg(feature = "cors")]
        let cors = self
            .cors
            .map(|b| {
                b.extend_allow_headers(allow.iter())
                    .stack_expose_headers(&expose)
                    .build()
            })
            .transpose()?;

        Ok(Stack {
            built: Arc::new(Built {
                clock,
                realm: self.realm,
                #[cfg(feature = "client-ip")]
                client_ip,
                request_id,
                #[cfg(feature = "trace")]
                trace_position: trace
                    .clone()
                    .unwrap_or_else(crate::trace::TraceLayer::disabled),
                #[cfg(feature = "trace")]
                trace,
                #[cfg(feature = "cors")]
                cors,
                #[cfg(feature = "security-headers")]
                security_headers: self.security_headers,
                #[cfg(feature = "gateway")]
                versions,
                #[cfg(feature = "gateway")]
                body_limits,
                #[cfg(feature = "rate-limit")]
                by_client,
                #[cfg(feature = "auth")]
                auth,
                #[cfg(feature = "csrf")]
                csrf: self.csrf,
                #[cfg(feature = "rate-limit")]
                by_principal,
                #[cfg(feature = "auth")]
                roles: self.roles,
                #[cfg(feature = "cache")]
                cache,
                #[cfg(feature = "redis")]
                redis: self.redis,
                #[cfg(all(feature = "redis", feature = "cache"))]
                _subscription: subscription,
                allow_headers: allow,
                expose_headers: expose,
            }),
        })
    }
}

/// The mixes of limits that could not work.
#[cfg(feature = "rate-limit")]
fn check_limits(
    by_client: &[Limit],
    by_principal: &[Limit],
    client_ip: bool,
    auth: bool,
) -> Result<(), ConfigError> {
    let by_ip = |k: &KeyBy| matches!(k, KeyBy::ClientIp | KeyBy::ClientIpV6Net64);
    let by_who = |k: &KeyBy| matches!(k, KeyBy::Subject | KeyBy::JwtSubject | KeyBy::ApiKey);
    let on = |l: &&Limit| !l.quota().is_unlimited();
    for l in by_client.iter().chain(by_principal).filter(on) {
        if !client_ip && l.keys().iter().any(by_ip) {
            return Err(ConfigError::new(format!(
                "rate limit `{}` is keyed by client IP, but the stack has no client-IP layer: \
                 remove `without_client_ip()` (the layer would never find an address and the \
                 limit would never apply)",
                l.name()
            )));
        }
    }
    for l in by_client.iter().filter(on) {
        if l.keys().iter().any(by_who) {
            return Err(ConfigError::new(format!(
                "rate limit `{}` is keyed by a principal but placed before authentication, where \
                 there is none yet: add it with `limit_by_principal`",
                l.name()
            )));
        }
    }
    if !auth && let Some(l) = by_principal.iter().find(on) {
        return Err(ConfigError::new(format!(
            "rate limit `{}` is a limit by principal, but the stack has no auth layer to find \
             one: add `.auth(...)` or `.optional_auth(...)`, or use `limit_by_client`",
            l.name()
        )));
    }
    Ok(())
}
