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
//! let who = req.extensions().get::<Principal>().unwrap();
//! assert_eq!(who.subject(), "user-1");
//! assert_eq!(who.scheme(), Scheme::Jwt);
//! assert_eq!(req.extensions().get::<ClientIp>().unwrap().to_string(), "192.0.2.7");
//! ```
//!
//! Cost: nothing by itself; each value is one request-extension insert by the layer that writes it.

mod client;
mod principal;
mod route;
mod source;

pub use client::ClientIp;
pub use principal::{Principal, PrincipalBuilder, RoleHierarchy, Scheme};
pub use route::Route;
pub use source::CredentialSource;
