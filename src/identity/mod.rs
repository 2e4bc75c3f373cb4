//! Who is calling, as plain request extensions: the client address, the principal (subject,
//! roles, scopes, how it authenticated) and where its credential came from.
//!
//! The layers that find these out write them (`client_ip` the [`ClientIp`], `auth` the
//! [`Principal`] and its [`CredentialSource`]); the layers that act on them read them (the rate
//! limiter keys by address, subject or API key; CSRF checks only cookie-authenticated writes; the
//! cache partitions by subject). The types live here, at the bottom of the crate, so a reader does
//! not pull in a writer: `rate-limit` and `csrf` compile without the JWT stack.
//!
//! ```
//! use protothrive::identity::{ClientIp, CredentialSource, Principal, Scheme};
//!
//! let mut req = http::Request::new(());
//! req.extensions_mut().insert(ClientIp("192.0.2.7".parse().unwrap()));
//! req.extensions_mut().insert(Principal::builder("user-1").roles(["admin"]).build());
//! req.extensions_mut().insert(CredentialSource::AuthorizationHeader);
//!
//! let who = Principal::of(req.extensions()).unwrap();
//! assert_eq!(who.subject(), "user-1");
//! assert_eq!(who.scheme(), Scheme::Jwt);
//! assert_eq!(CredentialSource::of(req.extensions()), Some(CredentialSource::AuthorizationHeader));
//! assert_eq!(ClientIp::of(req.extensions()).unwrap().to_string(), "192.0.2.7");
//! ```
//!
//! The crate's layers write the principal, its credential source, the request and trace ids into
//! one [`RequestContext`] extension instead of one extension each; read them with the types' `of`
//! accessors, which look there first and then for a standalone extension as above.
//!
//! Cost: nothing by itself; the layers pay one request-extension insert for the whole context and
//! one for the client address.

mod client;
mod context;
mod principal;
mod route;
mod source;

pub use client::ClientIp;
pub use context::RequestContext;
pub use principal::{Principal, PrincipalBuilder, RoleHierarchy, Scheme};
pub use route::Route;
pub use source::CredentialSource;
