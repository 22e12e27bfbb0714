#!/usr/bin/env bash
# The container engine infera's image scripts and the images test use here: podman, from
# Debian's packages (daemonless, runs as root, no registry needed), with docker-compose
# (Debian's 1.29) talking to podman's Docker-compatible API for deploy/compose.yaml.
#
#   deploy/engine.sh install   # as root: apt-get install what is missing (podman, runc, debootstrap, docker-compose)
#   deploy/engine.sh check     # is a usable engine here? a message naming what to install if not
#   eval "$(deploy/engine.sh env)"   # point podman at infera's own storage and settings (below)
#   deploy/engine.sh rmi REF...     # remove images (the images test's own, when it ends)
#   deploy/engine.sh prune          # remove build layers no image uses, once no build runs
#
# Sourced (`. deploy/engine.sh`) it defines infera_engine_env, infera_engine_check and
# infera_engine_install.
#
# Settings (written to $INFERA_IMAGES_CACHE, default ${XDG_CACHE_HOME:-$HOME/.cache}/infera/images):
# - host networking for every container and build step, and no bridge at all: the CNI plugin
#   directory is empty, so a container asking for a bridge fails instead of getting a 10.88.x
#   or 172.x address (this machine may send nothing to non-loopback addresses);
# - image storage under the cache folder (overlay; INFERA_STORAGE_DRIVER=vfs where overlay
#   cannot mount), so the base image and build layers are a per-machine cache every worktree
#   and CI share, and nothing lands in the machine's own podman storage;
# - runc with cgroupfs (there is no systemd to manage cgroups) and file-based events.

INFERA_IMAGES_CACHE="${INFERA_IMAGES_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/infera/images}"
INFERA_ENGINE_PACKAGES=(podman runc conmon debootstrap docker-compose)

infera_engine_env() {
  local dir="$INFERA_IMAGES_CACHE/engine"
  local driver="${INFERA_STORAGE_DRIVER:-overlay}"
  # Per cache folder (short: podman's socket paths must stay under 108 bytes).
  local run
  run="/run/infera-podman-$(printf '%s' "$INFERA_IMAGES_CACHE" | md5sum | cut -c1-8)"
  local nofile nproc
  nofile="$(ulimit -Hn)"
  [ "$nofile" = unlimited ] && nofile=1048576
  # podman itself lowers its process limit to 32768 (soft and hard) before it starts the runtime.
  nproc="$(ulimit -Hu)"
  if [ "$nproc" = unlimited ] || [ "$nproc" -gt 32768 ]; then nproc=32768; fi
  mkdir -p "$dir/cni-none" "$INFERA_IMAGES_CACHE/storage"
  # Written aside, then moved in only when changed: another checkout may be reading them.
  local containers_conf storage_conf
  containers_conf="$(mktemp "$dir/.containers.conf.XXXXXX")"
  storage_conf="$(mktemp "$dir/.storage.conf.XXXXXX")"
  cat >"$containers_conf" <<EOF
# Written by deploy/engine.sh: infera's podman settings (see there).
[containers]
netns = "host"
log_driver = "k8s-file"
# podman asks for more open files and processes than this machine's hard limits allow.
default_ulimits = ["nofile=$nofile:$nofile", "nproc=$nproc:$nproc"]

[engine]
cgroup_manager = "cgroupfs"
# crun 1.8 refuses hybrid cgroup hierarchies (v1 controllers with a v2 mount), which is what
# machines without systemd as PID 1 often have; runc runs on them.
runtime = "runc"
events_logger = "file"
events_logfile_path = "$dir/events.log"
tmp_dir = "$run/libpod"

[network]
network_backend = "cni"
cni_plugin_dirs = ["$dir/cni-none"]
network_config_dir = "$dir/cni-none"
EOF
  cat >"$storage_conf" <<EOF
# Written by deploy/engine.sh: infera's image storage, a per-machine cache.
[storage]
driver = "$driver"
graphroot = "$INFERA_IMAGES_CACHE/storage"
runroot = "$run/storage"
EOF
  if cmp -s "$containers_conf" "$dir/containers.conf"; then rm -f "$containers_conf"; else mv -f "$containers_conf" "$dir/containers.conf"; fi
  if cmp -s "$storage_conf" "$dir/storage.conf"; then rm -f "$storage_conf"; else mv -f "$storage_conf" "$dir/storage.conf"; fi
  export CONTAINERS_CONF="$dir/containers.conf"
  export CONTAINERS_STORAGE_CONF="$dir/storage.conf"
}

infera_engine_missing() {
  local missing=()
  command -v podman >/dev/null 2>&1 || missing+=(podman)
  command -v runc >/dev/null 2>&1 || missing+=(runc)
  command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
  command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
  echo "${missing[*]}"
}

infera_engine_install() {
  local missing
  missing="$(infera_engine_missing)"
  [ -z "$missing" ] && return 0
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "deploy/engine.sh: missing $missing; install them as root (Debian: apt-get install ${INFERA_ENGINE_PACKAGES[*]})" >&2
    return 1
  fi
  echo "deploy/engine.sh: installing ${INFERA_ENGINE_PACKAGES[*]} (apt-get)"
  # Debian's lists may be missing on a fresh machine; update once, then install.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${INFERA_ENGINE_PACKAGES[@]}" >/dev/null 2>&1 || {
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${INFERA_ENGINE_PACKAGES[@]}" >/dev/null
  }
}

# Exit status 0 when podman can run a container here; otherwise a message that says what to do.
infera_engine_check() {
  local missing
  missing="$(infera_engine_missing)"
  if [ -n "$missing" ]; then
    cat >&2 <<EOF
No usable container engine: $missing not found.
Install them (Debian, as root: apt-get install ${INFERA_ENGINE_PACKAGES[*]}),
or run 'bash deploy/engine.sh install' as root.
EOF
    return 1
  fi
  infera_engine_env
  local out
  if ! out="$(podman info --format '{{.Store.GraphDriverName}} {{.Host.OCIRuntime.Name}}' 2>&1)"; then
    cat >&2 <<EOF
podman is installed but cannot run here:
$out
Try INFERA_STORAGE_DRIVER=vfs (no overlay mounts), and check that you run as root
(podman needs user and mount namespaces; see deploy/engine.sh).
EOF
    return 1
  fi
  return 0
}

# Builds hold this lock shared for as long as they run; prune takes it exclusively, so it
# never removes the layers of a build another checkout is in the middle of.
infera_build_lock() { # shared|exclusive
  mkdir -p "$INFERA_IMAGES_CACHE"
  exec 9>"$INFERA_IMAGES_CACHE/build.lock"
  flock "--$1" 9
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -euo pipefail
  case "${1:-}" in
    install) infera_engine_install && infera_engine_check && echo "container engine ready: $(podman --version), $(docker-compose version --short)" ;;
    check) infera_engine_check && echo "container engine ready: $(podman --version)" ;;
    env)
      infera_engine_env
      printf 'export CONTAINERS_CONF=%q CONTAINERS_STORAGE_CONF=%q\n' "$CONTAINERS_CONF" "$CONTAINERS_STORAGE_CONF"
      ;;
    rmi)
      shift
      infera_engine_env
      [ "$#" -eq 0 ] || podman rmi --ignore "$@" >/dev/null
      ;;
    prune)
      infera_engine_env
      infera_build_lock exclusive
      podman image prune --force >/dev/null
      ;;
    *) echo "usage: deploy/engine.sh install|check|env|rmi REF...|prune" >&2; exit 2 ;;
  esac
fi
