//! Keys, each bound to exactly one algorithm.
//!
//! A [`VerifyingKey`] is built for one `alg` and is only ever tried for tokens that name that
//! `alg`: an RSA public key can never be used as an HMAC secret, whatever the token says. Weak keys
//! are refused when the key is built: HMAC secrets shorter than the hash (RFC 7518 §3.2; never
//! under 32 bytes) and RSA moduli under 2048 bits.
//!
//! Key formats (PEM, DER, JWK) are read by `jsonwebtoken`; verification then runs on `aws-lc-rs`
//! (jsonwebtoken's own `aws_lc_rs` backend) with the key parsed once, here, rather than on every
//! token as `jsonwebtoken::decode` does — that is the difference between ~2 µs and ~20 µs per RS256
//! token.

use std::fmt;
use std::sync::Arc;

use aws_lc_rs::{hmac, signature};
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey, DecodingKeyKind, EncodingKey};

use super::ConfigError;

/// The smallest RSA modulus accepted, in bits.
pub const MIN_RSA_BITS: usize = 2048;

/// A public key or shared secret that verifies tokens of one algorithm.
///
/// ```
/// use jsonwebtoken::Algorithm;
/// use protothrive::auth::VerifyingKey;
///
/// let key = VerifyingKey::hmac(Algorithm::HS256, b"0123456789abcdef0123456789abcdef")?
///     .with_kid("v1");
/// assert_eq!(key.algorithm(), Algorithm::HS256);
/// assert_eq!(key.kid(), Some("v1"));
///
/// // Too short for HS256: refused at build time, with a message saying why.
/// let err = VerifyingKey::hmac(Algorithm::HS256, b"short").err().unwrap();
/// assert_eq!(
///     err.message(),
///     "the HS256 secret is 5 bytes; it must be at least 32 bytes of random data (RFC 7518 §3.2)"
/// );
/// // An algorithm of another family: refused.
/// let err = VerifyingKey::hmac(Algorithm::RS256, [0u8; 64]).err().unwrap();
/// assert_eq!(
///     err.message(),
///     "RS256 is not an HMAC algorithm; use VerifyingKey::from_pem or from_jwk for public keys"
/// );
/// # Ok::<(), protothrive::auth::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct VerifyingKey {
    alg: Algorithm,
    kid: Option<Arc<str>>,
    material: Arc<Material>,
}

// Both variants live behind the key's `Arc`, so the size difference costs nothing per clone.
#[allow(clippy::large_enum_variant)]
enum Material {
    Hmac(hmac::Key),
    Public(signature::ParsedPublicKey),
}

fn hmac_algorithm(alg: Algorithm) -> Option<(hmac::Algorithm, usize)> {
    match alg {
        Algorithm::HS256 => Some((hmac::HMAC_SHA256, 32)),
        Algorithm::HS384 => Some((hmac::HMAC_SHA384, 48)),
        Algorithm::HS512 => Some((hmac::HMAC_SHA512, 64)),
        _ => None,
    }
}

fn public_algorithm(alg: Algorithm) -> Option<&'static dyn signature::VerificationAlgorithm> {
    if let Some(rsa) = rsa_params(alg) {
        return Some(rsa);
    }
    Some(match alg {
        Algorithm::ES256 => &signature::ECDSA_P256_SHA256_FIXED,
        Algorithm::ES384 => &signature::ECDSA_P384_SHA384_FIXED,
        Algorithm::EdDSA => &signature::ED25519,
        _ => return None,
    })
}

fn rsa_params(alg: Algorithm) -> Option<&'static signature::RsaParameters> {
    Some(match alg {
        Algorithm::RS256 => &signature::RSA_PKCS1_2048_8192_SHA256,
        Algorithm::RS384 => &signature::RSA_PKCS1_2048_8192_SHA384,
        Algorithm::RS512 => &signature::RSA_PKCS1_2048_8192_SHA512,
        Algorithm::PS256 => &signature::RSA_PSS_2048_8192_SHA256,
        Algorithm::PS384 => &signature::RSA_PSS_2048_8192_SHA384,
        Algorithm::PS512 => &signature::RSA_PSS_2048_8192_SHA512,
        _ => return None,
    })
}

fn is_rsa(alg: Algorithm) -> bool {
    rsa_params(alg).is_some()
}

impl VerifyingKey {
    /// An HMAC secret for `HS256`, `HS384` or `HS512`.
    ///
    /// # Errors
    /// When `alg` is not an HMAC algorithm, or the secret is shorter than the hash output
    /// (32, 48 or 64 bytes; RFC 7518 §3.2).
    pub fn hmac(alg: Algorithm, secret: impl AsRef<[u8]>) -> Result<Self, ConfigError> {
        let secret = secret.as_ref();
        let (algorithm, min) = hmac_algorithm(alg).ok_or_else(|| {
            ConfigError::new(format!(
                "{alg:?} is not an HMAC algorithm; use VerifyingKey::from_pem or from_jwk for public keys"
            ))
        })?;
        if secret.len() < min {
            return Err(ConfigError::new(format!(
                "the {alg:?} secret is {} bytes; it must be at least {min} bytes of random data (RFC 7518 §3.2)",
                secret.len()
            )));
        }
        Ok(Self::new(
            alg,
            Material::Hmac(hmac::Key::new(algorithm, secret)),
        ))
    }

    /// A public key in PEM form (`PUBLIC KEY`, `RSA PUBLIC KEY` or a certificate's key) for an RSA,
    /// ECDSA or EdDSA algorithm.
    ///
    /// # Errors
    /// When the PEM cannot be read, does not fit `alg`, or is an RSA key under 2048 bits.
    pub fn from_pem(alg: Algorithm, pem: impl AsRef<[u8]>) -> Result<Self, ConfigError> {
        let pem = pem.as_ref();
        let decoding = match alg {
            _ if is_rsa(alg) => DecodingKey::from_rsa_pem(pem),
            Algorithm::ES256 | Algorithm::ES384 => DecodingKey::from_ec_pem(pem),
            Algorithm::EdDSA => DecodingKey::from_ed_pem(pem),
            _ => return Err(not_public(alg)),
        }
        .map_err(|e| ConfigError::new(format!("cannot read the {alg:?} PEM key: {e}")))?;
        Self::from_decoding_key(alg, &decoding)
    }

    /// A public key in DER form: PKCS#1 or SubjectPublicKeyInfo for RSA, SubjectPublicKeyInfo or an
    /// uncompressed point for ECDSA, SubjectPublicKeyInfo or the raw 32 bytes for Ed25519.
    ///
    /// # Errors
    /// As [`from_pem`](Self::from_pem).
    pub fn from_der(alg: Algorithm, der: impl AsRef<[u8]>) -> Result<Self, ConfigError> {
        let params = public_algorithm(alg).ok_or_else(|| not_public(alg))?;
        Self::public(alg, params, der.as_ref())
    }

    /// A key from a JSON Web Key (RFC 7517).
    ///
    /// The key's own `alg` is used; when it has none, `default_alg` is (EC and OKP keys imply theirs
    /// from the curve). A key marked `"use": "enc"` is refused.
    ///
    /// # Errors
    /// When the JWK has no usable algorithm, is for encryption, or is malformed or weak.
    pub fn from_jwk(jwk: &Jwk, default_alg: Option<Algorithm>) -> Result<Self, ConfigError> {
        use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, PublicKeyUse};
        if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
            return Err(ConfigError::new("the JWK is an encryption key (use=enc)"));
        }
        let implied = match &jwk.algorithm {
            AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
                EllipticCurve::P256 => Some(Algorithm::ES256),
                EllipticCurve::P384 => Some(Algorithm::ES384),
                _ => None,
            },
            AlgorithmParameters::OctetKeyPair(okp) if okp.curve == EllipticCurve::Ed25519 => {
                Some(Algorithm::EdDSA)
            }
            _ => None,
        };
        let alg = match jwk.common.key_algorithm {
            Some(a) => super::token::parse_alg(&a.to_string()).ok_or_else(|| {
                ConfigError::new(format!("the JWK algorithm {a} is not supported"))
            })?,
            None => implied.or(default_alg).ok_or_else(|| {
                ConfigError::new("the JWK names no `alg` and none can be implied; set a default")
            })?,
        };
        if matches!(jwk.algorithm, AlgorithmParameters::OctetKey(_)) {
            return Err(ConfigError::new(
                "symmetric keys (kty=oct) are not accepted from a JWK; configure HMAC secrets directly",
            ));
        }
        let decoding = DecodingKey::from_jwk(jwk)
            .map_err(|e| ConfigError::new(format!("cannot read the JWK: {e}")))?;
        let key = Self::from_decoding_key(alg, &decoding)?;
        Ok(match &jwk.common.key_id {
            Some(kid) => key.with_kid(kid.as_str()),
            None => key,
        })
    }

    fn from_decoding_key(alg: Algorithm, key: &DecodingKey) -> Result<Self, ConfigError> {
        let params = public_algorithm(alg).ok_or_else(|| not_public(alg))?;
        match key.kind() {
            DecodingKeyKind::SecretOrDer(bytes) => Self::public(alg, params, bytes),
            DecodingKeyKind::RsaModulusExponent { n, e } => {
                check_rsa_bits(bit_length(n))?;
                let rsa = rsa_params(alg).ok_or_else(|| {
                    ConfigError::new(format!("an RSA key cannot verify {alg:?} tokens"))
                })?;
                let parsed = signature::RsaPublicKeyComponents { n, e }
                    .to_parsed_public_key(rsa)
                    .map_err(|e| ConfigError::new(format!("invalid RSA key: {e}")))?;
                Ok(Self::new(alg, Material::Public(parsed)))
            }
        }
    }

    fn public(
        alg: Algorithm,
        params: &'static dyn signature::VerificationAlgorithm,
        bytes: &[u8],
    ) -> Result<Self, ConfigError> {
        if is_rsa(alg) {
            let public = aws_lc_rs::rsa::PublicKey::from_der(bytes)
                .map_err(|e| ConfigError::new(format!("the RSA key is malformed: {e}")))?;
            check_rsa_bits(bit_length(
                public.modulus().big_endian_without_leading_zero(),
            ))?;
        }
        let parsed = signature::ParsedPublicKey::new(params, bytes).map_err(|e| {
            ConfigError::new(format!("the key does not fit {alg:?} or is malformed: {e}"))
        })?;
        Ok(Self::new(alg, Material::Public(parsed)))
    }

    fn new(alg: Algorithm, material: Material) -> Self {
        Self {
            alg,
            kid: None,
            material: Arc::new(material),
        }
    }

    /// Names the key: tokens whose header carries this `kid` are verified with it only.
    #[must_use]
    pub fn with_kid(mut self, kid: impl Into<Arc<str>>) -> Self {
        self.kid = Some(kid.into());
        self
    }

    /// The one algorithm this key verifies.
    #[must_use]
    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    /// The key id, if any.
    #[must_use]
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// Whether `signature` (raw bytes) is valid for `message` under this key. Constant-time for
    /// HMAC.
    #[must_use]
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        match &*self.material {
            Material::Hmac(key) => hmac::verify(key, message, signature).is_ok(),
            Material::Public(key) => key.verify_sig(message, signature).is_ok(),
        }
    }
}

/// The bit length of a big-endian unsigned integer.
fn bit_length(be: &[u8]) -> usize {
    let digits = be.iter().skip_while(|b| **b == 0).count();
    match be.iter().find(|b| **b != 0) {
        Some(first) => (digits - 1) * 8 + (8 - first.leading_zeros() as usize),
        None => 0,
    }
}

fn check_rsa_bits(bits: usize) -> Result<(), ConfigError> {
    if bits < MIN_RSA_BITS {
        return Err(ConfigError::new(format!(
            "the RSA key has {bits} bits; at least {MIN_RSA_BITS} are required"
        )));
    }
    Ok(())
}

fn not_public(alg: Algorithm) -> ConfigError {
    ConfigError::new(format!(
        "{alg:?} is not a public-key algorithm; use VerifyingKey::hmac for shared secrets"
    ))
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("alg", &self.alg)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// A private key or shared secret that signs tokens of one algorithm (see
/// [`TokenIssuer`](super::TokenIssuer)).
///
/// ```
/// use jsonwebtoken::Algorithm;
/// use protothrive::auth::SigningKey;
/// let key = SigningKey::hmac(Algorithm::HS256, [7u8; 32])?;
/// assert_eq!(key.algorithm(), Algorithm::HS256);
/// # Ok::<(), protothrive::auth::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct SigningKey {
    pub(crate) alg: Algorithm,
    pub(crate) kid: Option<String>,
    pub(crate) key: EncodingKey,
}

impl SigningKey {
    /// An HMAC secret, with the same length rules as [`VerifyingKey::hmac`].
    ///
    /// # Errors
    /// When `alg` is not HMAC or the secret is too short.
    pub fn hmac(alg: Algorithm, secret: impl AsRef<[u8]>) -> Result<Self, ConfigError> {
        // Validate exactly as the verifying side does, so a pair is always consistent.
        VerifyingKey::hmac(alg, secret.as_ref())?;
        Ok(Self {
            alg,
            kid: None,
            key: EncodingKey::from_secret(secret.as_ref()),
        })
    }

    /// A private key in PEM form (PKCS#8, or PKCS#1/SEC1) for an RSA, ECDSA or EdDSA algorithm.
    ///
    /// # Errors
    /// When the PEM cannot be read or does not fit `alg`.
    pub fn from_pem(alg: Algorithm, pem: impl AsRef<[u8]>) -> Result<Self, ConfigError> {
        let pem = pem.as_ref();
        let key = match alg {
            _ if is_rsa(alg) => EncodingKey::from_rsa_pem(pem),
            Algorithm::ES256 | Algorithm::ES384 => EncodingKey::from_ec_pem(pem),
            Algorithm::EdDSA => EncodingKey::from_ed_pem(pem),
            _ => return Err(not_public(alg)),
        }
        .map_err(|e| ConfigError::new(format!("cannot read the {alg:?} private key: {e}")))?;
        Ok(Self {
            alg,
            kid: None,
            key,
        })
    }

    /// Names the key; issued tokens carry this `kid`.
    #[must_use]
    pub fn with_kid(mut self, kid: impl Into<String>) -> Self {
        self.kid = Some(kid.into());
        self
    }

    /// The algorithm this key signs with.
    #[must_use]
    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("alg", &self.alg)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}
