#!/usr/bin/env bash
# The README's start command as a new user runs it: a fresh clone in a private home
# (mode 700, a path with a space), `npm start` as whoever runs this (root in CI), until
# /readyz is 200; then the command the start banner suggests, with the admin key it points
# to; then Ctrl-C, which must stop everything it started.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
die() { printf 'first-run-check: FAIL: %s\n' "$*" >&2; exit 1; }

home="$(mktemp -d "${TMPDIR:-/tmp}/infera-home.XXXXXX")"
chmod 700 "$home"
clone="$home/my infera"
log="$home/start.log"
pid=""
cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill -KILL -- "-$pid" 2>/dev/null || true; fi
  data="$(sed -n 's/.*data in \(.*\)$/\1/p' "$log" 2>/dev/null | head -1)"
  case "$data" in /var/lib/infera/data-*) rm -rf "$(dirname "$data")" ;; esac
  rm -rf "$home"
}
trap cleanup EXIT

git clone -q "$ROOT" "$clone"
free_port() { node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }
port="$(free_port)"
echo "clone: $clone (as $(id -un)), gateway port $port"

# Its own process group, so Ctrl-C (SIGINT to the group) reaches it as it would from a terminal.
(cd "$clone" && PORT="$port" LOCAL_POSTGRES_PORT="$(free_port)" LOCAL_REDIS_PORT="$(free_port)" REDIS_PREFIX="firstrun$$" \
  exec setsid npm start >"$log" 2>&1) &
pid=$!

ready=""
for _ in $(seq 1 600); do
  kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; die "npm start exited before /readyz answered 200"; }
  if [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/readyz" || true)" = 200 ]; then ready=1; break; fi
  sleep 0.5
done
[ -n "$ready" ] || { tail -50 "$log" >&2; die "/readyz was not 200 within 300 s"; }
for _ in $(seq 1 20); do grep -q '^\[infera\] try:' "$log" && break; sleep 0.25; done
grep -a '^\[infera\]' "$log"

key_file="$(sed -n "s/.*INFERA_TOKEN=\"\$(cat '\(.*\)')\".*/\1/p" "$log" | head -1)"
[ -f "$key_file" ] || die "the start banner does not name an admin key file"
INFERA_TOKEN="$(cat "$key_file")"
grep -aqF "$INFERA_TOKEN" "$log" && die "the admin key appears in the output"
try="$(sed -n 's/^\[infera\] try: //p' "$log" | head -1)"
[ -n "$try" ] || die "the start banner suggests no command"
answer="$(INFERA_TOKEN="$INFERA_TOKEN" bash -c "$try -sS --fail-with-body")" || die "the suggested command failed: $answer"
echo "$answer" | grep -q '"chat.completion"' || die "the suggested command did not answer a chat completion: $answer"
echo "the suggested command answered: ${answer:0:120}…"

kill -INT -- "-$pid"
for _ in $(seq 1 120); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
kill -0 "$pid" 2>/dev/null && die "npm start did not stop within 60 s of Ctrl-C"
data="$(sed -n 's/.*data in \(.*\)$/\1/p' "$log" | head -1)"
left="$( (pgrep -f -- "$clone"; pgrep -f -- "-D $data") || true)"
[ -z "$left" ] || { ps -o pid,args -p $left >&2; die "processes were left running after Ctrl-C"; }
pid=""
echo "first-run-check: OK"
