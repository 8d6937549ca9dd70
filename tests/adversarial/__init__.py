"""Adversarial inputs, kills and web-surface probes that once broke clicloop (issue #21).
Each test names what it feeds and the promise it checks; docs/hardening.md lists them."""
