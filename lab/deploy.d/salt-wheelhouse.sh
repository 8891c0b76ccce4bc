#!/bin/sh
# The lab's deploy script: installs Salt from a wheelhouse (or a onedir archive made from it),
# where bootstrap-salt.sh installs Salt's packages from the internet, then sets it up from what
# salt-cloud uploaded, as bootstrap-salt.sh does. salt-cloud gives its bootstrap options (-c DIR, -M, -N, -K, -F,
# -k DIR) to a deploy script whose text names bootstrap-salt, as this one's does.
#   -c DIR       salt-cloud's upload: minion, grains, minion.pem/.pub; master, master.pem/.pub
#   -M           set up the salt-master too          -N  no minion
#   -k DIR       minion keys to pre-seed as accepted
#   -K, -F, -S   (keep the upload, force the configuration: nothing to do; a syndic: none, but
#                salt-cloud asks for one whenever the master config has syndic_master, which
#                Salt's defaults set)
#   -w URL|DIR   the wheelhouse (pip --find-links, no index)
#   -O URL       or a onedir archive of that Salt (a tar of /opt/saltstack/salt, as Salt's
#                onedir packages lay it out, compiled): unpacked, in seconds
#   -V VERSION   the Salt version to install
#   -X           start no daemon (as bootstrap-salt.sh's -X; the lab image's build)
# Salt goes into a virtual environment at /opt/saltstack/salt, as the onedir packages lay it
# out, with the packages' systemd units.
set -eu

config_dir='' make_master='' make_minion=yes preseed='' start=yes wheels='' onedir='' version=''
while getopts c:MNk:KFSw:O:V:X option; do
    case $option in
        c) config_dir=$OPTARG ;;
        M) make_master=yes ;;
        N) make_minion='' ;;
        k) preseed=$OPTARG ;;
        K|F|S) ;;
        w) wheels=$OPTARG ;;
        O) onedir=$OPTARG ;;
        V) version=$OPTARG ;;
        X) start='' ;;
        *) echo "usage: $0 -w WHEELHOUSE|-O ONEDIR_URL -V VERSION [-c DIR] [-M] [-N] [-k DIR] [-X]" >&2; exit 2 ;;
    esac
done
if [ -z "$wheels$onedir" ] || [ -z "$version" ]; then
    echo "$0: -w WHEELHOUSE or -O ONEDIR_URL, and -V VERSION, are required" >&2
    exit 2
fi

prefix=/opt/saltstack/salt
if [ -n "$onedir" ]; then
    curl -fsS "$onedir" | tar -x -C /
else
    trusted=''
    case $wheels in
        http://*) address=${wheels#http://}; trusted="--trusted-host ${address%%[:/]*}" ;;
    esac
    [ -x "$prefix/bin/python3" ] || python3 -m venv "$prefix"
    # shellcheck disable=SC2086 # $trusted is an option and its value, or nothing
    # No byte-compiling here: Python compiles what Salt imports when it imports it, a fraction
    # of the whole, which costs a busy host minutes.
    "$prefix/bin/pip" install -q --disable-pip-version-check --no-compile --no-index \
        --find-links "$wheels" $trusted "salt==$version"
fi
installed=$("$prefix/bin/python3" -c 'import salt.version; print(salt.version.__version__)')
if [ "$installed" != "$version" ]; then
    echo "$0: $prefix holds Salt $installed, not $version" >&2
    exit 1
fi
for tool in salt salt-call salt-key salt-master salt-minion salt-run; do
    ln -sf "$prefix/bin/$tool" "/usr/bin/$tool"
done
# Type=simple: the wheel has no sd_notify.
for daemon in salt-master salt-minion; do
    cat > "/etc/systemd/system/$daemon.service" <<UNIT
[Unit]
Description=The Salt $daemon
After=network-online.target
Wants=network-online.target

[Service]
KillMode=process
LimitNOFILE=100000
ExecStart=/usr/bin/$daemon
Restart=on-failure

[Install]
WantedBy=multi-user.target
UNIT
done

[ -n "$config_dir" ] || exit 0
install -d -m 755 /etc/salt /etc/salt/pki
if [ -n "$make_minion" ]; then
    install -d -m 700 /etc/salt/pki/minion
    install -m 644 "$config_dir/minion" /etc/salt/minion
    if [ -f "$config_dir/grains" ]; then install -m 644 "$config_dir/grains" /etc/salt/grains; fi
    install -m 400 "$config_dir/minion.pem" /etc/salt/pki/minion/minion.pem
    install -m 644 "$config_dir/minion.pub" /etc/salt/pki/minion/minion.pub
fi
if [ -n "$make_master" ]; then
    install -d -m 700 /etc/salt/pki/master /etc/salt/pki/master/minions
    install -m 644 "$config_dir/master" /etc/salt/master
    install -m 400 "$config_dir/master.pem" /etc/salt/pki/master/master.pem
    install -m 644 "$config_dir/master.pub" /etc/salt/pki/master/master.pub
    if [ -n "$preseed" ]; then
        for key in "$preseed"/*; do install -m 644 "$key" /etc/salt/pki/master/minions/; done
    fi
fi
[ -n "$start" ] || exit 0
systemctl daemon-reload
if [ -n "$make_master" ]; then systemctl enable --now salt-master.service; fi
if [ -n "$make_minion" ]; then systemctl enable --now salt-minion.service; fi
