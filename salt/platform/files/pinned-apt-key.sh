#!/bin/sh
# File managed by Salt. Installs a package repository's signing key only when it is exactly
# the key pillar pins: one primary key with that fingerprint (40 hex digits; or its last 16,
# the long key ID, where a vendor publishes only that), not expired. PILLAR is the pillar key
# of the repository (mesos:repo): a refusal names what the operator sets.
#   pinned-apt-key check   KEYRING FINGERPRINT                 exit 0 when KEYRING holds it
#   pinned-apt-key install KEYRING FINGERPRINT KEY_URL PILLAR  download, verify, write KEYRING
set -eu
action=$1 keyring=$2 want=$3 pillar=${5:-}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export GNUPGHOME="$work"

full_fingerprints() {
    gpg --batch --show-keys --with-colons "$1" 2>/dev/null \
        | awk -F: '$1 == "pub" {next_fpr = 1; next} $1 == "fpr" && next_fpr {print $10; next_fpr = 0}'
}

primary_fingerprints() {  # as long as the pinned value: full fingerprints or long key IDs
    full_fingerprints "$1" | awk -v n="${#want}" '{print substr($0, 41 - n)}'
}

refusal() {  # why $1 (from $2) is not the pinned key, or nothing
    found=$(primary_fingerprints "$1" | tr '\n' ' ' | sed 's/ $//')
    if [ "$found" != "$want" ]; then
        echo "the key from $2 has the fingerprint(s) '${found:-none}', pillar \`$pillar:key_fingerprint\` pins $want"
        return
    fi
    expiry=$(gpg --batch --show-keys --with-colons "$1" 2>/dev/null | awk -F: '$1 == "pub" {print $7; exit}')
    if [ -n "$expiry" ] && [ "$expiry" -le "$(date +%s)" ]; then
        echo "the key $want from $2 expired on $(date -u -d "@$expiry" +%F): set pillar \`$pillar:key_fingerprint\` (and \`$pillar:key_url\`) to the vendor's current key"
    fi
}

case "$action" in
check)
    [ -s "$keyring" ] && [ -z "$(refusal "$keyring" "$keyring")" ]
    ;;
install)
    url=$4
    [ -n "$pillar" ] || { echo "usage: $0 install KEYRING FINGERPRINT KEY_URL PILLAR" >&2; exit 2; }
    if ! curl -fsSL --retry 3 -o "$work/key" "$url"; then
        echo "cannot download the signing key from $url: nothing written" >&2
        exit 1
    fi
    why=$(refusal "$work/key" "$url")
    if [ -n "$why" ]; then
        echo "$why: nothing written" >&2
        exit 1
    fi
    install -D -m 0644 "$work/key" "$keyring"
    if [ "${#want}" -eq 40 ]; then
        echo "installed the key $want from $url as $keyring"
    else  # pinned by long key ID: show the fingerprint to check with the vendor and pin
        echo "installed the key $want (fingerprint $(full_fingerprints "$keyring")) from $url as $keyring; pin that full fingerprint in pillar \`$pillar:key_fingerprint\` once checked with the vendor"
    fi
    ;;
*)
    echo "usage: $0 check KEYRING FINGERPRINT | install KEYRING FINGERPRINT KEY_URL PILLAR" >&2
    exit 2
    ;;
esac
