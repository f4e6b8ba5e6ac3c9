//! Works wherever kubectl works (issue 14): every kubeconfig shape kubectl accepts, through real
//! kubectl, for each verb that talks to the API server; a wrong CA is refused with kubectl's
//! words and the kubeconfig field; proxies from the kubeconfig (`proxy-url`: http, https,
//! socks5) and from the environment (`HTTPS_PROXY`, `NO_PROXY`) are used as kubectl uses them.
//!
//! The shapes are served by the one API server of the run by SNI name (`scripts/cluster.sh`,
//! `make_shapes`); a kubeconfig picks one with `tls-server-name`. The proxy is a real CONNECT and
//! SOCKS5 proxy started here on loopback ([`TunnelProxy`]); it resolves only `kube.rotate.test`
//! (to 127.0.0.1), a name nothing else on the machine resolves, so a request that reached the
//! API server by that name went through it.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context, Result, bail, ensure};
use base64::Engine as _;
use serde_yaml::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::TestFn;
use crate::support::{Run, TestEnv};

pub fn tests() -> Vec<(&'static str, TestFn)> {
    vec![
        (
            "every_verb_connects_with_each_kubeconfig_shape_kubectl_accepts_and_a_wrong_ca_is_refused_clearly",
            every_verb_connects_with_each_kubeconfig_shape_kubectl_accepts_and_a_wrong_ca_is_refused_clearly,
        ),
        (
            "proxies_from_the_kubeconfig_and_the_environment_are_used_as_kubectl_uses_them",
            proxies_from_the_kubeconfig_and_the_environment_are_used_as_kubectl_uses_them,
        ),
        (
            "database_presets_reach_postgres_and_redis_through_a_socks5_and_an_http_proxy",
            database_presets_reach_postgres_and_redis_through_a_socks5_and_an_http_proxy,
        ),
    ]
}

const SECRET: &str = "conn-secret";

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The run's kubeconfig, its directory's `pki/`, and the admin's token.
struct Base {
    doc: Value,
    pki: PathBuf,
    server: String,
    token: String,
}

impl Base {
    fn load(kubeconfig: &Path) -> Result<Base> {
        let doc: Value = serde_yaml::from_str(&std::fs::read_to_string(kubeconfig)?)?;
        let pki = kubeconfig
            .parent()
            .context("the kubeconfig has no directory")?
            .join("pki");
        ensure!(
            pki.join("shapes/selfsigned.crt").exists(),
            "{} has no shapes/ (a control plane started by an older scripts/cluster.sh?)",
            pki.display()
        );
        let server = doc["clusters"][0]["cluster"]["server"]
            .as_str()
            .context("no server")?
            .to_string();
        let token = doc["users"]
            .as_sequence()
            .and_then(|users| users.iter().find(|u| u["name"] == "admin"))
            .and_then(|u| u["user"]["token"].as_str())
            .context("no admin token")?
            .to_string();
        Ok(Base {
            doc,
            pki,
            server,
            token,
        })
    }

    fn pem(&self, name: &str) -> Result<Vec<u8>> {
        std::fs::read(self.pki.join(name)).with_context(|| format!("reading pki/{name}"))
    }

    /// A kubeconfig with one cluster `shape` and one user, both given as YAML mappings.
    fn write(&self, dir: &Path, name: &str, cluster: Value, user: Value) -> Result<PathBuf> {
        let mut doc = self.doc.clone();
        doc["clusters"] = serde_yaml::from_str(&format!("[{{name: {name}}}]"))?;
        doc["clusters"][0]["cluster"] = cluster;
        doc["users"] = serde_yaml::from_str(&format!("[{{name: {name}-user}}]"))?;
        doc["users"][0]["user"] = user;
        doc["contexts"] = serde_yaml::from_str(&format!(
            "[{{name: {name}, context: {{cluster: {name}, user: {name}-user}}}}]"
        ))?;
        doc["current-context"] = name.into();
        let path = dir.join(format!("{name}.kubeconfig"));
        write_private(&path, serde_yaml::to_string(&doc)?.as_bytes())?;
        Ok(path)
    }

    fn cluster(&self, server: &str, fields: &[(&str, Value)]) -> Value {
        let mut cluster = serde_yaml::Mapping::new();
        cluster.insert("server".into(), server.into());
        for (key, value) in fields {
            cluster.insert((*key).into(), value.clone());
        }
        Value::Mapping(cluster)
    }

    fn token_user(&self) -> Value {
        let mut user = serde_yaml::Mapping::new();
        user.insert("token".into(), self.token.clone().into());
        Value::Mapping(user)
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o700)
        .open(path)?;
    file.write_all(bytes)?;
    Ok(())
}

/// The kubeconfig shapes: name, whether kubectl accepts it, the file.
fn shapes(base: &Base, dir: &Path) -> Result<Vec<(&'static str, bool, PathBuf)>> {
    let ca = b64(&base.pem("ca.crt")?);
    let server = base.server.as_str();
    let named = |ca: String, name: &str| {
        base.cluster(
            server,
            &[
                ("certificate-authority-data", ca.into()),
                ("tls-server-name", name.into()),
            ],
        )
    };
    // The exec credential plugin prints the token from a file (not from its own text or argv).
    let token_file = dir.join("token");
    write_private(&token_file, base.token.as_bytes())?;
    let plugin = dir.join("credential-plugin");
    write_private(
        &plugin,
        format!(
            "#!/bin/sh\nprintf '{{\"apiVersion\":\"client.authentication.k8s.io/v1\",\"kind\":\"ExecCredential\",\"status\":{{\"token\":\"%s\"}}}}' \"$(cat '{}')\"\n",
            token_file.display()
        )
        .as_bytes(),
    )?;
    let exec_user: Value = serde_yaml::from_str(&format!(
        "exec: {{apiVersion: client.authentication.k8s.io/v1, command: '{}', interactiveMode: Never}}",
        plugin.display()
    ))?;
    let mut cert_user = serde_yaml::Mapping::new();
    cert_user.insert(
        "client-certificate-data".into(),
        b64(&base.pem("shapes/client.crt")?).into(),
    );
    cert_user.insert(
        "client-key-data".into(),
        b64(&base.pem("shapes/client.key")?).into(),
    );
    let plain = base.cluster(server, &[("certificate-authority-data", ca.clone().into())]);
    Ok(vec![
        (
            "ca-signed-leaf",
            true,
            base.write(dir, "ca-signed-leaf", plain.clone(), base.token_user())?,
        ),
        (
            "self-signed-ca-true",
            true,
            base.write(
                dir,
                "self-signed-ca-true",
                named(
                    b64(&base.pem("shapes/selfsigned.crt")?),
                    "selfsigned.rotate.test",
                ),
                base.token_user(),
            )?,
        ),
        (
            "pinned-leaf",
            true,
            base.write(
                dir,
                "pinned-leaf",
                named(b64(&base.pem("shapes/pinned.crt")?), "pinned.rotate.test"),
                base.token_user(),
            )?,
        ),
        (
            "intermediate-chain",
            true,
            base.write(
                dir,
                "intermediate-chain",
                named(
                    b64(&base.pem("shapes/chain-root.crt")?),
                    "chain.rotate.test",
                ),
                base.token_user(),
            )?,
        ),
        (
            "insecure-skip-tls-verify",
            true,
            base.write(
                dir,
                "insecure-skip-tls-verify",
                base.cluster(server, &[("insecure-skip-tls-verify", true.into())]),
                base.token_user(),
            )?,
        ),
        (
            "client-certificate",
            true,
            base.write(
                dir,
                "client-certificate",
                plain.clone(),
                Value::Mapping(cert_user),
            )?,
        ),
        (
            "exec-credential-plugin",
            true,
            base.write(dir, "exec-credential-plugin", plain, exec_user)?,
        ),
        (
            "wrong-ca",
            false,
            base.write(
                dir,
                "wrong-ca",
                base.cluster(
                    server,
                    &[(
                        "certificate-authority-data",
                        b64(&base.pem("shapes/wrong-ca.crt")?).into(),
                    )],
                ),
                base.token_user(),
            )?,
        ),
        (
            // Signed by the right CA, but not for the name asked: kubectl checks the name.
            "tls-server-name-not-in-the-certificate",
            false,
            base.write(
                dir,
                "tls-server-name-not-in-the-certificate",
                named(ca, "other.rotate.test"),
                base.token_user(),
            )?,
        ),
    ])
}

/// The verbs that talk to the API server, each as `kubectl rotate ...` in `namespace`.
fn verbs(namespace: &str) -> Vec<Vec<String>> {
    let all = [
        vec!["status", SECRET],
        vec![
            "secret",
            SECRET,
            "token",
            "--generate",
            "hex",
            "--restart",
            "none",
            "-y",
        ],
        vec!["verify", SECRET, "token"],
        vec!["backup", SECRET, "--list"],
        vec!["rollback", SECRET, "token", "-y", "--restart", "none"],
    ];
    all.into_iter()
        .map(|args| {
            let mut args: Vec<String> = args.into_iter().map(str::to_string).collect();
            args.insert(0, "rotate".into());
            args.extend(["-n".into(), namespace.into()]);
            args
        })
        .collect()
}

fn run_with(
    env: &TestEnv,
    kubeconfig: &Path,
    args: &[String],
    extra: &[(&str, &str)],
) -> Result<Run> {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let kubeconfig = kubeconfig.to_string_lossy().into_owned();
    let mut envs = vec![("KUBECONFIG", kubeconfig.as_str())];
    envs.extend_from_slice(extra);
    env.kubectl_with(&args, &envs, None)
}

fn seed(env: &TestEnv) -> Result<()> {
    let value = b64(crate::support::random_password().expose());
    env.apply(&format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {SECRET}\ntype: Opaque\ndata:\n  token: {value}\n"
    ))
}

fn every_verb_connects_with_each_kubeconfig_shape_kubectl_accepts_and_a_wrong_ca_is_refused_clearly(
    kubeconfig: &Path,
) -> Result<()> {
    let env = TestEnv::new(kubeconfig, "shapes")?;
    seed(&env)?;
    let base = Base::load(kubeconfig)?;
    let dir = tempfile::tempdir()?;
    let mut seen = BTreeMap::new();
    for (shape, accepted, file) in shapes(&base, dir.path())? {
        // The reference: what kubectl itself does with this kubeconfig.
        let reference = run_with(
            &env,
            &file,
            &[
                "get".into(),
                "secret".into(),
                SECRET.into(),
                "-n".into(),
                env.namespace.clone(),
            ],
            &[],
        )?;
        ensure!(
            (reference.code == Some(0)) == accepted,
            "{shape}: kubectl itself {} this kubeconfig: {}",
            if reference.code == Some(0) {
                "accepts"
            } else {
                "refuses"
            },
            reference.stderr
        );
        for args in verbs(&env.namespace) {
            let run = run_with(&env, &file, &args, &[])?;
            let verb = &args[1];
            if accepted {
                ensure!(
                    run.code == Some(0),
                    "{shape}: `kubectl {}` failed where kubectl works:\n{}{}",
                    args.join(" "),
                    run.stdout,
                    run.stderr
                );
            } else {
                // `verify` exits 2 when its checks could not run (README, exit codes).
                let code = if verb == "verify" { 2 } else { 1 };
                ensure!(
                    run.code == Some(code),
                    "{shape}: `kubectl rotate {verb}` should fail with exit {code}, got {:?}:\n{}{}",
                    run.code,
                    run.stdout,
                    run.stderr
                );
                ensure!(
                    !run.stderr.contains("check that the cluster is running"),
                    "{shape}: {verb}: a TLS refusal blamed on the cluster:\n{}",
                    run.stderr
                );
                let expected: &[&str] = if shape == "wrong-ca" {
                    &[
                        "x509: certificate signed by unknown authority",
                        "certificate-authority-data of cluster \"wrong-ca\"",
                        &base.server,
                    ]
                } else {
                    &[
                        "x509: certificate is not valid for other.rotate.test",
                        "tls-server-name",
                    ]
                };
                for text in expected {
                    ensure!(
                        run.stderr.contains(text),
                        "{shape}: {verb}: the message does not say {text:?}:\n{}",
                        run.stderr
                    );
                }
                seen.insert(shape, run.stderr.lines().next().unwrap_or("").to_string());
            }
        }
    }
    for (shape, first_line) in seen {
        eprintln!("{shape}: {first_line}");
    }
    Ok(())
}

fn proxies_from_the_kubeconfig_and_the_environment_are_used_as_kubectl_uses_them(
    kubeconfig: &Path,
) -> Result<()> {
    let env = TestEnv::new(kubeconfig, "proxies")?;
    seed(&env)?;
    let base = Base::load(kubeconfig)?;
    let dir = tempfile::tempdir()?;
    let port = base
        .server
        .rsplit(':')
        .next()
        .context("no port in the server URL")?
        .to_string();
    // By a name only the proxy resolves.
    let by_name = format!("https://kube.rotate.test:{port}");
    let ca = b64(&base.pem("ca.crt")?);
    let proxy = TunnelProxy::start(Some((&base.pem("serving.crt")?, &base.pem("serving.key")?)))?;
    let status = |namespace: &str| -> Vec<String> {
        ["rotate", "status", SECRET, "-n", namespace]
            .iter()
            .map(|s| s.to_string())
            .collect()
    };
    let get = |namespace: &str| -> Vec<String> {
        ["get", "secret", SECRET, "-n", namespace]
            .iter()
            .map(|s| s.to_string())
            .collect()
    };
    let rotate = |namespace: &str| -> Vec<String> {
        [
            "rotate",
            "secret",
            SECRET,
            "token",
            "--generate",
            "hex",
            "--restart",
            "none",
            "-y",
            "-n",
            namespace,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };

    // proxy-url in the kubeconfig: http (CONNECT), https (TLS to the proxy, verified with the
    // kubeconfig's CA as Go does, then CONNECT) and socks5; with user information for http.
    for (scheme, url) in [
        ("http", format!("http://rotate:proxy-pass@{}", proxy.addr)),
        ("https", format!("https://{}", proxy.addr)),
        ("socks5", format!("socks5://{}", proxy.addr)),
    ] {
        let file = base.write(
            dir.path(),
            &format!("proxy-url-{scheme}"),
            base.cluster(
                &by_name,
                &[
                    ("certificate-authority-data", ca.clone().into()),
                    ("proxy-url", url.clone().into()),
                ],
            ),
            base.token_user(),
        )?;
        let before = proxy.count(scheme);
        run_with(&env, &file, &get(&env.namespace), &[])?
            .success()
            .with_context(|| format!("kubectl itself through the {scheme} proxy"))?;
        let after_kubectl = proxy.count(scheme);
        ensure!(
            after_kubectl > before,
            "kubectl did not use the {scheme} proxy"
        );
        for args in [status(&env.namespace), rotate(&env.namespace)] {
            run_with(&env, &file, &args, &[])?
                .success()
                .with_context(|| {
                    format!("`kubectl {}` with a {scheme} proxy-url", args.join(" "))
                })?;
        }
        ensure!(
            proxy.count(scheme) > after_kubectl,
            "the plugin did not go through the {scheme} proxy ({} tunnels)",
            proxy.count(scheme)
        );
        // The proxy's password is never printed.
        let run = run_with(&env, &file, &status(&env.namespace), &[])?;
        ensure!(!run.stdout.contains("proxy-pass") && !run.stderr.contains("proxy-pass"));
    }
    ensure!(
        proxy.auth_seen() >= 1,
        "the proxy never saw Proxy-Authorization"
    );

    // HTTPS_PROXY from the environment, without a proxy-url.
    let env_file = base.write(
        dir.path(),
        "env-proxy",
        base.cluster(
            &by_name,
            &[("certificate-authority-data", ca.clone().into())],
        ),
        base.token_user(),
    )?;
    let http_proxy = format!("http://{}", proxy.addr);
    let before = proxy.count("http");
    for args in [
        get(&env.namespace),
        status(&env.namespace),
        rotate(&env.namespace),
    ] {
        run_with(&env, &env_file, &args, &[("HTTPS_PROXY", &http_proxy)])?
            .success()
            .with_context(|| format!("`kubectl {}` with HTTPS_PROXY", args.join(" ")))?;
    }
    ensure!(
        proxy.count("http") >= before + 3,
        "HTTPS_PROXY was not used by each command"
    );

    // A proxy that does not exist, while NO_PROXY covers the API server (kube-rs's own client
    // refused every command here: issue 14): the direct connection works, the proxy is never
    // tried. Covered by a CIDR, and by the name list (kubectl never proxies loopback anyway).
    let direct = base.write(
        dir.path(),
        "no-proxy",
        base.cluster(
            &base.server,
            &[("certificate-authority-data", ca.clone().into())],
        ),
        base.token_user(),
    )?;
    let dead = "http://127.0.0.1:9";
    for no_proxy in ["127.0.0.0/8", "localhost,127.0.0.1"] {
        for args in [
            get(&env.namespace),
            status(&env.namespace),
            rotate(&env.namespace),
        ] {
            run_with(
                &env,
                &direct,
                &args,
                &[("HTTPS_PROXY", dead), ("NO_PROXY", no_proxy)],
            )?
            .success()
            .with_context(|| format!("`kubectl {}` with NO_PROXY={no_proxy}", args.join(" ")))?;
        }
    }
    // The same dead proxy for a server by name, not excluded: both fail, and the plugin says
    // which proxy and where it was configured.
    let run = run_with(
        &env,
        &env_file,
        &status(&env.namespace),
        &[("HTTPS_PROXY", dead), ("NO_PROXY", ".example.com")],
    )?;
    run.failure(1)?;
    for text in [
        "through the proxy http://127.0.0.1:9 (HTTPS_PROXY)",
        "NO_PROXY",
    ] {
        ensure!(
            run.stderr.contains(text),
            "the message does not say {text:?}:\n{}",
            run.stderr
        );
    }
    // NO_PROXY naming the server's domain suffix: the plugin connects directly, which fails
    // only because nothing but the proxy resolves kube.rotate.test; it never asks the proxy.
    let tunnels = proxy.total();
    let run = run_with(
        &env,
        &env_file,
        &status(&env.namespace),
        &[("HTTPS_PROXY", &http_proxy), ("NO_PROXY", ".rotate.test")],
    )?;
    run.failure(1)?;
    ensure!(
        proxy.total() == tunnels,
        "NO_PROXY=.rotate.test did not keep the plugin from the proxy"
    );
    ensure!(!run.stderr.contains("through the proxy"), "{}", run.stderr);
    Ok(())
}

/// The PostgreSQL and Redis logins of `verify` go through a port-forward, a WebSocket upgrade
/// of the API server connection: through a SOCKS5 and an HTTP CONNECT proxy too.
fn database_presets_reach_postgres_and_redis_through_a_socks5_and_an_http_proxy(
    kubeconfig: &Path,
) -> Result<()> {
    let env = TestEnv::new(kubeconfig, "dbproxy")?;
    env.create_demo_secrets()?;
    env.apply_demo_stack(&["postgres", "redis"])?;
    env.wait_rolled_out(&["statefulset/postgres", "deployment/redis"])?;
    let base = Base::load(kubeconfig)?;
    let dir = tempfile::tempdir()?;
    let port = base
        .server
        .rsplit(':')
        .next()
        .context("no port")?
        .to_string();
    let ca = b64(&base.pem("ca.crt")?);
    let proxy = TunnelProxy::start(None)?;
    for scheme in ["socks5", "http"] {
        let file = base.write(
            dir.path(),
            &format!("db-{scheme}"),
            base.cluster(
                &format!("https://kube.rotate.test:{port}"),
                &[
                    ("certificate-authority-data", ca.clone().into()),
                    ("proxy-url", format!("{scheme}://{}", proxy.addr).into()),
                ],
            ),
            base.token_user(),
        )?;
        let before = proxy.count(scheme);
        let args: Vec<String> = [
            "rotate",
            "verify",
            "app-secrets",
            "postgres-password",
            "redis-password",
            "-n",
            &env.namespace,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let run = run_with(&env, &file, &args, &[])?;
        run.success()
            .with_context(|| format!("verify through the {scheme} proxy"))?;
        for expected in [
            "accepts ai_agents's login with postgres-password",
            "accepts default's login with redis-password",
        ] {
            ensure!(
                run.stdout.contains(expected),
                "{scheme}: verify does not say {expected:?}:\n{}",
                run.stdout
            );
        }
        ensure!(
            !run.stdout
                .lines()
                .any(|l| l.starts_with("SKIP") && l.contains("login")),
            "{scheme}: a login check was skipped:\n{}",
            run.stdout
        );
        ensure!(
            proxy.count(scheme) > before,
            "{scheme}: the port-forwards did not go through the proxy"
        );
    }
    Ok(())
}

/// A CONNECT (plain or over TLS) and SOCKS5 proxy on loopback that resolves only
/// `kube.rotate.test` and loopback addresses; it counts tunnels per kind.
struct TunnelProxy {
    addr: String,
    counts: Arc<Counts>,
    _runtime: tokio::runtime::Runtime,
}

#[derive(Default)]
struct Counts {
    http: AtomicUsize,
    https: AtomicUsize,
    socks5: AtomicUsize,
    auth: AtomicUsize,
}

impl TunnelProxy {
    fn start(tls: Option<(&[u8], &[u8])>) -> Result<TunnelProxy> {
        let acceptor = match tls {
            Some((cert, key)) => Some(crate::fault_proxy::tls_acceptor(cert, key)?),
            None => None,
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()?;
        let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?.to_string();
        let counts = Arc::new(Counts::default());
        let shared = Arc::clone(&counts);
        runtime.spawn(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            while let Ok((socket, _)) = listener.accept().await {
                let counts = Arc::clone(&shared);
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let _ = serve(socket, acceptor, counts).await;
                });
            }
        });
        Ok(TunnelProxy {
            addr,
            counts,
            _runtime: runtime,
        })
    }

    fn count(&self, kind: &str) -> usize {
        match kind {
            "http" => self.counts.http.load(Ordering::SeqCst),
            "https" => self.counts.https.load(Ordering::SeqCst),
            _ => self.counts.socks5.load(Ordering::SeqCst),
        }
    }

    fn total(&self) -> usize {
        self.count("http") + self.count("https") + self.count("socks5")
    }

    fn auth_seen(&self) -> usize {
        self.counts.auth.load(Ordering::SeqCst)
    }
}

/// Only these names are resolved (to loopback); anything else is refused.
fn resolve(host: &str) -> Result<std::net::IpAddr> {
    match host {
        "kube.rotate.test" | "localhost" => Ok(Ipv4Addr::LOCALHOST.into()),
        other => match other
            .trim_matches(|c| c == '[' || c == ']')
            .parse::<std::net::IpAddr>()
        {
            Ok(ip) if ip.is_loopback() => Ok(ip),
            _ => bail!("the test proxy reaches only loopback, not {other}"),
        },
    }
}

async fn serve(
    socket: tokio::net::TcpStream,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    counts: Arc<Counts>,
) -> Result<()> {
    let mut first = [0u8; 1];
    socket.peek(&mut first).await?;
    match first[0] {
        0x05 => {
            counts.socks5.fetch_add(1, Ordering::SeqCst);
            socks5(socket).await
        }
        0x16 => {
            let acceptor = acceptor.context("TLS to a proxy without a certificate")?;
            let stream = acceptor.accept(socket).await?;
            counts.https.fetch_add(1, Ordering::SeqCst);
            connect(stream, &counts).await
        }
        _ => {
            counts.http.fetch_add(1, Ordering::SeqCst);
            connect(socket, &counts).await
        }
    }
}

/// `CONNECT host:port HTTP/1.1`, then bytes both ways.
async fn connect<S>(mut client: S, counts: &Counts) -> Result<()>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        ensure!(head.len() < 8192, "request head too long");
        let mut byte = [0u8; 1];
        if client.read(&mut byte).await? == 0 {
            bail!("closed before the request ended");
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let mut words = head.split_whitespace();
    let (Some("CONNECT"), Some(target)) = (words.next(), words.next()) else {
        client
            .write_all(b"HTTP/1.1 405 Method Not Allowed\r\n\r\n")
            .await?;
        bail!("not CONNECT");
    };
    if head
        .to_ascii_lowercase()
        .contains("\r\nproxy-authorization: basic ")
    {
        counts.auth.fetch_add(1, Ordering::SeqCst);
    }
    let (host, port) = target.rsplit_once(':').context("no port")?;
    let Ok(ip) = resolve(host) else {
        client.write_all(b"HTTP/1.1 403 Forbidden\r\n\r\n").await?;
        bail!("refused {target}");
    };
    let mut upstream = tokio::net::TcpStream::connect((ip, port.parse::<u16>()?)).await?;
    client
        .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
        .await?;
    tokio::io::copy_bidirectional(&mut client, &mut upstream).await?;
    Ok(())
}

/// SOCKS5 without authentication, CONNECT by domain name or IPv4 address (RFC 1928).
async fn socks5(mut client: tokio::net::TcpStream) -> Result<()> {
    let mut greeting = [0u8; 2];
    client.read_exact(&mut greeting).await?;
    let mut methods = vec![0u8; greeting[1] as usize];
    client.read_exact(&mut methods).await?;
    ensure!(
        methods.contains(&0),
        "the client offers no unauthenticated method"
    );
    client.write_all(&[5, 0]).await?;
    let mut request = [0u8; 4];
    client.read_exact(&mut request).await?;
    ensure!(request[1] == 1, "only CONNECT");
    let host = match request[3] {
        1 => {
            let mut ip = [0u8; 4];
            client.read_exact(&mut ip).await?;
            Ipv4Addr::from(ip).to_string()
        }
        3 => {
            let mut len = [0u8; 1];
            client.read_exact(&mut len).await?;
            let mut name = vec![0u8; len[0] as usize];
            client.read_exact(&mut name).await?;
            String::from_utf8(name)?
        }
        other => bail!("address type {other} not served"),
    };
    let mut port = [0u8; 2];
    client.read_exact(&mut port).await?;
    let reply = |code: u8| [5, code, 0, 1, 0, 0, 0, 0, 0, 0];
    let Ok(ip) = resolve(&host) else {
        client.write_all(&reply(2)).await?;
        bail!("refused {host}");
    };
    let mut upstream = tokio::net::TcpStream::connect((ip, u16::from_be_bytes(port))).await?;
    client.write_all(&reply(0)).await?;
    tokio::io::copy_bidirectional(&mut client, &mut upstream).await?;
    Ok(())
}
