#!/usr/bin/env bash
# The Debian packages the tests drive, installed when missing (idempotent): `make test` and
# .ci/run both call this, so the two cannot drift. Without root it names the command instead.
#   chromium          renders the status page
#   nodejs npm        bring Azurite (the Azure blob emulator, for the UFS conformance suite)
#   openjdk-17-jre    runs Hadoop's own WebHDFS client (the jars inside pyspark)
#   libnfs-utils      nfs-cp, nfs-cat, nfs-ls: the real NFS clients
#   libnfs-dev gcc    the PyPI libnfs bindings and tools/bench/nfsops.c compile against them
#   rpcbind           nsd registers with a running portmapper in one test
#   iproute2          network namespaces for the NFS export allow-list test
#   etcd-server       real etcd members for cluster mode's replication tests
#   python3-dev/venv  headers for packages that compile; the venv module
set -euo pipefail

need=()
python3 -c 'import venv, ensurepip' 2>/dev/null || need+=(python3-venv)
command -v chromium >/dev/null || need+=(chromium)
command -v npm >/dev/null || need+=(nodejs npm)
command -v java >/dev/null || need+=(openjdk-17-jre-headless)
command -v nfs-cp >/dev/null || need+=(libnfs-utils)
command -v rpcbind >/dev/null || need+=(rpcbind)
command -v ip >/dev/null || need+=(iproute2)
command -v etcd >/dev/null || need+=(etcd-server)
[ -e /usr/include/nfsc/libnfs.h ] || need+=(libnfs-dev)
command -v gcc >/dev/null || need+=(gcc libc6-dev)
python3 -c 'import sysconfig, os, sys; sys.exit(not os.path.exists(sysconfig.get_path("include") + "/Python.h"))' \
    || need+=(python3-dev)

if ((${#need[@]})); then
    if [ "$(id -u)" != 0 ]; then
        echo "the tests need Debian packages: run 'sudo $0' (installs: ${need[*]})" >&2
        exit 1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
if ! command -v azurite-blob >/dev/null; then
    if [ "$(id -u)" != 0 ]; then
        echo "the tests need Azurite: run 'sudo $0' (installs it with npm -g)" >&2
        exit 1
    fi
    npm install -g --silent azurite
fi
