//! New secret values: generated from the operating system's CSPRNG, or read from a source the
//! user controls (stdin, a file, an environment variable, a hidden prompt). There is no way to
//! pass a value as a command-line argument, so values never reach argv or shell history.
//!
//! Every buffer holding a value is a `SecretValue`, which zeroizes its memory when dropped and
//! never prints its contents (`Debug` shows only the length and fingerprint).

use std::fmt;
use std::io::Read;
use std::path::Path;

use anyhow::{Context as _, Result, bail, ensure};
use base64::Engine;
use rand::TryRngCore;
use rand::rngs::OsRng;
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, Zeroizing};

/// A secret value: bytes that are wiped from memory when dropped and never displayed.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretValue(Zeroizing<Vec<u8>>);

impl SecretValue {
    pub fn new(bytes: Vec<u8>) -> Self {
        SecretValue(Zeroizing::new(bytes))
    }

    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// First 8 hex digits of the SHA-256 of the value: enough for a person to match it against
    /// a password manager, far too little to recover it.
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.0)
    }

    /// The value in standard base64, as a Secret's `data` holds it (itself zeroized on drop).
    pub fn to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(&*self.0))
    }

    pub fn ends_with_newline(&self) -> bool {
        self.0.last() == Some(&b'\n')
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SecretValue({} bytes, sha256:{})",
            self.len(),
            self.fingerprint()
        )
    }
}

pub fn fingerprint(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest.iter().take(4).map(|b| format!("{b:02x}")).collect()
}

/// The generators `--generate` offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Generator {
    /// Random bytes in standard base64, like `openssl rand -base64 32`.
    Password,
    /// Random bytes as lower-case hex.
    Hex,
    /// URL-safe alphanumeric characters (A-Z, a-z, 0-9).
    Token,
    /// A Fernet key: 32 random bytes in URL-safe base64 (44 characters).
    Fernet,
}

impl Generator {
    /// The default `--length`: bytes for password and hex, characters for token.
    pub fn default_length(self) -> usize {
        match self {
            Generator::Password | Generator::Hex | Generator::Fernet => 32,
            Generator::Token => 40,
        }
    }
}

/// Generates a value; `length` is in bytes of randomness (characters for `token`).
pub fn generate(generator: Generator, length: Option<usize>) -> Result<SecretValue> {
    if generator == Generator::Fernet && length.is_some_and(|l| l != 32) {
        bail!("--length does not apply to --generate fernet: a Fernet key is always 32 bytes");
    }
    let length = length.unwrap_or(generator.default_length());
    ensure!(
        (16..=4096).contains(&length),
        "--length must be between 16 and 4096, not {length}"
    );
    let value = match generator {
        Generator::Password => {
            let bytes = random_bytes(length)?;
            base64::engine::general_purpose::STANDARD
                .encode(&*bytes)
                .into_bytes()
        }
        Generator::Hex => {
            let bytes = random_bytes(length)?;
            bytes
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
                .into_bytes()
        }
        Generator::Fernet => {
            let bytes = random_bytes(32)?;
            base64::engine::general_purpose::URL_SAFE
                .encode(&*bytes)
                .into_bytes()
        }
        Generator::Token => {
            const ALPHABET: &[u8] =
                b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
            let mut out = Vec::with_capacity(length);
            while out.len() < length {
                // Rejection sampling: 62 * 4 = 248, so bytes >= 248 would bias the alphabet.
                for byte in random_bytes(length)?.iter() {
                    if *byte < 248 && out.len() < length {
                        out.push(ALPHABET[(*byte % 62) as usize]);
                    }
                }
            }
            out
        }
    };
    Ok(SecretValue::new(value))
}

fn random_bytes(n: usize) -> Result<Zeroizing<Vec<u8>>> {
    let mut bytes = Zeroizing::new(vec![0u8; n]);
    OsRng
        .try_fill_bytes(&mut bytes)
        .context("the operating system's random number generator failed")?;
    Ok(bytes)
}

/// Strips exactly one trailing newline (`\n` or `\r\n`), as a shell's `echo` or a terminal adds.
pub fn strip_one_newline(mut bytes: Vec<u8>) -> Vec<u8> {
    if bytes.last() == Some(&b'\n') {
        bytes.pop();
        if bytes.last() == Some(&b'\r') {
            bytes.pop();
        }
    }
    bytes
}

/// Reads one value from `reader` (stdin), stripping one trailing newline.
pub fn read_stdin(mut reader: impl Read) -> Result<SecretValue> {
    let mut bytes = Vec::new();
    let read = reader.read_to_end(&mut bytes);
    if let Err(err) = read {
        bytes.zeroize();
        return Err(err).context("cannot read the new value from stdin");
    }
    let value = SecretValue::new(strip_one_newline(bytes));
    ensure!(
        !value.is_empty(),
        "stdin held no value; pipe the new value in, e.g. `pass show db | kubectl rotate ...`"
    );
    Ok(value)
}

/// Reads a value from a file, byte for byte (a certificate's final newline is part of it).
pub fn read_file(path: &Path) -> Result<SecretValue> {
    let bytes = std::fs::read(path)
        .with_context(|| format!("cannot read the new value from {}", path.display()))?;
    let value = SecretValue::new(bytes);
    ensure!(
        !value.is_empty(),
        "{} is empty; it should hold the new value",
        path.display()
    );
    Ok(value)
}

/// Reads a value from an environment variable of this process.
pub fn read_env(var: &str) -> Result<SecretValue> {
    let Some(value) = std::env::var_os(var) else {
        bail!("environment variable {var} is not set; export it with the new value first");
    };
    let value = SecretValue::new(value.into_encoded_bytes());
    ensure!(
        !value.is_empty(),
        "environment variable {var} is empty; it should hold the new value"
    );
    Ok(value)
}

/// Asks for the value twice on the terminal, without echo.
pub fn prompt(key: &str) -> Result<SecretValue> {
    use std::io::IsTerminal;
    ensure!(
        std::io::stdin().is_terminal() && std::io::stderr().is_terminal(),
        "--prompt needs a terminal; use --from-stdin, --from-file or --from-env instead"
    );
    let text = dialoguer::Password::new()
        .with_prompt(format!("New value for {key}"))
        .with_confirmation(
            format!("Repeat the new value for {key}"),
            "the two values differ; try again",
        )
        .interact()
        .context("cannot read the new value from the terminal")?;
    let value = SecretValue::new(text.into_bytes());
    ensure!(!value.is_empty(), "the value is empty");
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(v: &SecretValue) -> String {
        String::from_utf8(v.expose().to_vec()).unwrap()
    }

    #[test]
    fn password_is_32_random_bytes_in_standard_base64() {
        let v = generate(Generator::Password, None).unwrap();
        assert_eq!(v.len(), 44);
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(v.expose())
            .unwrap();
        assert_eq!(decoded.len(), 32);
        let long = generate(Generator::Password, Some(48)).unwrap();
        assert_eq!(
            base64::engine::general_purpose::STANDARD
                .decode(long.expose())
                .unwrap()
                .len(),
            48
        );
    }

    #[test]
    fn hex_has_two_lowercase_hex_digits_per_byte() {
        let v = generate(Generator::Hex, Some(20)).unwrap();
        assert_eq!(v.len(), 40);
        assert!(
            text(&v)
                .chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
    }

    #[test]
    fn token_is_url_safe_alphanumeric_of_the_asked_length() {
        let v = generate(Generator::Token, Some(64)).unwrap();
        assert_eq!(v.len(), 64);
        assert!(text(&v).chars().all(|c| c.is_ascii_alphanumeric()));
        assert_eq!(generate(Generator::Token, None).unwrap().len(), 40);
    }

    #[test]
    fn fernet_key_decodes_to_32_bytes_of_url_safe_base64() {
        for _ in 0..50 {
            let v = generate(Generator::Fernet, None).unwrap();
            assert_eq!(v.len(), 44);
            assert!(!text(&v).contains('+') && !text(&v).contains('/'));
            let decoded = base64::engine::general_purpose::URL_SAFE
                .decode(v.expose())
                .unwrap();
            assert_eq!(decoded.len(), 32);
        }
        assert!(generate(Generator::Fernet, Some(16)).is_err());
    }

    #[test]
    fn two_generated_values_differ() {
        assert_ne!(
            generate(Generator::Password, None).unwrap(),
            generate(Generator::Password, None).unwrap()
        );
    }

    #[test]
    fn lengths_outside_the_sane_range_are_refused() {
        assert!(generate(Generator::Password, Some(4)).is_err());
        assert!(generate(Generator::Hex, Some(100_000)).is_err());
    }

    #[test]
    fn stdin_loses_exactly_one_trailing_newline() {
        assert_eq!(read_stdin(&b"abc\n"[..]).unwrap().expose(), b"abc");
        assert_eq!(read_stdin(&b"abc\r\n"[..]).unwrap().expose(), b"abc");
        assert_eq!(read_stdin(&b"abc\n\n"[..]).unwrap().expose(), b"abc\n");
        assert_eq!(read_stdin(&b"abc"[..]).unwrap().expose(), b"abc");
        assert!(read_stdin(&b"\n"[..]).is_err());
    }

    #[test]
    fn debug_output_never_shows_the_value() {
        let v = SecretValue::new(b"hunter2-hunter2".to_vec());
        let shown = format!("{v:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("15 bytes"));
    }

    #[test]
    fn fingerprint_is_the_first_8_hex_digits_of_sha256() {
        // sha256("abc") = ba7816bf...
        assert_eq!(fingerprint(b"abc"), "ba7816bf");
    }
}
