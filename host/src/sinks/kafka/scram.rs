//! The client side of SCRAM-SHA-256/512 (RFC 5802, RFC 7677), as Kafka's SASL uses it: three
//! messages, the last checking the server's signature so a broker that does not know the
//! password cannot pretend to.

use anyhow::{Result, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ring::{digest, hmac, pbkdf2};

/// SHA-256 or SHA-512.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hash {
    Sha256,
    Sha512,
}

impl Hash {
    fn hmac(self) -> hmac::Algorithm {
        match self {
            Hash::Sha256 => hmac::HMAC_SHA256,
            Hash::Sha512 => hmac::HMAC_SHA512,
        }
    }
    fn digest(self) -> &'static digest::Algorithm {
        match self {
            Hash::Sha256 => &digest::SHA256,
            Hash::Sha512 => &digest::SHA512,
        }
    }
    fn pbkdf2(self) -> pbkdf2::Algorithm {
        match self {
            Hash::Sha256 => pbkdf2::PBKDF2_HMAC_SHA256,
            Hash::Sha512 => pbkdf2::PBKDF2_HMAC_SHA512,
        }
    }
    fn len(self) -> usize {
        self.digest().output_len()
    }
}

/// One SCRAM exchange.
pub struct Scram {
    hash: Hash,
    password: String,
    client_first_bare: String,
    nonce: String,
    server_signature: Vec<u8>,
}

impl Scram {
    /// Starts an exchange for `user` with a fresh random nonce.
    pub fn new(hash: Hash, user: &str, password: &str) -> Result<Self> {
        use ring::rand::SecureRandom;
        let mut raw = [0u8; 18];
        ring::rand::SystemRandom::new()
            .fill(&mut raw)
            .map_err(|_| anyhow::anyhow!("no random numbers for the SCRAM nonce"))?;
        Ok(Self::with_nonce(hash, user, password, &B64.encode(raw)))
    }

    fn with_nonce(hash: Hash, user: &str, password: &str, nonce: &str) -> Self {
        let user = user.replace('=', "=3D").replace(',', "=2C");
        Scram {
            hash,
            password: password.to_string(),
            client_first_bare: format!("n={user},r={nonce}"),
            nonce: nonce.to_string(),
            server_signature: Vec::new(),
        }
    }

    /// The client's first message.
    pub fn client_first(&self) -> Vec<u8> {
        format!("n,,{}", self.client_first_bare).into_bytes()
    }

    /// Answers the server's first message with the proof.
    pub fn client_final(&mut self, server_first: &[u8]) -> Result<Vec<u8>> {
        let server_first = std::str::from_utf8(server_first)?;
        let (mut nonce, mut salt, mut iterations) = (None, None, None);
        for attr in server_first.split(',') {
            match attr.split_once('=') {
                Some(("r", v)) => nonce = Some(v),
                Some(("s", v)) => salt = Some(B64.decode(v)?),
                Some(("i", v)) => iterations = Some(v.parse::<u32>()?),
                Some(("e", v)) => bail!("the server refused: {v}"),
                _ => {}
            }
        }
        let (Some(nonce), Some(salt), Some(iterations)) = (nonce, salt, iterations) else {
            bail!("the server's SCRAM message is incomplete: {server_first}");
        };
        if !nonce.starts_with(&self.nonce) {
            bail!("the server's SCRAM nonce does not extend ours");
        }
        let Some(iterations) = std::num::NonZeroU32::new(iterations) else {
            bail!("the server asked for 0 SCRAM iterations");
        };
        let mut salted = vec![0u8; self.hash.len()];
        pbkdf2::derive(
            self.hash.pbkdf2(),
            iterations,
            &salt,
            self.password.as_bytes(),
            &mut salted,
        );
        let salted_key = hmac::Key::new(self.hash.hmac(), &salted);
        let client_key = hmac::sign(&salted_key, b"Client Key");
        let stored_key = digest::digest(self.hash.digest(), client_key.as_ref());
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{},{server_first},{without_proof}", self.client_first_bare);
        let signature = hmac::sign(
            &hmac::Key::new(self.hash.hmac(), stored_key.as_ref()),
            auth_message.as_bytes(),
        );
        let proof: Vec<u8> = client_key
            .as_ref()
            .iter()
            .zip(signature.as_ref())
            .map(|(a, b)| a ^ b)
            .collect();
        let server_key = hmac::sign(&salted_key, b"Server Key");
        self.server_signature = hmac::sign(
            &hmac::Key::new(self.hash.hmac(), server_key.as_ref()),
            auth_message.as_bytes(),
        )
        .as_ref()
        .to_vec();
        Ok(format!("{without_proof},p={}", B64.encode(proof)).into_bytes())
    }

    /// Checks the server's final message.
    pub fn verify(&self, server_final: &[u8]) -> Result<()> {
        let text = std::str::from_utf8(server_final)?;
        match text.split_once('=') {
            Some(("v", sig)) if B64.decode(sig)? == self.server_signature => Ok(()),
            Some(("v", _)) => bail!("the server's SCRAM signature is wrong"),
            Some(("e", e)) => bail!("the server refused: {e}"),
            _ => bail!("unexpected SCRAM message from the server: {text}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The exchange of RFC 7677 section 3.
    #[test]
    fn rfc7677_sha256_example() {
        let mut s = Scram::with_nonce(Hash::Sha256, "user", "pencil", "rOprNGfwEbeRWgbNEkqO");
        assert_eq!(s.client_first(), b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
        let server_first =
            b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
        let client_final = s.client_final(server_first).unwrap();
        assert_eq!(
            String::from_utf8(client_final).unwrap(),
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        s.verify(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
            .unwrap();
        assert!(s.verify(b"v=AAAA").is_err());
    }

    #[test]
    fn a_nonce_the_server_did_not_extend_is_refused() {
        let mut s = Scram::with_nonce(Hash::Sha512, "u", "p", "abc");
        let err = s.client_final(b"r=xyz,s=AAAA,i=4096").unwrap_err();
        assert!(err.to_string().contains("nonce"), "{err}");
    }
}
