"""The real-host lab: Debian 12 hosts booted with systemd-nspawn inside a network namespace.

Test and developer tooling, apart from the product code (like ``simulators/``). The hosts of a
cloud map get the private addresses they have in the VPC, the role grains of the profiles and
the minion configuration the cloud driver writes; the salt-master host serves this checkout's
``salt/`` and ``pillar/``. Nothing here touches the machine's own network: every address lives
in the lab's namespace. Needs root, ``systemd-nspawn``, ``mmdebstrap``, ``socat`` and
``dnsmasq`` (``./run`` installs them).
"""
