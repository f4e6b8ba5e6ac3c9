#!/usr/bin/env bash
# The README's first command: shows the main job working.
#
#   scripts/demo.sh          build the plugin, start the local control plane (unless KUBECONFIG
#                            names a cluster you chose), seed the runbook's demo app into
#                            namespace `prod`, put kubectl-rotate and kubectl on PATH, and show
#                            `kubectl rotate status -n prod`.
#   scripts/demo.sh stop     stop the local control plane the demo started.
#
# The local control plane keeps running after this script ends, so you can type commands; its
# state lives in .demo/ (git-ignored). Secret values are generated at seed time, piped to
# kubectl on stdin, and never written to disk or printed.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
demo="$root/.demo"
cluster_dir="$demo/cluster"
ns="${DEMO_NAMESPACE:-prod}"

say() { printf '\033[1mdemo:\033[0m %s\n' "$*" >&2; }
[ -t 2 ] || say() { printf 'demo: %s\n' "$*" >&2; }

if [ "${1:-}" = "stop" ]; then
  scripts/cluster.sh down "$cluster_dir"
  say "local control plane stopped"
  exit 0
fi

scripts/provision.sh
say "building kubectl-rotate"
cargo build --workspace --quiet
# Where cargo put the binaries (CARGO_TARGET_DIR or build.target-dir may move them).
bin_dir="$(scripts/target-dir.sh)/debug"

mkdir -p "$demo/bin"
ln -sfn "$bin_dir/kubectl-rotate" "$demo/bin/kubectl-rotate"
ln -sfn "${KUBECTL_ROTATE_CACHE:-$HOME/.cache/kubectl-rotate}/venv/bin/kubectl" "$demo/bin/kubectl"
export PATH="$demo/bin:$PATH"

if [ -n "${KUBECONFIG:-}" ]; then
  say "using the cluster of your KUBECONFIG (context $(kubectl config current-context))"
  kubeconfig="$KUBECONFIG"
  local_cluster=0
else
  if scripts/cluster.sh status "$cluster_dir" >/dev/null 2>&1; then
    say "local control plane already running"
  else
    say "starting the local control plane (kube-apiserver, kube-controller-manager, etcd, fake kubelet)"
    FAKE_KUBELET="$bin_dir/fake-kubelet" DEMO_APP="$bin_dir/demo-app" scripts/cluster.sh up "$cluster_dir" >/dev/null
  fi
  kubeconfig="$cluster_dir/kubeconfig"
  local_cluster=1
fi
export KUBECONFIG="$kubeconfig"
cat >"$demo/env" <<ENV
export PATH="$demo/bin:\$PATH"
export KUBECONFIG="$kubeconfig"
ENV

# Never touch a namespace the demo did not create.
if kubectl get namespace "$ns" >/dev/null 2>&1; then
  part_of=$(kubectl get namespace "$ns" -o jsonpath='{.metadata.labels.app\.kubernetes\.io/part-of}')
  if [ "$part_of" != "kubectl-rotate-demo" ]; then
    echo "demo: namespace $ns exists and was not created by this demo; set DEMO_NAMESPACE=another-name" >&2
    exit 1
  fi
else
  kubectl create namespace "$ns" >/dev/null
  kubectl label namespace "$ns" app.kubernetes.io/part-of=kubectl-rotate-demo >/dev/null
fi

if [ "$local_cluster" = 1 ]; then
  # The real app, PostgreSQL and Redis: the fake kubelet runs them as processes.
  say "seeding the runbook's app into namespace $ns: PostgreSQL, Redis, tenant data, api, worker"
  if ! kubectl get secret app-secrets -n "$ns" >/dev/null 2>&1; then
    python3 demo/secret.py "$ns" --postgres-admin | kubectl create -f - >/dev/null
  fi
  kubectl apply -n "$ns" -f demo/app.yaml >/dev/null
  kubectl rollout status statefulset/postgres -n "$ns" --timeout=120s >/dev/null
  kubectl rollout status deployment/redis -n "$ns" --timeout=120s >/dev/null
  kubectl wait --for=condition=complete job/seed-tenants -n "$ns" --timeout=120s >/dev/null
else
  # Another cluster cannot pull the demo's images: the simulated app (pause containers).
  say "seeding the runbook's app (simulated: pause containers) into namespace $ns"
  if ! kubectl get secret app-secrets -n "$ns" >/dev/null 2>&1; then
    python3 demo/secret.py "$ns" | kubectl create -f - >/dev/null
  fi
  kubectl apply -n "$ns" -f demo/simulated-app.yaml >/dev/null
fi
for d in api worker frontend; do
  kubectl rollout status "deployment/$d" -n "$ns" --timeout=120s >/dev/null
done
kubectl get deployments,statefulsets -n "$ns" >&2

say "\$ kubectl rotate status -n $ns"
kubectl rotate status -n "$ns"

if [ "$local_cluster" = 1 ]; then
  # The runbook's PostgreSQL procedure for real: the password changes in the database and in
  # the Secret as one run; the app's new pods log in with it.
  say "\$ kubectl rotate postgres -y -n $ns"
  kubectl rotate postgres -y -n "$ns"
  say "\$ kubectl rotate verify app-secrets postgres-password -n $ns --logs 'database.*healthy'"
  kubectl rotate verify app-secrets postgres-password -n "$ns" --logs 'database.*healthy'
  # The runbook's Redis procedure, with an overlap: the new password is added in Redis, the
  # app rolls over while both work, then the old one is removed.
  say "\$ kubectl rotate redis -y -n $ns"
  kubectl rotate redis -y -n "$ns"
  say "\$ kubectl rotate verify app-secrets redis-password -n $ns --logs 'redis.*healthy'"
  kubectl rotate verify app-secrets redis-password -n "$ns" --logs 'redis.*healthy'
  # The key file and the database dump never go inside a git work tree (the plugin refuses).
  backups="$(mktemp -d "${TMPDIR:-/tmp}/kubectl-rotate-demo.XXXXXX")"
  say "\$ kubectl rotate encryption-key -y -n $ns --backup-dir $backups/run"
  kubectl rotate encryption-key -y -n "$ns" --backup-dir "$backups/run"
  say "the old key and the dump (0600): $(ls "$backups/run" | tr '\n' ' ')"
  redis_line="kubectl rotate redis -n $ns   # preview, confirm: Redis and the Secret, with an overlap"
else
  redis_line="kubectl rotate secret app-secrets redis-password --generate password -n $ns   # preview, confirm, rotate, watch"
fi

cat >&2 <<NEXT

Next, in your shell:
  source .demo/env                      # puts kubectl and kubectl-rotate on PATH, sets KUBECONFIG
  kubectl rotate status -n $ns
  $redis_line
  kubectl rotate openai -n $ns           # asks for the new key (it must start with sk-)
  kubectl rotate verify app-secrets -n $ns --logs 'Secrets loaded successfully|[Rr]eady to accept connections' --health 8000/health
  kubectl rotate rollback app-secrets redis-password -n $ns
  kubectl rotate backup app-secrets --list -n $ns
  kubectl rotate secret app-secrets openai-api-key --generate token -y -n $ns   # a bad value: watch it roll back
  kubectl rotate --help
NEXT
if [ "$local_cluster" = 1 ]; then
  cat >&2 <<NEXT
The app, its database and its cache are real processes:
  kubectl rotate postgres --strategy alternating-users -n $ns   # zero downtime: switches to a second role
  kubectl rotate encryption-key --strategy keyring -n $ns --backup-dir /tmp/ek-\$(date +%s)   # no downtime: new,old while the rows move
  kubectl rotate encryption-key --dry-run -n $ns --backup-dir /tmp/x   # decrypts every row with the current key, writes nothing
  kubectl logs -n $ns deployment/api     # Secrets loaded successfully, database/redis connection healthy
  kubectl get --raw /api/v1/namespaces/$ns/services/api:8000/proxy/api/v1/tenants/tenant-1/config
  kubectl exec -n $ns postgres-0 -- psql -U postgres -d ai_agents -c 'SELECT tenant_id FROM tenant_configs'
  kubectl get secret app-secrets -n $ns -o jsonpath='{.data.redis-password}' | base64 -d |
    kubectl exec -i -n $ns deployment/redis -- sh -c 'read -r p; REDISCLI_AUTH="\$p" redis-cli -h "\$LISTEN_ADDRESS" ping'
  scripts/demo.sh stop                  # stops the local control plane
NEXT
fi
