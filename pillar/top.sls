base:
  '*':
    - platform
    - aws
    - cluster
  # Site overrides: pillar/local.sls (gitignored) or local.sls in a second pillar root (the
  # tests and the sandbox use that). Last, so it overrides everything above; optional.
  '.*':
    - match: pcre
    - local
    - ignore_missing: True
