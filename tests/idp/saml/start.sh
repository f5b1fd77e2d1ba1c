#!/usr/bin/env bash
# Starts the local SimpleSAMLphp SAML 2.0 test IdP on 127.0.0.1:$SAML_PORT.
#
#   SAML_PORT=18443 SAML_SPS_FILE=sps.json tests/idp/saml/start.sh WORKDIR
#   SAML_PORT=18443 … tests/idp/saml/start.sh --foreground WORKDIR
#
# With --foreground the script becomes the PHP server (exec) once the
# configuration is in place: the caller owns the process (its group, its
# stop) and waits for the metadata itself; nothing is written to php.pid.
#
# Env: SAML_PORT (required), SAML_SPS_FILE (JSON list of SPs; optional, none
# registered without it), SAML_IDP_KEY + SAML_IDP_CERT (optional existing PEM
# key/cert), SAML_START_TIMEOUT (seconds, default 30), SAML_PHP_WORKERS
# (PHP built-in server worker processes, default 4).
# Prints the IdP metadata URL as the last line of stdout; everything else goes
# to stderr. The server PID (a process-group leader) is in WORKDIR/php.pid.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SSP_WWW=/usr/share/simplesamlphp/www

die() { echo "start.sh: ERROR: $*" >&2; exit 1; }
log() { echo "start.sh: $*" >&2; }

FOREGROUND=
if [ "${1:-}" = --foreground ]; then
    FOREGROUND=1
    shift
fi
[ $# -eq 1 ] || die "usage: SAML_PORT=PORT [SAML_SPS_FILE=sps.json] $0 [--foreground] WORKDIR"
[ -n "${SAML_PORT:-}" ] || die "SAML_PORT is required (a free TCP port on 127.0.0.1)"
[[ "$SAML_PORT" =~ ^[0-9]+$ ]] && [ "$SAML_PORT" -ge 1 ] && [ "$SAML_PORT" -le 65535 ] \
    || die "SAML_PORT must be a port number, got '$SAML_PORT'"
TIMEOUT="${SAML_START_TIMEOUT:-30}"
WORKERS="${SAML_PHP_WORKERS:-4}"

command -v php >/dev/null 2>&1 || die "php not found; run $HERE/install.sh first"
command -v openssl >/dev/null 2>&1 || die "openssl not found; run $HERE/install.sh first"
[ -d "$SSP_WWW" ] || die "SimpleSAMLphp not found at $SSP_WWW; run $HERE/install.sh first"

mkdir -p "$1" || die "cannot create WORKDIR $1"
WORKDIR="$(cd "$1" && pwd)"
PIDFILE="$WORKDIR/php.pid"

if [ -f "$PIDFILE" ]; then
    oldpid="$(cat "$PIDFILE" 2>/dev/null || true)"
    if [ -n "$oldpid" ] && kill -0 "$oldpid" 2>/dev/null; then
        die "an IdP is already running from $WORKDIR (pid $oldpid); run stop.sh $WORKDIR first"
    fi
    rm -f "$PIDFILE"
fi

SPS_FILE=""
if [ -n "${SAML_SPS_FILE:-}" ]; then
    [ -r "$SAML_SPS_FILE" ] || die "SAML_SPS_FILE '$SAML_SPS_FILE' is not readable"
    SPS_FILE="$(cd "$(dirname "$SAML_SPS_FILE")" && pwd)/$(basename "$SAML_SPS_FILE")"
else
    log "warning: SAML_SPS_FILE not set; no SP is registered"
fi

mkdir -p "$WORKDIR"/{cert,metadata,log,data,tmp,sessions}

# --- IdP signing key/cert --------------------------------------------------
KEY="$WORKDIR/cert/idp.key"
CRT="$WORKDIR/cert/idp.crt"
if [ -n "${SAML_IDP_KEY:-}" ] || [ -n "${SAML_IDP_CERT:-}" ]; then
    [ -n "${SAML_IDP_KEY:-}" ] && [ -n "${SAML_IDP_CERT:-}" ] \
        || die "set both SAML_IDP_KEY and SAML_IDP_CERT, or neither"
    [ -r "$SAML_IDP_KEY" ] || die "SAML_IDP_KEY '$SAML_IDP_KEY' is not readable"
    [ -r "$SAML_IDP_CERT" ] || die "SAML_IDP_CERT '$SAML_IDP_CERT' is not readable"
    kpub="$(openssl pkey -in "$SAML_IDP_KEY" -pubout 2>/dev/null)" || die "SAML_IDP_KEY is not a readable unencrypted private key"
    cpub="$(openssl x509 -in "$SAML_IDP_CERT" -noout -pubkey 2>/dev/null)" || die "SAML_IDP_CERT is not a PEM certificate"
    [ "$kpub" = "$cpub" ] || die "SAML_IDP_KEY does not match SAML_IDP_CERT"
    cp "$SAML_IDP_KEY" "$KEY"
    cp "$SAML_IDP_CERT" "$CRT"
    log "using IdP key/cert from $SAML_IDP_KEY / $SAML_IDP_CERT"
elif [ -s "$KEY" ] && [ -s "$CRT" ]; then
    log "reusing IdP key/cert in $WORKDIR/cert"
else
    openssl req -x509 -newkey rsa:2048 -sha256 -nodes -days 3650 \
        -subj "/CN=Portcullis test IdP 127.0.0.1:$SAML_PORT" \
        -keyout "$KEY" -out "$CRT" >/dev/null 2>&1 || die "openssl could not generate the IdP key/cert"
    log "generated IdP key/cert in $WORKDIR/cert"
fi
chmod 600 "$KEY"

# --- configuration ---------------------------------------------------------
php "$HERE/render-config.php" "$WORKDIR" "$SAML_PORT" "$SPS_FILE" || die "could not render the configuration"
rm -rf "${WORKDIR:?}/tmp/"* 2>/dev/null || true   # stale metadata/template caches

# --- server ----------------------------------------------------------------
# Refuse a port that already answers: the readiness check below would
# otherwise talk to whatever else is listening there.
if (exec 3<>"/dev/tcp/127.0.0.1/$SAML_PORT") 2>/dev/null; then
    die "port $SAML_PORT on 127.0.0.1 is already in use"
fi
SERVER_LOG="$WORKDIR/log/php-server.log"
: > "$SERVER_LOG"
if [ -n "$FOREGROUND" ]; then
    SIMPLESAMLPHP_CONFIG_DIR="$WORKDIR" PHP_CLI_SERVER_WORKERS="$WORKERS" \
        exec php -d display_errors=stderr -d error_reporting=E_ALL\&~E_DEPRECATED \
        -S "127.0.0.1:$SAML_PORT" -t "$SSP_WWW" >>"$SERVER_LOG" 2>&1 </dev/null
fi
# setsid: the server (and its worker processes) form their own process group,
# whose id is the PID written to php.pid; stop.sh signals that group.
SIMPLESAMLPHP_CONFIG_DIR="$WORKDIR" PHP_CLI_SERVER_WORKERS="$WORKERS" \
    setsid php -d display_errors=stderr -d error_reporting=E_ALL\&~E_DEPRECATED \
    -S "127.0.0.1:$SAML_PORT" -t "$SSP_WWW" \
    >>"$SERVER_LOG" 2>&1 </dev/null &
PID=$!
echo "$PID" > "$PIDFILE"

BASE="http://127.0.0.1:$SAML_PORT"
METADATA_URL="$BASE/saml2/idp/metadata.php"

fetch_metadata() {
    php -r '
        $ctx = stream_context_create(["http" => ["timeout" => 3, "ignore_errors" => true]]);
        $body = @file_get_contents($argv[1], false, $ctx);
        if ($body === false || !isset($http_response_header[0])) exit(2);
        if (!preg_match("#^HTTP/\S+ 200#", $http_response_header[0])) { fwrite(STDERR, $http_response_header[0]."\n"); exit(3); }
        if (strpos($body, "EntityDescriptor") === false) exit(4);
        // must be this instance: the metadata carries our certificate
        $pem = file_get_contents($argv[3]);
        preg_match("/-----BEGIN CERTIFICATE-----(.+?)-----END CERTIFICATE-----/s", $pem, $m);
        if (strpos($body, preg_replace("/\\s+/", "", $m[1])) === false) { fwrite(STDERR, "metadata lacks our certificate\n"); exit(5); }
        file_put_contents($argv[2], $body);
    ' "$METADATA_URL" "$WORKDIR/idp-metadata.xml" "$CRT" 2>>"$WORKDIR/log/readiness.log"
}

deadline=$((SECONDS + TIMEOUT))
until fetch_metadata; do
    if ! kill -0 "$PID" 2>/dev/null; then
        rm -f "$PIDFILE"
        echo "--- $SERVER_LOG ---" >&2; tail -n 20 "$SERVER_LOG" >&2 || true
        die "the PHP server exited before answering (port $SAML_PORT in use?)"
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
        echo "--- $SERVER_LOG ---" >&2; tail -n 20 "$SERVER_LOG" >&2 || true
        echo "--- $WORKDIR/log/simplesamlphp.log ---" >&2; tail -n 20 "$WORKDIR/log/simplesamlphp.log" >&2 2>/dev/null || true
        kill -TERM -- "-$PID" 2>/dev/null || kill -TERM "$PID" 2>/dev/null || true
        rm -f "$PIDFILE"
        die "$METADATA_URL did not answer 200 within ${TIMEOUT}s"
    fi
    sleep 0.2
done
sleep 0.2
if ! kill -0 "$PID" 2>/dev/null || grep -q 'Failed to listen' "$SERVER_LOG"; then
    kill -TERM -- "-$PID" 2>/dev/null || true
    rm -f "$PIDFILE"
    tail -n 20 "$SERVER_LOG" >&2 || true
    die "the PHP server did not stay up on 127.0.0.1:$SAML_PORT"
fi

cat > "$WORKDIR/idp.env" <<ENV
SAML_IDP_BASE=$BASE
SAML_IDP_ENTITY_ID=$METADATA_URL
SAML_IDP_METADATA_URL=$METADATA_URL
SAML_IDP_SSO_URL=$BASE/saml2/idp/SSOService.php
SAML_IDP_SLO_URL=$BASE/saml2/idp/SingleLogoutService.php
SAML_IDP_CERT_PEM=$CRT
ENV

log "IdP running (pid $PID); SSO $BASE/saml2/idp/SSOService.php; logs in $WORKDIR/log"
echo "$METADATA_URL"
