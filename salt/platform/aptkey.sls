# -*- coding: utf-8 -*-
# vim: ft=sls
{#- The tools the apt repositories of the formulas use to pin their signing keys
    (platform/aptrepo.jinja). #}
{%- from "platform/libmap.jinja" import mapdata with context %}
{%- set apt = (mapdata('platform', pillar_key='cluster') | load_json).apt %}

Platform apt key checker can run:
  pkg.installed:
    - pkgs: [gpg, curl, ca-certificates]

Platform apt key checker is installed:
  file.managed:
    - name: {{ apt.key_checker }}
    - source: salt://platform/files/pinned-apt-key.sh
    - mode: '0755'
    - require:
      - pkg: Platform apt key checker can run
