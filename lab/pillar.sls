# The lab's pillar (the salt-master's pillar/local.sls): the secrets an operator supplies, and
# the source keys pointed at the lab's mirror. Nothing else differs from AWS.
consul:
  encrypt: pUqJrVyVRj5jsiYEkM/tFQYfWyJIv4s3XkvDwy7Cu5s=
  acl_token: 4c5f0a1e-2b8d-4f6a-9c3e-7d1b2a3c4d5e
kong:
  database:
    password: lab-kong-password
