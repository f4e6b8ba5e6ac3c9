#!/usr/bin/env bash
# The project's local control plane for end-to-end tests and the demo: etcd, kube-apiserver,
# kube-controller-manager and the fake kubelet (tools/fake-kubelet) on loopback, all state in
# one directory. A real API server, so RBAC, patches, conflicts and watches behave for real;
# no scheduler or kubelet, so pod status comes from the fake kubelet, which also serves a Node
# (`fake-node`): container logs and the pods' HTTP ports, reached by the API server itself.
# Recipe and flags: /work/shared/docs/TEST-CLUSTER.md.
#
# The pod network: the API server will not proxy to loopback, so node and pod IPs come from
# $CLUSTER_POD_NETWORK (default 198.18.0.0/16, RFC 2544's benchmarking range, used by no real
# network here). Each cluster takes its own /20 of it and puts those addresses, and the pods'
# processes, in a network namespace of its own joined to this machine by a veth pair (needs
# root or CAP_NET_ADMIN; refused when a route or address of the machine overlaps the range).
# `up` makes the namespace, `down` removes it. Details: "the pod network" below.
#
#   scripts/cluster.sh up DIR       start an empty cluster; prints DIR/kubeconfig on stdout
#   scripts/cluster.sh down DIR     stop it (idempotent)
#   scripts/cluster.sh status DIR   exit 0 if every process of the cluster is running
#
# Kubernetes release: the current one (tools/kubernetes/go.mod, 1.37) unless $KUBECTL_ROTATE_K8S
# names another that this repository builds (tools/kubernetes-<minor>/go.mod: 1.34), as
# major.minor; any other value is refused, naming those accepted.
# Binaries: $ETCD, $KUBE_APISERVER, $KUBE_CONTROLLER_MANAGER, $FAKE_KUBELET when set; otherwise
# $KUBEBUILDER_ASSETS/<name> when present; otherwise the builds scripts/provision.sh caches in
# ${KUBECTL_ROTATE_CACHE:-~/.cache/kubectl-rotate}: etcd-current/etcd (go.etcd.io, tools/etcd)
# and k8s-<major.minor>/ for the release; the fake kubelet defaults to target/debug/fake-kubelet
# of this repository. $KUBELET_STREAMS: the fake kubelet's exec/attach/port-forward server
# (tools/kubernetes/kubelet-streams); default: built or found in the cache by
# scripts/kubelet-streams.sh.
# $DEMO_APP: the demo app binary the fake kubelet runs for pods of image
# kubectl-rotate.io/demo-app (its --demo-app); defaults to demo-app next to the fake kubelet's
# binary when that exists, else such pods are simulated like any other. The app processes' files
# (Secret volumes, logs) are under DIR/fake-kubelet/.
# $CLUSTER_UP_TIMEOUT (seconds, default 90) bounds the wait for readiness.
# $CLUSTER_POD_NETWORK (an IPv4 CIDR, /20 or larger) replaces the pod network.
#
# Files in DIR: kubeconfig (contexts `admin`, current, and `nobody`, a user with no rights),
# admin.kubeconfig, env (`export KUBECONFIG=...`), pids (`name pid` lines), logs/<name>.log,
# audit.log (every request at level Metadata, stage RequestReceived omitted; requests made
# through the kubeconfig are user `admin`, the components' are users kube-controller-manager
# and fake-kubelet), pki/shapes/ (the serving-certificate shapes the API server also serves by
# SNI name and a client certificate for admin: make_shapes), and pki/, etcd/, components/
# (internal). `logs/fake-kubelet.log` names the
# node IP, the kubelet endpoint and the cluster's pod IP block; `netns` names the cluster's
# network namespace ("INDEX NAME BLOCK"): `ip netns exec NAME CMD` runs CMD next to the pods.
# Progress goes to stderr; stdout carries only the kubeconfig path.
set -euo pipefail

# Everything in DIR holds keys or tokens: readable by the owner only.
umask 077

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE="${KUBECTL_ROTATE_CACHE:-$HOME/.cache/kubectl-rotate}"
POD_NETWORK="${CLUSTER_POD_NETWORK:-198.18.0.0/16}"

log() { printf 'cluster: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

usage() {
  cat >&2 <<'USAGE'
usage: scripts/cluster.sh up DIR       start a local control plane with its state in DIR
       scripts/cluster.sh down DIR     stop the control plane recorded in DIR/pids
       scripts/cluster.sh status DIR   exit 0 if all its processes are running
USAGE
  exit 2
}

# --- processes ----------------------------------------------------------------------------

# A PID counts as ours only while its command line mentions DIR: after a reboot a stale pids
# file must not make `down` kill an unrelated process that reused the number.
is_ours() {
  local pid=$1 cmdline state
  [ -r "/proc/$pid/cmdline" ] || return 1
  cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
  # A zombie (exited, not yet reaped by init) is not running.
  state=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) || return 1
  [ "$state" != Z ] && [[ "$cmdline" == *"$DIR/"* ]]
}

# Prints "name pid" for each line of DIR/pids.
read_pids() {
  [ -f "$DIR/pids" ] || return 0
  local name pid
  while read -r name pid; do
    if [ -n "${pid:-}" ]; then printf '%s %s\n' "$name" "$pid"; fi
  done <"$DIR/pids"
}

# How stop_all recognises a live process: is_ours normally; during `up` the processes are our
# own children, possibly not yet exec'd, so being alive is enough.
ALIVE=is_ours

# TERM, up to 10 s of grace, then KILL, for a group of PIDs.
stop_group() {
  local pids=() pid
  for pid in "$@"; do
    if "$ALIVE" "$pid"; then
      kill -TERM "$pid" 2>/dev/null || true
      pids+=("$pid")
    fi
  done
  [ "${#pids[@]}" -gt 0 ] || return 0
  for _ in $(seq 1 100); do
    local alive=0
    for pid in "${pids[@]}"; do
      if "$ALIVE" "$pid"; then alive=1; fi
    done
    if [ "$alive" = 0 ]; then break; fi
    sleep 0.1
  done
  for pid in "${pids[@]}"; do
    if "$ALIVE" "$pid"; then
      log "$(grep -m1 " $pid\$" "$DIR/pids" | cut -d' ' -f1) (pid $pid) ignored SIGTERM; killing it"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  done
  # Reap them when they are our own children (a failed `up`), so no zombie is left behind.
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}

# Stops everything but etcd first (in reverse start order), then etcd: an API server whose etcd
# is already gone hangs in shutdown until it is killed.
stop_all() {
  local lines=() rest=() i
  mapfile -t lines < <(read_pids)
  for ((i = ${#lines[@]} - 1; i >= 1; i--)); do rest+=("${lines[i]##* }"); done
  stop_group "${rest[@]}"
  if [ "${#lines[@]}" -gt 0 ]; then stop_group "${lines[0]##* }"; fi
  rm -f "$DIR/pids"
}

# Starts NAME detached (own session, stdio to its log) so it outlives this script and never
# holds the caller's stdout open: `$(cluster.sh up DIR)` returns as soon as `up` does.
start() {
  local name=$1; shift
  setsid "$@" </dev/null >"$DIR/logs/$name.log" 2>&1 &
  printf '%s %s\n' "$name" "$!" >>"$DIR/pids"
}

# --- the pod network: one network namespace per cluster -----------------------------------
#
# Each cluster takes one /20 block of POD_NETWORK (4093 pod IPs) (index N): a network namespace
# kubectl-rotate-N holds its node and pod IPs (local there: `ip route add local BLOCK dev lo`
# inside it) and the processes that stand for its pods (the fake kubelet starts them there); a
# veth pair joins it to this machine (krot-hN here, krot-nN inside). The machine routes BLOCK
# into the pair from a link-local address of its own, 169.254.77.(N+1), the only address the
# namespace has a route to: what runs inside answers the machine and reaches nothing else.
# A block is claimed with an exclusive flock on /tmp/kubectl-rotate-block-N.lock, which the
# fake kubelet inherits and holds while it runs; a namespace left by a cluster that died
# without `down` is replaced when its block is claimed again.

# block_info N: prints "BLOCK NODE_IP COUNT" for the Nth /20 of POD_NETWORK (COUNT: blocks).
block_info() {
  python3 - "$POD_NETWORK" "$1" <<'PY'
import ipaddress, sys
net = ipaddress.ip_network(sys.argv[1], strict=False)
if net.version != 4 or net.prefixlen > 20:
    sys.exit(1)
blocks = list(net.subnets(new_prefix=20))
n = int(sys.argv[2])
block = blocks[min(n, len(blocks) - 1)]
print(block, block.network_address + 1, len(blocks))
PY
}

# Prints the routes of this machine (its addresses included) that overlap POD_NETWORK, other
# than the clusters' own routes into their namespaces (devices krot-h*).
overlapping_routes() {
  ip -4 route show table all | python3 -c '
import ipaddress, sys
net = ipaddress.ip_network(sys.argv[1], strict=False)
types = {"unicast", "local", "broadcast", "multicast", "anycast", "blackhole", "unreachable",
         "prohibit", "throw", "nat"}
for line in sys.stdin:
    words = line.split()
    kind, dest = (words[0], words[1]) if words[0] in types else ("unicast", words[0])
    dev = words[words.index("dev") + 1] if "dev" in words else ""
    if dest == "default" or dev.startswith("krot-h"):
        continue
    if ipaddress.ip_network(dest, strict=False).overlaps(net):
        print(line.strip())
' "$POD_NETWORK"
}

# other_clusters_routes BLOCK N: the routes into other clusters' namespaces (devices krot-hM,
# M != N) that overlap BLOCK; only a cluster made with another block size has such a route.
other_clusters_routes() {
  ip -4 route show | python3 -c '
import ipaddress, sys
block, own = ipaddress.ip_network(sys.argv[1]), "krot-h" + sys.argv[2]
for line in sys.stdin:
    words = line.split()
    dev = words[words.index("dev") + 1] if "dev" in words else ""
    if dev.startswith("krot-h") and dev != own and ipaddress.ip_network(words[0], strict=False).overlaps(block):
        print(line.strip())
' "$1" "$2"
}

block_lock() { printf '/tmp/kubectl-rotate-block-%s.lock' "$1"; }

# Claims a free block: sets BLOCK_INDEX, BLOCK and BLOCK_LOCK_FD (an fd holding the
# block's exclusive lock, for the fake kubelet to inherit).
claim_block() {
  local info count n fd
  info=$(block_info 0) || die "CLUSTER_POD_NETWORK=$POD_NETWORK is not an IPv4 network of /20 or larger"
  count=${info##* }
  for ((n = 0; n < count; n++)); do
    (umask 022 && : >>"$(block_lock "$n")")
    exec {fd}<"$(block_lock "$n")"
    if flock -xn "$fd"; then
      read -r BLOCK _ _ <<<"$(block_info "$n")"
      if [ -n "$(other_clusters_routes "$BLOCK" "$n")" ]; then
        exec {fd}<&- # a cluster of another block size (an older checkout: /22) has part of it
        continue
      fi
      BLOCK_INDEX=$n
      BLOCK_LOCK_FD=$fd
      return 0
    fi
    exec {fd}<&-
  done
  die "every /20 block of $POD_NETWORK is in use by a running cluster ($count clusters)"
}

# Makes the namespace of the claimed block (replacing a stale one) and records it in DIR/netns.
make_netns() {
  local ns=kubectl-rotate-$BLOCK_INDEX host=krot-h$BLOCK_INDEX inner=krot-n$BLOCK_INDEX
  local gw=169.254.77.$((BLOCK_INDEX + 1)) overlap err
  overlap=$(overlapping_routes) || die "CLUSTER_POD_NETWORK=$POD_NETWORK is not an IPv4 network"
  if [ -n "$overlap" ]; then
    die "the pod network $POD_NETWORK overlaps this machine's route(s): $overlap; set CLUSTER_POD_NETWORK to an unused IPv4 range (/20 or larger)"
  fi
  ip netns del "$ns" 2>/dev/null || true
  ip link del "$host" 2>/dev/null || true
  if ! err=$( {
    ip netns add "$ns" &&
      ip link add "$host" type veth peer name "$inner" netns "$ns" &&
      ip addr add "$gw/32" dev "$host" &&
      ip link set "$host" up &&
      ip -n "$ns" link set lo up &&
      ip -n "$ns" link set "$inner" up &&
      ip -n "$ns" route add local "$BLOCK" dev lo &&
      ip -n "$ns" route add "$gw/32" dev "$inner" &&
      ip route add "$BLOCK" dev "$host" src "$gw"
  } 2>&1); then
    ip netns del "$ns" 2>/dev/null || true
    die "cannot make the network namespace $ns for $BLOCK ($err); this needs root (CAP_NET_ADMIN)"
  fi
  printf '%s %s %s\n' "$BLOCK_INDEX" "$ns" "$BLOCK" >"$DIR/netns"
  log "pod network $BLOCK in network namespace $ns (from this machine: route via $host)"
}

# Removes DIR's namespace, unless its block was claimed again by a running cluster.
remove_netns() {
  [ -s "$DIR/netns" ] || return 0
  local n ns fd
  read -r n ns _ <"$DIR/netns"
  if [ -e "$(block_lock "$n")" ]; then
    exec {fd}<"$(block_lock "$n")"
    if ! flock -xn "$fd"; then
      exec {fd}<&-
      rm -f "$DIR/netns"
      return 0
    fi
  fi
  ip netns del "$ns" 2>/dev/null || true
  ip link del "krot-h$n" 2>/dev/null || true
  [ -n "${fd:-}" ] && exec {fd}<&-
  rm -f "$DIR/netns"
}

# --- binaries -----------------------------------------------------------------------------

declare -A BIN
MISSING=()

# The Kubernetes releases this repository builds, as "major.minor module-directory" lines, the
# current one (tools/kubernetes) first.
k8s_releases() {
  local module version minor
  for module in "$REPO_ROOT/tools/kubernetes" "$REPO_ROOT"/tools/kubernetes-*; do
    [ -f "$module/go.mod" ] || continue
    version=$(awk '($1 == "require" && $2 == "k8s.io/kubernetes") || ($1 == "k8s.io/kubernetes" && NF >= 2 && $2 != "=>") {print ($1 == "require" ? $3 : $2); exit}' "$module/go.mod")
    minor=${version#v}; minor=${minor%.*}
    printf '%s %s\n' "$minor" "$module"
  done
}

# Sets K8S_RELEASE (major.minor) from $KUBECTL_ROTATE_K8S, or the current release by default.
select_release() {
  local releases
  mapfile -t releases < <(k8s_releases | cut -d' ' -f1)
  [ "${#releases[@]}" -gt 0 ] || die "no tools/kubernetes*/go.mod in $REPO_ROOT"
  K8S_RELEASE=${KUBECTL_ROTATE_K8S:-${releases[0]}}
  local r accepted="${releases[0]} (the default)"
  for r in "${releases[@]}"; do [ "$r" = "$K8S_RELEASE" ] && return 0; done
  for r in "${releases[@]:1}"; do accepted+=", $r"; done
  die "KUBECTL_ROTATE_K8S=$KUBECTL_ROTATE_K8S is not a Kubernetes release this repository builds; accepted: $accepted"
}

# resolve_bin VAR NAME: sets BIN[NAME] to the binary's path, or records NAME as missing.
resolve_bin() {
  local var=$1 name=$2 explicit=${!1:-} cached
  if [ "$name" = etcd ]; then cached=$CACHE/etcd-current; else cached=$CACHE/k8s-$K8S_RELEASE; fi
  if [ -n "$explicit" ]; then
    [ -x "$explicit" ] && { BIN[$name]=$explicit; return; }
    MISSING+=("$name: \$$var=$explicit is not an executable file")
  elif [ "$name" = fake-kubelet ]; then
    [ -x "$REPO_ROOT/target/debug/fake-kubelet" ] && { BIN[$name]=$REPO_ROOT/target/debug/fake-kubelet; return; }
    MISSING+=("fake-kubelet: $REPO_ROOT/target/debug/fake-kubelet is not built (run: cargo build -p fake-kubelet)")
  elif [ -n "${KUBEBUILDER_ASSETS:-}" ] && [ -x "$KUBEBUILDER_ASSETS/$name" ]; then
    BIN[$name]=$KUBEBUILDER_ASSETS/$name
  elif [ -x "$cached/$name" ]; then
    BIN[$name]=$cached/$name
  else
    MISSING+=("$name: not in \$KUBEBUILDER_ASSETS or $cached (run: scripts/provision.sh)")
  fi
}

# --- up -----------------------------------------------------------------------------------

# The controllers kube-controller-manager runs: those that make the objects the plugin reads and
# restarts behave as on a real cluster (names as in `kube-controller-manager --help`, 1.34 and
# 1.37). Not run: the node lifecycle and taint eviction controllers (the fake kubelet is the only
# node), the scheduler's (pods name their node: the fake kubelet binds them), volumes, quotas,
# certificates, disruption budgets and the rest, which nothing here uses.
CONTROLLERS=(
  deployment-controller replicaset-controller statefulset-controller daemonset-controller
  # CronJobs start Jobs, Jobs start pods; finished Jobs with a ttlSecondsAfterFinished go.
  cronjob-controller job-controller ttl-after-finished-controller
  # Services: EndpointSlices (what current clients read, kube-apiserver's Service proxy among
  # them), the Endpoints they replace (still served; the plugin falls back to them), and slices
  # for Endpoints written by hand (the mirroring controller).
  endpointslice-controller endpoints-controller endpointslice-mirroring-controller
  # No metrics API here (no metrics-server), so an HPA never scales on its metrics (it reports
  # ScalingActive=False, FailedGetResourceMetric). It still does what the plugin must not fight:
  # holds the workload's replicas within minReplicas..maxReplicas, and leaves alone one scaled to
  # zero (autoscaling off until it is scaled up again).
  horizontal-pod-autoscaler-controller
  garbage-collector-controller namespace-controller
  # Every namespace's `default` ServiceAccount, token Secrets, and the kube-root-ca.crt
  # ConfigMap that projected service account token volumes read.
  serviceaccount-controller serviceaccount-token-controller root-ca-certificate-publisher-controller
  # Taints a Node whose kubelet stops renewing its Lease (the fake kubelet renews fake-node's).
  node-lifecycle-controller
)

free_ports() {
  # Bind all at once so the kernel hands out distinct ports; they are released on exit and
  # taken by our processes a moment later (a tiny race, acceptable for tests).
  python3 - "$1" <<'PY'
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
PY
}

make_pki() {
  local pki=$DIR/pki
  mkdir -p "$pki"
  {
    # The main shape: a CA plus a leaf it signs (kube.rotate.test: the name the proxy tests
    # reach the server by; only their proxy resolves it). Other shapes: make_shapes.
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=kubectl-rotate local CA" \
      -keyout "$pki/ca.key" -out "$pki/ca.crt" \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
    openssl req -new -newkey rsa:2048 -nodes -subj "/CN=kube-apiserver" \
      -keyout "$pki/serving.key" -out "$pki/serving.csr"
    printf '%s\n' "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kube.rotate.test" "basicConstraints=critical,CA:FALSE" \
      "keyUsage=critical,digitalSignature,keyEncipherment" "extendedKeyUsage=serverAuth" >"$pki/serving.ext"
    openssl x509 -req -days 3650 -in "$pki/serving.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" \
      -CAcreateserial -extfile "$pki/serving.ext" -out "$pki/serving.crt"
    # The fake kubelet's serving certificate. The API server does not check it (no
    # --kubelet-certificate-authority), as with kubeadm's self-signed kubelet certificates.
    openssl req -new -newkey rsa:2048 -nodes -subj "/CN=fake-node" \
      -keyout "$pki/kubelet.key" -out "$pki/kubelet.csr"
    printf '%s\n' "subjectAltName=DNS:fake-node" "basicConstraints=critical,CA:FALSE" \
      "keyUsage=critical,digitalSignature,keyEncipherment" "extendedKeyUsage=serverAuth" >"$pki/kubelet.ext"
    openssl x509 -req -days 3650 -in "$pki/kubelet.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" \
      -CAcreateserial -extfile "$pki/kubelet.ext" -out "$pki/kubelet.crt"
    openssl genrsa -out "$pki/sa.key" 2048
    openssl rsa -in "$pki/sa.key" -pubout -out "$pki/sa.pub"
    make_shapes "$pki"
  } >"$pki/openssl.log" 2>&1 || { cat "$pki/openssl.log" >&2; die "generating certificates with openssl failed"; }
}

# make_shapes PKI: the other serving-certificate shapes kubeconfigs meet, served by the one API
# server by SNI name (--tls-sni-cert-key; a kubeconfig picks one with tls-server-name), and a
# client certificate for user admin (--client-ca-file). In PKI/shapes:
#   selfsigned.rotate.test  one self-signed certificate with CA:TRUE (what kube-apiserver makes
#                           for itself without --tls-cert-file); trusted as itself
#   pinned.rotate.test      a leaf signed by a CA no kubeconfig has (pinned-ca); trusted as itself
#                           (the certificate-authority-data of Rancher/RKE2 kubeconfigs)
#   chain.rotate.test       a leaf signed by an intermediate the server sends, under chain-root
#   wrong-ca.crt            a CA that signs nothing here
make_shapes() {
  local pki=$1 shapes=$1/shapes
  mkdir -p "$shapes"
  leaf_ext() { printf '%s\n' "subjectAltName=DNS:$1" "basicConstraints=critical,CA:FALSE" \
    "keyUsage=critical,digitalSignature,keyEncipherment" "extendedKeyUsage=${2:-serverAuth}"; }
  ca() { # NAME SUBJECT
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=$2" \
      -keyout "$shapes/$1.key" -out "$shapes/$1.crt" \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
  }
  signed() { # NAME CN ISSUER EXTFILE
    openssl req -new -newkey rsa:2048 -nodes -subj "/CN=$2" -keyout "$shapes/$1.key" -out "$shapes/$1.csr"
    openssl x509 -req -days 3650 -in "$shapes/$1.csr" -CA "$3.crt" -CAkey "$3.key" \
      -CAcreateserial -extfile "$4" -out "$shapes/$1.crt"
  }
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=selfsigned.rotate.test" \
    -keyout "$shapes/selfsigned.key" -out "$shapes/selfsigned.crt" \
    -addext "subjectAltName=DNS:selfsigned.rotate.test" -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,digitalSignature,keyEncipherment,keyCertSign" -addext "extendedKeyUsage=serverAuth"
  ca pinned-ca "pinned leaf's CA (in no kubeconfig)"
  leaf_ext pinned.rotate.test >"$shapes/pinned.ext"
  signed pinned pinned.rotate.test "$shapes/pinned-ca" "$shapes/pinned.ext"
  ca chain-root "chain root CA"
  printf '%s\n' "basicConstraints=critical,CA:TRUE,pathlen:0" "keyUsage=critical,keyCertSign,cRLSign" >"$shapes/intermediate.ext"
  signed intermediate "chain intermediate CA" "$shapes/chain-root" "$shapes/intermediate.ext"
  leaf_ext chain.rotate.test >"$shapes/chain.ext"
  signed chain-leaf chain.rotate.test "$shapes/intermediate" "$shapes/chain.ext"
  cat "$shapes/chain-leaf.crt" "$shapes/intermediate.crt" >"$shapes/chain.crt"
  cp "$shapes/chain-leaf.key" "$shapes/chain.key"
  ca wrong-ca "a CA that signs nothing here"
  # Client certificate: user admin in system:masters, as its token says.
  printf '%s\n' "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment" \
    "extendedKeyUsage=clientAuth" >"$shapes/client.ext"
  openssl req -new -newkey rsa:2048 -nodes -subj "/O=system:masters/CN=admin" \
    -keyout "$shapes/client.key" -out "$shapes/client.csr"
  openssl x509 -req -days 3650 -in "$shapes/client.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" \
    -CAcreateserial -extfile "$shapes/client.ext" -out "$shapes/client.crt"
  rm -f "$shapes"/*.csr "$shapes"/*.srl
}

# write_kubeconfig FILE USER... : a kubeconfig for the given users (a context per user; the
# first is current). Tokens come from TOKENS[user].
write_kubeconfig() {
  local file=$1; shift
  local user
  {
    echo "apiVersion: v1"
    echo "kind: Config"
    echo "clusters:"
    echo "- name: local"
    echo "  cluster:"
    echo "    server: https://127.0.0.1:$APISERVER_PORT"
    echo "    certificate-authority-data: $(base64 -w0 "$DIR/pki/ca.crt")"
    echo "users:"
    for user in "$@"; do
      printf -- '- name: %s\n  user:\n    token: %s\n' "$user" "${TOKENS[$user]}"
    done
    echo "contexts:"
    for user in "$@"; do
      printf -- '- name: %s\n  context:\n    cluster: local\n    user: %s\n' "$user" "$user"
    done
    echo "current-context: $1"
  } >"$file.tmp"
  mv "$file.tmp" "$file"
}

api_get() { # PATH: succeeds when the API answers 2xx to the admin
  curl -fsS --max-time 2 --cacert "$DIR/pki/ca.crt" -H "@$DIR/pki/admin.header" \
    "https://127.0.0.1:$APISERVER_PORT$1"
}
apiserver_ready() { [ "$(api_get /readyz)" = ok ]; }
etcd_healthy() { curl -fsS --max-time 2 "http://127.0.0.1:$ETCD_PORT/health" | grep -q '"health":"true"'; }

# Our own child is running: `kill -0` alone would also accept a zombie.
is_running() {
  kill -0 "$1" 2>/dev/null && [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ]
}

# wait_for WHAT LOGNAME CMD...: polls CMD until it succeeds, failing early if a process died.
wait_for() {
  local what=$1 name=$2; shift 2
  until "$@" >/dev/null 2>&1; do
    local n p
    while read -r n p; do
      is_running "$p" || fail_with_log "$n" "$n exited while waiting for $what"
    done < <(read_pids)
    [ "$SECONDS" -lt "$DEADLINE" ] || fail_with_log "$name" "timed out after ${UP_TIMEOUT}s waiting for $what"
    sleep 0.2
  done
}

fail_with_log() {
  log "error: $2; last lines of $DIR/logs/$1.log:"
  if [ -s "$DIR/logs/$1.log" ]; then
    tail -n 25 "$DIR/logs/$1.log" | sed 's/^/    /' >&2
  else
    log "    (the log is empty)"
  fi
  exit 1
}

cmd_up() {
  select_release
  resolve_bin ETCD etcd
  resolve_bin KUBE_APISERVER kube-apiserver
  resolve_bin KUBE_CONTROLLER_MANAGER kube-controller-manager
  resolve_bin FAKE_KUBELET fake-kubelet
  if [ -n "${KUBELET_STREAMS:-}" ]; then
    resolve_bin KUBELET_STREAMS kubelet-streams
  elif ! BIN[kubelet-streams]=$("$REPO_ROOT/scripts/kubelet-streams.sh"); then
    MISSING+=("kubelet-streams: scripts/kubelet-streams.sh could not build it (run: scripts/provision.sh)")
  fi
  if [ "${#MISSING[@]}" -gt 0 ]; then
    log "error: missing control-plane binaries:"
    printf '    %s\n' "${MISSING[@]}" >&2
    exit 1
  fi
  for tool in openssl curl python3 ip flock; do
    command -v "$tool" >/dev/null || die "$tool is required (run: scripts/provision.sh)"
  done

  mkdir -p "$DIR"
  DIR=$(cd "$DIR" && pwd)
  # Others may pass through DIR, not list it: the demo's PostgreSQL drops root and must reach
  # its data under DIR/fake-kubelet (everything else in DIR stays private: see umask above).
  chmod 711 "$DIR"
  local n p
  while read -r n p; do
    if is_ours "$p"; then
      die "a cluster is already running in $DIR ($n, pid $p); run: scripts/cluster.sh down $DIR"
    fi
  done < <(read_pids)
  remove_netns # a previous cluster's in DIR, if it died without `down`
  # Always an empty cluster: old etcd data would carry tokens signed by the previous keys.
  # (and the fake kubelet's state: a StatefulSet's data there belongs to the old cluster)
  rm -rf "$DIR/etcd" "$DIR/pki" "$DIR/logs" "$DIR/components" "$DIR/fake-kubelet"
  rm -f "$DIR/pids" "$DIR/kubeconfig" "$DIR/admin.kubeconfig" "$DIR/env" "$DIR/audit.log"
  mkdir -p "$DIR/logs" "$DIR/components"

  # From here on, any failure (or Ctrl-C) stops whatever was started.
  ALIVE=is_running
  trap 'rc=$?; if [ "$rc" != 0 ]; then log "stopping what was started"; stop_all; remove_netns; fi' EXIT
  trap 'exit 130' INT TERM

  UP_TIMEOUT=${CLUSTER_UP_TIMEOUT:-90}
  DEADLINE=$((SECONDS + UP_TIMEOUT))
  local started=$SECONDS etcd_port peer_port
  read -r etcd_port peer_port APISERVER_PORT <<<"$(free_ports 3)"
  [ -n "$APISERVER_PORT" ] || die "could not pick free loopback ports with python3"

  log "generating certificates and tokens in $DIR/pki"
  make_pki
  declare -gA TOKENS
  # The components get their own users (all system:masters) so the audit log tells the
  # plugin's requests (user admin) apart from the background traffic.
  for user in admin nobody kube-controller-manager fake-kubelet; do
    TOKENS[$user]=$(openssl rand -hex 24)
  done
  {
    printf '%s,admin,uid-admin,"system:masters"\n' "${TOKENS[admin]}"
    printf '%s,nobody,uid-nobody\n' "${TOKENS[nobody]}"
    printf '%s,kube-controller-manager,uid-kcm,"system:masters"\n' "${TOKENS[kube-controller-manager]}"
    printf '%s,fake-kubelet,uid-fake-kubelet,"system:masters"\n' "${TOKENS[fake-kubelet]}"
  } >"$DIR/pki/tokens.csv"
  # curl reads the header from a file so the token never appears in a process listing.
  printf 'Authorization: Bearer %s\n' "${TOKENS[admin]}" >"$DIR/pki/admin.header"
  # Without the RequestReceived stage each request is one audit line (watches add a
  # ResponseStarted line), so counting requests is counting lines.
  printf '%s\n' "apiVersion: audit.k8s.io/v1" "kind: Policy" "omitStages: [RequestReceived]" \
    "rules:" "- level: Metadata" >"$DIR/pki/audit-policy.yaml"

  log "starting etcd on 127.0.0.1:$etcd_port"
  start etcd "${BIN[etcd]}" --name local --data-dir "$DIR/etcd" \
    --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
    --listen-peer-urls "http://127.0.0.1:$peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
    --initial-cluster "local=http://127.0.0.1:$peer_port"
  ETCD_PORT=$etcd_port
  wait_for "etcd to be healthy" etcd etcd_healthy

  log "starting $("${BIN[kube-apiserver]}" --version | sed 's/^Kubernetes /kube-apiserver /') on https://127.0.0.1:$APISERVER_PORT"
  # --endpoint-reconciler-type=none: the `kubernetes` Service's endpoints are not kept, which
  # nothing here reads; current releases (seen: 1.37) refuse to reconcile a loopback
  # --advertise-address and exit.
  start kube-apiserver "${BIN[kube-apiserver]}" \
    --etcd-servers="http://127.0.0.1:$etcd_port" --secure-port="$APISERVER_PORT" \
    --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --endpoint-reconciler-type=none \
    --tls-cert-file="$DIR/pki/serving.crt" --tls-private-key-file="$DIR/pki/serving.key" \
    --tls-sni-cert-key="$DIR/pki/shapes/selfsigned.crt,$DIR/pki/shapes/selfsigned.key:selfsigned.rotate.test" \
    --tls-sni-cert-key="$DIR/pki/shapes/pinned.crt,$DIR/pki/shapes/pinned.key:pinned.rotate.test" \
    --tls-sni-cert-key="$DIR/pki/shapes/chain.crt,$DIR/pki/shapes/chain.key:chain.rotate.test" \
    --client-ca-file="$DIR/pki/ca.crt" \
    --token-auth-file="$DIR/pki/tokens.csv" --authorization-mode=RBAC \
    --service-account-key-file="$DIR/pki/sa.pub" --service-account-signing-key-file="$DIR/pki/sa.key" \
    --service-account-issuer=https://kubernetes.default.svc --service-cluster-ip-range=10.96.0.0/16 \
    --disable-admission-plugins=ServiceAccount --kubelet-preferred-address-types=InternalIP \
    --audit-policy-file="$DIR/pki/audit-policy.yaml" --audit-log-path="$DIR/audit.log"
  wait_for "kube-apiserver /readyz" kube-apiserver apiserver_ready

  write_kubeconfig "$DIR/components/kube-controller-manager.kubeconfig" kube-controller-manager
  write_kubeconfig "$DIR/components/fake-kubelet.kubeconfig" fake-kubelet
  log "starting kube-controller-manager and fake-kubelet"
  start kube-controller-manager "${BIN[kube-controller-manager]}" \
    --kubeconfig="$DIR/components/kube-controller-manager.kubeconfig" \
    --service-account-private-key-file="$DIR/pki/sa.key" --root-ca-file="$DIR/pki/ca.crt" \
    --controllers="$(IFS=,; echo "${CONTROLLERS[*]}")" \
    --leader-elect=false --bind-address=127.0.0.1 --secure-port=0
  # The fake kubelet inherits the block's exclusive lock and holds it while it runs.
  claim_block
  make_netns
  local demo_app=${DEMO_APP:-$(dirname "${BIN[fake-kubelet]}")/demo-app} app_args=()
  if [ -n "${DEMO_APP:-}" ] && [ ! -x "$DEMO_APP" ]; then
    die "\$DEMO_APP=$DEMO_APP is not an executable file"
  fi
  [ -x "$demo_app" ] && app_args=(--demo-app "$demo_app")
  start fake-kubelet "${BIN[fake-kubelet]}" --kubeconfig "$DIR/components/fake-kubelet.kubeconfig" \
    --pod-network "$BLOCK" --netns "/var/run/netns/kubectl-rotate-$BLOCK_INDEX" --node-name fake-node \
    --tls-cert-file "$DIR/pki/kubelet.crt" --tls-private-key-file "$DIR/pki/kubelet.key" \
    --state-dir "$DIR/fake-kubelet" --kubelet-streams "${BIN[kubelet-streams]}" "${app_args[@]}"
  exec {BLOCK_LOCK_FD}<&-
  # The controllers are working once the serviceaccount controller has filled in `default`.
  wait_for "the controller manager (ServiceAccount default/default)" kube-controller-manager \
    api_get /api/v1/namespaces/default/serviceaccounts/default
  wait_for "the fake kubelet to log 'fake-kubelet: ready'" fake-kubelet \
    grep -q '^fake-kubelet: ready$' "$DIR/logs/fake-kubelet.log"

  write_kubeconfig "$DIR/admin.kubeconfig" admin
  write_kubeconfig "$DIR/kubeconfig" admin nobody
  printf 'export KUBECONFIG=%q\n' "$DIR/kubeconfig" >"$DIR/env"
  log "ready in $((SECONDS - started))s (API server https://127.0.0.1:$APISERVER_PORT;" \
    "$(sed -n 's/^fake-kubelet: //p' "$DIR/logs/fake-kubelet.log" | head -n1))"
  trap - EXIT INT TERM
  echo "$DIR/kubeconfig"
}

cmd_down() {
  [ -d "$DIR" ] || return 0
  DIR=$(cd "$DIR" && pwd)
  stop_all
  remove_netns
}

cmd_status() {
  if [ ! -s "$DIR/pids" ]; then
    echo "not running: no $DIR/pids" >&2
    return 1
  fi
  DIR=$(cd "$DIR" && pwd)
  local rc=0 name pid
  while read -r name pid; do
    if is_ours "$pid"; then echo "$name $pid running"; else echo "$name $pid stopped"; rc=1; fi
  done < <(read_pids)
  return "$rc"
}

[ $# -eq 2 ] || usage
DIR=$2
case "$1" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  *) usage ;;
esac
