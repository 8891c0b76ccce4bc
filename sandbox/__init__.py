"""A local sandbox that runs the whole platform workflow end to end (``./run sandbox``).

No AWS account, nothing to pay: a real ``moto_server`` stands in for AWS, the simulators of
Consul, vulcand, Kong and Marathon stand in for the cluster's services, and a real salt-master
and minion run from the repository's configuration. The sandbox then runs the operator's
commands in order and checks the result the way a user would, through the gateway.

Modules: :mod:`sandbox.ports` (free ports), :mod:`sandbox.supervisor` (one supervised process
tree), :mod:`sandbox.steps` (printed, timed steps that fail fast), :mod:`sandbox.saltconfig`
(the private Salt configuration), :mod:`sandbox.stack` (the running services),
:mod:`sandbox.workflow` (the operator's steps), :mod:`sandbox.account` (what the AWS account
holds), :mod:`sandbox.clients` (what a user does with curl) and :mod:`sandbox.summary` (the
final report).
"""
