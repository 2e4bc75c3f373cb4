//! Registered-claim checks (RFC 7519 §4.1) as a pure function of the claims, the policy and `now`.

use std::sync::Arc;

use serde::Deserialize;
use serde_json::Value;

use super::{Principal, Reason, Scheme};

/// Which kind of token a place accepts.
///
/// A token is a refresh token when its header `typ` is `refresh+jwt` or its `type` claim is
/// `"refresh"`; a token that says nothing (as external identity providers issue them) is an access
/// token. Any other `typ` (`dpop+jwt`, `logout+jwt`, ...) is neither (RFC 8725 §3.11).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TokenKind {
    /// An access token: what the auth layer accepts.
    #[default]
    Access,
    /// A refresh token: only what a refresh endpoint accepts.
    Refresh,
}

/// What a token's claims must satisfy.
#[derive(Debug, Clone)]
pub(crate) struct ClaimsPolicy {
    pub(crate) issuers: Arc<[String]>,
    pub(crate) audiences: Arc<[String]>,
    pub(crate) leeway: u64,
    pub(crate) required: Arc<[String]>,
    /// The furthest ahead `exp` may be, in seconds from now (0: no limit).
    pub(crate) max_lifetime: u64,
}

impl Default for ClaimsPolicy {
    /// No issuer, audience, leeway or required claim; the default maximum lifetime.
    fn default() -> Self {
        Self {
            issuers: Arc::default(),
            audiences: Arc::default(),
            leeway: 0,
            required: Arc::default(),
            max_lifetime: super::DEFAULT_MAX_LIFETIME.as_secs(),
        }
    }
}

/// Reads a NumericDate (RFC 7519 §2): a JSON number, possibly fractional; seconds are floored.
fn numeric_date(value: &Value) -> Result<i64, Reason> {
    let Value::Number(n) = value else {
        return Err(Reason::InvalidClaim);
    };
    if let Some(i) = n.as_i64() {
        return Ok(i);
    }
    if n.as_u64().is_some() {
        return Ok(i64::MAX);
    }
    match n.as_f64() {
        #[allow(clippy::cast_possible_truncation)]
        Some(f) if f.is_finite() => Ok(f.floor().clamp(i64::MIN as f64, i64::MAX as f64) as i64),
        _ => Err(Reason::InvalidClaim),
    }
}

/// The claims this crate reads, captured in one pass over the payload that also checks every
/// member name is unique at every depth; other members are skipped without being built (the full
/// map is made only if the application asks for it).
#[derive(Clone, Default)]
struct Registered {
    /// `exp nbf iat iss aud sub jti type tenant tid roles role scope scp`, in that order.
    values: [Option<Value>; 14],
    /// Top-level member names (for required-claim checks).
    keys: Vec<String>,
}

const READ: [&str; 14] = [
    "exp", "nbf", "iat", "iss", "aud", "sub", "jti", "type", "tenant", "tid", "roles", "role",
    "scope", "scp",
];

impl<'de> Deserialize<'de> for Registered {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::{Error, MapAccess, Visitor};

        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Registered;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Registered, A::Error> {
                let mut out = Registered::default();
                while let Some(super::json::Key(key)) = map.next_key()? {
                    if out.keys.iter().any(|k| *k == key) {
                        return Err(A::Error::custom("duplicate member name"));
                    }
                    match READ.iter().position(|name| *name == key) {
                        // A known claim is read strictly too (duplicates inside it are refused).
                        Some(i) => {
                            let super::json::Strict(value) = map.next_value()?;
                            out.values[i] = Some(value);
                        }
                        None => map.next_value::<super::json::NoDup>().map(|_| ())?,
                    }
                    out.keys.push(key.into_owned());
                }
                Ok(out)
            }
        }
        deserializer.deserialize_map(V)
    }
}

/// A verified token's payload: its JSON text and the claims this crate reads.
#[derive(Clone)]
pub(crate) struct Payload {
    json: String,
    registered: Registered,
}

impl Payload {
    /// Parses a payload: a JSON object without duplicate member names, nothing after it.
    pub(crate) fn parse(bytes: Vec<u8>) -> Result<Self, Reason> {
        let json = String::from_utf8(bytes).map_err(|_| Reason::Malformed)?;
        let registered = serde_json::from_str(&json).map_err(|_| Reason::Malformed)?;
        Ok(Self { json, registered })
    }

    fn get(&self, name: &str) -> Option<&Value> {
        let i = READ.iter().position(|n| *n == name)?;
        self.registered.values[i].as_ref()
    }

    fn contains_key(&self, name: &str) -> bool {
        self.registered.keys.iter().any(|k| k == name)
    }
}

fn string_claim<'a>(claims: &'a Payload, name: &str) -> Result<Option<&'a str>, Reason> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(Reason::InvalidClaim),
    }
}

/// A string or an array of strings (`aud`, `scp`, `roles`).
fn string_list(value: &Value) -> Result<Vec<&str>, Reason> {
    match value {
        Value::String(s) => Ok(vec![s.as_str()]),
        Value::Array(items) => items
            .iter()
            .map(|v| v.as_str().ok_or(Reason::InvalidClaim))
            .collect(),
        _ => Err(Reason::InvalidClaim),
    }
}

fn kind_from_typ(typ: &str) -> Result<Option<TokenKind>, Reason> {
    let lower = typ.to_ascii_lowercase();
    let media = lower.strip_prefix("application/").unwrap_or(&lower);
    match media {
        "jwt" => Ok(None),
        "at+jwt" => Ok(Some(TokenKind::Access)),
        "refresh+jwt" => Ok(Some(TokenKind::Refresh)),
        _ => Err(Reason::WrongTokenType),
    }
}

/// The token's kind from its header `typ` and its `type` claim; a contradiction is refused.
pub(crate) fn token_kind(header_typ: Option<&str>, claims: &Payload) -> Result<TokenKind, Reason> {
    let from_header = header_typ.map(kind_from_typ).transpose()?.flatten();
    let from_claim = match string_claim(claims, "type")? {
        None => None,
        Some("access") => Some(TokenKind::Access),
        Some("refresh") => Some(TokenKind::Refresh),
        Some(_) => return Err(Reason::WrongTokenType),
    };
    match (from_header, from_claim) {
        (Some(h), Some(c)) if h != c => Err(Reason::WrongTokenType),
        (h, c) => Ok(h.or(c).unwrap_or_default()),
    }
}

/// Checks the claims of a token whose signature has verified, and builds its principal.
pub(crate) fn validate(
    claims: Payload,
    header_typ: Option<&str>,
    policy: &ClaimsPolicy,
    expect: TokenKind,
    now: u64,
) -> Result<Principal, Reason> {
    if token_kind(header_typ, &claims)? != expect {
        return Err(Reason::WrongTokenType);
    }
    let now = i128::from(now);
    let leeway = i128::from(policy.leeway);

    let exp = numeric_date(claims.get("exp").ok_or(Reason::MissingClaim)?)?;
    if now >= i128::from(exp) + leeway {
        return Err(Reason::Expired);
    }
    // An `exp` beyond any sane horizon (`1e300`) would make a token that never expires.
    if policy.max_lifetime > 0 && i128::from(exp) > now + i128::from(policy.max_lifetime) {
        return Err(Reason::InvalidClaim);
    }
    if let Some(nbf) = claims.get("nbf")
        && now + leeway < i128::from(numeric_date(nbf)?)
    {
        return Err(Reason::NotYetValid);
    }
    if let Some(iat) = claims.get("iat") {
        numeric_date(iat)?;
    }

    let iss = string_claim(&claims, "iss")?;
    if !policy.issuers.is_empty() {
        let iss = iss.ok_or(Reason::MissingClaim)?;
        if !policy.issuers.iter().any(|i| i == iss) {
            return Err(Reason::WrongIssuer);
        }
    }
    match claims.get("aud") {
        Some(aud) => {
            let auds = string_list(aud)?;
            if !policy.audiences.is_empty()
                && !auds.iter().any(|a| policy.audiences.iter().any(|p| p == a))
            {
                return Err(Reason::WrongAudience);
            }
        }
        None if !policy.audiences.is_empty() => return Err(Reason::MissingClaim),
        None => {}
    }
    for name in policy.required.iter() {
        if !claims.contains_key(name) {
            return Err(Reason::MissingClaim);
        }
    }

    let subject = string_claim(&claims, "sub")?.ok_or(Reason::MissingClaim)?;
    let token_id = string_claim(&claims, "jti")?;
    let tenant = match string_claim(&claims, "tenant")? {
        Some(t) => Some(t),
        None => string_claim(&claims, "tid")?,
    };
    let mut roles: Vec<String> = Vec::new();
    if let Some(v) = claims.get("roles") {
        roles.extend(string_list(v)?.into_iter().map(str::to_owned));
    }
    if let Some(role) = string_claim(&claims, "role")? {
        roles.push(role.to_owned());
    }
    let mut scopes: Vec<String> = Vec::new();
    if let Some(scope) = string_claim(&claims, "scope")? {
        scopes.extend(
            scope
                .split(' ')
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
        );
    }
    if let Some(v) = claims.get("scp") {
        scopes.extend(string_list(v)?.into_iter().map(str::to_owned));
    }

    let mut builder = Principal::builder(subject)
        .roles(roles)
        .scopes(scopes)
        .scheme(Scheme::Jwt)
        .expires_at(u64::try_from(exp).unwrap_or(0));
    if let Some(t) = tenant {
        builder = builder.tenant(t);
    }
    if let Some(j) = token_id {
        builder = builder.token_id(j);
    }
    Ok(builder.raw_claims(claims.json).build())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::json;

    use super::*;

    #[allow(clippy::needless_pass_by_value)] // call sites pass `json!` literals
    fn obj(v: Value) -> Payload {
        Payload::parse(v.to_string().into_bytes()).unwrap()
    }

    fn policy() -> ClaimsPolicy {
        ClaimsPolicy {
            issuers: vec!["iss".to_owned()].into(),
            audiences: vec!["api".to_owned()].into(),
            leeway: 60,
            required: Vec::new().into(),
            max_lifetime: 0,
        }
    }

    fn check(claims: Value, now: u64) -> Result<Principal, Reason> {
        validate(obj(claims), None, &policy(), TokenKind::Access, now)
    }

    #[test]
    fn payloads_with_duplicate_names_anywhere_are_malformed() {
        for doc in [
            r#"{"sub":"a","sub":"b"}"#,
            r#"{"sub":"a","s\u0075b":"b"}"#,
            r#"{"x":{"k":1,"k":2}}"#,
            r#"{"aud":[{"k":1,"k":2}]}"#,
            r#"{"custom":[{"k":1,"k":2}]}"#,
            r#"{"sub":"a"} trailing"#,
            r#"["not", "an", "object"]"#,
        ] {
            assert_eq!(
                Payload::parse(doc.as_bytes().to_vec()).err(),
                Some(Reason::Malformed),
                "{doc}"
            );
        }
        let p =
            Payload::parse(br#"{"sub":"a","x":{"k":[1,{"y":null}]},"exp":5}"#.to_vec()).unwrap();
        assert!(p.contains_key("x") && p.contains_key("exp") && !p.contains_key("k"));
        assert_eq!(p.get("exp"), Some(&Value::from(5)));
    }

    #[test]
    fn exp_boundaries_around_the_leeway() {
        let c = || json!({"sub":"s","iss":"iss","aud":"api","exp":1000});
        assert_eq!(
            check(c(), 1059).map(|p| p.subject().to_owned()),
            Ok("s".to_owned())
        );
        assert_eq!(check(c(), 1060).err(), Some(Reason::Expired));
        let c = || json!({"sub":"s","iss":"iss","aud":"api","exp":5000,"nbf":1000});
        assert_eq!(
            check(c(), 940).map(|p| p.subject().to_owned()),
            Ok("s".to_owned())
        );
        assert_eq!(check(c(), 939).err(), Some(Reason::NotYetValid));
    }

    #[test]
    fn claims_of_the_wrong_type_are_refused() {
        for claims in [
            json!({"sub":"s","iss":"iss","aud":"api","exp":"5000"}),
            json!({"sub":"s","iss":"iss","aud":{"x":1},"exp":5000}),
            json!({"sub":"s","iss":"iss","aud":["api",1],"exp":5000}),
            json!({"sub":1,"iss":"iss","aud":"api","exp":5000}),
            json!({"sub":"s","iss":["iss"],"aud":"api","exp":5000}),
            json!({"sub":"s","iss":"iss","aud":"api","exp":5000,"nbf":"1"}),
            json!({"sub":"s","iss":"iss","aud":"api","exp":5000,"iat":null}),
            json!({"sub":"s","iss":"iss","aud":"api","exp":5000,"roles":{"admin":true}}),
            json!({"sub":"s","iss":"iss","aud":"api","exp":5000,"scope":["a"]}),
        ] {
            assert_eq!(
                check(claims.clone(), 100).err(),
                Some(Reason::InvalidClaim),
                "{claims}"
            );
        }
    }

    #[test]
    fn iss_and_aud_are_required_when_configured() {
        assert_eq!(
            check(json!({"sub":"s","aud":"api","exp":5000}), 100).err(),
            Some(Reason::MissingClaim)
        );
        assert_eq!(
            check(json!({"sub":"s","iss":"iss","exp":5000}), 100).err(),
            Some(Reason::MissingClaim)
        );
        assert_eq!(
            check(json!({"sub":"s","iss":"other","aud":"api","exp":5000}), 100).err(),
            Some(Reason::WrongIssuer)
        );
        assert_eq!(
            check(
                json!({"sub":"s","iss":"iss","aud":["x","y"],"exp":5000}),
                100
            )
            .err(),
            Some(Reason::WrongAudience)
        );
        assert!(
            check(
                json!({"sub":"s","iss":"iss","aud":["x","api"],"exp":5000}),
                100
            )
            .is_ok()
        );
        assert_eq!(
            check(json!({"sub":"s","iss":"iss","aud":"api"}), 100).err(),
            Some(Reason::MissingClaim)
        );
    }

    #[test]
    fn access_and_refresh_tokens_are_not_interchangeable() {
        let refresh = obj(json!({"sub":"s","iss":"iss","aud":"api","exp":5000,"type":"refresh"}));
        let p = policy();
        assert_eq!(
            validate(refresh.clone(), None, &p, TokenKind::Access, 1).err(),
            Some(Reason::WrongTokenType)
        );
        let principal = validate(refresh.clone(), None, &p, TokenKind::Refresh, 1).unwrap();
        assert_eq!(principal.subject(), "s");
        assert_eq!(
            validate(refresh, Some("at+jwt"), &p, TokenKind::Refresh, 1).err(),
            Some(Reason::WrongTokenType)
        );
        let plain = obj(json!({"sub":"s","iss":"iss","aud":"api","exp":5000}));
        let principal = validate(plain.clone(), Some("JWT"), &p, TokenKind::Access, 1).unwrap();
        assert_eq!(principal.subject(), "s");
        assert!(
            validate(
                plain.clone(),
                Some("application/at+jwt"),
                &p,
                TokenKind::Access,
                1
            )
            .is_ok()
        );
        assert_eq!(
            validate(plain.clone(), Some("dpop+jwt"), &p, TokenKind::Access, 1).err(),
            Some(Reason::WrongTokenType)
        );
        assert_eq!(
            validate(plain, Some("refresh+jwt"), &p, TokenKind::Access, 1).err(),
            Some(Reason::WrongTokenType)
        );
    }

    #[test]
    fn standard_claims_become_the_principal() {
        let p = check(
            json!({"sub":"s","iss":"iss","aud":"api","exp":5000.9,"jti":"j","tid":"t",
                   "roles":["a","b"],"role":"c","scope":"x  y","scp":["z"]}),
            100,
        )
        .unwrap();
        assert_eq!(p.subject(), "s");
        assert_eq!(p.roles(), ["a", "b", "c"]);
        assert_eq!(p.scopes(), ["x", "y", "z"]);
        assert_eq!(p.tenant(), Some("t"));
        assert_eq!(p.token_id(), Some("j"));
        assert_eq!(p.expires_at(), Some(5000));
    }
}
