//! Verifies the API server's certificate the way kubectl (Go's `crypto/x509`) does, where
//! rustls's WebPKI verifier is stricter than Go:
//!
//! - a certificate of `certificate-authority(-data)` that *is* the presented leaf is trusted as it
//!   is (Go's "the root is the leaf" path; Rancher/RKE2 kubeconfigs pin the serving certificate,
//!   and a self-signed `CA:TRUE` serving certificate is trusted this way), after checking its
//!   validity period, its extended key usage and that it names the server (or `tls-server-name`);
//! - everything else goes through WebPKI: chains through the intermediates the server sends to
//!   any certificate of the bundle, names, validity, key usage.
//!
//! Nothing here accepts what the kubeconfig does not trust: `insecure-skip-tls-verify` stays the
//! only way to skip verification. A refusal is also recorded ([`last_refusal`]) in kubectl's words
//! with the kubeconfig field involved, for the error message.

use std::sync::{Arc, Mutex};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, Error, RootCertStore, SignatureScheme};
use x509_cert::der::Decode as _;

/// Where the trusted certificates came from, for messages: e.g. `certificate-authority-data of
/// cluster "prod" in /home/me/.kube/config`.
#[derive(Debug)]
pub struct GoVerifier {
    roots: Vec<CertificateDer<'static>>,
    webpki: Arc<WebPkiServerVerifier>,
    trust: String,
}

static LAST_REFUSAL: Mutex<Option<String>> = Mutex::new(None);

/// The last certificate this process refused, in kubectl's words with the next step.
pub fn last_refusal() -> Option<String> {
    LAST_REFUSAL
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
}

impl GoVerifier {
    pub fn new(roots: &[Vec<u8>], trust: String) -> Result<Self, String> {
        let roots: Vec<CertificateDer<'static>> = roots
            .iter()
            .map(|der| CertificateDer::from(der.clone()))
            .collect();
        let mut store = RootCertStore::empty();
        for (n, root) in roots.iter().enumerate() {
            store
                .add(root.clone())
                .map_err(|e| format!("certificate {} of the {trust} cannot be used: {e}", n + 1))?;
        }
        let webpki = WebPkiServerVerifier::builder_with_provider(
            Arc::new(store),
            Arc::new(rustls::crypto::ring::default_provider()),
        )
        .build()
        .map_err(|e| format!("the {trust} cannot be used: {e}"))?;
        Ok(GoVerifier {
            roots,
            webpki,
            trust,
        })
    }

    /// The presented leaf is one of the trusted certificates: Go builds the chain `[leaf]` and
    /// still checks its validity period, key usage and name.
    fn verify_pinned(
        &self,
        leaf: &CertificateDer<'_>,
        name: &ServerName<'_>,
        now: UnixTime,
    ) -> Result<(), Error> {
        let cert = x509_cert::Certificate::from_der(leaf.as_ref())
            .map_err(|_| Error::InvalidCertificate(CertificateError::BadEncoding))?;
        let validity = &cert.tbs_certificate.validity;
        let now_secs = now.as_secs();
        let not_before = validity.not_before.to_unix_duration().as_secs();
        let not_after = validity.not_after.to_unix_duration().as_secs();
        if now_secs < not_before {
            return Err(Error::InvalidCertificate(
                CertificateError::NotValidYetContext {
                    time: now,
                    not_before: UnixTime::since_unix_epoch(std::time::Duration::from_secs(
                        not_before,
                    )),
                },
            ));
        }
        if now_secs > not_after {
            return Err(Error::InvalidCertificate(
                CertificateError::ExpiredContext {
                    time: now,
                    not_after: UnixTime::since_unix_epoch(std::time::Duration::from_secs(
                        not_after,
                    )),
                },
            ));
        }
        if !serves_tls(&cert) {
            return Err(Error::InvalidCertificate(CertificateError::InvalidPurpose));
        }
        let parsed = webpki::EndEntityCert::try_from(leaf)
            .map_err(|_| Error::InvalidCertificate(CertificateError::BadEncoding))?;
        parsed
            .verify_is_valid_for_subject_name(name)
            .map_err(|_| Error::InvalidCertificate(CertificateError::NotValidForName))
    }

    fn refuse(&self, err: Error, name: &ServerName<'_>) -> Error {
        let text = explain(&err, name, &self.trust);
        *LAST_REFUSAL.lock().unwrap_or_else(|e| e.into_inner()) = Some(text);
        err
    }
}

/// Go accepts a leaf without the extended key usage extension, or with serverAuth or any.
fn serves_tls(cert: &x509_cert::Certificate) -> bool {
    const EKU: &str = "2.5.29.37";
    const SERVER_AUTH: &str = "1.3.6.1.5.5.7.3.1";
    const ANY: &str = "2.5.29.37.0";
    let Some(extensions) = &cert.tbs_certificate.extensions else {
        return true;
    };
    let Some(eku) = extensions.iter().find(|e| e.extn_id.to_string() == EKU) else {
        return true;
    };
    match x509_cert::ext::pkix::ExtendedKeyUsage::from_der(eku.extn_value.as_bytes()) {
        Ok(usages) => usages.0.iter().any(|oid| {
            let oid = oid.to_string();
            oid == SERVER_AUTH || oid == ANY
        }),
        Err(_) => false,
    }
}

/// A refusal in kubectl's words (`x509: ...`), then what to do, naming the kubeconfig field.
pub fn explain(err: &Error, name: &ServerName<'_>, trust: &str) -> String {
    let name = name.to_str();
    let Error::InvalidCertificate(problem) = err else {
        return format!("{err}");
    };
    match problem {
        CertificateError::UnknownIssuer | CertificateError::BadSignature => format!(
            "x509: certificate signed by unknown authority: no certificate of the {trust} signs the certificate \
             the server presented for {name}; put this cluster's CA (or its serving certificate) there, \
             as `kubectl config view --raw` shows for a context that works"
        ),
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            let presented = match problem {
                CertificateError::NotValidForNameContext { presented, .. }
                    if !presented.is_empty() =>
                {
                    // rustls's names read `DnsName("a")`, `IpAddress(1.2.3.4)`: as Go prints them.
                    let names: Vec<String> = presented
                        .iter()
                        .map(|n| {
                            let inner = n
                                .split_once('(')
                                .and_then(|(_, rest)| rest.strip_suffix(')'))
                                .unwrap_or(n);
                            inner.trim_matches('"').to_string()
                        })
                        .collect();
                    format!("it is valid for {}", names.join(", "))
                }
                _ => "it does not name it".to_string(),
            };
            format!(
                "x509: certificate is not valid for {name} ({presented}); use a name the certificate \
                 has in the cluster's `server`, or set its `tls-server-name`"
            )
        }
        CertificateError::Expired
        | CertificateError::ExpiredContext { .. }
        | CertificateError::NotValidYet
        | CertificateError::NotValidYetContext { .. } => {
            let when = match problem {
                CertificateError::ExpiredContext { time, not_after } => {
                    format!(": current time {} is after {}", iso(time), iso(not_after))
                }
                CertificateError::NotValidYetContext { time, not_before } => {
                    format!(": current time {} is before {}", iso(time), iso(not_before))
                }
                _ => String::new(),
            };
            format!(
                "x509: certificate has expired or is not yet valid{when}; renew the server's certificate, \
                 or check this machine's clock"
            )
        }
        CertificateError::Other(other)
            if matches!(
                other.0.downcast_ref::<webpki::Error>(),
                Some(webpki::Error::CaUsedAsEndEntity)
            ) =>
        {
            format!(
                "x509: the server presented a CA certificate (CA:TRUE) for {name} that is not itself in the \
             {trust}; put that certificate there, or serve a leaf certificate signed by the CA"
            )
        }
        CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
            "x509: certificate specifies an incompatible key usage (not for TLS servers)"
                .to_string()
        }
        other => {
            format!("x509: the server's certificate was refused: {other:?}; check the {trust}")
        }
    }
}

fn iso(time: &UnixTime) -> String {
    jiff::Timestamp::from_second(time.as_secs() as i64)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| time.as_secs().to_string())
}

impl ServerCertVerifier for GoVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        if self
            .roots
            .iter()
            .any(|root| root.as_ref() == end_entity.as_ref())
        {
            return self
                .verify_pinned(end_entity, server_name, now)
                .map(|()| ServerCertVerified::assertion())
                .map_err(|e| self.refuse(e, server_name));
        }
        self.webpki
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
            .map_err(|e| self.refuse(e, server_name))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
        ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
    };

    fn params(names: &[&str], ca: bool) -> CertificateParams {
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, names.first().copied().unwrap_or("a CA"));
        params.distinguished_name = dn;
        if ca {
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.key_usages = vec![
                KeyUsagePurpose::KeyCertSign,
                KeyUsagePurpose::DigitalSignature,
            ];
        } else {
            params.is_ca = IsCa::ExplicitNoCa;
        }
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params
    }

    fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
        CertifiedIssuer::self_signed(params(&[name], true), KeyPair::generate().unwrap()).unwrap()
    }

    fn leaf(names: &[&str], issuer: &CertifiedIssuer<'static, KeyPair>) -> CertificateDer<'static> {
        let key = KeyPair::generate().unwrap();
        params(names, false)
            .signed_by(&key, issuer)
            .unwrap()
            .der()
            .clone()
    }

    fn verify(
        trusted: &[&CertificateDer<'static>],
        presented: &CertificateDer<'static>,
        intermediates: &[CertificateDer<'static>],
        name: &str,
    ) -> Result<(), Error> {
        let roots: Vec<Vec<u8>> = trusted.iter().map(|c| c.to_vec()).collect();
        let verifier =
            GoVerifier::new(&roots, "certificate-authority-data of cluster \"t\"".into()).unwrap();
        verifier
            .verify_server_cert(
                presented,
                intermediates,
                &ServerName::try_from(name.to_string()).unwrap(),
                &[],
                UnixTime::now(),
            )
            .map(|_| ())
    }

    /// The message of a refusal (what `last_refusal` holds after it).
    fn said(err: &Error, name: &str) -> String {
        explain(
            err,
            &ServerName::try_from(name.to_string()).unwrap(),
            "certificate-authority-data of cluster \"t\"",
        )
    }

    #[test]
    fn a_leaf_signed_by_the_trusted_ca_is_accepted_for_its_names_only() {
        let root = ca("root");
        let server = leaf(&["kube.example", "10.0.0.1"], &root);
        assert!(verify(&[root.der()], &server, &[], "kube.example").is_ok());
        assert!(verify(&[root.der()], &server, &[], "10.0.0.1").is_ok());
        let refused = verify(&[root.der()], &server, &[], "other.example").unwrap_err();
        assert!(matches!(
            refused,
            Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. }
            )
        ));
        let said = said(&refused, "other.example");
        assert!(
            said.contains("(it is valid for kube.example, 10.0.0.1)"),
            "{said}"
        );
        assert!(
            said.starts_with("x509: certificate is not valid for other.example"),
            "{said}"
        );
        assert!(said.contains("tls-server-name"), "{said}");
    }

    #[test]
    fn a_trusted_certificate_that_is_the_leaf_is_accepted_as_go_does() {
        // Pinned: the kubeconfig holds the server's own leaf, not its (unknown) CA.
        let hidden = ca("hidden");
        let pinned = leaf(&["pinned.example"], &hidden);
        assert!(verify(&[&pinned], &pinned, &[], "pinned.example").is_ok());
        // ...but only for its own names.
        assert!(verify(&[&pinned], &pinned, &[], "elsewhere.example").is_err());
        // Self-signed with CA:TRUE, as kube-apiserver makes for itself.
        let mut own = params(&["selfsigned.example"], true);
        own.key_usages.push(KeyUsagePurpose::KeyEncipherment);
        let own = own
            .self_signed(&KeyPair::generate().unwrap())
            .unwrap()
            .der()
            .clone();
        assert!(verify(&[&own], &own, &[], "selfsigned.example").is_ok());
        // rustls's verifier alone refuses both.
        let webpki = |trusted: &CertificateDer<'static>, name: &str| {
            let mut store = RootCertStore::empty();
            store.add(trusted.clone()).unwrap();
            WebPkiServerVerifier::builder_with_provider(
                Arc::new(store),
                Arc::new(rustls::crypto::ring::default_provider()),
            )
            .build()
            .unwrap()
            .verify_server_cert(
                trusted,
                &[],
                &ServerName::try_from(name.to_string()).unwrap(),
                &[],
                UnixTime::now(),
            )
            .is_err()
        };
        assert!(webpki(&pinned, "pinned.example"));
        assert!(webpki(&own, "selfsigned.example"));
    }

    #[test]
    fn an_expired_or_client_only_pinned_certificate_is_refused() {
        let hidden = ca("hidden");
        let key = KeyPair::generate().unwrap();
        let mut old = params(&["old.example"], false);
        old.not_before = rcgen::date_time_ymd(2001, 1, 1);
        old.not_after = rcgen::date_time_ymd(2002, 1, 1);
        let old = old.signed_by(&key, &hidden).unwrap().der().clone();
        let refused = verify(&[&old], &old, &[], "old.example").unwrap_err();
        assert!(matches!(
            refused,
            Error::InvalidCertificate(CertificateError::ExpiredContext { .. })
        ));
        let said = said(&refused, "old.example");
        assert!(said.contains("is after 2002-01-01"), "{said}");

        let mut client = params(&["client.example"], false);
        client.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let client = client.signed_by(&key, &hidden).unwrap().der().clone();
        assert!(matches!(
            verify(&[&client], &client, &[], "client.example").unwrap_err(),
            Error::InvalidCertificate(CertificateError::InvalidPurpose)
        ));
    }

    #[test]
    fn a_chain_through_an_intermediate_the_server_sends_is_accepted_and_a_wrong_ca_is_not() {
        let root = ca("root");
        let key = KeyPair::generate().unwrap();
        let intermediate =
            CertifiedIssuer::signed_by(params(&["intermediate"], true), key, &root).unwrap();
        let server = leaf(&["chain.example"], &intermediate);
        assert!(
            verify(
                &[root.der()],
                &server,
                &[intermediate.der().clone()],
                "chain.example"
            )
            .is_ok()
        );
        // Without the intermediate, no chain.
        assert!(verify(&[root.der()], &server, &[], "chain.example").is_err());
        let wrong = ca("wrong");
        let refused = verify(
            &[wrong.der()],
            &server,
            &[intermediate.der().clone()],
            "chain.example",
        )
        .unwrap_err();
        assert!(matches!(
            refused,
            Error::InvalidCertificate(CertificateError::UnknownIssuer)
        ));
        let said = said(&refused, "chain.example");
        assert!(
            said.starts_with("x509: certificate signed by unknown authority"),
            "{said}"
        );
        assert!(
            said.contains("certificate-authority-data of cluster \"t\""),
            "{said}"
        );
    }
}
